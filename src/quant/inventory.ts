/**
 * The layer inventory of a built tfjs model: one LayerInfo per quantized layer, in forward order.
 *
 * - params: kernel elements; biasParams: the layer's bias plus, for a BatchNormalization that
 *   directly follows it, its folded per-channel multiplier and shift (2 per channel).
 * - macs per sample: conv out_h*out_w*c_out*k_h*k_w*c_in; depthwise out_h*out_w*c_in*mult*k_h*k_w;
 *   dense in*out.
 * - liveElements: elements of tensors produced before the layer that a later layer still needs
 *   (residual branches waiting for their Add), excluding the layer's own input.
 */
import type * as tf from '@tensorflow/tfjs';
import { QuantLayer, QConv2D, QDepthwiseConv2D, QDense } from './layers.js';
import type { LayerInfo } from './layer-info.js';

type Shape = (number | null)[];

function elems(shape: Shape): number {
  return shape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
}

function single(shape: tf.Shape | tf.Shape[]): Shape {
  return (Array.isArray(shape[0]) ? shape[0] : shape) as Shape;
}

/** Names of the layers that feed `layer` (first inbound node). */
export function inboundNames(layer: tf.layers.Layer): string[] {
  const node = layer.inboundNodes[0];
  if (!node) return [];
  return node.inboundLayers.map((l) => l.name);
}

/** The quantized layers of a model, in forward (topological) order. */
export function quantLayers(model: tf.LayersModel): QuantLayer[] {
  return model.layers.filter((l): l is QuantLayer => l instanceof QuantLayer);
}

/** Consumers of each layer's output inside the model, by layer name. */
export function consumers(model: tf.LayersModel): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of model.layers) out.set(l.name, []);
  for (const l of model.layers) for (const src of inboundNames(l)) out.get(src)?.push(l.name);
  return out;
}

/** Whether a BatchNormalization consumes `layer`'s output alone and directly (foldable). */
export function followingBatchNorm(model: tf.LayersModel, layer: tf.layers.Layer): tf.layers.Layer | null {
  const cons = consumers(model).get(layer.name) ?? [];
  if (cons.length !== 1) return null;
  const next = model.getLayer(cons[0]);
  if (next.getClassName() !== 'BatchNormalization') return null;
  if (inboundNames(next).length !== 1) return null;
  const axis = next.getConfig()['axis'];
  const rank = (layer.outputShape as Shape).length;
  if (axis !== -1 && axis !== rank - 1) return null;
  if (layer instanceof QuantLayer && layer.activation !== 'linear') return null;
  const outputs = model.outputs.map((t) => t.sourceLayer.name);
  if (outputs.includes(layer.name)) return null;
  return next;
}

export function computeInventory(model: tf.LayersModel): LayerInfo[] {
  const layers = model.layers;
  const order = new Map(layers.map((l, i) => [l.name, i] as const));
  const cons = consumers(model);
  const outputsOf = new Map(layers.map((l) => [l.name, elems(single(l.outputShape))] as const));
  // position of the last consumer of each layer's output (model outputs live to the end)
  const lastUse = new Map<string, number>();
  for (const l of layers) {
    const c = cons.get(l.name) ?? [];
    lastUse.set(l.name, c.length ? Math.max(...c.map((n) => order.get(n) ?? 0)) : -1);
  }
  const infos: LayerInfo[] = [];
  layers.forEach((l, pos) => {
    if (!(l instanceof QuantLayer)) return;
    const inShape = single((l.input as tf.SymbolicTensor).shape);
    const outShape = single(l.outputShape);
    const kShape = l.getKernel().shape as number[];
    const params = kShape.reduce((a, b) => a * b, 1);
    const bn = followingBatchNorm(model, l);
    const inputs = new Set(inboundNames(l));
    let live = 0;
    for (let j = 0; j < pos; j++) {
      const p = layers[j];
      if (inputs.has(p.name)) continue;
      if ((lastUse.get(p.name) ?? -1) > pos) live += outputsOf.get(p.name) ?? 0;
    }
    let info: Omit<
      LayerInfo,
      'index' | 'params' | 'biasParams' | 'inElements' | 'outElements' | 'liveElements' | 'name'
    >;
    if (l instanceof QConv2D || l instanceof QDepthwiseConv2D) {
      const [kh, kw] = l.kernelSize;
      const inC = inShape[3] as number;
      const outC = outShape[3] as number;
      const oh = outShape[1] as number;
      const ow = outShape[2] as number;
      const depthwise = l instanceof QDepthwiseConv2D;
      info = {
        kind: depthwise ? 'depthwise' : 'conv',
        inChannels: inC,
        outChannels: outC,
        kernel: [kh, kw],
        stride: [l.strides[0], l.strides[1]],
        inSize: [inShape[1] as number, inShape[2] as number],
        outSize: [oh, ow],
        macs: depthwise ? oh * ow * outC * kh * kw : oh * ow * outC * kh * kw * inC,
      };
    } else {
      const d = l as QDense;
      const inC = kShape[0];
      const rows = elems(inShape) / inC;
      info = {
        kind: 'dense',
        inChannels: inC,
        outChannels: d.units,
        kernel: [1, 1],
        stride: [0, 0],
        inSize: [1, 1],
        outSize: [1, 1],
        macs: rows * inC * d.units,
      };
    }
    const outC = info.outChannels;
    infos.push({
      index: infos.length,
      name: l.name,
      ...info,
      params,
      biasParams: (l.useBias ? outC : 0) + (bn ? 2 * outC : 0),
      inElements: elems(inShape),
      outElements: elems(outShape),
      liveElements: live,
    });
  });
  return infos;
}
