import type { Preprocess } from './preprocess.js';

/** The contract of datasets: tensors in NHWC float32 (0..1 scaled), labels one-hot. */
import type * as tf from '@tensorflow/tfjs';

/**
 * A split's inputs, read one minibatch at a time as NHWC float32 (preprocessing applied). Image folders
 * read the uint8 image cache by batch (memory O(batch)); IDX/MNIST/CIFAR splits hold a float tensor.
 * Every tensor returned is new: the caller disposes it (or makes it inside tf.tidy).
 */
export interface SplitInputs {
  /** [n, h, w, c]. */
  readonly shape: [number, number, number, number];
  /** True when the whole split is held in memory as one float tensor. */
  readonly inMemory: boolean;
  /** Samples start .. start+count-1 as a [count, h, w, c] tensor. */
  slice(start: number, count: number): tf.Tensor4D;
  /** The samples at these split positions, in this order, as a [k, h, w, c] tensor. */
  gather(indices: Int32Array): tf.Tensor4D;
  /** Samples start .. start+count-1 as floats (count * h * w * c, HWC per sample). */
  read(start: number, count: number): Float32Array;
  /** Frees what the inputs hold (the float tensor; a streamed split's materialised `x`, if it was built). */
  dispose(): void;
}

export interface Split {
  /**
   * [n, h, w, c] float32: the whole split as one tensor. An image folder's split builds it on first use
   * (O(split) memory; for small sets and tests): code that must stay O(batch) reads `inputs` through
   * `splitInputs` (data/inputs.ts).
   */
  readonly x: tf.Tensor4D;
  /** The inputs by batch (image folders: read from the uint8 cache). Absent: batches are cut from `x`. */
  inputs?: SplitInputs;
  /** [n, classes] one-hot float32. */
  y: tf.Tensor2D;
  /** Integer labels, same order. */
  labels: Int32Array;
}

export interface Dataset {
  name: string;
  /** [h, w, c] of one sample. */
  inputShape: [number, number, number];
  numClasses: number;
  classNames?: string[];
  train: Split;
  val: Split;
  test: Split;
  /** Where it was read from (directory or package). */
  source: string;
  /** False when the samples have no labels (an image folder of loose images): y is a placeholder until targets are set. */
  labeled?: boolean;
  /** How images were turned into inputs (image folders). */
  preprocess?: Preprocess;
  /** Image folders: images found, skipped as unreadable, the cache folder and whether this load decoded them. */
  images?: { total: number; skipped: number; cacheDir: string; decoded: boolean };
  /**
   * What `accuracy` measures on this dataset: `accuracy` (top-1 against the labels) or `agreement`
   * (top-1 agreement with the float network, set by train/distill.ts). Absent: accuracy.
   */
  metric?: 'accuracy' | 'agreement';
}
