/**
 * Reads run directories for reports (read-only: no lock, no repair; a torn last episode line of a run that is
 * still going is skipped) and groups their cells by (profile, budget) and agent.
 */
import { basename } from 'node:path';
import { UserError } from '../errors.js';
import {
  openRun,
  readEpisodes,
  type CellFile,
  type CellStatus,
  type EpisodeRecord,
  type FinalRecord,
  type RunInfo,
  type UniformPoint,
} from '../run/run-store.js';
import type { Experiment } from '../experiment/experiment.js';

export interface ReportCell {
  /** Name of the run directory the cell belongs to. */
  run: string;
  id: string;
  /** Agent label (the series name). */
  agent: string;
  agentName: string;
  profile: string;
  budget: string;
  /** The budget's constraints, e.g. "latency<=0.35x". */
  budgetText: string;
  seed: number;
  status: CellStatus;
  file: CellFile;
  episodes: EpisodeRecord[];
  best: EpisodeRecord | null;
  final: FinalRecord | null;
  uniform: UniformPoint[];
}

export interface ReportRun {
  dir: string;
  name: string;
  info: RunInfo;
  experiment: Experiment;
  cells: ReportCell[];
}

export function loadRuns(dirs: readonly string[]): ReportRun[] {
  if (dirs.length === 0) throw new UserError('no run directory given', { expected: 'one or more run directories' });
  const names = new Set<string>();
  return dirs.map((dir) => {
    const store = openRun(dir, { readOnly: true });
    let name = basename(store.dir);
    for (let i = 2; names.has(name); i++) name = `${basename(store.dir)}-${i}`;
    names.add(name);
    const cells: ReportCell[] = store.cells.map((c) => {
      const file = c.file;
      const entry = store.info.cells.find((e) => e.id === c.id);
      return {
        run: name,
        id: c.id,
        agent: file.agent.label ?? file.agent.name,
        agentName: file.agent.name,
        profile: file.profile.id,
        budget: file.budget.id,
        budgetText: file.budget.constraints.join(', ') || 'unconstrained',
        seed: file.seed,
        status: entry?.status ?? 'pending',
        file,
        episodes: readEpisodes(c, { repair: false }).episodes,
        best: c.readBest(),
        final: c.readFinal(),
        uniform: c.readUniform(),
      };
    });
    return { dir: store.dir, name, info: store.info, experiment: store.experiment, cells };
  });
}

export interface AgentSeries {
  /** Legend name: the agent label, with the run name when two merged runs share a label and seed. */
  name: string;
  agentName: string;
  color: string;
  cells: ReportCell[];
}

export interface ReportGroup {
  /** `<profile> · <budget>`. */
  title: string;
  /** Safe id for anchors and chart ids. */
  key: string;
  profile: string;
  budget: string;
  budgetText: string;
  series: AgentSeries[];
  cells: ReportCell[];
}

/** Groups every cell of every run by (profile, budget), then by agent (seeds are the replicas). */
export function groupCells(runs: readonly ReportRun[], palette: readonly string[]): ReportGroup[] {
  const groups = new Map<string, ReportGroup>();
  for (const run of runs) {
    for (const c of run.cells) {
      const k = `${c.profile}\u0000${c.budget}`;
      let g = groups.get(k);
      if (!g) {
        g = {
          title: `${c.profile} · ${c.budgetText}`,
          key: `${c.profile}__${c.budget}`.replace(/[^A-Za-z0-9_-]/g, '-'),
          profile: c.profile,
          budget: c.budget,
          budgetText: c.budgetText,
          series: [],
          cells: [],
        };
        groups.set(k, g);
      }
      g.cells.push(c);
    }
  }
  // stable agent colours across groups
  const agentOrder: string[] = [];
  for (const g of groups.values()) {
    // an (agent, seed) pair seen in two runs: those agents are split per run
    const seen = new Map<string, Set<string>>();
    const clash = new Set<string>();
    for (const c of g.cells) {
      const key = `${c.agent}\u0000${c.seed}`;
      const runsOf = seen.get(key) ?? new Set<string>();
      runsOf.add(c.run);
      seen.set(key, runsOf);
      if (runsOf.size > 1) clash.add(c.agent);
    }
    const byName = new Map<string, AgentSeries>();
    for (const c of g.cells) {
      const name = clash.has(c.agent) ? `${c.agent} (${c.run})` : c.agent;
      let s = byName.get(name);
      if (!s) {
        if (!agentOrder.includes(name)) agentOrder.push(name);
        s = { name, agentName: c.agentName, color: '', cells: [] };
        byName.set(name, s);
        g.series.push(s);
      }
      s.cells.push(c);
    }
    for (const s of g.series) s.cells.sort((a, b) => a.seed - b.seed);
  }
  for (const g of groups.values()) {
    for (const s of g.series) s.color = palette[agentOrder.indexOf(s.name) % palette.length];
  }
  return [...groups.values()];
}
