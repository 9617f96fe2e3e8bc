/** `bitalloc queue status --queue URL [--prefix P] [--run KEY] [--json]`: what the cells of queued runs are doing. */
import { DEFAULT_PREFIX, connectQueue, queueStatus } from '../queue/index.js';
import { formatTable, printJson, printText } from './output.js';
import type { CliCommand } from './types.js';

export const queueCommand: CliCommand = {
  command: 'queue',
  describe: 'Queued runs on Redis: cells waiting, running (worker, episode), done, failed',
  builder: (y) =>
    y
      .command({
        command: 'status',
        describe:
          'Cells of every run under the prefix (or one --run): waiting, running on which worker at which episode, done, failed with the error',
        builder: (yy) =>
          yy
            .option('queue', {
              type: 'string',
              demandOption: true,
              describe: 'Redis URL: redis://HOST:PORT or rediss://HOST:PORT (TLS)',
            })
            .option('prefix', { type: 'string', default: DEFAULT_PREFIX, describe: 'Redis key prefix' })
            .option('run', { type: 'string', describe: 'only this run (its key, as the coordinator prints it)' }),
        handler: async (a) => {
          const args = a as unknown as { queue: string; prefix: string; run?: string; json: boolean };
          const target = await connectQueue(args.queue, args.prefix);
          const runs = await queueStatus(target, args.run ? { runKey: args.run } : {});
          if (args.json) {
            printJson({ queue: target.display, prefix: target.prefix, runs });
            return;
          }
          if (runs.length === 0) {
            printText(`no runs under prefix '${target.prefix}' on ${target.display}`);
            return;
          }
          for (const r of runs) {
            const c = r.counts;
            printText(
              `run ${r.runKey} (${r.name}, ${r.dir} on ${r.host}${r.finishedAt ? ', finished' : ''}): ` +
                `${c.waiting} waiting, ${c.running} running, ${c.done} done, ${c.failed} failed`,
            );
            if (r.cells.length === 0) continue;
            printText(
              formatTable(
                ['cell', 'state', 'worker', 'episode', 'error'],
                r.cells.map((x) => [
                  x.cell,
                  x.state,
                  x.worker ?? '',
                  x.episode !== undefined ? `${x.episode}/${x.episodes ?? '?'}` : '',
                  (x.error ?? '').split('\n')[0] ?? '',
                ]),
              ),
            );
          }
        },
      })
      .demandCommand(1, 'name a subcommand: status'),
  handler: async () => {
    // subcommands do the work
  },
};
