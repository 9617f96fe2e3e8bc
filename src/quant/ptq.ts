/**
 * Post-training quantization: activation ranges calibrated from data and weight-side corrections,
 * without any training.
 *
 * Calibration (`method`), per quantized layer, from the layer's float input over a few batches
 * (every other layer at float, so each range sees the distribution the float network produces):
 * - `minmax`: the largest value seen (max |x| for signed inputs).
 * - `percentile`: the p-th percentile (default 99.99) of the values (|x| for signed inputs).
 * - `mse`: the clip c that minimises the mean squared error between x and its quantization on the
 *   grid of the layer's aBits, over 100 candidates c = max * t, t in [0.05, 1].
 * - `ema`: the trainer's running mean of batch maxima (the QAT default), for comparison.
 * Values are a seeded subsample (16,384 per batch and layer, from the layer's own seeded stream, so the
 * subsample does not depend on the order layers run in) plus the exact maximum.
 * The statistics come from tfjs forward passes, or from another engine through PtqOptions.collect
 * (src/onnx/calibration.ts: onnxruntime, the same statistics within float tolerance).
 *
 * Bias correction (Nagel et al. 2019, "Data-Free Quantization", the empirical variant on the mean
 * input): each layer keeps the mean of every input channel, and whenever its weights are quantized
 * it subtracts the expected output shift (W_q - W) . E[x] from its bias, at whatever wBits it runs.
 */
import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/api.js';
import { splitInputs } from '../data/inputs.js';
import { batchNormFactors, QuantLayer } from './layers.js';
import { consumers, inboundNames } from './inventory.js';
import type { QuantNetwork } from './network.js';
import { activationRange, FLOAT_BITS, positiveLevels } from './quantizers.js';
import { Rng } from '../util/rng.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'mse' | 'ema';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'mse', 'ema'];
export const DEFAULT_CALIBRATION: CalibrationMethod = 'mse';
export const DEFAULT_PERCENTILE = 99.99;
export const SAMPLES_PER_BATCH = 16_384;
const MSE_CANDIDATES = 100;

export interface PtqOptions {
  method?: CalibrationMethod;
  /** Percentile of `percentile` calibration (default 99.99). */
  percentile?: number;
  /** Apply bias correction (default true). */
  biasCorrection?: boolean;
  /** Cross-layer equalisation of the float weights before calibration (default off); see equalizeCrossLayer. */
  equalize?: boolean | EqualizeOptions;
  /** Batches of calibration data (default 8). */
  batches?: number;
  batchSize?: number;
  seed?: number;
  /** Where the layer statistics come from (default: tfjs forward passes, collectLayerStats). */
  collect?: StatsCollector;
}

export interface StatsOptions {
  batches?: number;
  batchSize?: number;
  seed?: number;
}

/** Collects every quantized layer's float input statistics (what collectLayerStats computes, by any engine). */
export type StatsCollector = (net: QuantNetwork, split: Split, opts: StatsOptions) => Promise<LayerStats[]>;

/** Layer `layer`'s subsample stream under `seed` (each layer draws from its own). */
export function layerRng(seed: number, layer: number): Rng {
  return new Rng(Math.imul((seed >>> 0) ^ 0x5bd1e995, 0x01000193) ^ Math.imul(layer + 1, 0x9e3779b1));
}

/** Accumulates one layer's statistics batch by batch. */
export class LayerStatsAccumulator {
  max = 0;
  private readonly samples: Float32Array[] = [];
  private sum: Float64Array | null = null;
  private count = 0;

  /** Adds a batch's channel sums (over `rows` rows), its maximum and its subsample. */
  add(max: number, channelSum: Float64Array, rows: number, picked: Float32Array): void {
    this.max = Math.max(this.max, max);
    if (!this.sum) this.sum = new Float64Array(channelSum.length);
    for (let c = 0; c < channelSum.length; c++) this.sum[c] += channelSum[c];
    this.count += rows;
    this.samples.push(picked);
  }

  result(): LayerStats {
    const total = this.samples.reduce((a, s) => a + s.length, 0);
    const samples = new Float32Array(total);
    let off = 0;
    for (const s of this.samples) {
      samples.set(s, off);
      off += s.length;
    }
    const sum = this.sum ?? new Float64Array(0);
    return { max: this.max, samples, channelMean: Float32Array.from(sum, (v) => v / Math.max(1, this.count)) };
  }
}

export interface LayerStats {
  /** max x (unsigned) or max |x| (signed). */
  max: number;
  /** Subsampled values (|x| when signed). */
  samples: Float32Array;
  /** Mean of each input channel. */
  channelMean: Float32Array;
}

/** Collects, for every quantized layer, its float input's statistics over the calibration batches. */
export function collectLayerStats(net: QuantNetwork, split: Split, opts: StatsOptions = {}): LayerStats[] {
  const batches = opts.batches ?? 8;
  const size = opts.batchSize ?? 16;
  const n = split.labels.length;
  const seed = opts.seed ?? 1;
  const saved = net.getBits();
  const parts = net.qlayers.map(() => new LayerStatsAccumulator());
  net.qlayers.forEach((q, li) => {
    const acc = parts[li];
    const rng = layerRng(seed, li);
    q.statsHook = (x: tf.Tensor) => {
      const channels = x.shape[x.shape.length - 1];
      const flat = x.size;
      const k = Math.min(SAMPLES_PER_BATCH, flat);
      const idx = new Int32Array(k);
      for (let i = 0; i < k; i++) idx[i] = rng.int(flat);
      const [mx, mean, picked] = tf.tidy((): [tf.Tensor, tf.Tensor, tf.Tensor] => {
        const v = q.signed ? tf.abs(x) : x;
        return [
          tf.max(v),
          tf.mean(tf.reshape(x, [-1, channels]), 0),
          tf.gather(tf.reshape(v, [-1]), tf.tensor1d(idx, 'int32')),
        ];
      });
      const m = mean.dataSync();
      const rows = flat / channels;
      const sum = Float64Array.from(m, (v) => v * rows);
      acc.add(mx.dataSync()[0], sum, rows, Float32Array.from(picked.dataSync()));
      mx.dispose();
      mean.dispose();
      picked.dispose();
    };
  });
  const inputs = splitInputs(split);
  try {
    net.setBits(saved.map(() => ({ wBits: FLOAT_BITS, aBits: FLOAT_BITS })));
    for (let b = 0; b < batches && b * size < n; b++) {
      const count = Math.min(size, n - b * size);
      tf.tidy(() => {
        net.model.predict(inputs.slice(b * size, count));
      });
    }
  } finally {
    for (const q of net.qlayers) q.statsHook = null;
    net.setBits(saved);
  }
  return parts.map((p) => p.result());
}

/** The p-th percentile of the values. */
export function percentileOf(values: Float32Array, p: number): number {
  if (values.length === 0) return 0;
  const sorted = Float32Array.from(values).sort();
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Mean squared quantization error of the values on the clip-c grid of `bits` (signed: values are |x|, symmetric grid). */
export function quantizationMse(values: Float32Array, clip: number, bits: number, signed: boolean): number {
  const levels = positiveLevels(bits, signed);
  const range = activationRange(bits, signed);
  const s = clip / levels;
  const hi = signed ? range.qmax : range.qmax;
  const lo = signed ? -range.qmax : range.qmin;
  let err = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    let q = Math.round(v / s);
    if (q > hi) q = hi;
    else if (q < lo) q = lo;
    const d = q * s - v;
    err += d * d;
  }
  return values.length ? err / values.length : 0;
}

/** The MSE-optimal clip over candidates max * t, t in [0.05, 1]. */
export function mseClip(values: Float32Array, max: number, bits: number, signed: boolean): number {
  if (!(max > 0)) return max;
  let best = max;
  let bestErr = Infinity;
  for (let i = 0; i < MSE_CANDIDATES; i++) {
    const t = 0.05 + (0.95 * (i + 1)) / MSE_CANDIDATES;
    const c = max * t;
    const e = quantizationMse(values, c, bits, signed);
    if (e < bestErr) {
      bestErr = e;
      best = c;
    }
  }
  return best;
}

/** The clip a calibration method gives for one layer's statistics at `bits`. */
export function clipFor(
  stats: LayerStats,
  method: Exclude<CalibrationMethod, 'ema'>,
  bits: number,
  signed: boolean,
  percentile = DEFAULT_PERCENTILE,
): number {
  if (method === 'minmax') return stats.max;
  if (method === 'percentile') return Math.min(stats.max, percentileOf(stats.samples, percentile));
  return mseClip(stats.samples, stats.max, bits >= FLOAT_BITS ? 8 : bits, signed);
}

/** Sets (or, with `null`, clears) every layer's bias-correction means. */
export function setBiasCorrection(net: QuantNetwork, stats: LayerStats[] | null): void {
  net.qlayers.forEach((q: QuantLayer, i) => {
    q.inputMean?.dispose();
    q.inputMean = null;
    const s = stats?.[i];
    if (s && s.channelMean.length > 0) q.inputMean = tf.keep(tf.tensor1d(s.channelMean));
  });
}

export interface PtqResult {
  method: CalibrationMethod;
  biasCorrection: boolean;
  /** The clip set on each layer (null at float activation bits). */
  clips: (number | null)[];
  stats: LayerStats[];
  /** Layer pairs cross-layer equalisation rescaled (0 without it). */
  equalizedPairs: number;
}

/**
 * Calibrates every quantized layer's activation range at its current aBits and (by default)
 * turns on bias correction, from batches of `split` (e.g. the training split).
 */
export async function postTrainingQuantize(net: QuantNetwork, split: Split, opts: PtqOptions = {}): Promise<PtqResult> {
  const method = opts.method ?? DEFAULT_CALIBRATION;
  const biasCorrection = opts.biasCorrection ?? true;
  const equalized = opts.equalize ? equalizeCrossLayer(net, opts.equalize === true ? {} : opts.equalize) : [];
  const statsOpts: StatsOptions = {
    ...(opts.batches !== undefined ? { batches: opts.batches } : {}),
    ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  };
  const stats = opts.collect ? await opts.collect(net, split, statsOpts) : collectLayerStats(net, split, statsOpts);
  const clips: (number | null)[] = [];
  if (method === 'ema') {
    for (const q of net.qlayers) q.resetActivationRange();
    net.qlayers.forEach(() => clips.push(null));
    const size = opts.batchSize ?? 16;
    const n = split.labels.length;
    for (let b = 0; b < (opts.batches ?? 8) && b * size < n; b++) {
      const xb = splitInputs(split).slice(b * size, Math.min(size, n - b * size));
      try {
        net.calibrate(xb);
      } finally {
        xb.dispose();
      }
    }
  } else {
    net.qlayers.forEach((q, i) => {
      const s = stats[i];
      if (q.aBits >= FLOAT_BITS) {
        clips.push(null);
        // a range for when the bits drop later
        q.setActivationClip(clipFor(s, method, 8, q.signed, opts.percentile));
        return;
      }
      const c = clipFor(s, method, q.aBits, q.signed, opts.percentile);
      q.setActivationClip(c);
      clips.push(c);
    });
  }
  setBiasCorrection(net, biasCorrection ? stats : null);
  return { method, biasCorrection, clips, stats, equalizedPairs: equalized.length };
}

/** What cross-layer equalisation does with ReLU6 between two layers (not positively homogeneous). */
export type Relu6Handling = 'skip' | 'relu';

export interface EqualizeOptions {
  /** `skip` (default): leave pairs joined by ReLU6 alone; `relu`: turn those ReLU6 into ReLU first (AIMET's way; changes the float function where ReLU6 clipped). */
  relu6?: Relu6Handling;
  /** Sweeps over the pairs (ranges of a layer shared by two pairs settle over sweeps; default 4). */
  iterations?: number;
}

export interface EqualizedPair {
  first: string;
  second: string;
  /** Largest / smallest per-channel scale applied in the last sweep. */
  maxScale: number;
  minScale: number;
}

interface CleStep {
  first: QuantLayer;
  bn: tf.layers.Layer | null;
  second: QuantLayer;
  relu6: tf.layers.Layer[];
}

const PASS_THROUGH = new Set(['ReLU', 'Activation', 'ZeroPadding2D']);

/** Pairs conv/depthwise -> [BatchNorm] -> ReLU / linear / zero padding -> conv/depthwise joined by single-consumer links. */
function equalizablePairs(net: QuantNetwork, relu6: Relu6Handling): CleStep[] {
  const model = net.model;
  const cons = consumers(model);
  const out: CleStep[] = [];
  for (const first of net.qlayers) {
    if (first.kind === 'dense' || first.frozenWeights) continue;
    if (first.kind === 'depthwise' && (first.getKernel().shape as number[])[3] !== 1) continue; // depth multiplier 1 only
    if (first.activation !== 'linear' && first.activation !== 'relu') continue;
    const bn = first.foldedBn;
    if (bn) {
      const cfg = bn.getConfig();
      if (cfg['scale'] === false) continue; // the scale goes into gamma
    }
    let node: tf.layers.Layer = bn ?? first;
    const relu6Layers: tf.layers.Layer[] = [];
    let second: QuantLayer | null = null;
    for (let hops = 0; hops < 8; hops++) {
      const next = cons.get(node.name) ?? [];
      if (next.length !== 1 || model.outputs.some((t) => t.sourceLayer.name === node.name)) break;
      const l = model.getLayer(next[0]);
      if (inboundNames(l).length !== 1) break;
      if (l instanceof QuantLayer) {
        if (l.kind !== 'dense' && !l.frozenWeights) second = l;
        break;
      }
      const cls = l.getClassName();
      if (!PASS_THROUGH.has(cls)) break;
      const cfg = l.getConfig();
      if (cls === 'Activation' && cfg['activation'] !== 'relu' && cfg['activation'] !== 'linear') break;
      if (cls === 'ReLU') {
        const slope = cfg['negativeSlope'];
        if (typeof slope === 'number' && slope !== 0) break;
        if (cfg['maxValue'] != null) {
          if (relu6 === 'skip') break;
          relu6Layers.push(l);
        }
      }
      node = l;
    }
    if (second) out.push({ first, bn, second, relu6: relu6Layers });
  }
  return out;
}

/**
 * Cross-layer equalisation (Nagel et al. 2019, "Data-Free Quantization"; AIMET's CLE) on the float
 * weights, before calibration: for each pair W1 -> [BatchNorm] -> ReLU -> W2, output channel i of
 * the first layer (BatchNorm folded) is divided by s_i = sqrt(r1_i * r2_i) / r2_i and input channel i of
 * the second multiplied by s_i (r: the channel's largest |weight|), which leaves the float network
 * unchanged (ReLU is positively homogeneous) and gives both channels the range sqrt(r1_i * r2_i), so
 * per-channel grids of thin depthwise channels stop wasting levels. With a BatchNorm in between its
 * gamma and beta carry the 1/s_i. ReLU6 is not homogeneous: see EqualizeOptions.relu6.
 */
export function equalizeCrossLayer(net: QuantNetwork, opts: EqualizeOptions = {}): EqualizedPair[] {
  const pairs = equalizablePairs(net, opts.relu6 ?? 'skip');
  for (const p of pairs) {
    for (const l of p.relu6) (l as unknown as { maxValue: number | null | undefined }).maxValue = undefined;
  }
  const iterations = opts.iterations ?? 4;
  const result: EqualizedPair[] = [];
  for (let it = 0; it < iterations; it++) {
    result.length = 0;
    for (const p of pairs) {
      const s = tf.tidy(() => {
        const k1 = p.first.getKernel().read();
        const axes1 = p.first.kind === 'depthwise' ? [0, 1, 3] : [0, 1, 2];
        let r1 = tf.max(tf.abs(k1), axes1);
        if (p.bn) r1 = tf.mul(r1, tf.abs(batchNormFactors(p.bn).k));
        const k2 = p.second.getKernel().read();
        let folded2 = k2;
        if (p.second.foldedBn) {
          const k = batchNormFactors(p.second.foldedBn).k;
          folded2 = tf.mul(k2, tf.reshape(tf.abs(k), p.second.channelShape()));
        }
        const r2 = tf.max(tf.abs(folded2), [0, 1, 3]);
        const ok = tf.logicalAnd(tf.greater(r1, 0), tf.greater(r2, 0));
        const raw = tf.div(tf.sqrt(tf.mul(r1, r2)), tf.maximum(r2, 1e-30));
        return tf.keep(tf.where(ok, raw, tf.onesLike(raw)));
      });
      const sv = s.dataSync();
      let mx = -Infinity;
      let mn = Infinity;
      for (const v of sv) {
        mx = Math.max(mx, v);
        mn = Math.min(mn, v);
      }
      result.push({ first: p.first.name, second: p.second.name, maxScale: mx, minScale: mn });
      tf.tidy(() => {
        const inv = tf.div(1, s);
        if (p.bn) {
          // gamma, then beta when centred (the order tfjs and Keras give a BatchNorm's weights)
          const w = p.bn.weights;
          const scaled = p.bn.getConfig()['center'] !== false ? w.slice(0, 2) : w.slice(0, 1);
          for (const v of scaled) v.write(tf.mul(v.read(), inv));
        } else {
          const k1 = p.first.getKernel();
          k1.write(tf.mul(k1.read(), tf.reshape(inv, p.first.channelShape())));
          const b1 = p.first.getBias();
          if (b1) b1.write(tf.mul(b1.read(), inv));
        }
        const k2 = p.second.getKernel();
        const shape = k2.shape as number[];
        k2.write(tf.mul(k2.read(), tf.reshape(s, [1, 1, shape[2], 1])));
      });
      s.dispose();
    }
  }
  return result;
}
