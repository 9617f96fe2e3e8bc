/**
 * Runs every pending cell of a run directory, one after another or on N worker threads
 * (each with its own tfjs engine), and records each cell's status in run.json.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { backendInfo } from '../backend/index.js';
import { log } from '../log.js';
import { envRewardSpec, type Cell, type Experiment } from '../experiment/experiment.js';
import { onStopRequest, stopRequested, type CellStore, type RunStore } from '../run/run-store.js';
import { runSearch, type SearchOptions, type SearchResult, type SearchSpec } from './search.js';

/** The search a cell of an experiment runs. */
export function specForCell(exp: Experiment, cell: Cell): SearchSpec {
  return {
    model: exp.model,
    dataset: exp.dataset,
    dataDir: exp.dataDir,
    profile: cell.profile.path,
    constraints: cell.budget.constraints,
    constraintMode: exp.constraintMode,
    reward: envRewardSpec(exp.reward),
    stepMode: exp.stepMode,
    bitChoices: exp.bitChoices,
    pinFirstLast: exp.pinFirstLast,
    agent: cell.agent.name,
    agentOptions: cell.agent.options,
    episodes: exp.episodes,
    qatSteps: exp.qatSteps,
    warmupEpochs: exp.warmupEpochs,
    finetuneEpochs: exp.finetuneEpochs,
    evalSamples: exp.evalSamples,
    seed: cell.seed,
    checkpointEvery: exp.checkpointEvery,
    ...(exp.evalBackend ? { evalBackend: exp.evalBackend } : {}),
    ...(exp.trainSamples > 0 ? { trainLimit: exp.trainSamples } : {}),
    threads: exp.threads ?? 1,
    ...(exp.batchSize !== undefined ? { batchSize: exp.batchSize } : {}),
    ...(exp.preprocess !== undefined ? { preprocess: exp.preprocess } : {}),
    ...(exp.target !== undefined ? { target: exp.target } : {}),
    ...(exp.distill !== undefined ? { distill: exp.distill } : {}),
    ...(exp.evalCache !== undefined ? { evalCache: exp.evalCache } : {}),
    ...(exp.sharedWeights !== undefined ? { sharedWeights: exp.sharedWeights } : {}),
    ...(exp.valFraction !== undefined ? { valFraction: exp.valFraction } : {}),
    ...(exp.testFraction !== undefined ? { testFraction: exp.testFraction } : {}),
  };
}

export interface CellOutcome {
  id: string;
  ok: boolean;
  result?: SearchResult;
  error?: string;
}

export interface RunOptions {
  /** Worker threads (1 = run in this thread). */
  workers: number;
  /** Stop each cell after this many episodes of this call (testing resume). */
  stopAfter?: number;
}

export function warmupCacheDir(store: RunStore): string {
  return join(store.dir, 'warmup');
}

/** Runs (or resumes) one cell of a run in this thread. */
export async function runCell(
  store: RunStore,
  cell: CellStore,
  opts: {
    label: string;
    plainProgress?: boolean;
    stopAfter?: number;
    hooks?: Pick<SearchOptions, 'onEpisode' | 'onCheckpoint' | 'shouldStop'>;
  },
): Promise<CellOutcome> {
  const result = await runSearch(specForCell(store.experiment, cell.spec), {
    cell,
    warmupCacheDir: warmupCacheDir(store),
    label: opts.label,
    plainProgress: opts.plainProgress,
    stopAfter: opts.stopAfter,
    ...opts.hooks,
  });
  return { id: cell.id, ok: true, result };
}

/** Runs the pending cells of `store`; returns every cell's outcome (failed cells are recorded, not thrown). */
export async function runPendingCells(store: RunStore, opts: RunOptions): Promise<CellOutcome[]> {
  const pending = store.pendingCells();
  if (pending.length === 0) {
    log.info('every cell of this run is done');
    return [];
  }
  log.info(
    `${pending.length} of ${store.cells.length} cells to run${opts.workers > 1 ? ` on ${opts.workers} workers` : ''}`,
  );
  const outcomes: CellOutcome[] = [];
  const finish = (cell: CellStore, o: CellOutcome): void => {
    outcomes.push(o);
    if (o.ok && o.result?.interrupted) {
      cell.setStatus('pending'); // a later --resume continues it from its checkpoint
      return;
    }
    cell.setStatus(o.ok ? 'done' : 'failed', o.ok ? {} : { error: o.error });
    if (!o.ok) log.error(`${cell.id} failed: ${o.error}`);
  };
  if (opts.workers <= 1) {
    for (const cell of pending) {
      if (stopRequested() !== null) break; // SIGINT/SIGTERM: the cells not started stay pending
      cell.setStatus('running');
      try {
        finish(
          cell,
          await runCell(store, cell, {
            label: `[${cell.spec.index + 1}/${store.cells.length}] ${cell.id}`,
            stopAfter: opts.stopAfter,
          }),
        );
      } catch (e) {
        finish(cell, { id: cell.id, ok: false, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return outcomes;
  }
  const queue = [...pending];
  const backend = backendInfo()?.requested ?? 'auto';
  const workerLoop = async (): Promise<void> => {
    while (queue.length > 0 && stopRequested() === null) {
      const cell = queue.shift() as CellStore;
      cell.setStatus('running');
      finish(cell, await runCellInWorker(store, cell, backend, opts));
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.workers, pending.length) }, () => workerLoop()));
  return outcomes;
}

function runCellInWorker(store: RunStore, cell: CellStore, backend: string, opts: RunOptions): Promise<CellOutcome> {
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { runDir: store.dir, cellId: cell.id, backend, logLevel: log.level, stopAfter: opts.stopAfter },
    });
    let settled = false;
    // a signal in the main thread: the worker finishes its episode, checkpoints and reports the cell as interrupted
    const unsubscribe = onStopRequest((reason) => worker.postMessage({ stop: reason }));
    if (stopRequested() !== null) worker.postMessage({ stop: stopRequested() });
    worker.on('message', (m: CellOutcome) => {
      settled = true;
      unsubscribe();
      resolve(m);
    });
    worker.on('error', (e) => {
      if (!settled) resolve({ id: cell.id, ok: false, error: e.message });
      settled = true;
    });
    worker.on('exit', (code) => {
      unsubscribe();
      if (!settled) resolve({ id: cell.id, ok: false, error: `worker exited with code ${code}` });
    });
  });
}
