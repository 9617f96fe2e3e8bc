/** Seeded partitions of sample indices and building a Split's tensors from raw samples. */
import { tf } from '../backend/index.js';
import { Rng } from '../util/rng.js';
import type { Split } from './api.js';

/** Reads samples one at a time into NHWC float32 (0..1), so only the selected samples are converted. */
export interface SampleSource {
  /** Total number of samples. */
  n: number;
  shape: [number, number, number];
  /** Writes sample `i` (h*w*c values, HWC order, 0..1) into `out` at `offset`. */
  read(i: number, out: Float32Array, offset: number): void;
}

/** 0..n-1 in order. */
export function range(n: number): Int32Array {
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  return idx;
}

/** A permutation of 0..n-1 drawn from the seed. */
export function seededPermutation(n: number, seed: number): Int32Array {
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx;
}

/** The first `limit` entries (all when limit is undefined). */
export function take(indices: Int32Array, limit: number | undefined): Int32Array {
  return limit === undefined || limit >= indices.length ? indices : indices.subarray(0, limit);
}

/**
 * Splits a training pool into train and validation: `valFraction` of the pool (rounded) goes to
 * validation, the rest to train, after a seeded shuffle.
 */
export function splitPool(pool: Int32Array, valFraction: number, seed: number): { train: Int32Array; val: Int32Array } {
  const perm = seededPermutation(pool.length, seed);
  const shuffled = new Int32Array(pool.length);
  for (let i = 0; i < pool.length; i++) shuffled[i] = pool[perm[i]];
  const nVal = Math.round(pool.length * valFraction);
  return { val: shuffled.subarray(0, nVal), train: shuffled.subarray(nVal) };
}

/** Builds a Split (x NHWC float32, y one-hot, labels) from the selected samples. */
export function buildSplit(src: SampleSource, labels: Int32Array, indices: Int32Array, numClasses: number): Split {
  const [h, w, c] = src.shape;
  const size = h * w * c;
  const n = indices.length;
  const pixels = new Float32Array(n * size);
  const lab = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    src.read(i, pixels, k * size);
    lab[k] = labels[i];
  }
  const x = tf.tensor4d(pixels, [n, h, w, c], 'float32');
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(lab, 'int32'), numClasses).toFloat()) as tf.Tensor2D;
  return { x, y, labels: lab };
}
