/**
 * Fitting a profile to measurements, and the error of a profile against them.
 *
 * `predict` costs every measured (layer, wBits, aBits) on a profile. `fitProfile` adjusts a profile's
 * free parameters (named below) to minimise the sum of squared relative errors of the predicted
 * latencies (and energies, when measured): Levenberg-Marquardt on the logarithms of the parameters
 * (they stay positive), with central-difference derivatives through the whole cost model (roofline
 * kinks included). Before fitting it checks that the fit is determined: at least as many measured
 * figures as free parameters, every free parameter moves some prediction, and no free parameter's
 * effect is a combination of the others' (rank of the Jacobian); otherwise it refuses with a
 * UserError saying which parameter cannot be fitted from these measurements.
 */
import { UserError } from '../errors.js';
import type { LayerInfo } from '../models/layer-info.js';
import { buildCostTable } from './cost-table.js';
import type { Measurement } from './measurements.js';
import type { ComputeSpec, ModesSpec, ProfileSpec } from './profile-types.js';
import { parseProfile } from './profiles.js';

/** A free parameter: read from and written to a profile. Multipliers scale a group of fields (1 = as written). */
interface ParameterDef {
  readonly name: string;
  readonly describe: string;
  readonly affects: 'latency' | 'energy';
  /** False when the profile has no such field. */
  applies(spec: ProfileSpec): boolean;
  /** The starting value (positive). */
  initial(spec: ProfileSpec, m: readonly Measurement[]): number;
  /** Writes `v` into `spec` (a fresh copy of the base profile). */
  set(spec: ProfileSpec, v: number): void;
  /** What the value means in the profile, for the report. */
  show(spec: ProfileSpec): string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : 0;
}

function rateFields(c: ComputeSpec): { get: () => number[]; scale: (f: number) => void } | null {
  switch (c.model) {
    case 'modes':
      return {
        get: () => c.modes.map((m) => m.macsPerCycle),
        scale: (f) => c.modes.forEach((m) => (m.macsPerCycle *= f)),
      };
    case 'bit-fusion':
      return { get: () => [c.macsPerCycleAt8x8], scale: (f) => (c.macsPerCycleAt8x8 *= f) };
    case 'bit-serial':
      return { get: () => [c.serialMacsPerCycle], scale: (f) => (c.serialMacsPerCycle *= f) };
    default:
      return null;
  }
}

function energyFields(c: ComputeSpec): ((f: number) => void) | null {
  switch (c.model) {
    case 'modes':
      return (f) => c.modes.forEach((m) => (m.pJPerMac *= f));
    case 'bit-fusion':
      return (f) => (c.pJPerCycle *= f);
    case 'bit-serial':
      return (f) => (c.pJPerSerialMac *= f);
    case 'systolic':
      return (f) => (c.pJPerMac *= f);
    default:
      return null;
  }
}

const fmt = (x: number) => String(Number(x.toPrecision(5)));

const BUILTIN_PARAMETERS: readonly ParameterDef[] = [
  {
    name: 'throughput',
    describe: 'multiplier on the compute rate (MACs per cycle of every mode, macsPerCycleAt8x8, serialMacsPerCycle)',
    affects: 'latency',
    applies: (s) => rateFields(s.compute) !== null,
    initial: () => 1,
    set: (s, v) => rateFields(s.compute)?.scale(v),
    show: (s) => `MACs/cycle ${(rateFields(s.compute)?.get() ?? []).map(fmt).join(', ')}`,
  },
  {
    name: 'clockMHz',
    describe: 'the clock (compute and per-layer overhead cycles)',
    affects: 'latency',
    applies: () => true,
    initial: (s) => s.clockMHz,
    set: (s, v) => (s.clockMHz = v),
    show: (s) => `clockMHz ${fmt(s.clockMHz)}`,
  },
  {
    name: 'bandwidth',
    describe: 'multiplier on the off-chip bandwidth (and on every on-chip buffer port of memory.model scalesim)',
    affects: 'latency',
    applies: (s) => s.memory !== undefined,
    initial: () => 1,
    set: (s, v) => {
      if (!s.memory) return;
      s.memory.offChip.bandwidthGBps *= v;
      for (const b of s.memory.onChip ?? []) if (b.bandwidthGBps !== undefined) b.bandwidthGBps *= v;
    },
    show: (s) =>
      `bandwidthGBps ${fmt(s.memory?.offChip.bandwidthGBps ?? 0)}${(s.memory?.onChip ?? [])
        .filter((b) => b.bandwidthGBps !== undefined)
        .map((b) => `, ${b.name} ${fmt(b.bandwidthGBps as number)}`)
        .join('')}`,
  },
  {
    name: 'overheadUs',
    describe: 'perLayerOverheadUs, microseconds added to every layer',
    affects: 'latency',
    applies: () => true,
    initial: (s, m) =>
      s.perLayerOverheadUs && s.perLayerOverheadUs > 0
        ? s.perLayerOverheadUs
        : Math.max(1e-3, 0.05 * median(m.map((x) => x.latencyMs)) * 1000),
    set: (s, v) => (s.perLayerOverheadUs = v),
    show: (s) => `perLayerOverheadUs ${fmt(s.perLayerOverheadUs ?? 0)}`,
  },
  {
    name: 'staticPowerMw',
    describe: 'staticPowerMw, power drawn whatever the work',
    affects: 'energy',
    applies: () => true,
    initial: (s, m) => {
      if (s.staticPowerMw && s.staticPowerMw > 0) return s.staticPowerMw;
      const e = m.filter((x) => x.energyUj !== undefined);
      return Math.max(
        1e-3,
        (0.1 * median(e.map((x) => x.energyUj as number))) / Math.max(1e-12, median(e.map((x) => x.latencyMs))),
      );
    },
    set: (s, v) => (s.staticPowerMw = v),
    show: (s) => `staticPowerMw ${fmt(s.staticPowerMw ?? 0)}`,
  },
  {
    name: 'computeEnergy',
    describe: 'multiplier on the compute energy (pJPerMac, pJPerCycle, pJPerSerialMac)',
    affects: 'energy',
    applies: (s) => energyFields(s.compute) !== null,
    initial: () => 1,
    set: (s, v) => energyFields(s.compute)?.(v),
    show: () => 'compute pJ fields',
  },
  {
    name: 'memoryEnergy',
    describe: 'multiplier on the memory energy (off-chip pJPerBit and every buffer read/write pJPerBit)',
    affects: 'energy',
    applies: (s) => s.memory !== undefined,
    initial: () => 1,
    set: (s, v) => {
      if (!s.memory) return;
      s.memory.offChip.pJPerBit *= v;
      for (const b of s.memory.onChip ?? []) {
        b.readPJPerBit *= v;
        b.writePJPerBit *= v;
      }
    },
    show: (s) => `off-chip pJPerBit ${fmt(s.memory?.offChip.pJPerBit ?? 0)}`,
  },
];

/** Every parameter name `--free` accepts for a profile (expression profiles add constants.NAME). */
export function fitParameterNames(spec: ProfileSpec): string[] {
  const names = BUILTIN_PARAMETERS.filter((p) => p.applies(spec)).map((p) => p.name);
  if (spec.compute.model === 'expression')
    names.push(...Object.keys(spec.compute.constants ?? {}).map((k) => `constants.${k}`));
  if (spec.compute.model === 'modes') names.push(...spec.compute.modes.map((_, i) => `throughput.${i}`));
  return names;
}

function parameterDef(name: string, spec: ProfileSpec): ParameterDef | null {
  const b = BUILTIN_PARAMETERS.find((p) => p.name === name);
  if (b) return b.applies(spec) ? b : null;
  const t = /^throughput\.(\d+)$/.exec(name);
  if (t && spec.compute.model === 'modes' && Number(t[1]) < spec.compute.modes.length) {
    const i = Number(t[1]);
    const mode = (s: ProfileSpec) => (s.compute as ModesSpec).modes[i];
    const label = (s: ProfileSpec) => mode(s).name ?? `W${mode(s).wBits}A${mode(s).aBits}`;
    return {
      name,
      describe: `multiplier on the MACs per cycle of mode ${i}`,
      affects: 'latency',
      applies: () => true,
      initial: () => 1,
      set: (s, v) => (mode(s).macsPerCycle *= v),
      show: (s) => `${label(s)} MACs/cycle ${fmt(mode(s).macsPerCycle)}`,
    };
  }
  const m = /^constants\.(.+)$/.exec(name);
  if (
    m &&
    spec.compute.model === 'expression' &&
    spec.compute.constants &&
    m[1] !== undefined &&
    m[1] in spec.compute.constants
  ) {
    const key = m[1];
    const c = (s: ProfileSpec) =>
      (s.compute as Extract<ComputeSpec, { model: 'expression' }>).constants as Record<string, number>;
    return {
      name,
      describe: `the expression constant ${key}`,
      affects: 'latency',
      applies: () => true,
      initial: (s) => (c(s)[key] > 0 ? c(s)[key] : 1),
      set: (s, v) => (c(s)[key] = v),
      show: (s) => `${key} ${fmt(c(s)[key])}`,
    };
  }
  return null;
}

/** The parameters fitted when --free is not given: the compute rate (or the clock), bandwidth, overhead; with energies, compute energy and static power. */
export function defaultFreeParameters(spec: ProfileSpec, withEnergy: boolean): string[] {
  const out = [rateFields(spec.compute) ? 'throughput' : 'clockMHz'];
  if (spec.memory) out.push('bandwidth');
  out.push('overheadUs');
  if (withEnergy) {
    if (energyFields(spec.compute)) out.push('computeEnergy');
    out.push('staticPowerMw');
  }
  return out;
}

export interface Prediction {
  latencyMs: number[];
  energyUj: number[];
}

/** Costs every measurement on a profile (spec). `baseDir` resolves a lookup table's path. */
export function predict(
  spec: ProfileSpec,
  measurements: readonly Measurement[],
  label: string,
  baseDir?: string,
  quiet = false,
): Prediction {
  const profile = parseProfile(spec, label, baseDir);
  const layers: LayerInfo[] = [];
  const index = new Map<LayerInfo, number>();
  for (const m of measurements) {
    if (!index.has(m.layer)) {
      index.set(m.layer, layers.length);
      layers.push(m.layer);
    }
  }
  const bits = [...new Set(measurements.flatMap((m) => [m.wBits, m.aBits]))];
  const table = buildCostTable(profile, layers, bits, { quiet });
  const latencyMs: number[] = [];
  const energyUj: number[] = [];
  for (const m of measurements) {
    const c = table.layerCost(index.get(m.layer) as number, m.wBits, m.aBits);
    latencyMs.push(c.latencyMs);
    energyUj.push(c.energyUj);
  }
  return { latencyMs, energyUj };
}

export interface ErrorSummary {
  /** Mean absolute percentage error over the rows, %. */
  mapePct: number;
  /** Largest absolute percentage error, % (signed value at that row in maxRow). */
  maxPct: number;
  maxRow: number;
  /** Error of the summed figure (e.g. the whole network's latency), %. */
  totalPct: number;
}

export function errorSummary(measured: readonly number[], predicted: readonly number[]): ErrorSummary {
  let sum = 0;
  let max = -1;
  let maxRow = 0;
  let mt = 0;
  let pt = 0;
  measured.forEach((m, i) => {
    const p = predicted[i];
    const e = m === 0 ? (p === 0 ? 0 : Infinity) : Math.abs(p / m - 1) * 100;
    sum += e;
    if (e > max) {
      max = e;
      maxRow = i;
    }
    mt += m;
    pt += p;
  });
  return {
    mapePct: measured.length ? sum / measured.length : 0,
    maxPct: Math.max(0, max),
    maxRow,
    totalPct: mt === 0 ? 0 : (pt / mt - 1) * 100,
  };
}

export interface FitResult {
  free: { name: string; describe: string; before: number; after: number; before_: string; after_: string }[];
  /** Parameters of the default set left out because they move no prediction on these measurements. */
  dropped: string[];
  before: Prediction;
  after: Prediction;
  spec: ProfileSpec;
  iterations: number;
}

function residuals(p: Prediction, m: readonly Measurement[]): number[] {
  const r: number[] = [];
  m.forEach((x, i) => r.push(p.latencyMs[i] / x.latencyMs - 1));
  m.forEach((x, i) => {
    if (x.energyUj !== undefined && x.energyUj > 0) r.push(p.energyUj[i] / x.energyUj - 1);
  });
  return r;
}

/** Solves A x = b (small, dense) by Gaussian elimination with partial pivoting. */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    [M[c], M[piv]] = [M[piv], M[c]];
    const pr = M[c];
    const d = pr[c];
    if (Math.abs(d) < 1e-300) continue;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const row = M[r];
      const f = row[c] / d;
      if (f !== 0) for (let k = c; k <= n; k++) row[k] = row[k] - f * pr[k];
    }
  }
  return M.map((row, i) => {
    const d = row[i];
    return Math.abs(d) < 1e-300 ? 0 : row[n] / d;
  });
}

export interface FitOptions {
  /** Free parameter names; default defaultFreeParameters. */
  free?: readonly string[];
  /** Labels errors and the profile being evaluated. */
  label: string;
  baseDir?: string;
  maxIterations?: number;
}

/** Fits the free parameters of `base` to `measurements` (see the module comment). */
export function fitProfile(base: ProfileSpec, measurements: readonly Measurement[], opts: FitOptions): FitResult {
  if (base.compute.model === 'lookup') {
    throw new UserError('a lookup profile has no parameters to fit (its figures are the measurements)', {
      file: opts.label,
      field: '--profile',
      expected: 'an analytic profile (modes, bit-fusion, bit-serial, systolic, expression)',
    });
  }
  const withEnergy = measurements.some((m) => m.energyUj !== undefined);
  const explicit = opts.free !== undefined;
  const names = [...new Set(opts.free ?? defaultFreeParameters(base, withEnergy))];
  const available = fitParameterNames(base);
  const defs: ParameterDef[] = names.map((n) => {
    const d = parameterDef(n, base);
    if (!d)
      throw new UserError(`'${n}' is not a parameter of this profile that can be fitted`, {
        field: '--free',
        expected: `a comma-separated list of ${available.join(', ')}`,
      });
    return d;
  });
  if (defs.length === 0) throw new UserError('no free parameters', { field: '--free', expected: available.join(', ') });

  const evalAt = (defsNow: readonly ParameterDef[], theta: readonly number[]): { spec: ProfileSpec; p: Prediction } => {
    const spec = structuredClone(base);
    defsNow.forEach((d, j) => d.set(spec, Math.exp(theta[j])));
    return { spec, p: predict(spec, measurements, opts.label, opts.baseDir, true) };
  };
  const jacobian = (defsNow: readonly ParameterDef[], theta: number[], h = 1e-4): number[][] => {
    const cols: number[][] = [];
    for (let j = 0; j < defsNow.length; j++) {
      const up = [...theta];
      const dn = [...theta];
      up[j] = up[j] + h;
      dn[j] = dn[j] - h;
      const ru = residuals(evalAt(defsNow, up).p, measurements);
      const rd = residuals(evalAt(defsNow, dn).p, measurements);
      cols.push(ru.map((v, i) => (v - rd[i]) / (2 * h)));
    }
    return cols; // column-major: cols[j][i] = d r_i / d theta_j
  };

  let active = defs;
  let theta = active.map((d) => Math.log(d.initial(base, measurements)));
  const nFigures = residuals(evalAt(active, theta).p, measurements).length;
  // parameters that move no prediction
  let J = jacobian(active, theta);
  const norm = (c: number[]) => Math.sqrt(c.reduce((s, v) => s + v * v, 0));
  const dead = active.filter((_, j) => norm(J[j]) < 1e-9);
  const dropped: string[] = [];
  if (dead.length) {
    if (explicit) {
      throw new UserError(
        `cannot fit ${dead.map((d) => d.name).join(', ')}: ${dead.length === 1 ? 'it changes' : 'they change'} none of the measured ${withEnergy ? 'latencies or energies' : 'latencies'}` +
          ` (e.g. bandwidth when no measured layer is memory-bound, staticPowerMw without energies)`,
        {
          field: '--free',
          expected: 'parameters the measurements depend on; leave these out or add measurements where they matter',
        },
      );
    }
    dropped.push(...dead.map((d) => d.name));
    const keep = active.map((d, j) => [d, j] as const).filter(([d]) => !dead.includes(d));
    active = keep.map(([d]) => d);
    theta = keep.map(([, j]) => theta[j]);
    J = keep.map(([, j]) => J[j]);
    if (active.length === 0)
      throw new UserError(`none of the free parameters (${names.join(', ')}) changes the measured figures`, {
        field: '--free',
      });
  }
  if (nFigures < active.length) {
    throw new UserError(
      `under-determined fit: ${nFigures} measured figure${nFigures === 1 ? '' : 's'} for ${active.length} free parameters (${active.map((d) => d.name).join(', ')})`,
      {
        field: '--free',
        expected:
          'at least as many measurements (latencies + energies) as free parameters; free fewer parameters or measure more layers or bit-widths',
      },
    );
  }
  // rank: Gram-Schmidt on the normalised columns
  const basis: number[][] = [];
  for (let j = 0; j < active.length; j++) {
    const c = J[j];
    let v = c.map((x) => x / norm(c));
    for (const b of basis) {
      const dot = v.reduce((s, x, i) => s + x * b[i], 0);
      v = v.map((x, i) => x - dot * b[i]);
    }
    const n = norm(v);
    if (n < 1e-6) {
      throw new UserError(
        `under-determined fit: the measurements cannot tell ${active[j].name} apart from ${active
          .slice(0, j)
          .map((d) => d.name)
          .join(', ')} (they change the predictions in the same proportions)`,
        {
          field: '--free',
          expected:
            'fewer free parameters, or measurements where they act differently (memory- and compute-bound layers, several bit-widths)',
        },
      );
    }
    basis.push(v.map((x) => x / n));
  }

  const cost = (r: number[]) => r.reduce((s, v) => s + v * v, 0);
  let cur = evalAt(active, theta);
  let r = residuals(cur.p, measurements);
  let c = cost(r);
  let lambda = 1e-3;
  let it = 0;
  const maxIt = opts.maxIterations ?? 200;
  let converged = false;
  for (; it < maxIt && c > 1e-24 && !converged; it++) {
    J = jacobian(active, theta);
    const p = active.length;
    const JtJ = Array.from({ length: p }, (_, a) =>
      Array.from({ length: p }, (_, b) => J[a].reduce((s, v, i) => s + v * J[b][i], 0)),
    );
    const Jtr = Array.from({ length: p }, (_, a) => J[a].reduce((s, v, i) => s + v * r[i], 0));
    let improved = false;
    for (let tries = 0; tries < 20; tries++) {
      const A = JtJ.map((row, a) => row.map((v, b) => (a === b ? v * (1 + lambda) + 1e-15 : v)));
      const step = solve(
        A,
        Jtr.map((v) => -v),
      );
      const next = theta.map((t, j) => t + Math.max(-5, Math.min(5, step[j])));
      const cand = evalAt(active, next);
      const rn = residuals(cand.p, measurements);
      const cn = cost(rn);
      if (cn < c) {
        const rel = (c - cn) / Math.max(c, 1e-300);
        theta = next;
        cur = cand;
        r = rn;
        c = cn;
        lambda = Math.max(lambda / 3, 1e-12);
        improved = true;
        converged = rel < 1e-10;
        break;
      }
      lambda *= 4;
    }
    if (!improved) break;
  }
  const before = predict(base, measurements, opts.label, opts.baseDir, true);
  const baseShown = (d: ParameterDef) => d.show(base);
  return {
    free: active.map((d, j) => ({
      name: d.name,
      describe: d.describe,
      before: d.initial(base, measurements),
      after: Math.exp(theta[j]),
      before_: baseShown(d),
      after_: d.show(cur.spec),
    })),
    dropped,
    before,
    after: cur.p,
    spec: cur.spec,
    iterations: it,
  };
}
