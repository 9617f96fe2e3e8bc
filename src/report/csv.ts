/** CSV of every episode of every cell of the given runs. */
import type { ReportRun } from './load.js';
import { bitsText } from './format.js';

export const CSV_COLUMNS = [
  'run',
  'cell',
  'agent',
  'profile',
  'budget',
  'seed',
  'episode',
  'accuracy',
  'loss',
  'latencyMs',
  'energyUj',
  'sizeBytes',
  'peakMemoryBytes',
  'feasible',
  'reward',
  'wallMs',
  'bits',
] as const;

function field(v: string | number | boolean | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per episode; `bits` as "w/a;w/a;..."; empty accuracy/loss for episodes that were not evaluated. */
export function renderCsv(runs: readonly ReportRun[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const run of runs) {
    for (const c of run.cells) {
      for (const e of c.episodes) {
        lines.push(
          [
            run.name,
            c.id,
            c.agent,
            c.profile,
            c.budgetText,
            c.seed,
            e.episode,
            e.accuracy,
            e.loss,
            e.latencyMs,
            e.energyUj,
            e.sizeBytes,
            e.peakMemoryBytes,
            e.feasible,
            e.reward,
            e.wallMs,
            bitsText(e.bits),
          ]
            .map(field)
            .join(','),
        );
      }
    }
  }
  return lines.join('\n') + '\n';
}
