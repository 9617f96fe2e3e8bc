/**
 * Image preprocessing: how decoded RGB bytes become a network's input.
 *
 * - resize: `crop` scales the shorter side to the input size and takes the centre (sharp's
 *   `cover`), `stretch` scales both sides to the input size (aspect ratio not kept).
 * - channels: `rgb` or `bgr` order of the three input channels.
 * - range: the bytes 0..255 mapped to `0-1` (v/255), `-1-1` (v/127.5 - 1) or `0-255` (v);
 *   then, with `mean` / `std` (one value per channel, in the order of `channels` and on the
 *   scale of `range`), (v - mean) / std.
 *
 * The decoded-image cache holds bytes after resizing (RGB), so only `resize` (and the size) is
 * part of its key; channel order and scaling are applied when a batch is made.
 * A `preprocess.json` beside a model.json carries the model's convention:
 * `{"resize": "stretch", "channels": "rgb", "range": "0-1", "mean": [..], "std": [..]}` (all optional).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';

export type ResizeMode = 'crop' | 'stretch';
export type ChannelOrder = 'rgb' | 'bgr';
export type PixelRange = '0-1' | '-1-1' | '0-255';

export const RESIZE_MODES: readonly ResizeMode[] = ['crop', 'stretch'];
export const CHANNEL_ORDERS: readonly ChannelOrder[] = ['rgb', 'bgr'];
export const PIXEL_RANGES: readonly PixelRange[] = ['0-1', '-1-1', '0-255'];
export const PREPROCESS_JSON = 'preprocess.json';

export interface Preprocess {
  resize: ResizeMode;
  channels: ChannelOrder;
  range: PixelRange;
  /** Per-channel mean subtracted after `range` (null: none). */
  mean: [number, number, number] | null;
  /** Per-channel divisor after the mean (null: none). */
  std: [number, number, number] | null;
}

export const DEFAULT_PREPROCESS: Readonly<Preprocess> = {
  resize: 'crop',
  channels: 'rgb',
  range: '0-1',
  mean: null,
  std: null,
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function triple(v: unknown, where: string, file: string | undefined, positive: boolean): [number, number, number] {
  if (
    !Array.isArray(v) ||
    v.length !== 3 ||
    v.some((x) => typeof x !== 'number' || !Number.isFinite(x) || (positive && !(x > 0)))
  ) {
    throw new UserError(`must be three ${positive ? 'positive ' : ''}numbers, one per channel`, {
      ...(file ? { file } : {}),
      field: where,
      expected: positive ? 'e.g. [0.229, 0.224, 0.225]' : 'e.g. [0.485, 0.456, 0.406]',
    });
  }
  return [v[0], v[1], v[2]] as [number, number, number];
}

/**
 * Reads preprocessing settings from a plain object (preprocess.json, an experiment's `preprocess`
 * field or CLI flags), on top of `base`. `where` prefixes field names in errors ($ or $.preprocess).
 */
export function parsePreprocess(
  doc: unknown,
  base: Preprocess = DEFAULT_PREPROCESS,
  where = '$',
  file?: string,
): Preprocess {
  // where '--': the settings came from flags (--resize, ...)
  const at = (f: string): { file?: string; field: string } => ({
    ...(file ? { file } : {}),
    field: where === '--' ? `--${f}` : `${where}.${f}`,
  });
  if (!isObject(doc))
    throw new UserError('preprocessing settings must be a JSON object', {
      ...(file ? { file } : {}),
      field: where,
      expected: '{"resize": "crop", "channels": "rgb", "range": "0-1"}',
    });
  const known = ['resize', 'channels', 'range', 'mean', 'std'];
  for (const k of Object.keys(doc))
    if (!known.includes(k)) throw new UserError(`unknown field '${k}'`, { ...at(k), expected: known.join(', ') });
  const out: Preprocess = { ...base };
  const pick = <T extends string>(k: string, choices: readonly T[]): T | undefined => {
    const v = doc[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v))
      throw new UserError(`invalid ${k} '${String(v)}'`, { ...at(k), expected: choices.join(' | ') });
    return v as T;
  };
  out.resize = pick('resize', RESIZE_MODES) ?? out.resize;
  out.channels = pick('channels', CHANNEL_ORDERS) ?? out.channels;
  out.range = pick('range', PIXEL_RANGES) ?? out.range;
  if (doc['mean'] !== undefined)
    out.mean = doc['mean'] === null ? null : triple(doc['mean'], `${where}.mean`, file, false);
  if (doc['std'] !== undefined) out.std = doc['std'] === null ? null : triple(doc['std'], `${where}.std`, file, true);
  return out;
}

/** The preprocess.json beside a model.json (path to the file or its folder), or null when there is none. */
export function readModelPreprocess(modelSpec: string): Preprocess | null {
  const dir = modelSpec.endsWith('.json') ? dirname(modelSpec) : modelSpec;
  const file = join(dir, PREPROCESS_JSON);
  if (!existsSync(file)) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`not valid JSON: ${(e as Error).message}`, {
      file,
      expected: '{"resize": "crop", "channels": "rgb", "range": "0-1"}',
    });
  }
  return parsePreprocess(doc, DEFAULT_PREPROCESS, '$', file);
}

/** Per-channel affine map v_byte -> a * v + b, in output channel order. */
export function channelAffine(p: Preprocess): { a: [number, number, number]; b: [number, number, number] } {
  const [ra, rb] = p.range === '0-1' ? [1 / 255, 0] : p.range === '-1-1' ? [1 / 127.5, -1] : [1, 0];
  const a: [number, number, number] = [ra, ra, ra];
  const b: [number, number, number] = [rb, rb, rb];
  for (let c = 0; c < 3; c++) {
    const m = p.mean ? p.mean[c] : 0;
    const s = p.std ? p.std[c] : 1;
    a[c] = a[c] / s;
    b[c] = (b[c] - m) / s;
  }
  return { a, b };
}

/**
 * Writes images of RGB bytes (HWC, 3 channels) into `out` at `offset` as network input:
 * channel order and scaling of `p`.
 */
export function bytesToInput(bytes: Uint8Array, p: Preprocess, out: Float32Array, offset = 0): void {
  const { a, b } = channelAffine(p);
  const bgr = p.channels === 'bgr';
  const pixels = Math.floor(bytes.length / 3);
  for (let i = 0; i < pixels; i++) {
    const r = bytes[3 * i];
    const g = bytes[3 * i + 1];
    const bl = bytes[3 * i + 2];
    const o = offset + 3 * i;
    const c0 = bgr ? bl : r;
    const c2 = bgr ? r : bl;
    out[o] = c0 * a[0] + b[0];
    out[o + 1] = g * a[1] + b[1];
    out[o + 2] = c2 * a[2] + b[2];
  }
}
