/**
 * `bitalloc eval`: accuracy and loss of a checkpoint on a dataset split, at its own bits or at
 * --wbits/--abits / --bits-file (activation ranges are then calibrated on training batches first).
 */
import { backendInfo } from '../backend/index.js';
import { DATASET_NAMES, loadDataset } from '../data/index.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { loadCheckpoint, namedBits } from '../train/checkpoint.js';
import { calibrateNetwork, type SplitName } from '../train/trainer.js';
import { checkEvalBackend, evaluateWith, resolveEvalBackend, EVAL_BACKENDS, type EvalBackendChoice } from '../search/ort-evaluator.js';
import { formatTable, printJson, printText } from './output.js';
import { checkCompatible, dataAndBitsOptions, datasetOptions, describeBits, parseBitsFlags, resolveBits } from './train.js';
import type { CliCommand, CommandArgs } from './types.js';

const SPLITS: readonly SplitName[] = ['test', 'val', 'train'];

async function evalHandler(args: CommandArgs): Promise<void> {
  const bitsReq = parseBitsFlags(args);
  const dataOpts = datasetOptions(args);
  const checkpointDir = String(args['checkpoint']);
  const evalChoice = (args['eval-backend'] ?? 'auto') as EvalBackendChoice;
  await checkEvalBackend(evalChoice);
  const splitName = (args['split'] ?? 'test') as SplitName;
  const datasetFlag = args['dataset'] === undefined ? undefined : String(args['dataset']);
  if (datasetFlag !== undefined && !DATASET_NAMES.includes(datasetFlag)) {
    throw new UserError(`unknown dataset '${datasetFlag}'`, { field: '--dataset', expected: DATASET_NAMES.join(', ') });
  }
  const ck = await loadCheckpoint(checkpointDir);
  const net = ck.net;
  const datasetName = datasetFlag ?? ck.meta.dataset;
  if (!datasetName) {
    throw new UserError('name the dataset: the checkpoint does not say which it was trained on', { field: '--dataset', expected: DATASET_NAMES.join(', ') });
  }
  const seed = ck.run?.seed ?? args.seed;
  const ds = await loadDataset(datasetName, { seed, ...dataOpts });
  checkCompatible(net, ds, `checkpoint ${checkpointDir}`);
  const saved = net.getBits();
  const bits = bitsReq ? resolveBits(bitsReq, net) : saved;
  net.setBits(bits);
  const changed = bits.some((b, i) => b.wBits !== saved[i]?.wBits || b.aBits !== saved[i]?.aBits);
  if (changed) {
    calibrateNetwork(net, ds.train);
    log.info(`bits changed from the checkpoint's ${describeBits(saved)} to ${describeBits(bits)}: activation ranges calibrated on training batches`);
  }
  const engine = await resolveEvalBackend(evalChoice, net);
  if (engine.reason) log.warn(`evaluating on tfjs: ${engine.reason}`);
  const r = await evaluateWith(engine.evaluator, net, ds[splitName]);
  await engine.evaluator?.dispose();
  const model = ck.meta.model ?? checkpointDir;
  const backend = backendInfo()?.name ?? 'unknown';
  if (args.json) {
    printJson({
      model,
      dataset: datasetName,
      split: splitName,
      seed,
      backend,
      evalBackend: r.engine,
      checkpoint: checkpointDir,
      bits: namedBits(net, bits),
      accuracy: r.accuracy,
      loss: r.loss,
      samples: r.samples,
      samplesPerSec: r.samplesPerSec,
    });
    return;
  }
  printText(
    formatTable(
      ['item', 'value'],
      [
        ['checkpoint', checkpointDir],
        ['model', model],
        ['dataset', `${datasetName} (${splitName}, ${r.samples} samples)`],
        ['bits', describeBits(bits)],
        [`${splitName} accuracy`, `${(r.accuracy * 100).toFixed(2)}%`],
        [`${splitName} loss`, r.loss.toFixed(4)],
        ['samples/s', Math.round(r.samplesPerSec)],
        ['backend', backend],
        ['eval backend', r.engine],
      ],
    ),
  );
}

export const evalCommand: CliCommand = {
  command: 'eval',
  describe: 'Evaluate a checkpoint on a dataset split, at its own bits or at --wbits/--abits / --bits-file',
  builder: (y) =>
    dataAndBitsOptions(y)
      .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (written by `train --out`)' })
      .option('split', { choices: SPLITS, default: 'test', describe: 'which split to evaluate' })
      .option('eval-backend', { choices: EVAL_BACKENDS, default: 'auto', describe: 'engine of the forward passes: auto = onnxruntime-node when it loads, else tfjs' })
      .example('$0 eval --checkpoint runs/lenet5-float --wbits 8 --abits 8', 'post-training quantization at W8A8'),
  handler: evalHandler,
};
