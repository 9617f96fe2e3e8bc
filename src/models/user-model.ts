/**
 * A user's own network: a tfjs layers model (model.json + weight shards, Sequential or
 * functional) read from disk, rebuilt with its Conv2D / DepthwiseConv2D / Dense replaced by
 * quantized layers (weights copied). Other supported layers are cloned from their config.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { QuantizerKind } from '../quant/api.js';
import { QConv2D, QDense, QDepthwiseConv2D, QuantLayer, type QuantArgs } from '../quant/layers.js';
import { QuantNetwork } from '../quant/network.js';
import { Rng } from '../util/rng.js';
import { explainBuildError, readModelArtifacts } from '../quant/model-files.js';
import { QUANTIZABLE, checkTopology } from '../quant/topology-check.js';
export { SUPPORTED_LAYERS, checkTopology } from '../quant/topology-check.js';

/** Layers whose output is non-negative when their input is. */
const SIGN_PRESERVING = new Set([
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Reshape',
  'Dropout',
  'ZeroPadding2D',
  'Add',
  'Concatenate',
]);
const NONNEG_ACTIVATIONS = new Set(['relu', 'relu6', 'sigmoid', 'softmax', 'softplus']);

export interface LoadUserModelOptions {
  quantizer?: QuantizerKind;
  seed?: number;
}

type Sym = tf.SymbolicTensor;
type LayerCtor = tf.serialization.SerializableConstructor<tf.layers.Layer>;

function activationName(cfg: tf.serialization.ConfigDict): string {
  const a = cfg['activation'];
  return typeof a === 'string' ? a : 'linear';
}

/** Whether the output of `layer` is known to be >= 0 (for unsigned activation quantization). */
function nonNegative(layer: tf.layers.Layer, memo: Map<string, boolean>): boolean {
  const hit = memo.get(layer.name);
  if (hit !== undefined) return hit;
  memo.set(layer.name, false); // guards cycles
  const cls = layer.getClassName();
  const cfg = layer.getConfig();
  let r = false;
  const inputs = layer.inboundNodes[0]?.inboundLayers ?? [];
  if (cls === 'InputLayer') r = true;
  else if (cls === 'ReLU') r = (cfg['negativeSlope'] ?? 0) === 0 && ((cfg['threshold'] ?? 0) as number) >= 0;
  else if (cls === 'Softmax') r = true;
  else if (cls === 'Activation' || QUANTIZABLE.has(cls) || layer instanceof QuantLayer)
    r = NONNEG_ACTIVATIONS.has(activationName(cfg));
  else if (SIGN_PRESERVING.has(cls)) r = inputs.length > 0 && inputs.every((l) => nonNegative(l, memo));
  memo.set(layer.name, r);
  return r;
}

function quantLayerFrom(layer: tf.layers.Layer, args: QuantArgs & { name: string }): QuantLayer {
  const cfg = layer.getConfig();
  const cls = layer.getClassName();
  if (cls === 'Dense') return new QDense({ ...args, units: cfg['units'] as number });
  const common = {
    ...args,
    kernelSize: cfg['kernelSize'] as number[],
    strides: cfg['strides'] as number[],
    padding: cfg['padding'] as 'same' | 'valid',
    dilationRate: (cfg['dilationRate'] ?? 1) as number | number[],
  };
  if (common.padding !== 'same' && common.padding !== 'valid') {
    throw new UserError(`layer '${layer.name}' (${cls}) uses padding '${String(common.padding)}'`, {
      expected: 'same or valid',
    });
  }
  if (cls === 'Conv2D') return new QConv2D({ ...common, filters: cfg['filters'] as number });
  return new QDepthwiseConv2D({ ...common, depthMultiplier: (cfg['depthMultiplier'] ?? 1) as number });
}

function cloneLayer(layer: tf.layers.Layer): tf.layers.Layer {
  const ctor = layer.constructor as unknown as LayerCtor;
  const cfg = { ...layer.getConfig() };
  delete cfg['batchInputShape'];
  delete cfg['inputShape'];
  return ctor.fromConfig(ctor, cfg);
}

/**
 * Rebuilds a float tfjs model with quantized layers in place of Conv2D / DepthwiseConv2D /
 * Dense, copying all weights. The source model is left untouched.
 */
export function quantizeModel(src: tf.LayersModel, opts: LoadUserModelOptions = {}, file?: string): tf.LayersModel {
  const rng = new Rng(opts.seed ?? 1);
  const outputs = new Map<string, Sym>();
  const memo = new Map<string, boolean>();
  const inputs: Sym[] = [];
  for (const t of src.inputs) {
    const l = t.sourceLayer;
    const x = tf.input({ shape: t.shape.slice(1), name: l.name, dtype: t.dtype });
    outputs.set(l.name, x);
    inputs.push(x);
  }
  const copies: [tf.layers.Layer, tf.layers.Layer][] = [];
  for (const layer of src.layers) {
    if (outputs.has(layer.name)) continue;
    const cls = layer.getClassName();
    const nodes = layer.inboundNodes.length;
    if (nodes !== 1)
      throw new UserError(`layer '${layer.name}' (${cls}) is used ${nodes} times; shared layers are not supported`, {
        file,
      });
    const node = layer.inboundNodes[0];
    const ins = node.inboundLayers.map((l) => {
      const t = outputs.get(l.name);
      if (!t) throw new UserError(`layer '${layer.name}' (${cls}) reads '${l.name}', which is not available`, { file });
      return t;
    });
    let neu: tf.layers.Layer;
    if (QUANTIZABLE.has(cls)) {
      const cfg = layer.getConfig();
      const producers = node.inboundLayers;
      neu = quantLayerFrom(layer, {
        name: layer.name,
        activation: activationName(cfg),
        useBias: cfg['useBias'] !== false,
        quantizer: opts.quantizer ?? 'ste',
        seed: rng.seed(),
        signed: !producers.every((p) => nonNegative(p, memo)),
      });
    } else if (layer instanceof QuantLayer) {
      const ctor = layer.constructor as unknown as LayerCtor;
      // an already-quantized layer (e.g. a bitalloc checkpoint) keeps its quantizer and state
      neu = ctor.fromConfig(ctor, layer.getConfig());
    } else {
      neu = cloneLayer(layer);
    }
    const y = neu.apply(ins.length === 1 ? ins[0] : ins) as Sym | Sym[];
    if (Array.isArray(y))
      throw new UserError(`layer '${layer.name}' (${cls}) has several outputs; not supported`, { file });
    outputs.set(layer.name, y);
    copies.push([layer, neu]);
  }
  const outs = src.outputs.map((t) => outputs.get(t.sourceLayer.name) as Sym);
  const model = tf.model({ inputs, outputs: outs.length === 1 ? outs[0] : outs, name: src.name });
  for (const [old, neu] of copies) {
    const w = old.getWeights();
    if (w.length === 0) continue;
    if (neu instanceof QuantLayer && !(old instanceof QuantLayer)) {
      neu.getKernel().write(w[0]);
      const b = neu.getBias();
      if (b && w[1]) b.write(w[1]);
    } else {
      neu.setWeights(w);
    }
  }
  return model;
}

/** Loads a user's model.json (path to the file or its directory) as a quantizable network. */
export async function loadUserModel(spec: string, opts: LoadUserModelOptions = {}): Promise<QuantNetwork> {
  const { artifacts, file } = readModelArtifacts(spec);
  checkTopology(artifacts.modelTopology as Record<string, unknown>, file);
  let src: tf.LayersModel;
  try {
    src = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (e) {
    throw new UserError(`cannot build the model: ${explainBuildError(e, artifacts)}`, {
      file,
      field: '$.weightsManifest',
    });
  }
  try {
    return new QuantNetwork(quantizeModel(src, opts, file));
  } finally {
    src.dispose();
  }
}
