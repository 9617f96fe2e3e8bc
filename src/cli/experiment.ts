import { checkDatasetAvailable } from '../data/index.js';
import { cells, loadExperiment } from '../experiment/experiment.js';
import { warnEpisodes } from './run.js';
import type { CliCommand } from './types.js';
import { formatTable, printJson, printText } from './output.js';

/** `bitalloc experiment validate FILE [--set key=value ...]`: checks an experiment file and lists its cells. */
export const experimentCommand: CliCommand = {
  command: 'experiment',
  describe: 'Experiment files: validate one and list the cells it would run',
  builder: (y) =>
    y
      .command({
        command: 'validate <file>',
        describe: 'Check an experiment file (every problem with its JSON path) and list its cells; writes nothing',
        builder: (yy) =>
          yy.positional('file', { type: 'string', describe: 'experiment JSON file' }).option('set', {
            type: 'string',
            array: true,
            describe: 'override a field: --set episodes=20 --set agents.0.options.learningRate=0.001',
          }),
        handler: async (a) => {
          const args = a as unknown as { file: string; set?: string[]; json: boolean };
          const exp = loadExperiment(args.file, args.set ?? []);
          checkDatasetAvailable(exp.dataset, exp.dataDir);
          warnEpisodes(exp.episodes);
          const list = cells(exp);
          if (args.json) {
            printJson({
              valid: true,
              file: args.file,
              experiment: exp,
              cells: list.map((c) => ({
                id: c.id,
                agent: c.agent.label,
                profile: c.profile.id,
                budget: c.budget.constraints,
                seed: c.seed,
              })),
            });
            return;
          }
          printText(
            `${args.file}: valid experiment '${exp.name}': ${exp.model} on ${exp.dataset}, ${list.length} cell${list.length === 1 ? '' : 's'} of ${exp.episodes} episodes\n` +
              formatTable(
                ['cell', 'agent', 'profile', 'budget', 'seed'],
                list.map((c) => [
                  c.id,
                  c.agent.label,
                  c.profile.id,
                  c.budget.constraints.join(', ') || 'unconstrained',
                  c.seed,
                ]),
              ),
          );
        },
      })
      .demandCommand(1, 'name a subcommand: validate'),
  handler: async () => {
    // subcommands do the work
  },
};
