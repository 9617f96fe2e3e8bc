/**
 * Reading dataset files: optional gzip, locating files in a directory, and turning every
 * I/O or format problem into a UserError that names the file and says how to get a good one.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { UserError } from '../errors.js';

/** Reads a file, gunzipping it when it starts with the gzip magic (whatever its extension). */
export function readMaybeGzip(path: string, hint: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(e)})`, {
      file: path,
      expected: `a readable dataset file; ${hint}`,
    });
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new UserError(`is not a complete gzip file (${why}); it is truncated or corrupt`, {
        file: path,
        expected: `an intact .gz file; ${hint}`,
      });
    }
  }
  return raw;
}

/** The first of `names` (each tried as given and with `.gz`) that exists in `dir`, or null. */
export function findInDir(dir: string, names: readonly string[]): string | null {
  for (const n of names) {
    for (const candidate of [n, `${n}.gz`]) {
      const p = join(dir, candidate);
      if (existsSync(p) && statSync(p).isFile()) return p;
    }
  }
  return null;
}

/** Like findInDir, but a missing file is a UserError naming the directory, the names tried and the hint. */
export function requireInDir(dir: string, names: readonly string[], hint: string): string {
  const found = findInDir(dir, names);
  if (found) return found;
  throw new UserError(`missing dataset file ${names[0]}[.gz]`, {
    file: dir,
    expected: `${names.map((n) => `${n} or ${n}.gz`).join(', or ')} in this directory; ${hint}`,
  });
}

/** Checks that `dir` exists and is a directory. */
export function requireDir(dir: string, field: string, hint: string): void {
  if (!existsSync(dir)) {
    throw new UserError('dataset directory not found', {
      file: dir,
      field,
      expected: `an existing directory; ${hint}`,
    });
  }
  if (!statSync(dir).isDirectory()) {
    throw new UserError('is not a directory', {
      file: dir,
      field,
      expected: `a directory holding the dataset files; ${hint}`,
    });
  }
}
