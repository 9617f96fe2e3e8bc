import { UserError } from '../errors.js';
import { loadInventory } from '../models/index.js';
import type { CliCommand } from './types.js';
import { formatTable, printJson, printText } from './output.js';

function parseShape(v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const parts = String(v)
    .split(/[x,]/)
    .map((s) => Number(s.trim()));
  if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new UserError(`invalid input shape '${String(v)}'`, {
      field: '--input-shape',
      expected: 'h,w,c (e.g. 32,32,3)',
    });
  }
  return parts;
}

/** `bitalloc inspect --model M [--json]`: a model's layer inventory. */
export const inspectCommand: CliCommand = {
  command: 'inspect',
  describe: "Print a model's layer inventory (zoo name or path to a model.json)",
  builder: (y) =>
    y
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'zoo model name or path to a tfjs model.json (or its directory)',
      })
      .option('input-shape', { type: 'string', describe: "input shape h,w,c for a zoo model (default: the model's)" })
      .option('num-classes', { type: 'number', describe: "classes for a zoo model (default: the model's)" }),
  handler: async (args) => {
    const numClasses = args['numClasses'] as number | undefined;
    if (numClasses !== undefined && (!Number.isInteger(numClasses) || numClasses < 2)) {
      throw new UserError(`--num-classes must be an integer >= 2, got ${String(numClasses)}`, {
        field: '--num-classes',
      });
    }
    const layers = await loadInventory(String(args['model']), {
      inputShape: parseShape(args['inputShape']),
      numClasses,
    });
    if (args.json) {
      printJson({ layers });
      return;
    }
    const sum = (f: (l: (typeof layers)[number]) => number) => layers.reduce((a, l) => a + f(l), 0);
    const rows = layers.map((l) => [
      l.index,
      l.name,
      l.kind,
      `${l.inChannels}->${l.outChannels}`,
      l.kind === 'dense' ? '-' : l.kernel.join('x'),
      l.kind === 'dense' ? '-' : l.stride.join('x'),
      l.inSize.join('x'),
      l.outSize.join('x'),
      l.params,
      l.biasParams,
      l.macs,
      l.inElements,
      l.outElements,
      l.liveElements,
    ]);
    rows.push([
      '',
      'total',
      '',
      '',
      '',
      '',
      '',
      '',
      sum((l) => l.params),
      sum((l) => l.biasParams),
      sum((l) => l.macs),
      '',
      '',
      '',
    ]);
    printText(
      formatTable(
        [
          '#',
          'name',
          'kind',
          'channels',
          'kernel',
          'stride',
          'in',
          'out',
          'params',
          'bias',
          'MACs',
          'inElems',
          'outElems',
          'live',
        ],
        rows,
      ),
    );
    printText(
      'params: kernel weights; bias: bias plus a folded BatchNorm (2 per channel); MACs per sample; ' +
        'inElems/outElems: activation elements per sample;\nlive: elements of earlier tensors still held while the layer runs ' +
        "(residual branches waiting for their Add), besides its own input; kernel/stride '-': a dense layer has none",
    );
  },
};
