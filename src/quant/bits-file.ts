/**
 * Bits files: a bit allocation written as JSON, one entry per quantizable layer, by name:
 *
 *   {"layers": [{"name": "conv1", "wBits": 4, "aBits": 4}, {"name": "conv2", "wBits": 8, "aBits": 4}]}
 *
 * Entries may come in any order; every layer of the model must appear exactly once. Bits are among
 * VALID_BITS (1..8, 16, 32 = float). Every problem is reported with the file and the entry's JSON path.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import { VALID_BITS, type BitConfig, type LayerBits, type LayerInfo } from './layer-info.js';

export interface BitsFileEntry {
  name: string;
  wBits: number;
  aBits: number;
}

/** Reads a bits file and returns the allocation in inventory order. */
export function readBitsFile(path: string, layers: readonly LayerInfo[]): BitConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? 'bits file not found' : `cannot read bits file: ${code ?? String(e)}`, {
      file: path,
    });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new UserError(`not valid JSON: ${e instanceof Error ? e.message : String(e)}`, {
      file: path,
      field: '$',
      expected: '{"layers": [{"name": ..., "wBits": ..., "aBits": ...}, ...]}',
    });
  }
  return parseBits(data, layers, path);
}

/** Checks parsed bits-file content against the model's layers; `file` names it in errors. */
export function parseBits(data: unknown, layers: readonly LayerInfo[], file: string): BitConfig {
  const problems: string[] = [];
  const list =
    data !== null && typeof data === 'object' && !Array.isArray(data)
      ? (data as { layers?: unknown }).layers
      : undefined;
  if (!Array.isArray(list)) {
    throw new UserError('expected an object with a "layers" array', {
      file,
      field: '$.layers',
      expected: '{"layers": [{"name": "conv1", "wBits": 4, "aBits": 4}, ...]}',
    });
  }
  for (const key of Object.keys(data as object)) {
    if (key !== 'layers') problems.push(`$.${key}: unknown field (allowed: layers)`);
  }
  const byName = new Map<string, number>(layers.map((l, i) => [l.name, i]));
  const found = new Array<LayerBits | undefined>(layers.length);
  const seenAt = new Map<string, number>();
  list.forEach((entry: unknown, i) => {
    const at = `$.layers[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      problems.push(`${at}: must be an object {"name", "wBits", "aBits"}`);
      return;
    }
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!['name', 'wBits', 'aBits'].includes(key))
        problems.push(`${at}.${key}: unknown field (allowed: name, wBits, aBits)`);
    }
    let ok = true;
    if (typeof e.name !== 'string') {
      problems.push(`${at}.name: ${e.name === undefined ? 'required field is missing' : 'must be a string'}`);
      ok = false;
    }
    for (const f of ['wBits', 'aBits'] as const) {
      const v = e[f];
      if (v === undefined) {
        problems.push(`${at}.${f}: required field is missing`);
        ok = false;
      } else if (typeof v !== 'number' || !VALID_BITS.includes(v)) {
        problems.push(`${at}.${f}: must be one of ${VALID_BITS.join(', ')}, got ${JSON.stringify(v)}`);
        ok = false;
      }
    }
    if (typeof e.name !== 'string') return;
    const idx = byName.get(e.name);
    if (idx === undefined) {
      problems.push(
        `${at}.name: the model has no quantizable layer '${e.name}' (layers: ${layers.map((l) => l.name).join(', ')})`,
      );
      return;
    }
    const prev = seenAt.get(e.name);
    if (prev !== undefined) {
      problems.push(`${at}.name: layer '${e.name}' is already given at $.layers[${prev}]`);
      return;
    }
    seenAt.set(e.name, i);
    if (ok) found[idx] = { wBits: e.wBits as number, aBits: e.aBits as number };
  });
  const missing = layers.filter((l) => !seenAt.has(l.name)).map((l) => l.name);
  if (missing.length)
    problems.push(
      `$.layers: no entry for layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (one entry per quantizable layer)`,
    );
  if (problems.length) {
    throw new UserError(`invalid bits file (${problems.length} problem${problems.length === 1 ? '' : 's'})`, {
      file,
      problems,
    });
  }
  return found as LayerBits[];
}

/** The JSON a bits file holds for an allocation (the inverse of readBitsFile). */
export function bitsFileContent(layers: readonly LayerInfo[], bits: BitConfig): { layers: BitsFileEntry[] } {
  return { layers: layers.map((l, i) => ({ name: l.name, wBits: bits[i].wBits, aBits: bits[i].aBits })) };
}
