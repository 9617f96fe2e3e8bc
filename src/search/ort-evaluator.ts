/**
 * The search's forward passes in onnxruntime-node: one session over the fake-quantized evaluation
 * graph (graph.ts, mode `eval`) whose weights and quantizer parameters are graph inputs, so an
 * episode's allocation (and the weights QAT moved) are new feeds, never a new session.
 * Accuracy and mean cross-entropy match evaluateModel's definitions.
 */
import type { Split } from '../data/api.js';
import type { QuantNetwork } from '../quant/network.js';
import { UserError } from '../errors.js';
import { evaluateModel, outputsProbabilities, type EvalResult } from '../train/trainer.js';
import { evalStructure, writeGraph, type EvalFeed } from '../onnx/graph.js';
import { encodeModel } from '../onnx/proto.js';
import { createSession, loadOrt, ortLoadError, type OrtModule, type OrtSession } from '../onnx/runtime.js';
import { EVAL_BACKENDS, type EvalBackendChoice } from '../onnx/eval-backend.js';

export { EVAL_BACKENDS, type EvalBackendChoice } from '../onnx/eval-backend.js';

export interface OrtEvaluatorOptions {
  /** Intra-op threads (default 2). */
  threads?: number;
  /** Samples per run (default 64). */
  batchSize?: number;
}

interface Compiled {
  session: OrtSession;
  feeds: EvalFeed[];
  inputName: string;
  outputName: string;
}

export class OrtEvaluator {
  private readonly cache = new WeakMap<Split, Float32Array>();
  private readonly sessions = new Map<string, Compiled>();
  private readonly probabilities: boolean;
  private readonly sampleSize: number;
  private readonly classes: number;
  /** Sessions built so far (one per structure: float inputs / grids wider than 8 bits). */
  sessionsBuilt = 0;

  private constructor(
    private readonly ort: OrtModule,
    private readonly net: QuantNetwork,
    private readonly threads: number,
    private readonly batchSize: number,
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
    const ev = new OrtEvaluator(ort, net, opts.threads ?? 2, opts.batchSize ?? 64);
    await ev.compiled(); // fails early when the network has no translation
    return ev;
  }

  /** The session for the network's current structure (built once per structure). */
  private async compiled(): Promise<Compiled> {
    const key = evalStructure(this.net);
    let c = this.sessions.get(key);
    if (!c) {
      const g = writeGraph(this.net, 'eval');
      const session = await createSession(this.ort, encodeModel(g.model), this.threads);
      c = { session, feeds: g.feeds, inputName: g.inputName, outputName: g.outputName };
      this.sessions.set(key, c);
      this.sessionsBuilt++;
    }
    return c;
  }

  /** Whether the network's current allocation can run here (signed 1-bit activations cannot). */
  supports(): boolean {
    return this.net.qlayers.every((q) => q.aBits >= 32 || !(q.signed && q.aBits <= 1));
  }

  /** The current parameters as ORT tensors (read from the network now). */
  private parameters(feeds: EvalFeed[]): Record<string, InstanceType<OrtModule['Tensor']>> {
    const out: Record<string, InstanceType<OrtModule['Tensor']>> = {};
    for (const f of feeds) {
      const v = f.read();
      out[f.name] =
        f.dtype === 'bool'
          ? new this.ort.Tensor('bool', v as Uint8Array, f.dims)
          : new this.ort.Tensor('float32', v as Float32Array, f.dims);
    }
    return out;
  }

  private data(split: Split, n: number): Float32Array {
    const hit = this.cache.get(split);
    if (hit && hit.length >= n * this.sampleSize) return hit;
    const all = split.x.dataSync() as Float32Array;
    const copy = Float32Array.from(all.subarray(0, Math.max(n, split.labels.length) * this.sampleSize));
    this.cache.set(split, copy);
    return copy;
  }

  /** Logits (or probabilities) of the first n samples of a split at the network's current state. */
  async outputs(split: Split, n: number): Promise<Float32Array[]> {
    const x = this.data(split, n);
    const c = await this.compiled();
    const params = this.parameters(c.feeds);
    const shape = split.x.shape.slice(1);
    const res: Float32Array[] = [];
    for (let start = 0; start < n; start += this.batchSize) {
      const size = Math.min(this.batchSize, n - start);
      const input = new this.ort.Tensor(
        'float32',
        x.subarray(start * this.sampleSize, (start + size) * this.sampleSize),
        [size, ...shape],
      );
      const r = await c.session.run({ ...params, [c.inputName]: input });
      res.push((r[c.outputName] as { data: Float32Array }).data);
    }
    return res;
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
    const msg = e instanceof Error ? e.message : String(e);
    if (choice === 'onnxruntime')
      throw new UserError(`the network cannot run in onnxruntime: ${msg}`, {
        field: '--eval-backend',
        expected: 'auto or tfjs',
      });
    return { name: 'tfjs', evaluator: null, reason: `the network has no ONNX translation: ${msg}` };
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
