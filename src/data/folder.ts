/**
 * `folder`: a user's own images. `--data-dir DIR` holds either class subfolders (labels = the
 * sorted subfolder names) or loose images (no labels: the target becomes agreement with the float
 * network, see train/distill.ts). JPEG, PNG and WebP files are decoded with sharp, resized to the
 * network's input and cached on disk as uint8 (image-cache.ts); channel order and scaling follow the
 * preprocessing settings (preprocess.ts). Train / validation / test are drawn from a seeded
 * permutation (10% / 10% of the images by default for validation / test). The splits keep only
 * labels: their inputs are read from the cache file one minibatch at a time (split.inputs, see
 * inputs.ts), so the folder never sits in memory as floats (`inMemory` converts it all at load).
 */
import { readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { tf } from '../backend/index.js';
import { UserError } from '../errors.js';
import type { Dataset, Split } from './api.js';
import { openImageCache, type ImageCache } from './image-cache.js';
import { cacheFileInputs } from './inputs.js';
import { bytesToInput, DEFAULT_PREPROCESS, type Preprocess } from './preprocess.js';
import { seededPermutation, take } from './split.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];
export const FOLDER_VAL_FRACTION = 0.1;
export const FOLDER_TEST_FRACTION = 0.1;
const HINT =
  'a folder of class subfolders of images (labels = sorted folder names) or a folder of images (no labels); JPEG, PNG or WebP';

export interface FolderOptions {
  dataDir?: string;
  seed: number;
  /** [h, w] of the network's input. */
  imageSize?: [number, number];
  preprocess?: Preprocess;
  valFraction?: number;
  testFraction?: number;
  limit?: number;
  skipUnreadable?: boolean;
  cacheDir?: string;
  /** Convert every split to float tensors at load (the whole folder in memory) instead of reading batches from the cache. */
  inMemory?: boolean;
}

export interface FolderListing {
  /** Image paths, sorted by class then name. */
  files: string[];
  /** Class index of each file (all 0 without labels). */
  labels: Int32Array;
  /** Sorted class names, or null when the images are loose (no labels). */
  classNames: string[] | null;
}

function isImage(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase()) && !name.startsWith('.');
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT'
        ? 'folder not found'
        : code === 'ENOTDIR'
          ? 'is not a folder'
          : `cannot read folder (${code ?? String(e)})`,
      { file: dir, field: '--data-dir', expected: HINT },
    );
  }
}

/** Lists a folder's images and their labels (class subfolders or loose images). */
export function listImageFolder(dir: string): FolderListing {
  const names = listDir(dir);
  const loose = names.filter((n) => isImage(n) && statSync(join(dir, n)).isFile());
  const classes = names.filter((n) => !n.startsWith('.') && statSync(join(dir, n)).isDirectory());
  const perClass = classes.map((c) =>
    listDir(join(dir, c))
      .filter((n) => isImage(n))
      .map((n) => join(dir, c, n)),
  );
  const withImages = classes.filter((_, i) => perClass[i].length > 0);
  if (loose.length > 0 && withImages.length > 0) {
    throw new UserError(
      `holds both loose images (${loose.length}, e.g. ${loose[0]}) and class subfolders (${withImages.join(', ')})`,
      {
        file: dir,
        field: '--data-dir',
        expected: 'either class subfolders only (labelled) or images only (label-free)',
      },
    );
  }
  if (loose.length > 0)
    return { files: loose.map((n) => join(dir, n)), labels: new Int32Array(loose.length), classNames: null };
  if (withImages.length === 0)
    throw new UserError('holds no images', { file: dir, field: '--data-dir', expected: HINT });
  if (withImages.length === 1) {
    throw new UserError(`has a single class subfolder '${withImages[0]}'`, {
      file: dir,
      field: '--data-dir',
      expected: 'two or more class subfolders, or pass the subfolder itself for a label-free set',
    });
  }
  const files: string[] = [];
  const labels: number[] = [];
  withImages.forEach((c) => {
    const i = classes.indexOf(c);
    for (const f of perClass[i]) {
      files.push(f);
      labels.push(withImages.indexOf(c));
    }
  });
  return { files, labels: Int32Array.from(labels), classNames: withImages };
}

/**
 * A split that reads its inputs from the cache file batch by batch (split.inputs); only labels and
 * targets are held. `x` (the whole split as floats) is built on first use.
 */
function streamedFolderSplit(
  cache: ImageCache,
  positions: Int32Array,
  labels: Int32Array,
  numClasses: number,
  p: Preprocess,
): Split {
  const { lab, y } = splitTargets(positions, labels, numClasses);
  const inputs = cacheFileInputs({
    file: cache.path,
    positions: Int32Array.from(positions),
    height: cache.height,
    width: cache.width,
    preprocess: p,
  });
  return {
    get x() {
      return inputs.materialised();
    },
    inputs,
    y,
    labels: lab,
  };
}

/** Builds a split's tensors from cache entries, converting only the selected images to float. */
function buildFolderSplit(
  cache: ImageCache,
  positions: Int32Array,
  labels: Int32Array,
  numClasses: number,
  p: Preprocess,
): Split {
  const { height: h, width: w } = cache;
  const n = positions.length;
  const size = h * w * 3;
  const pixels = new Float32Array(n * size);
  const bytes = new Uint8Array(size);
  for (let k = 0; k < n; k++) {
    cache.read(positions[k], bytes);
    bytesToInput(bytes, p, pixels, k * size);
  }
  const x = tf.tensor4d(pixels, [n, h, w, 3], 'float32');
  const { lab, y } = splitTargets(positions, labels, numClasses);
  return { x, y, labels: lab };
}

/** A split's labels (in split order) and one-hot targets (a zero column when label-free). */
function splitTargets(
  positions: Int32Array,
  labels: Int32Array,
  numClasses: number,
): { lab: Int32Array; y: tf.Tensor2D } {
  const n = positions.length;
  const lab = new Int32Array(n);
  for (let k = 0; k < n; k++) lab[k] = labels[positions[k]];
  const y = tf.tidy(() =>
    numClasses > 0 ? tf.oneHot(tf.tensor1d(lab, 'int32'), numClasses).toFloat() : tf.zeros([n, 1]),
  ) as tf.Tensor2D;
  return { lab, y };
}

/** Loads an image folder as a Dataset (see the module comment). */
export async function loadFolder(opts: FolderOptions): Promise<Dataset> {
  if (!opts.dataDir)
    throw new UserError('the folder dataset needs --data-dir DIR', { field: '--data-dir', expected: HINT });
  if (!opts.imageSize) {
    throw new UserError(
      'the folder dataset needs the input size: give a model file (its input is used) or --image-size HxW',
      { field: '--image-size', expected: 'e.g. 224x224' },
    );
  }
  const dir = opts.dataDir;
  const [h, w] = opts.imageSize;
  const p = opts.preprocess ?? DEFAULT_PREPROCESS;
  const listing = listImageFolder(dir);
  const cache = await openImageCache(dir, listing.files, {
    height: h,
    width: w,
    resize: p.resize,
    ...(opts.skipUnreadable ? { skipUnreadable: true } : {}),
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
  });
  try {
    // labels of the stored images (unreadable ones may have been skipped)
    const pos = new Map(listing.files.map((f, i) => [resolve(f), i] as const));
    const resolved = cache.files;
    const labels = new Int32Array(resolved.length);
    resolved.forEach((f, i) => {
      labels[i] = listing.labels[pos.get(f) ?? 0];
    });
    const n = resolved.length;
    const valFraction = opts.valFraction ?? FOLDER_VAL_FRACTION;
    const testFraction = opts.testFraction ?? FOLDER_TEST_FRACTION;
    if (!(testFraction > 0 && testFraction < 1) || valFraction + testFraction >= 1) {
      throw new UserError(
        `validation (${valFraction}) and test (${testFraction}) fractions must each be in (0, 1) and sum below 1`,
        { field: '--test-fraction' },
      );
    }
    const nTest = Math.max(1, Math.round(n * testFraction));
    const nVal = Math.max(1, Math.round(n * valFraction));
    if (n - nTest - nVal < 1) {
      throw new UserError(`${n} image(s) are too few for train, validation and test splits`, {
        file: dir,
        field: '--data-dir',
        expected: 'at least 3 images',
      });
    }
    const perm = seededPermutation(n, opts.seed);
    const test = take(perm.subarray(0, nTest), opts.limit);
    const val = take(perm.subarray(nTest, nTest + nVal), opts.limit);
    const train = take(perm.subarray(nTest + nVal), opts.limit);
    const numClasses = listing.classNames ? listing.classNames.length : 0;
    const build = opts.inMemory ? buildFolderSplit : streamedFolderSplit;
    return {
      name: 'folder',
      inputShape: [h, w, 3],
      numClasses,
      ...(listing.classNames ? { classNames: listing.classNames } : {}),
      labeled: listing.classNames !== null,
      preprocess: p,
      train: build(cache, train, labels, numClasses, p),
      val: build(cache, val, labels, numClasses, p),
      test: build(cache, test, labels, numClasses, p),
      source: dir,
      images: { total: n, skipped: cache.skipped.length, cacheDir: cache.dir, decoded: cache.decoded },
    };
  } finally {
    cache.close();
  }
}
