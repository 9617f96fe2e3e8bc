import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { UserError } from '../errors.js';
import { REPORT_FORMATS, formatOfPath, writeReport, type ReportFormat } from '../report/index.js';
import type { CliCommand } from './types.js';
import { printJson, printText } from './output.js';

const FORMAT_CHOICES = [...REPORT_FORMATS, 'all'] as const;

export const reportCommand: CliCommand = {
  command: 'report <dirs..>',
  describe: 'Compare runs: self-contained HTML with charts, Markdown summary tables, or CSV of every episode',
  builder: (y) =>
    y
      .positional('dirs', {
        type: 'string',
        array: true,
        describe: 'run directories (several are merged into one report)',
      })
      .option('out', {
        type: 'string',
        describe:
          'output file (or folder with --format all); default: inside the run directory for one run, the working directory for several',
      })
      .option('format', { choices: FORMAT_CHOICES, describe: 'html | md | csv | all (default: from --out, else html)' })
      .option('force', { type: 'boolean', default: false, describe: 'replace report files that already exist' }),
  handler: async (args) => {
    const dirs = (args['dirs'] as string[] | undefined) ?? [];
    const out = args['out'] as string | undefined;
    const requested = args['format'] as (typeof FORMAT_CHOICES)[number] | undefined;
    let formats: ReportFormat[];
    if (requested === 'all') formats = [...REPORT_FORMATS];
    else if (requested) formats = [requested];
    else formats = [(out && formatOfPath(out)) || 'html'];
    if (
      out &&
      !formatOfPath(out) &&
      /\.[A-Za-z0-9]{1,8}$/.test(out) &&
      !(existsSync(out) && statSync(out).isDirectory())
    ) {
      throw new UserError(`unknown report file type '${extname(out)}'`, {
        field: '--out',
        file: out,
        expected: 'a .html, .md or .csv file, or a folder',
      });
    }
    if (out && formats.length === 1) {
      const implied = formatOfPath(out);
      if (implied && implied !== formats[0]) {
        throw new UserError(`--out ${out} looks like ${implied} but --format is ${formats[0]}`, {
          field: '--out',
          expected: `a .${formats[0] === 'md' ? 'md' : formats[0]} file, or no --format`,
        });
      }
    }
    const { files, runs } = writeReport(dirs, {
      formats,
      overwrite: Boolean(args['force']),
      ...(out !== undefined ? { out } : {}),
    });
    const cells = runs.reduce((a, r) => a + r.cells.length, 0);
    const episodes = runs.reduce((a, r) => a + r.cells.reduce((b, c) => b + c.episodes.length, 0), 0);
    if (args.json) printJson({ files, runs: runs.map((r) => r.dir), cells, episodes });
    else
      printText(
        `${files.map((f) => `wrote ${f}`).join('\n')}\n(${runs.length} run${runs.length === 1 ? '' : 's'}, ${cells} cells, ${episodes} episodes)`,
      );
  },
};
