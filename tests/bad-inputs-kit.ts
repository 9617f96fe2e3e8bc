/**
 * Shared kit of the bad-inputs campaign (tests/bad-inputs-*.test.ts): spawn `bitalloc` as a user does, and
 * fingerprint folders so a test can show that a refused command changed nothing.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/bitalloc.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const QUICKSTART = join(ROOT, 'experiments', 'quickstart.json');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the command, ms. */
  ms: number;
}

/** Runs `bitalloc ARGS` in `cwd` (default a neutral folder); resolves when it exits (killed after `timeoutMs`). */
export function cli(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : err.signal ? 128 : 1) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - t0 });
      },
    );
  });
}

/** sha256 of every file under `dir` (relative path -> hash); {} when `dir` does not exist. */
export function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  if (statSync(dir).isDirectory()) walk(dir);
  else out['.'] = createHash('sha256').update(readFileSync(dir)).digest('hex');
  return out;
}

/** The one `error: ...` line set of a failed command, with no stack trace. */
export function errorText(r: CliRun): string {
  return r.stderr;
}
