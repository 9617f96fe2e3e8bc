/** Small pieces the benchmark suites share: flag parsing and synthetic training data. */
import * as tf from '@tensorflow/tfjs';
import type { Split } from '../src/data/api.js';
import type { Rng } from '../src/util/rng.js';

/** The value after `name` (e.g. `--steps`) in argv, or undefined. */
export function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** `n` samples of uniform noise of `shape` with random one-hot labels over `classes`. */
export function randomSplit(n: number, shape: [number, number, number], rng: Rng, classes: number): Split {
  const size = shape[0] * shape[1] * shape[2];
  const px = new Float32Array(n * size);
  for (let i = 0; i < px.length; i++) px[i] = rng.next();
  const labels = Int32Array.from({ length: n }, () => rng.int(classes));
  return {
    x: tf.tensor4d(px, [n, ...shape]),
    y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classes).toFloat()) as tf.Tensor2D,
    labels,
  };
}
