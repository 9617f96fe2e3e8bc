/**
 * Models: the zoo, loading a user's tfjs layers model as a quantizable network, and the layer
 * inventory (what the simulator, environment and agents know of a network).
 */
import * as fs from 'node:fs';
import type { QuantizerKind } from '../quant/api.js';
import { QuantNetwork } from '../quant/network.js';
import { UserError } from '../errors.js';
import type { LayerInfo } from './layer-info.js';
import { loadUserModel, quantizeModel } from './user-model.js';
import { ZOO, ZOO_NAMES, buildZooModel } from './zoo.js';
import { importOnnxFile, isOnnxPath } from '../onnx/index.js';

export { ZOO, ZOO_NAMES, type ZooEntry } from './zoo.js';
export { computeInventory } from '../quant/inventory.js';
export { loadUserModel, quantizeModel, SUPPORTED_LAYERS } from './user-model.js';
export { readModelArtifacts, writeModelFiles } from '../quant/model-files.js';
export type { LayerInfo, LayerKind, LayerBits, BitConfig } from './layer-info.js';

export interface BuildOptions {
  inputShape: [number, number, number];
  numClasses: number;
  seed: number;
  quantizer?: QuantizerKind;
}

/**
 * Builds a zoo model as a quantized network (every layer at 32 bits until setBits).
 * The model outputs logits (no softmax).
 */
export function buildNetwork(name: string, opts: BuildOptions): QuantNetwork {
  return new QuantNetwork(buildZooModel(name, opts));
}

export function isZooName(spec: string): boolean {
  return Object.prototype.hasOwnProperty.call(ZOO, spec);
}

export interface LoadModelOptions {
  inputShape?: number[];
  numClasses?: number;
  seed?: number;
  quantizer?: QuantizerKind;
}

/** A zoo name or a path to a user's model.json (or its directory), as a quantizable network. */
export async function loadModel(spec: string, opts: LoadModelOptions = {}): Promise<QuantNetwork> {
  if (isZooName(spec)) {
    const entry = ZOO[spec];
    let inputShape = entry.inputShape;
    if (opts.inputShape) {
      if (opts.inputShape.length !== 3)
        throw new UserError(`input shape must be [h, w, c], got [${opts.inputShape.join(', ')}]`, {
          field: 'inputShape',
        });
      inputShape = opts.inputShape as [number, number, number];
    }
    return buildNetwork(spec, {
      inputShape,
      numClasses: opts.numClasses ?? entry.numClasses,
      seed: opts.seed ?? 1,
      quantizer: opts.quantizer,
    });
  }
  if (!fs.existsSync(spec)) {
    throw new UserError(`unknown model '${spec}': not a zoo model and no such file`, {
      field: '--model',
      expected: `one of ${ZOO_NAMES.join(', ')}, a path to a model.json or to a .onnx file`,
    });
  }
  if (isOnnxPath(spec))
    return loadOnnxModel(spec, { seed: opts.seed, quantizer: opts.quantizer, inputShape: opts.inputShape });
  return loadUserModel(spec, { seed: opts.seed, quantizer: opts.quantizer });
}

/**
 * The layer inventory of a zoo model (at its default input shape unless given) or of a user's
 * model.json. The network is built and disposed.
 */
export async function loadInventory(
  spec: string,
  opts: { inputShape?: number[]; numClasses?: number } = {},
): Promise<LayerInfo[]> {
  const net = await loadModel(spec, opts);
  try {
    return net.layers.map((l) => ({
      ...l,
      kernel: [...l.kernel],
      stride: [...l.stride],
      inSize: [...l.inSize],
      outSize: [...l.outSize],
    }));
  } finally {
    net.model.dispose();
  }
}

/** Loads an ONNX file as a quantizable network (every layer at 32 bits until setBits). */
export function loadOnnxModel(
  file: string,
  opts: { quantizer?: QuantizerKind; seed?: number; inputShape?: number[] } = {},
): QuantNetwork {
  const imp = importOnnxFile(file, { inputShape: opts.inputShape });
  try {
    return new QuantNetwork(quantizeModel(imp.model, { quantizer: opts.quantizer, seed: opts.seed }, file));
  } finally {
    imp.model.dispose();
  }
}
