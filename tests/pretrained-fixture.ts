/**
 * Real pretrained networks and real photographs that ship offline, for tests and benchmarks.
 *
 * - Networks: the Keras-converted TF.js layers models inside the npm package `nsfwjs` (MIT, Infinite
 *   Red), a devDependency: `mobilenet_v2` (224x224x3, 5 classes, 55 quantizable layers) and
 *   `inception_v3` (299x299x3, 5 classes). The package embeds model.json and the weight shards in
 *   JS modules (base64); `pretrainedModel` writes them out once as model.json + shards into a cache
 *   directory and returns the model.json path.
 * - Photographs: Debian's python3-skimage sample images (astronaut, chelsea, coffee, ...);
 *   `photoCrops` writes seeded random crops of them as PNG files into a folder (a label-free set).
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readdirSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../src/util/rng.js';

export const PRETRAINED = ['mobilenet_v2', 'inception_v3'] as const;
export type PretrainedName = (typeof PRETRAINED)[number];

const require = createRequire(import.meta.url);

/** The nsfwjs package's models folder, or null (with the reason) when it is not installed. */
export function nsfwjsModels(): { dir: string | null; reason: string } {
  try {
    // the package's exports map hides package.json: walk up from its entry point
    let root = dirname(require.resolve('nsfwjs'));
    while (!existsSync(join(root, 'package.json')) || !existsSync(join(root, 'dist', 'models'))) {
      const up = dirname(root);
      if (up === root) break;
      root = up;
    }
    const dir = join(root, 'dist', 'models');
    if (!existsSync(dir)) return { dir: null, reason: `nsfwjs is installed but has no ${dir}` };
    return { dir, reason: '' };
  } catch {
    return { dir: null, reason: 'the devDependency nsfwjs is not installed (npm install)' };
  }
}

export const CACHE_ROOT = process.env['BITALLOC_FIXTURE_DIR'] ?? join(tmpdir(), 'bitalloc-fixtures');

/**
 * Writes nsfwjs's `name` model as model.json + weight shards (once) and returns the model.json path, or null.
 * `outDir` (default `<CACHE_ROOT>/nsfwjs/<name>`) is the folder it goes to.
 */
export function pretrainedModel(name: PretrainedName, outDir?: string): string | null {
  const { dir } = nsfwjsModels();
  if (!dir) return null;
  const out = outDir ?? join(CACHE_ROOT, 'nsfwjs', name);
  const file = join(out, 'model.json');
  if (existsSync(file)) return file;
  const src = join(dir, name);
  const json = require(join(src, 'model.min.js')) as { weightsManifest: { paths: string[] }[] };
  const shards = readdirSync(src)
    .filter((f) => f.startsWith('group') && f.endsWith('.min.js'))
    .sort();
  const paths = json.weightsManifest.flatMap((g) => g.paths);
  if (paths.length !== shards.length)
    throw new Error(`nsfwjs ${name}: ${paths.length} shard paths, ${shards.length} shard files`);
  const tmp = `${out}.tmp-${process.pid}`;
  mkdirSync(tmp, { recursive: true });
  paths.forEach((p, i) => writeFileSync(join(tmp, p), Buffer.from(require(join(src, shards[i])) as string, 'base64')));
  // nsfwjs feeds images resized (stretched) to the input and scaled to [0, 1]
  writeFileSync(
    join(tmp, 'preprocess.json'),
    JSON.stringify({ resize: 'stretch', channels: 'rgb', range: '0-1' }) + '\n',
  );
  writeFileSync(join(tmp, 'model.json'), JSON.stringify(json));
  mkdirSync(dirname(out), { recursive: true });
  try {
    renameSync(tmp, out);
  } catch {
    // another process wrote it first
  }
  return file;
}

export const SKIMAGE_DIR = '/usr/lib/python3/dist-packages/skimage/data';
/** Colour photographs among skimage's samples. */
export const PHOTOS = [
  'astronaut.png',
  'chelsea.png',
  'coffee.png',
  'rocket.jpg',
  'motorcycle_left.png',
  'motorcycle_right.png',
  'hubble_deep_field.jpg',
  'retina.jpg',
  'color.png',
  'ihc.png',
  'logo.png',
  'grass.png',
  'gravel.png',
  'brick.png',
];

export function photoFiles(): string[] {
  if (!existsSync(SKIMAGE_DIR)) return [];
  return PHOTOS.map((f) => join(SKIMAGE_DIR, f)).filter((f) => existsSync(f));
}

/**
 * Writes `n` seeded random square crops (side 40-100% of the photo's shorter side) of the skimage
 * photographs into `dir` as PNG files (once per (n, seed, size)); returns the folder, or null without photos.
 */
export async function photoCrops(n: number, seed: number, size = 256, dir?: string): Promise<string | null> {
  const files = photoFiles();
  if (files.length === 0) return null;
  const out = dir ?? join(CACHE_ROOT, `crops-${n}-${seed}-${size}`);
  if (existsSync(join(out, '.done'))) return out;
  // written into a private folder and renamed into place: a test file or benchmark reading the set while
  // another process writes it would otherwise meet half-written PNGs (and a stale image cache)
  const tmp = `${out}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  const rng = new Rng(seed);
  const metas = await Promise.all(files.map((f) => sharp(f).metadata()));
  for (let i = 0; i < n; i++) {
    const k = rng.int(files.length);
    const m = metas[k] as { width: number; height: number };
    const short = Math.min(m.width, m.height);
    const side = Math.max(8, Math.round(short * (0.4 + 0.6 * rng.next())));
    const left = rng.int(m.width - side + 1);
    const top = rng.int(m.height - side + 1);
    await sharp(files[k])
      .removeAlpha()
      .toColourspace('srgb')
      .extract({ left, top, width: side, height: side })
      .resize(size, size)
      .png()
      .toFile(join(tmp, `crop-${String(i).padStart(5, '0')}.png`));
  }
  writeFileSync(join(tmp, '.done'), '');
  if (existsSync(out) && !existsSync(join(out, '.done'))) rmSync(out, { recursive: true, force: true }); // left half-written by an older version
  try {
    renameSync(tmp, out);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process got there first: the same crops
  }
  return out;
}
