import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { DATASET_NAMES, loadDataset } from '../data/index.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { ZOO, isZooName, loadModel } from '../models/index.js';
import { ONNX_FILE, QONNX_FILE, exportOnnx } from '../onnx/export.js';
import { exportNetwork, loadNetwork, type QuantNetwork } from '../quant/index.js';
import { calibrateNetwork } from '../train/trainer.js';
import { prepareOutputDir } from '../util/output-dir.js';
import type { CliCommand, CommandArgs } from './types.js';
import { formatTable, printJson, printText } from './output.js';
import { checkCompatible, datasetOptions, describeBits, parseBitsFlags, resolveBits } from './train.js';

const FORMATS = ['packed', 'onnx', 'qonnx'] as const;

/** The network to export: a checkpoint (its bits unless told), or a float model calibrated on a dataset's training split. */
async function sourceNetwork(args: CommandArgs): Promise<{ net: QuantNetwork; from: string }> {
  const checkpoint = args['checkpoint'] as string | undefined;
  const modelSpec = args['model'] as string | undefined;
  if ((checkpoint === undefined) === (modelSpec === undefined)) {
    throw new UserError('give either --checkpoint DIR or --model FILE', {
      field: checkpoint === undefined ? '--checkpoint' : '--model',
      expected: 'exactly one of --checkpoint, --model',
    });
  }
  const bitsReq = parseBitsFlags(args);
  const datasetFlag = args['dataset'] as string | undefined;
  if (datasetFlag !== undefined && !DATASET_NAMES.includes(datasetFlag))
    throw new UserError(`unknown dataset '${datasetFlag}'`, { field: '--dataset', expected: DATASET_NAMES.join(', ') });
  const dataOpts = datasetOptions(args);
  if (checkpoint !== undefined) {
    // a checkpoint's activation ranges are trained: kept as they are (STE clips do not depend on the bits)
    const { net } = await loadNetwork(checkpoint);
    if (bitsReq) net.setBits(resolveBits(bitsReq, net));
    return { net, from: checkpoint };
  }
  const spec = modelSpec as string;
  if (!bitsReq)
    throw new UserError('a float model needs its allocation', {
      field: '--bits-file',
      expected: '--bits-file F or --wbits W --abits A',
    });
  const dsName = datasetFlag ?? (isZooName(spec) ? ZOO[spec]?.dataset : undefined);
  if (!dsName)
    throw new UserError('post-training export calibrates on a dataset: name it', {
      field: '--dataset',
      expected: DATASET_NAMES.join(', '),
    });
  const ds = await loadDataset(dsName, { seed: args.seed, ...dataOpts });
  const net = await loadModel(spec, { inputShape: ds.inputShape, numClasses: ds.numClasses, seed: args.seed });
  checkCompatible(net, ds, `model ${spec}`);
  const bits = resolveBits(bitsReq, net);
  net.setBits(bits);
  calibrateNetwork(net, ds.train);
  log.info(`${spec} at ${describeBits(bits)}: activation ranges calibrated on ${dsName}'s training split`);
  return { net, from: spec };
}

/** `bitalloc export (--checkpoint DIR | --model FILE [--dataset D]) [--bits-file F | --wbits W --abits A] --format packed|onnx|qonnx --out DIR`. */
export const exportCommand: CliCommand = {
  command: 'export',
  describe: 'Write a quantized network: packed integers + JSON manifest, ONNX (QDQ) or QONNX',
  builder: (y) =>
    y
      .option('checkpoint', { type: 'string', describe: 'checkpoint directory (model.json, weights.bin, bits.json)' })
      .option('model', {
        type: 'string',
        describe: 'a float model (zoo name, model.json or .onnx) for post-training export, calibrated on --dataset',
      })
      .option('dataset', {
        type: 'string',
        describe: `calibration dataset (${DATASET_NAMES.join(', ')}); default: the checkpoint's or zoo model's`,
      })
      .option('data-dir', { type: 'string', describe: 'dataset directory' })
      .option('limit', { type: 'number', hidden: true })
      .option('bits-file', {
        type: 'string',
        describe: 'bit allocation JSON {"layers":[{"name","wBits","aBits"}]} (default: the checkpoint\'s bits)',
      })
      .option('wbits', { type: 'number', describe: 'weight bits of every layer' })
      .option('abits', { type: 'number', describe: 'activation bits of every layer' })
      .option('format', {
        choices: FORMATS,
        default: 'packed' as const,
        describe: 'packed (bitalloc manifest), onnx (QDQ, runs in onnxruntime) or qonnx (Quant nodes)',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'output directory' })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'replace the files of an earlier export in --out',
      }),
  handler: async (args) => {
    const format = String(args['format'] ?? 'packed');
    if (!(FORMATS as readonly string[]).includes(format))
      throw new UserError(`unknown format '${format}'`, { field: '--format', expected: FORMATS.join('|') });
    const out = String(args['out']);
    const checkpoint = args['checkpoint'] as string | undefined;
    if (checkpoint !== undefined && !existsSync(checkpoint)) {
      throw new UserError('checkpoint directory not found', {
        file: checkpoint,
        field: '--checkpoint',
        expected: 'a directory written by `bitalloc train --out DIR`',
      });
    }
    // refuse a checkpoint, run or earlier export as the output, and check it is writable, before loading anything
    const files = format === 'packed' ? undefined : [format === 'onnx' ? ONNX_FILE : QONNX_FILE];
    prepareOutputDir(out, {
      kind: 'export',
      command: 'export',
      force: Boolean(args['force']),
      ...(files ? { files } : {}),
    });
    const { net } = await sourceNetwork(args);
    try {
      if (format !== 'packed') {
        const s = exportOnnx(net, out, format as 'onnx' | 'qonnx');
        if (args.json) {
          printJson({
            out: path.resolve(out),
            file: path.resolve(s.file),
            format: s.format,
            bytes: s.bytes,
            nodes: s.nodes,
            layers: s.layers,
          });
          return;
        }
        printText(
          formatTable(
            ['layer', 'wBits', 'aBits'],
            s.layers.map((l) => [l.name, l.wBits, l.aBits]),
          ) +
            `\nwrote ${path.resolve(s.file)} (${s.bytes} bytes, ${s.nodes} nodes, ${format === 'onnx' ? 'QDQ' : 'QONNX'})`,
        );
        return;
      }
      const m = exportNetwork(net, out);
      const layers = m.layers.map((l) => ({
        name: l.name,
        wBits: l.wBits,
        aBits: l.aBits,
        params: l.params,
        weightsBytes: l.weightsBytes,
        scalesBytes: l.scalesBytes,
        foldedBatchNorm: l.foldedBatchNorm,
      }));
      const summary = {
        out: path.resolve(out),
        manifest: path.resolve(out, 'manifest.json'),
        weightsBytes: m.weightsBytes,
        layers,
      };
      if (args.json) {
        printJson(summary);
        return;
      }
      printText(
        formatTable(
          ['layer', 'wBits', 'aBits', 'params', 'weight bytes', 'scale bytes', 'folded BN'],
          [
            ...layers.map((l) => [
              l.name,
              l.wBits,
              l.aBits,
              l.params,
              l.weightsBytes,
              l.scalesBytes,
              l.foldedBatchNorm ?? '-',
            ]),
            [
              'total',
              '',
              '',
              layers.reduce((a, l) => a + l.params, 0),
              layers.reduce((a, l) => a + l.weightsBytes, 0),
              layers.reduce((a, l) => a + l.scalesBytes, 0),
              '',
            ],
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
