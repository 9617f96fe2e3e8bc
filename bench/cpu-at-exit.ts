/**
 * Preload (`node --import`) for the queue bench: when the process exits, its CPU time (every thread) is written
 * as JSON `{ userMicros, systemMicros }` to the file named by BITALLOC_BENCH_CPU_FILE.
 */
import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const file = process.env['BITALLOC_BENCH_CPU_FILE'];
if (file && isMainThread) {
  process.on('exit', () => {
    const u = process.cpuUsage();
    writeFileSync(file, JSON.stringify({ userMicros: u.user, systemMicros: u.system }));
  });
}
