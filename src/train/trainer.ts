/**
 * The trainer: minibatch training and evaluation of a network on a dataset, used for float
 * training, QAT (the network's bits are whatever `setBits` last set) and the search's short
 * per-episode fine-tunes. One optimizer lives across calls, so `trainSteps(k)` is cheap to call
 * repeatedly; batches cycle through a seeded shuffle of the training split. Loss: softmax
 * cross-entropy (on logits, or on probabilities when the model ends in a softmax) plus the
 * model's regularisation losses. BatchNorm runs in training mode during training.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../backend/index.js';
import { fusedAdam } from '../backend/kernels/index.js';
import { UserError } from '../errors.js';
import type { Dataset, Split } from '../data/api.js';
import { splitInputs } from '../data/inputs.js';
import { Rng } from '../util/rng.js';
import { createDataParallel, parallelCounters } from './parallel.js';

export type OptimizerName = 'adam' | 'sgd' | 'momentum';
export const OPTIMIZERS: readonly OptimizerName[] = ['adam', 'sgd', 'momentum'];

export interface TrainerOptions {
  lr: number;
  batchSize: number;
  optimizer: OptimizerName;
  /** Seed of the batch shuffle. */
  seed: number;
  /** Batch size for evaluation (default 256). */
  evalBatchSize?: number;
  /**
   * Threads for training steps (default 1): above 1 on the wasm backend, each minibatch is split
   * across worker threads (data-parallel, see parallel.ts); deterministic for a given thread count.
   */
  threads?: number;
  /**
   * Distillation temperature T: the training loss becomes T^2 * cross-entropy of the soft targets
   * in the training split against softmax(z / T) of the outputs (see distill.ts). Default: none.
   */
  temperature?: number;
  /**
   * Largest chunk of a minibatch in one forward/backward pass; a larger minibatch is split into
   * chunks whose gradients are summed before one optimizer update (same update as one pass, except
   * for BatchNorm batch statistics, which are per chunk). Default: the whole batch for inputs of
   * up to 150,528 elements / 8 (8 samples of 224x224x3 per chunk), so small networks are unaffected.
   */
  microBatch?: number;
}

/** Chunk size that keeps a 224x224x3 training pass (MobileNetV2-class) inside the 4 GB wasm heap. */
export function defaultMicroBatch(inputShape: readonly number[]): number {
  const elems = inputShape.reduce((a, b) => a * b, 1);
  return Math.max(1, Math.floor((8 * 224 * 224 * 3) / Math.max(1, elems)));
}

/** Turns the wasm backend's out-of-memory failures into an error that says which setting to lower. */
export function explainOutOfMemory(e: unknown, what: string, setting: string): never {
  const msg = e instanceof Error ? e.message : String(e);
  if (
    /memory access out of bounds|out of memory|Aborted\(OOM\)|Cannot enlarge memory|Array buffer allocation failed/i.test(
      msg,
    )
  ) {
    throw new UserError(`ran out of memory (the wasm heap holds at most 4 GB) ${what}: ${msg}`, {
      field: setting,
      expected: `a smaller ${setting}`,
    });
  }
  throw e;
}

/** Anything with a trainable tfjs model: a QuantizedNetwork or a plain model wrapper. */
export interface TrainableNetwork {
  readonly model: tf.LayersModel;
}

export interface TrainStats {
  /** Mean training loss over the steps. */
  loss: number;
  /** Training accuracy over the steps (batches seen in training mode). */
  accuracy: number;
  steps: number;
  samples: number;
  seconds: number;
  samplesPerSec: number;
}

export interface EpochProgress {
  /** 1-based epoch within this call. */
  epoch: number;
  epochs: number;
  /** Steps done in this epoch. */
  step: number;
  stepsPerEpoch: number;
  /** Running mean loss / accuracy of this epoch. */
  loss: number;
  accuracy: number;
}

export type LrSchedule = 'constant' | 'cosine';

export interface EpochOptions {
  /**
   * `cosine`: the learning rate follows a half cosine from the trainer's rate down to 1% of it
   * over the steps of this call, step by step, and is restored afterwards. Default `constant`.
   */
  schedule?: LrSchedule;
  /** Called after each epoch (e.g. to evaluate on the validation split). */
  onEpochEnd?: (epoch: number, stats: TrainStats) => void | Promise<void>;
}

export interface EvalResult {
  accuracy: number;
  loss: number;
  samples: number;
  samplesPerSec: number;
}

export type SplitName = 'train' | 'val' | 'test';

export interface Trainer {
  /** Trains on `k` minibatches, continuing the current shuffle (reshuffled when it runs out). */
  trainSteps(k: number): Promise<TrainStats>;
  /** Trains `n` full epochs (each a fresh shuffle); `onProgress` is called after every step. */
  trainEpochs(n: number, onProgress?: (p: EpochProgress) => void, opts?: EpochOptions): Promise<TrainStats[]>;
  /** Accuracy and mean loss on a split (inference mode, batched); `limit` evaluates the first samples only. */
  evaluate(split: SplitName | Split, opts?: { limit?: number }): Promise<EvalResult>;
  /** Steps per epoch at the current batch size. */
  readonly stepsPerEpoch: number;
  /** Training throughput of the last trainSteps / trainEpochs call. */
  readonly samplesPerSec: number;
  /** Minibatches trained so far. */
  readonly stepsDone: number;
  setLearningRate(lr: number): void;
  readonly learningRate: number;
  /**
   * Writes the optimizer's state (moments, iteration count), the shuffle (order, position, RNG
   * state), steps done and learning rate into `dir`, so that a resumed run continues exactly.
   * The network's weights are not included (save them with saveNetwork).
   */
  saveState(dir: string): Promise<void>;
  /** Restores what saveState wrote; the trainer must have the same optimizer, batch size and training split size. */
  loadState(dir: string): Promise<void>;
  /** Starts the optimizer afresh (no moments, iteration count 0) at the current learning rate. */
  resetOptimizer(): void;
  /** Frees the optimizer state. */
  dispose(): void;
}

interface AdamPowers {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}

function adamPowers(optimizer: tf.Optimizer): AdamPowers | null {
  const o = optimizer as unknown as Partial<AdamPowers>;
  return o.accBeta1 && o.accBeta2 ? (o as AdamPowers) : null;
}

/** Adam's running beta1^t and beta2^t, which getWeights() leaves out; null for other optimizers. */
function readAdamPowers(optimizer: tf.Optimizer): [number, number] | null {
  const p = adamPowers(optimizer);
  return p ? [p.accBeta1.dataSync()[0], p.accBeta2.dataSync()[0]] : null;
}

function writeAdamPowers(optimizer: tf.Optimizer, values: [number, number]): void {
  const p = adamPowers(optimizer);
  if (!p) return;
  tf.tidy(() => {
    p.accBeta1.assign(tf.scalar(values[0]));
    p.accBeta2.assign(tf.scalar(values[1]));
  });
}

export function makeOptimizer(name: OptimizerName, lr: number): tf.Optimizer {
  switch (name) {
    case 'adam':
      // tf.train.adam's optimizer, with one kernel call per variable on wasm (bit-identical).
      return fusedAdam(lr);
    case 'sgd':
      return tf.train.sgd(lr);
    case 'momentum':
      return tf.train.momentum(lr, 0.9);
  }
}

/** True when the model's last layer outputs probabilities (a softmax) rather than logits. */
export function outputsProbabilities(model: tf.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  if (!last) return false;
  if (last.getClassName() === 'Softmax') return true;
  const act = (last.getConfig() as { activation?: unknown }).activation;
  return act === 'softmax';
}

/** Per-sample T^2 * cross-entropy of soft targets against the outputs softened at temperature T, [n]. */
function softenedCrossEntropy(y: tf.Tensor, out: tf.Tensor, probabilities: boolean, T: number): tf.Tensor1D {
  const z = probabilities ? tf.log(tf.clipByValue(out, 1e-12, 1)) : out;
  const ce = tf.losses.softmaxCrossEntropy(y, tf.div(z, T), undefined, undefined, tf.Reduction.NONE);
  return tf.mul<tf.Tensor1D>(ce, T * T);
}

/** Per-sample cross-entropy, [n]. */
export function crossEntropy(y: tf.Tensor, out: tf.Tensor, probabilities: boolean): tf.Tensor1D {
  if (probabilities) {
    const p = tf.clipByValue(out, 1e-7, 1 - 1e-7);
    return tf.neg(tf.sum(tf.mul(y, tf.log(p)), -1)) as tf.Tensor1D;
  }
  return tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Tensor1D>(y, out, undefined, undefined, tf.Reduction.NONE);
}

function correctCount(y: tf.Tensor, out: tf.Tensor): tf.Scalar {
  return tf.sum<tf.Scalar>(tf.cast(tf.equal(tf.argMax(out, -1), tf.argMax(y, -1)), 'float32'));
}

export function createTrainer(net: TrainableNetwork, dataset: Dataset, opts: TrainerOptions): Trainer {
  if (!(opts.lr > 0) || !Number.isFinite(opts.lr)) throw new Error(`createTrainer: lr must be > 0, got ${opts.lr}`);
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new Error(`createTrainer: batchSize must be a positive integer, got ${opts.batchSize}`);
  }
  const model = net.model;
  const train = dataset.train;
  const trainInputs = splitInputs(train);
  const n = train.labels.length;
  if (n === 0) throw new Error(`createTrainer: dataset ${dataset.name} has an empty training split`);
  const batchSize = Math.min(opts.batchSize, n);
  const stepsPerEpoch = Math.max(1, Math.floor(n / batchSize));
  const evalBatch = opts.evalBatchSize ?? 256;
  const probabilities = outputsProbabilities(model);
  const rng = new Rng(opts.seed);
  let optimizer = makeOptimizer(opts.optimizer, opts.lr);
  let lr = opts.lr;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  let cursor = n; // forces a shuffle before the first batch
  let stepsDone = 0;
  let lastRate = 0;
  let disposed = false;
  const parallel = createDataParallel(net, opts.threads ?? 1, probabilities, (y, out) =>
    crossEntropy(y, out, probabilities),
  );

  const setLr = (value: number): void => {
    lr = value;
    // Every tfjs optimizer reads its `learningRate` field at each update; SGD also caches a scalar.
    // (instanceof cannot tell them apart: tfjs optimizers override Symbol.hasInstance.)
    const o = optimizer as unknown as { learningRate: number; setLearningRate?: (v: number) => void };
    if (typeof o.setLearningRate === 'function') o.setLearningRate(value);
    else o.learningRate = value;
  };

  const reshuffle = (): void => {
    rng.shuffle(perm as unknown as number[]);
    cursor = 0;
  };

  const micro = Math.max(1, Math.min(batchSize, opts.microBatch ?? defaultMicroBatch(dataset.inputShape)));

  /** One minibatch in chunks of `micro`: gradients summed (weighted by chunk size), one update. */
  const chunkedStep = (idx: Int32Array, vars: tf.Variable[]): [number, number] => {
    let acc: Record<string, tf.Tensor> | null = null;
    let lossSum = 0;
    let correct = 0;
    for (let s = 0; s < idx.length; s += micro) {
      const part = idx.subarray(s, Math.min(idx.length, s + micro));
      const weight = part.length / idx.length;
      const { value, grads, c } = tf.tidy(() => {
        const it = tf.tensor1d(part, 'int32');
        const xb = trainInputs.gather(part);
        const yb = tf.gather(train.y, it);
        let kept: tf.Tensor | null = null;
        const r = tf.variableGrads(() => {
          const out = model.apply(xb, { training: true }) as tf.Tensor;
          kept = tf.keep(out);
          const perSample =
            opts.temperature !== undefined
              ? softenedCrossEntropy(yb, out, probabilities, opts.temperature)
              : crossEntropy(yb, out, probabilities);
          let loss = tf.mean<tf.Scalar>(perSample);
          for (const reg of model.calculateLosses()) loss = tf.add<tf.Scalar>(loss, reg);
          return tf.mul<tf.Scalar>(loss, weight);
        }, vars);
        const cc = kept ? correctCount(yb, kept) : tf.scalar(0);
        (kept as tf.Tensor | null)?.dispose();
        return { value: r.value, grads: r.grads, c: cc };
      });
      lossSum += value.dataSync()[0];
      correct += c.dataSync()[0];
      value.dispose();
      c.dispose();
      if (!acc) acc = grads;
      else {
        const prev: Record<string, tf.Tensor> = acc;
        const next: Record<string, tf.Tensor> = {};
        for (const k of Object.keys(prev)) next[k] = grads[k] ? tf.add(prev[k], grads[k]) : prev[k];
        for (const k of Object.keys(prev)) if (grads[k]) prev[k].dispose();
        for (const g of Object.values(grads)) g.dispose();
        acc = next;
      }
    }
    if (acc) {
      optimizer.applyGradients(acc);
      for (const g of Object.values(acc)) g.dispose();
    }
    return [lossSum, correct];
  };

  /** One minibatch: returns [loss, correct] of the batch. */
  const step = async (): Promise<[number, number, number]> => {
    if (cursor + batchSize > n) reshuffle();
    const idx = perm.slice(cursor, cursor + batchSize);
    cursor += batchSize;
    // distillation and chunked minibatches (large inputs) run on this thread: the workers compute the plain loss in one pass
    if (opts.temperature === undefined && micro >= idx.length && parallel != null && (await parallel.usable())) {
      const r = await parallel.step(idx, trainInputs, train.y);
      const t0 = performance.now();
      optimizer.applyGradients(r.grads);
      for (const g of Object.values(r.grads)) g.dispose();
      parallelCounters.optimizerMs += performance.now() - t0;
      stepsDone++;
      return [r.loss, r.correct, idx.length];
    }
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    if (micro < idx.length) {
      try {
        const [l, c] = chunkedStep(idx, vars);
        stepsDone++;
        return [l, c, idx.length];
      } catch (e) {
        explainOutOfMemory(
          e,
          `training at batch ${batchSize} in chunks of ${micro} on ${dataset.inputShape.join('x')} inputs`,
          '--batch-size',
        );
      }
    }
    let correct = 0;
    let lossValue: tf.Scalar;
    try {
      lossValue = tf.tidy(() => {
        const it = tf.tensor1d(idx, 'int32');
        const xb = trainInputs.gather(idx);
        const yb = tf.gather(train.y, it);
        let kept: tf.Tensor | null = null;
        const cost = optimizer.minimize(
          () => {
            const out = model.apply(xb, { training: true }) as tf.Tensor;
            kept = tf.keep(out);
            const perSample =
              opts.temperature !== undefined
                ? softenedCrossEntropy(yb, out, probabilities, opts.temperature)
                : crossEntropy(yb, out, probabilities);
            let loss = tf.mean<tf.Scalar>(perSample);
            for (const r of model.calculateLosses()) loss = tf.add<tf.Scalar>(loss, r);
            return loss;
          },
          true,
          vars,
        );
        if (kept) {
          correct = correctCount(yb, kept).dataSync()[0];
          (kept as tf.Tensor).dispose();
        }
        return cost as tf.Scalar;
      });
    } catch (e) {
      explainOutOfMemory(e, `training at batch ${batchSize} on ${dataset.inputShape.join('x')} inputs`, '--batch-size');
    }
    const v = lossValue.dataSync()[0];
    lossValue.dispose();
    stepsDone++;
    return [v, correct, idx.length];
  };

  const run = async (
    k: number,
    each?: (i: number, loss: number, correct: number, seen: number) => void,
  ): Promise<TrainStats> => {
    if (disposed) throw new Error('trainer used after dispose()');
    const t0 = performance.now();
    let lossSum = 0;
    let correct = 0;
    let samples = 0;
    for (let i = 0; i < k; i++) {
      const [l, c, b] = await step();
      lossSum += l * b;
      correct += c;
      samples += b;
      each?.(i + 1, lossSum / samples, correct, samples);
      if ((i + 1) % 25 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    const seconds = (performance.now() - t0) / 1000;
    lastRate = seconds > 0 ? samples / seconds : 0;
    return {
      loss: samples ? lossSum / samples : NaN,
      accuracy: samples ? correct / samples : NaN,
      steps: k,
      samples,
      seconds,
      samplesPerSec: lastRate,
    };
  };

  const evaluate = async (which: SplitName | Split, eo: { limit?: number } = {}): Promise<EvalResult> => {
    if (disposed) throw new Error('trainer used after dispose()');
    const split = typeof which === 'string' ? dataset[which] : which;
    return evaluateModel(model, split, {
      batchSize: evalBatch,
      ...(eo.limit !== undefined ? { limit: eo.limit } : {}),
    });
  };

  return {
    async trainSteps(k: number) {
      if (!Number.isInteger(k) || k < 0) throw new Error(`trainSteps: k must be a non-negative integer, got ${k}`);
      return run(k);
    },
    async trainEpochs(epochs: number, onProgress?: (p: EpochProgress) => void, eo: EpochOptions = {}) {
      if (!Number.isInteger(epochs) || epochs < 0)
        throw new Error(`trainEpochs: n must be a non-negative integer, got ${epochs}`);
      const out: TrainStats[] = [];
      const base = lr;
      const totalSteps = epochs * stepsPerEpoch;
      try {
        for (let e = 1; e <= epochs; e++) {
          reshuffle();
          const stats = await run(stepsPerEpoch, (s, loss, correct, seen) => {
            if (eo.schedule === 'cosine') {
              const t = ((e - 1) * stepsPerEpoch + s) / totalSteps;
              setLr(base * (0.01 + 0.99 * 0.5 * (1 + Math.cos(Math.PI * t))));
            }
            onProgress?.({ epoch: e, epochs, step: s, stepsPerEpoch, loss, accuracy: correct / seen });
          });
          out.push(stats);
          await eo.onEpochEnd?.(e, stats);
        }
      } finally {
        if (lr !== base) setLr(base);
      }
      const samples = out.reduce((a, s) => a + s.samples, 0);
      const seconds = out.reduce((a, s) => a + s.seconds, 0);
      lastRate = seconds > 0 ? samples / seconds : 0;
      return out;
    },
    evaluate,
    stepsPerEpoch,
    get samplesPerSec() {
      return lastRate;
    },
    get stepsDone() {
      return stepsDone;
    },
    get learningRate() {
      return lr;
    },
    setLearningRate(value: number) {
      if (!(value > 0)) throw new Error(`setLearningRate: lr must be > 0, got ${value}`);
      setLr(value);
    },
    async saveState(dir: string) {
      if (disposed) throw new Error('trainer used after dispose()');
      const named = await optimizer.getWeights();
      const { data, specs } = await tf.io.encodeWeights(named);
      const state: TrainerStateFile = {
        format: TRAINER_STATE_FORMAT,
        optimizer: opts.optimizer,
        batchSize,
        trainSamples: n,
        lr,
        stepsDone,
        cursor,
        rngState: rng.getState(),
        optimizerWeights: specs,
        adamPowers: readAdamPowers(optimizer),
      };
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, OPTIMIZER_BIN), new Uint8Array(data));
      writeFileSync(join(dir, ORDER_BIN), new Uint8Array(perm.buffer, perm.byteOffset, perm.byteLength));
      writeFileSync(join(dir, TRAINER_JSON), JSON.stringify(state, null, 2) + '\n');
    },
    async loadState(dir: string) {
      if (disposed) throw new Error('trainer used after dispose()');
      const file = join(dir, TRAINER_JSON);
      const state = readTrainerState(file);
      const mismatch = (what: string, saved: unknown, now: unknown) =>
        new UserError(`trainer state was saved with ${what} ${String(saved)}, this trainer has ${String(now)}`, {
          file,
          expected: `${what} ${String(now)}`,
        });
      if (state.optimizer !== opts.optimizer) throw mismatch('optimizer', state.optimizer, opts.optimizer);
      if (state.batchSize !== batchSize) throw mismatch('batch size', state.batchSize, batchSize);
      if (state.trainSamples !== n) throw mismatch('a training split of size', state.trainSamples, n);
      const order = readBinary(join(dir, ORDER_BIN), n * 4);
      const restored = new Int32Array(order.buffer, order.byteOffset, n).slice();
      const seen = new Uint8Array(n);
      for (const i of restored) {
        if (i < 0 || i >= n || seen[i])
          throw new UserError('holds no permutation of the training split', { file: join(dir, ORDER_BIN) });
        seen[i] = 1;
      }
      const specs = state.optimizerWeights;
      const bytes = specs.reduce((a, sp) => a + sp.shape.reduce((x, y) => x * y, 1) * 4, 0);
      const data = readBinary(join(dir, OPTIMIZER_BIN), bytes);
      const map = tf.io.decodeWeights(new Uint8Array(data).buffer, specs);
      await optimizer.setWeights(specs.map((sp) => ({ name: sp.name, tensor: map[sp.name] })));
      for (const t of Object.values(map)) t.dispose();
      // Adam's setWeights recomputes beta^t with pow(); the running products it kept differ in the last
      // bits, so restore them exactly for a bit-identical continuation
      if (state.adamPowers) writeAdamPowers(optimizer, state.adamPowers);
      perm.set(restored);
      cursor = state.cursor;
      stepsDone = state.stepsDone;
      rng.setState(state.rngState);
      setLr(state.lr);
    },
    resetOptimizer() {
      if (disposed) throw new Error('trainer used after dispose()');
      optimizer.dispose();
      optimizer = makeOptimizer(opts.optimizer, lr);
    },
    dispose() {
      if (!disposed) optimizer.dispose();
      if (!disposed) void parallel?.close();
      disposed = true;
    },
  };
}

const TRAINER_STATE_FORMAT = 'bitalloc-trainer-state-1';
const TRAINER_JSON = 'trainer.json';
const OPTIMIZER_BIN = 'optimizer.bin';
const ORDER_BIN = 'order.bin';

interface TrainerStateFile {
  format: string;
  optimizer: OptimizerName;
  batchSize: number;
  trainSamples: number;
  lr: number;
  stepsDone: number;
  cursor: number;
  rngState: number;
  optimizerWeights: tf.io.WeightsManifestEntry[];
  /** Adam's beta1^t, beta2^t (absent for other optimizers and older files). */
  adamPowers?: [number, number] | null;
}

function readTrainerState(file: string): TrainerStateFile {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT'
        ? 'trainer state not found'
        : `cannot read trainer state: ${e instanceof Error ? e.message : String(e)}`,
      {
        file,
        expected: 'a trainer.json written by Trainer.saveState',
      },
    );
  }
  const s = doc as Partial<TrainerStateFile>;
  const numbers = ['batchSize', 'trainSamples', 'lr', 'stepsDone', 'cursor', 'rngState'] as const;
  if (s?.format !== TRAINER_STATE_FORMAT)
    throw new UserError(`unknown format '${String(s?.format)}'`, {
      file,
      field: '$.format',
      expected: TRAINER_STATE_FORMAT,
    });
  for (const k of numbers) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k]))
      throw new UserError(`missing or invalid ${k}`, { file, field: `$.${k}`, expected: 'a number' });
  }
  if (
    !Array.isArray(s.optimizerWeights) ||
    s.optimizerWeights.some((w) => w?.dtype !== 'float32' && w?.dtype !== 'int32')
  ) {
    throw new UserError('missing or invalid optimizer weights', {
      file,
      field: '$.optimizerWeights',
      expected: 'weight specs of float32/int32 tensors',
    });
  }
  return s as TrainerStateFile;
}

function readBinary(file: string, expectedBytes: number): Buffer {
  let b: Buffer;
  try {
    b = readFileSync(file);
  } catch (e) {
    throw new UserError(`cannot read: ${e instanceof Error ? e.message : String(e)}`, {
      file,
      expected: 'a file written by Trainer.saveState',
    });
  }
  if (b.length !== expectedBytes)
    throw new UserError(`holds ${b.length} bytes, expected ${expectedBytes}`, {
      file,
      expected: 'a file written by Trainer.saveState',
    });
  return b;
}

/**
 * Accuracy and mean softmax cross-entropy of a model on a split, in inference mode (BatchNorm
 * moving statistics, no activation-range updates), batch by batch; frees every tensor it makes.
 */
export async function evaluateModel(
  model: tf.LayersModel,
  split: Split,
  opts: { batchSize?: number; limit?: number } = {},
): Promise<EvalResult> {
  const batch = opts.batchSize ?? 256;
  const probabilities = outputsProbabilities(model);
  const total = Math.min(split.labels.length, opts.limit ?? Infinity);
  const inputs = splitInputs(split);
  const t0 = performance.now();
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < total; start += batch) {
    const size = Math.min(batch, total - start);
    let l: tf.Tensor;
    let c: tf.Tensor;
    try {
      [l, c] = tf.tidy((): [tf.Tensor, tf.Tensor] => {
        const xb = inputs.slice(start, size);
        const yb = tf.slice(split.y, [start, 0], [size, -1]);
        const out = model.apply(xb, { training: false }) as tf.Tensor;
        return [tf.sum(crossEntropy(yb, out, probabilities)), correctCount(yb, out)];
      });
    } catch (e) {
      explainOutOfMemory(
        e,
        `evaluating in batches of ${batch} on ${inputs.shape.slice(1).join('x')} inputs`,
        'evaluation batch (--batch-size of eval)',
      );
    }
    lossSum += (await l.data())[0];
    correct += (await c.data())[0];
    l.dispose();
    c.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    accuracy: total ? correct / total : NaN,
    loss: total ? lossSum / total : NaN,
    samples: total,
    samplesPerSec: seconds > 0 ? total / seconds : 0,
  };
}

/** A network that can calibrate its activation ranges from data (QuantNetwork can). */
interface Calibratable {
  calibrate(x: tf.Tensor, passes?: number): void;
}

function canCalibrate(net: unknown): net is Calibratable {
  return typeof (net as Partial<Calibratable>).calibrate === 'function';
}

/**
 * Sets the activation ranges of a quantized network from up to `batches` batches of a split
 * (inference mode otherwise), e.g. after changing bits without training. Returns false when the
 * network has no calibration hook.
 */
export function calibrateNetwork(
  net: TrainableNetwork,
  split: Split,
  opts: { batches?: number; batchSize?: number } = {},
): boolean {
  if (!canCalibrate(net)) return false;
  const batches = opts.batches ?? 8;
  const size = opts.batchSize ?? 128;
  const n = split.labels.length;
  const inputs = splitInputs(split);
  for (let b = 0; b < batches && b * size < n; b++) {
    const count = Math.min(size, n - b * size);
    const xb = inputs.slice(b * size, count);
    try {
      net.calibrate(xb);
    } finally {
      xb.dispose();
    }
  }
  return true;
}
