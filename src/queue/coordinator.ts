/**
 * The coordinator of a queued run (`bitalloc run FILE --queue URL`): it enqueues every pending cell of a
 * run directory as a BullMQ job, follows the run's Redis stream and writes what workers report into the
 * run directory with the run store's own writers (appendEpisode, saveCheckpoint, offerBest, writeUniform,
 * writeFinal), so that the directory has the shape and content of a local run's.
 *
 * Each attempt at a cell (a worker taking the job) starts with a `start` record carrying a fresh token and
 * the episode it continues from; records of any other attempt (a worker that lost the cell) are ignored.
 * A `start` drops the episodes after its checkpoint, as a local resume does, so each episode is on disk
 * once. Checkpoints go to Redis first (for the next worker), then to disk: the checkpoint on disk is never
 * newer than the one in Redis, and the episodes on disk reach at least as far as both.
 *
 * The stream position, the current token of each cell and the checkpoints live in Redis, so a coordinator
 * killed and started again with `--resume DIR --queue URL` carries on where it was.
 */
import { appendFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { log } from '../log.js';
import {
  appendEpisode,
  loadCheckpoint,
  readEpisodes,
  saveCheckpoint,
  truncateEpisodes,
  type CellStore,
  type CheckpointState,
  type FinalRecord,
  type RunStore,
  type UniformPoint,
} from '../run/run-store.js';
import type { CellOutcome } from '../search/runner.js';
import {
  CELLS_QUEUE,
  bullConnection,
  getLarge,
  isConnectionError,
  jobIdOf,
  redisClient,
  runKeys,
  warnOnLostConnection,
  type QueueTarget,
} from './connection.js';
import {
  packDir,
  safeJoin,
  unpackDir,
  type CellJobData,
  type CheckpointBlob,
  type PackedFiles,
  type StreamEntry,
} from './records.js';
import { writeBinaryAtomic } from './files.js';

export interface QueueRunOptions {
  target: QueueTarget;
  /** The tfjs backend workers use for this run's cells. */
  backend: string;
  /** How often job states are checked (ms). */
  pollMs?: number;
  /** Seconds between summary lines (waiting/running/done/failed). */
  summaryEverySeconds?: number;
}

/** What `queue status` shows of a run. */
export interface RunMetaRecord {
  runKey: string;
  name: string;
  dir: string;
  host: string;
  cells: number;
  startedAt: string;
  finishedAt?: string;
}

/** A stable, Redis-safe key of a run: its name and a hash of when and where it was created. */
export function runKeyOf(store: RunStore): string {
  const slug = store.info.name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 40);
  const hash = createHash('sha256')
    .update(`${store.info.name}\n${store.info.created}\n${store.info.hostname}`)
    .digest('hex')
    .slice(0, 10);
  return `${slug}-${hash}`;
}

const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused']);

/** Runs the pending cells of `store` on the queue; returns every pending cell's outcome (failed cells included). */
export async function runCellsOnQueue(store: RunStore, opts: QueueRunOptions): Promise<CellOutcome[]> {
  const { target } = opts;
  const runKey = runKeyOf(store);
  const keys = runKeys(target.prefix, runKey);
  const redis = redisClient(target, 'bitalloc-coordinator');
  const reader = redisClient(target, 'bitalloc-coordinator-reader');
  const lostConnection = warnOnLostConnection([redis, reader], target, 'coordinator');
  const queue = new Queue<CellJobData>(CELLS_QUEUE, { connection: bullConnection(target), prefix: target.prefix });
  queue.on('error', (e) => (isConnectionError(e) ? lostConnection.error(e) : log.warn(`queue: ${e.message}`)));
  const total = store.cells.length;
  const label = (cell: CellStore): string => `[${cell.spec.index + 1}/${total}] ${cell.id}`;
  const outcomes = new Map<string, CellOutcome>();
  try {
    const meta: RunMetaRecord = {
      runKey,
      name: store.info.name,
      dir: store.dir,
      host: hostname(),
      cells: total,
      startedAt: new Date().toISOString(),
    };
    await redis.sadd(keys.runs, runKey);
    await redis.set(keys.meta, JSON.stringify(meta));
    const tokens = new Map(Object.entries(await redis.hgetall(keys.tokens)));
    let cursor = (await redis.get(keys.cursor)) ?? '0';
    const targetCells = store.pendingCells();
    if (targetCells.length === 0) {
      log.info('every cell of this run is done');
      return [];
    }
    for (const cell of targetCells) await reconcileCheckpoint(redis, keys.checkpoint(cell.id), cell);

    const apply = async (entry: StreamEntry): Promise<void> => {
      const cell = store.cells.find((c) => c.id === entry.cell);
      if (!cell || !targetCells.includes(cell)) return;
      const r = entry.record;
      if (cell.status === 'done') return; // replayed records of a finished cell
      if (r.type === 'start') {
        tokens.set(cell.id, entry.token);
        await redis.hset(keys.tokens, cell.id, entry.token);
        outcomes.delete(cell.id);
        if (cell.status !== 'running') cell.setStatus('running');
        const onDisk = loadCheckpoint(cell)?.state.episode ?? -1;
        if (r.from > onDisk) {
          const raw = await getLarge(redis, keys.checkpoint(cell.id));
          const blob = raw ? (JSON.parse(raw) as CheckpointBlob) : null;
          if (blob && blob.episode === r.from) await writeCheckpointToDisk(cell, blob.files);
        }
        truncateEpisodes(cell, r.from);
        log.info(`${label(cell)}: on ${r.worker}${r.from > 0 ? `, continuing after episode ${r.from}` : ''}`);
        return;
      }
      if (tokens.get(cell.id) !== entry.token) return; // a worker that has lost this cell
      switch (r.type) {
        case 'episode': {
          const e = r.record.episode;
          if (e <= cell.episodeCount()) truncateEpisodes(cell, e - 1);
          if (e !== cell.episodeCount() + 1) {
            log.warn(`${label(cell)}: episode ${e} arrived after ${cell.episodeCount()}; ignored`);
            return;
          }
          appendEpisode(cell, r.record);
          cell.offerBest(r.record);
          log.debug(`${label(cell)}: episode ${e}/${store.experiment.episodes}`);
          return;
        }
        case 'checkpoint': {
          const episodes = readEpisodes(cell).episodes;
          if (episodes.length < r.episode) {
            log.warn(
              `${label(cell)}: checkpoint at episode ${r.episode} but only ${episodes.length} episodes arrived; ignored`,
            );
            return;
          }
          const blob: CheckpointBlob = {
            episode: r.episode,
            files: r.files,
            episodes: episodes.slice(0, r.episode),
            best: cell.readBest(),
          };
          await redis.set(keys.checkpoint(cell.id), JSON.stringify(blob));
          await writeCheckpointToDisk(cell, r.files);
          const best = cell.readBest();
          log.info(
            `${label(cell)}: episode ${r.episode}/${store.experiment.episodes}` +
              (best?.accuracy != null
                ? `, best ${(100 * best.accuracy).toFixed(2)}% @ ${best.latencyMs.toPrecision(3)} ms`
                : ''),
          );
          return;
        }
        case 'log': {
          const lines = r.entries
            .map((l) => JSON.stringify({ ...l, cell: cell.id, worker: entry.token.split('/')[0] }) + '\n')
            .join('');
          if (lines) appendFileSync(store.logPath, lines);
          return;
        }
        case 'files':
          writeResultFiles(store, cell, r.files);
          return;
        case 'done':
          cell.setStatus('done');
          outcomes.set(cell.id, { id: cell.id, ok: true, result: r.result });
          log.info(`${label(cell)}: done`);
          return;
        case 'failed':
          cell.setStatus('failed', { error: r.error });
          outcomes.set(cell.id, { id: cell.id, ok: false, error: r.error });
          log.error(`${label(cell)} failed: ${r.error}`);
          return;
        case 'released':
          log.info(`${label(cell)}: handed back after episode ${r.episode}; waiting for another worker`);
          return;
      }
    };

    /** Applies the next batch of records; returns how many there were. */
    const step = async (blockMs: number): Promise<number> => {
      const reply = await reader.xread('COUNT', 20, 'BLOCK', blockMs, 'STREAMS', keys.records, cursor);
      const items = reply?.[0]?.[1] ?? [];
      const payloads: string[] = [];
      for (const [id, fields] of items) {
        const f = new Map<string, string>();
        for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i], fields[i + 1]);
        try {
          const ref = f.get('ref');
          let text = f.get('record') ?? 'null';
          if (ref !== undefined) {
            // a large record (checkpoint, result files) waits under its own key until the cursor has passed it
            const payload = await getLarge(redis, ref);
            if (payload === null) throw new Error(`its payload ${ref} is gone from Redis (expired?)`);
            text = payload;
            payloads.push(ref);
          }
          await apply({
            cell: f.get('cell') ?? '',
            token: f.get('token') ?? '',
            record: JSON.parse(text) as StreamEntry['record'],
          });
        } catch (e) {
          log.error(`record ${id} of cell ${f.get('cell')}: ${e instanceof Error ? e.message : String(e)}`);
          throw e;
        }
        cursor = id;
      }
      if (items.length > 0) {
        await redis.set(keys.cursor, cursor);
        await redis.xtrim(keys.records, 'MINID', cursor);
        if (payloads.length > 0) await redis.del(...payloads);
      }
      return items.length;
    };

    // records that came while no coordinator was following
    while ((await step(1)) > 0);

    let added = 0;
    for (const cell of store.pendingCells()) {
      if (!targetCells.includes(cell)) continue;
      const jobId = jobIdOf(runKey, cell.id);
      const job = await queue.getJob(jobId);
      if (job) {
        const state = await job.getState();
        if (LIVE_STATES.has(state)) continue;
        await job.remove();
      }
      if (cell.status === 'failed') cell.setStatus('pending');
      const data: CellJobData = {
        runKey,
        runName: store.info.name,
        cellId: cell.id,
        index: cell.spec.index,
        total,
        experiment: store.experiment,
        cell: cell.file,
        backend: opts.backend,
      };
      await queue.add(cell.id, data, {
        jobId,
        attempts: 1,
        removeOnComplete: { age: 7 * 24 * 3600 },
        removeOnFail: { age: 7 * 24 * 3600 },
      });
      added++;
    }
    log.info(
      `run ${runKey}: ${targetCells.length} of ${total} cells on ${target.display} (prefix ${target.prefix}; ${added} queued now). ` +
        `Workers: bitalloc worker --queue ${target.display} --prefix ${target.prefix}`,
    );

    const pollMs = opts.pollMs ?? 1000;
    const summaryMs = (opts.summaryEverySeconds ?? 30) * 1000;
    let lastPoll = 0;
    let lastSummary = Date.now();
    const unfinished = (): CellStore[] => targetCells.filter((c) => !outcomes.has(c.id));
    while (unfinished().length > 0) {
      const n = await step(pollMs);
      if (n > 0 && Date.now() - lastPoll < pollMs) continue;
      lastPoll = Date.now();
      const counts = { waiting: 0, running: 0, done: 0, failed: 0 };
      for (const cell of targetCells) {
        const o = outcomes.get(cell.id);
        if (o) {
          counts[o.ok ? 'done' : 'failed']++;
          continue;
        }
        // (the state alone: the job's data, the experiment, stays in Redis)
        const found = await queue.getJobState(jobIdOf(runKey, cell.id));
        const state = found === 'unknown' ? 'missing' : found;
        if (state === 'active') counts.running++;
        else if (LIVE_STATES.has(state)) counts.waiting++;
        else if (state === 'failed' || state === 'missing' || state === 'completed') {
          // its records may still be in flight: read the stream dry before deciding
          if ((await step(1)) > 0 || outcomes.has(cell.id)) continue;
          const error =
            state === 'failed'
              ? ((await queue.getJob(jobIdOf(runKey, cell.id)))?.failedReason ?? 'failed')
              : state === 'missing'
                ? 'its job was removed from the queue'
                : 'the job completed but its results did not reach the coordinator';
          cell.setStatus('failed', { error });
          outcomes.set(cell.id, { id: cell.id, ok: false, error });
          log.error(`${label(cell)} failed: ${error}`);
          counts.failed++;
        }
      }
      if (Date.now() - lastSummary >= summaryMs) {
        lastSummary = Date.now();
        log.info(
          `queue: ${counts.waiting} waiting, ${counts.running} running, ${counts.done} done, ${counts.failed} failed`,
        );
      }
    }
    if (store.pendingCells().length === 0) {
      // the run is complete: its keys are no longer needed (jobs stay for `queue status` until they age out)
      await redis.del(keys.records, keys.cursor, keys.tokens, ...store.cells.map((c) => keys.checkpoint(c.id)));
      await deleteMatching(redis, keys.payloads); // of attempts whose records came after the end (lost workers)
      await redis.set(keys.meta, JSON.stringify({ ...meta, finishedAt: new Date().toISOString() }));
    }
    return targetCells.map((c) => outcomes.get(c.id) as CellOutcome);
  } finally {
    await queue.close().catch(() => undefined);
    await Promise.all([redis.quit().catch(() => undefined), reader.quit().catch(() => undefined)]);
  }
}

/** Makes the checkpoint in Redis and the one on disk agree (after a coordinator restart). */
async function reconcileCheckpoint(redis: Redis, key: string, cell: CellStore): Promise<void> {
  const disk = loadCheckpoint(cell);
  const raw = await getLarge(redis, key);
  const blob = raw ? (JSON.parse(raw) as CheckpointBlob) : null;
  const diskEpisode = disk?.state.episode ?? -1;
  if (disk && (!blob || blob.episode < diskEpisode)) {
    const episodes = readEpisodes(cell).episodes.slice(0, diskEpisode);
    const fresh: CheckpointBlob = { episode: diskEpisode, files: packDir(disk.dir), episodes, best: cell.readBest() };
    await redis.set(key, JSON.stringify(fresh));
  } else if (blob && blob.episode > diskEpisode) {
    if (cell.episodeCount() < blob.episode) {
      truncateEpisodes(cell, 0);
      for (const e of blob.episodes) appendEpisode(cell, e);
    }
    await writeCheckpointToDisk(cell, blob.files);
  }
}

/** Deletes the keys matching a pattern (SCAN, not KEYS: Redis stays responsive). */
async function deleteMatching(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (found.length > 0) await redis.del(...found);
    cursor = next;
  } while (cursor !== '0');
}

/** Writes a packed checkpoint folder with the run store's atomic checkpoint writer. */
async function writeCheckpointToDisk(cell: CellStore, files: PackedFiles): Promise<void> {
  const mark = files['checkpoint.json'];
  if (!mark) throw new Error(`checkpoint of ${cell.id} without checkpoint.json`);
  const { state } = JSON.parse(Buffer.from(mark, 'base64').toString('utf8')) as { state: CheckpointState };
  const rest: PackedFiles = { ...files };
  delete rest['checkpoint.json'];
  await saveCheckpoint(cell, state, (dir) => unpackDir(rest, dir));
}

/** uniform.json, final.json and final-network/ of a finished cell; new entries of the warm-up cache. */
function writeResultFiles(store: RunStore, cell: CellStore, files: PackedFiles): void {
  const warmups = new Map<string, PackedFiles>();
  for (const [rel, b64] of Object.entries(files)) {
    const bytes = Buffer.from(b64, 'base64');
    if (rel === 'cell/uniform.json')
      cell.writeUniform((JSON.parse(bytes.toString('utf8')) as { points: UniformPoint[] }).points);
    else if (rel === 'cell/final.json') cell.writeFinal(JSON.parse(bytes.toString('utf8')) as FinalRecord);
    else if (rel.startsWith('cell/')) {
      const p = safeJoin(cell.dir, rel.slice('cell/'.length));
      mkdirSync(join(p, '..'), { recursive: true });
      writeBinaryAtomic(p, bytes);
    } else if (rel.startsWith('warmup/')) {
      const [, name, ...rest] = rel.split('/');
      if (!name || rest.length === 0) continue;
      const m = warmups.get(name) ?? {};
      m[rest.join('/')] = b64;
      warmups.set(name, m);
    }
  }
  for (const [name, entries] of warmups) {
    const dest = safeJoin(join(store.dir, 'warmup'), name);
    if (existsSync(dest)) continue;
    const tmp = `${dest}.tmp-${process.pid}-${Date.now()}`;
    unpackDir(entries, tmp);
    try {
      renameSync(tmp, dest);
    } catch {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}
