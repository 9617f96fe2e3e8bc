/**
 * `bitalloc queue status`: the cells of every run under a prefix, as BullMQ sees them: waiting, running
 * (on which worker, at which episode), done, failed (with the error).
 */
import { Queue } from 'bullmq';
import { CELLS_QUEUE, bullConnection, redisClient, runKeys, type QueueTarget } from './connection.js';
import type { RunMetaRecord } from './coordinator.js';
import type { CellJobData, CellProgress } from './records.js';

export type CellQueueState = 'waiting' | 'running' | 'done' | 'failed';

export interface CellQueueStatus {
  cell: string;
  state: CellQueueState;
  worker?: string;
  episode?: number;
  episodes?: number;
  error?: string;
}

export interface RunQueueStatus {
  runKey: string;
  name: string;
  dir: string;
  host: string;
  startedAt: string;
  finishedAt?: string;
  counts: Record<CellQueueState, number>;
  cells: CellQueueStatus[];
}

const STATE_OF: Record<string, CellQueueState> = {
  waiting: 'waiting',
  delayed: 'waiting',
  prioritized: 'waiting',
  paused: 'waiting',
  'waiting-children': 'waiting',
  active: 'running',
  completed: 'done',
  failed: 'failed',
};

/** Every run under the target's prefix (or only `runKey`), with its cells' states. */
export async function queueStatus(target: QueueTarget, opts: { runKey?: string } = {}): Promise<RunQueueStatus[]> {
  const redis = redisClient(target, 'bitalloc-status');
  redis.on('error', () => undefined);
  const queue = new Queue<CellJobData>(CELLS_QUEUE, { connection: bullConnection(target), prefix: target.prefix });
  queue.on('error', () => undefined);
  try {
    const keys = runKeys(target.prefix, '');
    const runKeysList = opts.runKey ? [opts.runKey] : (await redis.smembers(keys.runs)).sort();
    const runs = new Map<string, RunQueueStatus>();
    for (const key of runKeysList) {
      const raw = await redis.get(runKeys(target.prefix, key).meta);
      const meta = raw ? (JSON.parse(raw) as RunMetaRecord) : null;
      runs.set(key, {
        runKey: key,
        name: meta?.name ?? '?',
        dir: meta?.dir ?? '?',
        host: meta?.host ?? '?',
        startedAt: meta?.startedAt ?? '',
        ...(meta?.finishedAt ? { finishedAt: meta.finishedAt } : {}),
        counts: { waiting: 0, running: 0, done: 0, failed: 0 },
        cells: [],
      });
    }
    for (const [bullState, state] of Object.entries(STATE_OF)) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- getJobs takes JobType, not string
      const jobs = await queue.getJobs([bullState as 'waiting'], 0, -1);
      for (const job of jobs) {
        const run = job?.data ? runs.get(job.data.runKey) : undefined;
        if (!job || !run) continue;
        const p = job.progress as Partial<CellProgress> | number;
        const progress = typeof p === 'object' && p !== null ? p : {};
        const row: CellQueueStatus = { cell: job.data.cellId, state };
        if (state === 'running') {
          if (progress.worker) row.worker = progress.worker;
          else if (job.processedBy) row.worker = job.processedBy;
        }
        if (state !== 'waiting' || (progress.episode ?? 0) > 0) {
          if (typeof progress.episode === 'number') row.episode = progress.episode;
          if (typeof progress.episodes === 'number') row.episodes = progress.episodes;
        }
        if (state === 'failed' && job.failedReason) row.error = job.failedReason;
        run.cells.push(row);
        run.counts[state]++;
      }
    }
    for (const run of runs.values()) run.cells.sort((a, b) => a.cell.localeCompare(b.cell));
    return [...runs.values()];
  } finally {
    await queue.close().catch(() => undefined);
    await redis.quit().catch(() => undefined);
  }
}
