/**
 * A user's own network: a tfjs layers model (model.json + weight shards, Sequential or
 * functional) read from disk, rebuilt with its Conv2D / DepthwiseConv2D / Dense replaced by
 * quantized layers (weights copied). Other supported layers are cloned from their config.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { QuantizerKind } from '../quant/api.js';
import { ACTIVATIONS, QConv2D, QDense, QDepthwiseConv2D, QuantLayer, type QuantArgs } from '../quant/layers.js';
import { QuantNetwork } from '../quant/network.js';
import { Rng } from '../util/rng.js';
import { readModelArtifacts } from '../quant/model-files.js';

/** Layer classes a user model may contain. */
export const SUPPORTED_LAYERS: readonly string[] = [
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'Dense',
  'BatchNormalization',
  'Activation',
  'ReLU',
  'Softmax',
  'ZeroPadding2D',
  'Add',
  'Concatenate',
  'Dropout',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Reshape',
  QConv2D.className,
  QDepthwiseConv2D.className,
  QDense.className,
];

const QUANTIZABLE = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);
/** Layers whose output is non-negative when their input is. */
const SIGN_PRESERVING = new Set(['MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten', 'Reshape', 'Dropout', 'ZeroPadding2D', 'Add', 'Concatenate']);
const NONNEG_ACTIVATIONS = new Set(['relu', 'relu6', 'sigmoid', 'softmax', 'softplus']);

export interface LoadUserModelOptions {
  quantizer?: QuantizerKind;
  seed?: number;
}

interface RawLayer {
  class_name?: unknown;
  className?: unknown;
  config?: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks every layer class before tfjs sees the topology, for a clear error. */
function checkTopology(topology: Record<string, unknown>, file: string): void {
  const root = isObject(topology['model_config']) ? (topology['model_config'] as Record<string, unknown>) : topology;
  const rootPath = root === topology ? '$.modelTopology' : '$.modelTopology.model_config';
  const cls = root['class_name'] ?? root['className'];
  if (typeof cls !== 'string') throw new UserError('modelTopology has no class_name', { file, field: `${rootPath}.class_name`, expected: 'Sequential, Model or Functional' });
  if (!['Sequential', 'Model', 'Functional'].includes(cls)) {
    throw new UserError(`unsupported model class '${cls}'`, { file, field: `${rootPath}.class_name`, expected: 'Sequential, Model or Functional' });
  }
  const config = root['config'];
  const layers = Array.isArray(config) ? config : isObject(config) ? config['layers'] : undefined;
  if (!Array.isArray(layers)) throw new UserError('modelTopology has no layer list', { file, field: `${rootPath}.config.layers` });
  layers.forEach((l: unknown, i) => {
    const raw = (isObject(l) ? l : {}) as RawLayer;
    const name = isObject(raw.config) && typeof raw.config['name'] === 'string' ? raw.config['name'] : `#${i}`;
    const c = typeof raw.class_name === 'string' ? raw.class_name : typeof raw.className === 'string' ? raw.className : '?';
    if (!SUPPORTED_LAYERS.includes(c)) {
      throw new UserError(`layer '${name}' has unsupported class '${c}'`, {
        file,
        field: `${rootPath}.config.layers[${i}]`,
        expected: `one of ${SUPPORTED_LAYERS.join(', ')}`,
      });
    }
    if (QUANTIZABLE.has(c) && isObject(raw.config)) {
      const act = raw.config['activation'];
      if (typeof act === 'string' && !(act in ACTIVATIONS)) {
        throw new UserError(`layer '${name}' (${c}) has unsupported activation '${act}'`, { file, field: `${rootPath}.config.layers[${i}].config.activation`, expected: Object.keys(ACTIVATIONS).join(', ') });
      }
      const fmt = raw.config['data_format'] ?? raw.config['dataFormat'];
      if (fmt !== undefined && fmt !== null && fmt !== 'channels_last' && fmt !== 'channelsLast') {
        throw new UserError(`layer '${name}' (${c}) uses data_format '${String(fmt)}'`, { file, field: `${rootPath}.config.layers[${i}].config.data_format`, expected: 'channels_last' });
      }
    }
  });
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
  else if (cls === 'ReLU') r = (cfg['negativeSlope'] ?? 0) === 0 && (cfg['threshold'] ?? 0) as number >= 0;
  else if (cls === 'Softmax') r = true;
  else if (cls === 'Activation' || QUANTIZABLE.has(cls) || layer instanceof QuantLayer) r = NONNEG_ACTIVATIONS.has(activationName(cfg));
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
    throw new UserError(`layer '${layer.name}' (${cls}) uses padding '${String(common.padding)}'`, { expected: 'same or valid' });
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
    const x = tf.input({ shape: t.shape.slice(1) as number[], name: l.name, dtype: t.dtype });
    outputs.set(l.name, x);
    inputs.push(x);
  }
  const copies: [tf.layers.Layer, tf.layers.Layer][] = [];
  for (const layer of src.layers) {
    if (outputs.has(layer.name)) continue;
    const cls = layer.getClassName();
    const nodes = layer.inboundNodes.length;
    if (nodes !== 1) throw new UserError(`layer '${layer.name}' (${cls}) is used ${nodes} times; shared layers are not supported`, { file });
    const node = layer.inboundNodes[0] as (typeof layer.inboundNodes)[number];
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
    const y = neu.apply(ins.length === 1 ? (ins[0] as Sym) : ins) as Sym | Sym[];
    if (Array.isArray(y)) throw new UserError(`layer '${layer.name}' (${cls}) has several outputs; not supported`, { file });
    outputs.set(layer.name, y);
    copies.push([layer, neu]);
  }
  const outs = src.outputs.map((t) => outputs.get(t.sourceLayer.name) as Sym);
  const model = tf.model({ inputs, outputs: outs.length === 1 ? (outs[0] as Sym) : outs, name: src.name });
  for (const [old, neu] of copies) {
    const w = old.getWeights();
    if (w.length === 0) continue;
    if (neu instanceof QuantLayer && !(old instanceof QuantLayer)) {
      neu.getKernel().write(w[0] as tf.Tensor);
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
    throw new UserError(`cannot build the model: ${(e as Error).message}`, { file });
  }
  try {
    return new QuantNetwork(quantizeModel(src, opts, file));
  } finally {
    src.dispose();
  }
}
