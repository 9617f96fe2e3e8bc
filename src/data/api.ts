import type { Preprocess } from './preprocess.js';

/** The contract of datasets: tensors in NHWC float32 (0..1 scaled), labels one-hot. */
import type * as tf from '@tensorflow/tfjs';

export interface Split {
  /** [n, h, w, c] float32. */
  x: tf.Tensor4D;
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
