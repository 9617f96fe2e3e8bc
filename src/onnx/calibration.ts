/**
 * Post-training calibration statistics (src/quant/ptq.ts, collectLayerStats) from onnxruntime: one
 * session over the float evaluation graph (graph.ts, mode `eval` with every quantizer off) whose
 * extra outputs are every quantized layer's input (WriteOptions.tapInputs). Each calibration batch
 * runs in sub-batches small enough for the taps of large inputs (all of MobileNetV2's layer inputs at
 * 224x224 are about 26 MB a sample); every sub-batch's tensors are reduced to the running statistics
 * (maximum, channel sums, the seeded subsample) at once and dropped, so memory holds one sub-batch.
 * The subsample draws the same flat NHWC indices from the same per-layer streams as the tfjs path, so
 * the statistics equal it within float tolerance.
 */
import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/api.js';
import type { QuantNetwork } from '../quant/network.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import {
  collectLayerStats,
  LayerStatsAccumulator,
  SAMPLES_PER_BATCH,
  layerRng,
  type LayerStats,
  type StatsCollector,
  type StatsOptions,
} from '../quant/ptq.js';
import { FLOAT_BITS } from '../quant/quantizers.js';
import type { EvalBackendChoice } from './eval-backend.js';
import { writeGraph } from './graph.js';
import { encodeModel } from './proto.js';
import { createSession, loadOrt, type OrtModule } from './runtime.js';

export interface OrtStatsOptions {
  /** Intra-op threads (default 2). */
  threads?: number;
  /** Samples per onnxruntime run (default: 4 at 224x224x3, more for smaller inputs, at most the batch). */
  subBatch?: number;
}

/** Seconds the last collection spent building its session and running it (for benchmarks). */
export interface OrtStatsTiming {
  buildSeconds: number;
  runSeconds: number;
}

export const lastOrtStatsTiming: OrtStatsTiming = { buildSeconds: 0, runSeconds: 0 };

interface TapState {
  acc: LayerStatsAccumulator;
  /** This batch's subsample indices (flat NHWC over the whole batch) and values. */
  idx: Int32Array | null;
  picked: Float32Array | null;
  sum: Float64Array | null;
  max: number;
  /** Rows (samples x positions) of this batch. */
  rows: number;
}

/**
 * collectLayerStats through onnxruntime. Throws when onnxruntime-node does not load or the network has
 * no ONNX translation (callers choose the engine first: resolveEvalBackend).
 */
export async function collectLayerStatsOrt(
  net: QuantNetwork,
  split: Split,
  opts: StatsOptions & OrtStatsOptions = {},
): Promise<LayerStats[]> {
  const loaded = await loadOrt();
  if (!loaded) throw new Error('onnxruntime-node does not load');
  const ort: OrtModule = loaded;
  const batches = opts.batches ?? 8;
  const size = opts.batchSize ?? 16;
  const n = split.labels.length;
  const seed = opts.seed ?? 1;
  const shape = split.x.shape.slice(1);
  const sampleSize = shape.reduce((a, b) => a * b, 1);
  const sub = Math.max(1, Math.min(size, opts.subBatch ?? Math.floor((4 * 224 * 224 * 3) / sampleSize)));
  const saved = net.getBits();
  const t0 = performance.now();
  let session: Awaited<ReturnType<typeof createSession>> | null = null;
  const layers: TapState[] = net.qlayers.map(() => ({
    acc: new LayerStatsAccumulator(),
    idx: null,
    picked: null,
    sum: null,
    max: 0,
    rows: 0,
  }));
  const rngs = net.qlayers.map((_, li) => layerRng(seed, li));
  const signed = net.qlayers.map((q) => q.signed);
  let runSeconds = 0;
  try {
    net.setBits(saved.map(() => ({ wBits: FLOAT_BITS, aBits: FLOAT_BITS })));
    const g = writeGraph(net, 'eval', {}, { tapInputs: true });
    if (g.feeds.length > 0) throw new Error('the float evaluation graph has parameter inputs');
    const taps = g.taps as string[];
    session = await createSession(ort, encodeModel(g.model), opts.threads ?? 2, { fakeQuant: true });
    const t1 = performance.now();
    for (let b = 0; b < batches && b * size < n; b++) {
      const count = Math.min(size, n - b * size);
      for (const s of layers) {
        s.idx = null;
        s.picked = null;
        s.sum = null;
        s.max = 0;
        s.rows = 0;
      }
      for (let start = 0; start < count; start += sub) {
        const m = Math.min(sub, count - start);
        const xs = tf.tidy(() => tf.slice(split.x, [b * size + start, 0, 0, 0], [m, -1, -1, -1]));
        const data = Float32Array.from(xs.dataSync());
        xs.dispose();
        const input = new ort.Tensor('float32', data, [m, ...shape]);
        const r = await session.run({ [g.inputName]: input }); // every output (a fetch list here drops one)
        taps.forEach((name, li) => {
          const t = r[name] as { data: Float32Array; dims: readonly number[] };
          reduceTap(layers[li], t.data, t.dims, start, count, signed[li], rngs[li]);
        });
        for (const t of Object.values(r)) (t as { dispose?: () => void }).dispose?.();
      }
      for (const s of layers) s.acc.add(s.max, s.sum ?? new Float64Array(0), s.rows, s.picked ?? new Float32Array(0));
    }
    runSeconds = (performance.now() - t1) / 1000;
    lastOrtStatsTiming.buildSeconds = (t1 - t0) / 1000;
    lastOrtStatsTiming.runSeconds = runSeconds;
  } finally {
    net.setBits(saved);
    await session?.release();
  }
  return layers.map((s) => s.acc.result());
}

/**
 * Adds one sub-batch (samples [start, start + m) of a batch of `count`) of a layer's input to its batch
 * statistics. ONNX layout: [m, C, H, W] or [m, F]; the tfjs layout the subsample indexes is NHWC / [N, F].
 */
function reduceTap(
  s: TapState,
  data: Float32Array,
  dims: readonly number[],
  start: number,
  count: number,
  signed: boolean,
  rng: ReturnType<typeof layerRng>,
): void {
  const m = dims[0];
  const per = data.length / Math.max(1, m);
  const channels = dims[1];
  const spatial = per / channels; // H*W (1 for dense)
  if (!s.idx) {
    const flat = count * per;
    const k = Math.min(SAMPLES_PER_BATCH, flat);
    s.idx = new Int32Array(k);
    for (let i = 0; i < k; i++) s.idx[i] = rng.int(flat);
    s.picked = new Float32Array(k);
    s.sum = new Float64Array(channels);
    s.rows = count * spatial;
  }
  const sum = s.sum as Float64Array;
  let mx = s.max;
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < channels; c++) {
      const base = (i * channels + c) * spatial;
      let acc = 0;
      for (let j = 0; j < spatial; j++) {
        const v = data[base + j];
        acc += v;
        const a = signed ? Math.abs(v) : v;
        if (a > mx) mx = a;
      }
      sum[c] += acc;
    }
  }
  s.max = mx;
  const lo = start * per;
  const hi = (start + m) * per;
  const idx = s.idx;
  const picked = s.picked as Float32Array;
  for (let k = 0; k < idx.length; k++) {
    const f = idx[k];
    if (f < lo || f >= hi) continue;
    // flat NHWC index -> this sub-batch's NCHW offset
    const local = f - lo;
    const sample = Math.floor(local / per);
    const within = local - sample * per;
    const c = within % channels;
    const pix = (within - c) / channels;
    const v = data[(sample * channels + c) * spatial + pix];
    picked[k] = signed ? Math.abs(v) : v;
  }
}

/** A StatsCollector (PtqOptions.collect) on onnxruntime. */
export function ortStatsCollector(opts: OrtStatsOptions = {}): StatsCollector {
  return (net, split, statsOpts) => collectLayerStatsOrt(net, split, { ...statsOpts, ...opts });
}

/**
 * The calibration statistics' engine for an --eval-backend choice: onnxruntime for `onnxruntime`, and for
 * `auto` when onnxruntime-node loads (falling back to tfjs, with a warning, when the network has no ONNX
 * translation); undefined (tfjs) for `tfjs` or when onnxruntime-node does not load.
 */
export async function calibrationCollector(
  choice: EvalBackendChoice,
  opts: OrtStatsOptions = {},
): Promise<StatsCollector | undefined> {
  if (choice === 'tfjs' || !(await loadOrt())) return undefined;
  const ort = ortStatsCollector(opts);
  return async (net, split, statsOpts) => {
    try {
      return await ort(net, split, statsOpts);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (choice === 'onnxruntime')
        throw new UserError(`the network cannot run in onnxruntime: ${msg}`, {
          field: '--eval-backend',
          expected: 'auto or tfjs',
        });
      log.warn(`calibration on tfjs: ${msg}`);
      return collectLayerStats(net, split, statsOpts);
    }
  };
}
