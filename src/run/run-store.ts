/**
 * The run store: everything a search writes lives in one run directory, append-only while it runs, so
 * a killed run resumes with nothing lost and every result is reproducible from the directory alone.
 *
 * ```
 * <run>/experiment.json        the resolved experiment (a valid experiment file, defaults explicit)
 * <run>/run.json               versions, backend, created, command line, cells with their status
 * <run>/log.jsonl              the log of the run (winston JSON lines; the search adds the transport)
 * <run>/run.lock               pid of the process writing the run (removed on close)
 * <run>/cells/<cellId>/cell.json       agent + options, profile id + the profile JSON, budget, seed, model, dataset
 * <run>/cells/<cellId>/episodes.jsonl  one JSON line per episode (EpisodeRecord), fsynced per episode
 * <run>/cells/<cellId>/checkpoint/     network + agent state + episode counter (checkpoint.json marks it complete)
 * <run>/cells/<cellId>/best.json       best feasible episode so far (highest accuracy, then lowest latency)
 * <run>/cells/<cellId>/final.json      after the final fine-tune: test accuracy, costs, bits, wall time
 * <run>/cells/<cellId>/uniform.json    uniform-precision reference points (W8A8, W4A4, ...)
 * <run>/report.html, report.md, episodes.csv   written by `bitalloc report`
 * ```
 *
 * Crash safety: JSON files are replaced atomically (temp file in the same folder, fsync, rename, fsync of
 * the folder); episode lines are appended and fsynced one by one, and a torn last line (a crash mid-append)
 * is dropped and cut off on the next read; a checkpoint directory is swapped in by two renames and
 * `loadCheckpoint` recovers from a crash between them. One process writes a run at a time (run.lock).
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import type { BitConfig, LayerBits } from '../models/layer-info.js';
import { checkWritableDir, makeDirs, outputKindOf } from '../util/output-dir.js';
import { VERSION } from '../version.js';
import {
  budgetRef,
  cells as experimentCells,
  parseJsonText,
  resolvedAgentOptions,
  validateExperiment,
  type AgentSpec,
  type Cell,
  type Experiment,
} from '../experiment/experiment.js';

export const RUN_FORMAT = 'bitalloc-run';
export const RUN_FORMAT_VERSION = 1;

export type CellStatus = 'pending' | 'running' | 'done' | 'failed';
export const CELL_STATUSES: readonly CellStatus[] = ['pending', 'running', 'done', 'failed'];

// ---------------------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------------------

/** One line of episodes.jsonl. */
export interface EpisodeRecord {
  /** 1-based, consecutive. */
  episode: number;
  /** The allocation evaluated (after constraint handling). */
  bits: BitConfig;
  /** Validation accuracy in 0..1; null when the episode was not evaluated (e.g. rejected as infeasible). */
  accuracy: number | null;
  loss: number | null;
  latencyMs: number;
  energyUj: number;
  sizeBytes: number;
  peakMemoryBytes: number;
  feasible: boolean;
  reward: number;
  /** Wall time of the episode (agent + QAT + evaluation), ms. */
  wallMs: number;
  /** True when the result came from the evaluation cache (the allocation was evaluated before at the same weights). */
  cached?: boolean;
}

/** final.json: the best allocation after the final fine-tune. */
export interface FinalRecord {
  bits: BitConfig;
  /** Accuracy on the test split after the fine-tune, 0..1. */
  testAccuracy: number;
  testLoss?: number;
  latencyMs: number;
  energyUj: number;
  sizeBytes: number;
  peakMemoryBytes: number;
  feasible: boolean;
  /** Wall time of the whole cell (search + fine-tune), seconds. */
  wallSeconds: number;
  /** Episode at which the best allocation was first found. */
  episodesToBest: number;
  /** Names of the quantizable layers, in the order of `bits`. */
  layerNames?: string[];
}

/** One uniform-precision reference point in uniform.json. */
export interface UniformPoint {
  /** The uniform width, e.g. { wBits: 8, aBits: 8 }. */
  bits: LayerBits;
  accuracy: number | null;
  latencyMs: number;
  energyUj: number;
  sizeBytes: number;
  peakMemoryBytes?: number;
  feasible?: boolean;
}

/** What a checkpoint carries besides the files the search writes into it. */
export interface CheckpointState {
  /** Episodes completed when the checkpoint was taken. */
  episode: number;
  /** The agent's getState(). */
  agentState?: unknown;
  [key: string]: unknown;
}

/** cell.json. */
export interface CellFile {
  id: string;
  index: number;
  /** The agent as the experiment names it, plus every option with the agent's defaults filled in. */
  agent: AgentSpec & { resolvedOptions: Record<string, unknown> };
  profile: { id: string; spec: string; path: string; builtin: boolean; json: unknown };
  budget: { id: string; constraints: string[] };
  seed: number;
  model: string;
  dataset: string;
  dataDir?: string;
  constraintMode: string;
  stepMode: string;
  reward: { name: string; options: Record<string, unknown> };
  bitChoices: number[];
  episodes: number;
  qatSteps: number;
  warmupEpochs: number;
  finetuneEpochs: number;
  evalSamples: number;
  pinFirstLast: boolean;
}

export interface RunCellEntry {
  id: string;
  agent: string;
  profile: string;
  budget: string;
  seed: number;
  status: CellStatus;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
}

/** run.json. */
export interface RunInfo {
  format: typeof RUN_FORMAT;
  formatVersion: number;
  name: string;
  created: string;
  updated: string;
  versions: { bitalloc: string; tfjs: string; tfjsNode: string | null; node: string };
  backend: string;
  platform: string;
  hostname: string;
  cwd: string;
  /** The command line that created the run (and the ones that resumed it). */
  command: string[];
  resumes: { at: string; command: string[] }[];
  cells: RunCellEntry[];
  /** sha256 of experiment.json as written at creation (a resume refuses an edited experiment.json). */
  experimentSha256?: string;
  /** The experiment as created, to name what an edit changed. */
  experimentRecorded?: unknown;
}

/** What the caller knows about the environment of the run. */
export interface RunMeta {
  /** The tfjs backend in use (tensorflow | wasm | cpu). */
  backend: string;
  tfjs: string;
  tfjsNode?: string | null;
  /** Defaults to `bitalloc` + process.argv after the script. */
  command?: string[];
}

// ---------------------------------------------------------------------------------------------------------
// Atomic files
// ---------------------------------------------------------------------------------------------------------

let tempSeq = 0;
const TEMP_MARK = '.tmp-';

/**
 * Writes JSON so that `path` always holds either its old content or the complete new one: the text goes to
 * a temp file in the same folder (`<name>.tmp-<pid>-<n>`), is fsynced, renamed over `path`, and the folder
 * is fsynced. On any error the temp file is removed and `path` is untouched.
 */
export function writeJsonAtomic(path: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new TypeError(`writeJsonAtomic(${path}): value is not JSON-serialisable`);
  writeTextAtomic(path, text + '\n');
}

/** writeJsonAtomic for any text. */
export function writeTextAtomic(path: string, text: string): void {
  const tmp = `${path}${TEMP_MARK}${process.pid}-${tempSeq++}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // folders cannot be fsynced on every platform; the rename is still atomic
  }
}

/** Reads a JSON file; errors name the file (and line/column for a syntax error). */
export function readJsonFile(path: string): unknown {
  if (!existsSync(path)) throw new UserError('file not found', { file: path });
  return parseJsonText(readFileSync(path, 'utf8'), path);
}

/** Removes temp files (`*.tmp-<pid>-<n>`) left by a writer that crashed, in one folder. */
function removeStaleTemps(dir: string): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    const m = /\.tmp-(\d+)-\d+$/.exec(f);
    if (m && Number(m[1]) !== process.pid) rmSync(join(dir, f), { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------------

export interface OpenRunOptions {
  /** Read without locking, repairing or cleaning (reports, inspection). Default false. */
  readOnly?: boolean;
  /** Added to run.json's resume list when the run is opened for writing. */
  command?: string[];
}

export class RunStore {
  readonly cells: CellStore[];
  private lockHeld = false;

  constructor(
    readonly dir: string,
    readonly experiment: Experiment,
    public info: RunInfo,
    readonly readOnly: boolean,
  ) {
    this.cells = info.cells.map((c) => new CellStore(this, c.id));
  }

  /** Where the run's log lines go (pass to addLogFile). */
  get logPath(): string {
    return join(this.dir, 'log.jsonl');
  }

  get runJsonPath(): string {
    return join(this.dir, 'run.json');
  }

  cell(id: string): CellStore {
    const c = this.cells.find((x) => x.id === id);
    if (!c)
      throw new UserError(`no cell '${id}' in this run`, {
        file: this.runJsonPath,
        expected: `one of ${this.cells.map((x) => x.id).join(', ')}`,
      });
    return c;
  }

  /** Cells not yet done, in order (what a resumed run still has to do). */
  pendingCells(): CellStore[] {
    return this.cells.filter((c) => c.status !== 'done');
  }

  /** Sets a cell's status in run.json (rewritten atomically), with start/finish times. */
  setCellStatus(id: string, status: CellStatus, opts: { error?: string } = {}): void {
    this.assertWritable();
    const entry = this.info.cells.find((c) => c.id === id);
    if (!entry) throw new Error(`setCellStatus: no cell '${id}'`);
    const now = new Date().toISOString();
    entry.status = status;
    if (status === 'running') {
      entry.startedAt ??= now;
      delete entry.finishedAt;
      delete entry.error;
    }
    if (status === 'done' || status === 'failed') entry.finishedAt = now;
    if (status === 'pending') {
      delete entry.startedAt;
      delete entry.finishedAt;
    }
    if (opts.error !== undefined) entry.error = opts.error;
    this.saveInfo();
  }

  private saveInfo(): void {
    this.info.updated = new Date().toISOString();
    writeJsonAtomic(this.runJsonPath, this.info);
  }

  /** @internal */
  acquireLock(): void {
    const lockPath = join(this.dir, 'run.lock');
    const body = JSON.stringify({ pid: process.pid, hostname: hostname(), since: new Date().toISOString() }) + '\n';
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(lockPath, body, { flag: 'wx' });
        this.lockHeld = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let holder: { pid?: unknown; hostname?: unknown } = {};
        try {
          holder = JSON.parse(readFileSync(lockPath, 'utf8')) as typeof holder;
        } catch {
          // unreadable lock: treat as stale
        }
        const pid = typeof holder.pid === 'number' ? holder.pid : -1;
        const sameHost = holder.hostname === hostname();
        if (sameHost && pid > 0 && pid !== process.pid && processAlive(pid)) {
          throw new UserError(`the run is being written by process ${pid}`, {
            file: lockPath,
            expected: 'that process to finish (or remove run.lock if it is not a bitalloc run)',
          });
        }
        if (!sameHost && pid > 0) {
          throw new UserError(`the run is locked by process ${pid} on host ${String(holder.hostname)}`, {
            file: lockPath,
            expected: 'that process to finish, or remove run.lock if it is gone',
          });
        }
        log.warn(`${lockPath}: taking over a stale lock of process ${pid}`);
        rmSync(lockPath, { force: true });
      }
    }
    throw new UserError('could not lock the run', { file: lockPath });
  }

  /** Releases the lock (call when the search ends). The store stays readable. */
  close(): void {
    if (!this.lockHeld) return;
    rmSync(join(this.dir, 'run.lock'), { force: true });
    this.lockHeld = false;
  }

  /** @internal */
  assertWritable(): void {
    if (this.readOnly) throw new Error(`run ${this.dir} was opened read-only`);
  }

  /** @internal */
  entry(id: string): RunCellEntry {
    const e = this.info.cells.find((c) => c.id === id);
    if (!e) throw new Error(`no cell '${id}'`);
    return e;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates a run directory for a validated experiment: experiment.json, run.json (every cell pending) and
 * cells/<id>/cell.json with the profile JSON copied in. `dir` must not exist or be empty. Locks the run.
 */
export function createRun(dir: string, experiment: Experiment, meta: RunMeta): RunStore {
  const root = resolve(dir);
  if (existsSync(root)) {
    if (!statSync(root).isDirectory())
      throw new UserError('exists and is not a folder', { file: dir, expected: 'a new run directory' });
    const kind = outputKindOf(root);
    if (kind === 'checkpoint' || kind === 'export') {
      throw new UserError(
        `holds ${kind === 'checkpoint' ? 'a training checkpoint' : 'an integer export'}, not a run; a run directory would destroy it`,
        {
          file: dir,
          field: '--out',
          expected: 'a new or empty directory',
        },
      );
    }
    if (readdirSync(root).length > 0) {
      throw new UserError('the run directory already exists and is not empty', {
        file: dir,
        expected: existsSync(join(root, 'run.json'))
          ? 'a new directory, or --resume to continue this run'
          : 'a new or empty directory',
      });
    }
  }
  const all = experimentCells(experiment);
  const profileJson = new Map<string, unknown>();
  for (const c of all) {
    if (!profileJson.has(c.profile.path)) {
      if (!existsSync(c.profile.path))
        throw new UserError(`profile '${c.profile.spec}' not found`, { file: c.profile.path });
      profileJson.set(c.profile.path, readJsonFile(c.profile.path));
    }
  }
  // one level at a time, so an impossible parent (read-only, /proc) fails at once naming the path
  makeDirs(root, '--out');
  checkWritableDir(root, '--out');
  mkdirSync(join(root, 'cells'), { recursive: true });
  const now = new Date().toISOString();
  const info: RunInfo = {
    format: RUN_FORMAT,
    formatVersion: RUN_FORMAT_VERSION,
    name: experiment.name,
    created: now,
    updated: now,
    versions: { bitalloc: VERSION, tfjs: meta.tfjs, tfjsNode: meta.tfjsNode ?? null, node: process.versions.node },
    backend: meta.backend,
    platform: `${process.platform}-${process.arch}`,
    hostname: hostname(),
    cwd: process.cwd(),
    command: meta.command ?? defaultCommand(),
    resumes: [],
    cells: all.map((c) => ({
      id: c.id,
      agent: c.agent.label,
      profile: c.profile.id,
      budget: c.budget.id,
      seed: c.seed,
      status: 'pending',
    })),
  };
  const run = new RunStore(root, experiment, info, false);
  run.acquireLock();
  writeJsonAtomic(join(root, 'experiment.json'), experiment);
  info.experimentSha256 = sha256File(join(root, 'experiment.json'));
  info.experimentRecorded = JSON.parse(JSON.stringify(experiment)) as unknown;
  for (const c of all) {
    const cellDir = join(root, 'cells', c.id);
    mkdirSync(cellDir, { recursive: true });
    const file: CellFile = {
      id: c.id,
      index: c.index,
      agent: { ...c.agent, resolvedOptions: resolvedAgentOptions(c.agent) },
      profile: {
        id: c.profile.id,
        spec: c.profile.spec,
        path: c.profile.path,
        builtin: c.profile.builtin,
        json: profileJson.get(c.profile.path),
      },
      budget: { id: c.budget.id, constraints: c.budget.constraints },
      seed: c.seed,
      model: experiment.model,
      dataset: experiment.dataset,
      ...(experiment.dataDir !== undefined ? { dataDir: experiment.dataDir } : {}),
      constraintMode: experiment.constraintMode,
      stepMode: experiment.stepMode,
      reward: experiment.reward,
      bitChoices: experiment.bitChoices,
      episodes: experiment.episodes,
      qatSteps: experiment.qatSteps,
      warmupEpochs: experiment.warmupEpochs,
      finetuneEpochs: experiment.finetuneEpochs,
      evalSamples: experiment.evalSamples,
      pinFirstLast: experiment.pinFirstLast,
    };
    writeJsonAtomic(join(cellDir, 'cell.json'), file);
  }
  writeJsonAtomic(run.runJsonPath, info);
  return run;
}

function defaultCommand(): string[] {
  return ['bitalloc', ...process.argv.slice(2)];
}

/**
 * Opens an existing run: checks run.json and experiment.json (a directory that is not a run is a UserError).
 * For writing (resume) it validates the experiment again, checks that its cells match run.json, takes the
 * lock, turns `running` cells back to `pending` and removes temp files left by a crash.
 */
export function openRun(dir: string, opts: OpenRunOptions = {}): RunStore {
  const root = resolve(dir);
  if (!existsSync(root))
    throw new UserError('run directory not found', { file: dir, expected: 'a directory created by `bitalloc run`' });
  if (!statSync(root).isDirectory()) throw new UserError('not a directory', { file: dir, expected: 'a run directory' });
  const runJson = join(root, 'run.json');
  if (!existsSync(runJson)) {
    throw new UserError('not a bitalloc run directory (no run.json)', {
      file: dir,
      expected: 'a directory created by `bitalloc run`',
    });
  }
  const info = checkRunInfo(readJsonFile(runJson), runJson);
  const expPath = join(root, 'experiment.json');
  if (!existsSync(expPath))
    throw new UserError('run directory without experiment.json', { file: dir, expected: 'a complete run directory' });
  const rawExp = readJsonFile(expPath);
  let experiment: Experiment;
  if (opts.readOnly) {
    if (!rawExp || typeof rawExp !== 'object' || typeof (rawExp as { name?: unknown }).name !== 'string') {
      throw new UserError('not an experiment', {
        file: expPath,
        field: '$.name',
        expected: 'the resolved experiment of the run',
      });
    }
    experiment = rawExp as Experiment;
  } else {
    experiment = validateExperiment(rawExp, { file: expPath });
    const expected = experimentCells(experiment).map((c) => c.id);
    const actual = info.cells.map((c) => c.id);
    if (expected.join('\n') !== actual.join('\n')) {
      throw new UserError('run.json and experiment.json disagree on the cells', {
        file: runJson,
        field: '$.cells',
        expected: `the cells of experiment.json: ${expected.join(', ')}`,
      });
    }
    checkExperimentUnchanged(info, expPath, rawExp);
  }
  const run = new RunStore(root, experiment, info, Boolean(opts.readOnly));
  if (!opts.readOnly) {
    // a damaged result file is found now, not after another episode has run
    for (const c of run.cells) checkCellResults(c);
    run.acquireLock();
    removeStaleTemps(root);
    for (const c of run.cells) {
      removeStaleTemps(c.dir);
      if (!existsSync(join(c.dir, 'cell.json')))
        throw new UserError('cell folder without cell.json', { file: c.dir, expected: 'a complete run directory' });
    }
    for (const e of info.cells) {
      if (e.status === 'running') {
        e.status = 'pending';
        delete e.finishedAt;
      }
    }
    info.resumes.push({ at: new Date().toISOString(), command: opts.command ?? defaultCommand() });
    info.updated = new Date().toISOString();
    writeJsonAtomic(runJson, info);
  }
  return run;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Leaf-by-leaf differences between two JSON values, as `$.path: a -> b` lines. */
function jsonDifferences(a: unknown, b: unknown, path = '$', out: string[] = []): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) jsonDifferences(a[k], b[k], Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`, out);
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b))
    out.push(
      `${path}: ${a === undefined ? '(absent)' : JSON.stringify(a)} when the run was created, now ${b === undefined ? '(absent)' : JSON.stringify(b)}`,
    );
  return out;
}

/** A resume refuses an experiment.json edited after the run was created, naming every changed field. */
function checkExperimentUnchanged(info: RunInfo, expPath: string, rawExp: unknown): void {
  if (!info.experimentSha256) return; // runs made before the hash was recorded
  if (sha256File(expPath) === info.experimentSha256) return;
  const diff = info.experimentRecorded !== undefined ? jsonDifferences(info.experimentRecorded, rawExp) : [];
  throw new UserError(
    'experiment.json was edited after the run was created; a resume continues the run exactly as it started',
    {
      file: expPath,
      expected:
        'the experiment.json of the run unchanged (start a new run with `bitalloc run FILE` for a changed experiment)',
      problems:
        diff.length > 0
          ? diff
          : ['the file differs from the one recorded (sha256 in run.json $.experimentSha256), e.g. in formatting only'],
    },
  );
}

/** best.json and final.json of a cell, if present, must be intact records. */
function checkCellResults(c: CellStore): void {
  if (existsSync(c.bestPath)) {
    const problem = episodeRecordProblem(readJsonFile(c.bestPath));
    if (problem)
      throw new UserError(`not an episode record: ${problem}`, {
        file: c.bestPath,
        expected: 'the best episode as written by the search',
      });
  }
  if (existsSync(c.finalPath)) {
    const f = readJsonFile(c.finalPath) as Partial<FinalRecord> | null;
    if (!f || typeof f !== 'object' || typeof f.testAccuracy !== 'number' || !Array.isArray(f.bits)) {
      throw new UserError('not a final record', {
        file: c.finalPath,
        field: '$.testAccuracy',
        expected: 'the final record written by the search',
      });
    }
  }
}

function checkRunInfo(raw: unknown, file: string): RunInfo {
  const problems: string[] = [];
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new UserError('run.json must be an object', { file, field: '$' });
  const r = raw as Record<string, unknown>;
  if (r['format'] !== RUN_FORMAT) {
    throw new UserError(`not a bitalloc run (format ${JSON.stringify(r['format'])})`, {
      file,
      field: '$.format',
      expected: `"${RUN_FORMAT}"`,
    });
  }
  if (typeof r['formatVersion'] !== 'number' || r['formatVersion'] > RUN_FORMAT_VERSION) {
    throw new UserError(`run format version ${String(r['formatVersion'])} is not supported by bitalloc ${VERSION}`, {
      file,
      field: '$.formatVersion',
      expected: `<= ${RUN_FORMAT_VERSION}`,
    });
  }
  if (typeof r['name'] !== 'string') problems.push('$.name: must be a string');
  if (!Array.isArray(r['cells'])) problems.push('$.cells: must be an array');
  else {
    (r['cells'] as unknown[]).forEach((c, i) => {
      const e = c as Partial<RunCellEntry> | null;
      if (!e || typeof e !== 'object') return problems.push(`$.cells[${i}]: must be an object`);
      if (typeof e.id !== 'string' || !/^[A-Za-z0-9._+-]+$/.test(e.id))
        problems.push(`$.cells[${i}].id: must be a cell id`);
      if (!CELL_STATUSES.includes(e.status as CellStatus))
        problems.push(`$.cells[${i}].status: must be one of ${CELL_STATUSES.join(', ')}`);
      if (typeof e.seed !== 'number') problems.push(`$.cells[${i}].seed: must be a number`);
      return undefined;
    });
  }
  if (problems.length) throw new UserError('invalid run.json', { file, problems });
  const info = raw as RunInfo;
  info.resumes ??= [];
  return info;
}

// ---------------------------------------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------------------------------------

export class CellStore {
  readonly dir: string;
  private lastEpisode: number | null = null;
  private best: EpisodeRecord | null | undefined = undefined;
  private fileCache: CellFile | null = null;

  constructor(
    readonly run: RunStore,
    readonly id: string,
  ) {
    this.dir = join(run.dir, 'cells', id);
  }

  get status(): CellStatus {
    return this.run.entry(this.id).status;
  }

  setStatus(status: CellStatus, opts: { error?: string } = {}): void {
    this.run.setCellStatus(this.id, status, opts);
  }

  get episodesPath(): string {
    return join(this.dir, 'episodes.jsonl');
  }
  get checkpointDir(): string {
    return join(this.dir, 'checkpoint');
  }
  get bestPath(): string {
    return join(this.dir, 'best.json');
  }
  get finalPath(): string {
    return join(this.dir, 'final.json');
  }
  get uniformPath(): string {
    return join(this.dir, 'uniform.json');
  }

  /** cell.json as written by createRun. */
  get file(): CellFile {
    this.fileCache ??= readJsonFile(join(this.dir, 'cell.json')) as CellFile;
    return this.fileCache;
  }

  /** The cell as the search needs it: agent spec, profile (id, path), budget with parsed constraints, seed. */
  get spec(): Cell {
    const f = this.file;
    return {
      id: f.id,
      index: f.index,
      agent: f.agent,
      profile: { spec: f.profile.spec, id: f.profile.id, path: f.profile.path, builtin: f.profile.builtin },
      budget: budgetRef(f.budget.constraints),
      seed: f.seed,
    };
  }

  /** Episodes recorded so far (reads the file once, then tracks appends). */
  episodeCount(): number {
    if (this.lastEpisode === null)
      this.lastEpisode = readEpisodes(this, { repair: !this.run.readOnly }).episodes.length;
    return this.lastEpisode;
  }

  /** @internal */
  noteEpisodes(n: number): void {
    this.lastEpisode = n;
  }

  /** The best feasible episode so far, from best.json. */
  readBest(): EpisodeRecord | null {
    if (this.best === undefined)
      this.best = existsSync(this.bestPath) ? (readJsonFile(this.bestPath) as EpisodeRecord) : null;
    return this.best;
  }

  /** Keeps `record` as best.json when it is feasible and beats the current best. Returns true when it did. */
  offerBest(record: EpisodeRecord): boolean {
    this.run.assertWritable();
    if (!isBetterEpisode(record, this.readBest())) return false;
    writeJsonAtomic(this.bestPath, record);
    this.best = record;
    return true;
  }

  writeFinal(record: FinalRecord): void {
    this.run.assertWritable();
    writeJsonAtomic(this.finalPath, record);
  }

  readFinal(): FinalRecord | null {
    return existsSync(this.finalPath) ? (readJsonFile(this.finalPath) as FinalRecord) : null;
  }

  writeUniform(points: UniformPoint[]): void {
    this.run.assertWritable();
    writeJsonAtomic(this.uniformPath, { points });
  }

  readUniform(): UniformPoint[] {
    if (!existsSync(this.uniformPath)) return [];
    const raw = readJsonFile(this.uniformPath) as { points?: unknown };
    if (!Array.isArray(raw.points))
      throw new UserError('must hold { "points": [...] }', { file: this.uniformPath, field: '$.points' });
    return raw.points as UniformPoint[];
  }
}

/**
 * The one definition of the best episode (best.json, the search's final allocation, the reports' best-so-far
 * curves): feasible, evaluated, and more accurate than `current` (ties: lower latency).
 */
export function isBetterEpisode(candidate: EpisodeRecord, current: EpisodeRecord | null): boolean {
  if (!candidate.feasible || candidate.accuracy === null || !Number.isFinite(candidate.accuracy)) return false;
  if (!current || current.accuracy === null) return true;
  if (candidate.accuracy !== current.accuracy) return candidate.accuracy > current.accuracy;
  return candidate.latencyMs < current.latencyMs;
}

// ---------------------------------------------------------------------------------------------------------
// Episodes
// ---------------------------------------------------------------------------------------------------------

const NUMERIC_FIELDS = ['latencyMs', 'energyUj', 'sizeBytes', 'peakMemoryBytes', 'reward', 'wallMs'] as const;

/** Why a parsed line is not an episode record, or null when it is one. */
export function episodeRecordProblem(v: unknown): string | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
  const r = v as Record<string, unknown>;
  if (typeof r['episode'] !== 'number' || !Number.isInteger(r['episode']) || r['episode'] < 1)
    return 'episode must be an integer >= 1';
  if (
    !Array.isArray(r['bits']) ||
    !r['bits'].every(
      (b) =>
        b &&
        typeof b === 'object' &&
        Number.isInteger((b as LayerBits).wBits) &&
        Number.isInteger((b as LayerBits).aBits),
    )
  ) {
    return 'bits must be an array of { wBits, aBits }';
  }
  for (const k of ['accuracy', 'loss']) {
    if (r[k] !== null && typeof r[k] !== 'number') return `${k} must be a number or null`;
  }
  for (const k of NUMERIC_FIELDS) if (typeof r[k] !== 'number') return `${k} must be a number`;
  if (typeof r['feasible'] !== 'boolean') return 'feasible must be true or false';
  return null;
}

/**
 * Appends one episode line and fsyncs it. Episodes must come in order (1, 2, 3, ...): appending episode n
 * when the file holds a different count is a programming error (e.g. a resume that did not truncate).
 */
export function appendEpisode(cell: CellStore, record: EpisodeRecord): void {
  cell.run.assertWritable();
  const problem = episodeRecordProblem(record);
  if (problem) throw new TypeError(`appendEpisode(${cell.id}): ${problem}`);
  const have = cell.episodeCount();
  if (record.episode !== have + 1) {
    throw new Error(
      `appendEpisode(${cell.id}): episode ${record.episode} but the file holds ${have} episodes (next is ${have + 1})`,
    );
  }
  const line = JSON.stringify(record) + '\n';
  if (!existsSync(cell.dir)) mkdirSync(cell.dir, { recursive: true });
  const fd = openSync(cell.episodesPath, 'a');
  try {
    writeSync(fd, line);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  cell.noteEpisodes(record.episode);
}

export interface EpisodesRead {
  episodes: EpisodeRecord[];
  /** The torn last line that was dropped (1-based line number and its text), if any. */
  dropped: { line: number; text: string } | null;
}

/**
 * Reads episodes.jsonl. A torn last line (no newline at the end, or invalid JSON on the last line) is
 * dropped with a warning and, with `repair` (the default), cut off the file so appends continue cleanly.
 * Anything wrong before the last line (invalid JSON, not an episode, episodes out of order) is a UserError
 * naming the file and the line.
 */
export function readEpisodes(cellOrPath: CellStore | string, opts: { repair?: boolean } = {}): EpisodesRead {
  const path = typeof cellOrPath === 'string' ? cellOrPath : cellOrPath.episodesPath;
  const repair = opts.repair ?? true;
  if (!existsSync(path)) return { episodes: [], dropped: null };
  const buf = readFileSync(path);
  const text = buf.toString('utf8');
  const parts = text.split('\n');
  const tail = parts.pop() as string; // text after the last newline ('' when the file ends with one)
  const episodes: EpisodeRecord[] = [];
  let dropped: EpisodesRead['dropped'] = null;
  let goodBytes = 0;
  for (let i = 0; i < parts.length; i++) {
    const lineText = parts[i];
    const isLast = i === parts.length - 1 && tail === '';
    let value: unknown;
    try {
      value = JSON.parse(lineText) as unknown;
    } catch {
      if (isLast) {
        dropped = { line: i + 1, text: lineText };
        break;
      }
      throw new UserError(`line ${i + 1} is not valid JSON`, {
        file: path,
        expected: 'one JSON episode record per line',
      });
    }
    const problem = episodeRecordProblem(value);
    if (problem) throw new UserError(`line ${i + 1} is not an episode record: ${problem}`, { file: path });
    const rec = value as EpisodeRecord;
    if (rec.episode !== episodes.length + 1) {
      throw new UserError(`line ${i + 1} holds episode ${rec.episode}, expected episode ${episodes.length + 1}`, {
        file: path,
        expected: 'consecutive episodes from 1',
      });
    }
    episodes.push(rec);
    goodBytes += Buffer.byteLength(lineText, 'utf8') + 1;
  }
  if (tail !== '') dropped ??= { line: parts.length + 1, text: tail };
  if (dropped) {
    log.warn(
      `${path}: dropped a torn last line (line ${dropped.line}, ${Buffer.byteLength(dropped.text)} bytes)${repair ? '; file repaired' : ''}`,
    );
    if (repair) truncateFile(path, goodBytes);
  }
  if (typeof cellOrPath !== 'string' && (repair || !dropped)) cellOrPath.noteEpisodes(episodes.length);
  return { episodes, dropped };
}

/** Keeps the first `keep` episodes (e.g. on resume, those up to the last checkpoint); rewrites the file atomically. */
export function truncateEpisodes(cell: CellStore, keep: number): void {
  cell.run.assertWritable();
  const { episodes } = readEpisodes(cell);
  if (keep >= episodes.length) return;
  writeTextAtomic(
    cell.episodesPath,
    episodes
      .slice(0, keep)
      .map((e) => JSON.stringify(e) + '\n')
      .join(''),
  );
  cell.noteEpisodes(keep);
}

function truncateFile(path: string, size: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, size);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------------------

const CHECKPOINT_MARK = 'checkpoint.json';

function checkpointTarget(c: CellStore | string): string {
  return typeof c === 'string' ? resolve(c) : c.checkpointDir;
}

/**
 * Writes a checkpoint directory atomically. `write(dir)` puts the search's files (network weights, ...)
 * into a fresh `<checkpoint>.tmp-<pid>` folder; then `checkpoint.json` (the state, which marks the folder
 * complete) is written, everything is fsynced, the old checkpoint is renamed to `<checkpoint>.old-<pid>`, the
 * new one renamed in, and the old one removed. A crash at any point leaves the old or the new checkpoint
 * readable by loadCheckpoint. `checkpoint.json` is reserved.
 */
export async function saveCheckpoint(
  target: CellStore | string,
  state: CheckpointState,
  write?: (dir: string) => void | Promise<void>,
): Promise<void> {
  if (typeof target !== 'string') target.run.assertWritable();
  const dir = checkpointTarget(target);
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    if (write) await write(tmp);
    writeJsonAtomic(join(tmp, CHECKPOINT_MARK), { savedAt: new Date().toISOString(), state });
    fsyncTree(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  fsyncDir(parent);
  rmSync(old, { recursive: true, force: true });
}

export interface LoadedCheckpoint {
  /** The checkpoint folder (files written by the search are here). */
  dir: string;
  state: CheckpointState;
  savedAt: string;
}

/**
 * Reads the checkpoint, or null when there is none. Recovers from a crash inside saveCheckpoint: when the
 * folder is missing but a complete new (`.tmp-*`) or old (`.old-*`) one is next to it, that one is renamed
 * into place (newest complete first). Incomplete leftovers are removed unless `readOnly`.
 */
export function loadCheckpoint(target: CellStore | string, opts: { readOnly?: boolean } = {}): LoadedCheckpoint | null {
  const dir = checkpointTarget(target);
  const readOnly = opts.readOnly ?? (typeof target !== 'string' && target.run.readOnly);
  const parent = dirname(dir);
  const name = basename(dir);
  const siblings = existsSync(parent)
    ? readdirSync(parent).filter((f) => f.startsWith(`${name}.tmp-`) || f.startsWith(`${name}.old-`))
    : [];
  let chosen: string | null = null;
  if (existsSync(join(dir, CHECKPOINT_MARK))) chosen = dir;
  else {
    // a crash between the two renames: prefer a complete new one, else the old one
    const complete = siblings
      .map((f) => join(parent, f))
      .filter((p) => existsSync(join(p, CHECKPOINT_MARK)))
      .map((p) => ({ p, isNew: p.includes('.tmp-'), savedAt: markSavedAt(p) }))
      .sort((a, b) => (a.isNew !== b.isNew ? (a.isNew ? -1 : 1) : b.savedAt.localeCompare(a.savedAt)));
    const pick = complete[0];
    if (pick) {
      if (readOnly) chosen = pick.p;
      else {
        if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
        renameSync(pick.p, dir);
        fsyncDir(parent);
        log.warn(`${dir}: recovered the checkpoint from ${basename(pick.p)} after an interrupted save`);
        chosen = dir;
      }
    } else if (existsSync(dir)) {
      throw new UserError('checkpoint folder without checkpoint.json (incomplete)', {
        file: dir,
        expected: 'a checkpoint written by saveCheckpoint',
      });
    }
  }
  if (!readOnly) {
    for (const f of siblings) {
      const p = join(parent, f);
      if (p !== chosen && existsSync(p)) rmSync(p, { recursive: true, force: true });
    }
  }
  if (!chosen) return null;
  const mark = readJsonFile(join(chosen, CHECKPOINT_MARK)) as { savedAt?: string; state?: CheckpointState };
  if (!mark.state || typeof mark.state.episode !== 'number') {
    throw new UserError('checkpoint.json without a state', {
      file: join(chosen, CHECKPOINT_MARK),
      field: '$.state.episode',
      expected: 'a number',
    });
  }
  return { dir: chosen, state: mark.state, savedAt: mark.savedAt ?? '' };
}

function markSavedAt(dir: string): string {
  try {
    const m = JSON.parse(readFileSync(join(dir, CHECKPOINT_MARK), 'utf8')) as { savedAt?: string };
    return m.savedAt ?? '';
  } catch {
    return '';
  }
}

function fsyncTree(dir: string): void {
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    if (f.isDirectory()) fsyncTree(p);
    else if (f.isFile()) {
      const fd = openSync(p, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  }
  fsyncDir(dir);
}

// ---------------------------------------------------------------------------------------------------------
// Stopping on a signal
// ---------------------------------------------------------------------------------------------------------

let stopReason: string | null = null;
const stopListeners = new Set<(reason: string) => void>();

/** Asks every search loop of this thread to stop after its current episode (and checkpoint there). */
export function requestStop(reason: string): void {
  if (stopReason !== null) return;
  stopReason = reason;
  for (const l of stopListeners) l(reason);
}

/** Why a stop was requested (e.g. 'SIGTERM'), or null. */
export function stopRequested(): string | null {
  return stopReason;
}

/** Calls `listener` when a stop is requested; returns the function that removes it. */
export function onStopRequest(listener: (reason: string) => void): () => void {
  stopListeners.add(listener);
  return () => stopListeners.delete(listener);
}

/**
 * While `run` is being written: the first SIGINT/SIGTERM asks the search to finish the episode, checkpoint and
 * stop (the caller then releases the lock and says how to resume); a second one releases the lock and exits at
 * once (the last checkpoint still resumes). Returns the function that removes the handlers.
 */
export function installStopSignals(run: RunStore): () => void {
  const handler = (signal: NodeJS.Signals): void => {
    if (stopReason === null) {
      log.warn(
        `${signal}: finishing the current episode, then checkpointing and stopping (send ${signal} again to stop at once)`,
      );
      requestStop(signal);
      return;
    }
    run.close();
    process.stderr.write(
      `stopped at once by a second ${signal}; resume from the last checkpoint with: bitalloc run --resume ${run.dir}\n`,
    );
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** The exit code of a process stopped by `signal` (128 + its number). */
export function signalExitCode(signal: string): number {
  return signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1;
}
