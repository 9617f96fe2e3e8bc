/**
 * A worker thread that runs one cell of a run with its own tfjs engine. The main thread holds the run's
 * lock and owns run.json; the worker writes only inside its cell's folder (and the shared warm-up cache,
 * by atomic rename).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { setLogLevel, type LogLevel } from '../log.js';
import { RunStore, readJsonFile, requestStop, type RunInfo } from '../run/run-store.js';
import type { Experiment } from '../experiment/experiment.js';
import { runCell, type CellOutcome } from './runner.js';

interface Job {
  runDir: string;
  cellId: string;
  backend: BackendChoice;
  logLevel: LogLevel;
  stopAfter?: number;
}

async function main(job: Job): Promise<CellOutcome> {
  setLogLevel(job.logLevel);
  await initBackend(job.backend);
  const info = readJsonFile(join(job.runDir, 'run.json')) as RunInfo;
  const experiment = readJsonFile(join(job.runDir, 'experiment.json')) as Experiment;
  const store = new RunStore(job.runDir, experiment, info, false);
  return runCell(store, store.cell(job.cellId), { label: job.cellId, plainProgress: true, stopAfter: job.stopAfter });
}

const job = workerData as Job;
// the main thread forwards SIGINT/SIGTERM as { stop: signal }: finish the episode, checkpoint, return
const onMessage = (m: unknown): void => {
  if (m && typeof m === 'object' && typeof (m as { stop?: unknown }).stop === 'string')
    requestStop((m as { stop: string }).stop);
};
parentPort?.on('message', onMessage);
const done = (o: CellOutcome): void => {
  parentPort?.off('message', onMessage);
  parentPort?.postMessage(o);
};
main(job).then(done, (e: unknown) =>
  done({ id: job.cellId, ok: false, error: e instanceof Error ? e.message : String(e) }),
);
