/**
 * Comparison reports from one or more run directories: self-contained HTML (inline SVG charts), Markdown
 * (summary tables) and CSV (every episode of every cell).
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { writeTextAtomic } from '../run/run-store.js';
import { prepareOutputFile } from '../util/output-dir.js';
import { renderCsv } from './csv.js';
import { renderHtml } from './html.js';
import { loadRuns, type ReportRun } from './load.js';
import { renderMarkdown } from './markdown.js';

export { renderCsv, CSV_COLUMNS } from './csv.js';
export { renderHtml } from './html.js';
export { renderMarkdown } from './markdown.js';
export { loadRuns, groupCells, type ReportRun, type ReportCell, type ReportGroup, type AgentSeries } from './load.js';
export { paretoFront, meanStd, curveOverSeeds, summariseSeries, cellOutcome } from './stats.js';

export const REPORT_FORMATS = ['html', 'md', 'csv'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** File name a format is written to inside a run directory. */
export const REPORT_FILE: Record<ReportFormat, string> = { html: 'report.html', md: 'report.md', csv: 'episodes.csv' };

export function renderReport(runs: readonly ReportRun[], format: ReportFormat): string {
  switch (format) {
    case 'html':
      return renderHtml(runs);
    case 'md':
      return renderMarkdown(runs);
    case 'csv':
      return renderCsv(runs);
  }
}

/** The format a file name implies (.html/.htm, .md/.markdown, .csv), or null. */
export function formatOfPath(path: string): ReportFormat | null {
  if (/\.html?$/i.test(path)) return 'html';
  if (/\.(md|markdown)$/i.test(path)) return 'md';
  if (/\.csv$/i.test(path)) return 'csv';
  return null;
}

export interface WriteReportOptions {
  /** Formats to write; default html. */
  formats?: readonly ReportFormat[];
  /**
   * Output file (one format) or folder (several). Default: inside the run directory for one run
   * (report.html, report.md, episodes.csv), the working directory for several.
   */
  out?: string;
  /** Replace report files that already exist (default true; the CLI passes its --force). */
  overwrite?: boolean;
}

/** Where writeReport puts each format (no file is touched). */
export function reportPaths(
  runs: readonly ReportRun[],
  opts: WriteReportOptions = {},
): { format: ReportFormat; path: string }[] {
  const formats = opts.formats && opts.formats.length ? [...new Set(opts.formats)] : (['html'] as ReportFormat[]);
  return formats.map((format) => {
    if (opts.out && formats.length === 1 && !(existsSync(opts.out) && statSync(opts.out).isDirectory()))
      return { format, path: resolve(opts.out) };
    const folder = opts.out ? resolve(opts.out) : runs.length === 1 ? runs[0].dir : process.cwd();
    if (existsSync(folder) && !statSync(folder).isDirectory()) {
      throw new UserError('is a file, but several formats need a folder', {
        field: '--out',
        file: opts.out,
        expected: 'a folder',
      });
    }
    return { format, path: join(folder, REPORT_FILE[format]) };
  });
}

/**
 * Loads the runs and writes the reports; returns the files written. Every output path is checked (not a
 * folder, not present unless `overwrite`, its folder writable) before anything is written.
 */
export function writeReport(
  dirs: readonly string[],
  opts: WriteReportOptions = {},
): { files: string[]; runs: ReportRun[] } {
  const runs = loadRuns(dirs);
  const targets = reportPaths(runs, opts);
  for (const t of targets)
    prepareOutputFile(t.path, { flag: '--out', force: opts.overwrite ?? true, command: 'report' });
  const files: string[] = [];
  for (const { format, path } of targets) {
    writeTextAtomic(path, renderReport(runs, format));
    files.push(path);
  }
  return { files, runs };
}
