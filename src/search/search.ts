/**
 * The search: one agent, one device profile, one budget, one seed (a "cell").
 *
 *   dataset + model -> float warm-up (cached per model/dataset/seed/epochs when a cache dir is given)
 *   profile + inventory -> cost table of every (layer, wBits, aBits), computed once
 *   per episode: the agent picks an allocation through the env; the shared network trains K QAT steps at
 *     that allocation (AMED's interleave; K = 0 evaluates only); validation accuracy; cost from the table;
 *     reward; agent update; the episode is appended to episodes.jsonl and a checkpoint taken every N episodes
 *   end: uniform-precision reference points, the best feasible allocation fine-tuned, test accuracy.
 *
 * A killed run resumes from its last checkpoint: episodes recorded after it are dropped and re-run, so the
 * episode list stays 1..N with none lost or repeated, and (on a deterministic backend) the result equals the
 * uninterrupted run's.
 */
import { readModelPreprocess, type Preprocess } from '../data/preprocess.js';
import { UserError } from '../errors.js';
import { isZooName } from '../models/index.js';
import type { QuantNetwork } from '../quant/network.js';
import { collectLayerStats, postTrainingQuantize, setBiasCorrection } from '../quant/ptq.js';
import { checkCompatible, modelFileInputShape } from '../train/compatible.js';
import { applyTargets, DEFAULT_TEMPERATURE, type Target, type TargetsApplied } from '../train/distill.js';
import { applyFineTuneRegime, PRETRAINED_FINETUNE, type SharedWeights } from '../train/finetune.js';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BitAllocationEnv } from '../../envs/bit-allocation-env.js';
import type { RewardSpec as EnvRewardSpec } from '../../envs/rewards.js';
import type { AccuracyEvaluator, AccuracyResult, Agent, EpisodeSummary, StepMode } from '../../envs/types.js';
import type { ConstraintMode } from '../../envs/constraints.js';
import { createAgent } from '../../agents/index.js';
import { backendInfo, tf } from '../backend/index.js';
import { Progress } from '../util/progress.js';
import { loadDataset, disposeDataset } from '../data/index.js';
import type { Dataset, Split } from '../data/api.js';
import { buildCostTable, loadProfile, type CostTable, type Profile } from '../hardware/index.js';
import { log } from '../log.js';
import { loadModel } from '../models/index.js';
import type { BitConfig } from '../models/layer-info.js';
import type { QuantizedNetwork } from '../quant/api.js';
import { loadNetwork, saveNetwork } from '../quant/save.js';
import { calibrateNetwork, createTrainer, type Trainer } from '../train/trainer.js';
import { trainingDefaults } from '../train/defaults.js';
import { namedBits } from '../train/checkpoint.js';
import {
  appendEpisode,
  isBetterEpisode,
  loadCheckpoint,
  saveCheckpoint,
  stopRequested,
  truncateEpisodes,
  type CellStore,
  type EpisodeRecord,
  type FinalRecord,
  type UniformPoint,
} from '../run/run-store.js';
import { EXPERIMENT_DEFAULTS } from '../experiment/experiment.js';
import { runEpisode } from './episode.js';
import { EvalCache, weightsFingerprint, type EvalCacheEntry } from './eval-cache.js';
import {
  checkEvalBackend,
  evaluateWith,
  resolveEvalBackend,
  type EvalBackendChoice,
  type OrtEvaluator,
} from './ort-evaluator.js';

/** Everything one search needs; experiments expand into one of these per cell. */
export interface SearchSpec {
  model: string;
  dataset: string;
  dataDir?: string;
  /** Built-in profile name or path to a profile JSON. */
  profile: string;
  constraints: string[];
  constraintMode: ConstraintMode;
  reward: EnvRewardSpec;
  stepMode: StepMode;
  bitChoices: number[];
  pinFirstLast: boolean;
  agent: string;
  agentOptions: Record<string, unknown>;
  episodes: number;
  /** QAT minibatches per episode at the episode's allocation (0 = evaluate only). */
  qatSteps: number;
  warmupEpochs: number;
  finetuneEpochs: number;
  /** Validation samples per evaluation. */
  evalSamples: number;
  seed: number;
  /** Checkpoint every N episodes (with a run store). */
  checkpointEvery: number;
  batchSize?: number;
  lr?: number;
  /** Use only the first N training samples (quick runs). */
  trainLimit?: number;
  /** Image folders: fractions of the images held out for validation and test (defaults 0.1 each). */
  valFraction?: number;
  testFraction?: number;
  /** Threads of the training steps (data-parallel; default 1). */
  threads?: number;
  /** Engine of the forward passes (evaluation, uniform points); default auto. QAT always runs on tfjs. */
  evalBackend?: EvalBackendChoice;
  /**
   * Reuse the result of an allocation already evaluated at the same weights (default true). Only in effect
   * when qatSteps is 0: with QAT the shared weights change between evaluations.
   */
  evalCache?: boolean;
  /** Image folders: preprocessing (default: the model's preprocess.json). */
  preprocess?: Preprocess;
  /** `fidelity`: accuracy = agreement with the float network (always for label-free data). */
  target?: Target;
  /** Train on the float network's soft targets (always for label-free data). */
  distill?: boolean;
  /**
   * What each episode's QAT starts from (default: `restore` for a network loaded from a file, `carry`
   * for a zoo network trained from scratch); see SHARED_WEIGHTS.
   */
  sharedWeights?: SharedWeights;
}

export { SHARED_WEIGHTS, type SharedWeights } from '../train/finetune.js';

/**
 * A search with the `bitalloc search` defaults (lenet5 on mnist for bitfusion-45nm, ppo, latency<=0.5x; the
 * experiment defaults for everything an experiment file may leave out), overridden.
 */
export function searchSpec(overrides: Partial<SearchSpec> = {}): SearchSpec {
  const d = EXPERIMENT_DEFAULTS;
  return {
    model: 'lenet5',
    dataset: 'mnist',
    profile: 'bitfusion-45nm',
    constraints: ['latency<=0.5x'],
    constraintMode: d.constraintMode,
    reward: d.reward.name,
    stepMode: d.stepMode,
    bitChoices: [...d.bitChoices],
    pinFirstLast: d.pinFirstLast,
    agent: 'ppo',
    agentOptions: {},
    episodes: d.episodes,
    qatSteps: d.qatSteps,
    warmupEpochs: d.warmupEpochs,
    finetuneEpochs: d.finetuneEpochs,
    evalSamples: d.evalSamples,
    seed: d.seeds[0] ?? 1,
    checkpointEvery: d.checkpointEvery,
    ...overrides,
  };
}

export interface SearchOptions {
  /** Where episodes, checkpoints, best.json and final.json go (omit for an in-memory search). */
  cell?: CellStore;
  /** Folder that caches float warm-ups across the cells of a run. */
  warmupCacheDir?: string;
  /** Progress label (default: agent and profile). */
  label?: string;
  /** Plain log lines instead of a redrawn bar. */
  plainProgress?: boolean;
  /** Called after every episode with its record. */
  onEpisode?: (record: EpisodeRecord) => void;
  /** Stop after this many episodes of this call (testing resume); the cell is left unfinished. */
  stopAfter?: number;
  /** Called after each checkpoint is saved (with a run store), with the episode count it holds. */
  onCheckpoint?: (episode: number) => void | Promise<void>;
  /** Polled before each episode: true stops the search after a checkpoint (a graceful shutdown). */
  shouldStop?: () => boolean;
  /** An image folder's splits held in memory as floats instead of read from the image cache by batch (same results). */
  inMemoryData?: boolean;
}

export interface NamedBits {
  name: string;
  wBits: number;
  aBits: number;
}

export interface SearchResult {
  best: {
    episode: number;
    bits: NamedBits[];
    accuracy: number;
    latencyMs: number;
    energyUj: number;
    sizeBytes: number;
    peakMemoryBytes: number;
    feasible: boolean;
  } | null;
  final: {
    /** Test accuracy after the final fine-tune (agreement with the float network when `metric` says so); same as testAccuracy. */
    accuracy: number;
    testAccuracy: number;
    testLoss: number;
    finetuneEpochs: number;
    latencyMs: number;
    energyUj: number;
    sizeBytes: number;
    peakMemoryBytes: number;
    feasible: boolean;
  } | null;
  reference: {
    floatValAccuracy: number;
    floatTestAccuracy: number;
    w8a8LatencyMs: number;
    w8a8EnergyUj: number;
    w8a8SizeBytes: number;
    /** Validation accuracy of uniform W8A8 on the shared weights before the first episode (null when resumed). */
    w8a8ValAccuracyStart?: number | null;
    /** The same after the last episode (null when interrupted): how far the episodes moved the shared weights. */
    w8a8ValAccuracyEnd?: number | null;
    /** What each episode's QAT started from. */
    sharedWeights?: SharedWeights;
  };
  /** What every accuracy above measures: labels, or top-1 agreement with the float network. */
  metric?: 'accuracy' | 'agreement';
  uniform: UniformPoint[];
  episodes: number;
  agent: string;
  profile: string;
  model: string;
  dataset: string;
  constraints: string[];
  backend: string;
  /** Engine the forward passes ran on: onnxruntime or tfjs. */
  evalBackend: string;
  seed: number;
  wallSeconds: number;
  /** Where episode time went, seconds: QAT steps, evaluation, and the rest (agent + env + simulator). */
  timing: { qatSeconds: number; evalSeconds: number; otherSeconds: number; otherShare: number };
  /** The evaluation cache over the whole cell (resumed parts included): hits, and allocations held; null when off. */
  evalCache: { hits: number; entries: number } | null;
  /** True when stopAfter ended the search early. */
  interrupted: boolean;
}

/**
 * The evaluator the env calls once per episode: K QAT steps on the shared weights at the episode's
 * allocation, then accuracy and loss on the first `evalSamples` validation samples.
 */
export class QatEvaluator implements AccuracyEvaluator {
  qatSeconds = 0;
  evalSeconds = 0;
  private ref: AccuracyResult | null;

  constructor(
    private readonly net: QuantizedNetwork,
    private readonly trainer: Trainer,
    private readonly qatSteps: number,
    private readonly evalSamples: number,
    reference: AccuracyResult | null = null,
    /** Forward passes on another engine (onnxruntime); null = the trainer's tfjs evaluation. */
    private readonly forward: ((limit: number) => Promise<AccuracyResult>) | null = null,
    /** Already-evaluated allocations; only valid when nothing trains the weights between evaluations. */
    readonly cache: EvalCache | null = null,
    /** Called after every evaluation (`restore` shared weights: back to the starting weights). */
    private readonly afterEvaluate: (() => void) | null = null,
  ) {
    if (cache && qatSteps > 0) throw new Error('an evaluation cache is only valid without QAT steps');
    this.ref = reference;
  }

  private async validation(): Promise<AccuracyResult> {
    if (this.forward) return this.forward(this.evalSamples);
    return this.trainer.evaluate('val', { limit: this.evalSamples });
  }

  async reference(): Promise<AccuracyResult> {
    if (!this.ref) {
      const saved = this.net.getBits();
      this.net.setBits(saved.map(() => ({ wBits: 32, aBits: 32 })));
      const r = await this.validation();
      this.net.setBits(saved);
      this.ref = { accuracy: r.accuracy, loss: r.loss };
    }
    return this.ref;
  }

  async evaluate(bits: BitConfig): Promise<AccuracyResult> {
    this.net.setBits(bits);
    const t0 = performance.now();
    const key = this.cache ? this.cache.key(bits, weightsFingerprint(this.net.model)) : null;
    const hit = key !== null ? this.cache!.get(key) : null;
    if (hit) {
      this.evalSeconds += (performance.now() - t0) / 1000;
      return hit;
    }
    if (this.qatSteps > 0) await this.trainer.trainSteps(this.qatSteps);
    const t1 = performance.now();
    const r = await this.validation();
    const t2 = performance.now();
    this.afterEvaluate?.();
    this.qatSeconds += (t1 - t0) / 1000;
    this.evalSeconds += (t2 - t1) / 1000;
    if (key !== null) this.cache!.set(key, r);
    return { accuracy: r.accuracy, loss: r.loss };
  }
}

/** What a checkpoint's checkpoint.json carries. */
interface SearchCheckpoint {
  episode: number;
  agentState: unknown;
  reference: AccuracyResult;
  floatTestAccuracy: number;
  best: EpisodeRecord | null;
  timing: { qatSeconds: number; evalSeconds: number; totalSeconds: number };
  /** Evaluated allocations (absent when the cache is off). */
  evalCache?: EvalCacheEntry[];
  evalCacheHits?: number;
  [key: string]: unknown;
}

function episodeRecord(s: EpisodeSummary, wallMs: number, cached: boolean): EpisodeRecord {
  const evaluated = s.evaluated !== false && Number.isFinite(s.accuracy);
  return {
    episode: s.episode,
    bits: s.bits.map((b) => ({ wBits: b.wBits, aBits: b.aBits })),
    accuracy: evaluated ? s.accuracy : null,
    loss: evaluated && Number.isFinite(s.loss) ? s.loss : null,
    latencyMs: s.cost.latencyMs,
    energyUj: s.cost.energyUj,
    sizeBytes: s.cost.sizeBytes,
    peakMemoryBytes: s.cost.peakMemoryBytes,
    feasible: s.feasible,
    reward: s.reward,
    wallMs,
    ...(cached ? { cached: true } : {}),
  };
}

/** A stop request (SIGINT/SIGTERM) that arrived during the float warm-up, before any episode. */
class WarmupStopped extends Error {
  constructor(readonly signal: string) {
    super(`stopped by ${signal} during the float warm-up`);
  }
}

/** The result of a cell stopped before its first episode: nothing measured yet, and nothing to resume from. */
function stoppedBeforeStart(spec: SearchSpec, profile: string, backend: string, wallSeconds: number): SearchResult {
  return {
    best: null,
    final: null,
    reference: {
      floatValAccuracy: NaN,
      floatTestAccuracy: NaN,
      w8a8LatencyMs: NaN,
      w8a8EnergyUj: NaN,
      w8a8SizeBytes: NaN,
      w8a8ValAccuracyStart: null,
      w8a8ValAccuracyEnd: null,
    },
    uniform: [],
    episodes: 0,
    agent: spec.agent,
    profile,
    model: spec.model,
    dataset: spec.dataset,
    constraints: spec.constraints,
    backend,
    evalBackend: spec.evalBackend ?? 'auto',
    seed: spec.seed,
    wallSeconds,
    timing: { qatSeconds: 0, evalSeconds: 0, otherSeconds: 0, otherShare: 0 },
    evalCache: null,
    interrupted: true,
  };
}

/** Float warm-up, cached on disk by (model, dataset, seed, epochs, data) when a cache folder is given. */
async function warmUp(
  spec: SearchSpec,
  dataset: Dataset,
  cacheDir: string | undefined,
  batchSize: number,
  lr: number,
  stoppable: boolean,
): Promise<QuantizedNetwork> {
  const key = `${spec.model.replace(/[^A-Za-z0-9_.-]+/g, '_')}-${spec.dataset}-seed${spec.seed}-e${spec.warmupEpochs}-n${dataset.train.labels.length}${(spec.threads ?? 1) > 1 ? `-t${spec.threads}` : ''}`;
  const cached = cacheDir ? join(cacheDir, key) : null;
  if (cached && existsSync(join(cached, 'model.json'))) {
    log.info(`float warm-up: reusing ${cached}`);
    return (await loadNetwork(cached)).net;
  }
  const net = await loadModel(spec.model, {
    inputShape: dataset.inputShape,
    numClasses: dataset.numClasses,
    seed: spec.seed,
  });
  if (spec.warmupEpochs > 0) {
    const trainer = createTrainer(net, dataset, {
      lr,
      batchSize,
      optimizer: 'adam',
      seed: spec.seed,
      threads: spec.threads ?? 1,
    });
    const progress = new Progress({ label: 'float warm-up', total: spec.warmupEpochs * trainer.stepsPerEpoch });
    try {
      await trainer.trainEpochs(spec.warmupEpochs, (p) => {
        progress.update((p.epoch - 1) * p.stepsPerEpoch + p.step, `loss ${p.loss.toFixed(3)}`);
        // SIGINT/SIGTERM (the trainer yields to the event loop every few steps): nothing is kept of a half warm-up
        if (stoppable && stopRequested() !== null) throw new WarmupStopped(stopRequested() as string);
      });
      progress.finish();
    } catch (e) {
      progress.abandon();
      net.model.dispose();
      throw e;
    } finally {
      trainer.dispose();
    }
  }
  if (cached) {
    // write to a private folder, then rename: concurrent workers never see a half-written warm-up
    const tmp = `${cached}.tmp-${process.pid}-${Date.now()}`;
    mkdirSync(tmp, { recursive: true });
    await saveNetwork(net, tmp, {
      warmupEpochs: spec.warmupEpochs,
      model: spec.model,
      dataset: spec.dataset,
      seed: spec.seed,
    });
    try {
      renameSync(tmp, cached);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another worker got there first: same weights
    }
  }
  return net;
}

/** Runs (or resumes, when the cell has a checkpoint) one search. */
export async function runSearch(spec: SearchSpec, opts: SearchOptions = {}): Promise<SearchResult> {
  const started = performance.now();
  const backend = backendInfo()?.name ?? tf.getBackend();
  await checkEvalBackend(spec.evalBackend);
  const cell = opts.cell;
  const profile: Profile = loadProfile(spec.profile);
  // a network loaded from a file is already trained: the fine-tune regime (no warm-up, PTQ start, frozen BatchNorm, small lr)
  const pretrained = !isZooName(spec.model);
  const fileShape = pretrained ? modelFileInputShape(spec.model) : null;
  const preprocess = spec.preprocess ?? (pretrained ? (readModelPreprocess(spec.model) ?? undefined) : undefined);
  const dataset = await loadDataset(spec.dataset, {
    dataDir: spec.dataDir,
    seed: spec.seed,
    limit: spec.trainLimit,
    ...(spec.valFraction !== undefined ? { valFraction: spec.valFraction } : {}),
    ...(spec.testFraction !== undefined ? { testFraction: spec.testFraction } : {}),
    ...(fileShape ? { imageSize: [fileShape[0], fileShape[1]] as [number, number] } : {}),
    ...(preprocess ? { preprocess } : {}),
    ...(opts.inMemoryData ? { inMemory: true } : {}),
  });
  if (dataset.labeled === false && !pretrained) {
    disposeDataset(dataset);
    throw new UserError(
      `${dataset.source} holds images without labels; a zoo model trained from scratch has no float network to agree with`,
      { field: '--model', expected: 'a pretrained model.json, or class subfolders' },
    );
  }
  const defaults = trainingDefaults(spec.dataset);
  const batchSize = spec.batchSize ?? defaults.batchSize;
  const lr = spec.lr ?? defaults.lr;
  let targets: TargetsApplied = { metric: 'accuracy', distill: false, temperature: DEFAULT_TEMPERATURE };
  let net: QuantizedNetwork | null = null;
  let trainer: Trainer | null = null;
  let agent: Agent | null = null;
  let ortEval: OrtEvaluator | null = null;
  let startWeights: tf.Tensor[] | null = null;
  const sharedWeights: SharedWeights = spec.sharedWeights ?? (pretrained ? 'restore' : 'carry');
  try {
    const checkpoint = cell ? loadCheckpoint(cell) : null;
    const saved = (checkpoint?.state ?? null) as SearchCheckpoint | null;
    if (saved) {
      net = (await loadNetwork(join(checkpoint!.dir, 'network'))).net;
      log.info(`resuming ${cell!.id} after episode ${saved.episode}`);
    } else {
      try {
        net = await warmUp(
          pretrained ? { ...spec, warmupEpochs: 0 } : spec,
          dataset,
          opts.warmupCacheDir,
          batchSize,
          lr,
          cell !== undefined,
        );
      } catch (e) {
        if (!(e instanceof WarmupStopped) || !cell) throw e;
        log.info(`${cell.id}: ${e.message}; no episode ran, so the cell starts from the beginning when resumed`);
        return stoppedBeforeStart(spec, profile.id, backend, (performance.now() - started) / 1000);
      }
    }
    checkCompatible(net, dataset, `model ${spec.model}`);
    // the forward passes' engine, from here on (float reference, calibration checks, every episode's evaluation)
    const engine = await resolveEvalBackend(spec.evalBackend ?? 'auto', net as QuantNetwork);
    ortEval = engine.evaluator;
    if (dataset.labeled === false || spec.target === 'fidelity' || spec.distill) {
      // targets from the float network: the loaded file (also when resuming: the checkpoint holds QAT weights)
      const teacher = saved
        ? await loadModel(spec.model, {
            inputShape: dataset.inputShape,
            numClasses: dataset.numClasses,
            seed: spec.seed,
          })
        : net;
      const before = teacher.getBits();
      teacher.setBits(before.map(() => ({ wBits: 32, aBits: 32 })));
      // the float logits through onnxruntime when it evaluates (the teacher of a resumed search gets its own session)
      const teacherEval =
        ortEval && teacher !== net
          ? (await resolveEvalBackend(engine.name, teacher as QuantNetwork)).evaluator
          : ortEval;
      let logits: Partial<Record<'train' | 'val' | 'test', tf.Tensor2D>> | undefined;
      if (teacherEval) {
        const fidelity = dataset.labeled === false || spec.target === 'fidelity';
        logits = {};
        for (const name of fidelity ? (['train', 'val', 'test'] as const) : (['train'] as const)) {
          const z = await teacherEval.logits(dataset[name]);
          logits[name] = tf.tensor2d(z, [
            dataset[name].labels.length,
            z.length / Math.max(1, dataset[name].labels.length),
          ]);
        }
        if (teacherEval !== ortEval) await teacherEval.dispose();
      }
      targets = applyTargets(teacher, dataset, {
        ...(spec.target ? { target: spec.target } : {}),
        distill: spec.distill === true,
        batchSize: Math.min(32, batchSize),
        ...(logits ? { logits } : {}),
      });
      teacher.setBits(before);
      if (teacher !== net) teacher.model.dispose();
    }
    const layers = net.layers;
    const table: CostTable = buildCostTable(
      profile,
      layers,
      [...new Set([...spec.bitChoices, 8, 32])].sort((a, b) => a - b),
    );
    // QAT during the search and the final fine-tune start from trained weights: fine-tune learning rate
    const qatLr =
      spec.lr !== undefined
        ? spec.lr / 4
        : pretrained
          ? PRETRAINED_FINETUNE.lr
          : trainingDefaults(spec.dataset, true).lr;
    const evalBatchSize = Math.max(
      8,
      Math.min(
        256,
        2 **
          Math.floor(
            Math.log2((64 * 224 * 224 * 3) / (dataset.inputShape[0] * dataset.inputShape[1] * dataset.inputShape[2])),
          ),
      ),
    );
    const trainerExtras = { evalBatchSize, ...(targets.distill ? { temperature: targets.temperature } : {}) };
    trainer = createTrainer(net, dataset, {
      lr: qatLr,
      batchSize,
      optimizer: 'adam',
      seed: spec.seed + 1,
      threads: spec.threads ?? 1,
      ...trainerExtras,
    });
    if (saved && checkpoint) await trainer.loadState(join(checkpoint.dir, 'trainer'));
    // accuracy on a split through the search's forward-pass engine (onnxruntime when it evaluates, else the trainer)
    const qatTrainer = trainer;
    const evaluateSplit = (split: Split, limit?: number): Promise<AccuracyResult> => {
      const o = limit !== undefined ? { limit } : {};
      return ortEval ? evaluateWith(ortEval, net as QuantNetwork, split, o) : qatTrainer.evaluate(split, o);
    };

    let floatTestAccuracy = saved?.floatTestAccuracy ?? NaN;
    if (!saved) {
      net.setBits(layers.map(() => ({ wBits: 32, aBits: 32 })));
      floatTestAccuracy = (await evaluateSplit(dataset.test)).accuracy;
      // activation ranges from training batches at 8 bits, so that the first episodes see calibrated ranges
      net.setBits(layers.map(() => ({ wBits: 8, aBits: 8 })));
      if (pretrained)
        await postTrainingQuantize(net as QuantNetwork, dataset.train, {
          batchSize: Math.min(16, batchSize),
          ...(ortEval ? { collect: ortEval.statsCollector() } : {}),
        });
      else calibrateNetwork(net, dataset.train);
    } else if (pretrained) {
      // the bias-correction means are not part of the checkpoint: measure them again
      const statsOpts = { batchSize: Math.min(16, batchSize) };
      setBiasCorrection(
        net as QuantNetwork,
        ortEval
          ? await ortEval.statsCollector()(net as QuantNetwork, dataset.train, statsOpts)
          : collectLayerStats(net as QuantNetwork, dataset.train, statsOpts),
      );
    }
    if (pretrained) applyFineTuneRegime(net as QuantNetwork, PRETRAINED_FINETUNE);
    let w8a8Start: number | null = null;
    if (!saved) {
      net.setBits(layers.map(() => ({ wBits: 8, aBits: 8 })));
      w8a8Start = (await evaluateSplit(dataset.val, spec.evalSamples)).accuracy;
    }
    if (engine.reason) log.warn(`forward passes on tfjs: ${engine.reason}`);
    log.info(`forward passes: ${engine.name}${engine.name === 'onnxruntime' ? ' (QAT on tfjs)' : ''}`);
    const forwardNet = net as QuantNetwork;
    const forward = ortEval ? async (limit: number) => evaluateWith(ortEval, forwardNet, dataset.val, { limit }) : null;
    const cacheOn = spec.evalCache !== false && spec.qatSteps === 0;
    const evalCache = cacheOn
      ? new EvalCache(
          { dataset: spec.dataset, seed: spec.seed, split: 'val', samples: spec.evalSamples, engine: engine.name },
          saved?.evalCache ?? [],
        )
      : null;
    if (evalCache) evalCache.hits = saved?.evalCacheHits ?? 0;
    let restore: (() => void) | null = null;
    if (sharedWeights === 'restore' && spec.qatSteps > 0) {
      // tensors are immutable: the variables take these values back without copying (a checkpoint holds them too)
      const model = net.model;
      const kept = model.weights.map((w) => tf.keep(w.read().clone()));
      startWeights = kept;
      const tr = trainer;
      restore = () => {
        model.weights.forEach((w, i) => w.write(kept[i]));
        tr.resetOptimizer();
      };
    }
    const evaluator = new QatEvaluator(
      net,
      trainer,
      spec.qatSteps,
      spec.evalSamples,
      saved?.reference ?? null,
      forward,
      evalCache,
      restore,
    );
    const reference = await evaluator.reference();
    const env = new BitAllocationEnv({
      layers,
      bitChoices: spec.bitChoices,
      cost: (bits) => table.costAllocation(bits),
      evaluator,
      constraints: spec.constraints,
      constraintMode: spec.constraintMode,
      reward: spec.reward,
      stepMode: spec.stepMode,
      pinFirstLast: spec.pinFirstLast,
      seed: spec.seed,
    });
    agent = createAgent(spec.agent, spec.agentOptions);
    await agent.setup({
      ...env.agentContext(spec.seed),
      training: {
        net,
        trainer,
        dataset,
        costTable: table,
        evalSamples: spec.evalSamples,
        isFeasible: (bits) => env.isFeasible(bits),
        ...(ortEval
          ? { evaluate: (split: Split) => evaluateWith(ortEval, forwardNet, split, { batchSize: split.labels.length }) }
          : {}),
      },
    });

    let done = 0;
    let best: EpisodeRecord | null = null;
    let priorSeconds = 0;
    if (saved) {
      await agent.setState(saved.agentState);
      env.setEpisodeCount(saved.episode);
      evaluator.qatSeconds = saved.timing.qatSeconds;
      evaluator.evalSeconds = saved.timing.evalSeconds;
      priorSeconds = saved.timing.totalSeconds;
      done = saved.episode;
      best = saved.best;
    }
    if (cell) truncateEpisodes(cell, done); // drop episodes recorded after the checkpoint: they are re-run

    const label = opts.label ?? `${spec.agent} on ${profile.id}`;
    const progress = new Progress({ label, total: spec.episodes, plain: opts.plainProgress });
    let episodeSeconds = priorSeconds;
    let ranThisCall = 0;
    const checkpointNow = async (episode: number): Promise<void> => {
      if (!cell) return;
      const state: SearchCheckpoint = {
        episode,
        agentState: agent!.getState(),
        reference,
        floatTestAccuracy,
        best,
        timing: { qatSeconds: evaluator.qatSeconds, evalSeconds: evaluator.evalSeconds, totalSeconds: episodeSeconds },
        evalBackend: engine.name,
        ...(evalCache ? { evalCache: evalCache.save(), evalCacheHits: evalCache.hits } : {}),
      };
      await saveCheckpoint(cell, state, async (dir) => {
        await saveNetwork(net!, join(dir, 'network'));
        await trainer!.saveState(join(dir, 'trainer'));
      });
      await opts.onCheckpoint?.(episode);
    };
    if (cell && !saved) await checkpointNow(0);

    if (agent.kind === 'allocation') {
      log.info(
        `${spec.agent} proposes a fixed set of allocations and stops when it has evaluated them, possibly before the ${spec.episodes} episodes`,
      );
    }
    while (done < spec.episodes) {
      if (agent.kind === 'allocation' && agent.exhausted?.()) {
        log.info(
          `${spec.agent}: stopping after ${done} of ${spec.episodes} episodes: it has evaluated every allocation it proposes (nothing is left to try)`,
        );
        break;
      }
      if (opts.stopAfter !== undefined && ranThisCall >= opts.stopAfter) break;
      // let signal handlers (and worker messages) run: the episode's awaits alone never reach the event loop
      await new Promise<void>((r) => setImmediate(r));
      if (cell && stopRequested() !== null) break; // SIGINT/SIGTERM: checkpointed below
      if (opts.shouldStop?.()) {
        if (cell && done % spec.checkpointEvery !== 0) await checkpointNow(done);
        break;
      }
      const t0 = performance.now();
      const hitsBefore = evalCache?.hits ?? 0;
      const summary = await runEpisode(env, agent);
      const wallMs = performance.now() - t0;
      const cached = (evalCache?.hits ?? 0) > hitsBefore;
      episodeSeconds += wallMs / 1000;
      done = summary.episode;
      ranThisCall++;
      const record = episodeRecord(summary, wallMs, cached);
      if (cell) appendEpisode(cell, record);
      if (isBetterEpisode(record, best)) {
        best = record;
        if (cell) cell.offerBest(record);
      }
      opts.onEpisode?.(record);
      if (cell && (done % spec.checkpointEvery === 0 || done === spec.episodes)) await checkpointNow(done);
      const bestText = best
        ? `best ${(100 * (best.accuracy ?? 0)).toFixed(2)}% @ ${best.latencyMs.toPrecision(3)} ms`
        : 'no feasible yet';
      progress.update(done, bestText);
    }
    if (
      spec.agent === 'uniform' &&
      best &&
      best.bits.some((b) => b.wBits !== best.bits[0]?.wBits || b.aBits !== best.bits[0]?.aBits)
    ) {
      log.warn(
        `uniform: the best allocation (${best.bits.map((b) => `${b.wBits}/${b.aBits}`).join(',')}, episode ${best.episode}) is not uniform: ` +
          `its uniform proposal was over budget and constraint mode '${spec.constraintMode}' lowered some layers to fit. ` +
          `Use constraintMode 'reject' for strictly uniform baselines.`,
      );
    }
    const interrupted = done < spec.episodes && !(agent.kind === 'allocation' && agent.exhausted?.());
    if (!interrupted && done < spec.episodes && cell) await checkpointNow(done);
    if (interrupted && cell && stopRequested() !== null) {
      await checkpointNow(done);
      log.info(`${cell.id}: stopped by ${stopRequested()} after episode ${done} of ${spec.episodes}; checkpoint saved`);
    }

    const timing = {
      qatSeconds: evaluator.qatSeconds,
      evalSeconds: evaluator.evalSeconds,
      otherSeconds: Math.max(0, episodeSeconds - evaluator.qatSeconds - evaluator.evalSeconds),
      otherShare:
        episodeSeconds > 0
          ? Math.max(0, episodeSeconds - evaluator.qatSeconds - evaluator.evalSeconds) / episodeSeconds
          : 0,
    };
    const ref8 = env.referenceCost;
    const result: SearchResult = {
      best: best
        ? {
            episode: best.episode,
            bits: namedBits(net, best.bits),
            accuracy: best.accuracy ?? NaN,
            latencyMs: best.latencyMs,
            energyUj: best.energyUj,
            sizeBytes: best.sizeBytes,
            peakMemoryBytes: best.peakMemoryBytes,
            feasible: best.feasible,
          }
        : null,
      final: null,
      reference: {
        floatValAccuracy: reference.accuracy,
        floatTestAccuracy,
        w8a8LatencyMs: ref8.latencyMs,
        w8a8EnergyUj: ref8.energyUj,
        w8a8SizeBytes: ref8.sizeBytes,
        w8a8ValAccuracyStart: w8a8Start,
        w8a8ValAccuracyEnd: null,
        sharedWeights,
      },
      metric: targets.metric,
      uniform: [],
      episodes: done,
      agent: spec.agent,
      profile: profile.id,
      model: spec.model,
      dataset: spec.dataset,
      constraints: spec.constraints,
      backend,
      evalBackend: engine.name,
      seed: spec.seed,
      wallSeconds: 0,
      timing,
      evalCache: evalCache ? { hits: evalCache.hits, entries: evalCache.size } : null,
      interrupted,
    };
    if (interrupted) {
      result.wallSeconds = (performance.now() - started) / 1000;
      return result;
    }

    // uniform-precision reference points at the shared weights (for reports), before the fine-tune moves them
    for (const b of [...spec.bitChoices].sort((x, y) => y - x)) {
      const bits = layers.map(() => ({ wBits: b, aBits: b }));
      net.setBits(bits);
      const r = await evaluateSplit(dataset.val, spec.evalSamples);
      const c = table.costAllocation(bits);
      if (b === 8) result.reference.w8a8ValAccuracyEnd = r.accuracy;
      result.uniform.push({
        bits: { wBits: b, aBits: b },
        accuracy: r.accuracy,
        latencyMs: c.latencyMs,
        energyUj: c.energyUj,
        sizeBytes: c.sizeBytes,
        peakMemoryBytes: c.peakMemoryBytes,
        feasible: env.isFeasible(bits),
      });
    }
    if (result.reference.w8a8ValAccuracyEnd === null) {
      net.setBits(layers.map(() => ({ wBits: 8, aBits: 8 })));
      const r = await evaluateSplit(dataset.val, spec.evalSamples);
      result.reference.w8a8ValAccuracyEnd = r.accuracy;
    }
    if (cell) cell.writeUniform(result.uniform);

    if (best) {
      net.setBits(best.bits);
      const ft = createTrainer(net, dataset, {
        lr: qatLr,
        batchSize,
        optimizer: 'adam',
        seed: spec.seed + 2,
        threads: spec.threads ?? 1,
        ...trainerExtras,
      });
      if (spec.finetuneEpochs > 0) {
        const p = new Progress({
          label: 'fine-tune',
          total: spec.finetuneEpochs * ft.stepsPerEpoch,
          plain: opts.plainProgress,
        });
        await ft.trainEpochs(
          spec.finetuneEpochs,
          (e) => p.update((e.epoch - 1) * e.stepsPerEpoch + e.step, `loss ${e.loss.toFixed(3)}`),
          {
            schedule: 'cosine',
          },
        );
        p.finish();
      }
      const test = await ft.evaluate('test');
      ft.dispose();
      result.final = {
        accuracy: test.accuracy,
        testAccuracy: test.accuracy,
        testLoss: test.loss,
        finetuneEpochs: spec.finetuneEpochs,
        latencyMs: best.latencyMs,
        energyUj: best.energyUj,
        sizeBytes: best.sizeBytes,
        peakMemoryBytes: best.peakMemoryBytes,
        feasible: best.feasible,
      };
      if (cell) await saveNetwork(net, join(cell.dir, 'final-network'), { bits: best.bits });
    } else {
      log.warn(`${label}: no feasible allocation found in ${done} episodes; nothing to fine-tune`);
    }
    result.wallSeconds = priorSeconds + (performance.now() - started) / 1000;
    if (cell && best && result.final) {
      const final: FinalRecord = {
        bits: best.bits,
        testAccuracy: result.final.testAccuracy,
        testLoss: result.final.testLoss,
        latencyMs: best.latencyMs,
        energyUj: best.energyUj,
        sizeBytes: best.sizeBytes,
        peakMemoryBytes: best.peakMemoryBytes,
        feasible: best.feasible,
        wallSeconds: result.wallSeconds,
        episodesToBest: best.episode,
        layerNames: layers.map((l) => l.name),
      };
      cell.writeFinal(final);
    }
    return result;
  } finally {
    await ortEval?.dispose();
    agent?.dispose?.();
    trainer?.dispose();
    net?.model.dispose();
    for (const t of startWeights ?? []) t.dispose();
    disposeDataset(dataset);
  }
}
