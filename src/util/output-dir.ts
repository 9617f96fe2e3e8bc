/**
 * Output locations, checked before any work. The rule every command follows: it never overwrites a file it
 * did not create unless told to with `--force`, and a folder holding another kind of bitalloc output (a run,
 * a training checkpoint, an integer export) is refused outright. Folders are created one level at a time so
 * that a parent that cannot hold folders (e.g. /proc) fails at once with the path named.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.js';

/** The kinds of output folder bitalloc writes. */
export type OutputKind = 'run' | 'checkpoint' | 'export';

const KIND_TEXT: Record<OutputKind, string> = {
  run: 'a run directory (`bitalloc run`/`search --out`)',
  checkpoint: 'a training checkpoint (`bitalloc train --out`)',
  export: 'an integer export (`bitalloc export --out`)',
};

/** Files each kind of output writes into its folder. */
export const OUTPUT_FILES: Record<OutputKind, readonly string[]> = {
  run: ['run.json', 'experiment.json', 'cells', 'log.jsonl'],
  checkpoint: ['model.json', 'weights.bin', 'bits.json', 'run.json'],
  export: ['manifest.json', 'weights.bin', 'float-weights.bin'],
};

function readJsonQuiet(path: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Which kind of bitalloc output `dir` holds, or null (missing, empty or anything else). */
export function outputKindOf(dir: string): OutputKind | null {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return null;
  if (existsSync(join(dir, 'manifest.json'))) {
    const m = readJsonQuiet(join(dir, 'manifest.json'));
    if (m && m['format'] === 'bitalloc-quantized') return 'export';
  }
  if (existsSync(join(dir, 'model.json'))) return 'checkpoint';
  const run = existsSync(join(dir, 'run.json')) ? readJsonQuiet(join(dir, 'run.json')) : null;
  if (run && run['format'] === 'bitalloc-run') return 'run';
  if (existsSync(join(dir, 'experiment.json')) && existsSync(join(dir, 'cells'))) return 'run';
  return null;
}

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOENT':
      return 'it cannot be created there';
    case 'ENOTDIR':
      return 'a part of the path is a file';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

/** Creates `dir` and its missing parents one level at a time; errors name the path and the flag. */
export function makeDirs(dir: string, flag?: string, named: string = dir): void {
  const abs = resolve(dir);
  const missing: string[] = [];
  let p = abs;
  while (!existsSync(p)) {
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  if (existsSync(p) && !statSync(p).isDirectory()) {
    throw new UserError(`${p} is a file, not a folder`, {
      file: named,
      ...(flag ? { field: flag } : {}),
      expected: 'a folder path',
    });
  }
  for (const m of missing) {
    try {
      mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statSync(m).isDirectory()) continue;
      throw new UserError(`cannot create the folder ${m}: ${reason(e)}`, {
        file: named,
        ...(flag ? { field: flag } : {}),
        expected: 'a writable location',
      });
    }
  }
}

/** Checks that files can be created in the existing folder `dir` (writes and removes a probe file). */
export function checkWritableDir(dir: string, flag?: string): void {
  const probe = join(dir, `.bitalloc-probe-${process.pid}`);
  try {
    const fd = openSync(probe, 'w');
    closeSync(fd);
    rmSync(probe, { force: true });
  } catch (e) {
    throw new UserError(`cannot write in ${resolve(dir)}: ${reason(e)}`, {
      file: dir,
      ...(flag ? { field: flag } : {}),
      expected: 'a writable folder',
    });
  }
}

export interface OutputDirOptions {
  /** What the command writes there. */
  kind: OutputKind;
  /** Files (names inside the folder) the command will write; default OUTPUT_FILES[kind]. */
  files?: readonly string[];
  /** --force: replace those files. */
  force?: boolean;
  /** The flag that named the folder, e.g. `--out`. */
  flag?: string;
  /** The command, for messages, e.g. `export`. */
  command: string;
}

/**
 * Checks an output folder before any work and creates it: not a file, not another kind of output, none of
 * the files the command writes present (unless --force), writable. Returns the absolute path.
 */
export function prepareOutputDir(dir: string, opts: OutputDirOptions): string {
  const abs = resolve(dir);
  const flag = opts.flag ?? '--out';
  if (existsSync(abs)) {
    if (!statSync(abs).isDirectory()) {
      throw new UserError('is a file, not a folder', {
        file: dir,
        field: flag,
        expected: `a folder for ${opts.command} to write into`,
      });
    }
    const kind = outputKindOf(abs);
    if (kind && kind !== opts.kind) {
      throw new UserError(
        `holds ${KIND_TEXT[kind]}; \`${opts.command}\` writes ${KIND_TEXT[opts.kind]} and would destroy it`,
        {
          file: dir,
          field: flag,
          expected: 'another folder, a new or empty one',
        },
      );
    }
    const files = opts.files ?? OUTPUT_FILES[opts.kind];
    const present = files.filter((f) => existsSync(join(abs, f)));
    if (present.length > 0 && !opts.force) {
      throw new UserError(`already holds ${present.join(', ')}, which \`${opts.command}\` would overwrite`, {
        file: dir,
        field: flag,
        expected: 'a new or empty folder, or --force to replace those files',
      });
    }
  }
  makeDirs(abs, flag);
  checkWritableDir(abs, flag);
  return abs;
}

/**
 * Checks an output file before any work: not a folder, not present unless `force`, its folder creatable and
 * writable. Creates the missing parent folders.
 */
export function prepareOutputFile(
  file: string,
  opts: { flag?: string; force?: boolean; command: string; forceFlag?: string },
): string {
  const abs = resolve(file);
  const flag = opts.flag ?? '--out';
  if (existsSync(abs)) {
    if (statSync(abs).isDirectory())
      throw new UserError('is a folder, not a file', { file, field: flag, expected: 'a file path' });
    if (!opts.force) {
      throw new UserError(`exists; \`${opts.command}\` did not write it and will not replace it`, {
        file,
        field: flag,
        expected: `another path, or ${opts.forceFlag ?? '--force'} to replace it`,
      });
    }
  }
  makeDirs(dirname(abs), flag, file);
  checkWritableDir(dirname(abs), flag);
  return abs;
}

/** Checks that a log file can be appended to (creating it and its folder); errors name the flag. */
export function checkAppendableFile(file: string, flag: string): void {
  const abs = resolve(file);
  if (existsSync(abs) && statSync(abs).isDirectory()) {
    throw new UserError('is a folder, not a file', {
      file,
      field: flag,
      expected: 'a file path for the JSON-lines log',
    });
  }
  makeDirs(dirname(abs), flag, file);
  try {
    const fd = openSync(abs, 'a');
    writeSync(fd, '');
    closeSync(fd);
  } catch (e) {
    throw new UserError(`cannot write the log file: ${reason(e)}`, {
      file,
      field: flag,
      expected: 'a writable file path',
    });
  }
}
