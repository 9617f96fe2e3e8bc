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
}
