/**
 * A worker thread that runs queued cells, one at a time, in the worker's scratch run folder with its own tfjs engine,
 * through the same runCell() as a local run, and posts what the cell writes to the thread that owns the
 * Redis connection: each episode record, each checkpoint (packed right after it is saved), log lines, and
 * the outcome. The thread that owns the job stays free to renew its lock while the cell computes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Writable } from 'node:stream';
import winston from 'winston';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { log, setLogLevel, type LogLevel } from '../log.js';
import { RunStore, type RunInfo } from '../run/run-store.js';
import type { Experiment } from '../experiment/experiment.js';
import { runCell, type CellOutcome } from '../search/runner.js';
import { packDir, type LogEntry, type PackedFiles } from './records.js';
import type { EpisodeRecord } from '../run/run-store.js';

/** What a cell run needs; a thread runs one cell at a time, many in turn (its tfjs engine and imports are reused). */
export interface CellThreadData {
  runDir: string;
  info: RunInfo;
  experiment: Experiment;
  cellId: string;
  label: string;
  backend: BackendChoice;
  logLevel: LogLevel;
}

/** workerData of the thread: index 0 of this Int32Array set to 1 stops the current cell after its episode. */
export interface CellThreadInit {
  stop: SharedArrayBuffer;
  /** Backend to start at once (the worker's own), so that the first cell does not wait for it. */
  warmBackend?: BackendChoice;
}

export type CellThreadMessage =
  | { type: 'episode'; record: EpisodeRecord }
  | { type: 'checkpoint'; episode: number; files: PackedFiles }
  | { type: 'log'; entry: LogEntry }
  /** Imports loaded and the warm backend started: the thread is ready for a cell. */
  | { type: 'ready' }
  | { type: 'outcome'; outcome: CellOutcome };

const init = workerData as CellThreadInit;
const stop = new Int32Array(init.stop);
const post = (m: CellThreadMessage): void => parentPort?.postMessage(m);

// the run's log: every record of this thread goes back as a JSON line (the coordinator appends it to log.jsonl)
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        post({ type: 'log', entry: JSON.parse(line) as LogEntry });
      } catch {
        // not a JSON line: nothing to forward
      }
    }
    done();
  },
});
log.add(
  new winston.transports.Stream({
    stream: sink,
    level: 'debug',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  }),
);

// this module's imports (search, training, tfjs) are loaded by now; the backend starts before the first cell comes
const warming: Promise<unknown> = (init.warmBackend ? initBackend(init.warmBackend) : Promise.resolve()).catch(
  () => undefined, // the cell's own initBackend reports the error
);
void warming.then(() => post({ type: 'ready' }));

async function runOne(data: CellThreadData): Promise<CellOutcome> {
  setLogLevel(data.logLevel);
  await warming;
  await initBackend(data.backend);
  const store = new RunStore(data.runDir, data.experiment, data.info, false);
  const cell = store.cell(data.cellId);
  return runCell(store, cell, {
    label: data.label,
    plainProgress: true,
    hooks: {
      onEpisode: (record) => post({ type: 'episode', record }),
      onCheckpoint: (episode) => post({ type: 'checkpoint', episode, files: packDir(cell.checkpointDir) }),
      shouldStop: () => Atomics.load(stop, 0) === 1,
    },
  });
}

parentPort?.on('message', (data: CellThreadData) => {
  runOne(data).then(
    (outcome) => post({ type: 'outcome', outcome }),
    (e: unknown) =>
      post({
        type: 'outcome',
        outcome: { id: data.cellId, ok: false, error: e instanceof Error ? e.message : String(e) },
      }),
  );
});
