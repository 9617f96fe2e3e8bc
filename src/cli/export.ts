import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.js';
import { exportNetwork, loadNetwork, readBitsFile } from '../quant/index.js';
import { prepareOutputDir } from '../util/output-dir.js';
import type { CliCommand } from './types.js';
import { formatTable, printJson, printText } from './output.js';

/** `bitalloc export --checkpoint DIR --bits-file F --out DIR2`: packed integer export. */
export const exportCommand: CliCommand = {
  command: 'export',
  describe: 'Write a checkpoint as packed integer weights, per-channel scales and a JSON manifest',
  builder: (y) =>
    y
      .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (model.json, weights.bin, bits.json)' })
      .option('bits-file', { type: 'string', describe: "bit allocation JSON {\"layers\":[{\"name\",\"wBits\",\"aBits\"}]} (default: the checkpoint's bits)" })
      .option('out', { type: 'string', demandOption: true, describe: 'output directory' })
      .option('force', { type: 'boolean', default: false, describe: 'replace the files of an earlier export in --out' }),
  handler: async (args) => {
    const out = String(args['out']);
    const checkpoint = String(args['checkpoint']);
    if (!existsSync(checkpoint)) throw new UserError('checkpoint directory not found', { file: checkpoint, field: '--checkpoint', expected: 'a directory written by `bitalloc train --out DIR`' });
    // refuse a checkpoint, run or earlier export as the output, and check it is writable, before loading anything
    prepareOutputDir(out, { kind: 'export', command: 'export', force: Boolean(args['force']) });
    const { net } = await loadNetwork(checkpoint);
    try {
      const bitsFile = args['bitsFile'] as string | undefined;
      const bits = bitsFile ? readBitsFile(bitsFile, net.layers) : undefined;
      const m = exportNetwork(net, out, { bits });
      const layers = m.layers.map((l) => ({ name: l.name, wBits: l.wBits, aBits: l.aBits, params: l.params, weightsBytes: l.weightsBytes, scalesBytes: l.scalesBytes, foldedBatchNorm: l.foldedBatchNorm }));
      const summary = { out: path.resolve(out), manifest: path.resolve(out, 'manifest.json'), weightsBytes: m.weightsBytes, layers };
      if (args.json) {
        printJson(summary);
        return;
      }
      printText(
        formatTable(
          ['layer', 'wBits', 'aBits', 'params', 'weight bytes', 'scale bytes', 'folded BN'],
          [
            ...layers.map((l) => [l.name, l.wBits, l.aBits, l.params, l.weightsBytes, l.scalesBytes, l.foldedBatchNorm ?? '-']),
            ['total', '', '', layers.reduce((a, l) => a + l.params, 0), layers.reduce((a, l) => a + l.weightsBytes, 0), layers.reduce((a, l) => a + l.scalesBytes, 0), ''],
          ],
        ) +
          `\n${m.weightsFile}: ${m.weightsBytes} bytes (weight bytes + scale bytes)` +
          `\nwrote ${summary.manifest} and ${path.resolve(out, m.weightsFile)}`,
      );
    } finally {
      net.model.dispose();
    }
  },
};
