/**
 * `bitalloc worker`: takes cells off the queue and runs each in a local scratch run folder, on a thread of
 * its own, through the same runCell() as a local run. What the cell writes goes back to the coordinator as
 * records on the run's Redis stream; no shared filesystem is assumed.
 *
 * A cell that was started elsewhere (its worker died: BullMQ's stalled-job check hands it over) continues
 * from the checkpoint the coordinator last wrote, which the coordinator keeps in Redis with the episodes
 * up to it. On stop() (SIGTERM/SIGINT) each running cell finishes its current episode, checkpoints, and
 * its job goes back to the queue for another worker.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Worker as Thread } from 'node:worker_threads';
import { Worker, WaitingError, UnrecoverableError, type Job } from 'bullmq';
import type { BackendChoice } from '../backend/index.js';
import { log, type LogLevel } from '../log.js';
import type { RunInfo } from '../run/run-store.js';
import type { CellOutcome } from '../search/runner.js';
import {
  CELLS_QUEUE,
  INLINE_RECORD_CHARS,
  PAYLOAD_TTL_SECONDS,
  bullConnection,
  getLarge,
  isConnectionError,
  redisClient,
  runKeys,
  warnOnLostConnection,
  type QueueTarget,
} from './connection.js';
import {
  listDirs,
  packDir,
  unpackDir,
  type CellJobData,
  type CellProgress,
  type CellRecord,
  type CheckpointBlob,
  type LogEntry,
  type PackedFiles,
} from './records.js';
import type { CellThreadData, CellThreadInit, CellThreadMessage } from './cell-thread.js';

export interface QueueWorkerOptions {
  target: QueueTarget;
  /** Cells run at the same time (each on its own thread). */
  concurrency: number;
  /** Scratch folder (cells being run, the warm-up cache of each run). Default: a temp folder, removed on stop. */
  storeDir?: string;
  /** How long a job's lock lasts without renewal: a worker silent this long has lost its cell (ms). */
  lockDurationMs: number;
  /** How often workers look for cells whose worker is gone (ms). */
  stalledIntervalMs: number;
  /** A cell whose worker is lost more often than this fails for good. */
  maxStalledCount: number;
  logLevel: LogLevel;
  /** Shown in `queue status`; default host:pid. */
  name?: string;
  /** Backend the cell threads start with while they wait for the first cell (cells name their own). */
  warmBackend?: BackendChoice;
}

export interface QueueWorkerHandle {
  name: string;
  /** Finishes the current episode of every running cell, checkpoints, hands the cells back, closes. */
  stop(): Promise<void>;
  /** Resolves when the worker has closed. */
  closed: Promise<void>;
  /** Cells finished (done or failed) by this worker. */
  finished(): number;
}

export async function startQueueWorker(opts: QueueWorkerOptions): Promise<QueueWorkerHandle> {
  const name = opts.name ?? `${hostname()}:${process.pid}`;
  const tempStore = opts.storeDir === undefined;
  const storeDir = resolve(
    opts.storeDir ?? join(tmpdir(), `bitalloc-worker-${process.pid}-${randomBytes(3).toString('hex')}`),
  );
  mkdirSync(storeDir, { recursive: true });
  const redis = redisClient(opts.target, `bitalloc-worker-${name}`);
  const lostConnection = warnOnLostConnection(redis, opts.target, `worker ${name}`);
  const pool = new ThreadPool(opts.warmBackend);
  // threads load their imports and start the backend now, not when the first cell arrives
  const threadsReady = pool
    .warm(opts.concurrency)
    .then(() => log.info(`worker ${name}: ${opts.concurrency} cell thread(s) ready`));
  let finished = 0;
  let stopping = false;
  /** Warm-up cache entries already sent to their run's coordinator (`runKey/name`). */
  const shippedWarmups = new Set<string>();

  const processor = async (job: Job<CellJobData>, token?: string): Promise<{ episodes: number }> => {
    const d = job.data;
    const attempt = `${name}/${randomBytes(4).toString('hex')}`;
    const keys = runKeys(opts.target.prefix, d.runKey);
    const runDir = join(storeDir, d.runKey);
    const cellDir = join(runDir, 'cells', d.cellId);
    let chain: Promise<unknown> = Promise.resolve();
    let payloads = 0;
    const emit = (record: CellRecord): void => {
      const text = JSON.stringify(record);
      if (text.length <= INLINE_RECORD_CHARS) {
        chain = chain.then(() => redis.xadd(keys.records, '*', 'cell', d.cellId, 'token', attempt, 'record', text));
        return;
      }
      // a checkpoint or result files: the value under a key of its own, its key in the stream (one transaction)
      const key = keys.payload(d.cellId, `${attempt.split('/').pop()}-${payloads++}`);
      chain = chain.then(async () => {
        const replies = await redis
          .multi()
          .set(key, text, 'EX', PAYLOAD_TTL_SECONDS)
          .xadd(keys.records, '*', 'cell', d.cellId, 'token', attempt, 'ref', key)
          .exec();
        for (const [err] of replies ?? []) if (err) throw err;
      });
    };
    const progress = (episode: number): void => {
      const p: CellProgress = { worker: name, episode, episodes: d.experiment.episodes };
      chain = chain.then(() => job.updateProgress(p as unknown as object));
    };
    try {
      // the scratch run folder: cell.json (profile JSON copied here), and the last checkpoint with its episodes
      rmSync(cellDir, { recursive: true, force: true });
      mkdirSync(cellDir, { recursive: true });
      const profileFile = join(runDir, 'profiles', `${d.cell.profile.id}.json`);
      mkdirSync(join(runDir, 'profiles'), { recursive: true });
      writeFileSync(profileFile, JSON.stringify(d.cell.profile.json, null, 2) + '\n');
      writeFileSync(
        join(cellDir, 'cell.json'),
        JSON.stringify({ ...d.cell, profile: { ...d.cell.profile, path: profileFile } }, null, 2) + '\n',
      );
      let from = 0;
      const raw = await getLarge(redis, keys.checkpoint(d.cellId));
      if (raw) {
        const blob = JSON.parse(raw) as CheckpointBlob;
        unpackDir(blob.files, join(cellDir, 'checkpoint'));
        writeFileSync(join(cellDir, 'episodes.jsonl'), blob.episodes.map((e) => JSON.stringify(e) + '\n').join(''));
        if (blob.best) writeFileSync(join(cellDir, 'best.json'), JSON.stringify(blob.best, null, 2) + '\n');
        from = blob.episode;
      }
      const warmupDir = join(runDir, 'warmup');
      log.info(
        `${d.cellId}: ${from > 0 ? `continuing after episode ${from}` : 'starting'} (run ${d.runName}, cell ${d.index + 1}/${d.total})`,
      );
      emit({ type: 'start', worker: name, from });
      progress(from);

      const logs: LogEntry[] = [];
      const flushLogs = (): void => {
        if (logs.length > 0) emit({ type: 'log', entries: logs.splice(0) });
      };
      const logTimer = setInterval(flushLogs, 1000);
      let outcome: CellOutcome;
      try {
        outcome = await pool.run(
          {
            runDir,
            info: scratchInfo(d),
            experiment: d.experiment,
            cellId: d.cellId,
            label: `${d.cellId}`,
            backend: d.backend as BackendChoice,
            logLevel: opts.logLevel,
          },
          stopping,
          (m) => {
            if (m.type === 'episode') {
              flushLogs();
              emit({ type: 'episode', record: m.record });
              progress(m.record.episode);
            } else if (m.type === 'checkpoint') {
              flushLogs();
              emit({ type: 'checkpoint', episode: m.episode, files: m.files });
            } else if (m.type === 'log') logs.push(m.entry);
          },
        );
      } finally {
        clearInterval(logTimer);
        flushLogs();
      }
      if (outcome.ok && outcome.result && !outcome.result.interrupted) {
        const files: PackedFiles = {};
        packDir(join(cellDir, 'final-network'), files, 'cell/final-network');
        for (const f of ['uniform.json', 'final.json']) {
          const one = packOne(cellDir, f);
          if (one !== null) files[`cell/${f}`] = one;
        }
        const newWarmups = listDirs(warmupDir).filter((w) => !shippedWarmups.has(`${d.runKey}/${w}`));
        for (const w of newWarmups) packDir(join(warmupDir, w), files, `warmup/${w}`);
        emit({ type: 'files', files });
        emit({ type: 'done', result: outcome.result });
        await chain;
        for (const w of newWarmups) shippedWarmups.add(`${d.runKey}/${w}`);
        finished++;
        log.info(`${d.cellId}: done (${outcome.result.episodes} episodes)`);
        return { episodes: outcome.result.episodes };
      }
      if (outcome.ok && outcome.result) {
        // stopped on request: the checkpoint is on its way; hand the cell back to the queue
        emit({ type: 'released', episode: outcome.result.episodes });
        await chain;
        log.info(`${d.cellId}: handed back after episode ${outcome.result.episodes}`);
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const error = (outcome.error ?? 'unknown error')
        .split(join(runDir, 'profiles', `${d.cell.profile.id}.json`))
        .join(d.cell.profile.path);
      emit({ type: 'failed', error });
      await chain;
      finished++;
      log.error(`${d.cellId}: failed: ${error}`);
      throw new UnrecoverableError(error);
    } finally {
      await chain.catch((e: unknown) =>
        log.warn(`${d.cellId}: could not report to Redis: ${e instanceof Error ? e.message : String(e)}`),
      );
      rmSync(cellDir, { recursive: true, force: true });
    }
  };

  const worker = new Worker<CellJobData, { episodes: number }>(CELLS_QUEUE, processor, {
    connection: bullConnection(opts.target),
    prefix: opts.target.prefix,
    concurrency: opts.concurrency,
    lockDuration: opts.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs,
    maxStalledCount: opts.maxStalledCount,
    name,
    autorun: false,
  });
  worker.on('error', (e) => (isConnectionError(e) ? lostConnection.error(e) : log.warn(`worker: ${e.message}`)));
  worker.on('stalled', (jobId) => log.warn(`cell job ${jobId} lost its worker; it goes back to the queue`));
  await worker.waitUntilReady();
  const closed = worker.run().then(async () => {
    await threadsReady;
    await pool.terminate();
    await redis.quit().catch(() => undefined);
    if (tempStore) rmSync(storeDir, { recursive: true, force: true });
  });
  log.info(
    `worker ${name}: taking cells from ${opts.target.display} (prefix ${opts.target.prefix}, concurrency ${opts.concurrency})`,
  );
  return {
    name,
    finished: () => finished,
    closed,
    stop: async () => {
      if (!stopping) {
        stopping = true;
        log.info(`worker ${name}: stopping after the current episode of ${pool.busyCount()} running cell(s)`);
        pool.stopAll();
        await worker.close();
      }
      await closed;
    },
  };
}

function packOne(dir: string, file: string): string | null {
  const p = join(dir, file);
  return existsSync(p) ? readFileSync(p).toString('base64') : null;
}

/** run.json of the scratch folder: just this cell. */
function scratchInfo(d: CellJobData): RunInfo {
  const now = new Date().toISOString();
  return {
    format: 'bitalloc-run',
    formatVersion: 1,
    name: d.runName,
    created: now,
    updated: now,
    versions: { bitalloc: '', tfjs: '', tfjsNode: null, node: process.versions.node },
    backend: d.backend,
    platform: `${process.platform}-${process.arch}`,
    hostname: hostname(),
    cwd: process.cwd(),
    command: [],
    resumes: [],
    cells: [
      {
        id: d.cellId,
        agent: d.cell.agent.label,
        profile: d.cell.profile.id,
        budget: d.cell.budget.id,
        seed: d.cell.seed,
        status: 'running',
      },
    ],
  };
}

interface PooledThread {
  thread: Thread;
  /** Resolves when the thread has loaded (or has exited). */
  ready: Promise<void>;
  stop: Int32Array;
  busy: boolean;
  onMessage: ((m: CellThreadMessage) => void) | null;
  done: ((o: CellOutcome) => void) | null;
}

/**
 * Threads that run cells, one cell per thread at a time; an idle thread takes the next cell, so its imports
 * and tfjs engine are reused (as a local run reuses its process for cell after cell). A thread that crashes
 * fails its cell and is replaced by a new one for the next cell.
 */
class ThreadPool {
  private readonly threads: PooledThread[] = [];

  constructor(private readonly warmBackend?: BackendChoice) {}

  /** Starts threads until there are `n`; resolves when each has loaded its imports and backend. */
  warm(n: number): Promise<void> {
    const fresh: PooledThread[] = [];
    while (this.threads.length < n) fresh.push(this.spawn());
    return Promise.all(fresh.map((t) => t.ready)).then(() => undefined);
  }

  busyCount(): number {
    return this.threads.filter((t) => t.busy).length;
  }

  /** Asks every running cell to stop after its current episode (with a checkpoint). */
  stopAll(): void {
    for (const t of this.threads) Atomics.store(t.stop, 0, 1);
  }

  run(data: CellThreadData, stopNow: boolean, onMessage: (m: CellThreadMessage) => void): Promise<CellOutcome> {
    const t = this.threads.find((x) => !x.busy) ?? this.spawn();
    t.busy = true;
    Atomics.store(t.stop, 0, stopNow ? 1 : 0);
    return new Promise((resolvePromise) => {
      t.onMessage = onMessage;
      t.done = (o) => resolvePromise({ ...o, id: o.id || data.cellId });
      t.thread.postMessage(data);
    });
  }

  async terminate(): Promise<void> {
    await Promise.all(this.threads.splice(0).map((t) => t.thread.terminate()));
  }

  private spawn(): PooledThread {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const init: CellThreadInit = {
      stop: stop.buffer,
      ...(this.warmBackend ? { warmBackend: this.warmBackend } : {}),
    };
    let markReady = (): void => undefined;
    const t: PooledThread = {
      thread: new Thread(new URL('./cell-thread.js', import.meta.url), { workerData: init }),
      ready: new Promise<void>((r) => (markReady = r)),
      stop,
      busy: false,
      onMessage: null,
      done: null,
    };
    const finish = (o: CellOutcome): void => {
      const done = t.done;
      t.done = null;
      t.onMessage = null;
      t.busy = false;
      done?.(o);
    };
    t.thread.on('message', (m: CellThreadMessage) => {
      if (m.type === 'ready') markReady();
      else if (m.type === 'outcome') finish(m.outcome);
      else t.onMessage?.(m);
    });
    const lost = (error: string): void => {
      markReady();
      const i = this.threads.indexOf(t);
      if (i >= 0) this.threads.splice(i, 1);
      finish({ id: '', ok: false, error });
    };
    t.thread.on('error', (e) => lost(e.message));
    t.thread.on('exit', (code) => lost(`the cell's thread exited with code ${code}`));
    this.threads.push(t);
    return t;
  }
}
