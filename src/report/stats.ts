/** Aggregates for reports: mean/std over seeds, learning curves, Pareto fronts, per-agent summaries. */
import type { BitConfig } from '../models/layer-info.js';
import { isBetterEpisode, type EpisodeRecord, type UniformPoint } from '../run/run-store.js';
import type { AgentSeries, ReportCell, ReportGroup } from './load.js';

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (0 for one value). */
  std: number;
  n: number;
}

export function meanStd(values: readonly number[]): MeanStd | null {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std, n: v.length };
}

export interface CurvePoint {
  episode: number;
  mean: number;
  min: number;
  max: number;
  /** Seeds that reached this episode. */
  n: number;
}

/** Per-episode mean and min-max over the seeds that reached each episode. */
export function curveOverSeeds(perSeed: readonly (readonly number[])[]): CurvePoint[] {
  const len = Math.max(0, ...perSeed.map((s) => s.length));
  const out: CurvePoint[] = [];
  for (let i = 0; i < len; i++) {
    const vals = perSeed.map((s) => s[i]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (vals.length === 0) continue;
    out.push({
      episode: i + 1,
      mean: vals.reduce((a, b) => a + b, 0) / vals.length,
      min: Math.min(...vals),
      max: Math.max(...vals),
      n: vals.length,
    });
  }
  return out;
}

/** Trailing moving average over `window` values. */
export function movingAverage(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

/** Best feasible accuracy so far at each episode (NaN until the first feasible evaluated episode). */
export function bestFeasibleSoFar(episodes: readonly EpisodeRecord[]): number[] {
  let best: EpisodeRecord | null = null;
  return episodes.map((e) => {
    if (isBetterEpisode(e, best)) best = e;
    return best?.accuracy ?? NaN;
  });
}

/** Window of the reward moving average for curves of `episodes` length. */
export function rewardWindow(episodes: number): number {
  return Math.max(1, Math.round(episodes / 25));
}

/**
 * Pareto front of (cost, accuracy) points: lower cost and higher accuracy are better. Returns the
 * non-dominated points sorted by cost (accuracy strictly rising along the front).
 */
export function paretoFront<T extends { x: number; y: number }>(points: readonly T[]): T[] {
  const sorted = points
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
    .sort((a, b) => a.x - b.x || b.y - a.y);
  const front: T[] = [];
  let bestY = -Infinity;
  for (const p of sorted) {
    if (p.y > bestY) {
      front.push(p);
      bestY = p.y;
    }
  }
  return front;
}

export interface CellOutcome {
  cell: ReportCell;
  /** Test accuracy after the fine-tune (final.json), else the best validation accuracy. */
  accuracy: number;
  latencyMs: number;
  energyUj: number;
  sizeBytes: number;
  peakMemoryBytes: number;
  episodesToBest: number;
  wallSeconds: number;
  bits: BitConfig;
  layerNames?: string[];
  /** Where the figures come from. */
  source: 'final' | 'best';
}

/** The outcome of a cell: final.json when written, else best.json / the best feasible episode; null when none. */
export function cellOutcome(c: ReportCell): CellOutcome | null {
  const wallFromEpisodes = c.episodes.reduce((a, e) => a + e.wallMs, 0) / 1000;
  if (c.final) {
    return {
      cell: c,
      accuracy: c.final.testAccuracy,
      latencyMs: c.final.latencyMs,
      energyUj: c.final.energyUj,
      sizeBytes: c.final.sizeBytes,
      peakMemoryBytes: c.final.peakMemoryBytes,
      episodesToBest: c.final.episodesToBest,
      wallSeconds: c.final.wallSeconds,
      bits: c.final.bits,
      ...(c.final.layerNames ? { layerNames: c.final.layerNames } : {}),
      source: 'final',
    };
  }
  let best = c.best;
  if (!best) {
    for (const e of c.episodes) {
      if (!e.feasible || e.accuracy === null) continue;
      if (
        !best ||
        e.accuracy > (best.accuracy ?? -Infinity) ||
        (e.accuracy === best.accuracy && e.latencyMs < best.latencyMs)
      )
        best = e;
    }
  }
  if (!best || best.accuracy === null) return null;
  return {
    cell: c,
    accuracy: best.accuracy,
    latencyMs: best.latencyMs,
    energyUj: best.energyUj,
    sizeBytes: best.sizeBytes,
    peakMemoryBytes: best.peakMemoryBytes,
    episodesToBest: best.episode,
    wallSeconds: wallFromEpisodes,
    bits: best.bits,
    source: 'best',
  };
}

export interface AgentSummary {
  series: AgentSeries;
  seeds: number;
  done: number;
  outcomes: CellOutcome[];
  accuracy: MeanStd | null;
  latencyMs: MeanStd | null;
  energyUj: MeanStd | null;
  sizeBytes: MeanStd | null;
  episodesToBest: MeanStd | null;
  wallSeconds: MeanStd | null;
  /** True when some figures are validation accuracies of unfinished cells. */
  partial: boolean;
  /** The outcome with the highest accuracy (ties: lower latency). */
  best: CellOutcome | null;
}

export function summariseSeries(s: AgentSeries): AgentSummary {
  const outcomes = s.cells.map(cellOutcome).filter((o): o is CellOutcome => o !== null);
  const pick = (f: (o: CellOutcome) => number) => meanStd(outcomes.map(f));
  let best: CellOutcome | null = null;
  for (const o of outcomes)
    if (!best || o.accuracy > best.accuracy || (o.accuracy === best.accuracy && o.latencyMs < best.latencyMs)) best = o;
  return {
    series: s,
    seeds: s.cells.length,
    done: s.cells.filter((c) => c.status === 'done').length,
    outcomes,
    accuracy: pick((o) => o.accuracy),
    latencyMs: pick((o) => o.latencyMs),
    energyUj: pick((o) => o.energyUj),
    sizeBytes: pick((o) => o.sizeBytes),
    episodesToBest: pick((o) => o.episodesToBest),
    wallSeconds: pick((o) => o.wallSeconds),
    partial: outcomes.some((o) => o.source === 'best'),
    best,
  };
}

export interface UniformSummary {
  label: string;
  wBits: number;
  aBits: number;
  accuracy: number | null;
  latencyMs: number;
  energyUj: number;
  sizeBytes: number;
  /** Cells the point was averaged over. */
  n: number;
}

/** Uniform-precision points of a group, averaged over the cells that measured them. */
export function uniformPoints(g: ReportGroup): UniformSummary[] {
  const byLabel = new Map<string, UniformPoint[]>();
  for (const c of g.cells) {
    for (const p of c.uniform) {
      const b = Array.isArray(p.bits) ? (p.bits[0] as { wBits: number; aBits: number }) : p.bits;
      if (!b) continue;
      const label = `W${b.wBits}A${b.aBits}`;
      const list = byLabel.get(label) ?? [];
      list.push(p);
      byLabel.set(label, list);
    }
  }
  const out: UniformSummary[] = [];
  for (const [label, list] of byLabel) {
    const first = list[0];
    const b = Array.isArray(first.bits) ? (first.bits[0] as { wBits: number; aBits: number }) : first.bits;
    const acc = meanStd(list.map((p) => (p.accuracy === null ? NaN : p.accuracy)));
    out.push({
      label,
      wBits: b.wBits,
      aBits: b.aBits,
      accuracy: acc ? acc.mean : null,
      latencyMs: meanStd(list.map((p) => p.latencyMs))?.mean ?? NaN,
      energyUj: meanStd(list.map((p) => p.energyUj))?.mean ?? NaN,
      sizeBytes: meanStd(list.map((p) => p.sizeBytes))?.mean ?? NaN,
      n: list.length,
    });
  }
  return out.sort((a, b) => b.wBits - a.wBits || b.aBits - a.aBits);
}
