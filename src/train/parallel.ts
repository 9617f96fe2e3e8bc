/**
 * Data-parallel training steps over worker threads. The wasm backend computes on one thread under
 * Node (its threaded build cannot start there: Emscripten's pthread loader spawns its workers from
 * blob: URLs, which Node's Worker refuses), so a second core needs a second engine: each worker
 * thread loads its own tfjs + wasm backend (with this project's training kernels) and rebuilds the
 * network from its topology.
 *
 * One step with T threads (the main thread is shard 0, workers 1..T-1):
 * 1. the main thread writes every weight of its model into a SharedArrayBuffer;
 * 2. the global batch is cut into T contiguous shards (sizes differ by at most one); each worker
 *    gets its shard's samples, copies the weights from the shared buffer and computes the gradient
 *    of (shard size / batch size) x (mean shard loss + regularisation), so that the shards' gradients
 *    add up to the gradient of the global batch's loss;
 * 3. each worker writes its gradients (and the new values of non-trainable weights) into its own
 *    region of a second shared buffer; the main thread adds them to its own, shard 0 first, then 1,
 *    2, ... (a fixed order: a fixed thread count gives bit-identical runs), and the trainer takes
 *    one optimizer step on the main thread.
 *
 * BatchNorm: each shard normalises with its own batch statistics (as PyTorch's DataParallel does),
 * so with BatchNorm a T-thread step differs from a one-thread step. Non-trainable weights updated by
 * the forward pass (BatchNorm moving mean / variance, the STE activation-clip EMA) become the
 * shard-size-weighted mean of the shards' updated values: exact for the moving means, the mean of
 * per-shard variances for moving variances, the mean of per-shard maxima for the clip EMA.
 * Without BatchNorm and at 32 bits a T-thread step equals a one-thread step up to float rounding.
 *
 * Everything else lives on the main thread (optimizer state, the shuffle, evaluation), so saving and
 * resuming a trainer is unchanged, and a resumed T-thread run continues bit-identically.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { backendInfo, tf } from '../backend/index.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import type { SplitInputs } from '../data/api.js';
import type { BitConfig } from '../models/layer-info.js';
import { hasInferenceModeLayers } from './finetune.js';

/** The cores of this machine (at least 1). */
export function coreCount(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Threads per training when `concurrent` trainings (e.g. `run --workers N` cells) share the
 * machine and none is asked for: cores / concurrent, at least 1.
 */
export function defaultThreads(concurrent = 1): number {
  return Math.max(1, Math.floor(coreCount() / Math.max(1, concurrent)));
}

/** The value of a `--threads` flag (undefined when absent), checked: an integer 1..64. */
export function threadsFlag(value: unknown, flag = '--threads'): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 64) {
    throw new UserError(`must be an integer 1..64, got ${String(value)}`, {
      field: flag,
      expected: `1..64 (this machine has ${coreCount()} cores)`,
    });
  }
  return value;
}

/** Per-sample loss of a batch, [n] (the trainer's cross-entropy). */
export type SampleLoss = (y: tf.Tensor, out: tf.Tensor) => tf.Tensor1D;

/** What a shard's forward/backward pass gives back (tensors owned by the caller). */
export interface ShardResult {
  /** weight x (mean shard loss + regularisation): the shard's share of the batch loss. */
  weightedLoss: number;
  correct: number;
  /** Gradients of the weighted loss, one per variable in `vars` order. */
  grads: tf.Tensor[];
}

/**
 * Forward and backward pass of one shard on `model` in training mode: gradients of
 * weight x (mean of `sampleLoss` + the model's regularisation losses) with respect to `vars`.
 */
export function shardGradients(
  model: tf.LayersModel,
  vars: tf.Variable[],
  xb: tf.Tensor,
  yb: tf.Tensor,
  weight: number,
  sampleLoss: SampleLoss,
): ShardResult {
  let correct = 0;
  let kept: tf.Tensor | null = null;
  const { value, grads } = tf.variableGrads(() => {
    const out = model.apply(xb, { training: true }) as tf.Tensor;
    kept = tf.keep(out);
    let loss = tf.mean<tf.Scalar>(sampleLoss(yb, out));
    for (const r of model.calculateLosses()) loss = tf.add<tf.Scalar>(loss, r);
    return weight === 1 ? loss : tf.mul<tf.Scalar>(loss, weight);
  }, vars);
  if (kept) {
    const out = kept as tf.Tensor;
    correct = tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(out, -1), tf.argMax(yb, -1)), 'float32')).dataSync()[0]);
    out.dispose();
  }
  const weightedLoss = value.dataSync()[0];
  value.dispose();
  return { weightedLoss, correct, grads: vars.map((v) => grads[v.name]) };
}

/** Sizes of `t` contiguous shards of a batch of `b` (the first b % t get one more). */
export function shardSizes(b: number, t: number): number[] {
  const k = Math.max(1, Math.min(t, b));
  const base = Math.floor(b / k);
  return Array.from({ length: k }, (_, i) => base + (i < b % k ? 1 : 0));
}

/** Where each weight of a model sits in the flat shared buffers. */
interface Layout {
  offsets: number[];
  sizes: number[];
  shapes: number[][];
  total: number;
}

function layoutOf(model: tf.LayersModel): Layout {
  const offsets: number[] = [];
  const sizes: number[] = [];
  const shapes: number[][] = [];
  let total = 0;
  for (const w of model.weights) {
    const shape = [...(w.shape as number[])];
    const size = shape.reduce((a, b) => a * b, 1);
    offsets.push(total);
    sizes.push(size);
    shapes.push(shape);
    total += size;
  }
  return { offsets, sizes, shapes, total };
}

/** Sent once to a worker. */
export interface InitMessage {
  kind: 'init';
  topology: string;
  layout: Layout;
  /** Float32 weights written by the main thread before each step. */
  weights: SharedArrayBuffer;
  /** Float32 region per worker: gradients of trainable weights, new values of the others. */
  results: SharedArrayBuffer;
  /** This worker's region in `results` (1-based shard index). */
  slot: number;
  probabilities: boolean;
}

export interface StepMessage {
  kind: 'step';
  x: Float32Array;
  xShape: number[];
  y: Float32Array;
  yShape: number[];
  weight: number;
  /** Indices into model.weights of the weights to differentiate. */
  trainable: number[];
  /** Bits of the network's quantized layers (null: not a quantized network, or unchanged). */
  bits: BitConfig | null;
}

export type WorkerReply =
  | { kind: 'ready' }
  /** ms: the worker's time on the step, from the message's arrival to its reply. */
  | { kind: 'done'; weightedLoss: number; correct: number; ms: number }
  | { kind: 'error'; message: string };

/**
 * Where the data-parallel steps' time went, summed over steps (ms; wall time on the main thread
 * unless said): for benchmarks, e.g. `npm run bench -- qat`. Reset by the caller.
 */
export const parallelCounters = {
  steps: 0,
  /** Weights into the shared buffer, the workers' shards gathered and sent. */
  sendMs: 0,
  /** Shard 0's forward and backward pass, here. */
  ownShardMs: 0,
  /** Waiting for the workers once shard 0 was done. */
  waitMs: 0,
  /** The workers' shards summed into shard 0's gradients, and the non-trainable weights' means. */
  combineMs: 0,
  /** The workers' own time on their shards (summed over workers). */
  workerShardMs: 0,
  /** The optimizer's step on the summed gradients (the trainer adds it). */
  optimizerMs: 0,
};

export type ParallelCounters = typeof parallelCounters;

/** A ParallelCounters with every figure 0 (e.g. to sum parallelCounters over chosen steps). */
export function zeroParallelCounters(): ParallelCounters {
  const z = { ...parallelCounters };
  for (const k of Object.keys(z) as (keyof ParallelCounters)[]) z[k] = 0;
  return z;
}

/** Sets every parallelCounters figure to 0. */
export function resetParallelCounters(): void {
  Object.assign(parallelCounters, zeroParallelCounters());
}

/** A network whose layers may carry run-time state the workers cannot mirror. */
interface NetworkLike {
  readonly model: tf.LayersModel;
  getBits?: () => BitConfig;
  readonly qlayers?: ReadonlyArray<{
    weightMix?: unknown;
    calibrating?: boolean;
    rangesFrozen?: boolean;
    foldBnInTraining?: boolean;
  }>;
}

export interface StepResult {
  /** Mean loss of the global batch (the sum of the shards' weighted losses). */
  loss: number;
  correct: number;
  /** Summed gradients by variable name, ready for optimizer.applyGradients (caller disposes). */
  grads: Record<string, tf.Tensor>;
}

/** For tests: the worker script to start instead of parallel-worker.js (e.g. one that fails to start). */
export const parallelTesting: { workerUrl: URL | null } = { workerUrl: null };

/** T-1 worker threads and the shared buffers of one network. */
export class DataParallel {
  readonly threads: number;
  private readonly net: NetworkLike;
  private readonly layout: Layout;
  private readonly weightsBuf: SharedArrayBuffer;
  private readonly resultsBuf: SharedArrayBuffer;
  private readonly weightsView: Float32Array;
  private readonly workers: Worker[] = [];
  /** Resolves true once every worker is ready, false when one failed to start (then train on one thread). */
  private readonly ready: Promise<boolean>;
  private started: boolean | null = null;
  private pending = new Map<Worker, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  private sentBits: string | null = null;
  private closed = false;
  private readonly sampleLoss: SampleLoss;

  /** `threads` >= 2; use createDataParallel, which checks the backend. */
  constructor(net: NetworkLike, threads: number, probabilities: boolean, sampleLoss: SampleLoss) {
    this.threads = threads;
    this.net = net;
    this.sampleLoss = sampleLoss;
    const model = net.model;
    this.layout = layoutOf(model);
    const bytes = this.layout.total * 4;
    this.weightsBuf = new SharedArrayBuffer(bytes);
    this.resultsBuf = new SharedArrayBuffer(bytes * threads);
    this.weightsView = new Float32Array(this.weightsBuf);
    const topology = JSON.stringify(model.toJSON(null, false));
    const inits: Promise<WorkerReply>[] = [];
    for (let slot = 1; slot < threads; slot++) {
      let worker: Worker;
      try {
        worker = new Worker(parallelTesting.workerUrl ?? new URL('./parallel-worker.js', import.meta.url));
      } catch (e) {
        inits.push(Promise.reject(e instanceof Error ? e : new Error(String(e))));
        break;
      }
      worker.unref();
      worker.on('message', (m: WorkerReply) => this.settle(worker, m));
      worker.on('error', (e) => this.fail(worker, e));
      worker.on('exit', (code) => this.fail(worker, new Error(`training worker exited (code ${code})`)));
      this.workers.push(worker);
      const msg: InitMessage = {
        kind: 'init',
        topology,
        layout: this.layout,
        weights: this.weightsBuf,
        results: this.resultsBuf,
        slot,
        probabilities,
      };
      inits.push(this.request(worker, msg));
    }
    this.ready = Promise.all(inits)
      .then((replies) => {
        for (const r of replies) if (r.kind === 'error') throw new Error(r.message);
        return true;
      })
      .catch((e: unknown) => {
        // the training goes on here, on one thread: one line says why
        const why = (e instanceof Error ? e.message : String(e)).split('\n')[0];
        log.warn(`training on 1 thread instead of ${threads}: a worker thread failed to start (${why})`);
        void this.close();
        return false;
      })
      .then((ok) => (this.started = ok));
  }

  /**
   * Whether the next step can run on the threads: false once a worker failed to start (after a
   * one-line warning, the trainer then steps on this thread) or when canRun() is false.
   */
  async usable(): Promise<boolean> {
    return (this.started ?? (await this.ready)) && this.canRun();
  }

  private request(worker: Worker, msg: InitMessage | StepMessage): Promise<WorkerReply> {
    return new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(worker, { resolve, reject });
      worker.ref(); // keep the process alive while a reply is due
      worker.postMessage(msg);
    });
  }

  private settle(worker: Worker, m: WorkerReply): void {
    const p = this.pending.get(worker);
    this.pending.delete(worker);
    worker.unref();
    p?.resolve(m);
  }

  private fail(worker: Worker, e: Error): void {
    const p = this.pending.get(worker);
    this.pending.delete(worker);
    p?.reject(this.closed ? new Error('data-parallel trainer closed') : e);
  }

  /** False when the network has run-time state the workers cannot mirror (then train on one thread). */
  canRun(): boolean {
    // the workers rebuild the network from its config: per-layer training states that do not travel with
    // it (weight mixes, calibration, the fine-tune regime's frozen ranges and folded BatchNorm) train here
    return (
      !this.closed &&
      !hasInferenceModeLayers(this.net.model) &&
      !(this.net.qlayers ?? []).some(
        (q) => q.weightMix != null || q.calibrating === true || q.rangesFrozen || q.foldBnInTraining,
      )
    );
  }

  /**
   * One data-parallel forward/backward pass over the samples `idx` of (x, y): the gradient of the
   * batch's mean loss, summed over shards in shard order. The caller applies it (one optimizer step).
   */
  async step(idx: Int32Array, x: SplitInputs, y: tf.Tensor): Promise<StepResult> {
    if (!(await this.ready)) throw new Error('training worker threads failed to start (see usable())');
    const model = this.net.model;
    const weights = model.weights;
    const sizes = shardSizes(idx.length, this.threads);
    const t0 = performance.now();
    // 1. weights into the shared buffer
    for (let i = 0; i < weights.length; i++) {
      const values = weights[i].read().dataSync() as Float32Array;
      this.weightsView.set(values, this.layout.offsets[i]);
    }
    const trainableSet = new Set(model.trainableWeights);
    const trainable = weights.flatMap((w, i) => (trainableSet.has(w) ? [i] : []));
    const bits = this.net.getBits ? this.net.getBits() : null;
    const bitsKey = bits ? JSON.stringify(bits) : null;
    const sendBits = bitsKey !== this.sentBits ? bits : null;
    this.sentBits = bitsKey;
    // 2. the workers' shards
    const total = idx.length;
    const replies: Promise<WorkerReply>[] = [];
    let start = sizes[0];
    for (let s = 1; s < sizes.length; s++) {
      const size = sizes[s];
      const part = idx.subarray(start, start + size);
      start += size;
      const [xs, ys] = tf.tidy(() => {
        const it = tf.tensor1d(part, 'int32');
        return [x.gather(part), tf.gather(y, it)];
      });
      const msg: StepMessage = {
        kind: 'step',
        x: xs.dataSync() as Float32Array,
        xShape: xs.shape,
        y: ys.dataSync() as Float32Array,
        yShape: ys.shape,
        weight: size / total,
        trainable,
        bits: sendBits,
      };
      xs.dispose();
      ys.dispose();
      replies.push(this.request(this.workers[s - 1], msg));
    }
    const t1 = performance.now();
    // 3. shard 0 here, meanwhile
    const vars = trainable.map((i) => weights[i].read() as tf.Variable);
    const own = tf.tidy(() => {
      const own0 = idx.subarray(0, sizes[0]);
      const it = tf.tensor1d(own0, 'int32');
      const xb = x.gather(own0);
      const yb = tf.gather(y, it);
      const r = shardGradients(model, vars, xb, yb, sizes[0] / total, this.sampleLoss);
      return { ...r, grads: r.grads.map((g) => tf.keep(g)) };
    });
    const t2 = performance.now();
    let done: WorkerReply[];
    try {
      done = await Promise.all(replies);
    } catch (e) {
      for (const g of own.grads) g.dispose();
      throw e;
    }
    const t3 = performance.now();
    let loss = own.weightedLoss;
    let correct = own.correct;
    for (const r of done) {
      if (r.kind === 'error') {
        for (const g of own.grads) g.dispose();
        throw new Error(`training worker: ${r.message}`);
      }
      if (r.kind === 'done') {
        loss += r.weightedLoss;
        correct += r.correct;
        parallelCounters.workerShardMs += r.ms;
      }
    }
    // 4. gradients summed in shard order
    const results = new Float32Array(this.resultsBuf);
    const grads: Record<string, tf.Tensor> = {};
    trainable.forEach((wi, j) => {
      const off = this.layout.offsets[wi];
      const len = this.layout.sizes[wi];
      const shape = this.layout.shapes[wi];
      let g = own.grads[j];
      for (let s = 1; s < sizes.length; s++) {
        const base = s * this.layout.total + off;
        const next = tf.tidy(() => tf.add(g, tf.tensor(results.slice(base, base + len), shape)));
        g.dispose();
        g = next;
      }
      grads[vars[j].name] = g;
    });
    // 5. non-trainable weights the forward passes changed: the shard-size-weighted mean
    const inTrainable = new Set(trainable);
    for (let wi = 0; wi < weights.length; wi++) {
      if (inTrainable.has(wi)) continue;
      const off = this.layout.offsets[wi];
      const len = this.layout.sizes[wi];
      const before = this.weightsView.subarray(off, off + len);
      const lv = weights[wi];
      const mine = lv.read().dataSync() as Float32Array;
      let changed = false;
      for (let s = 0; s < sizes.length && !changed; s++) {
        const v = s === 0 ? mine : results.subarray(s * this.layout.total + off, s * this.layout.total + off + len);
        for (let e = 0; e < len; e++) {
          if (v[e] !== before[e]) {
            changed = true;
            break;
          }
        }
      }
      if (!changed) continue;
      const mean = new Float32Array(len);
      for (let e = 0; e < len; e++) {
        let acc = 0;
        for (let s = 0; s < sizes.length; s++) {
          const v = s === 0 ? mine[e] : results[s * this.layout.total + off + e];
          acc += (sizes[s] / total) * v;
        }
        mean[e] = acc;
      }
      tf.tidy(() => {
        lv.write(tf.tensor(mean, this.layout.shapes[wi]));
      });
    }
    const c = parallelCounters;
    c.steps++;
    c.sendMs += t1 - t0;
    c.ownShardMs += t2 - t1;
    c.waitMs += t3 - t2;
    c.combineMs += performance.now() - t3;
    return { loss, correct, grads };
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * A data-parallel stepper for `net` over `threads` threads, or null when one thread is asked
 * for or the backend is not wasm (tfjs-node already uses every core; the cpu backend is a
 * reference, kept on one thread).
 */
export function createDataParallel(
  net: NetworkLike,
  threads: number,
  probabilities: boolean,
  sampleLoss: SampleLoss,
): DataParallel | null {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads must be a positive integer, got ${threads}`);
  if (threads === 1 || backendInfo()?.name !== 'wasm') return null;
  return new DataParallel(net, threads, probabilities, sampleLoss);
}
