/**
 * The decoded-image cache: every image of a folder decoded once with sharp, resized to the
 * network's input (h x w, `crop` or `stretch`) and stored on disk as RGB uint8 (HWC, one image
 * after the other in images.u8) with an index.json of the source files (path, size, mtime).
 * Later epochs, episodes and runs read the bytes they need from the file (never decoding again,
 * never holding the whole folder in memory); a folder whose files changed is decoded again.
 *
 * Location: $BITALLOC_CACHE_DIR, else $XDG_CACHE_HOME/bitalloc/images, else ~/.cache/bitalloc/images,
 * one subfolder per (folder, size, resize mode).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  writeSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { Progress } from '../util/progress.js';
import type { ResizeMode } from './preprocess.js';

const CACHE_FORMAT = 'bitalloc-image-cache-1';
const INDEX_JSON = 'index.json';
const IMAGES_U8 = 'images.u8';

export interface CacheSource {
  /** Absolute path of the image. */
  file: string;
  size: number;
  mtimeMs: number;
}

export interface ImageCacheOptions {
  height: number;
  width: number;
  resize: ResizeMode;
  /** Skip unreadable images (counted) instead of failing with an error that lists them. */
  skipUnreadable?: boolean;
  /** Cache root (default: see the module comment). */
  cacheDir?: string;
  /** Print progress lines only (no redrawn bar). */
  plainProgress?: boolean;
}

export interface ImageCache {
  dir: string;
  height: number;
  width: number;
  /** The images held, in cache order (unreadable ones left out when skipped). */
  files: string[];
  /** Files that could not be decoded and were skipped. */
  skipped: { file: string; reason: string }[];
  /** True when this call decoded images (false: everything came from disk). */
  decoded: boolean;
  /** Bytes of one image (h * w * 3). */
  readonly imageBytes: number;
  /** The images file (images.u8): image i at byte i * imageBytes. */
  readonly path: string;
  /** Reads image `i` (cache order) into `out` at `offset`. */
  read(i: number, out: Uint8Array, offset?: number): void;
  close(): void;
}

interface CacheIndex {
  format: string;
  height: number;
  width: number;
  resize: ResizeMode;
  sources: CacheSource[];
  /** Indices (into sources) of the images stored, in order. */
  stored: number[];
  skipped: { file: string; reason: string }[];
}

export function defaultCacheRoot(): string {
  const env = process.env['BITALLOC_CACHE_DIR'];
  if (env) return env;
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg ? xdg : join(homedir(), '.cache'), 'bitalloc', 'images');
}

function sameSources(a: CacheSource[], b: CacheSource[]): boolean {
  return (
    a.length === b.length &&
    a.every((s, i) => s.file === b[i]?.file && s.size === b[i]?.size && s.mtimeMs === b[i]?.mtimeMs)
  );
}

function readIndex(dir: string): CacheIndex | null {
  try {
    const doc = JSON.parse(readFileSync(join(dir, INDEX_JSON), 'utf8')) as CacheIndex;
    return doc.format === CACHE_FORMAT ? doc : null;
  } catch {
    return null;
  }
}

/**
 * Decodes one image to h x w RGB bytes (EXIF orientation applied, alpha dropped, grey expanded).
 * Embedded ICC profiles are ignored, as the decoders networks are trained with (TensorFlow, PIL) do.
 */
export async function decodeImage(
  file: string,
  height: number,
  width: number,
  resize: ResizeMode,
): Promise<Uint8Array> {
  const { data, info } = await sharp(file, { failOn: 'error', ignoreIcc: true })
    .rotate()
    .removeAlpha()
    .toColourspace('srgb')
    .resize(width, height, { fit: resize === 'crop' ? 'cover' : 'fill', position: 'centre' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Opens (building it when missing or stale) the cache of `files` at the given size. */
export async function openImageCache(folder: string, files: string[], opts: ImageCacheOptions): Promise<ImageCache> {
  const { height, width, resize } = opts;
  const sources: CacheSource[] = files.map((f) => {
    const st = statSync(f);
    return { file: resolve(f), size: st.size, mtimeMs: Math.round(st.mtimeMs) };
  });
  const key = createHash('sha1')
    .update(JSON.stringify([CACHE_FORMAT, resolve(folder), height, width, resize]))
    .digest('hex')
    .slice(0, 16);
  const root = opts.cacheDir ?? defaultCacheRoot();
  const dir = join(root, key);
  const imageBytes = height * width * 3;
  let index = readIndex(dir);
  let decoded = false;
  const usable =
    index &&
    sameSources(index.sources, sources) &&
    existsSync(join(dir, IMAGES_U8)) &&
    statSync(join(dir, IMAGES_U8)).size === index.stored.length * imageBytes;
  if (!usable || !index) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new UserError(`cannot create the image cache: ${(e as Error).message}`, {
        file: dir,
        expected: 'a writable folder (set BITALLOC_CACHE_DIR)',
      });
    }
    const tmp = join(dir, `${IMAGES_U8}.tmp-${process.pid}`);
    const fd = openSync(tmp, 'w');
    const stored: number[] = [];
    const bad: { file: string; reason: string }[] = [];
    const progress = new Progress({
      label: `decoding ${sources.length} images to ${width}x${height}`,
      total: sources.length,
      ...(opts.plainProgress ? { plain: true } : {}),
    });
    try {
      let pos = 0;
      for (let i = 0; i < sources.length; i++) {
        const src = sources[i];
        let bytes: Uint8Array | null = null;
        try {
          bytes = await decodeImage(src.file, height, width, resize);
        } catch (e) {
          bad.push({ file: src.file, reason: (e as Error).message.split('\n')[0] ?? 'unreadable' });
        }
        if (bytes) {
          writeSync(fd, bytes, 0, bytes.length, pos);
          pos += bytes.length;
          stored.push(i);
        }
        progress.update(i + 1, bad.length ? `${bad.length} unreadable` : '');
      }
    } finally {
      closeSync(fd);
    }
    if (bad.length > 0 && !opts.skipUnreadable) {
      throw new UserError(`${bad.length} of ${sources.length} images cannot be decoded`, {
        file: bad[0]?.file,
        field: '--data-dir',
        expected: 'JPEG, PNG or WebP files (or --skip-unreadable to leave them out)',
        problems: bad.slice(0, 20).map((b) => `${b.file}: ${b.reason}`),
      });
    }
    if (bad.length > 0)
      log.warn(
        `skipped ${bad.length} unreadable image(s) of ${sources.length} in ${folder}, e.g. ${bad[0]?.file}: ${bad[0]?.reason}`,
      );
    renameSync(tmp, join(dir, IMAGES_U8));
    index = { format: CACHE_FORMAT, height, width, resize, sources, stored, skipped: bad };
    writeFileSync(join(dir, INDEX_JSON), JSON.stringify(index) + '\n');
    decoded = true;
  } else if (index.skipped.length > 0 && !opts.skipUnreadable) {
    const bad = index.skipped;
    throw new UserError(`${bad.length} of ${sources.length} images cannot be decoded`, {
      file: bad[0]?.file,
      field: '--data-dir',
      expected: 'JPEG, PNG or WebP files (or --skip-unreadable to leave them out)',
      problems: bad.slice(0, 20).map((b) => `${b.file}: ${b.reason}`),
    });
  }
  const idx = index;
  const fd = openSync(join(dir, IMAGES_U8), 'r');
  let open = true;
  return {
    dir,
    height,
    width,
    files: idx.stored.map((i) => idx.sources[i].file),
    skipped: idx.skipped,
    decoded,
    imageBytes,
    path: join(dir, IMAGES_U8),
    read(i, out, offset = 0) {
      const got = readSync(fd, out, offset, imageBytes, i * imageBytes);
      if (got !== imageBytes)
        throw new UserError(`image cache is truncated (image ${i})`, {
          file: join(dir, IMAGES_U8),
          expected: 'delete the folder to rebuild it',
        });
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
