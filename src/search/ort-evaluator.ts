/**
 * The search's forward passes in onnxruntime-node, over the fake-quantized evaluation graph
 * (graph.ts, mode `eval`). Activation quantizer parameters are graph inputs (a new activation
 * allocation is new feeds); the fake-quantized weights are constants, which onnxruntime pre-packs
 * for its convolutions (about 3x the speed of weights as inputs). A session is therefore built per
 * distinct weight state (a new wBits allocation, or weights QAT moved): the graph is written at
 * every evaluation, its weights hashed, and sessions are kept by (structure, weight hash), the two
 * most recent. Building one costs about as much as a few batches (MobileNetV2 224x224: 0.1-0.4 s;
 * `npm run bench -- eval` prints it). Accuracy and mean cross-entropy match evaluateModel's definitions.
 */
import type { Split } from '../data/api.js';
import { splitInputs } from '../data/inputs.js';
import type { QuantNetwork } from '../quant/network.js';
import { UserError } from '../errors.js';
import { evaluateModel, outputsProbabilities, type EvalResult } from '../train/trainer.js';
import { evalStructure, writeGraph, type EvalFeed } from '../onnx/graph.js';
import { encodeModel, type ModelProto } from '../onnx/proto.js';
import { createSession, loadOrt, ortLoadError, type OrtModule, type OrtSession } from '../onnx/runtime.js';
import { EVAL_BACKENDS, ortFallbackReason, type EvalBackendChoice } from '../onnx/eval-backend.js';
import { ortStatsCollector } from '../onnx/calibration.js';
import type { StatsCollector } from '../quant/ptq.js';

export { EVAL_BACKENDS, type EvalBackendChoice } from '../onnx/eval-backend.js';

export interface OrtEvaluatorOptions {
  /** Intra-op threads (default 2). */
  threads?: number;
  /** Samples per run (default: 256 samples of 28x28, down to 16 of 224x224x3: onnxruntime's buffers grow with it). */
  batchSize?: number;
  /** Sessions kept (default 2): each holds one weight state and its buffers. */
  maxSessions?: number;
}

interface Compiled {
  session: OrtSession;
  feeds: EvalFeed[];
  inputName: string;
  outputName: string;
}

/** A 64-bit content hash (two FNV-1a lanes over 32-bit words) of the graph's initializers. */
export function initializerHash(model: ModelProto): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (const t of model.graph?.initializer ?? []) {
    const raw = t.rawData ?? new Uint8Array(0);
    const words = raw.byteLength >> 2;
    const u32 =
      raw.byteOffset % 4 === 0
        ? new Uint32Array(raw.buffer, raw.byteOffset, words)
        : new Uint32Array(raw.slice(0, words * 4).buffer);
    for (let i = 0; i < u32.length; i++) {
      h1 = Math.imul(h1 ^ u32[i], 0x01000193);
      h2 = Math.imul(h2 ^ (u32[i] + i), 0x5bd1e995) ^ (h2 >>> 15);
    }
    for (let i = words * 4; i < raw.byteLength; i++) h1 = Math.imul(h1 ^ raw[i], 0x01000193);
    h1 = Math.imul(h1 ^ raw.byteLength, 0x01000193);
  }
  return (h1 >>> 0).toString(16).padStart(8, '0') + (h2 >>> 0).toString(16).padStart(8, '0');
}

/** An eval-graph feed's current value as an onnxruntime tensor. */
export function feedTensor(ort: OrtModule, f: EvalFeed): InstanceType<OrtModule['Tensor']> {
  const v = f.read();
  if (f.dtype === 'float32') return new ort.Tensor('float32', v as Float32Array, f.dims);
  if (f.dtype === 'int8') return new ort.Tensor('int8', v as Int8Array, f.dims);
  return new ort.Tensor(f.dtype, v as Uint8Array, f.dims);
}

export class OrtEvaluator {
  private readonly cache = new WeakMap<Split, Float32Array>();
  private readonly sessions = new Map<string, Compiled>();
  private readonly probabilities: boolean;
  private readonly sampleSize: number;
  private readonly classes: number;
  /** Sessions built so far (one per weight state and structure). */
  sessionsBuilt = 0;
  /** Seconds spent writing graphs and building sessions. */
  buildSeconds = 0;

  private constructor(
    private readonly ort: OrtModule,
    private readonly net: QuantNetwork,
    private readonly threads: number,
    private readonly batchSize: number,
    private readonly maxSessions: number,
  ) {
    this.probabilities = outputsProbabilities(net.model);
    const outShape = net.model.outputs[0].shape;
    this.classes = outShape[outShape.length - 1] as number;
    this.sampleSize = (net.model.inputs[0].shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
  }

  /** An evaluator over `net`, or null when onnxruntime-node is not installed. Throws when the network has no ONNX translation. */
  static async create(net: QuantNetwork, opts: OrtEvaluatorOptions = {}): Promise<OrtEvaluator | null> {
    const ort = await loadOrt();
    if (!ort) return null;
    const size = (net.model.inputs[0].shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
    const batch = opts.batchSize ?? Math.max(1, Math.min(256, 2 ** Math.floor(Math.log2((16 * 224 * 224 * 3) / size))));
    const ev = new OrtEvaluator(ort, net, opts.threads ?? 2, batch, Math.max(1, opts.maxSessions ?? 2));
    await ev.compiled(); // fails early when the network has no translation
    return ev;
  }

  /** The session for the network's current structure and weights (built when either is new). */
  private async compiled(): Promise<Compiled> {
    const t0 = performance.now();
    const g = writeGraph(this.net, 'eval');
    const key = `${evalStructure(this.net)}:${initializerHash(g.model)}`;
    let c = this.sessions.get(key);
    if (c) {
      this.sessions.delete(key); // most recent last
    } else {
      const session = await createSession(this.ort, encodeModel(g.model), this.threads, { fakeQuant: true });
      c = { session, feeds: g.feeds, inputName: g.inputName, outputName: g.outputName };
      this.sessionsBuilt++;
      while (this.sessions.size >= this.maxSessions) {
        const [oldest, old] = this.sessions.entries().next().value as [string, Compiled];
        this.sessions.delete(oldest);
        await old.session.release();
      }
    }
    // this graph's feeds read the current grids (the cached session's inputs have the same names)
    c = { ...c, feeds: g.feeds };
    this.sessions.set(key, c);
    this.buildSeconds += (performance.now() - t0) / 1000;
    return c;
  }

  /** Whether the network's current allocation can run here (signed 1-bit activations cannot). */
  supports(): boolean {
    return this.net.qlayers.every((q) => q.aBits >= 32 || !(q.signed && q.aBits <= 1));
  }

  /** The current parameters as ORT tensors (read from the network now). */
  private parameters(feeds: EvalFeed[]): Record<string, InstanceType<OrtModule['Tensor']>> {
    const out: Record<string, InstanceType<OrtModule['Tensor']>> = {};
    for (const f of feeds) out[f.name] = feedTensor(this.ort, f);
    return out;
  }

  /**
   * Samples start .. start+size-1 of a split as floats. A split held in memory is copied out of its tensor
   * once and kept (as long as the split lives); a streamed split (an image folder) is read batch by batch.
   */
  private batch(split: Split, start: number, size: number): Float32Array {
    const inputs = splitInputs(split);
    if (!inputs.inMemory) return inputs.read(start, size);
    let all = this.cache.get(split);
    if (!all) {
      all = inputs.read(0, split.labels.length);
      this.cache.set(split, all);
    }
    return all.subarray(start * this.sampleSize, (start + size) * this.sampleSize);
  }

  /** Logits (or probabilities) of the first n samples of a split at the network's current state. */
  async outputs(split: Split, n: number): Promise<Float32Array[]> {
    const c = await this.compiled();
    const params = this.parameters(c.feeds);
    const shape = splitInputs(split).shape.slice(1);
    const res: Float32Array[] = [];
    for (let start = 0; start < n; start += this.batchSize) {
      const size = Math.min(this.batchSize, n - start);
      const input = new this.ort.Tensor('float32', this.batch(split, start, size), [size, ...shape]);
      const r = await c.session.run({ ...params, [c.inputName]: input });
      res.push((r[c.outputName] as { data: Float32Array }).data);
    }
    return res;
  }

  /** Logits of a whole split at the network's current state, [n * classes] (log-probabilities for a softmax output, as networkLogits). */
  async logits(split: Split): Promise<Float32Array> {
    const n = split.labels.length;
    const out = new Float32Array(n * this.classes);
    let at = 0;
    for (const o of await this.outputs(split, n)) {
      if (this.probabilities)
        for (let i = 0; i < o.length; i++) out[at + i] = Math.log(Math.min(1, Math.max(1e-12, o[i])));
      else out.set(o, at);
      at += o.length;
    }
    return out;
  }

  /** Accuracy and mean cross-entropy on the first `limit` samples of a split. */
  async evaluate(split: Split, opts: { limit?: number } = {}): Promise<EvalResult> {
    const n = Math.min(split.labels.length, opts.limit ?? Infinity);
    const t0 = performance.now();
    const outs = await this.outputs(split, n);
    let correct = 0;
    let lossSum = 0;
    let i = 0;
    const k = this.classes;
    for (const o of outs) {
      const rows = o.length / k;
      for (let r = 0; r < rows; r++, i++) {
        const label = split.labels[i];
        let best = 0;
        let max = -Infinity;
        for (let c = 0; c < k; c++) {
          const v = o[r * k + c];
          if (v > max) {
            max = v;
            best = c;
          }
        }
        if (best === label) correct++;
        if (this.probabilities) {
          lossSum += -Math.log(Math.min(1 - 1e-7, Math.max(1e-7, o[r * k + label])));
        } else {
          let sum = 0;
          for (let c = 0; c < k; c++) sum += Math.exp(o[r * k + c] - max);
          lossSum += Math.log(sum) + max - o[r * k + label];
        }
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    return {
      accuracy: n ? correct / n : NaN,
      loss: n ? lossSum / n : NaN,
      samples: n,
      samplesPerSec: seconds > 0 ? n / seconds : 0,
    };
  }

  /** Calibration statistics (PtqOptions.collect) through onnxruntime at this evaluator's threads. */
  statsCollector(): StatsCollector {
    return ortStatsCollector({ threads: this.threads });
  }

  async dispose(): Promise<void> {
    for (const c of this.sessions.values()) await c.session.release();
    this.sessions.clear();
  }
}

/** The engine the search's forward passes use, resolved from the choice. */
export interface ResolvedEvalBackend {
  name: 'onnxruntime' | 'tfjs';
  evaluator: OrtEvaluator | null;
  /** Why auto fell back to tfjs. */
  reason?: string;
}

/** Fails fast (before any long work) when onnxruntime is asked for by name and cannot load. */
export async function checkEvalBackend(choice: EvalBackendChoice | undefined, field = '--eval-backend'): Promise<void> {
  if (choice !== undefined && !(EVAL_BACKENDS as readonly string[]).includes(choice)) {
    throw new UserError(`unknown eval backend '${String(choice)}'`, { field, expected: EVAL_BACKENDS.join('|') });
  }
  if (choice === 'onnxruntime' && !(await loadOrt())) {
    throw new UserError(`onnxruntime-node is not installed or does not load (${ortLoadError() ?? 'unknown error'})`, {
      field,
      expected:
        'auto or tfjs, or install onnxruntime-node (npm install onnxruntime-node; with onnxruntime-node-install=skip offline)',
    });
  }
}

/** auto = onnxruntime when it loads and the network translates, else tfjs; onnxruntime = required. */
export async function resolveEvalBackend(
  choice: EvalBackendChoice,
  net: QuantNetwork,
  opts: OrtEvaluatorOptions = {},
): Promise<ResolvedEvalBackend> {
  if (choice === 'tfjs') return { name: 'tfjs', evaluator: null };
  await checkEvalBackend(choice);
  try {
    const ev = await OrtEvaluator.create(net, opts);
    if (ev) return { name: 'onnxruntime', evaluator: ev };
    return {
      name: 'tfjs',
      evaluator: null,
      reason: `onnxruntime-node does not load: ${ortLoadError() ?? 'unknown error'}`,
    };
  } catch (e) {
    return {
      name: 'tfjs',
      evaluator: null,
      reason: `the network has no ONNX translation: ${ortFallbackReason(choice, e)}`,
    };
  }
}

/**
 * Accuracy on a split through onnxruntime when the evaluator can take the current allocation
 * (else, or when a quantizer is not initialised yet, through tfjs's evaluateModel).
 */
export async function evaluateWith(
  ev: OrtEvaluator | null,
  net: QuantNetwork,
  split: Split,
  opts: { limit?: number; batchSize?: number } = {},
): Promise<EvalResult & { engine: 'onnxruntime' | 'tfjs' }> {
  if (ev && ev.supports()) {
    try {
      return { ...(await ev.evaluate(split, opts)), engine: 'onnxruntime' };
    } catch (e) {
      if (e instanceof UserError) throw e;
      // e.g. an LSQ step that initialises from the data at the next tfjs forward pass
    }
  }
  return {
    ...(await evaluateModel(net.model, split, {
      batchSize: opts.batchSize ?? 256,
      ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    })),
    engine: 'tfjs',
  };
}
