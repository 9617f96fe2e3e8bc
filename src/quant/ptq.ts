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
 * Values are a seeded subsample (16,384 per batch and layer) plus the exact maximum.
 *
 * Bias correction (Nagel et al. 2019, "Data-Free Quantization", the empirical variant on the mean
 * input): each layer keeps the mean of every input channel, and whenever its weights are quantized
 * it subtracts the expected output shift (W_q - W) . E[x] from its bias, at whatever wBits it runs.
 */
import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/api.js';
import type { QuantLayer } from './layers.js';
import type { QuantNetwork } from './network.js';
import { activationRange, FLOAT_BITS, positiveLevels } from './quantizers.js';
import { Rng } from '../util/rng.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'mse' | 'ema';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'mse', 'ema'];
export const DEFAULT_CALIBRATION: CalibrationMethod = 'mse';
export const DEFAULT_PERCENTILE = 99.99;
const SAMPLES_PER_BATCH = 16_384;
const MSE_CANDIDATES = 100;

export interface PtqOptions {
  method?: CalibrationMethod;
  /** Percentile of `percentile` calibration (default 99.99). */
  percentile?: number;
  /** Apply bias correction (default true). */
  biasCorrection?: boolean;
  /** Batches of calibration data (default 8). */
  batches?: number;
  batchSize?: number;
  seed?: number;
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
export function collectLayerStats(
  net: QuantNetwork,
  split: Split,
  opts: { batches?: number; batchSize?: number; seed?: number } = {},
): LayerStats[] {
  const batches = opts.batches ?? 8;
  const size = opts.batchSize ?? 16;
  const n = split.labels.length;
  const rng = new Rng(opts.seed ?? 1);
  const saved = net.getBits();
  const parts = net.qlayers.map(() => ({
    max: 0,
    samples: [] as Float32Array[],
    sum: null as Float64Array | null,
    count: 0,
  }));
  net.qlayers.forEach((q, li) => {
    const acc = parts[li];
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
      acc.max = Math.max(acc.max, mx.dataSync()[0]);
      const m = mean.dataSync();
      const rows = flat / channels;
      if (!acc.sum) acc.sum = new Float64Array(channels);
      for (let c = 0; c < channels; c++) acc.sum[c] = acc.sum[c] + m[c] * rows;
      acc.count += rows;
      acc.samples.push(Float32Array.from(picked.dataSync()));
      mx.dispose();
      mean.dispose();
      picked.dispose();
    };
  });
  try {
    net.setBits(saved.map(() => ({ wBits: FLOAT_BITS, aBits: FLOAT_BITS })));
    for (let b = 0; b < batches && b * size < n; b++) {
      const count = Math.min(size, n - b * size);
      tf.tidy(() => {
        net.model.predict(tf.slice(split.x, [b * size, 0, 0, 0], [count, -1, -1, -1]));
      });
    }
  } finally {
    for (const q of net.qlayers) q.statsHook = null;
    net.setBits(saved);
  }
  return parts.map((p) => {
    const total = p.samples.reduce((a, s) => a + s.length, 0);
    const samples = new Float32Array(total);
    let off = 0;
    for (const s of p.samples) {
      samples.set(s, off);
      off += s.length;
    }
    const sum = p.sum ?? new Float64Array(0);
    return { max: p.max, samples, channelMean: Float32Array.from(sum, (v) => v / Math.max(1, p.count)) };
  });
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
}

/**
 * Calibrates every quantized layer's activation range at its current aBits and (by default)
 * turns on bias correction, from batches of `split` (e.g. the training split).
 */
export async function postTrainingQuantize(net: QuantNetwork, split: Split, opts: PtqOptions = {}): Promise<PtqResult> {
  const method = opts.method ?? DEFAULT_CALIBRATION;
  const biasCorrection = opts.biasCorrection ?? true;
  const stats = collectLayerStats(net, split, opts);
  const clips: (number | null)[] = [];
  if (method === 'ema') {
    for (const q of net.qlayers) q.resetActivationRange();
    net.qlayers.forEach(() => clips.push(null));
    const size = opts.batchSize ?? 16;
    const n = split.labels.length;
    for (let b = 0; b < (opts.batches ?? 8) && b * size < n; b++) {
      const xb = tf.slice(split.x, [b * size, 0, 0, 0], [Math.min(size, n - b * size), -1, -1, -1]);
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
  return { method, biasCorrection, clips, stats };
}
