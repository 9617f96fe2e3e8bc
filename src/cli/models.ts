import { buildNetwork, ZOO, ZOO_NAMES } from '../models/index.js';
import type { CliCommand } from './types.js';
import { formatTable, printJson, printText } from './output.js';

/** `bitalloc models [--json]`: the model zoo with default shapes, datasets and sizes. */
export const modelsCommand: CliCommand = {
  command: 'models',
  describe: 'List the model zoo (names, descriptions, default input shapes and datasets, params, MACs)',
  handler: async (args) => {
    const models = ZOO_NAMES.map((name) => {
      const e = ZOO[name];
      const net = buildNetwork(name, { inputShape: e.inputShape, numClasses: e.numClasses, seed: args.seed });
      const params = net.layers.reduce((a, l) => a + l.params + l.biasParams, 0);
      const macs = net.layers.reduce((a, l) => a + l.macs, 0);
      const quantizableLayers = net.layers.length;
      net.model.dispose();
      return {
        name,
        description: e.description,
        inputShape: e.inputShape,
        numClasses: e.numClasses,
        dataset: e.dataset,
        quantizableLayers,
        params,
        macs,
      };
    });
    if (args.json) {
      printJson({ models });
      return;
    }
    printText(
      formatTable(
        ['model', 'input', 'dataset', 'layers', 'params', 'MACs'],
        models.map((m) => [m.name, m.inputShape.join('x'), m.dataset, m.quantizableLayers, m.params, m.macs]),
      ) +
        '\n\n' +
        models.map((m) => `${m.name}: ${m.description}`).join('\n'),
    );
  },
};
