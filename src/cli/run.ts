/**
 * `bitalloc search` (one agent, one profile, one budget from flags), `bitalloc run FILE` (every cell of an
 * experiment into a run directory; `--resume DIR` continues a killed run) and `bitalloc compare FILE`
 * (run, then report).
 */
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { backendInfo } from '../backend/index.js';
import { checkDatasetAvailable } from '../data/index.js';
import { isUserError, UserError } from '../errors.js';
import { addLogFile, log, removeLogTransport } from '../log.js';
import { writeReport, REPORT_FORMATS } from '../report/index.js';
import {
  AGENT_NAMES,
  CONSTRAINT_MODES,
  EXPERIMENT_DEFAULTS as D,
  REWARD_KINDS,
  STEP_MODES,
  cells,
  defaultRunDir,
  loadExperiment,
  validateExperiment,
  type Experiment,
} from '../experiment/experiment.js';
import {
  createRun,
  installStopSignals,
  openRun,
  signalExitCode,
  stopRequested,
  type RunStore,
} from '../run/run-store.js';
import { runPendingCells, specForCell, type CellOutcome } from '../search/runner.js';
import { runSearch, type SearchResult } from '../search/search.js';
import { formatDuration } from '../util/progress.js';
import { DEFAULT_PREFIX, connectQueue, runCellsOnQueue, type QueueTarget } from '../queue/index.js';
import { defaultThreads, threadsFlag } from '../train/parallel.js';
import { EVAL_BACKENDS } from '../onnx/eval-backend.js';
import { fractionFlagValues, splitFractionOptions } from './fraction-flags.js';
import { formatTable, printJson, printText } from './output.js';
import type { CliCommand, CommandArgs } from './types.js';
import {
  checkFractionRanges,
  checkSplitFractions,
  fractionOptions,
  type SplitFractions,
} from '../experiment/split-fractions.js';

function runMeta(): { backend: string; tfjs: string; tfjsNode: string | null } {
  const b = backendInfo();
  return { backend: b?.name ?? 'unknown', tfjs: b?.versions.tfjs ?? 'unknown', tfjsNode: b?.versions.tfjsNode ?? null };
}

/** Above this many episodes a run takes days on two cores: say so before it starts. */
export const MANY_EPISODES = 10_000;

export function warnEpisodes(episodes: number): void {
  if (episodes > MANY_EPISODES) {
    log.warn(
      `episodes: ${episodes} is far beyond what searches need (tens to a few thousand); at a few seconds per episode this runs for ${formatDuration(episodes * 2)} or more. Stop it with Ctrl-C (it checkpoints and resumes).`,
    );
  }
}

function workersFlag(args: CommandArgs): number {
  const w = args['workers'] as number;
  if (!Number.isInteger(w) || w < 1 || w > 64)
    throw new UserError(`must be an integer 1..64, got ${String(w)}`, { field: '--workers' });
  return w;
}

/** --val-fraction / --test-fraction as given (range-checked; the sum and the dataset are checked with the experiment). */
function fractionFlags(args: CommandArgs): SplitFractions {
  const f = fractionFlagValues(args);
  checkFractionRanges(f);
  return f;
}

/** The names to report: a flag for a value given as one, the experiment field for one from the file. */
function flagsOrFields(flags: SplitFractions): { val: string; test: string } {
  return {
    val: flags.valFraction !== undefined ? '--val-fraction' : '$.valFraction',
    test: flags.testFraction !== undefined ? '--test-fraction' : '$.testFraction',
  };
}

/** Opens (resume) or creates the run directory of an experiment. */
function openOrCreate(args: CommandArgs, workers = 1): RunStore {
  const threads = threadsFlag(args['threads']);
  const resumeDir = args['resume'] as string | undefined;
  const file = args['file'] as string | undefined;
  const sets = [...((args['set'] as string[] | undefined) ?? [])];
  const evalBackend = args['eval-backend'] as string | undefined;
  if (evalBackend !== undefined) {
    if (resumeDir)
      throw new UserError('--eval-backend cannot change a run being resumed (its experiment.json is fixed)', {
        field: '--eval-backend',
      });
    sets.push(`evalBackend=${evalBackend}`);
  }
  const fractions = fractionFlags(args);
  if (Object.keys(fractions).length > 0 && resumeDir)
    throw new UserError(
      '--val-fraction and --test-fraction cannot change a run being resumed (its experiment.json is fixed)',
      {
        field: fractions.valFraction !== undefined ? '--val-fraction' : '--test-fraction',
      },
    );

  if (resumeDir) {
    if (sets.length > 0)
      throw new UserError('--set cannot change a run being resumed (its experiment.json is fixed)', { field: '--set' });
    const store = openRun(resumeDir);
    const started = store.experiment.threads ?? 1;
    if (threads !== undefined && threads !== started) {
      throw new UserError(
        `the run in ${resumeDir} trains on ${started} thread${started === 1 ? '' : 's'}; a resumed run keeps that count to continue bit-identically`,
        {
          field: '--threads',
          expected: `${started} or no --threads`,
        },
      );
    }
    if (file) {
      const exp = loadExperiment(file);
      if (exp.name !== store.experiment.name) {
        throw new UserError(`the run in ${resumeDir} is of experiment '${store.experiment.name}', not '${exp.name}'`, {
          file,
          field: '$.name',
        });
      }
    }
    checkDatasetAvailable(store.experiment.dataset, store.experiment.dataDir);
    log.info(`resuming ${store.dir}: ${store.pendingCells().length} of ${store.cells.length} cells left`);
    return store;
  }
  if (!file)
    throw new UserError('name an experiment file, or --resume DIR', {
      field: 'FILE',
      expected: 'e.g. experiments/quickstart.json',
    });
  // the flags' names in any problem with them (the experiment's dataset decides whether a test fraction applies)
  const fromFile = loadExperiment(file, sets);
  const loaded: Experiment = { ...fromFile, ...fractions };
  if (Object.keys(fractions).length > 0)
    checkSplitFractions(
      fractionOptions({ valFraction: loaded.valFraction, testFraction: loaded.testFraction }),
      loaded.dataset,
      flagsOrFields(fractions),
    );
  checkDatasetAvailable(loaded.dataset, loaded.dataDir); // one message now, not one per cell after the warm-up
  warnEpisodes(loaded.episodes);
  // the run dir's experiment.json records the thread count, so that --resume continues with it
  const exp: Experiment = { ...loaded, threads: threads ?? loaded.threads ?? defaultThreads(workers) };
  const dir = (args['out'] as string | undefined) ?? defaultRunDir(exp);
  return createRun(dir, exp, runMeta());
}

/** One row per cell of the run, from what this command ran and, for the other cells, from the run directory. */
function cellSummaries(store: RunStore, outcomes: CellOutcome[]): CellSummary[] {
  return store.cells.map((c) => {
    const o = outcomes.find((x) => x.id === c.id);
    const r = o?.result;
    if (o && (!o.ok || !r))
      return {
        id: c.id,
        status: 'failed',
        episodes: c.episodeCount(),
        bestAccuracy: null,
        testAccuracy: null,
        latencyMs: null,
        wallSeconds: null,
        ranNow: true,
        error: o.error,
      };
    if (r) {
      return {
        id: c.id,
        status: r.interrupted ? 'stopped' : 'done',
        episodes: r.episodes,
        bestAccuracy: r.best?.accuracy ?? null,
        testAccuracy: r.final?.testAccuracy ?? null,
        latencyMs: r.best?.latencyMs ?? null,
        wallSeconds: r.wallSeconds,
        ranNow: true,
      };
    }
    const best = c.readBest();
    const final = c.readFinal();
    return {
      id: c.id,
      status: c.status,
      episodes: c.episodeCount(),
      bestAccuracy: best?.accuracy ?? null,
      testAccuracy: final?.testAccuracy ?? null,
      latencyMs: (final ?? best)?.latencyMs ?? null,
      wallSeconds: final?.wallSeconds ?? null,
      ranNow: false,
    };
  });
}

interface CellSummary {
  id: string;
  /** done | stopped (this command, by a signal or --stop-after) | failed | pending | running */
  status: string;
  episodes: number;
  bestAccuracy: number | null;
  testAccuracy: number | null;
  latencyMs: number | null;
  /** The cell's own wall time (search + fine-tune, every session), seconds. */
  wallSeconds: number | null;
  /** False when the cell was finished by an earlier command (its results are read from the run directory). */
  ranNow: boolean;
  error?: string;
}

function summaryRows(rows: CellSummary[]): (string | number)[][] {
  return rows.map((r) => [
    r.id,
    r.status === 'done'
      ? `${r.episodes}${r.ranNow ? '' : ' (earlier)'}`
      : r.status === 'stopped'
        ? `stopped at ${r.episodes}`
        : `${r.status} (${r.episodes})`,
    r.bestAccuracy !== null ? (100 * r.bestAccuracy).toFixed(2) : '-',
    r.testAccuracy !== null ? (100 * r.testAccuracy).toFixed(2) : '-',
    r.latencyMs !== null ? r.latencyMs.toPrecision(4) : '-',
    r.wallSeconds !== null ? formatDuration(r.wallSeconds) : '-',
  ]);
}

async function runExperimentCommand(args: CommandArgs, report: boolean): Promise<void> {
  const workers = workersFlag(args);
  // --queue: Redis is checked before the run directory is made (cells then run on `bitalloc worker`s)
  const queue: QueueTarget | null =
    args['queue'] !== undefined ? await connectQueue(args['queue'], args['prefix']) : null;
  const store = openOrCreate(args, workers);
  const logFile = addLogFile(store.logPath);
  const removeSignals = installStopSignals(store);
  const t0 = Date.now();
  let outcomes: CellOutcome[] = [];
  try {
    log.info(`run directory: ${store.dir}`);
    const stopAfter = args['stop-after'] as number | undefined;
    outcomes = queue
      ? await runCellsOnQueue(store, { target: queue, backend: backendInfo()?.requested ?? args.backend })
      : await runPendingCells(store, { workers, stopAfter });
  } finally {
    removeLogTransport(logFile);
    store.close();
    removeSignals();
  }
  const stoppedBy = stopRequested();
  const files: string[] = [];
  if (report && stoppedBy === null) files.push(...writeReport([store.dir], { formats: [...REPORT_FORMATS] }).files);
  const failed = outcomes.filter((o) => !o.ok);
  const summaries = cellSummaries(store, outcomes);
  const commandSeconds = (Date.now() - t0) / 1000;
  if (args.json) {
    printJson({
      runDir: store.dir,
      wallSeconds: commandSeconds,
      ...(stoppedBy !== null ? { stoppedBy } : {}),
      cells: summaries.map((c) => {
        const o = outcomes.find((x) => x.id === c.id);
        return { ...c, ok: c.status !== 'failed', ...(o?.result ? { result: o.result } : {}) };
      }),
      reports: files,
    });
  } else {
    printText(
      formatTable(
        ['cell', 'episodes', 'best val acc %', 'final test acc %', 'latency ms', 'cell wall'],
        summaryRows(summaries),
      ),
    );
    if (outcomes.length === 0)
      printText('every cell was already done: the results above are read from the run directory');
    printText(`run directory: ${store.dir} (this command: ${formatDuration(commandSeconds)})`);
    for (const f of files) printText(`wrote ${f}`);
  }
  if (stoppedBy !== null) {
    const left = store.pendingCells().length;
    process.stderr.write(
      `stopped by ${stoppedBy}: ${left} of ${store.cells.length} cell${store.cells.length === 1 ? '' : 's'} unfinished, checkpoints saved, run.lock released.\n` +
        `resume with: bitalloc ${report ? 'compare' : 'run'} --resume ${store.dir}\n`,
    );
    process.exitCode = signalExitCode(stoppedBy);
    return;
  }
  if (failed.length > 0) {
    throw new UserError(
      `${failed.length} of ${outcomes.length} cells failed: ${failed.map((f) => `${f.id}: ${f.error}`).join('; ')}`,
    );
  }
}

export const runCommand: CliCommand = {
  command: 'run [file]',
  describe: 'Run every (agent, profile, budget, seed) cell of an experiment file into a run directory',
  builder: (y) =>
    splitFractionOptions(y, true)
      .positional('file', { type: 'string', describe: 'experiment JSON (see experiments/)' })
      .option('set', {
        type: 'string',
        array: true,
        describe: 'override a field: --set episodes=20 --set agents=["ppo","random"]',
      })
      .option('out', { type: 'string', describe: 'run directory (default runs/<experiment>-<timestamp>)' })
      .option('resume', { type: 'string', describe: 'continue a killed or stopped run from its last checkpoints' })
      .option('workers', { type: 'number', default: 1, describe: 'cells run in parallel on worker threads' })
      .option('queue', {
        type: 'string',
        describe: 'run the cells as jobs on Redis (redis://HOST:PORT, rediss:// for TLS) for `bitalloc worker`s',
      })
      .option('prefix', {
        type: 'string',
        default: DEFAULT_PREFIX,
        describe: 'Redis key prefix of the queue (with --queue)',
      })
      .option('threads', {
        type: 'number',
        describe: "threads of each cell's training (default: the experiment's, else cores / workers)",
      })
      .option('eval-backend', {
        choices: EVAL_BACKENDS,
        describe: "engine of the forward passes (sets the experiment's evalBackend): auto | onnxruntime | tfjs",
      })
      .option('stop-after', { type: 'number', hidden: true }),
  handler: (args) => runExperimentCommand(args, false),
};

export const compareCommand: CliCommand = {
  command: 'compare [file]',
  describe: 'Run an experiment, then write report.html, report.md and episodes.csv into its run directory',
  builder: runCommand.builder,
  handler: (args) => runExperimentCommand(args, true),
};

function resultText(r: SearchResult): string {
  const lines: string[] = [];
  lines.push(
    `${r.agent} on ${r.profile} (${r.model}/${r.dataset}, ${r.constraints.join(', ') || 'no budget'}), ${r.episodes} episodes, seed ${r.seed}, backend ${r.backend}`,
  );
  lines.push(
    `float: val ${(100 * r.reference.floatValAccuracy).toFixed(2)}%, test ${(100 * r.reference.floatTestAccuracy).toFixed(2)}%; W8A8 latency ${r.reference.w8a8LatencyMs.toPrecision(4)} ms`,
  );
  if (!r.best) {
    lines.push('no feasible allocation found');
    return lines.join('\n');
  }
  lines.push(
    formatTable(
      ['layer', 'wBits', 'aBits'],
      r.best.bits.map((b) => [b.name, b.wBits, b.aBits]),
    ),
  );
  lines.push(
    `best (episode ${r.best.episode}): val ${(100 * r.best.accuracy).toFixed(2)}%, latency ${r.best.latencyMs.toPrecision(4)} ms ` +
      `(${(r.best.latencyMs / r.reference.w8a8LatencyMs).toFixed(3)}x W8A8), energy ${r.best.energyUj.toPrecision(4)} uJ, size ${(r.best.sizeBytes / 1024).toFixed(1)} KB`,
  );
  if (r.final)
    lines.push(
      `after ${r.final.finetuneEpochs} fine-tune epochs: test accuracy ${(100 * r.final.testAccuracy).toFixed(2)}%`,
    );
  lines.push(
    `time: ${formatDuration(r.wallSeconds)}; agent+env+simulator ${(100 * r.timing.otherShare).toFixed(1)}% of episode time`,
  );
  return lines.join('\n');
}

/** JSON paths of the experiment `search` builds from its flags, and the flag each came from (longest first). */
const FLAG_OF_PATH: [string, string][] = [
  ['$.agents[0].options', '--agent-options'],
  ['$.agents[0].name', '--agent'],
  ['$.agents[0]', '--agent'],
  ['$.budgets[0]', '--budget'],
  ['$.profiles[0]', '--profile'],
  ['$.bitChoices', '--bits'],
  ['$.episodes', '--episodes'],
  ['$.qatSteps', '--qat-steps'],
  ['$.warmupEpochs', '--warmup-epochs'],
  ['$.finetuneEpochs', '--finetune-epochs'],
  ['$.evalSamples', '--eval-samples'],
  ['$.checkpointEvery', '--checkpoint-every'],
  ['$.batchSize', '--batch-size'],
  ['$.target', '--target'],
  ['$.seeds[0]', '--seed'],
  ['$.model', '--model'],
  ['$.dataset', '--dataset'],
  ['$.dataDir', '--data-dir'],
  ['$.threads', '--threads'],
  ['$.evalBackend', '--eval-backend'],
  ['$.stepMode', '--step-mode'],
  ['$.sharedWeights', '--shared-weights'],
  ['$.valFraction', '--val-fraction'],
  ['$.testFraction', '--test-fraction'],
];

/** A problem or warning about the experiment `search` builds, with the JSON path replaced by the flag's name. */
function flagOfPath(p: string): string {
  for (const [path, flag] of FLAG_OF_PATH)
    if (p.startsWith(path)) return flag + p.slice(path.length).replace(/^\[\d+\]/, '');
  return p;
}

export const searchCommand: CliCommand = {
  command: 'search',
  describe: 'Search one bit allocation: one agent, one device profile, one budget',
  builder: (y) =>
    splitFractionOptions(y)
      .option('model', { type: 'string', default: 'lenet5', describe: 'zoo model or path to a model.json' })
      .option('dataset', { type: 'string', default: 'mnist' })
      .option('data-dir', { type: 'string', describe: 'dataset directory' })
      .option('profile', {
        type: 'string',
        default: 'bitfusion-45nm',
        describe: 'device profile: built-in name or JSON file',
      })
      .option('agent', {
        type: 'string',
        default: 'ppo',
        describe: `${AGENT_NAMES.join(' | ')} (bitalloc agents lists their options)`,
      })
      .option('agent-options', {
        type: 'string',
        describe: 'agent hyperparameters as JSON, e.g. \'{"learningRate":0.001}\'',
      })
      .option('episodes', { type: 'number', default: D.episodes })
      .option('budget', {
        type: 'string',
        array: true,
        default: ['latency<=0.5x'],
        describe: 'constraint, e.g. latency<=0.5x, size<=200KB (repeatable)',
      })
      .option('constraint-mode', { choices: CONSTRAINT_MODES, default: D.constraintMode })
      .option('reward', { choices: REWARD_KINDS, default: D.reward.name })
      .option('step-mode', {
        type: 'string',
        default: D.stepMode,
        describe: `${STEP_MODES.join(' | ')} (two-step: weights, then activations; 'haq' is its deprecated spelling)`,
      })
      .option('bits', { type: 'string', default: D.bitChoices.join(','), describe: 'bit-widths to choose from' })
      .option('qat-steps', {
        type: 'number',
        default: D.qatSteps,
        describe: 'QAT minibatches per episode (0 = evaluate only)',
      })
      .option('warmup-epochs', { type: 'number', default: D.warmupEpochs })
      .option('finetune-epochs', { type: 'number', default: D.finetuneEpochs })
      .option('eval-samples', { type: 'number', default: D.evalSamples })
      .option('pin-first-last', { type: 'boolean', default: D.pinFirstLast })
      .option('checkpoint-every', { type: 'number', default: D.checkpointEvery })
      .option('threads', { type: 'number', describe: 'threads of the training steps (default: every core)' })
      .option('eval-backend', {
        choices: EVAL_BACKENDS,
        default: 'auto',
        describe: 'engine of the forward passes: auto = onnxruntime-node when it loads, else tfjs (QAT runs on tfjs)',
      })
      .option('batch-size', { type: 'number', describe: 'QAT minibatch (default 64; e.g. 8-32 for 224x224 networks)' })
      .option('target', {
        choices: ['accuracy', 'fidelity'],
        describe: 'fidelity: accuracy = top-1 agreement with the float network (default for label-free image folders)',
      })
      .option('distill', {
        type: 'boolean',
        describe: "QAT on the float network's soft targets (always for label-free data)",
      })
      .option('eval-cache', {
        type: 'boolean',
        describe:
          'reuse the result of an allocation already evaluated at the same weights (default true; only with --qat-steps 0)',
      })
      .option('shared-weights', {
        choices: ['carry', 'restore'],
        describe:
          "what each episode's QAT starts from: carry = the previous episodes' weights (default for zoo networks), restore = the weights the search started from, fresh optimizer (default for model files)",
      })
      .option('out', { type: 'string', describe: 'write a run directory (episodes, checkpoints, best, final) here' }),
  handler: async (args) => {
    let agentOptions: Record<string, unknown> = {};
    const rawOpts = args['agent-options'] as string | undefined;
    if (rawOpts !== undefined) {
      try {
        agentOptions = JSON.parse(rawOpts) as Record<string, unknown>;
      } catch {
        throw new UserError(`not valid JSON: ${rawOpts}`, {
          field: '--agent-options',
          expected: 'a JSON object, e.g. {"learningRate":0.001}',
        });
      }
      if (!agentOptions || typeof agentOptions !== 'object' || Array.isArray(agentOptions)) {
        throw new UserError('must be a JSON object', {
          field: '--agent-options',
          expected: 'e.g. {"learningRate":0.001}',
        });
      }
    }
    const searchFractions = fractionFlags(args);
    checkSplitFractions(searchFractions, typeof args['dataset'] === 'string' ? args['dataset'] : undefined);
    const bitsText = String(args['bits']);
    const bitChoices = bitsText.split(',').map((s) => Number(s.trim()));
    const raw = {
      name: 'search',
      model: args['model'],
      dataset: args['dataset'],
      ...(args['data-dir'] ? { dataDir: args['data-dir'] } : {}),
      profiles: [args['profile']],
      budgets: [args['budget']],
      constraintMode: args['constraint-mode'],
      agents: [{ name: args['agent'], options: agentOptions }],
      seeds: [args.seed],
      episodes: args['episodes'],
      qatSteps: args['qat-steps'],
      warmupEpochs: args['warmup-epochs'],
      finetuneEpochs: args['finetune-epochs'],
      reward: args['reward'],
      stepMode: args['step-mode'],
      bitChoices,
      evalSamples: args['eval-samples'],
      pinFirstLast: args['pin-first-last'],
      checkpointEvery: args['checkpoint-every'],
      threads: threadsFlag(args['threads']) ?? defaultThreads(),
      evalBackend: args['eval-backend'],
      ...(args['batch-size'] !== undefined ? { batchSize: args['batch-size'] } : {}),
      ...(args['target'] !== undefined ? { target: args['target'] } : {}),
      ...(args['distill'] !== undefined ? { distill: args['distill'] } : {}),
      ...(args['eval-cache'] !== undefined ? { evalCache: args['eval-cache'] } : {}),
      ...(args['shared-weights'] !== undefined ? { sharedWeights: args['shared-weights'] } : {}),
      ...searchFractions,
    };
    let exp: Experiment;
    try {
      exp = validateExperiment(raw, { warn: (message) => log.warn(flagOfPath(message)) });
    } catch (e) {
      if (!isUserError(e)) throw e;
      // name the flags, not the JSON paths of the experiment the flags are turned into
      const problems = (e.details.problems ?? [e.message]).map(flagOfPath);
      throw new UserError(`invalid search: ${problems.length} problem${problems.length === 1 ? '' : 's'}`, {
        problems,
      });
    }
    checkDatasetAvailable(exp.dataset, exp.dataDir);
    warnEpisodes(exp.episodes);
    const out = args['out'] as string | undefined;
    let result: SearchResult;
    if (out) {
      if (existsSync(resolve(out, 'run.json')))
        throw new UserError('already holds a run; use `bitalloc run --resume DIR` to continue it', { file: out });
      const store = createRun(out, exp, runMeta());
      const logFile = addLogFile(store.logPath);
      const removeSignals = installStopSignals(store);
      try {
        const cell = store.cells[0];
        if (!cell) throw new Error('the search has no cell');
        cell.setStatus('running');
        result = await runSearch(specForCell(exp, cell.spec), { cell, warmupCacheDir: resolve(store.dir, 'warmup') });
        cell.setStatus(result.interrupted ? 'pending' : 'done');
      } finally {
        removeLogTransport(logFile);
        store.close();
        removeSignals();
      }
      const stoppedBy = stopRequested();
      if (stoppedBy !== null) {
        process.stderr.write(
          `stopped by ${stoppedBy} after episode ${result.episodes} of ${exp.episodes}: checkpoint saved, run.lock released.\nresume with: bitalloc run --resume ${store.dir}\n`,
        );
        process.exitCode = signalExitCode(stoppedBy);
        return;
      }
    } else {
      const cell = cells(exp)[0];
      if (!cell) throw new Error('the search has no cell');
      result = await runSearch(specForCell(exp, cell));
    }
    if (args.json) printJson(result);
    else printText(resultText(result));
  },
};
