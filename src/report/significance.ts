/**
 * Statistics that say whether an agent earns its keep: per agent, the paired difference of its outcome
 * against random search and against the best uniform allocation that fits, seed by seed, with a 95%
 * confidence interval (Student's t over the seeds both have); which agent is best at the budget; and how
 * many episodes each needs to reach 99% of its final best.
 *
 * Pairing by seed matters: cells with the same seed share the float warm-up and the validation subset, so
 * the seed-to-seed spread largely cancels in the difference.
 */
import type { ReportCell, ReportGroup } from './load.js';
import { bestFeasibleSoFar, cellOutcome, meanStd, type MeanStd } from './stats.js';

/** Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (standard tables). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom (normal beyond 30). */
export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) return NaN;
  return df <= T975.length ? T975[df - 1] : 1.96;
}

export interface PairedDifference {
  /** Seeds present on both sides. */
  n: number;
  /** Mean of (agent - baseline) over the paired seeds, in accuracy units (0..1). */
  mean: number;
  std: number;
  /** 95% confidence interval of the mean difference; null with fewer than two pairs. */
  ci: [number, number] | null;
  /** Pairs where the agent was strictly better. */
  wins: number;
}

/** Paired difference of two per-seed maps (only seeds in both count). */
export function pairedDifference(
  a: ReadonlyMap<number, number>,
  b: ReadonlyMap<number, number>,
): PairedDifference | null {
  const diffs: number[] = [];
  let wins = 0;
  for (const [seed, va] of a) {
    const vb = b.get(seed);
    if (vb === undefined || !Number.isFinite(va) || !Number.isFinite(vb)) continue;
    diffs.push(va - vb);
    if (va > vb) wins++;
  }
  const m = meanStd(diffs);
  if (!m) return null;
  const half = m.n > 1 ? (tQuantile975(m.n - 1) * m.std) / Math.sqrt(m.n) : NaN;
  return { n: m.n, mean: m.mean, std: m.std, ci: m.n > 1 ? [m.mean - half, m.mean + half] : null, wins };
}

/** First episode at which the best feasible accuracy so far reaches `fraction` of the cell's final best. */
export function episodesToFractionOfBest(cell: ReportCell, fraction = 0.99): number | null {
  const curve = bestFeasibleSoFar(cell.episodes);
  const last = curve.length ? curve[curve.length - 1] : NaN;
  if (!Number.isFinite(last)) return null;
  const idx = curve.findIndex((v) => Number.isFinite(v) && v >= fraction * last);
  return idx < 0 ? null : idx + 1;
}

export interface AgentStatistics {
  agent: string;
  accuracy: MeanStd | null;
  vsRandom: PairedDifference | null;
  vsUniform: PairedDifference | null;
  /** Mean over seeds of the episodes to reach 99% of the cell's final best. */
  episodesTo99: MeanStd | null;
}

export interface GroupStatistics {
  agents: AgentStatistics[];
  /** The agent with the highest mean accuracy (null when no agent has an outcome). */
  bestAgent: string | null;
  /**
   * What "best uniform" means here: the `uniform` agent's fine-tuned outcome when the group has one (same
   * measure as the others), else the best feasible uniform point's validation accuracy at the shared weights.
   */
  uniformBaseline: 'uniform-agent' | 'uniform-points' | null;
  /** The series name the random baseline came from (null when the group has no random agent). */
  randomBaseline: string | null;
}

function outcomesBySeed(cells: readonly ReportCell[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const c of cells) {
    const o = cellOutcome(c);
    if (o) m.set(c.seed, o.accuracy);
  }
  return m;
}

/** Per seed, the highest validation accuracy among the feasible uniform points of that seed's cells. */
function bestFittingUniformBySeed(cells: readonly ReportCell[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const c of cells) {
    for (const p of c.uniform) {
      if (!p.feasible || p.accuracy === null || !Number.isFinite(p.accuracy)) continue;
      const prev = m.get(c.seed);
      if (prev === undefined || p.accuracy > prev) m.set(c.seed, p.accuracy);
    }
  }
  return m;
}

export function groupStatistics(g: ReportGroup): GroupStatistics {
  const bySeries = new Map(g.series.map((s) => [s.name, outcomesBySeed(s.cells)]));
  // a series without any finished or started cell (e.g. pending in a merged run) is no baseline
  const hasOutcomes = (s: { name: string }): boolean => (bySeries.get(s.name)?.size ?? 0) > 0;
  const random = g.series.find((s) => s.agentName === 'random' && hasOutcomes(s)) ?? null;
  const uniformAgent = g.series.find((s) => s.agentName === 'uniform' && hasOutcomes(s)) ?? null;
  const randomMap = random ? (bySeries.get(random.name) as Map<number, number>) : null;
  const uniformMap = uniformAgent
    ? (bySeries.get(uniformAgent.name) as Map<number, number>)
    : bestFittingUniformBySeed(g.cells);
  const uniformBaseline = uniformAgent ? 'uniform-agent' : uniformMap.size > 0 ? 'uniform-points' : null;
  const agents: AgentStatistics[] = g.series.map((s) => {
    const mine = bySeries.get(s.name) as Map<number, number>;
    const steps = s.cells.map((c) => episodesToFractionOfBest(c)).filter((v): v is number => v !== null);
    return {
      agent: s.name,
      accuracy: meanStd([...mine.values()]),
      vsRandom: randomMap && s !== random ? pairedDifference(mine, randomMap) : null,
      vsUniform: uniformBaseline && s !== uniformAgent ? pairedDifference(mine, uniformMap) : null,
      episodesTo99: meanStd(steps),
    };
  });
  let bestAgent: string | null = null;
  let bestMean = -Infinity;
  for (const a of agents) {
    if (a.accuracy && a.accuracy.mean > bestMean) {
      bestMean = a.accuracy.mean;
      bestAgent = a.agent;
    }
  }
  return { agents, bestAgent, uniformBaseline, randomBaseline: random?.name ?? null };
}

/** "+1.23 [+0.40, +2.06] (5/5)" in accuracy points; "—" when there is nothing to compare. */
export function formatDifference(d: PairedDifference | null): string {
  if (!d) return '—';
  const p = (v: number) => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(2)}`;
  const ci = d.ci ? ` [${p(d.ci[0])}, ${p(d.ci[1])}]` : '';
  return `${p(d.mean)}${ci} (${d.wins}/${d.n})`;
}

/** Columns the summary tables add after their own, one value per agent. */
export const STATISTICS_HEADER = ['vs random', 'vs best uniform', 'episodes to 99% of best'];

/** The statistics columns of one agent's summary row. */
export function statisticsCells(s: GroupStatistics, agent: string): string[] {
  const a = s.agents.find((x) => x.agent === agent);
  if (!a) return STATISTICS_HEADER.map(() => '—');
  return [
    formatDifference(a.vsRandom),
    formatDifference(a.vsUniform),
    a.episodesTo99 ? a.episodesTo99.mean.toFixed(1) : '—',
  ];
}

/** The sentence under the statistics table: what was compared with what. */
export function statisticsNote(s: GroupStatistics): string {
  const uniform =
    s.uniformBaseline === 'uniform-agent'
      ? 'the uniform agent’s fine-tuned result'
      : s.uniformBaseline === 'uniform-points'
        ? 'the most accurate uniform allocation that fits the budget (validation accuracy at the shared weights, not fine-tuned)'
        : 'no uniform reference';
  const random = s.randomBaseline ? `random search (${s.randomBaseline})` : 'no random-search cells';
  return (
    `"vs" columns: accuracy points, paired by seed: mean [95% CI, Student's t] (seeds where the agent was better / pairs). ` +
    `Baselines: ${random}; ${uniform}. Best at this budget (highest mean accuracy): ${s.bestAgent ?? '—'}.`
  );
}
