/**
 * What travels through Redis between workers and the coordinator: the job of a cell, the records a worker
 * appends to the run's stream while it runs the cell (episodes, checkpoints, log lines, result files), and
 * folders packed as JSON (relative path -> base64 bytes).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { Experiment } from '../experiment/experiment.js';
import type { CellFile, EpisodeRecord } from '../run/run-store.js';
import type { SearchResult } from '../search/search.js';

/** The data of a cell's BullMQ job. */
export interface CellJobData {
  runKey: string;
  runName: string;
  cellId: string;
  /** 0-based index and number of cells of the run (for labels). */
  index: number;
  total: number;
  experiment: Experiment;
  cell: CellFile;
  /** tfjs backend the run uses (what the coordinator was asked for). */
  backend: string;
}

/** What a worker reports as the job's progress (shown by `queue status`). */
export interface CellProgress {
  worker: string;
  episode: number;
  episodes: number;
}

/** A folder as JSON: relative POSIX paths to base64 contents. */
export type PackedFiles = Record<string, string>;

/** The last checkpoint of a cell as the coordinator has written it, kept in Redis for the next worker. */
export interface CheckpointBlob {
  episode: number;
  /** The checkpoint folder (with checkpoint.json). */
  files: PackedFiles;
  /** Episodes 1..episode. */
  episodes: EpisodeRecord[];
  best: EpisodeRecord | null;
}

export interface LogEntry {
  level: string;
  message: string;
  timestamp?: string;
  [key: string]: unknown;
}

export type CellRecord =
  | { type: 'start'; worker: string; from: number }
  | { type: 'episode'; record: EpisodeRecord }
  | { type: 'checkpoint'; episode: number; files: PackedFiles }
  | { type: 'log'; entries: LogEntry[] }
  /** Files of the cell folder (`cell/...`) and of the run's warm-up cache (`warmup/...`). */
  | { type: 'files'; files: PackedFiles }
  | { type: 'done'; result: SearchResult }
  | { type: 'released'; episode: number }
  | { type: 'failed'; error: string };

/** One stream entry: the cell, the attempt that wrote it, and the record. */
export interface StreamEntry {
  cell: string;
  token: string;
  record: CellRecord;
}

/** Packs every file under `dir` (recursively). Names containing `.tmp-` are skipped. */
export function packDir(dir: string, into: PackedFiles = {}, under = ''): PackedFiles {
  if (!existsSync(dir)) return into;
  const walk = (d: string): void => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      if (f.name.includes('.tmp-')) continue;
      const p = join(d, f.name);
      if (f.isDirectory()) walk(p);
      else if (f.isFile()) into[posix(join(under, relative(dir, p)))] = readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return into;
}

/** Writes packed files under `dir` (plain writes: for scratch folders). Rejects paths that leave `dir`. */
export function unpackDir(files: PackedFiles, dir: string): void {
  for (const [rel, b64] of Object.entries(files)) {
    const p = safeJoin(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, Buffer.from(b64, 'base64'));
  }
}

/** `dir/rel` for a relative path that stays inside `dir`. */
export function safeJoin(dir: string, rel: string): string {
  if (rel === '' || rel.startsWith('/') || rel.split('/').some((s) => s === '..' || s === ''))
    throw new Error(`bad packed path '${rel}'`);
  return join(dir, ...rel.split('/'));
}

function posix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

/** Sub-folders of `dir` (names), for telling new warm-up cache entries from old ones. */
export function listDirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => !f.includes('.tmp-') && statSync(join(dir, f)).isDirectory());
}
