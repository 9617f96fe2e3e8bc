/** Small pieces the benchmark suites share: flag parsing, timing and synthetic training data. */
import * as tf from '@tensorflow/tfjs';
import type { Dataset, Split } from '../src/data/api.js';
import type { Rng } from '../src/util/rng.js';

/** The value after `name` (e.g. `--steps`) in argv, or undefined. */
export function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The upper median (the middle element of the sorted values; the upper of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Seconds per call of `f`: one warm-up call, then the median of `runs` timed calls. */
export async function timeRuns(runs: number, f: () => Promise<unknown>): Promise<number> {
  await f();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    t.push((performance.now() - t0) / 1000);
  }
  return median(t);
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

/** A synthetic dataset of `n` random samples (randomSplit) serving as train, val and test alike. */
export function randomDataset(n: number, shape: [number, number, number], rng: Rng, classes: number): Dataset {
  const train = randomSplit(n, shape, rng, classes);
  return {
    name: 'synthetic',
    inputShape: shape,
    numClasses: classes,
    train,
    val: train,
    test: train,
    source: 'random',
  };
}
