/**
 * `bitalloc train`: float training (no bits given) or quantization-aware training (--wbits/--abits
 * or --bits-file), from scratch or from a checkpoint; reports test accuracy and loss, and with
 * --out saves a checkpoint (network + run.json).
 */
import { existsSync } from 'node:fs';
import type { Argv } from 'yargs';
import { fractionFlagValues, splitFractionOptions } from './fraction-flags.js';
import { backendInfo } from '../backend/index.js';
import {
  DATASET_NAMES,
  DATASETS,
  loadDataset,
  splitSizes,
  type Dataset,
  type LoadDatasetOptions,
} from '../data/index.js';
import {
  CHANNEL_ORDERS,
  DEFAULT_PREPROCESS,
  parsePreprocess,
  PIXEL_RANGES,
  readModelPreprocess,
  RESIZE_MODES,
} from '../data/preprocess.js';
import { modelFileInputShape } from '../train/compatible.js';
import { CALIBRATION_METHODS, DEFAULT_CALIBRATION } from '../quant/ptq.js';
import { applyTargets, TARGETS, type Target, type TargetsApplied } from '../train/distill.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { formatBits, uniformBits, VALID_BITS, type BitConfig } from '../models/layer-info.js';
import { loadModel, ZOO, ZOO_NAMES } from '../models/index.js';
import type { QuantizerKind } from '../quant/api.js';
import { readBitsFile } from '../quant/bits-file.js';
import type { QuantNetwork } from '../quant/network.js';
import {
  loadCheckpoint,
  namedBits,
  runVersions,
  saveCheckpoint,
  type NetworkMeta,
  type RunDataSettings,
  type RunRecord,
} from '../train/checkpoint.js';
import { applyFineTuneRegime, PRETRAINED_FINETUNE } from '../train/finetune.js';
import { postTrainingQuantize, type CalibrationMethod } from '../quant/ptq.js';
import { trainingDefaults } from '../train/defaults.js';
import { defaultThreads, threadsFlag } from '../train/parallel.js';
import { createTrainer, OPTIMIZERS, type LrSchedule, type OptimizerName } from '../train/trainer.js';
import { formatTable, printJson, printText } from './output.js';
import { Progress } from '../util/progress.js';
import { prepareOutputDir } from '../util/output-dir.js';
import type { CliCommand, CommandArgs } from './types.js';
import { checkSplitFractions, fractionOptions, type SplitFractions } from '../experiment/split-fractions.js';

const QUANTIZERS: readonly QuantizerKind[] = ['ste', 'lsq', 'pact'];
const SCHEDULES: readonly LrSchedule[] = ['cosine', 'constant'];

/** Options shared by train and eval: dataset location and bits. */
export function dataAndBitsOptions<T>(y: Argv<T>) {
  return splitFractionOptions(y)
    .option('dataset', {
      type: 'string',
      describe: `dataset: ${DATASET_NAMES.join(', ')} (default: the model's or checkpoint's)`,
    })
    .option('data-dir', {
      type: 'string',
      describe: 'where the dataset files are (fashion-mnist default /usr/share/datasets/fashion-mnist)',
    })
    .option('limit', { type: 'number', describe: 'at most this many samples per split (quick runs)' })
    .option('num-classes', {
      type: 'number',
      describe: 'class count of --dataset idx (labels 0..N-1); default: largest label + 1',
    })
    .option('wbits', {
      type: 'number',
      describe: `weight bits of every layer (${VALID_BITS.join('|')}; 32 = float); needs --abits`,
    })
    .option('abits', { type: 'number', describe: 'activation bits of every layer; needs --wbits' })
    .option('bits-file', {
      type: 'string',
      describe: 'per-layer bits: {"layers":[{"name":"conv1","wBits":4,"aBits":4}, ...]}',
    })
    .option('image-size', {
      type: 'string',
      describe: "folder dataset: HxW of the input (default: the model file's input)",
    })
    .option('resize', {
      choices: RESIZE_MODES,
      describe:
        'folder dataset: shorter side + centre crop, or stretch (default: preprocess.json beside the model, else crop)',
    })
    .option('channels', {
      choices: CHANNEL_ORDERS,
      describe: 'folder dataset: channel order of the input (default rgb)',
    })
    .option('range', {
      choices: PIXEL_RANGES,
      describe: 'folder dataset: pixel scaling (default 0-1; mean/std go in preprocess.json)',
    })
    .option('skip-unreadable', {
      type: 'boolean',
      describe: 'folder dataset: leave out images that cannot be decoded (counted) instead of failing',
    })
    .option('target', {
      choices: TARGETS,
      describe:
        'accuracy against labels, or fidelity: top-1 agreement with the float network (default: fidelity for label-free data)',
    })
    .option('distill', {
      type: 'boolean',
      describe: "train on the float network's soft targets (KL); always on for label-free data",
    })
    .option('calibration', {
      choices: CALIBRATION_METHODS,
      describe: `activation range calibration of post-training quantization (default ${DEFAULT_CALIBRATION}, with bias correction)`,
    });
}

/** Folder-dataset options from flags, the model's input size and its preprocess.json. */
export function folderOptions(
  args: CommandArgs,
  modelSpec: string | undefined,
): Pick<LoadDatasetOptions, 'imageSize' | 'preprocess' | 'skipUnreadable'> {
  const out: Pick<LoadDatasetOptions, 'imageSize' | 'preprocess' | 'skipUnreadable'> = {};
  const sizeFlag = optString(args, 'imageSize');
  if (sizeFlag !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(sizeFlag);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
      throw new UserError(`invalid image size '${sizeFlag}'`, { field: '--image-size', expected: 'HxW, e.g. 224x224' });
    out.imageSize = [Number(m[1]), Number(m[2])];
  } else {
    const shape = modelSpec !== undefined && !ZOO[modelSpec] ? modelFileInputShape(modelSpec) : null;
    if (shape && typeof shape[0] === 'number' && typeof shape[1] === 'number') out.imageSize = [shape[0], shape[1]];
  }
  const base =
    modelSpec !== undefined && !ZOO[modelSpec] && existsSync(modelSpec) ? readModelPreprocess(modelSpec) : null;
  const flags: Record<string, unknown> = {};
  for (const k of ['resize', 'channels', 'range'] as const) if (args[k] !== undefined) flags[k] = args[k];
  out.preprocess = parsePreprocess(flags, base ?? DEFAULT_PREPROCESS, '--');
  if (args['skipUnreadable'] === true) out.skipUnreadable = true;
  return out;
}

/** Label-free data, --target fidelity and --distill: targets from the float network (call with the network at float bits). */
export function prepareTargets(net: QuantNetwork, ds: Dataset, args: CommandArgs, batchSize = 32): TargetsApplied {
  const target = optString(args, 'target') as Target | undefined;
  if (target === 'accuracy' && ds.labeled === false) {
    throw new UserError(`${ds.source} holds images without labels: there is no accuracy to measure`, {
      field: '--target',
      expected: 'fidelity (agreement with the float network), or class subfolders',
    });
  }
  const saved = net.getBits();
  net.setBits(saved.map(() => ({ wBits: 32, aBits: 32 })));
  try {
    return applyTargets(net, ds, { ...(target ? { target } : {}), distill: args['distill'] === true, batchSize });
  } finally {
    net.setBits(saved);
  }
}

function optNumber(args: CommandArgs, key: string): number | undefined {
  const v = args[key];
  return v === undefined ? undefined : (v as number);
}

function optString(args: CommandArgs, key: string): string | undefined {
  const v = args[key];
  return v === undefined ? undefined : String(v);
}

function checkInt(v: number | undefined, flag: string, min: number): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= min)) {
    throw new UserError(`must be an integer >= ${min}, got '${String(v)}'`, { field: flag });
  }
}

export interface BitsRequest {
  kind: 'uniform' | 'file';
  wBits?: number;
  aBits?: number;
  file?: string;
}

/** Checks --wbits/--abits/--bits-file before any work; null when none is given. */
export function parseBitsFlags(args: CommandArgs): BitsRequest | null {
  const w = optNumber(args, 'wbits');
  const a = optNumber(args, 'abits');
  const file = optString(args, 'bitsFile');
  if (file !== undefined && (w !== undefined || a !== undefined)) {
    throw new UserError('give either --wbits/--abits or --bits-file, not both', { field: '--bits-file' });
  }
  if (file !== undefined) return { kind: 'file', file };
  if (w === undefined && a === undefined) return null;
  if (w === undefined)
    throw new UserError('--abits needs --wbits too', { field: '--wbits', expected: 'both --wbits W and --abits A' });
  if (a === undefined)
    throw new UserError('--wbits needs --abits too', { field: '--abits', expected: 'both --wbits W and --abits A' });
  for (const [flag, v] of [
    ['--wbits', w],
    ['--abits', a],
  ] as const) {
    if (!VALID_BITS.includes(v))
      throw new UserError(`invalid bit-width '${String(v)}'`, {
        field: flag,
        expected: `one of ${VALID_BITS.join(', ')} (32 = float)`,
      });
  }
  return { kind: 'uniform', wBits: w, aBits: a };
}

/** Turns a bits request into a BitConfig for the network's layers. */
export function resolveBits(req: BitsRequest, net: QuantNetwork): BitConfig {
  if (req.kind === 'file') return readBitsFile(req.file as string, net.layers);
  return uniformBits(net.layers, req.wBits as number, req.aBits as number);
}

export function isQuantized(bits: BitConfig): boolean {
  return bits.some((b) => b.wBits < 32 || b.aBits < 32);
}

export function describeBits(bits: BitConfig): string {
  if (!isQuantized(bits)) return 'float';
  const first = bits[0];
  if (first && bits.every((b) => b.wBits === first.wBits && b.aBits === first.aBits))
    return `W${first.wBits}A${first.aBits}`;
  return formatBits(bits);
}

import { checkCompatible } from '../train/compatible.js';
export { checkCompatible };

export function datasetOptions(
  args: CommandArgs,
): { dataDir?: string; limit?: number; numClasses?: number } & SplitFractions {
  const dataDir = optString(args, 'dataDir');
  const limit = optNumber(args, 'limit');
  const numClasses = optNumber(args, 'numClasses');
  const fractions = splitFractionFlags(args);
  checkInt(limit, '--limit', 1);
  checkInt(numClasses, '--num-classes', 2);
  if (numClasses !== undefined && optString(args, 'dataset') !== 'idx') {
    throw new UserError('applies to --dataset idx only (the other datasets have a fixed class count)', {
      field: '--num-classes',
      expected: '--dataset idx --data-dir DIR --num-classes N',
    });
  }
  return {
    ...(dataDir !== undefined ? { dataDir } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(numClasses !== undefined ? { numClasses } : {}),
    ...fractions,
  };
}

/** --val-fraction and --test-fraction, checked (the dataset, when named by --dataset, decides whether a test fraction applies). */
export function splitFractionFlags(args: CommandArgs): SplitFractions {
  const f = fractionFlagValues(args);
  checkSplitFractions(f, optString(args, 'dataset'));
  return f;
}

/** Evaluation batch: 256 for small inputs, 64 at 224x224 (the wasm heap), fewer above. */
export function evalBatchFor(ds: Dataset): number {
  const elems = ds.inputShape[0] * ds.inputShape[1] * ds.inputShape[2];
  return Math.max(8, Math.min(256, 2 ** Math.floor(Math.log2((64 * 224 * 224 * 3) / elems))));
}

export function runDataSettings(ds: Dataset, targets: TargetsApplied, fractions: SplitFractions = {}): RunDataSettings {
  return {
    ...fractionOptions(fractions),
    metric: targets.metric,
    target: targets.metric === 'agreement' ? 'fidelity' : 'accuracy',
    distill: targets.distill,
    classNames: ds.classNames ?? null,
    preprocess: ds.preprocess ?? null,
    imageSize: ds.name === 'folder' ? [ds.inputShape[0], ds.inputShape[1]] : null,
  };
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

async function trainHandler(args: CommandArgs): Promise<void> {
  const started = new Date();
  // flags first: nothing is loaded before they check out
  const epochsFlag = optNumber(args, 'epochs');
  const batchFlag = optNumber(args, 'batchSize');
  const lrFlag = optNumber(args, 'lr');
  checkInt(epochsFlag, '--epochs', 0);
  checkInt(batchFlag, '--batch-size', 1);
  if (lrFlag !== undefined && !(Number.isFinite(lrFlag) && lrFlag > 0)) {
    throw new UserError(`must be a positive number, got '${String(lrFlag)}'`, { field: '--lr' });
  }
  const threadsReq = threadsFlag(args['threads']);
  const bitsReq = parseBitsFlags(args);
  const dataOpts = datasetOptions(args);
  const modelFlag = optString(args, 'model');
  const checkpointDir = optString(args, 'checkpoint');
  const outDir = optString(args, 'out');
  const quantizer = (optString(args, 'quantizer') ?? 'ste') as QuantizerKind;
  const schedule = (optString(args, 'schedule') ?? 'cosine') as LrSchedule;
  const datasetFlag = optString(args, 'dataset');
  if (datasetFlag !== undefined && !DATASET_NAMES.includes(datasetFlag)) {
    throw new UserError(`unknown dataset '${datasetFlag}'`, { field: '--dataset', expected: DATASET_NAMES.join(', ') });
  }
  // the output folder is checked (kind, files it would overwrite, writable) before anything is trained
  if (outDir !== undefined)
    prepareOutputDir(outDir, { kind: 'checkpoint', command: 'train', force: Boolean(args['force']) });
  if (!checkpointDir && modelFlag === undefined) {
    throw new UserError('name the model', {
      field: '--model',
      expected: `one of ${ZOO_NAMES.join(', ')}, a model.json path, or --checkpoint DIR`,
    });
  }
  if (!checkpointDir && modelFlag !== undefined && !ZOO[modelFlag] && !existsSync(modelFlag)) {
    throw new UserError(`unknown model '${modelFlag}'`, {
      field: '--model',
      expected: `one of ${ZOO_NAMES.join(', ')} or a path to a model.json`,
    });
  }

  // the network: from a checkpoint, or built for the dataset
  let net: QuantNetwork;
  let modelName: string;
  let datasetName: string;
  let ds: Dataset;
  if (checkpointDir) {
    const ck = await loadCheckpoint(checkpointDir);
    net = ck.net;
    modelName = ck.meta.model ?? checkpointDir;
    if (modelFlag !== undefined && ck.meta.model !== undefined && modelFlag !== ck.meta.model) {
      throw new UserError(`the checkpoint holds ${ck.meta.model}, not ${modelFlag}`, {
        field: '--model',
        expected: `${ck.meta.model} or no --model`,
      });
    }
    const dsName = datasetFlag ?? ck.meta.dataset;
    if (!dsName)
      throw new UserError('name the dataset: the checkpoint does not say which it was trained on', {
        field: '--dataset',
        expected: DATASET_NAMES.join(', '),
      });
    datasetName = dsName;
    checkSplitFractions(dataOpts, datasetName);
    ds = await loadDataset(datasetName, { seed: args.seed, ...dataOpts, ...folderOptions(args, checkpointDir) });
    checkCompatible(net, ds, `checkpoint ${checkpointDir}`);
  } else {
    modelName = modelFlag as string;
    const dsName = datasetFlag ?? ZOO[modelName]?.dataset;
    if (!dsName) throw new UserError('name the dataset', { field: '--dataset', expected: DATASET_NAMES.join(', ') });
    datasetName = dsName;
    checkSplitFractions(dataOpts, datasetName);
    ds = await loadDataset(datasetName, { seed: args.seed, ...dataOpts, ...folderOptions(args, modelName) });
    if (ds.labeled === false && ZOO[modelName]) {
      throw new UserError(
        `${ds.source} holds images without labels; a zoo model trained from scratch has no float network to agree with`,
        { field: '--model', expected: 'a pretrained model.json, or class subfolders' },
      );
    }
    net = await loadModel(modelName, {
      inputShape: ds.inputShape,
      numClasses: ds.numClasses,
      seed: args.seed,
      quantizer,
    });
    checkCompatible(net, ds, `model ${modelName}`);
  }
  const targets = prepareTargets(net, ds, args);
  const bits = bitsReq ? resolveBits(bitsReq, net) : net.getBits();
  net.setBits(bits);
  const quantized = isQuantized(bits);
  // a network loaded from a file is already trained: fine-tune it (PTQ start, frozen BatchNorm and ranges, small lr)
  const pretrained = !checkpointDir && !ZOO[modelName];
  if (pretrained && quantized) {
    const method = (optString(args, 'calibration') ?? DEFAULT_CALIBRATION) as CalibrationMethod;
    await postTrainingQuantize(net, ds.train, { method, batchSize: Math.min(16, batchFlag ?? 16) });
    applyFineTuneRegime(net, PRETRAINED_FINETUNE);
    log.info(
      `pretrained network: post-training quantized (${method} ranges, bias correction), BatchNorm and ranges frozen, lr ${lrFlag ?? PRETRAINED_FINETUNE.lr}`,
    );
  }
  const defaults = trainingDefaults(datasetName, Boolean(checkpointDir) && quantized);
  const epochs = epochsFlag ?? defaults.epochs;
  const batchSize = batchFlag ?? defaults.batchSize;
  const lr = lrFlag ?? (pretrained && quantized ? PRETRAINED_FINETUNE.lr : defaults.lr);
  const optimizer = (optString(args, 'optimizer') ?? defaults.optimizer) as OptimizerName;
  const threads = threadsReq ?? defaultThreads();
  const sizes = splitSizes(ds);
  log.info(
    `train ${modelName} on ${datasetName} (${sizes.train}/${sizes.val}/${sizes.test} train/val/test) at ${describeBits(bits)}` +
      `${checkpointDir ? ` from ${checkpointDir}` : ''}: ${epochs} epochs, batch ${batchSize}, ${optimizer} lr ${lr} (${schedule}), ` +
      `backend ${backendInfo()?.name ?? '?'}, ${threads} thread${threads === 1 ? '' : 's'}, seed ${args.seed}`,
  );

  const trainer = createTrainer(net, ds, {
    lr,
    batchSize,
    optimizer,
    seed: args.seed,
    threads,
    evalBatchSize: evalBatchFor(ds),
    ...(targets.distill ? { temperature: targets.temperature } : {}),
  });
  let progress: Progress | null = null;
  let lastVal: { accuracy: number; loss: number } | null = null;
  const stats = await trainer.trainEpochs(
    epochs,
    (p) => {
      if (p.step === 1)
        progress = new Progress({ label: `epoch ${p.epoch}/${p.epochs}`, total: p.stepsPerEpoch, plain: args.json });
      progress?.update(p.step, `loss ${p.loss.toFixed(4)} acc ${pct(p.accuracy)}`);
    },
    {
      schedule,
      onEpochEnd: async (e, s) => {
        const v = await trainer.evaluate('val');
        lastVal = { accuracy: v.accuracy, loss: v.loss };
        log.info(
          `epoch ${e}/${epochs}: train loss ${s.loss.toFixed(4)} acc ${pct(s.accuracy)}, val loss ${v.loss.toFixed(4)} acc ${pct(v.accuracy)}, ${Math.round(s.samplesPerSec)} samples/s`,
        );
      },
    },
  );
  const trainSeconds = stats.reduce((a, s) => a + s.seconds, 0);
  const trainSamples = stats.reduce((a, s) => a + s.samples, 0);
  const samplesPerSec = trainSeconds > 0 ? trainSamples / trainSeconds : 0;
  const test = await trainer.evaluate('test');
  trainer.dispose();
  const backend = backendInfo()?.name ?? 'unknown';
  const named = namedBits(net, bits);

  if (outDir) {
    const meta: NetworkMeta = {
      model: modelName,
      dataset: datasetName,
      inputShape: ds.inputShape,
      numClasses: ds.numClasses,
      quantizer: net.qlayers[0]?.quantizer ?? quantizer,
    };
    const run: RunRecord = {
      command: 'train',
      model: modelName,
      dataset: datasetName,
      dataDir: dataOpts.dataDir ?? null,
      seed: args.seed,
      config: {
        epochs,
        batchSize,
        lr,
        optimizer,
        schedule,
        threads,
        quantizer: meta.quantizer,
        limit: dataOpts.limit ?? null,
        fromCheckpoint: checkpointDir ?? null,
      },
      bits: named,
      data: runDataSettings(ds, targets, dataOpts),
      backend,
      versions: runVersions(),
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      results: { test: { accuracy: test.accuracy, loss: test.loss }, val: lastVal, samplesPerSec, trainSeconds },
    };
    await saveCheckpoint(outDir, net, meta, run);
    log.info(`checkpoint saved to ${outDir}`);
  }

  if (args.json) {
    printJson({
      model: modelName,
      dataset: datasetName,
      seed: args.seed,
      backend,
      epochs,
      batchSize,
      lr,
      optimizer,
      quantized,
      bits: named,
      metric: targets.metric,
      accuracy: test.accuracy,
      loss: test.loss,
      valAccuracy: (lastVal as { accuracy: number } | null)?.accuracy ?? null,
      samplesPerSec,
      trainSeconds,
      testSamples: test.samples,
      checkpoint: checkpointDir ?? null,
      out: outDir ?? null,
    });
    return;
  }
  printText(
    formatTable(
      ['item', 'value'],
      [
        ['model', modelName],
        ['dataset', `${datasetName} (${sizes.train}/${sizes.val}/${sizes.test})`],
        ['bits', describeBits(bits)],
        ['epochs', epochs],
        [targets.metric === 'agreement' ? 'test agreement with float' : 'test accuracy', pct(test.accuracy)],
        ['test loss', test.loss.toFixed(4)],
        ['train samples/s', Math.round(samplesPerSec)],
        ['backend', backend],
        ['seed', args.seed],
        ...(outDir ? [['checkpoint', outDir] as [string, string]] : []),
      ],
    ),
  );
}

export const trainCommand: CliCommand = {
  command: 'train',
  describe: 'Train a network: float without bits, quantization-aware with --wbits/--abits or --bits-file',
  builder: (y) =>
    dataAndBitsOptions(y)
      .option('model', { type: 'string', describe: `zoo model (${ZOO_NAMES.join(', ')}) or a model.json path` })
      .option('epochs', {
        type: 'number',
        describe: 'epochs (default per dataset; QAT from a checkpoint: a quarter of them)',
      })
      .option('batch-size', { type: 'number', describe: 'minibatch size (default 64)' })
      .option('lr', {
        type: 'number',
        describe: 'learning rate (default per dataset; a quarter for QAT from a checkpoint)',
      })
      .option('optimizer', { choices: OPTIMIZERS, describe: 'optimizer (default adam)' })
      .option('threads', { type: 'number', describe: 'threads of the training steps (default: every core)' })
      .option('schedule', { choices: SCHEDULES, default: 'cosine', describe: 'learning-rate schedule over the run' })
      .option('quantizer', { choices: QUANTIZERS, default: 'ste', describe: 'quantizer of a newly built network' })
      .option('checkpoint', { type: 'string', describe: 'start from this checkpoint directory (written by --out)' })
      .option('out', { type: 'string', describe: 'save the trained network and run.json to this directory' })
      .option('force', { type: 'boolean', default: false, describe: 'replace the checkpoint files already in --out' })
      .example('$0 train --model lenet5 --dataset mnist --out runs/lenet5-float', 'float training')
      .example('$0 train --checkpoint runs/lenet5-float --wbits 4 --abits 4', 'QAT fine-tune at W4A4')
      .epilogue(`Datasets:\n${DATASET_NAMES.map((n) => `  ${n}: ${DATASETS[n]?.description ?? ''}`).join('\n')}`),
  handler: trainHandler,
};
