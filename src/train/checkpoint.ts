/**
 * Training checkpoints: a directory holding the network (model.json, weights.bin, bits.json as
 * written by saveNetwork) and run.json, the record of the run that produced it (configuration,
 * seed, versions, backend, results), so that every checkpoint can be reproduced and evaluated.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backendInfo } from '../backend/index.js';
import { UserError } from '../errors.js';
import type { BitConfig } from '../models/layer-info.js';
import type { QuantizedNetwork } from '../quant/api.js';
import type { QuantNetwork } from '../quant/network.js';
import { loadNetwork, saveNetwork } from '../quant/save.js';
import { VERSION } from '../version.js';

export const RUN_JSON = 'run.json';

/** What the network's model.json carries under `bitalloc` (enough to evaluate it on its dataset). */
export interface NetworkMeta {
  /** Zoo name or model file it was built from. */
  model: string;
  dataset: string;
  inputShape: [number, number, number];
  numClasses: number;
  quantizer: string;
}

export interface RunVersions {
  bitalloc: string;
  tfjs: string;
  tfjsNode: string | null;
  node: string;
}

/** run.json. */
export interface RunRecord {
  command: 'train';
  model: string;
  dataset: string;
  dataDir: string | null;
  seed: number;
  config: {
    epochs: number;
    batchSize: number;
    lr: number;
    optimizer: string;
    schedule: string;
    quantizer: string;
    limit: number | null;
    /** Checkpoint the weights started from, if any. */
    fromCheckpoint: string | null;
    /** Threads of the training steps (absent in runs made before the field). */
    threads?: number;
  };
  /** Per-layer bits, by name (the bits-file format); 32 = float. */
  bits: { name: string; wBits: number; aBits: number }[];
  /** Data settings beyond the dataset's name (image folders, label-free targets), read back by eval. */
  data?: RunDataSettings;
  backend: string;
  versions: RunVersions;
  startedAt: string;
  finishedAt: string;
  results: {
    test: { accuracy: number; loss: number };
    val: { accuracy: number; loss: number } | null;
    samplesPerSec: number;
    trainSeconds: number;
  };
}

export interface RunDataSettings {
  /** What the recorded accuracies measure: labels, or top-1 agreement with the float network. */
  metric: 'accuracy' | 'agreement';
  target: 'accuracy' | 'fidelity';
  distill: boolean;
  /** Class names of a labelled image folder (sorted subfolder names). */
  classNames: string[] | null;
  preprocess: unknown;
  imageSize: [number, number] | null;
  /** The split fractions given (--val-fraction / --test-fraction); absent: the dataset's defaults. */
  valFraction?: number;
  testFraction?: number;
}

export function runVersions(): RunVersions {
  const b = backendInfo();
  return {
    bitalloc: VERSION,
    tfjs: b?.versions.tfjs ?? 'unknown',
    tfjsNode: b?.versions.tfjsNode ?? null,
    node: process.versions.node,
  };
}

export function namedBits(
  net: QuantizedNetwork,
  bits: BitConfig = net.getBits(),
): { name: string; wBits: number; aBits: number }[] {
  return net.layers.map((l, i) => ({ name: l.name, wBits: bits[i]?.wBits ?? 32, aBits: bits[i]?.aBits ?? 32 }));
}

/** Writes the network and run.json into `dir` (created if needed). */
export async function saveCheckpoint(
  dir: string,
  net: QuantizedNetwork,
  meta: NetworkMeta,
  run: RunRecord,
): Promise<void> {
  try {
    await saveNetwork(net, dir, meta);
    writeFileSync(join(dir, RUN_JSON), JSON.stringify(run, null, 2) + '\n');
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot write the checkpoint: ${e instanceof Error ? e.message : String(e)}`, {
      file: dir,
      field: '--out',
      expected: 'a writable directory',
    });
  }
}

export interface LoadedCheckpoint {
  net: QuantNetwork;
  meta: Partial<NetworkMeta>;
  /** run.json, or null when the directory has none (a network saved by other means). */
  run: RunRecord | null;
}

/** Loads a checkpoint directory written by saveCheckpoint (or any saveNetwork directory). */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  if (!existsSync(dir)) {
    throw new UserError('checkpoint directory not found', {
      file: dir,
      field: '--checkpoint',
      expected: 'a directory written by `bitalloc train --out DIR`',
    });
  }
  const { net, meta } = await loadNetwork(dir);
  if (net.qlayers.length === 0) {
    net.model.dispose();
    throw new UserError('holds a float model without quantized layers, not a bitalloc checkpoint', {
      file: dir,
      field: '--checkpoint',
      expected: `--model ${join(dir, 'model.json')} to load it as a float model and quantize it as asked`,
    });
  }
  let run: RunRecord | null = null;
  const runFile = join(dir, RUN_JSON);
  if (existsSync(runFile)) {
    try {
      run = JSON.parse(readFileSync(runFile, 'utf8')) as RunRecord;
    } catch (e) {
      throw new UserError(`not valid JSON: ${e instanceof Error ? e.message : String(e)}`, {
        file: runFile,
        field: '$',
      });
    }
  }
  const m: Partial<NetworkMeta> = {};
  if (typeof meta['model'] === 'string') m.model = meta['model'];
  if (typeof meta['dataset'] === 'string') m.dataset = meta['dataset'];
  if (typeof meta['quantizer'] === 'string') m.quantizer = meta['quantizer'];
  if (typeof meta['numClasses'] === 'number') m.numClasses = meta['numClasses'];
  const shape = meta['inputShape'];
  if (Array.isArray(shape) && shape.length === 3 && shape.every((v) => typeof v === 'number'))
    m.inputShape = shape as [number, number, number];
  return { net, meta: m, run };
}
