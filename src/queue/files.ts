/** Atomic writes of binary files (network weights) into a run directory, as the run store does for JSON. */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

let seq = 0;

/** Writes `bytes` to a temp file next to `path` (`<name>.tmp-<pid>-<n>`), fsyncs it and renames it over `path`. */
export function writeBinaryAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${1_000_000 + seq++}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
