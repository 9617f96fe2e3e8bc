/**
 * Measured per-layer latencies (and energies) of a device, as a CSV file, for `bitalloc profile fit`
 * and `bitalloc profile validate --against`:
 *
 *   layer,wBits,aBits,latencyMs[,energyUj]
 *   conv1,8,8,0.0123,0.9
 *
 * A row names its layer by `layer` (matched against the model's layer inventory, --model) or gives
 * its geometry in the columns kind (conv | depthwise | dense), inChannels, outChannels, kernel (KHxKW),
 * stride (SHxSW), inSize (HxW), outSize (HxW) (then `layer`, when present, is only a label).
 * Empty lines and lines starting with # are skipped. Every problem names the file, line and column.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { LayerInfo, LayerKind } from '../models/layer-info.js';

export interface Measurement {
  /** Line in the file (1-based), for messages. */
  line: number;
  /** The layer measured: from the inventory or built from the row's geometry. */
  layer: LayerInfo;
  wBits: number;
  aBits: number;
  latencyMs: number;
  energyUj?: number;
}

const VALUE_COLUMNS = ['wBits', 'aBits', 'latencyMs', 'energyUj'] as const;
export const GEOMETRY_COLUMNS = ['kind', 'inChannels', 'outChannels', 'kernel', 'stride', 'inSize', 'outSize'] as const;
const ALL_COLUMNS: readonly string[] = ['layer', ...VALUE_COLUMNS, ...GEOMETRY_COLUMNS];

function pair(text: string): [number, number] | null {
  const m = /^(\d+)(?:x(\d+))?$/i.exec(text);
  if (!m) return null;
  const a = Number(m[1]);
  return [a, m[2] === undefined ? a : Number(m[2])];
}

/** A LayerInfo from a geometry (per sample; dense layers have kernel, sizes 1x1 and stride 0x0). */
export function layerFromGeometry(
  index: number,
  name: string,
  kind: LayerKind,
  inChannels: number,
  outChannels: number,
  kernel: [number, number],
  stride: [number, number],
  inSize: [number, number],
  outSize: [number, number],
): LayerInfo {
  const k = kernel[0] * kernel[1];
  const params =
    kind === 'dense' ? inChannels * outChannels : kind === 'depthwise' ? k * inChannels : k * inChannels * outChannels;
  const pixels = kind === 'dense' ? 1 : outSize[0] * outSize[1];
  return {
    index,
    name,
    kind,
    inChannels,
    outChannels,
    kernel,
    stride,
    inSize,
    outSize,
    params,
    biasParams: outChannels,
    macs: kind === 'dense' ? params : kind === 'depthwise' ? pixels * k * outChannels : pixels * params,
    inElements: kind === 'dense' ? inChannels : inSize[0] * inSize[1] * inChannels,
    outElements: kind === 'dense' ? outChannels : pixels * outChannels,
    liveElements: 0,
  };
}

/**
 * Parses measurements; `layers` (the --model inventory, or null) resolves rows by layer name.
 * Throws one UserError listing every problem (file, line, column).
 */
export function parseMeasurements(text: string, file: string, layers: readonly LayerInfo[] | null): Measurement[] {
  const problems: string[] = [];
  const lines = text.split(/\r?\n/);
  const headerIndex = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  const fail = (message: string): never => {
    throw new UserError(message, {
      file,
      problems,
      expected:
        'a CSV with the columns layer (or kind,inChannels,outChannels,kernel,stride,inSize,outSize), wBits, aBits, latencyMs[, energyUj]; see docs/hardware-profiles.md',
    });
  };
  if (headerIndex < 0) {
    problems.push('line 1: the file is empty (expected a header line)');
    return fail('no measurements');
  }
  const header = lines[headerIndex].split(',').map((h) => h.trim());
  const where = `line ${headerIndex + 1}`;
  header.forEach((h, i) => {
    if (!ALL_COLUMNS.includes(h))
      problems.push(`${where}, column ${i + 1}: unknown column '${h}' (allowed: ${ALL_COLUMNS.join(', ')})`);
    else if (header.indexOf(h) !== i) problems.push(`${where}, column ${i + 1}: column '${h}' appears twice`);
  });
  for (const c of ['wBits', 'aBits', 'latencyMs'])
    if (!header.includes(c)) problems.push(`${where}: the header lacks the column ${c}`);
  const geomCols = GEOMETRY_COLUMNS.filter((c) => header.includes(c));
  const byGeometry = geomCols.length > 0;
  if (byGeometry && geomCols.length < GEOMETRY_COLUMNS.length) {
    problems.push(
      `${where}: geometry columns need all of ${GEOMETRY_COLUMNS.join(', ')}; missing ${GEOMETRY_COLUMNS.filter((c) => !header.includes(c)).join(', ')}`,
    );
  }
  if (!byGeometry && !header.includes('layer'))
    problems.push(
      `${where}: the header needs a layer column (a layer name) or the geometry columns ${GEOMETRY_COLUMNS.join(', ')}`,
    );
  if (!byGeometry && header.includes('layer') && layers === null) {
    problems.push(
      `${where}, column ${header.indexOf('layer') + 1}: rows name their layer; give the model they belong to with --model (or the geometry columns)`,
    );
  }
  if (problems.length) return fail('invalid measurements header');

  const byName = new Map((layers ?? []).map((l) => [l.name, l]));
  const out: Measurement[] = [];
  for (let i = headerIndex + 1; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const cells = raw.split(',').map((c) => c.trim());
    const at = (c: string) => `line ${i + 1}, column ${header.indexOf(c) + 1} (${c})`;
    if (cells.length !== header.length) {
      problems.push(`line ${i + 1}: ${cells.length} cells, expected ${header.length}`);
      continue;
    }
    const get = (c: string): string => (header.includes(c) ? cells[header.indexOf(c)] : '');
    const num = (c: string, test: (v: number) => boolean, what: string): number => {
      const s = get(c);
      const v = Number(s);
      if (s === '' || !Number.isFinite(v) || !test(v)) {
        problems.push(`${at(c)}: ${JSON.stringify(s)} is not ${what}`);
        return NaN;
      }
      return v;
    };
    const bits = (v: number) => Number.isInteger(v) && v >= 1 && v <= 32;
    const wBits = num('wBits', bits, 'a bit-width from 1 to 32');
    const aBits = num('aBits', bits, 'a bit-width from 1 to 32');
    const latencyMs = num('latencyMs', (v) => v > 0, 'a latency in ms > 0');
    const energyUj =
      header.includes('energyUj') && get('energyUj') !== ''
        ? num('energyUj', (v) => v >= 0, 'an energy in uJ >= 0')
        : undefined;
    let layer: LayerInfo | undefined;
    if (byGeometry) {
      const kind = get('kind');
      if (kind !== 'conv' && kind !== 'depthwise' && kind !== 'dense')
        problems.push(`${at('kind')}: ${JSON.stringify(kind)} is not one of conv, depthwise, dense`);
      const int = (c: string) => num(c, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
      const cin = int('inChannels');
      const cout = int('outChannels');
      const pairs = (['kernel', 'stride', 'inSize', 'outSize'] as const).map((c) => {
        const p = pair(get(c));
        if (!p || (c !== 'stride' && (p[0] < 1 || p[1] < 1)))
          problems.push(`${at(c)}: ${JSON.stringify(get(c))} is not HxW (e.g. 3x3)`);
        return p ?? ([1, 1] as [number, number]);
      });
      if (kind === 'depthwise' && cin !== cout)
        problems.push(`${at('outChannels')}: a depthwise layer has as many output channels as input channels (${cin})`);
      const name = get('layer') || `row${i + 1}`;
      layer = layerFromGeometry(
        out.length,
        name,
        kind as LayerKind,
        cin,
        cout,
        ...(pairs as [[number, number], [number, number], [number, number], [number, number]]),
      );
    } else {
      const name = get('layer');
      layer = byName.get(name);
      if (!layer) {
        const names = [...byName.keys()];
        problems.push(
          `${at('layer')}: unknown layer '${name}' (the model's layers: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', ...' : ''})`,
        );
      }
    }
    if (!layer) continue;
    out.push({ line: i + 1, layer, wBits, aBits, latencyMs, ...(energyUj !== undefined ? { energyUj } : {}) });
  }
  const seen = new Map<string, number>();
  for (const m of out) {
    const key = `${m.layer.name}|${m.wBits}|${m.aBits}`;
    const prev = seen.get(key);
    if (prev !== undefined && !byGeometry)
      problems.push(
        `line ${m.line}: layer '${m.layer.name}' at W${m.wBits}A${m.aBits} is already measured on line ${prev}`,
      );
    seen.set(key, m.line);
  }
  if (problems.length)
    return fail(`invalid measurements (${problems.length} problem${problems.length === 1 ? '' : 's'})`);
  if (out.length === 0) {
    problems.push(`line ${headerIndex + 2}: no measurement rows after the header`);
    return fail('no measurements');
  }
  return out;
}

/** Reads a measurements CSV file (see parseMeasurements). */
export function readMeasurements(file: string, layers: readonly LayerInfo[] | null): Measurement[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT' ? 'measurements file not found' : `cannot read the measurements file: ${code ?? String(e)}`,
      { file, field: '--measurements' },
    );
  }
  return parseMeasurements(text, file, layers);
}
