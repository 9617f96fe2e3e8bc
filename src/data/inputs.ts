/**
 * Batch sources for a split's inputs (api.ts SplitInputs): one over an in-memory float tensor (IDX,
 * MNIST, CIFAR-10, test fixtures) and one that reads an image folder's uint8 cache file batch by batch,
 * applying the preprocessing scale per batch, so a large folder never sits in memory as floats.
 * The bytes -> float conversion is the one of the in-memory path (bytesToInput), so both give the
 * same floats bit for bit.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { tf } from '../backend/index.js';
import { UserError } from '../errors.js';
import type { Split, SplitInputs } from './api.js';
import { bytesToInput, type Preprocess } from './preprocess.js';

/** Inputs over a float tensor held in memory (disposing them disposes the tensor). */
export function tensorInputs(x: tf.Tensor4D): SplitInputs {
  const [n, h, w, c] = x.shape;
  return {
    shape: [n, h, w, c],
    inMemory: true,
    slice: (start, count) => tf.slice(x, [start, 0, 0, 0], [count, -1, -1, -1]),
    gather: (indices) => tf.tidy(() => tf.gather(x, tf.tensor1d(indices, 'int32'))),
    read(start, count) {
      const part = tf.slice(x, [start, 0, 0, 0], [count, -1, -1, -1]);
      try {
        return Float32Array.from(part.dataSync() as Float32Array);
      } finally {
        part.dispose();
      }
    },
    dispose: () => x.dispose(),
  };
}

const wrapped = new WeakMap<Split, SplitInputs>();

/** A split's batch source: its own `inputs`, else one over its `x` tensor. */
export function splitInputs(split: Split): SplitInputs {
  if (split.inputs) return split.inputs;
  let s = wrapped.get(split);
  if (!s) {
    s = tensorInputs(split.x);
    wrapped.set(split, s);
  }
  return s;
}

export interface CacheFileInputsOptions {
  /** The cache's images.u8 (RGB uint8, HWC, one image after the other). */
  file: string;
  /** Cache index of each sample of the split, in split order. */
  positions: Int32Array;
  height: number;
  width: number;
  preprocess: Preprocess;
}

/**
 * Inputs read from an image cache file on demand: each call opens the file, reads the bytes of the
 * samples asked for and converts them to float. Memory: the batch asked for, nothing per split.
 */
export function cacheFileInputs(o: CacheFileInputsOptions): SplitInputs & { materialised(): tf.Tensor4D } {
  const { file, positions, height: h, width: w, preprocess } = o;
  const n = positions.length;
  const imageBytes = h * w * 3;
  let whole: tf.Tensor4D | null = null;
  const readAt = (idx: ArrayLike<number>): Float32Array => {
    const k = idx.length;
    const out = new Float32Array(k * imageBytes);
    if (k === 0) return out;
    const bytes = new Uint8Array(imageBytes);
    const fd = openSync(file, 'r');
    try {
      for (let j = 0; j < k; j++) {
        const at = idx[j];
        if (!(at >= 0 && at < n)) throw new RangeError(`sample ${at} is outside the split (0..${n - 1})`);
        const i = positions[at];
        const got = readSync(fd, bytes, 0, imageBytes, i * imageBytes);
        if (got !== imageBytes)
          throw new UserError(`image cache is truncated (image ${i})`, {
            file,
            expected: 'delete the folder to rebuild it',
          });
        bytesToInput(bytes, preprocess, out, j * imageBytes);
      }
    } finally {
      closeSync(fd);
    }
    return out;
  };
  const range = (start: number, count: number): Int32Array => {
    if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= n))
      throw new RangeError(`samples ${start}..${start + count - 1} are outside the split (0..${n - 1})`);
    const idx = new Int32Array(count);
    for (let j = 0; j < count; j++) idx[j] = start + j;
    return idx;
  };
  const inputs = {
    shape: [n, h, w, 3] as [number, number, number, number],
    inMemory: false,
    read: (start: number, count: number) => readAt(range(start, count)),
    slice: (start: number, count: number) => tf.tensor4d(readAt(range(start, count)), [count, h, w, 3], 'float32'),
    gather: (indices: Int32Array) => tf.tensor4d(readAt(indices), [indices.length, h, w, 3], 'float32'),
    materialised(): tf.Tensor4D {
      if (!whole || whole.isDisposed) whole = tf.keep(inputs.slice(0, n)); // kept when first read inside tf.tidy
      return whole;
    },
    dispose() {
      whole?.dispose();
      whole = null;
    },
  };
  return inputs;
}
