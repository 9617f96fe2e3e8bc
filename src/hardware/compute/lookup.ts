/**
 * Measured per-layer latency and energy for one model, per (wBits, aBits): HAQ-style lookup tables.
 * The table is inline (`entries`) or a file next to the profile (`table`: .json holding an array of
 * entries or {"entries": [...]}, or .csv with the header layer,wBits,aBits,latencyMs,energyUj[,bound];
 * the other columns of `bitalloc profile table --csv` are allowed and ignored).
 * Layers are matched by name. A layer or a bit pair the table lacks is an error, never a guess.
 *
 * The measured latency and energy are taken as the layer's compute term; when the profile also has a
 * `memory` section its roofline and traffic energy apply as for every model (leave it out when the
 * measurements already include memory, the usual case).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { validateJson, childPath, type JsonSchema } from '../json-schema.js';
import type { LookupEntry, LookupSpec } from '../profile-types.js';
import {
  resetResult,
  type ComputeContext,
  type ComputeModel,
  type ComputeResult,
  type LayerGeometry,
} from './types.js';

const CSV_COLUMNS = ['layer', 'wBits', 'aBits', 'latencyMs', 'energyUj'] as const;
/** Columns `bitalloc profile table --csv` adds; ignored here, so that its output can be read back as a table. */
const REPORT_COLUMNS: readonly string[] = [
  'computeCycles',
  'memoryCycles',
  'weightBytes',
  'activationBytes',
  'offChipBytes',
];

function pairKey(w: number, a: number): number {
  return w * 64 + a;
}

/** Parses a CSV lookup table; problems name the line and column. */
export function parseLookupCsv(text: string, problems: string[]): LookupEntry[] {
  const lines = text.split(/\r?\n/);
  const headerIndex = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  if (headerIndex < 0) {
    problems.push('line 1: empty table (expected a header layer,wBits,aBits,latencyMs,energyUj[,bound])');
    return [];
  }
  const header = lines[headerIndex].split(',').map((h) => h.trim());
  const missing = CSV_COLUMNS.filter((c) => !header.includes(c));
  const unknown = header.filter(
    (h) => !(CSV_COLUMNS as readonly string[]).includes(h) && h !== 'bound' && !REPORT_COLUMNS.includes(h),
  );
  if (missing.length || unknown.length) {
    if (missing.length)
      problems.push(
        `line ${headerIndex + 1}: header lacks column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`,
      );
    if (unknown.length) {
      problems.push(
        `line ${headerIndex + 1}: unknown column${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (allowed: ${[...CSV_COLUMNS, 'bound', ...REPORT_COLUMNS].join(', ')})`,
      );
    }
    return [];
  }
  const entries: LookupEntry[] = [];
  for (let i = headerIndex + 1; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const cells = raw.split(',').map((c) => c.trim());
    if (cells.length !== header.length) {
      problems.push(`line ${i + 1}: ${cells.length} cells, expected ${header.length}`);
      continue;
    }
    const get = (c: string) => cells[header.indexOf(c)];
    const entry: Record<string, unknown> = { layer: get('layer') };
    let numeric = true;
    for (const c of ['wBits', 'aBits', 'latencyMs', 'energyUj'] as const) {
      const v = Number(get(c));
      if (get(c) === '' || !Number.isFinite(v)) {
        problems.push(`line ${i + 1}, column ${c}: not a number: ${JSON.stringify(get(c))}`);
        numeric = false;
      }
      entry[c] = v;
    }
    if (header.includes('bound') && get('bound') !== '') entry.bound = get('bound');
    if (numeric) {
      for (const m of validateJson(entry, LOOKUP_ENTRY_SCHEMA, LOOKUP_ENTRY_SCHEMA, 'row')) {
        problems.push(`line ${i + 1}, column ${m.replace(/^row\.?/, '')}`);
      }
    }
    entries.push(entry as unknown as LookupEntry);
  }
  return entries;
}

const LOOKUP_ENTRY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['layer', 'wBits', 'aBits', 'latencyMs', 'energyUj'],
  additionalProperties: false,
  properties: {
    layer: { type: 'string', minLength: 1 },
    wBits: { type: 'integer', minimum: 1, maximum: 32 },
    aBits: { type: 'integer', minimum: 1, maximum: 32 },
    latencyMs: { type: 'number', minimum: 0 },
    energyUj: { type: 'number', minimum: 0 },
    bound: { enum: ['compute', 'memory'] },
  },
};

/** Reads the entries of a lookup profile (inline or from its table file). Problems go to ctx.problems. */
function readEntries(spec: LookupSpec, ctx: ComputeContext): { entries: LookupEntry[]; source: string } {
  if ((spec.table === undefined) === (spec.entries === undefined)) {
    ctx.problems.push('$.compute: a lookup profile needs exactly one of "table" (a .json or .csv file) and "entries"');
    return { entries: [], source: ctx.file };
  }
  if (spec.entries) return { entries: spec.entries, source: ctx.file };
  const file = isAbsolute(spec.table as string) ? (spec.table as string) : resolve(ctx.baseDir, spec.table as string);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    ctx.problems.push(`$.compute.table: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    return { entries: [], source: file };
  }
  const sub: string[] = [];
  let entries: LookupEntry[] = [];
  if (/\.csv$/i.test(file)) {
    entries = parseLookupCsv(text, sub);
  } else if (/\.json$/i.test(file)) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      sub.push(`$: not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (sub.length === 0) {
      const list = Array.isArray(data) ? data : (data as { entries?: unknown } | null)?.entries;
      const base = Array.isArray(data) ? '$' : '$.entries';
      if (!Array.isArray(list)) sub.push('$: expected an array of entries or {"entries": [...]}');
      else {
        list.forEach((e, i) =>
          sub.push(...validateJson(e, LOOKUP_ENTRY_SCHEMA, LOOKUP_ENTRY_SCHEMA, childPath(base, i))),
        );
        entries = list as LookupEntry[];
      }
    }
  } else {
    sub.push('$: a lookup table must be a .json or .csv file');
  }
  for (const p of sub) ctx.problems.push(`$.compute.table (${file}) ${p}`);
  return { entries, source: file };
}

export function lookupModel(spec: LookupSpec, ctx: ComputeContext): ComputeModel {
  const { entries, source } = readEntries(spec, ctx);
  const byLayer = new Map<string, Map<number, LookupEntry>>();
  const bits = new Set<number>();
  entries.forEach((e, i) => {
    let m = byLayer.get(e.layer);
    if (!m) byLayer.set(e.layer, (m = new Map<number, LookupEntry>()));
    const k = pairKey(e.wBits, e.aBits);
    if (m.has(k))
      ctx.problems.push(
        `$.compute ${source === ctx.file ? `entries[${i}]` : `(${source}) entry ${i + 1}`}: layer '${e.layer}' at W${e.wBits}A${e.aBits} is listed twice`,
      );
    m.set(k, e);
    bits.add(e.wBits);
    bits.add(e.aBits);
  });
  const clockKHz = ctx.spec.clockMHz * 1000;
  return {
    name: 'lookup',
    userSupplied: true,
    evaluate(g: LayerGeometry, wBits: number, aBits: number, out: ComputeResult): void {
      resetResult(out, wBits, aBits);
      const layerEntries = byLayer.get(g.layer.name);
      if (!layerEntries) {
        throw new UserError(
          `the lookup table has no layer '${g.layer.name}'${spec.network ? ` (it was measured on ${spec.network})` : ''}`,
          {
            file: source,
            expected: `one of ${[...byLayer.keys()].join(', ') || '(no layers)'}`,
          },
        );
      }
      const e = layerEntries.get(pairKey(wBits, aBits));
      if (!e) {
        const have = [...layerEntries.values()].map((x) => `W${x.wBits}A${x.aBits}`);
        throw new UserError(`the lookup table has no entry for layer '${g.layer.name}' at W${wBits}A${aBits}`, {
          file: source,
          expected: `one of ${have.join(', ')} for that layer; measure the missing pair or leave it out of the bit choices`,
        });
      }
      out.cycles = e.latencyMs * clockKHz;
      out.energyPJ = e.energyUj * 1e6;
      out.boundOverride = e.bound === 'memory' ? 2 : e.bound === 'compute' ? 1 : 0;
    },
    summary: () =>
      `lookup table${spec.network ? ` for ${spec.network}` : ''}: ${entries.length} entries, ${byLayer.size} layers`,
    supportedBits: () => [...bits].sort((x, y) => x - y),
  };
}
