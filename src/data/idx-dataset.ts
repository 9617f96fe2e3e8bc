/**
 * Datasets stored as IDX files: `fashion-mnist` (the official files, e.g. from Debian's
 * `dataset-fashion-mnist`) and `idx` (any images + labels pair of IDX files).
 * The official test files become the test split; validation is carved from train by the seed.
 * Without test files (`idx` only), the test split is carved from the pool too, with a fixed seed.
 */
import { basename, dirname, join } from 'node:path';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { Dataset } from './api.js';
import { requireDir, requireInDir } from './files.js';
import { checkLabels, readIdxFile, type IdxArray } from './idx.js';
import { buildSplit, range, seededPermutation, splitPool, take, type SampleSource } from './split.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
const FASHION_HINT =
  `install it with \`apt-get install dataset-fashion-mnist\` (files go to ${FASHION_MNIST_DIR}) ` +
  'or pass --data-dir DIR holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz';
const IDX_HINT =
  'pass --data-dir DIR holding *train*images*idx3* and *train*labels*idx1* files (optionally *t10k* or *test* ones too), ' +
  'or --data-dir PATH of an images IDX file whose labels file has the same name with images->labels and idx3->idx1';
export const DEFAULT_VAL_FRACTION = 0.1;
/** Fraction of the pool used as test split when an IDX dataset has no test files. */
export const IDX_TEST_FRACTION = 0.1;
const TEST_DRAW_SEED = 20_240_602;

export interface IdxFiles {
  trainImages: string;
  trainLabels: string;
  testImages?: string;
  testLabels?: string;
}

interface IdxLoadOptions {
  name: string;
  files: IdxFiles;
  /** Fixed class count (labels checked against it), or null to take max label + 1. */
  numClasses: number | null;
  classNames?: string[];
  /** Required [h, w, c] of every image, if fixed by the dataset. */
  expectShape?: [number, number, number];
  hint: string;
  seed: number;
  valFraction?: number;
  limit?: number;
  source: string;
}

function imageSource(a: IdxArray, hint: string): SampleSource {
  let shape: [number, number, number];
  if (a.dims.length === 3) shape = [a.dims[1], a.dims[2], 1];
  else if (a.dims.length === 4) shape = [a.dims[1], a.dims[2], a.dims[3]];
  else {
    throw new UserError(
      `images must have 3 or 4 dimensions ([n, h, w] or [n, h, w, c]), found [${a.dims.join(', ')}]`,
      {
        file: a.file,
        expected: `an IDX images file (magic 0x00000803 or 0x00000804); ${hint}`,
      },
    );
  }
  const size = shape[0] * shape[1] * shape[2];
  const data = a.data;
  const scale = a.type === 'ubyte' ? 1 / 255 : 1;
  return {
    n: a.dims[0],
    shape,
    read(i, out, offset) {
      const base = i * size;
      for (let j = 0; j < size; j++) out[offset + j] = data[base + j] * scale;
    },
  };
}

/** Loads train (+ optional test) IDX pairs into a Dataset. */
export function loadIdxFiles(o: IdxLoadOptions): Dataset {
  const trainImg = readIdxFile(o.files.trainImages, o.hint);
  const trainLab = readIdxFile(o.files.trainLabels, o.hint);
  const trainSrc = imageSource(trainImg, o.hint);
  if (o.expectShape && trainSrc.shape.join('x') !== o.expectShape.join('x')) {
    throw new UserError(`images are ${trainSrc.shape.join('x')}, not ${o.expectShape.join('x')}`, {
      file: o.files.trainImages,
      expected: `${o.name}'s ${o.expectShape.join('x')} images; ${o.hint}`,
    });
  }
  const trainLabels = checkLabels(trainLab, trainImg, o.numClasses, o.hint);
  let testSrc: SampleSource | null = null;
  let testLabels: Int32Array | null = null;
  if (o.files.testImages && o.files.testLabels) {
    const testImg = readIdxFile(o.files.testImages, o.hint);
    const testLab = readIdxFile(o.files.testLabels, o.hint);
    testSrc = imageSource(testImg, o.hint);
    testLabels = checkLabels(testLab, testImg, o.numClasses, o.hint);
    if (testSrc.shape.join('x') !== trainSrc.shape.join('x')) {
      throw new UserError(
        `test images are ${testSrc.shape.join('x')} but train images are ${trainSrc.shape.join('x')}`,
        {
          file: o.files.testImages,
          expected: `the same image shape as ${o.files.trainImages}; ${o.hint}`,
        },
      );
    }
  }
  let numClasses = o.numClasses;
  if (numClasses === null) {
    // the class count is max label + 1; a label far above the others (a corrupt byte) would silently add classes
    const seen = new Map<number, { file: string; index: number }>();
    const note = (labels: Int32Array, file: string) =>
      labels.forEach((l, index) => {
        if (!seen.has(l)) seen.set(l, { file, index });
      });
    note(trainLabels, o.files.trainLabels);
    if (testLabels && o.files.testLabels) note(testLabels, o.files.testLabels);
    const max = Math.max(0, ...seen.keys());
    numClasses = Math.max(2, max + 1);
    const unused = numClasses - seen.size;
    if (max >= 2 && unused > 0) {
      const at = seen.get(max) as { file: string; index: number };
      const used = [...seen.keys()].sort((a, b) => a - b);
      throw new UserError(
        `label ${max} (at index ${at.index}) implies ${numClasses} classes, but only ${seen.size} distinct labels occur ` +
          `(${used.length <= 12 ? used.join(', ') : `${used.slice(0, 10).join(', ')}, ... ${max}`}); ${unused} classes would have no sample`,
        {
          file: at.file,
          field: '--num-classes',
          expected: `--num-classes N to state the class count (labels 0..N-1), or labels without gaps`,
        },
      );
    }
  }
  const valFraction = o.valFraction ?? DEFAULT_VAL_FRACTION;
  let pool: Int32Array;
  let testIdx: Int32Array;
  if (testSrc && testLabels) {
    pool = range(trainSrc.n);
    testIdx = range(testSrc.n);
  } else {
    const fixed = seededPermutation(trainSrc.n, TEST_DRAW_SEED);
    const nTest = Math.max(1, Math.round(trainSrc.n * IDX_TEST_FRACTION));
    testIdx = fixed.subarray(0, nTest);
    pool = fixed.subarray(nTest);
  }
  if (pool.length < 2) {
    throw new UserError(`holds ${trainSrc.n} samples, too few to split into train and validation`, {
      file: o.files.trainImages,
      expected: `at least 2 training samples; ${o.hint}`,
    });
  }
  const { train, val } = splitPool(pool, valFraction, o.seed);
  return {
    name: o.name,
    inputShape: trainSrc.shape,
    numClasses,
    ...(o.classNames ? { classNames: o.classNames } : {}),
    train: buildSplit(trainSrc, trainLabels, take(train, o.limit), numClasses),
    val: buildSplit(trainSrc, trainLabels, take(val, o.limit), numClasses),
    test:
      testSrc && testLabels
        ? buildSplit(testSrc, testLabels, take(testIdx, o.limit), numClasses)
        : buildSplit(trainSrc, trainLabels, take(testIdx, o.limit), numClasses),
    source: o.source,
  };
}

/** The four Fashion-MNIST files in `dir` (default the Debian package's folder); a missing one is a UserError. */
export function fashionMnistFiles(dataDir: string | undefined): IdxFiles {
  const dir = dataDir ?? FASHION_MNIST_DIR;
  if (!existsSync(dir) && dataDir === undefined) {
    throw new UserError('Fashion-MNIST is not installed', { file: dir, field: '--data-dir', expected: FASHION_HINT });
  }
  requireDir(dir, '--data-dir', FASHION_HINT);
  return {
    trainImages: requireInDir(dir, ['train-images-idx3-ubyte'], FASHION_HINT),
    trainLabels: requireInDir(dir, ['train-labels-idx1-ubyte'], FASHION_HINT),
    testImages: requireInDir(dir, ['t10k-images-idx3-ubyte'], FASHION_HINT),
    testLabels: requireInDir(dir, ['t10k-labels-idx1-ubyte'], FASHION_HINT),
  };
}

export function loadFashionMnist(opts: {
  dataDir?: string;
  seed: number;
  valFraction?: number;
  limit?: number;
}): Dataset {
  const dir = opts.dataDir ?? FASHION_MNIST_DIR;
  const files = fashionMnistFiles(opts.dataDir);
  return loadIdxFiles({
    name: 'fashion-mnist',
    files,
    numClasses: 10,
    classNames: FASHION_MNIST_CLASSES,
    expectShape: [28, 28, 1],
    hint: FASHION_HINT,
    seed: opts.seed,
    ...(opts.valFraction !== undefined ? { valFraction: opts.valFraction } : {}),
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    source: dir,
  });
}

/** Finds the IDX files of a generic dataset from a directory or an images file path. */
export function resolveIdxFiles(path: string): IdxFiles {
  if (!existsSync(path)) {
    throw new UserError('not found', { file: path, field: '--data-dir', expected: IDX_HINT });
  }
  if (statSync(path).isFile()) {
    const name = basename(path);
    const labelsName = name.replace(/images/i, 'labels').replace(/idx[34]/i, 'idx1');
    const labels = join(dirname(path), labelsName);
    if (labelsName === name || !existsSync(labels)) {
      throw new UserError(`no labels file next to the images file (looked for ${labelsName})`, {
        file: path,
        field: '--data-dir',
        expected: IDX_HINT,
      });
    }
    return { trainImages: path, trainLabels: labels };
  }
  const names = readdirSync(path)
    .filter((f) => statSync(join(path, f)).isFile())
    .sort();
  const pick = (re: RegExp, not?: RegExp) => names.find((f) => re.test(f) && !(not && not.test(f)));
  const isTest = /t10k|test/i;
  const trainImages = pick(/images.*idx[34]/i, isTest);
  const trainLabels = pick(/labels.*idx1/i, isTest);
  const testImages = pick(/(t10k|test).*images.*idx[34]|images.*idx[34].*(t10k|test)/i);
  const testLabels = pick(/(t10k|test).*labels.*idx1|labels.*idx1.*(t10k|test)/i);
  if (!trainImages && !trainLabels && (testImages || testLabels)) {
    throw new UserError(
      `holds only test files (${[testImages, testLabels].filter(Boolean).join(', ')}) and no training files`,
      {
        file: path,
        field: '--data-dir',
        expected: `train images and labels next to them (e.g. train-images-idx3-ubyte and train-labels-idx1-ubyte); ${IDX_HINT}`,
      },
    );
  }
  if (!trainImages || !trainLabels) {
    throw new UserError(
      `no ${!trainImages ? 'images (*images*idx3*)' : 'labels (*labels*idx1*)'} IDX file in this directory`,
      {
        file: path,
        field: '--data-dir',
        expected: IDX_HINT,
      },
    );
  }
  const files: IdxFiles = { trainImages: join(path, trainImages), trainLabels: join(path, trainLabels) };
  if (testImages && testLabels) {
    files.testImages = join(path, testImages);
    files.testLabels = join(path, testLabels);
  }
  return files;
}

export function loadGenericIdx(opts: {
  dataDir?: string;
  seed: number;
  valFraction?: number;
  limit?: number;
  numClasses?: number;
}): Dataset {
  if (!opts.dataDir) {
    throw new UserError('the idx dataset needs a location', { field: '--data-dir', expected: IDX_HINT });
  }
  const files = resolveIdxFiles(opts.dataDir);
  return loadIdxFiles({
    name: 'idx',
    files,
    numClasses: opts.numClasses ?? null,
    hint: IDX_HINT,
    seed: opts.seed,
    ...(opts.valFraction !== undefined ? { valFraction: opts.valFraction } : {}),
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    source: opts.dataDir,
  });
}
