/**
 * `bitalloc worker --queue URL [--concurrency N] [--store DIR]`: runs cells of queued runs until stopped.
 * SIGTERM/SIGINT: every running cell finishes its episode, checkpoints and goes back to the queue; a second
 * signal exits at once (the cells are then recovered as stalled jobs).
 */
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { DEFAULT_PREFIX, connectQueue, startQueueWorker } from '../queue/index.js';
import type { CliCommand, CommandArgs } from './types.js';

function intFlag(args: CommandArgs, flag: string, min: number, max: number): number {
  const v = args[flag] as number;
  if (!Number.isInteger(v) || v < min || v > max)
    throw new UserError(`must be an integer ${min}..${max}, got ${String(v)}`, { field: `--${flag}` });
  return v;
}

export const workerCommand: CliCommand = {
  command: 'worker',
  describe: 'Take cells of queued runs (bitalloc run --queue) off Redis and run them, until stopped',
  builder: (y) =>
    y
      .option('queue', {
        type: 'string',
        demandOption: true,
        describe: 'Redis URL: redis://HOST:PORT or rediss://HOST:PORT (TLS)',
      })
      .option('prefix', {
        type: 'string',
        default: DEFAULT_PREFIX,
        describe: 'Redis key prefix, as given to the coordinator',
      })
      .option('concurrency', { type: 'number', default: 1, describe: 'cells run at the same time (one thread each)' })
      .option('store', {
        type: 'string',
        describe: 'local folder for cells being run and the warm-up cache (default: a temp folder)',
      })
      .option('lock-duration', {
        type: 'number',
        default: 30000,
        describe: 'ms a cell stays with a worker that stopped answering',
      })
      .option('stalled-interval', {
        type: 'number',
        default: 15000,
        describe: 'ms between checks for cells whose worker is gone',
      })
      .option('max-stalled', {
        type: 'number',
        default: 3,
        describe: 'times a cell may lose its worker before it fails',
      }),
  handler: async (args) => {
    const concurrency = intFlag(args, 'concurrency', 1, 64);
    const lockDurationMs = intFlag(args, 'lock-duration', 500, 3_600_000);
    const stalledIntervalMs = intFlag(args, 'stalled-interval', 200, 3_600_000);
    const maxStalledCount = intFlag(args, 'max-stalled', 0, 1000);
    const target = await connectQueue(args['queue'], args['prefix']);
    const worker = await startQueueWorker({
      target,
      concurrency,
      storeDir: args['store'] as string | undefined,
      lockDurationMs,
      stalledIntervalMs,
      maxStalledCount,
      logLevel: args.logLevel,
      warmBackend: args.backend,
    });
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        log.warn(`${sig} again: exiting now`);
        process.exit(130);
      }
      log.info(`${sig}: finishing the current episode, then handing the cells back`);
      void worker.stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      await worker.closed;
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    log.info(`worker ${worker.name}: stopped after ${worker.finished()} cell(s)`);
  },
};
