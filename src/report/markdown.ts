/** Markdown report: the summary table per (profile, budget), uniform references, and the runs. */
import { VERSION } from '../version.js';
import { groupCells, type ReportRun } from './load.js';
import { kb, pct, pm, pmSig, sig } from './format.js';
import { summariseSeries, uniformPoints } from './stats.js';
import { groupStatistics, statisticsCells, statisticsNote, STATISTICS_HEADER } from './significance.js';
import { PALETTE } from './svg.js';

function row(cells: string[]): string {
  return `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
}

export const SUMMARY_HEADER = [
  'agent',
  'seeds done',
  'accuracy',
  'latency (ms)',
  'energy (uJ)',
  'size (KB)',
  'episodes to best',
  'wall time (s)',
];

export function renderMarkdown(runs: readonly ReportRun[], now: Date = new Date()): string {
  const out: string[] = [];
  out.push(`# bitalloc report: ${runs.map((r) => r.name).join(', ')}`, '');
  out.push(
    `Generated ${now.toISOString()} by bitalloc ${VERSION}. Accuracy is the test accuracy after the final fine-tune, mean ± std over seeds.`,
    '',
  );
  let anyPartial = false;
  for (const g of groupCells(runs, PALETTE)) {
    out.push(`## ${g.profile} · ${g.budgetText}`, '');
    const header = [...SUMMARY_HEADER, ...STATISTICS_HEADER];
    const stats = groupStatistics(g);
    out.push(row(header), row(header.map(() => '---')));
    for (const s of g.series) {
      const sum = summariseSeries(s);
      anyPartial ||= sum.partial;
      out.push(
        row([
          s.name + (sum.partial ? ' †' : ''),
          `${sum.done}/${sum.seeds}`,
          pm(sum.accuracy, (v) => pct(v)),
          pmSig(sum.latencyMs),
          pmSig(sum.energyUj),
          pmSig(sum.sizeBytes, 1024),
          pmSig(sum.episodesToBest, 1, 1),
          pmSig(sum.wallSeconds),
          ...statisticsCells(stats, s.name),
        ]),
      );
    }
    out.push('', statisticsNote(stats), '');
    const uni = uniformPoints(g);
    if (uni.length) {
      out.push('Uniform precision (reference):', '');
      out.push(
        row(['bits', 'accuracy', 'latency (ms)', 'energy (uJ)', 'size (KB)']),
        row(['---', '---', '---', '---', '---']),
      );
      for (const u of uni)
        out.push(row([u.label, pct(u.accuracy), sig(u.latencyMs), sig(u.energyUj), kb(u.sizeBytes)]));
      out.push('');
    }
  }
  if (anyPartial)
    out.push(
      '† some seeds have not finished their fine-tune: their figures are the best validation accuracy so far.',
      '',
    );
  out.push('## Runs', '');
  out.push(
    row(['run', 'experiment', 'model', 'dataset', 'created', 'backend', 'bitalloc', 'tfjs', 'cells done']),
    row(Array(9).fill('---') as string[]),
  );
  for (const r of runs) {
    const done = r.cells.filter((c) => c.status === 'done').length;
    out.push(
      row([
        r.name,
        r.info.name,
        String(r.experiment.model),
        String(r.experiment.dataset),
        r.info.created,
        r.info.backend,
        r.info.versions.bitalloc,
        r.info.versions.tfjs,
        `${done}/${r.cells.length}`,
      ]),
    );
  }
  out.push('');
  return out.join('\n');
}
