/**
 * Experiment files: what `bitalloc run` / `compare` take. An experiment names a model, a dataset, one or
 * more device profiles, one or more budgets (each a list of constraints), the agents to compare and the
 * seeds; every (agent, profile, budget, seed) combination is one *cell* of the run.
 *
 * `loadExperiment(file, overrides)` reads, applies `--set key=value` overrides, validates (every problem
 * listed with its JSON path and what is valid, as one UserError; nothing is written) and fills defaults.
 * The result is again a valid experiment file (same fields, defaults explicit, paths absolute), which is
 * what a run directory stores as experiment.json. `cells(exp)` lists the cells with stable ids.
 *
 * Paths inside the file (a model or profile given as a path, dataDir) are relative to the file's folder;
 * `out` (where run directories are created) is relative to the working directory.
 * The JSON Schema of the format is experiments/schema.json.
 */
import {
  CONSTRAINT_GRAMMAR,
  CONSTRAINT_MODES,
  parseConstraint as parseEnvConstraint,
  type ConstraintMode,
  type CostMetric,
} from '../../envs/constraints.js';
import { DEFAULT_BIT_CHOICES, DEPRECATED_STEP_MODES, STEP_MODES } from '../../envs/bit-allocation-env.js';
import type { StepMode } from '../../envs/types.js';
import type { EvalBackendChoice } from '../onnx/eval-backend.js';
import { DEFAULT_PREPROCESS, parsePreprocess, type Preprocess } from '../data/preprocess.js';
import { TARGETS, type Target } from '../train/distill.js';
import { SHARED_WEIGHTS, type SharedWeights } from '../train/finetune.js';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENTS, AGENT_NAMES, resolveAgentOptions } from '../../agents/index.js';
import { resolveReward, REWARD_KINDS, type RewardKind, type RewardSpec as EnvRewardSpec } from '../../envs/rewards.js';
import { DATASETS, DATASET_NAMES } from '../data/index.js';
import { isUserError, UserError } from '../errors.js';
import { log } from '../log.js';
import { looksLikePath, profileProblems, profilesDir, readJsonFile as readProfileJson } from '../hardware/index.js';
import { unsupportedKeywords, validateJson, type JsonSchema } from '../hardware/json-schema.js';
import { checkSplitFractions, fractionOptions } from './split-fractions.js';
import { ZOO_NAMES } from '../models/index.js';

// ---------------------------------------------------------------------------------------------------------
// Names the file may use
// ---------------------------------------------------------------------------------------------------------

// The env's vocabulary is the one vocabulary: step modes, constraint modes, reward kinds and cost metrics are the
// env's (envs/), agents the registry's (agents/index.ts); the experiment format re-exports them for its readers.

/** Agents an experiment may name: the agent registry (agents/index.ts). */
export { AGENT_NAMES };
/**
 * The `agents` entry meaning every registered agent that no other entry of the list names, in registry order,
 * at its position (e.g. `["*", { "name": "ppo", "label": "ppo-lstm", "options": { "policy": "lstm" } }]` runs
 * every agent and the LSTM PPO in place of the default PPO). The validated experiment lists them by name.
 */
export const EVERY_AGENT = '*';
/** Zoo models (a model may also be a path to a tfjs model.json). */
export const MODEL_NAMES: readonly string[] = ZOO_NAMES;
export { DATASET_NAMES, CONSTRAINT_MODES, STEP_MODES, REWARD_KINDS, CONSTRAINT_GRAMMAR };
export type { ConstraintMode, StepMode, RewardKind };

/** Names of the built-in profiles: hardware-profiles/*.json except schema.json. */
export function builtinProfileNames(): string[] {
  const dir = profilesDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'schema.json')
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

// ---------------------------------------------------------------------------------------------------------
// Budget constraints
// ---------------------------------------------------------------------------------------------------------

export interface ParsedConstraint {
  /** The env's metric name (`peakMemory`; the file spells it `peak-memory`). */
  metric: CostMetric;
  /** True for `x` / `%`: a fraction of the reference (W8A8) network's cost. */
  relative: boolean;
  /** The limit in the base unit: ms (latency), uJ (energy), bytes (size, peak memory); the ratio when relative. */
  value: number;
  /** Canonical text (no spaces), e.g. `latency<=0.35x`. */
  text: string;
}

/** Parses one constraint (`latency<=0.35x`) with the env's parser; on a bad string returns `{ error }` saying why. */
export function parseConstraint(text: string): ParsedConstraint | { error: string } {
  try {
    const c = parseEnvConstraint(text);
    return {
      metric: c.metric,
      relative: c.kind === 'relative',
      value: c.value,
      text: text.replace(/\s+/g, ''),
    };
  } catch (e) {
    if (!isUserError(e)) throw e;
    return { error: e.message.replace(/\s*\(expected [\s\S]*\)$/, '') };
  }
}

/** A file-name-safe slug of a budget, e.g. `latency-0.35x`, `peak-memory-320KB+size-1MB`, `unconstrained`. */
export function budgetSlug(constraints: readonly string[]): string {
  if (constraints.length === 0) return 'unconstrained';
  return constraints
    .map((c) =>
      c
        .replace(/\s+/g, '')
        .replace('<=', '-')
        .replace(/[^A-Za-z0-9.+-]/g, '-'),
    )
    .join('+');
}

// ---------------------------------------------------------------------------------------------------------
// The experiment
// ---------------------------------------------------------------------------------------------------------

export interface AgentSpec {
  /** Registry name (ppo, ddpg, ...). */
  name: string;
  /** Distinct name of this entry in the run (cell ids, reports); defaults to `name`. */
  label: string;
  /** Hyperparameters passed to the agent (its defaults fill the rest). */
  options: Record<string, unknown>;
}

export interface RewardSpec {
  /** The env's reward kind (the file's `name`). */
  name: RewardKind;
  options: Record<string, unknown>;
}

/** The reward as the env takes it (`{ kind, ...options }`). */
export function envRewardSpec(r: RewardSpec): EnvRewardSpec {
  return { kind: r.name, ...r.options };
}

/** A validated experiment with every default filled. Serialises back to a valid experiment file. */
export interface Experiment {
  $schema?: string;
  name: string;
  description?: string;
  /** Zoo name or absolute path to a model.json. */
  model: string;
  dataset: string;
  /** Absolute path of the dataset folder, when given. */
  dataDir?: string;
  /** Built-in profile names or absolute paths to profile JSON files. */
  profiles: string[];
  /** Each entry is one budget: a list of constraints in canonical text. */
  budgets: string[][];
  constraintMode: ConstraintMode;
  agents: AgentSpec[];
  seeds: number[];
  /** Episodes per cell. */
  episodes: number;
  /** QAT minibatch steps per episode on the shared weights. */
  qatSteps: number;
  /** Float training epochs before the search. */
  warmupEpochs: number;
  /** Fine-tune epochs of the best allocation at the end. */
  finetuneEpochs: number;
  reward: RewardSpec;
  stepMode: StepMode;
  /** Bit-widths the agents choose from, ascending. */
  bitChoices: number[];
  /** Validation samples each episode's accuracy is measured on. */
  evalSamples: number;
  /** Use at most this many samples of each split (0 = all): quick runs on large datasets. */
  trainSamples: number;
  /** Keep the first and last quantizable layers at 8 bits (HAQ). */
  pinFirstLast: boolean;
  /** Episodes between checkpoints of a cell. */
  checkpointEvery: number;
  /**
   * Threads each cell's training steps use (data-parallel). Absent: one thread when a run is resumed
   * (runs made before this field), cores / workers when `run` creates a run (it writes the value).
   */
  threads?: number;
  /** Folder the run directories are created in (`<out>/<name>-<timestamp>`). */
  out: string;
  /** Engine of the search's forward passes: auto (onnxruntime when it loads), onnxruntime or tfjs. */
  evalBackend?: EvalBackendChoice;
  /** Training minibatch (default per dataset); evaluation splits batches to fit. */
  batchSize?: number;
  /** Image folders: resizing, channel order and scaling (default: the model's preprocess.json, else crop / rgb / 0-1). */
  preprocess?: Preprocess;
  /** `fidelity`: accuracy = top-1 agreement with the float network (always so for label-free data). */
  target?: Target;
  /** Train on the float network's soft targets (always so for label-free data). */
  distill?: boolean;
  /**
   * Reuse the result of an allocation already evaluated at the same weights (default true); in effect only when
   * qatSteps is 0 (with QAT the shared weights change between evaluations). Cached episodes are marked.
   */
  evalCache?: boolean;
  /** What each episode's QAT starts from: carry (previous episodes' weights) or restore (the starting weights). */
  sharedWeights?: SharedWeights;
  /** Share of the training pool held out for validation (default per dataset: 1/9 for mnist, else 0.1). */
  valFraction?: number;
  /** Image folders: share of the images held out as the test split (default 0.1). */
  testFraction?: number;
}

export const EXPERIMENT_DEFAULTS = {
  constraintMode: 'lower' as ConstraintMode,
  seeds: [1],
  episodes: 100,
  qatSteps: 20,
  warmupEpochs: 1,
  finetuneEpochs: 3,
  reward: { name: 'haq' as RewardKind, options: {} },
  stepMode: 'joint' as StepMode,
  bitChoices: [...DEFAULT_BIT_CHOICES],
  evalSamples: 1000,
  trainSamples: 0,
  pinFirstLast: false,
  checkpointEvery: 10,
  out: 'runs',
  evalBackend: 'auto' as EvalBackendChoice,
};

/** Every field an experiment file may have. */
export const EXPERIMENT_FIELDS: readonly string[] = [
  '$schema',
  'name',
  'description',
  'model',
  'dataset',
  'dataDir',
  'profiles',
  'budgets',
  'constraintMode',
  'agents',
  'seeds',
  'episodes',
  'qatSteps',
  'warmupEpochs',
  'finetuneEpochs',
  'reward',
  'stepMode',
  'bitChoices',
  'evalSamples',
  'trainSamples',
  'pinFirstLast',
  'checkpointEvery',
  'out',
  'threads',
  'evalBackend',
  'batchSize',
  'preprocess',
  'target',
  'distill',
  'evalCache',
  'sharedWeights',
  'valFraction',
  'testFraction',
];

/** One device profile of the experiment. */
export interface ProfileRef {
  /** As written in the experiment (name or absolute path). */
  spec: string;
  /** Short id used in cell ids and reports: the built-in name, or the file's `id` field / base name. */
  id: string;
  /** Absolute path of the profile JSON. */
  path: string;
  builtin: boolean;
}

export interface BudgetRef {
  /** File-name-safe slug (see budgetSlug). */
  id: string;
  /** Constraints in canonical text, e.g. ["latency<=0.35x"]. */
  constraints: string[];
  parsed: ParsedConstraint[];
}

/** One (agent, profile, budget, seed) combination: one search. */
export interface Cell {
  /** Stable, file-name-safe id: `<agent label>__<profile id>__<budget slug>__s<seed>`. */
  id: string;
  /** Position in `cells(exp)`. */
  index: number;
  agent: AgentSpec;
  profile: ProfileRef;
  budget: BudgetRef;
  seed: number;
}

/** An agent entry's options with the agent's defaults filled in (what cell.json records). */
export function resolvedAgentOptions(agent: AgentSpec): Record<string, unknown> {
  const entry = AGENTS[agent.name];
  return entry ? resolveAgentOptions(agent.name, entry.defaults, agent.options) : { ...agent.options };
}

/** Resolves a profile entry of a validated experiment. */
export function profileRef(spec: string): ProfileRef {
  if (!looksLikePath(spec)) return { spec, id: spec, path: resolve(profilesDir(), `${spec}.json`), builtin: true };
  const path = resolve(spec);
  let id = basename(path).replace(/\.json$/i, '');
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (isObject(parsed) && typeof parsed['id'] === 'string' && parsed['id'].trim() !== '') id = parsed['id'];
  } catch {
    // the id falls back to the file name; loading the profile reports the problem
  }
  return { spec, id: slugify(id), path, builtin: false };
}

export function budgetRef(constraints: readonly string[]): BudgetRef {
  const parsed = constraints.map((c) => {
    const p = parseConstraint(c);
    if ('error' in p) throw new UserError(p.error, { expected: CONSTRAINT_GRAMMAR });
    return p;
  });
  return { id: budgetSlug(parsed.map((p) => p.text)), constraints: parsed.map((p) => p.text), parsed };
}

/** Every cell of the experiment, ordered by profile, budget, agent, seed. Ids are stable for a given file. */
export function cells(exp: Experiment): Cell[] {
  const out: Cell[] = [];
  const profiles = exp.profiles.map(profileRef);
  const budgets = exp.budgets.map(budgetRef);
  for (const profile of profiles) {
    for (const budget of budgets) {
      for (const agent of exp.agents) {
        for (const seed of exp.seeds) {
          out.push({
            id: cellId(agent.label, profile.id, budget.id, seed),
            index: out.length,
            agent,
            profile,
            budget,
            seed,
          });
        }
      }
    }
  }
  return out;
}

export function cellId(agentLabel: string, profileId: string, budgetId: string, seed: number): string {
  return `${agentLabel}__${profileId}__${budgetId}__s${seed}`;
}

/** The default run directory of an experiment started at `when`: `<out>/<name>-<YYYYMMDD-HHMMSS>`. */
export function defaultRunDir(exp: Experiment, when: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${when.getFullYear()}${p(when.getMonth() + 1)}${p(when.getDate())}-${p(when.getHours())}${p(when.getMinutes())}${p(when.getSeconds())}`;
  return resolve(exp.out, `${exp.name}-${stamp}`);
}

// ---------------------------------------------------------------------------------------------------------
// Reading, overrides, validation
// ---------------------------------------------------------------------------------------------------------

/** Parses JSON text; a syntax error becomes a UserError with the file, line and column. */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const pos = /position (\d+)/.exec(message);
    const lineCol = /line (\d+) column (\d+)/.exec(message);
    let line: number;
    let column: number;
    if (lineCol) {
      line = Number(lineCol[1]);
      column = Number(lineCol[2]);
    } else {
      const offset = pos ? Number(pos[1]) : text.length;
      const before = text.slice(0, offset);
      line = before.split('\n').length;
      column = offset - before.lastIndexOf('\n');
    }
    const reason = message.replace(/\s*in JSON at position \d+.*$/s, '').replace(/\s*\(line \d+ column \d+\)$/, '');
    throw new UserError(`not valid JSON at line ${line}, column ${column}: ${reason}`, {
      file,
      expected: 'a JSON object',
    });
  }
}

/**
 * Reads and validates an experiment file. `overrides` are `key=value` strings (`--set`): dotted keys reach
 * into objects and arrays (`agents.0.options.learningRate=0.001`); the value is parsed as JSON when it can be
 * (`seeds=[1,2]`, `episodes=20`), else taken as a string (`model=resnet20`).
 */
export function loadExperiment(path: string, overrides: readonly string[] = []): Experiment {
  const file = resolve(path);
  if (!existsSync(file))
    throw new UserError('experiment file not found', { file: path, expected: 'an existing JSON file' });
  if (!statSync(file).isFile()) throw new UserError('not a file', { file: path, expected: 'an experiment JSON file' });
  const raw = parseJsonText(readFileSync(file, 'utf8'), path);
  const overridden = applyOverrides(raw, overrides, path);
  return validateExperiment(overridden.value, { file: path, baseDir: dirname(file), overridden: overridden.paths });
}

/** Applies `key=value` overrides to a parsed experiment (a copy); returns it and the JSON paths set. */
export function applyOverrides(
  raw: unknown,
  overrides: readonly string[],
  file?: string,
): { value: unknown; paths: string[] } {
  if (overrides.length === 0) return { value: raw, paths: [] };
  if (!isObject(raw)) return { value: raw, paths: [] };
  const value = structuredClone(raw);
  const paths: string[] = [];
  for (const o of overrides) {
    const eq = o.indexOf('=');
    const key = eq > 0 ? o.slice(0, eq).trim() : '';
    if (!key || key.split('.').some((k) => k === '')) {
      throw new UserError(`bad override '${o}'`, {
        file,
        field: '--set',
        expected: 'key=value with a dotted key, e.g. episodes=20 or agents.0.options.learningRate=0.001',
      });
    }
    const text = o.slice(eq + 1);
    let v: unknown;
    try {
      v = JSON.parse(text) as unknown;
    } catch {
      v = text;
    }
    const parts = key.split('.');
    let target: unknown = value;
    for (let i = 0; i < parts.length - 1; i++) {
      const k = parts[i];
      const next = getChild(target, k);
      if (next === undefined) {
        const created: Record<string, unknown> = {};
        if (!setChild(target, k, created)) throw badOverridePath(o, parts.slice(0, i + 1), file);
        target = created;
      } else if (
        typeof next === 'string' &&
        (parts[i + 1] === 'options' || parts[i + 1] === 'label' || parts[i + 1] === 'name')
      ) {
        // shorthand `"ppo"` becomes `{ "name": "ppo" }` so its options can be set
        const expanded: Record<string, unknown> = { name: next };
        setChild(target, k, expanded);
        target = expanded;
      } else if (isObject(next) || Array.isArray(next)) {
        target = next;
      } else {
        throw badOverridePath(o, parts.slice(0, i + 1), file);
      }
    }
    if (!setChild(target, parts[parts.length - 1], v)) throw badOverridePath(o, parts, file);
    paths.push(jsonPath(parts));
  }
  return { value, paths };
}

function badOverridePath(o: string, parts: string[], file?: string): UserError {
  return new UserError(`override '${o}' cannot be applied: ${jsonPath(parts)} is not an object or array`, {
    file,
    field: '--set',
    expected: 'a dotted key through objects and array indices',
  });
}

function getChild(target: unknown, key: string): unknown {
  if (Array.isArray(target)) return /^\d+$/.test(key) ? target[Number(key)] : undefined;
  if (isObject(target)) return target[key];
  return undefined;
}

function setChild(target: unknown, key: string, v: unknown): boolean {
  if (Array.isArray(target)) {
    if (!/^\d+$/.test(key) || Number(key) > target.length) return false;
    target[Number(key)] = v;
    return true;
  }
  if (isObject(target)) {
    target[key] = v;
    return true;
  }
  return false;
}

function jsonPath(parts: readonly (string | number)[]): string {
  return '$' + parts.map((p) => (typeof p === 'number' || /^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('');
}

export interface ValidateOptions {
  /** Named in every problem. */
  file?: string;
  /** Relative paths in the file resolve against this folder (default: the working directory). */
  baseDir?: string;
  /** JSON paths that came from --set (marked in problems). */
  overridden?: readonly string[];
  /**
   * Told of each deprecated spelling accepted (one line: the JSON path, the old and the new spelling).
   * Default: a warning on the log naming the file.
   */
  warn?: (message: string) => void;
}

/**
 * Older spellings a file may still use, replaced by today's before validation, each reported through `warn`:
 * `stepMode: "haq"` is `two-step` (envs/bit-allocation-env.ts DEPRECATED_STEP_MODES).
 */
function replaceDeprecated(raw: Record<string, unknown>, warn: (message: string) => void): Record<string, unknown> {
  const step = raw['stepMode'];
  if (typeof step !== 'string' || !Object.prototype.hasOwnProperty.call(DEPRECATED_STEP_MODES, step)) return raw;
  const now = DEPRECATED_STEP_MODES[step];
  warn(`$.stepMode: '${step}' is a deprecated spelling of '${now}' (two steps per layer: weights, then activations)`);
  return { ...raw, stepMode: now };
}

/** experiments/schema.json, found by walking up from this file (src/ or dist/src/). */
export function experimentSchemaPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'experiments', 'schema.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find experiments/schema.json of the bitalloc package');
    dir = parent;
  }
}

let schemaCache: JsonSchema | null = null;

/** The experiment schema (experiments/schema.json), checked once for keywords the validator does not implement. */
export function experimentSchema(): JsonSchema {
  if (schemaCache) return schemaCache;
  const schema = JSON.parse(readFileSync(experimentSchemaPath(), 'utf8')) as JsonSchema;
  const unknown = unsupportedKeywords(schema);
  if (unknown.length)
    throw new Error(`experiments/schema.json uses keywords the validator does not implement: ${unknown.join(', ')}`);
  return (schemaCache = schema);
}

/** The JSON path a validator problem (`$.a.b[2]: ...`) is about. */
function problemPath(p: string): string {
  const i = p.indexOf(': ');
  return i < 0 ? p : p.slice(0, i);
}

/**
 * Checks a parsed experiment; throws one UserError listing every problem. Returns it with defaults filled.
 *
 * Two layers, one list of problems: the shape (types, required and unknown fields, ranges, enums) is checked by
 * the JSON-schema validator against experiments/schema.json, the validator and schema profiles use; what a schema
 * cannot say (the named model, profile files and data folder exist, a budget parses, an agent's option values are
 * valid, labels and profile ids are distinct) is checked here. Where both speak of the same JSON path, the
 * specific message (listing what is valid) is kept.
 */
export function validateExperiment(input: unknown, opts: ValidateOptions = {}): Experiment {
  const baseDir = opts.baseDir ?? process.cwd();
  const overridden = opts.overridden ?? [];
  const fromSet = (path: string): boolean =>
    overridden.some((p) => path === p || path.startsWith(p + '.') || path.startsWith(p + '['));
  const checks: string[] = [];
  const problem = (path: string, message: string, expected?: string) => {
    checks.push(`${path}: ${message}${expected ? ` (expected ${expected})` : ''}`);
  };
  if (!isObject(input)) {
    throw new UserError('an experiment must be a JSON object', {
      file: opts.file,
      field: '$',
      expected: 'an object with name, model, dataset, profiles, budgets, agents',
    });
  }
  const warn =
    opts.warn ?? ((message: string) => log.warn(opts.file !== undefined ? `${opts.file}: ${message}` : message));
  const raw = replaceDeprecated(input, warn);
  const shape = validateJson(raw, experimentSchema());
  const str = (key: string): string | undefined => {
    const v = raw[key];
    return typeof v === 'string' && v.trim() !== '' ? v : undefined;
  };
  const int = (key: string, dflt: number): number => {
    const v = raw[key];
    return typeof v === 'number' && Number.isInteger(v) ? v : dflt;
  };
  const choice = <T extends string>(key: string, choices: readonly T[], dflt: T): T => {
    const v = raw[key];
    return typeof v === 'string' && (choices as readonly string[]).includes(v) ? (v as T) : dflt;
  };

  const name = str('name') ?? 'experiment';
  const description = raw['description'];
  const schemaRef = raw['$schema'];

  // model: a zoo name or an existing model.json
  let model = str('model') ?? '';
  if (model) {
    if (looksLikePath(model)) {
      const p = resolve(baseDir, model);
      if (!existsSync(p))
        problem(
          '$.model',
          `model file '${model}' not found (looked at ${p})`,
          `a zoo model (${MODEL_NAMES.join(', ')}) or an existing model.json`,
        );
      else model = p;
    } else if (!MODEL_NAMES.includes(model)) {
      problem(
        '$.model',
        `unknown model '${model}'`,
        `a zoo model (${MODEL_NAMES.join(', ')}) or a path to a model.json`,
      );
    }
  }

  // dataset, and the folder a file-based dataset needs
  const dataset = str('dataset') ?? '';
  if (dataset && !DATASET_NAMES.includes(dataset))
    problem('$.dataset', `unknown dataset '${dataset}'`, `one of ${DATASET_NAMES.join(', ')}`);
  let dataDir = str('dataDir');
  if (dataDir !== undefined) {
    const p = resolve(baseDir, dataDir);
    if (!existsSync(p))
      problem('$.dataDir', `'${dataDir}' not found (looked at ${p})`, 'an existing folder (or IDX file)');
    else dataDir = p;
  } else if (dataset && DATASETS[dataset] && DATASETS[dataset].defaultSource === null) {
    problem('$.dataDir', `missing: dataset '${dataset}' is read from files you provide`, 'the folder holding them');
  }

  // profiles: built-in names or valid profile files, distinct ids
  const profiles: string[] = [];
  const rawProfiles = raw['profiles'];
  const builtins = builtinProfileNames();
  const expectedProfile = `a built-in profile (${builtins.join(', ') || 'none installed'}) or a path to a profile JSON`;
  if (Array.isArray(rawProfiles)) {
    const ids = new Map<string, number>();
    rawProfiles.forEach((p: unknown, i: number) => {
      const path = `$.profiles[${i}]`;
      if (typeof p !== 'string' || p.trim() === '') return;
      let spec = p;
      if (looksLikePath(p)) {
        const abs = resolve(baseDir, p);
        if (!existsSync(abs) || !statSync(abs).isFile())
          return problem(path, `profile file '${p}' not found (looked at ${abs})`, expectedProfile);
        spec = abs;
        const bad = profileFileProblems(abs);
        if (bad.length)
          return problem(
            path,
            `invalid profile file '${p}':\n      ${bad.join('\n      ')}`,
            'a profile as described by hardware-profiles/schema.json',
          );
      } else if (!builtins.includes(p)) {
        return problem(path, `unknown profile '${p}'`, expectedProfile);
      }
      const id = profileRef(spec).id;
      const prev = ids.get(id);
      if (prev !== undefined)
        return problem(path, `profile id '${id}' is already used by $.profiles[${prev}]`, 'each profile once');
      ids.set(id, i);
      profiles.push(spec);
    });
  }

  // budgets: each constraint parses (the env's grammar), one limit per metric, distinct budgets
  const budgets: string[][] = [];
  const rawBudgets = raw['budgets'];
  if (Array.isArray(rawBudgets)) {
    const slugs = new Map<string, number>();
    rawBudgets.forEach((b: unknown, i: number) => {
      const list = typeof b === 'string' ? [b] : b;
      if (!Array.isArray(list)) return;
      const texts: string[] = [];
      const metrics = new Set<string>();
      list.forEach((c: unknown, j: number) => {
        const path = typeof b === 'string' ? `$.budgets[${i}]` : `$.budgets[${i}][${j}]`;
        if (typeof c !== 'string') return;
        const parsed = parseConstraint(c);
        if ('error' in parsed) return problem(path, parsed.error, CONSTRAINT_GRAMMAR);
        if (metrics.has(parsed.metric))
          return problem(
            path,
            `a second limit on ${parsed.metric} in the same budget`,
            'one limit per metric in a budget',
          );
        metrics.add(parsed.metric);
        texts.push(parsed.text);
      });
      if (texts.length !== list.length) return;
      const slug = budgetSlug(texts);
      const prev = slugs.get(slug);
      if (prev !== undefined)
        return problem(`$.budgets[${i}]`, `same budget as $.budgets[${prev}]`, 'distinct budgets');
      slugs.set(slug, i);
      budgets.push(texts);
    });
  }

  const constraintMode = choice('constraintMode', CONSTRAINT_MODES, EXPERIMENT_DEFAULTS.constraintMode);

  // agents: registered names (the registry is the one list; the schema has no enum), option names, types and
  // values (each agent's validate), distinct labels; "*" expands to every registered agent no other entry names.
  const agents: AgentSpec[] = [];
  const rawAgents = raw['agents'];
  if (Array.isArray(rawAgents)) {
    const labels = new Map<string, number>();
    const addLabel = (label: string, i: number, path: string): boolean => {
      const prev = labels.get(label);
      if (prev === undefined) {
        labels.set(label, i);
        return true;
      }
      problem(
        path,
        `agent label '${label}' is already used by $.agents[${prev}]`,
        'a distinct "label" for each entry of the same agent',
      );
      return false;
    };
    const named = new Set<string>();
    for (const a of rawAgents as unknown[]) {
      const n = isObject(a) ? a['name'] : a;
      if (typeof n === 'string' && n !== EVERY_AGENT) named.add(n);
    }
    let star: number | undefined;
    rawAgents.forEach((a: unknown, i: number) => {
      const path = `$.agents[${i}]`;
      if (typeof a !== 'string' && !isObject(a)) return;
      if (a === EVERY_AGENT) {
        if (star !== undefined) return problem(path, `a second '${EVERY_AGENT}' (the first is $.agents[${star}])`);
        star = i;
        for (const agentName of AGENT_NAMES.filter((n) => !named.has(n)))
          if (addLabel(agentName, i, path)) agents.push({ name: agentName, label: agentName, options: {} });
        return;
      }
      const agentName = typeof a === 'string' ? a : a['name'];
      const label = typeof a === 'string' ? undefined : a['label'];
      const options = typeof a === 'string' ? {} : (a['options'] ?? {});
      if (agentName === undefined) return;
      const namePath = typeof a === 'string' ? path : `${path}.name`;
      if (agentName === EVERY_AGENT) {
        return problem(
          namePath,
          `'${EVERY_AGENT}' (every registered agent) takes no label or options`,
          `the string "${EVERY_AGENT}" as an entry of its own, or an agent's name`,
        );
      }
      if (typeof agentName !== 'string' || !AGENT_NAMES.includes(agentName)) {
        return problem(namePath, `unknown agent ${describe(agentName)}`, `one of ${AGENT_NAMES.join(', ')}`);
      }
      if (!isObject(options)) return;
      const entry = AGENTS[agentName];
      if (entry) {
        try {
          resolveAgentOptions(agentName, entry.defaults, options, `${path}.options`);
        } catch (e) {
          if (!isUserError(e)) throw e;
          checks.push(e.message);
        }
      }
      if (label !== undefined && typeof label !== 'string') return;
      const finalLabel = label ?? agentName;
      if (addLabel(finalLabel, i, path))
        agents.push({ name: agentName, label: finalLabel, options: structuredClone(options) });
    });
  }

  const rawSeeds = raw['seeds'];
  const seeds = Array.isArray(rawSeeds)
    ? rawSeeds.filter((s): s is number => typeof s === 'number')
    : EXPERIMENT_DEFAULTS.seeds.slice();
  const episodes = int('episodes', EXPERIMENT_DEFAULTS.episodes);
  const qatSteps = int('qatSteps', EXPERIMENT_DEFAULTS.qatSteps);
  const warmupEpochs = int('warmupEpochs', EXPERIMENT_DEFAULTS.warmupEpochs);
  const finetuneEpochs = int('finetuneEpochs', EXPERIMENT_DEFAULTS.finetuneEpochs);
  const evalSamples = int('evalSamples', EXPERIMENT_DEFAULTS.evalSamples);
  const trainSamples = int('trainSamples', EXPERIMENT_DEFAULTS.trainSamples);
  const checkpointEvery = int('checkpointEvery', EXPERIMENT_DEFAULTS.checkpointEvery);

  const threads = raw['threads'] !== undefined ? int('threads', 1) : undefined;

  // reward: a kind of the env's, its options checked by the env's resolver
  let reward: RewardSpec = structuredClone(EXPERIMENT_DEFAULTS.reward);
  const rawReward = raw['reward'];
  if (rawReward !== undefined) {
    const rName: unknown = isObject(rawReward) ? rawReward['name'] : rawReward;
    const rOptions: unknown = isObject(rawReward) ? (rawReward['options'] ?? {}) : {};
    const rPath = isObject(rawReward) ? '$.reward.name' : '$.reward';
    if (typeof rName !== 'string' || !(REWARD_KINDS as readonly string[]).includes(rName)) {
      if (typeof rName === 'string' || !isObject(rawReward))
        problem(
          rPath,
          `unknown reward ${describe(rName)}`,
          `one of ${REWARD_KINDS.join(', ')}, or { "name": ..., "options": {...} }`,
        );
    } else if (isObject(rOptions)) {
      try {
        resolveReward({ kind: rName as RewardKind, ...rOptions }, '$.reward.options');
        reward = { name: rName as RewardKind, options: structuredClone(rOptions) };
      } catch (e) {
        if (!isUserError(e)) throw e;
        checks.push(e.message);
      }
    }
  }

  const stepMode = choice('stepMode', STEP_MODES, EXPERIMENT_DEFAULTS.stepMode);
  const rawBits = raw['bitChoices'];
  const bitChoices = Array.isArray(rawBits)
    ? [...new Set(rawBits.filter((b): b is number => typeof b === 'number'))].sort((a, b) => a - b)
    : EXPERIMENT_DEFAULTS.bitChoices.slice();
  const pinFirstLast =
    typeof raw['pinFirstLast'] === 'boolean' ? raw['pinFirstLast'] : EXPERIMENT_DEFAULTS.pinFirstLast;
  const out = str('out') ?? EXPERIMENT_DEFAULTS.out;
  const evalBackend = (str('evalBackend') ?? EXPERIMENT_DEFAULTS.evalBackend) as EvalBackendChoice;
  const batchSize = raw['batchSize'] === undefined ? undefined : int('batchSize', 1);
  let preprocess: Preprocess | undefined;
  if (raw['preprocess'] !== undefined) {
    try {
      preprocess = parsePreprocess(raw['preprocess'], DEFAULT_PREPROCESS, '$.preprocess');
    } catch (e) {
      if (!isUserError(e)) throw e;
      checks.push(e.message);
    }
  }
  const target = raw['target'] === undefined ? undefined : choice('target', TARGETS, 'accuracy');
  const distill = typeof raw['distill'] === 'boolean' ? raw['distill'] : undefined;
  const evalCache = typeof raw['evalCache'] === 'boolean' ? raw['evalCache'] : undefined;
  const sharedWeights =
    raw['sharedWeights'] === undefined ? undefined : choice('sharedWeights', SHARED_WEIGHTS, 'carry');
  const fraction = (key: string): number | undefined => {
    const v = raw[key];
    return typeof v === 'number' && v > 0 && v < 1 ? v : undefined;
  };
  const valFraction = fraction('valFraction');
  const testFraction = fraction('testFraction');
  try {
    checkSplitFractions({ valFraction, testFraction }, dataset || undefined, {
      val: '$.valFraction',
      test: '$.testFraction',
    });
  } catch (e) {
    if (!isUserError(e)) throw e;
    checks.push(e.message);
  }

  const checked = new Set(checks.map(problemPath));
  const problems = [...shape.filter((p) => !checked.has(problemPath(p))), ...checks].map((p) =>
    fromSet(problemPath(p)) ? `${p} [set by --set]` : p,
  );
  if (problems.length > 0) {
    const n = problems.length;
    throw new UserError(`invalid experiment: ${n} problem${n === 1 ? '' : 's'}`, { file: opts.file, problems });
  }
  const exp: Experiment = {
    ...(typeof schemaRef === 'string' ? { $schema: schemaRef } : {}),
    name,
    ...(typeof description === 'string' ? { description } : {}),
    model,
    dataset,
    ...(dataDir !== undefined ? { dataDir } : {}),
    profiles,
    budgets,
    constraintMode,
    agents,
    seeds,
    episodes,
    qatSteps,
    warmupEpochs,
    finetuneEpochs,
    reward,
    stepMode,
    bitChoices,
    evalSamples,
    trainSamples,
    pinFirstLast,
    checkpointEvery,
    out,
    ...(threads !== undefined ? { threads } : {}),
    evalBackend,
    ...(batchSize !== undefined ? { batchSize } : {}),
    ...(preprocess !== undefined ? { preprocess } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(distill !== undefined ? { distill } : {}),
    ...(evalCache !== undefined ? { evalCache } : {}),
    ...(sharedWeights !== undefined ? { sharedWeights } : {}),
    ...fractionOptions({ valFraction, testFraction }),
  };
  return exp;
}

/** Problems of a profile file (empty when it loads). */
function profileFileProblems(file: string): string[] {
  try {
    return profileProblems(readProfileJson(file, 'profile file'), file);
  } catch (e) {
    if (isUserError(e)) return [e.message];
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function slugify(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '-');
}

/** A short description of a JSON value for error messages. */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length === 0 ? 'an empty array' : 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '...' : v}'`;
  return `${typeof v} ${String(v)}`;
}
