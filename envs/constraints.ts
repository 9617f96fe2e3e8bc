/**
 * Hardware budgets ("constraints") on an allocation's cost, and the modes that enforce them.
 *
 * Grammar of a constraint string (whitespace ignored, metric and unit case-insensitive):
 *
 *   <metric> <= <positive number><unit>
 *   metric: latency | energy | size | peak-memory
 *   unit:   x or %            relative to the reference W8A8 network's cost (0.5x = 50%)
 *           latency:          s | ms | us | µs | ns
 *           energy:           J | mJ | uJ | µJ | nJ
 *           size/peak-memory: B | KB | KiB | MB | MiB | GB | GiB   (KB = KiB = 1024 bytes)
 *
 * Examples: `latency<=0.5x`, `energy<=0.4x`, `size<=200KB`, `size<=0.25x`, `peak-memory<=320KB`,
 * `latency<=2ms`, `energy<=50uJ`.
 *
 * Modes (what happens to an allocation over budget at the end of an episode):
 *   lower   HAQ: walk the layers from last to first, lowering activation then weight bits by one
 *           choice (never below the minimum), re-checking after every change, until feasible
 *           or nothing can be lowered.
 *   penalty the allocation is evaluated as chosen; the reward loses
 *           penaltyScale x sum over constraints of max(0, cost / limit - 1).
 *   reject  AMED: an infeasible allocation is not evaluated and gets a fixed low reward.
 */
import { UserError } from '../src/errors.js';
import type { AllocationCost } from '../src/hardware/api.js';

export type CostMetric = 'latency' | 'energy' | 'size' | 'peakMemory';
export const COST_METRICS: readonly CostMetric[] = ['latency', 'energy', 'size', 'peakMemory'];

export type ConstraintMode = 'lower' | 'penalty' | 'reject';
export const CONSTRAINT_MODES: readonly ConstraintMode[] = ['lower', 'penalty', 'reject'];

/** A parsed budget. `relative`: value is a fraction of the reference cost; else an absolute value in base units. */
export interface Constraint {
  metric: CostMetric;
  kind: 'relative' | 'absolute';
  /** Fraction of the reference (relative) or value in ms / uJ / bytes / bytes (absolute). */
  value: number;
  /** The text it came from (for messages). */
  text: string;
}

/** A constraint with its limit in base units (ms, uJ, bytes, bytes) for one reference cost. */
export interface ResolvedConstraint extends Constraint {
  limit: number;
}

export const CONSTRAINT_GRAMMAR =
  '<metric><=<number><unit> with metric latency|energy|size|peak-memory and unit x or % (relative to W8A8), ' +
  'or s|ms|us|ns for latency, J|mJ|uJ|nJ for energy, B|KB|MB|GB for size and peak-memory ' +
  "(e.g. 'latency<=0.5x', 'size<=200KB', 'energy<=50uJ')";

const METRIC_NAMES: Record<string, CostMetric> = {
  latency: 'latency',
  energy: 'energy',
  size: 'size',
  'peak-memory': 'peakMemory',
  peakmemory: 'peakMemory',
};

/** Factor from the unit to the metric's base unit. */
const UNITS: Record<CostMetric, Record<string, number>> = {
  latency: { s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 },
  energy: { j: 1e6, mj: 1e3, uj: 1, µj: 1, nj: 1e-3 },
  size: { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 },
  peakMemory: { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 },
};

export interface ConstraintSource {
  file?: string;
  /** Flag or JSON path, e.g. `--constraint` or `$.constraints[0]`. */
  field?: string;
}

/** Parses one budget string; a malformed one is a UserError that states the grammar. */
export function parseConstraint(text: string, where: ConstraintSource = {}): Constraint {
  const bad = (why: string): UserError =>
    new UserError(`bad constraint '${text}': ${why}`, { ...where, expected: CONSTRAINT_GRAMMAR });
  if (typeof text !== 'string') throw bad('not a string');
  const compact = text.replace(/\s+/g, '');
  const m = /^([A-Za-z-]+)<=([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)([A-Za-zµ%]+)$/.exec(compact);
  if (!m) throw bad('does not match the grammar');
  const [, metricText, numText, unitText] = m as unknown as [string, string, string, string];
  const metric = METRIC_NAMES[metricText.toLowerCase()];
  if (!metric) throw bad(`unknown metric '${metricText}'`);
  const num = Number(numText);
  if (!Number.isFinite(num) || num <= 0) throw bad('the limit must be a positive number');
  const unit = unitText.toLowerCase();
  if (unit === 'x') return { metric, kind: 'relative', value: num, text };
  if (unit === '%') return { metric, kind: 'relative', value: num / 100, text };
  const factor = UNITS[metric][unit];
  if (factor === undefined) {
    throw bad(`unit '${unitText}' does not fit ${metricText} (use x, %, or ${Object.keys(UNITS[metric]).join(', ')})`);
  }
  return { metric, kind: 'absolute', value: num * factor, text };
}

/** Parses a list of budget strings (or passes parsed ones through); `field` gets `[i]` appended. */
export function parseConstraints(items: readonly (string | Constraint)[], where: ConstraintSource = {}): Constraint[] {
  return items.map((c, i) =>
    typeof c === 'string' ? parseConstraint(c, { ...where, field: `${where.field ?? 'constraints'}[${i}]` }) : c,
  );
}

export function metricValue(cost: AllocationCost, metric: CostMetric): number {
  switch (metric) {
    case 'latency':
      return cost.latencyMs;
    case 'energy':
      return cost.energyUj;
    case 'size':
      return cost.sizeBytes;
    case 'peakMemory':
      return cost.peakMemoryBytes;
  }
}

/** Fixes every limit in base units against the reference (W8A8) cost. */
export function resolveConstraints(
  constraints: readonly Constraint[],
  reference: AllocationCost,
): ResolvedConstraint[] {
  return constraints.map((c) => ({
    ...c,
    limit: c.kind === 'relative' ? c.value * metricValue(reference, c.metric) : c.value,
  }));
}

/** Relative tolerance of the budget check, so a cost equal to its limit up to float rounding passes. */
export const BUDGET_TOLERANCE = 1e-9;

export function meetsConstraint(cost: AllocationCost, c: ResolvedConstraint): boolean {
  return metricValue(cost, c.metric) <= c.limit * (1 + BUDGET_TOLERANCE);
}

/** True when every budget is met (the device's own limits, `cost.fits`, are checked by the caller). */
export function meetsAll(cost: AllocationCost, constraints: readonly ResolvedConstraint[]): boolean {
  return constraints.every((c) => meetsConstraint(cost, c));
}

/** Sum over constraints of the relative excess max(0, cost / limit - 1): the penalty mode's measure. */
export function relativeExcess(cost: AllocationCost, constraints: readonly ResolvedConstraint[]): number {
  let total = 0;
  for (const c of constraints) {
    const v = metricValue(cost, c.metric);
    if (c.limit <= 0) total += v > 0 ? 1 : 0;
    else total += Math.max(0, v / c.limit - 1);
  }
  return total;
}

export function parseConstraintMode(mode: string, where: ConstraintSource = {}): ConstraintMode {
  if (!(CONSTRAINT_MODES as readonly string[]).includes(mode)) {
    throw new UserError(`unknown constraint mode '${mode}'`, { ...where, expected: CONSTRAINT_MODES.join('|') });
  }
  return mode as ConstraintMode;
}
