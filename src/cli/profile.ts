/**
 * `bitalloc profile <list|show|validate|fit|simulate|table>`: hardware profiles and what a model costs on them.
 */
import type { Argv } from 'yargs';
import { UserError } from '../errors.js';
import {
  buildCostTable,
  listBuiltinProfiles,
  loadProfile,
  profileBitChoices,
  profilesDir,
  readJsonFile,
  type AllocationCost,
  type Profile,
} from '../hardware/index.js';
import { expressionRangeProblems, type LayerSet } from '../hardware/checks.js';
import {
  errorSummary,
  fitParameterNames,
  fitProfile,
  predict,
  type ErrorSummary,
  type Prediction,
} from '../hardware/fit.js';
import { validateJson, type JsonSchema } from '../hardware/json-schema.js';
import { readMeasurements, type Measurement } from '../hardware/measurements.js';
import type { ProfileSpec } from '../hardware/profile-types.js';
import { loadInventory, ZOO_NAMES } from '../models/index.js';
import { formatBits, uniformBits, VALID_BITS, type BitConfig, type LayerInfo } from '../models/layer-info.js';
import { readBitsFile } from '../quant/bits-file.js';
import { writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatTable, printJson, printText } from './output.js';
import type { CliCommand, CommandArgs } from './types.js';

type Handler = (args: CommandArgs) => Promise<void>;

/** Significant digits for printed figures. */
function fmt(x: number, digits = 4): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  return String(Number(x.toPrecision(digits)));
}

function bytes(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** The layer inventory of `--model` (zoo name or model.json) or of a `--layers` inventory file. */
async function modelLayers(args: CommandArgs): Promise<{ name: string; layers: LayerInfo[] }> {
  const layersFile = args.layers as string | undefined;
  const model = args.model as string | undefined;
  if (layersFile !== undefined && model !== undefined) {
    throw new UserError('give either --model or --layers, not both', { field: '--layers' });
  }
  if (layersFile !== undefined) return { name: layersFile, layers: readLayersFile(layersFile) };
  if (model === undefined) {
    throw new UserError('name the model', {
      field: '--model',
      expected: `a zoo model (${ZOO_NAMES.join(', ')}), a model.json path, or --layers with a layer inventory file`,
    });
  }
  return { name: model, layers: await loadInventory(model) };
}

const LAYER_SCHEMA: JsonSchema = {
  type: 'object',
  required: [
    'name',
    'kind',
    'inChannels',
    'outChannels',
    'kernel',
    'stride',
    'inSize',
    'outSize',
    'params',
    'biasParams',
    'macs',
    'inElements',
    'outElements',
  ],
  additionalProperties: false,
  properties: {
    index: { type: 'integer', minimum: 0 },
    name: { type: 'string', minLength: 1 },
    kind: { enum: ['conv', 'depthwise', 'dense'] },
    inChannels: { type: 'integer', minimum: 1 },
    outChannels: { type: 'integer', minimum: 1 },
    kernel: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'integer', minimum: 1 } },
    stride: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'integer', minimum: 0 } },
    inSize: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'integer', minimum: 1 } },
    outSize: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'integer', minimum: 1 } },
    params: { type: 'integer', minimum: 0 },
    biasParams: { type: 'integer', minimum: 0 },
    macs: { type: 'number', minimum: 0 },
    inElements: { type: 'integer', minimum: 0 },
    outElements: { type: 'integer', minimum: 0 },
    liveElements: { type: 'integer', minimum: 0 },
  },
};

/**
 * A layer inventory file: {"layers": [LayerInfo, ...]} (or a bare array), in forward order, as the
 * model zoo's inventory gives it. `index` and `liveElements` may be left out.
 */
export function readLayersFile(file: string): LayerInfo[] {
  const data = readJsonFile(file, 'layer inventory file');
  const list = Array.isArray(data) ? data : (data as { layers?: unknown } | null)?.layers;
  const base = Array.isArray(data) ? '$' : '$.layers';
  if (!Array.isArray(list) || list.length === 0) {
    throw new UserError('expected a non-empty array of layers', {
      file,
      field: base,
      expected: '{"layers": [{"name", "kind", ...}, ...]}',
    });
  }
  const problems = list.flatMap((l, i) => validateJson(l, LAYER_SCHEMA, LAYER_SCHEMA, `${base}[${i}]`));
  if (problems.length)
    throw new UserError(`invalid layer inventory (${problems.length} problem${problems.length === 1 ? '' : 's'})`, {
      file,
      problems,
    });
  return (list as LayerInfo[]).map((l, i) => ({ ...l, index: i, liveElements: l.liveElements ?? 0 }));
}

function bitsArg(args: CommandArgs, name: string): number | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !VALID_BITS.includes(v)) {
    throw new UserError(`--${name} must be one of ${VALID_BITS.join(', ')}, got '${String(v)}'`, {
      field: `--${name}`,
    });
  }
  return v;
}

function allocationFromArgs(args: CommandArgs, layers: LayerInfo[]): BitConfig {
  const file = args.bitsFile as string | undefined;
  const w = bitsArg(args, 'wbits');
  const a = bitsArg(args, 'abits');
  if (file !== undefined) {
    if (w !== undefined || a !== undefined)
      throw new UserError('give either --bits-file or --wbits/--abits, not both', { field: '--bits-file' });
    return readBitsFile(file, layers);
  }
  if (w === undefined && a === undefined) {
    throw new UserError('give the bits to cost', {
      field: '--wbits',
      expected: '--wbits W --abits A, or --bits-file FILE',
    });
  }
  return uniformBits(layers, w ?? (a as number), a ?? (w as number));
}

function parseBitList(v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const parts = String(v)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bits = parts.map(Number);
  if (bits.length === 0 || bits.some((b) => !Number.isInteger(b) || b < 1 || b > 32)) {
    throw new UserError(`--bits must be a comma-separated list of bit-widths from 1 to 32, got '${String(v)}'`, {
      field: '--bits',
    });
  }
  return bits;
}

function costJson(layers: LayerInfo[], bits: BitConfig, cost: AllocationCost) {
  return {
    layers: cost.layers.map((c, i) => ({
      name: layers[i].name,
      kind: layers[i].kind,
      wBits: (bits[i] as { wBits: number }).wBits,
      aBits: (bits[i] as { aBits: number }).aBits,
      latencyMs: c.latencyMs,
      energyUj: c.energyUj,
      bound: c.bound,
      computeCycles: c.computeCycles,
      memoryCycles: c.memoryCycles,
      weightBytes: c.weightBytes,
      activationBytes: c.activationBytes,
      offChipBytes: c.offChipBytes,
    })),
    total: {
      latencyMs: cost.latencyMs,
      energyUj: cost.energyUj,
      sizeBytes: cost.sizeBytes,
      peakMemoryBytes: cost.peakMemoryBytes,
      peakLayer: layers[cost.peakLayerIndex ?? 0].name,
      fits: cost.fits,
      violations: cost.violations ?? [],
    },
  };
}

function profileHeader(p: Profile): string {
  const s = p.spec;
  return `${s.id}: ${p.compute.summary()}; ${fmt(s.clockMHz)} MHz, batch ${s.batchSize}`;
}

function fitText(p: Profile, cost: AllocationCost): string {
  const lim = p.spec.limits;
  if (!lim || (lim.flashBytes === undefined && lim.sramBytes === undefined))
    return 'fits: yes (the profile has no storage limits)';
  const limits = [
    lim.flashBytes !== undefined ? `flash ${bytes(lim.flashBytes)} B` : '',
    lim.sramBytes !== undefined ? `SRAM ${bytes(lim.sramBytes)} B` : '',
  ]
    .filter(Boolean)
    .join(', ');
  if (cost.fits) return `fits: yes (${limits})`;
  const why = (cost.violations ?? []).map((v) =>
    v.limit === 'flash'
      ? `model size ${bytes(v.bytes)} B exceeds flash ${bytes(v.limitBytes)} B (largest layer: ${v.layerName})`
      : `layer ${v.layerName} needs ${bytes(v.bytes)} B of activations, SRAM has ${bytes(v.limitBytes)} B`,
  );
  return `fits: NO — ${why.join('; ')}`;
}

const list: Handler = async (args) => {
  const profiles = listBuiltinProfiles();
  if (args.json) {
    printJson(profiles);
    return;
  }
  const idW = Math.max(7, ...profiles.map((p) => p.id.length));
  const cW = Math.max(7, ...profiles.map((p) => p.computeModel.length));
  const line = (a: string, b: string, c: string) => `${a.padEnd(idW)}  ${b.padEnd(cW)}  ${c}`;
  printText(
    [
      line('profile', 'compute', 'description'),
      line('-'.repeat(idW), '-'.repeat(cW), '-'.repeat(11)),
      ...profiles.map((p) => line(p.id, p.computeModel, p.description)),
    ].join('\n'),
  );
  printText(`\n${profiles.length} built-in profiles in ${profilesDir()}; 'bitalloc profile show NAME' for details.`);
};

const show: Handler = async (args) => {
  const p = loadProfile(String(args.profile));
  if (args.json) {
    printJson({ file: p.file, ...p.spec });
    return;
  }
  const s = p.spec;
  const lines = [
    `${s.id} — ${s.description}`,
    `file: ${p.file}`,
    `compute: ${p.compute.summary()}`,
    `clock ${fmt(s.clockMHz)} MHz, batch ${s.batchSize}`,
  ];
  if (s.memory) {
    const off = s.memory.offChip;
    lines.push(
      `off-chip ${off.name ?? 'memory'}: ${fmt(off.bandwidthGBps)} GB/s, ${fmt(off.pJPerBit)} pJ/bit, holds ${(off.holds ?? ['weights', 'inputs', 'outputs']).join(', ')}`,
    );
    for (const b of s.memory.onChip ?? []) {
      lines.push(
        `on-chip ${b.name}: ${bytes(b.sizeBytes)} B, holds ${b.holds.join(', ')}, read ${fmt(b.readPJPerBit)} / write ${fmt(b.writePJPerBit)} pJ/bit`,
      );
    }
  } else lines.push('memory: none (the measured latencies include it)');
  const extra = [
    s.staticPowerMw !== undefined ? `static power ${fmt(s.staticPowerMw)} mW` : '',
    s.perLayerOverheadCycles !== undefined ? `per-layer overhead ${fmt(s.perLayerOverheadCycles)} cycles` : '',
    s.perLayerOverheadUs !== undefined ? `per-layer overhead ${fmt(s.perLayerOverheadUs)} us` : '',
  ].filter(Boolean);
  if (extra.length) lines.push(extra.join(', '));
  if (s.limits) {
    lines.push(
      `limits: ${[s.limits.flashBytes !== undefined ? `flash ${bytes(s.limits.flashBytes)} B` : '', s.limits.sramBytes !== undefined ? `SRAM ${bytes(s.limits.sramBytes)} B` : ''].filter(Boolean).join(', ')}`,
    );
  }
  lines.push('sources:');
  for (const src of s.sources) lines.push(`  - ${src.estimate ? '(estimate) ' : ''}${src.what}: ${src.source}`);
  printText(lines.join('\n'));
};

const validate: Handler = async (args) => {
  const p = loadProfile(String(args.file));
  if (p.spec.compute.model === 'expression') {
    // formulas are evaluated over real layers: --model's, else every zoo model's
    const sets: LayerSet[] =
      args.model !== undefined || args.layers !== undefined
        ? [await modelLayers(args)]
        : await Promise.all(ZOO_NAMES.map(async (name) => ({ name, layers: await loadInventory(name) })));
    const problems = expressionRangeProblems(p, sets);
    if (problems.length) {
      throw new UserError(`invalid hardware profile (${problems.length} problem${problems.length === 1 ? '' : 's'})`, {
        file: p.file,
        problems,
        expected: `expressions that give a finite number >= 0 for the layers of ${sets.map((x) => x.name).join(', ')} at bit-widths 1..8, 16, 32`,
      });
    }
  }
  if (args.against !== undefined) {
    const measurements = await measurementsFromArgs(args, String(args.against));
    const before = predict(p.spec, measurements, p.file, dirname(p.file));
    const report = errorReport(measurements, before, null);
    if (args.json) printJson({ file: p.file, valid: true, id: p.id, measurements: String(args.against), ...report });
    else
      printText(
        [
          `${p.file}: valid hardware profile '${p.id}'; predicted against ${String(args.against)} (${measurements.length} measurements)`,
          '',
          errorText(measurements, before, null),
        ].join('\n'),
      );
    return;
  }
  const estimates = p.spec.sources.filter((s) => s.estimate).length;
  if (args.json) {
    printJson({ file: p.file, valid: true, id: p.id, computeModel: p.spec.compute.model });
    return;
  }
  printText(
    `${p.file}: valid hardware profile '${p.id}' (${p.compute.summary()}; ${p.spec.sources.length} source${p.spec.sources.length === 1 ? '' : 's'}, ${estimates} marked as estimate${estimates === 1 ? '' : 's'})`,
  );
};

const simulateCmd: Handler = async (args) => {
  const profile = loadProfile(String(args.profile));
  const { name, layers } = await modelLayers(args);
  const bits = allocationFromArgs(args, layers);
  const used = [...new Set(bits.flatMap((b) => [b.wBits, b.aBits]))];
  const cost = buildCostTable(profile, layers, used).costAllocation(bits);
  if (args.json) {
    printJson({ profile: profile.id, model: name, bits: formatBits(bits), ...costJson(layers, bits, cost) });
    return;
  }
  const rows = cost.layers.map((c, i) => {
    const l = layers[i];
    const b = bits[i];
    return [
      l.name,
      l.kind,
      b.wBits,
      b.aBits,
      bytes(l.macs),
      fmt(c.latencyMs),
      fmt(c.energyUj),
      c.bound,
      bytes(c.weightBytes),
      bytes(c.activationBytes),
    ];
  });
  printText(
    [
      `${profileHeader(profile)}`,
      `model ${name}, bits ${formatBits(bits)}`,
      '',
      formatTable(
        ['layer', 'kind', 'W', 'A', 'MACs', 'latency ms', 'energy uJ', 'bound', 'weight B', 'activation B'],
        rows,
      ),
      '',
      `total: latency ${fmt(cost.latencyMs)} ms, energy ${fmt(cost.energyUj)} uJ, size ${bytes(cost.sizeBytes)} B, ` +
        `peak memory ${bytes(cost.peakMemoryBytes)} B (${layers[cost.peakLayerIndex ?? 0].name})`,
      fitText(profile, cost),
    ].join('\n'),
  );
};

/** Measurements of --measurements/--against, resolving layer names against --model/--layers when given. */
async function measurementsFromArgs(args: CommandArgs, file: string): Promise<Measurement[]> {
  const layers = args.model !== undefined || args.layers !== undefined ? (await modelLayers(args)).layers : null;
  return readMeasurements(file, layers);
}

function pct(x: number): string {
  return `${x >= 0 ? '' : '-'}${fmt(Math.abs(x), 3)}%`;
}

function signedPct(pred: number, meas: number): string {
  const e = (pred / meas - 1) * 100;
  return `${e >= 0 ? '+' : ''}${fmt(e, 3)}%`;
}

function summaries(m: readonly Measurement[], p: Prediction): { latency: ErrorSummary; energy: ErrorSummary | null } {
  const withE = m.map((x, i) => [x, i] as const).filter(([x]) => x.energyUj !== undefined);
  return {
    latency: errorSummary(
      m.map((x) => x.latencyMs),
      p.latencyMs,
    ),
    energy: withE.length
      ? errorSummary(
          withE.map(([x]) => x.energyUj as number),
          withE.map(([, i]) => p.energyUj[i]),
        )
      : null,
  };
}

function errorReport(m: readonly Measurement[], before: Prediction, after: Prediction | null) {
  const rows = m.map((x, i) => ({
    line: x.line,
    layer: x.layer.name,
    wBits: x.wBits,
    aBits: x.aBits,
    measuredLatencyMs: x.latencyMs,
    ...(after
      ? { beforeLatencyMs: before.latencyMs[i], afterLatencyMs: after.latencyMs[i] }
      : { predictedLatencyMs: before.latencyMs[i] }),
    ...(x.energyUj !== undefined
      ? {
          measuredEnergyUj: x.energyUj,
          ...(after
            ? { beforeEnergyUj: before.energyUj[i], afterEnergyUj: after.energyUj[i] }
            : { predictedEnergyUj: before.energyUj[i] }),
        }
      : {}),
  }));
  return after
    ? { rows, before: summaries(m, before), after: summaries(m, after) }
    : { rows, error: summaries(m, before) };
}

function summaryLine(what: string, b: ErrorSummary, a: ErrorSummary | null, m: readonly Measurement[]): string {
  const at = (s: ErrorSummary) => {
    const x = m[s.maxRow];
    return `${x.layer.name} W${x.wBits}A${x.aBits}`;
  };
  if (!a)
    return `${what}: MAPE ${pct(b.mapePct)}, max ${pct(b.maxPct)} (${at(b)}), total ${b.totalPct >= 0 ? '+' : ''}${pct(b.totalPct)}`;
  return `${what}: MAPE ${pct(b.mapePct)} -> ${pct(a.mapePct)}, max ${pct(b.maxPct)} (${at(b)}) -> ${pct(a.maxPct)} (${at(a)}), total ${b.totalPct >= 0 ? '+' : ''}${pct(b.totalPct)} -> ${a.totalPct >= 0 ? '+' : ''}${pct(a.totalPct)}`;
}

function errorText(m: readonly Measurement[], before: Prediction, after: Prediction | null): string {
  const hasE = m.some((x) => x.energyUj !== undefined);
  const header = after
    ? [
        'layer',
        'W',
        'A',
        'measured ms',
        'before ms',
        'error',
        'after ms',
        'error',
        ...(hasE ? ['measured uJ', 'before uJ', 'error', 'after uJ', 'error'] : []),
      ]
    : [
        'layer',
        'W',
        'A',
        'measured ms',
        'predicted ms',
        'error',
        ...(hasE ? ['measured uJ', 'predicted uJ', 'error'] : []),
      ];
  const rows = m.map((x, i) => {
    const b = before.latencyMs[i];
    const row: (string | number)[] = [
      x.layer.name,
      x.wBits,
      x.aBits,
      fmt(x.latencyMs),
      fmt(b),
      signedPct(b, x.latencyMs),
    ];
    if (after) row.push(fmt(after.latencyMs[i]), signedPct(after.latencyMs[i], x.latencyMs));
    if (hasE) {
      const e = x.energyUj;
      if (e === undefined) row.push('', '', '', ...(after ? ['', ''] : []));
      else {
        row.push(fmt(e), fmt(before.energyUj[i]), signedPct(before.energyUj[i], e));
        if (after) row.push(fmt(after.energyUj[i]), signedPct(after.energyUj[i], e));
      }
    }
    return row;
  });
  const sb = summaries(m, before);
  const sa = after ? summaries(m, after) : null;
  const lines = [
    formatTable(header, rows),
    '',
    summaryLine(after ? 'latency (before -> after)' : 'latency', sb.latency, sa?.latency ?? null, m),
  ];
  if (sb.energy)
    lines.push(
      summaryLine(
        after ? 'energy (before -> after)' : 'energy',
        sb.energy,
        sa?.energy ?? null,
        m.filter((x) => x.energyUj !== undefined),
      ),
    );
  return lines.join('\n');
}

const fitCmd: Handler = async (args) => {
  const profile = loadProfile(String(args.profile));
  const file = String(args.measurements);
  const measurements = await measurementsFromArgs(args, file);
  const free =
    args.free === undefined
      ? undefined
      : String(args.free)
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
  if (free !== undefined && free.length === 0)
    throw new UserError('--free needs at least one parameter', {
      field: '--free',
      expected: fitParameterNames(profile.spec).join(', '),
    });
  const res = fitProfile(profile.spec, measurements, { free, label: profile.file, baseDir: dirname(profile.file) });
  const s = summaries(measurements, res.after);
  const spec: ProfileSpec = structuredClone(res.spec);
  const note = `bitalloc profile fit on ${file} (${measurements.length} measurements; free: ${res.free.map((f) => f.name).join(', ')}): latency MAPE ${pct(summaries(measurements, res.before).latency.mapePct)} -> ${pct(s.latency.mapePct)}, max ${pct(s.latency.maxPct)}`;
  spec.sources = [
    ...spec.sources,
    { what: `fitted: ${res.free.map((f) => f.after_).join('; ')}`, source: note, estimate: false },
  ];
  if (args.id !== undefined) spec.id = String(args.id);
  const out = args.out === undefined ? undefined : String(args.out);
  if (out !== undefined) writeFileSync(out, JSON.stringify(spec, null, 2) + '\n');
  if (args.json) {
    printJson({
      profile: profile.id,
      measurements: file,
      out: out ?? null,
      free: res.free,
      dropped: res.dropped,
      iterations: res.iterations,
      ...errorReport(measurements, res.before, res.after),
      fitted: spec,
    });
    return;
  }
  const lines = [
    `${profileHeader(profile)}`,
    `fitted to ${file}: ${measurements.length} measurements, ${res.iterations} iterations`,
    ...res.free.map(
      (f) =>
        `  ${f.name}: ${f.before_} -> ${f.after_}${['throughput', 'bandwidth', 'computeEnergy', 'memoryEnergy'].includes(f.name) || f.name.startsWith('throughput.') ? ` (x${fmt(f.after)})` : ''}`,
    ),
    ...(res.dropped.length ? [`  not fitted (no influence on these measurements): ${res.dropped.join(', ')}`] : []),
    '',
    errorText(measurements, res.before, res.after),
    out !== undefined ? `\nwrote ${out}` : '\n(no --out: fitted profile not written)',
  ];
  printText(lines.join('\n'));
};

const TABLE_COLUMNS = [
  'layer',
  'wBits',
  'aBits',
  'latencyMs',
  'energyUj',
  'computeCycles',
  'memoryCycles',
  'bound',
  'weightBytes',
  'activationBytes',
  'offChipBytes',
] as const;

const tableCmd: Handler = async (args) => {
  const profile = loadProfile(String(args.profile));
  const { name, layers } = await modelLayers(args);
  const choices =
    parseBitList(args.bits) ??
    profileBitChoices(profile).filter((b) => b <= 8 || profile.compute.supportedBits() !== null);
  const table = buildCostTable(profile, layers, choices);
  const rows: (string | number)[][] = [];
  const records: Record<string, string | number>[] = [];
  layers.forEach((l, i) => {
    for (const w of table.bitChoices) {
      for (const a of table.bitChoices) {
        const c = table.layerCost(i, w, a);
        const rec = {
          layer: l.name,
          wBits: w,
          aBits: a,
          latencyMs: c.latencyMs,
          energyUj: c.energyUj,
          computeCycles: c.computeCycles,
          memoryCycles: c.memoryCycles,
          bound: c.bound,
          weightBytes: c.weightBytes,
          activationBytes: c.activationBytes,
          offChipBytes: c.offChipBytes,
        };
        records.push(rec);
        rows.push(
          TABLE_COLUMNS.map((k) =>
            typeof rec[k] === 'number' && !['wBits', 'aBits'].includes(k) ? fmt(rec[k], 6) : rec[k],
          ),
        );
      }
    }
  });
  if (args.json) {
    printJson({ profile: profile.id, model: name, bitChoices: table.bitChoices, rows: records });
  } else if (args.csv) {
    printText(
      [TABLE_COLUMNS.join(','), ...records.map((r) => TABLE_COLUMNS.map((k) => csvCell(r[k])).join(','))].join('\n'),
    );
  } else {
    printText(
      [
        `${profileHeader(profile)}`,
        `model ${name}, bit choices ${table.bitChoices.join(', ')}`,
        '',
        formatTable([...TABLE_COLUMNS], rows),
      ].join('\n'),
    );
  }
};

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function modelOptions(y: Argv<any>) {
  return y
    .option('profile', { type: 'string', demandOption: true, describe: 'built-in profile name or profile .json file' })
    .option('model', { type: 'string', describe: `zoo model (${ZOO_NAMES.join(', ')}) or a tfjs model.json` })
    .option('layers', { type: 'string', describe: 'a layer inventory .json file instead of --model' });
}

export const profileCommand: CliCommand = {
  command: 'profile',
  describe: 'Hardware profiles: list, show, validate, and cost a model on one (simulate, table)',
  builder: (y) =>
    y
      .command('list', 'List the built-in hardware profiles', {}, (a) => list(a as unknown as CommandArgs))
      .command(
        'show <profile>',
        'Show a profile (built-in name or file): compute model, memory, limits, sources',
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        (s: Argv<any>) =>
          s.positional('profile', { type: 'string', describe: 'built-in profile name or profile .json file' }),
        (a) => show(a as unknown as CommandArgs),
      )
      .command(
        'validate <file>',
        'Check a profile file against the schema; lists every problem with its JSON path (exit 1 if any)',
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        (s: Argv<any>) =>
          s
            .positional('file', { type: 'string', describe: 'profile .json file' })
            .option('against', {
              type: 'string',
              describe: 'measurements CSV: print the per-layer and total error of the profile against it',
            })
            .option('model', {
              type: 'string',
              describe: 'the model whose layers the measurements name (zoo name or model.json)',
            })
            .option('layers', { type: 'string', describe: 'a layer inventory .json file instead of --model' }),
        (a) => validate(a as unknown as CommandArgs),
      )
      .command(
        'fit',
        "Fit a profile's free parameters to measured per-layer latencies (and energies) by least squares; prints the error before and after",
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        (s: Argv<any>) =>
          s
            .option('profile', {
              type: 'string',
              demandOption: true,
              describe: 'built-in profile name or profile .json file',
            })
            .option('measurements', {
              type: 'string',
              demandOption: true,
              describe: 'measurements CSV (layer or geometry, wBits, aBits, latencyMs[, energyUj])',
            })
            .option('model', {
              type: 'string',
              describe: 'the model whose layers the measurements name (zoo name or model.json)',
            })
            .option('layers', { type: 'string', describe: 'a layer inventory .json file instead of --model' })
            .option('free', {
              type: 'string',
              describe:
                'parameters to fit, comma-separated: throughput, throughput.I (mode I of a modes profile), clockMHz, bandwidth, overheadUs, staticPowerMw, computeEnergy, memoryEnergy, constants.NAME (default: throughput or clock, bandwidth, overhead; with energies also computeEnergy, staticPowerMw)',
            })
            .option('out', { type: 'string', describe: 'write the fitted profile here' })
            .option('id', { type: 'string', describe: 'id of the fitted profile (default: the original id)' }),
        (a) => fitCmd(a as unknown as CommandArgs),
      )
      .command(
        'simulate',
        'Cost one bit allocation of a model on a profile: per-layer latency, energy, bound; totals, size, peak memory, fit',
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        (s: Argv<any>) =>
          modelOptions(s)
            .option('wbits', { type: 'number', describe: 'weight bits for every layer' })
            .option('abits', { type: 'number', describe: 'activation bits for every layer' })
            .option('bits-file', {
              type: 'string',
              describe: 'per-layer bits: {"layers":[{"name","wBits","aBits"}, ...]}',
            }),
        (a) => simulateCmd(a as unknown as CommandArgs),
      )
      .command(
        'table',
        "Print a model's full per-layer cost table over all (wBits, aBits) pairs",
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        (s: Argv<any>) =>
          modelOptions(s)
            .option('bits', {
              type: 'string',
              describe: 'bit choices, comma-separated (default 1..8; a lookup profile: its measured widths)',
            })
            .option('csv', { type: 'boolean', default: false, describe: 'CSV on stdout' }),
        (a) => tableCmd(a as unknown as CommandArgs),
      )
      .demandCommand(1, 'name a profile subcommand: list, show, validate, fit, simulate, table'),
  handler: async () => {
    /* the subcommands do the work */
  },
};
