/**
 * `cifar10`: the CIFAR-10 binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin).
 * Each record is 1 label byte then 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, rows
 * of 32), converted here to NHWC float32 0..1. test_batch.bin is the test split; validation is
 * carved from the 50,000 training images by the seed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import type { Dataset } from './api.js';
import { readMaybeGzip, requireDir, requireInDir } from './files.js';
import { buildSplit, range, splitPool, take, type SampleSource } from './split.js';
import { DEFAULT_VAL_FRACTION } from './idx-dataset.js';

export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];
export const CIFAR10_TRAIN_FILES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
];
export const CIFAR10_TEST_FILE = 'test_batch.bin';
const SIDE = 32;
const PLANE = SIDE * SIDE;
const RECORD = 1 + 3 * PLANE;
const HINT =
  'pass --data-dir DIR holding the CIFAR-10 binary version (cifar-10-binary.tar.gz extracted: data_batch_1.bin .. ' +
  'data_batch_5.bin and test_batch.bin, or their parent folder containing cifar-10-batches-bin/)';

interface Batch {
  bytes: Uint8Array;
  n: number;
  labels: Int32Array;
}

/** Reads and checks one batch file: whole records only, labels 0..9. */
export function readCifarBatch(file: string): Batch {
  const bytes = readMaybeGzip(file, HINT);
  if (bytes.length === 0 || bytes.length % RECORD !== 0) {
    const whole = Math.floor(bytes.length / RECORD);
    throw new UserError(
      bytes.length === 0
        ? 'is empty'
        : `is truncated or corrupt: ${bytes.length} bytes is not a whole number of ${RECORD}-byte records (${whole} records + ${bytes.length - whole * RECORD} bytes)`,
      { file, expected: `records of 1 label byte + 3072 pixel bytes; ${HINT}` },
    );
  }
  const n = bytes.length / RECORD;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const l = bytes[i * RECORD];
    if (l > 9) {
      throw new UserError(`label ${l} of record ${i} is out of range`, { file, expected: `labels 0..9; ${HINT}` });
    }
    labels[i] = l;
  }
  return { bytes, n, labels };
}

function concat(batches: Batch[]): Batch {
  const n = batches.reduce((a, b) => a + b.n, 0);
  const bytes = new Uint8Array(n * RECORD);
  const labels = new Int32Array(n);
  let o = 0;
  for (const b of batches) {
    bytes.set(b.bytes, o * RECORD);
    labels.set(b.labels, o);
    o += b.n;
  }
  return { bytes, n, labels };
}

function source(b: Batch): SampleSource {
  return {
    n: b.n,
    shape: [SIDE, SIDE, 3],
    read(i, out, offset) {
      const base = i * RECORD + 1;
      for (let p = 0; p < PLANE; p++) {
        const o = offset + p * 3;
        out[o] = b.bytes[base + p] / 255;
        out[o + 1] = b.bytes[base + PLANE + p] / 255;
        out[o + 2] = b.bytes[base + 2 * PLANE + p] / 255;
      }
    },
  };
}

/** The directory holding the batch files: `dir` itself or its cifar-10-batches-bin/ subfolder. */
function batchDir(dir: string): string {
  const sub = join(dir, 'cifar-10-batches-bin');
  return !existsSync(join(dir, CIFAR10_TEST_FILE)) && existsSync(sub) ? sub : dir;
}

/** Checks that the CIFAR-10 files are there (without reading them). */
export function checkCifar10Files(dataDir: string | undefined): void {
  if (!dataDir)
    throw new UserError('cifar10 is not bundled with bitalloc: say where it is', {
      field: '--data-dir',
      expected: HINT,
    });
  requireDir(dataDir, '--data-dir', HINT);
  const dir = batchDir(dataDir);
  for (const f of [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE]) requireInDir(dir, [f], HINT);
}

export function loadCifar10(opts: { dataDir?: string; seed: number; valFraction?: number; limit?: number }): Dataset {
  if (!opts.dataDir) {
    throw new UserError('cifar10 is not bundled with bitalloc: say where it is', {
      field: '--data-dir',
      expected: HINT,
    });
  }
  requireDir(opts.dataDir, '--data-dir', HINT);
  const dir = batchDir(opts.dataDir);
  const trainFiles = CIFAR10_TRAIN_FILES.map((f) => requireInDir(dir, [f], HINT));
  const testFile = requireInDir(dir, [CIFAR10_TEST_FILE], HINT);
  const train = concat(trainFiles.map(readCifarBatch));
  const test = readCifarBatch(testFile);
  let classNames = CIFAR10_CLASSES;
  const meta = join(dir, 'batches.meta.txt');
  if (existsSync(meta)) {
    const names = readFileSync(meta, 'utf8')
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    if (names.length === 10) classNames = names;
  }
  const { train: trainIdx, val: valIdx } = splitPool(
    range(train.n),
    opts.valFraction ?? DEFAULT_VAL_FRACTION,
    opts.seed,
  );
  const trainSrc = source(train);
  return {
    name: 'cifar10',
    inputShape: [SIDE, SIDE, 3],
    numClasses: 10,
    classNames,
    train: buildSplit(trainSrc, train.labels, take(trainIdx, opts.limit), 10),
    val: buildSplit(trainSrc, train.labels, take(valIdx, opts.limit), 10),
    test: buildSplit(source(test), test.labels, take(range(test.n), opts.limit), 10),
    source: dir,
  };
}
