/**
 * Image folders: decoding and preprocessing against references computed independently (skimage /
 * numpy through Debian's /usr/bin/python3, and by hand on tiny synthetic images), labels from
 * subfolders, label-free folders, the on-disk cache and errors for unreadable files.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { disposeDataset, loadDataset } from '../src/data/index.js';
import { decodeImage, openImageCache } from '../src/data/image-cache.js';
import { listImageFolder } from '../src/data/folder.js';
import { bytesToInput, parsePreprocess, DEFAULT_PREPROCESS } from '../src/data/preprocess.js';
import { SKIMAGE_DIR } from './pretrained-fixture.js';

const PY = '/usr/bin/python3';
const hasSkimage =
  existsSync(PY) &&
  spawnSync(PY, ['-c', 'import skimage, numpy'], { encoding: 'utf8' }).status === 0 &&
  existsSync(SKIMAGE_DIR);
const NO_SKIMAGE = 'needs Debian python3-skimage (/usr/bin/python3 with skimage and its sample photos)';

before(async () => {
  await initBackend('wasm');
  process.env['BITALLOC_CACHE_DIR'] = mkdtempSync(join(tmpdir(), 'bitalloc-cache-'));
});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'bitalloc-folder-'));
}

/** Runs python code that writes raw uint8 bytes to the file given as argv[1]; returns them. */
function pythonBytes(code: string): Uint8Array {
  const out = join(tmp(), 'ref.u8');
  const r = spawnSync(PY, ['-c', code, out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return new Uint8Array(readFileSync(out));
}

/** A w x h RGB PNG whose pixel (y, x) is ((x*37 + y*11) % 256, (x*5 + y*53) % 256, (x*y*3 + 7) % 256). */
async function patternPng(file: string, w: number, h: number): Promise<Uint8Array> {
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = 3 * (y * w + x);
      px[o] = (x * 37 + y * 11) % 256;
      px[o + 1] = (x * 5 + y * 53) % 256;
      px[o + 2] = (x * y * 3 + 7) % 256;
    }
  }
  await sharp(Buffer.from(px), { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
  return px;
}

test(
  'a PNG photograph decodes to the same RGB bytes as skimage.io.imread',
  { skip: hasSkimage ? false : NO_SKIMAGE },
  async () => {
    const file = join(SKIMAGE_DIR, 'chelsea.png');
    const ref = pythonBytes(
      `import sys, numpy as np, skimage.io as io\nim = io.imread(${JSON.stringify(file)})[..., :3]\nopen(sys.argv[1], 'wb').write(np.ascontiguousarray(im, dtype=np.uint8).tobytes())`,
    );
    const meta = await sharp(file).metadata();
    const got = await decodeImage(file, meta.height, meta.width, 'stretch');
    assert.equal(got.length, ref.length);
    assert.deepEqual(Buffer.from(got).equals(Buffer.from(ref)), true);
  },
);

test(
  'a JPEG photograph (with an ICC profile) decodes to the same RGB bytes as skimage.io.imread',
  { skip: hasSkimage ? false : NO_SKIMAGE },
  async () => {
    const file = join(SKIMAGE_DIR, 'rocket.jpg');
    const ref = pythonBytes(
      `import sys, numpy as np, skimage.io as io\nim = io.imread(${JSON.stringify(file)})[..., :3]\nopen(sys.argv[1], 'wb').write(np.ascontiguousarray(im, dtype=np.uint8).tobytes())`,
    );
    const meta = await sharp(file).metadata();
    const got = await decodeImage(file, meta.height, meta.width, 'stretch');
    assert.equal(got.length, ref.length);
    let sum = 0;
    for (let i = 0; i < got.length; i++) sum += Math.abs(got[i] - ref[i]);
    assert.equal(sum, 0);
  },
);

test(
  'crop mode resizes the shorter side and keeps the centre: same as skimage resize + centre slice within 2 levels',
  { skip: hasSkimage ? false : NO_SKIMAGE },
  async () => {
    const file = join(SKIMAGE_DIR, 'chelsea.png'); // 451 wide, 300 high
    const size = 96;
    const ref = pythonBytes(
      `import sys, numpy as np, skimage.io as io, skimage.transform as t\nim = io.imread(${JSON.stringify(file)})[..., :3]\nh, w = im.shape[:2]\ns = ${size} / min(h, w)\nnh, nw = round(h * s), round(w * s)\n` +
        `r = t.resize(im, (nh, nw), order=3, anti_aliasing=True, preserve_range=True)\ny0, x0 = (nh - ${size}) // 2, (nw - ${size}) // 2\nc = np.clip(np.round(r[y0:y0+${size}, x0:x0+${size}]), 0, 255).astype(np.uint8)\nopen(sys.argv[1], 'wb').write(c.tobytes())`,
    );
    const got = await decodeImage(file, size, size, 'crop');
    let sum = 0;
    for (let i = 0; i < got.length; i++) sum += Math.abs(got[i] - ref[i]);
    assert.ok(sum / got.length < 2, `mean abs difference ${sum / got.length}`);
    // and stretching the same photo to a square differs from the crop by much more
    const stretched = await decodeImage(file, size, size, 'stretch');
    let other = 0;
    for (let i = 0; i < got.length; i++) other += Math.abs(stretched[i] - ref[i]);
    assert.ok(other / got.length > 4 * (sum / got.length), `stretch ${other / got.length} vs crop ${sum / got.length}`);
  },
);

test('crop mode on a 6x4 image at 4x4 takes columns 1..4 exactly, pixel order HWC RGB', async () => {
  const dir = tmp();
  const file = join(dir, 'p.png');
  const px = await patternPng(file, 6, 4);
  const got = await decodeImage(file, 4, 4, 'crop');
  const want: number[] = [];
  for (let y = 0; y < 4; y++)
    for (let x = 1; x < 5; x++) for (let c = 0; c < 3; c++) want.push(px[3 * (y * 6 + x) + c]);
  assert.deepEqual(Array.from(got), want);
});

test('channel order and scaling: bgr, [-1, 1], [0, 255] and per-channel mean/std, by hand', () => {
  const bytes = Uint8Array.from([0, 128, 255, 10, 20, 30]);
  const out = new Float32Array(6);
  bytesToInput(bytes, { ...DEFAULT_PREPROCESS }, out);
  assert.deepEqual(
    Array.from(out).map((v) => +v.toFixed(6)),
    [0, 128 / 255, 1, 10 / 255, 20 / 255, 30 / 255].map((v) => +v.toFixed(6)),
  );
  bytesToInput(bytes, parsePreprocess({ channels: 'bgr', range: '-1-1' }), out);
  assert.deepEqual(
    Array.from(out).map((v) => +v.toFixed(5)),
    [1, 128 / 127.5 - 1, -1, 30 / 127.5 - 1, 20 / 127.5 - 1, 10 / 127.5 - 1].map((v) => +v.toFixed(5)),
  );
  bytesToInput(bytes, parsePreprocess({ range: '0-255', mean: [1, 2, 3], std: [2, 4, 5] }), out);
  assert.deepEqual(
    Array.from(out),
    [-0.5, 31.5, 50.4, 4.5, 4.5, 5.4].map((v) => Math.fround(v)),
  );
});

test('preprocessing settings are checked, naming the field', () => {
  assert.throws(
    () => parsePreprocess({ resize: 'squash' }, DEFAULT_PREPROCESS, '$', 'm/preprocess.json'),
    (e: unknown) =>
      e instanceof UserError &&
      /m\/preprocess.json \$.resize: invalid resize 'squash'.*crop \| stretch/.test(e.message),
  );
  assert.throws(
    () => parsePreprocess({ std: [1, 0, 1] }),
    (e: unknown) => e instanceof UserError && /\$.std/.test(e.message),
  );
  assert.throws(
    () => parsePreprocess({ scale: 1 }),
    (e: unknown) => e instanceof UserError && /unknown field 'scale'/.test(e.message),
  );
});

async function classFolder(): Promise<string> {
  const dir = tmp();
  for (const [cls, n] of [
    ['zebra', 3],
    ['apple', 4],
    ['mango', 5],
  ] as const) {
    mkdirSync(join(dir, cls));
    for (let i = 0; i < n; i++) await patternPng(join(dir, cls, `${i}.png`), 8 + i, 8);
  }
  writeFileSync(join(dir, 'notes.txt'), 'not an image');
  return dir;
}

test('labels come from class subfolders: sorted names, every image labelled by its folder', async () => {
  const dir = await classFolder();
  const listing = listImageFolder(dir);
  assert.deepEqual(listing.classNames, ['apple', 'mango', 'zebra']);
  assert.equal(listing.files.length, 12);
  listing.files.forEach((f, i) =>
    assert.equal(listing.labels[i], ['apple', 'mango', 'zebra'].indexOf(f.split('/').slice(-2)[0])),
  );
  const ds = await loadDataset('folder', { dataDir: dir, seed: 3, imageSize: [8, 8] });
  assert.equal(ds.numClasses, 3);
  assert.equal(ds.labeled, true);
  assert.deepEqual(ds.inputShape, [8, 8, 3]);
  const n = ds.train.labels.length + ds.val.labels.length + ds.test.labels.length;
  assert.equal(n, 12);
  const counts = [0, 0, 0];
  for (const s of [ds.train, ds.val, ds.test]) for (const l of s.labels) counts[l] = counts[l] + 1;
  assert.deepEqual(counts, [4, 5, 3]);
  disposeDataset(ds);
});

test('loose images are label-free; the split is the same for the same seed and differs for another', async () => {
  const dir = tmp();
  for (let i = 0; i < 20; i++) await patternPng(join(dir, `img${i}.png`), 6 + (i % 5), 6);
  const a = await loadDataset('folder', { dataDir: dir, seed: 1, imageSize: [6, 6] });
  const b = await loadDataset('folder', { dataDir: dir, seed: 1, imageSize: [6, 6] });
  const c = await loadDataset('folder', { dataDir: dir, seed: 2, imageSize: [6, 6] });
  assert.equal(a.labeled, false);
  assert.equal(a.numClasses, 0);
  const px = (d: typeof a) => Array.from(d.test.x.dataSync());
  assert.deepEqual(px(a), px(b));
  assert.notDeepEqual(px(a), px(c));
  for (const d of [a, b, c]) disposeDataset(d);
});

test('decoded images are cached on disk: the second open decodes nothing; a changed file is decoded again', async () => {
  const dir = tmp();
  const files: string[] = [];
  for (let i = 0; i < 3; i++) {
    files.push(join(dir, `${i}.png`));
    await patternPng(files[i], 10, 8);
  }
  const first = await openImageCache(dir, files, { height: 8, width: 8, resize: 'crop' });
  const firstBytes = new Uint8Array(first.imageBytes);
  first.read(2, firstBytes);
  first.close();
  const second = await openImageCache(dir, files, { height: 8, width: 8, resize: 'crop' });
  const again = new Uint8Array(second.imageBytes);
  second.read(2, again);
  second.close();
  assert.equal(first.decoded, true);
  assert.equal(second.decoded, false);
  assert.deepEqual(again, firstBytes);
  await patternPng(files[1], 12, 8);
  const third = await openImageCache(dir, files, { height: 8, width: 8, resize: 'crop' });
  third.close();
  assert.equal(third.decoded, true);
});

test('an unreadable image is an error naming the file, or skipped and counted with skipUnreadable', async () => {
  const dir = tmp();
  for (let i = 0; i < 5; i++) await patternPng(join(dir, `${i}.png`), 8, 8);
  writeFileSync(join(dir, 'broken.png'), 'this is not a PNG');
  if (existsSync(join(SKIMAGE_DIR, 'truncated.jpg')))
    copyFileSync(join(SKIMAGE_DIR, 'truncated.jpg'), join(dir, 'truncated.jpg'));
  await assert.rejects(
    loadDataset('folder', { dataDir: dir, seed: 1, imageSize: [8, 8] }),
    (e: unknown) =>
      e instanceof UserError && e.message.includes(join(dir, 'broken.png')) && /--skip-unreadable/.test(e.message),
  );
  const ds = await loadDataset('folder', { dataDir: dir, seed: 1, imageSize: [8, 8], skipUnreadable: true });
  assert.ok((ds.images?.skipped ?? 0) >= 1);
  assert.equal((ds.images?.total ?? 0) + (ds.images?.skipped ?? 0), existsSync(join(dir, 'truncated.jpg')) ? 7 : 6);
  disposeDataset(ds);
});

test('folder errors name the folder and say what is expected', async () => {
  const empty = tmp();
  await assert.rejects(
    loadDataset('folder', { dataDir: empty, seed: 1, imageSize: [8, 8] }),
    (e: unknown) => e instanceof UserError && e.message.includes(empty) && /holds no images/.test(e.message),
  );
  await assert.rejects(
    loadDataset('folder', { dataDir: join(empty, 'nope'), seed: 1, imageSize: [8, 8] }),
    (e: unknown) => e instanceof UserError && /folder not found/.test(e.message),
  );
  await assert.rejects(
    loadDataset('folder', { dataDir: empty, seed: 1 }),
    (e: unknown) => e instanceof UserError && /--image-size/.test(e.message),
  );
  await assert.rejects(
    loadDataset('folder', { seed: 1, imageSize: [8, 8] }),
    (e: unknown) => e instanceof UserError && /--data-dir/.test(e.message),
  );
  const mixed = await classFolder();
  await patternPng(join(mixed, 'loose.png'), 8, 8);
  await assert.rejects(
    loadDataset('folder', { dataDir: mixed, seed: 1, imageSize: [8, 8] }),
    (e: unknown) => e instanceof UserError && /both loose images/.test(e.message),
  );
});
