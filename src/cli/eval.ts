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
import {
  checkEvalBackend,
  evaluateWith,
  resolveEvalBackend,
  EVAL_BACKENDS,
  type EvalBackendChoice,
} from '../search/ort-evaluator.js';
import { formatTable, printJson, printText } from './output.js';
import {
  checkCompatible,
  dataAndBitsOptions,
  datasetOptions,
  describeBits,
  evalBatchFor,
  folderOptions,
  isQuantized,
  parseBitsFlags,
  prepareTargets,
  resolveBits,
} from './train.js';
import { existsSync } from 'node:fs';
import { DEFAULT_PREPROCESS, parsePreprocess } from '../data/preprocess.js';
import { ZOO } from '../models/index.js';
import { loadUserModel } from '../models/user-model.js';
import { calibrationCollector } from '../onnx/calibration.js';
import { checkSplitFractions, fractionOptions } from '../experiment/split-fractions.js';
import { DEFAULT_CALIBRATION, postTrainingQuantize, type CalibrationMethod } from '../quant/ptq.js';
import type { QuantNetwork } from '../quant/network.js';
import type { RunRecord } from '../train/checkpoint.js';
import type { CliCommand, CommandArgs } from './types.js';

const SPLITS: readonly SplitName[] = ['test', 'val', 'train'];

async function evalHandler(args: CommandArgs): Promise<void> {
  const bitsReq = parseBitsFlags(args);
  const dataOpts = datasetOptions(args);
  const checkpointFlag = args['checkpoint'] === undefined ? undefined : String(args['checkpoint']);
  const modelFlag = args['model'] === undefined ? undefined : String(args['model']);
  const evalChoice = (args['eval-backend'] ?? 'auto') as EvalBackendChoice;
  await checkEvalBackend(evalChoice);
  const splitName = (args['split'] ?? 'test') as SplitName;
  const datasetFlag = args['dataset'] === undefined ? undefined : String(args['dataset']);
  const batchFlag = args['batchSize'] === undefined ? undefined : Number(args['batchSize']);
  if (batchFlag !== undefined && !(Number.isInteger(batchFlag) && batchFlag >= 1))
    throw new UserError(`must be an integer >= 1, got '${String(batchFlag)}'`, { field: '--batch-size' });
  if (datasetFlag !== undefined && !DATASET_NAMES.includes(datasetFlag)) {
    throw new UserError(`unknown dataset '${datasetFlag}'`, { field: '--dataset', expected: DATASET_NAMES.join(', ') });
  }
  if ((checkpointFlag === undefined) === (modelFlag === undefined)) {
    throw new UserError('give either --checkpoint DIR (a bitalloc checkpoint) or --model FILE (a float model.json)', {
      field: checkpointFlag === undefined ? '--checkpoint' : '--model',
    });
  }
  if (modelFlag !== undefined && !ZOO[modelFlag] && !existsSync(modelFlag))
    throw new UserError('model file not found', {
      file: modelFlag,
      field: '--model',
      expected: 'a tfjs layers model.json (or its folder)',
    });
  if (modelFlag !== undefined && ZOO[modelFlag])
    throw new UserError(`'${modelFlag}' is an untrained zoo model`, {
      field: '--model',
      expected: 'a trained model.json, or --checkpoint DIR',
    });
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- exactly one of the two is set (checked above)
  const source = checkpointFlag ?? (modelFlag as string);
  let net: QuantNetwork;
  let meta: { model?: string; dataset?: string } = {};
  let run: RunRecord | null = null;
  if (checkpointFlag !== undefined) {
    const ck = await loadCheckpoint(checkpointFlag);
    net = ck.net;
    meta = ck.meta;
    run = ck.run;
  } else {
    net = await loadUserModel(modelFlag as string);
  }
  const datasetName = datasetFlag ?? meta.dataset;
  if (!datasetName) {
    throw new UserError(
      checkpointFlag ? 'name the dataset: the checkpoint does not say which it was trained on' : 'name the dataset',
      { field: '--dataset', expected: DATASET_NAMES.join(', ') },
    );
  }
  const seed = run?.seed ?? args.seed;
  // the data settings recorded by the run (its data folder, preprocessing, targets) unless flags say otherwise
  const recorded = run?.data;
  const folder = folderOptions(args, source);
  if (
    recorded?.preprocess &&
    args['resize'] === undefined &&
    args['channels'] === undefined &&
    args['range'] === undefined
  ) {
    folder.preprocess = parsePreprocess(recorded.preprocess, DEFAULT_PREPROCESS, '$.data.preprocess', checkpointFlag);
  }
  const dataDir = dataOpts.dataDir ?? (datasetFlag === undefined ? (run?.dataDir ?? undefined) : undefined);
  // the split fractions the checkpoint was trained with, unless flags say otherwise
  const fractions = {
    ...fractionOptions({ valFraction: recorded?.valFraction, testFraction: recorded?.testFraction }),
    ...fractionOptions(dataOpts),
  };
  checkSplitFractions(fractions, datasetName);
  const ds = await loadDataset(datasetName, {
    seed,
    ...dataOpts,
    ...fractions,
    ...(dataDir ? { dataDir } : {}),
    ...folder,
  });
  checkCompatible(net, ds, checkpointFlag ? `checkpoint ${checkpointFlag}` : `model ${source}`);
  const targetArgs = {
    ...args,
    ...(args['target'] === undefined && recorded?.target ? { target: recorded.target } : {}),
  } as CommandArgs;
  const saved = net.getBits();
  const targets =
    modelFlag !== undefined || ds.labeled === false || targetArgs['target'] === 'fidelity'
      ? prepareTargets(net, ds, targetArgs)
      : { metric: 'accuracy' as const };
  const bits = bitsReq ? resolveBits(bitsReq, net) : saved;
  net.setBits(bits);
  const changed = bits.some((b, i) => b.wBits !== saved[i]?.wBits || b.aBits !== saved[i]?.aBits);
  const method = (
    args['calibration'] === undefined ? DEFAULT_CALIBRATION : String(args['calibration'])
  ) as CalibrationMethod;
  const calBatch = Math.min(16, batchFlag ?? 16);
  if (changed && isQuantized(bits)) {
    if (modelFlag !== undefined || args['calibration'] !== undefined) {
      const collect = await calibrationCollector(evalChoice);
      await postTrainingQuantize(net, ds.train, { method, batchSize: calBatch, ...(collect ? { collect } : {}) });
      log.info(
        `post-training quantization to ${describeBits(bits)}: ${method} activation ranges and bias correction from the train split`,
      );
    } else {
      calibrateNetwork(net, ds.train);
      log.info(
        `bits changed from the checkpoint's ${describeBits(saved)} to ${describeBits(bits)}: activation ranges calibrated on training batches`,
      );
    }
  }
  const engine = await resolveEvalBackend(evalChoice, net);
  if (engine.reason) log.warn(`evaluating on tfjs: ${engine.reason}`);
  const r = await evaluateWith(engine.evaluator, net, ds[splitName], { batchSize: batchFlag ?? evalBatchFor(ds) });
  await engine.evaluator?.dispose();
  const model = meta.model ?? source;
  const checkpointDir = checkpointFlag ?? null;
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
      modelFile: modelFlag ?? null,
      bits: namedBits(net, bits),
      metric: targets.metric,
      calibration:
        changed && isQuantized(bits)
          ? modelFlag !== undefined || args['calibration'] !== undefined
            ? method
            : 'ema'
          : null,
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
        [checkpointDir ? 'checkpoint' : 'model file', source],
        ['model', model],
        ['dataset', `${datasetName} (${splitName}, ${r.samples} samples)`],
        ['bits', describeBits(bits)],
        [
          targets.metric === 'agreement' ? `${splitName} agreement with float` : `${splitName} accuracy`,
          `${(r.accuracy * 100).toFixed(2)}%`,
        ],
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
      .option('checkpoint', { type: 'string', describe: 'checkpoint directory (written by `train --out`)' })
      .option('model', {
        type: 'string',
        describe:
          'a float model.json (e.g. your own pretrained network): post-training quantized as asked, calibrated on the train split',
      })
      .option('batch-size', { type: 'number', describe: 'evaluation batch (default 256; 64 at 224x224)' })
      .option('split', { choices: SPLITS, default: 'test', describe: 'which split to evaluate' })
      .option('eval-backend', {
        choices: EVAL_BACKENDS,
        default: 'auto',
        describe: 'engine of the forward passes: auto = onnxruntime-node when it loads, else tfjs',
      })
      .example('$0 eval --checkpoint runs/lenet5-float --wbits 8 --abits 8', 'post-training quantization at W8A8')
      .example(
        '$0 eval --model my-net/model.json --dataset folder --data-dir photos --wbits 8 --abits 8',
        'PTQ of your own network, label-free',
      ),
  handler: evalHandler,
};
