import { agentInfos } from '../../agents/index.js';
import type { CliCommand } from './types.js';
import { formatTable, printJson, printText } from './output.js';

/** `bitalloc agents [--json]`: every registered agent with its description and options (type, default). */
export const agentsCommand: CliCommand = {
  command: 'agents',
  describe: 'List the agents (names, descriptions, options with their types and defaults)',
  handler: async (args) => {
    const agents = agentInfos();
    if (args.json) {
      printJson({ agents });
      return;
    }
    printText(
      agents
        .map((a) => {
          const head = `${a.name}: ${a.describe}`;
          if (a.options.length === 0) return `${head}\n  (no options)`;
          const table = formatTable(
            ['option', 'type', 'default'],
            a.options.map((o) => [o.name, o.type, JSON.stringify(o.default)]),
          );
          return `${head}\n${table.replace(/^/gm, '  ')}`;
        })
        .join('\n\n'),
    );
  },
};
