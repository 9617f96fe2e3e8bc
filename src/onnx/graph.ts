/**
 * Writes a QuantNetwork (tfjs, NHWC) as an ONNX graph (NCHW), in one of four forms:
 *
 * - `eval`: the fake-quantized network for onnxruntime (search evaluation). A quantized layer's
 *   input at <= 8 bits goes through DequantizeLinear(Clip(QuantizeLinear(x, scale), qmin, qmax),
 *   scale) (uint8 / int8 by the layer's signedness; wider grids: scale * Round(Clip(x / scale, qmin,
 *   qmax)) in float ops), with scale and the range as scalar graph inputs, so a new activation
 *   allocation is new feeds. Kernels (already fake-quantized, BatchNorm folded: what
 *   QuantLayer.inferenceParams gives) and biases are constants by default: onnxruntime pre-packs
 *   constant weights for its convolutions (about 3x faster than weights as inputs), so new weights
 *   (a new wBits, or QAT steps) are a new session (ort-evaluator.ts caches them by content);
 *   `weightInputs: true` makes them inputs instead. A zero Pad read only by convolutions is folded
 *   into their pads (quantizing commutes with it: every grid holds 0). Only the set of float
 *   (32-bit) inputs and of grids wider than 8 bits is the graph's structure (`evalStructure`).
 *   Input NHWC (the datasets' layout).
 * - `qdq`: the deployable file. Weights are integer codes (int8, narrow range: the symmetric
 *   [-(2^(b-1)-1), 2^(b-1)-1] grid) with per-output-channel scales, dequantized by
 *   DequantizeLinear; each activation is clipped (Min / Max) to its grid's range [qmin*s, qmax*s]
 *   and then QuantizeLinear / DequantizeLinear (uint8 after ReLU, int8 otherwise, zero point 0), so a
 *   b-bit activation takes exactly the 2^b (or 2^b - 1) values of the simulated network.
 * - `qonnx`: the same grids as QONNX `Quant` nodes (domain qonnx.custom_op.general) with
 *   bitwidth, signed, narrow and rounding_mode ROUND, for FINN / Brevitas.
 * - `float`: the float network (every quantizer off), e.g. for benchmarks.
 * `qdq`, `qonnx` and `float` take an NCHW input, as PyTorch's exports do.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { QuantNetwork } from '../quant/network.js';
import { QConv2D, QDense, QDepthwiseConv2D, QuantLayer, batchNormFactors, type FixedActGrid } from '../quant/layers.js';
import { FLOAT_BITS } from '../quant/quantizers.js';
import { consumers, inboundNames } from '../quant/inventory.js';
import { ChannelSlice, OnnxClip, OnnxHardSigmoid, OnnxHardSwish, OnnxPad2D } from './layers.js';
import {
  DataType,
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  floatTensor,
  intTensor,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';

export type GraphMode = 'eval' | 'qdq' | 'qonnx' | 'float';

export const OPSET = 17;
export const QONNX_DOMAIN = 'qonnx.custom_op.general';

/** One graph input of the eval graph and how to fill it. */
export interface EvalFeed {
  name: string;
  dims: number[];
  dtype: 'float32' | 'bool' | 'int8' | 'uint8';
  /** Reads the current value from the network. */
  read: () => Float32Array | Uint8Array | Int8Array;
}

export interface WrittenGraph {
  model: ModelProto;
  /** eval mode: the parameter inputs (besides `input`). */
  feeds: EvalFeed[];
  inputName: string;
  outputName: string;
  /** With WriteOptions.tapInputs: per quantized layer, the graph output holding its input (layers reading one tensor share it). */
  taps?: string[];
}

type Shape = (number | null)[];

function single(shape: tf.Shape | tf.Shape[]): Shape {
  return (Array.isArray(shape[0]) ? shape[0] : shape) as Shape;
}

function samePads(size: number, k: number, s: number, d: number): [number, number] {
  const ek = (k - 1) * d + 1;
  const out = Math.ceil(size / s);
  const total = Math.max(0, (out - 1) * s + ek - size);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** Kernel in tfjs layout -> ONNX layout. conv [kh,kw,C,M] -> [M,C,kh,kw]; depthwise [kh,kw,C,m] -> [C*m,1,kh,kw]; dense stays [in,out]. */
export function onnxKernel(
  kind: 'conv' | 'depthwise' | 'dense',
  shape: number[],
  data: ArrayLike<number>,
): { dims: number[]; data: Float32Array } {
  if (kind === 'dense') return { dims: shape, data: Float32Array.from(data) };
  const [kh, kw, c, m] = shape as [number, number, number, number];
  const out = new Float32Array(kh * kw * c * m);
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      for (let a = 0; a < c; a++)
        for (let b = 0; b < m; b++) {
          const v = data[((i * kw + j) * c + a) * m + b];
          // conv: out channel b, in channel a; depthwise: out channel a*m+b
          if (kind === 'conv') out[((b * c + a) * kh + i) * kw + j] = v;
          else out[((a * m + b) * kh + i) * kw + j] = v;
        }
  return { dims: kind === 'conv' ? [m, c, kh, kw] : [c * m, 1, kh, kw], data: out };
}

class Builder {
  nodes: NodeProto[] = [];
  inits: TensorProto[] = [];
  inputs: ValueInfoProto[] = [];
  private n = 0;
  private constCache = new Map<string, string>();
  usesQonnx = false;

  fresh(base: string): string {
    return `${base}_${this.n++}`;
  }

  node(opType: string, inputs: string[], attrs: NodeProto['attribute'] = [], name?: string, domain?: string): string {
    const out = this.fresh(name ?? opType);
    this.nodes.push({
      opType,
      input: inputs,
      output: [out],
      name: out,
      attribute: attrs,
      ...(domain ? { domain } : {}),
    });
    return out;
  }

  init(t: TensorProto): string {
    this.inits.push(t);
    return t.name as string;
  }

  floatConst(values: number[], dims: number[] = []): string {
    const key = `f:${dims.join('x')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.init(floatTensor(this.fresh('c'), dims, values));
    this.constCache.set(key, name);
    return name;
  }

  intConst(values: number[], dataType: number = DataType.INT64, dims: number[] = [values.length]): string {
    const key = `i${dataType}:${dims.join('x')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.init(intTensor(this.fresh('c'), dims, values, dataType));
    this.constCache.set(key, name);
    return name;
  }

  input(name: string, elemType: number, dims: (number | string)[]): string {
    this.inputs.push({
      name,
      type: {
        tensorType: {
          elemType,
          shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    return name;
  }
}

function activationOp(b: Builder, act: string, x: string, where: string): string {
  switch (act) {
    case 'linear':
      return x;
    case 'relu':
      return b.node('Relu', [x]);
    case 'relu6':
      return b.node('Clip', [x, b.floatConst([0]), b.floatConst([6])]);
    case 'sigmoid':
      return b.node('Sigmoid', [x]);
    case 'tanh':
      return b.node('Tanh', [x]);
    case 'softmax':
      return b.node('Softmax', [x], [attrInt('axis', -1)]);
    case 'elu':
      return b.node('Elu', [x]);
    case 'selu':
      return b.node('Selu', [x]);
    case 'softplus':
      return b.node('Softplus', [x]);
    case 'softsign':
      return b.node('Softsign', [x]);
    case 'swish':
      return b.node('Mul', [x, b.node('Sigmoid', [x])]);
    default:
      throw new UserError(`activation '${act}' has no ONNX translation`, { field: where });
  }
}

/** Reads a tfjs variable / tensor as a Float32Array. */
function values(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync());
}

/** What fixes the eval graph's structure at the current bits: per quantized layer f (float input), q (<= 8 bits) or w (wider). */
export function evalStructure(net: QuantNetwork): string {
  return net.qlayers.map((q) => (q.aBits >= FLOAT_BITS ? 'f' : q.aBits <= 8 ? 'q' : 'w')).join('');
}

/** Writes the network at its current bits in the given form (see the module comment). */
export interface WriteOptions {
  /** eval mode: weights and biases as graph inputs (default false: constants of the current state). */
  weightInputs?: boolean;
  /**
   * eval mode: every quantized layer's input, before its activation quantizer, is also a graph output (see
   * WrittenGraph.taps), e.g. for calibration statistics. Zero pads are then written, not folded, so a tap is
   * the tensor the tfjs layer reads (NCHW for convolutions, [N, F] for dense layers).
   */
  tapInputs?: boolean;
}

export function writeGraph(
  net: QuantNetwork,
  mode: GraphMode,
  meta: Record<string, string> = {},
  wopts: WriteOptions = {},
): WrittenGraph {
  const model = net.model;
  const b = new Builder();
  const feeds: EvalFeed[] = [];
  /** `pad`: a zero Pad that only convolutions read, folded into their pads (eval mode) instead of written. */
  const out = new Map<
    string,
    { name: string; rank: number; shape: Shape; pad?: { src: string; pads: [number, number, number, number] } }
  >();
  const readers = consumers(model);
  const tapped = new Map<number, string>();
  const inLayer = model.inputs[0]?.sourceLayer;
  if (!inLayer || model.inputs.length !== 1) throw new UserError('only single-input networks can be written as ONNX');
  const inShape = model.inputs[0].shape; // [N, H, W, C]
  const [H, W, C] = inShape.slice(1) as [number, number, number];
  const inputName = 'input';
  if (mode === 'eval') {
    b.input(inputName, DataType.FLOAT, ['batch', H, W, C]);
    out.set(inLayer.name, {
      name: b.node('Transpose', [inputName], [attrInts('perm', [0, 3, 1, 2])], 'to_nchw'),
      rank: 4,
      shape: inShape,
    });
  } else {
    b.input(inputName, DataType.FLOAT, ['batch', C, H, W]);
    out.set(inLayer.name, { name: inputName, rank: 4, shape: inShape });
  }
  const folded = new Set(net.qlayers.filter((q) => q.foldedBn).map((q) => (q.foldedBn as tf.layers.Layer).name));
  const qIndex = new Map(net.qlayers.map((q, i) => [q.name, i] as const));
  const elemType = {
    float32: DataType.FLOAT,
    bool: DataType.BOOL,
    int8: DataType.INT8,
    uint8: DataType.UINT8,
  } as const;
  const feedInput = (
    name: string,
    dims: number[],
    read: () => Float32Array | Uint8Array | Int8Array,
    dtype: EvalFeed['dtype'] = 'float32',
    asInput = true,
  ): string => {
    if (!asInput) {
      const v = read();
      return b.init(dtype === 'float32' ? floatTensor(name, dims, v) : intTensor(name, dims, v, elemType[dtype]));
    }
    b.input(name, elemType[dtype], dims);
    feeds.push({ name, dims, dtype, read });
    return name;
  };

  for (const layer of model.layers) {
    if (layer === inLayer) continue;
    const cls = layer.getClassName();
    const where = `layer '${layer.name}' (${cls})`;
    const srcs = inboundNames(layer).map((n) => {
      const s = out.get(n);
      if (!s) throw new UserError(`${where} reads '${n}', which was not written`);
      return s;
    });
    const x = srcs[0];
    const outShape = single(layer.outputShape);
    const rank = outShape.length;
    const set = (name: string): void => void out.set(layer.name, { name, rank, shape: outShape });
    const cfg = layer.getConfig();

    if (layer instanceof QuantLayer) {
      const i = qIndex.get(layer.name) as number;
      const q = layer;
      // ---- input activation quantizer (before a folded zero Pad: the grid holds 0, so quantizing commutes with it)
      let xin = x.pad ? x.pad.src : x.name;
      if (wopts.tapInputs) tapped.set(i, xin);
      if (mode === 'eval' && q.aBits < FLOAT_BITS) {
        // the grid's numbers are always inputs; its form (QDQ up to 8 bits, float ops above) is the graph's structure
        const st = `q${i}`;
        let cached: FixedActGrid | null = null;
        const grid = (): FixedActGrid => {
          if (cached) return cached;
          const g = q.inferenceGrid();
          if (!g || g.binary) throw new Error(`layer ${q.name}: binary activations are not in the evaluation graph`);
          cached = g;
          return g;
        };
        const fresh = (): FixedActGrid => {
          cached = null;
          return grid();
        };
        if (q.aBits <= 8) {
          // DequantizeLinear(Clip(QuantizeLinear(x, scale), qmin, qmax), scale): three passes, two of them on
          // one-byte codes. scale and the integer range are graph inputs: onnxruntime's QDQ fusions (which would
          // turn neighbouring float ops into integer kernels with their own requantization) need constant scales,
          // and the session also turns them off (runtime.ts, evalSessionOptions).
          const t = q.signed ? 'int8' : 'uint8';
          const scale = feedInput(`${st}_scale`, [], () => Float32Array.of(fresh().scale));
          const codes = (v: number): Int8Array | Uint8Array => (q.signed ? Int8Array.of(v) : Uint8Array.of(v));
          const lo = feedInput(`${st}_qmin`, [], () => codes(grid().qmin), t);
          const hi = feedInput(`${st}_qmax`, [], () => codes(grid().qmax), t);
          const zp = b.intConst([0], q.signed ? DataType.INT8 : DataType.UINT8, []);
          const qv = b.node('QuantizeLinear', [xin, scale, zp]);
          xin = b.node('DequantizeLinear', [b.node('Clip', [qv, lo, hi]), scale, zp], [], `${q.name}_actq`);
        } else {
          // wider grids: scale * Round(Clip(x * (1/scale), qmin, qmax)), the tfjs fake quantizer's op order
          const inv = feedInput(`${st}_inv`, [], () => Float32Array.of(1 / fresh().scale));
          const scale = feedInput(`${st}_scale`, [], () => Float32Array.of(grid().scale));
          const lo = feedInput(`${st}_lo`, [], () => Float32Array.of(grid().qmin));
          const hi = feedInput(`${st}_hi`, [], () => Float32Array.of(grid().qmax));
          const r = b.node('Round', [b.node('Clip', [b.node('Mul', [xin, inv]), lo, hi])]);
          xin = b.node('Mul', [r, scale], [], `${q.name}_actq`);
        }
      } else if (mode !== 'float' && mode !== 'eval' && q.aBits < FLOAT_BITS) {
        let g: ReturnType<QuantLayer['inferenceGrid']>;
        try {
          g = q.inferenceGrid();
        } catch (e) {
          throw new UserError((e as Error).message, { field: q.name });
        }
        if (!g) throw new Error('unreachable');
        if (g.binary)
          throw new UserError(`layer '${q.name}': signed 1-bit activations (two levels ±s) have no ONNX integer grid`, {
            field: q.name,
            expected: 'aBits >= 2',
          });
        if (mode === 'qonnx') {
          b.usesQonnx = true;
          const signed = g.qmin < 0 ? 1 : 0;
          const narrow = signed && g.qmin === -g.qmax ? 1 : 0;
          xin = b.node(
            'Quant',
            [xin, b.floatConst([g.scale]), b.floatConst([0]), b.floatConst([q.aBits])],
            [attrInt('signed', signed), attrInt('narrow', narrow), attrString('rounding_mode', 'ROUND')],
            `${q.name}_act_quant`,
            QONNX_DOMAIN,
          );
        } else if (q.aBits <= 8) {
          const zpType = g.qmin < 0 ? DataType.INT8 : DataType.UINT8;
          // the grid's range; none needed when it is the integer type's whole range (uint8 at 8 bits)
          // the grid's range by Min / Max: QuantizeLinear saturates at the type's own range only, and onnxruntime's
          // Clip -> QuantizeLinear fusion would drop a narrower Clip. The Min also keeps onnxruntime from fusing
          // op -> QuantizeLinear into integer kernels, whose requantization rounds differently from the simulation.
          const tmin = zpType === DataType.UINT8 ? 0 : -128;
          let clipped = b.node('Min', [xin, b.floatConst([g.qmax * g.scale])]);
          if (g.qmin > tmin) clipped = b.node('Max', [clipped, b.floatConst([g.qmin * g.scale])]);
          const sc = b.floatConst([g.scale]);
          const zp = b.intConst([0], zpType, []);
          const qv = b.node('QuantizeLinear', [clipped, sc, zp], [], `${q.name}_act_q`);
          xin = b.node('DequantizeLinear', [qv, sc, zp], [], `${q.name}_act_dq`);
        } else {
          // wider than int8: the same grid in float ops
          const r = b.node('Clip', [
            b.node('Round', [b.node('Mul', [xin, b.floatConst([1 / g.scale])])]),
            b.floatConst([g.qmin]),
            b.floatConst([g.qmax]),
          ]);
          xin = b.node('Mul', [r, b.floatConst([g.scale])], [], `${q.name}_act_fq`);
        }
      }
      // ---- weights
      const kshape = q.getKernel().shape as number[];
      const kind = q.kind;
      const od = onnxKernel(kind, kshape, new Float32Array(kshape.reduce((a, c) => a * c, 1))).dims;
      const outC = q.outChannels;
      const hasBias = q.useBias || q.foldedBn !== null;
      let wName: string;
      let bName: string | null = null;
      if (mode === 'eval') {
        let cache: { k: Float32Array; b: Float32Array | null } | null = null;
        const params = (): { k: Float32Array; b: Float32Array | null } => {
          if (!cache) {
            tf.engine().startScope();
            try {
              const p = q.inferenceParams();
              cache = { k: onnxKernel(kind, kshape, p.kernel.dataSync()).data, b: p.bias ? values(p.bias) : null };
            } finally {
              tf.engine().endScope();
            }
          }
          return cache;
        };
        const wi = wopts.weightInputs === true;
        wName = feedInput(
          `w${i}`,
          od,
          () => {
            cache = null;
            return params().k;
          },
          'float32',
          wi,
        );
        if (hasBias) bName = feedInput(`b${i}`, [outC], () => params().b ?? new Float32Array(outC), 'float32', wi);
      } else {
        const p = mode === 'float' ? null : q.exportParams();
        let floatKernel: Float32Array;
        let bias: Float32Array | null;
        if (!p) {
          const saved = q.wBits;
          q.wBits = FLOAT_BITS;
          tf.engine().startScope();
          let r: { k: Float32Array; b: Float32Array | null };
          try {
            const ip = q.inferenceParams();
            r = { k: values(ip.kernel), b: ip.bias ? values(ip.bias) : null };
          } finally {
            q.wBits = saved;
            tf.engine().endScope();
          }
          floatKernel = r.k;
          bias = r.b;
        } else {
          bias = p.bias;
          floatKernel = p.kernel ?? new Float32Array(0);
        }
        if (p && p.codes && p.scales) {
          const codes = onnxKernel(kind, kshape, p.codes);
          const scales = p.scales;
          const axis = kind === 'dense' ? 1 : 0;
          if (mode === 'qdq' && q.wBits <= 8) {
            const cw = b.init(intTensor(`${q.name}.weight_codes`, codes.dims, codes.data, DataType.INT8));
            const sc = b.init(floatTensor(`${q.name}.weight_scale`, [outC], scales));
            const zp = b.init(
              intTensor(`${q.name}.weight_zero_point`, [outC], new Array<number>(outC).fill(0), DataType.INT8),
            );
            wName = b.node('DequantizeLinear', [cw, sc, zp], [attrInt('axis', axis)], `${q.name}_w_dq`);
          } else {
            // float weights on the grid (codes * scale); qonnx adds its Quant node with the bit width
            const deq = new Float32Array(codes.data.length);
            const per = kind === 'dense' ? 1 : codes.data.length / outC;
            for (let e = 0; e < deq.length; e++) {
              const ch = kind === 'dense' ? e % outC : Math.floor(e / per);
              deq[e] = codes.data[e] * scales[ch];
            }
            wName = b.init(floatTensor(`${q.name}.weight`, codes.dims, deq));
            if (mode === 'qonnx') {
              b.usesQonnx = true;
              const sdims = kind === 'dense' ? [1, outC] : [outC, 1, 1, 1];
              const sc = b.init(floatTensor(`${q.name}.weight_scale`, sdims, scales));
              wName = b.node(
                'Quant',
                [wName, sc, b.floatConst([0]), b.floatConst([q.wBits])],
                [
                  attrInt('signed', 1),
                  attrInt('narrow', q.wBits > 1 && p.range && p.range.qmin === -p.range.qmax ? 1 : 0),
                  attrString('rounding_mode', 'ROUND'),
                ],
                `${q.name}_w_quant`,
                QONNX_DOMAIN,
              );
            }
          }
        } else {
          const k = onnxKernel(kind, kshape, floatKernel);
          wName = b.init(floatTensor(`${q.name}.weight`, k.dims, k.data));
        }
        if (hasBias) bName = b.init(floatTensor(`${q.name}.bias`, [outC], bias ?? new Float32Array(outC)));
      }
      // ---- the op
      let y: string;
      if (q instanceof QDense) {
        if (x.rank !== 2)
          throw new UserError(`${where}: a Dense layer on a rank-${x.rank} input has no ONNX translation here`, {
            expected: 'Dense on [N, F]',
          });
        y = b.node('Gemm', bName ? [xin, wName, bName] : [xin, wName], [], q.name);
      } else {
        const g = q as QConv2D | QDepthwiseConv2D;
        const [h, w] = [x.shape[1] as number, x.shape[2] as number];
        let pads = [0, 0, 0, 0];
        if (g.padding === 'same') {
          const ph = samePads(h, g.kernelSize[0], g.strides[0], g.dilationRate[0]);
          const pw = samePads(w, g.kernelSize[1], g.strides[1], g.dilationRate[1]);
          pads = [ph[0], pw[0], ph[1], pw[1]];
        }
        if (x.pad) pads = pads.map((p, j) => p + (x.pad as { pads: number[] }).pads[j]);
        const attrs = [
          attrInts('kernel_shape', [...g.kernelSize]),
          attrInts('strides', [...g.strides]),
          attrInts('dilations', [...g.dilationRate]),
          attrInts('pads', pads),
        ];
        if (q instanceof QDepthwiseConv2D) attrs.push(attrInt('group', kshape[2]));
        y = b.node('Conv', bName ? [xin, wName, bName] : [xin, wName], attrs, q.name);
      }
      set(activationOp(b, q.activation, y, where));
      continue;
    }

    switch (cls) {
      case 'BatchNormalization': {
        if (folded.has(layer.name)) {
          set(x.name);
          break;
        }
        const names = ['scale', 'bias', 'mean', 'var'];
        const get = (): Float32Array[] => {
          tf.engine().startScope();
          try {
            const f = batchNormFactors(layer);
            return [values(f.k), values(f.beta), values(f.mean)];
          } finally {
            tf.engine().endScope();
          }
        };
        const ch = outShape[outShape.length - 1] as number;
        let inputs: string[];
        if (mode === 'eval') {
          let cache: Float32Array[] | null = null;
          inputs = [0, 1, 2].map((j) =>
            feedInput(
              `${layer.name}_${names[j]}`,
              [ch],
              () => {
                if (j === 0) cache = get();
                return (cache ?? get())[j];
              },
              'float32',
              wopts.weightInputs === true,
            ),
          );
        } else {
          const v = get();
          inputs = [0, 1, 2].map((j) => b.init(floatTensor(`${layer.name}.${names[j]}`, [ch], v[j])));
        }
        // y = (x - mean) * k + beta, with k = gamma / sqrt(var + eps)
        const shp = x.rank === 4 ? [1, ch, 1, 1] : [1, ch];
        const rs = (n: string): string => b.node('Reshape', [n, b.intConst(shp)]);
        set(
          b.node(
            'Add',
            [b.node('Mul', [b.node('Sub', [x.name, rs(inputs[2])]), rs(inputs[0])]), rs(inputs[1])],
            [],
            layer.name,
          ),
        );
        break;
      }
      case 'ReLU': {
        const maxValue = cfg['maxValue'];
        set(
          typeof maxValue === 'number'
            ? b.node('Clip', [x.name, b.floatConst([0]), b.floatConst([maxValue])], [], layer.name)
            : b.node('Relu', [x.name], [], layer.name),
        );
        break;
      }
      case 'LeakyReLU':
        set(b.node('LeakyRelu', [x.name], [attrFloat('alpha', Number(cfg['alpha'] ?? 0.3))], layer.name));
        break;
      case 'Activation':
        set(activationOp(b, String(cfg['activation']), x.name, where));
        break;
      case 'Softmax':
        set(b.node('Softmax', [x.name], [attrInt('axis', -1)], layer.name));
        break;
      case 'Add':
      case 'Multiply': {
        let acc = x.name;
        for (const s of srcs.slice(1)) acc = b.node(cls === 'Add' ? 'Add' : 'Mul', [acc, s.name], [], layer.name);
        set(acc);
        break;
      }
      case 'Concatenate': {
        const axis = Number(cfg['axis'] ?? -1);
        if (axis !== -1 && axis !== rank - 1)
          throw new UserError(`${where}: concat along axis ${axis} has no translation here`, {
            expected: 'the channel axis',
          });
        set(
          b.node(
            'Concat',
            srcs.map((s) => s.name),
            [attrInt('axis', 1)],
            layer.name,
          ),
        );
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const ks = cfg['poolSize'] as number[];
        const st = (cfg['strides'] as number[] | null) ?? ks;
        let pads = [0, 0, 0, 0];
        if (cfg['padding'] === 'same') {
          const ph = samePads(x.shape[1] as number, ks[0], st[0], 1);
          const pw = samePads(x.shape[2] as number, ks[1], st[1], 1);
          pads = [ph[0], pw[0], ph[1], pw[1]];
        }
        set(
          b.node(
            cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool',
            [x.name],
            [attrInts('kernel_shape', ks), attrInts('strides', st), attrInts('pads', pads)],
            layer.name,
          ),
        );
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        set(
          b.node('Flatten', [
            b.node(cls === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x.name], [], layer.name),
          ]),
        );
        break;
      case 'Flatten':
        set(
          x.rank === 4
            ? b.node('Flatten', [b.node('Transpose', [x.name], [attrInts('perm', [0, 2, 3, 1])])], [], layer.name)
            : x.name,
        );
        break;
      case 'Dropout':
        set(x.name);
        break;
      case 'ZeroPadding2D':
      case 'OnnxPad2D': {
        let t: number, bo: number, l: number, r: number;
        let value = 0;
        if (layer instanceof OnnxPad2D) {
          [t, bo, l, r] = layer.pads;
          value = layer.value;
        } else {
          const p = cfg['padding'] as [[number, number], [number, number]];
          [[t, bo], [l, r]] = p;
        }
        const convsOnly = (readers.get(layer.name) ?? []).every((n) => {
          const l = model.getLayer(n);
          return l instanceof QConv2D || l instanceof QDepthwiseConv2D;
        });
        if (mode === 'eval' && value === 0 && convsOnly && !x.pad && !wopts.tapInputs) {
          out.set(layer.name, { name: '', rank, shape: outShape, pad: { src: x.name, pads: [t, l, bo, r] } });
          break;
        }
        set(
          b.node(
            'Pad',
            [x.name, b.intConst([0, 0, t, l, 0, 0, bo, r]), b.floatConst([value])],
            [attrString('mode', 'constant')],
            layer.name,
          ),
        );
        break;
      }
      case 'OnnxClip': {
        const c = layer as OnnxClip;
        set(b.node('Clip', [x.name, b.floatConst([c.min]), b.floatConst([c.max])], [], layer.name));
        break;
      }
      case 'OnnxHardSigmoid': {
        const c = layer as OnnxHardSigmoid;
        set(b.node('HardSigmoid', [x.name], [attrFloat('alpha', c.alpha), attrFloat('beta', c.beta)], layer.name));
        break;
      }
      case 'OnnxHardSwish':
        void (layer as OnnxHardSwish);
        set(b.node('HardSwish', [x.name], [], layer.name));
        break;
      case 'ChannelSlice': {
        const c = layer as ChannelSlice;
        set(
          b.node(
            'Slice',
            [x.name, b.intConst([c.start]), b.intConst([c.start + c.size]), b.intConst([1])],
            [],
            layer.name,
          ),
        );
        break;
      }
      default:
        throw new UserError(`${where} has no ONNX translation`, {
          expected:
            'Conv/Dense (quantized), BatchNormalization, ReLU, LeakyReLU, Activation, Softmax, Add, Multiply, Concatenate, pooling, Flatten, Dropout, padding',
        });
    }
  }
  const last = model.outputs[0]?.sourceLayer.name;
  const y = out.get(last) as { name: string; shape: Shape };
  const outputName = 'logits';
  // the last node writes the graph output itself (an Identity there trips onnxruntime's optimizer)
  const producer = b.nodes.find((n) => (n.output ?? [])[0] === y.name);
  if (producer && !b.nodes.some((n) => (n.input ?? []).includes(y.name))) producer.output = [outputName];
  else b.nodes.push({ opType: 'Identity', input: [y.name], output: [outputName], name: 'output' });
  const classes = y.shape[y.shape.length - 1] as number;
  // (a quantized layer never reads the network's output, so no tap is the renamed last tensor)
  const tapOutputs: ValueInfoProto[] = [...new Set(tapped.values())].map((name) => ({
    name,
    type: { tensorType: { elemType: DataType.FLOAT } },
  }));
  const opsetImport = [{ domain: '', version: OPSET }];
  if (b.usesQonnx) opsetImport.push({ domain: QONNX_DOMAIN, version: 1 });
  const proto: ModelProto = {
    irVersion: 8,
    producerName: 'bitalloc',
    producerVersion: '1',
    opsetImport,
    graph: {
      name: model.name,
      node: b.nodes,
      initializer: b.inits,
      input: b.inputs,
      output: [
        {
          name: outputName,
          type: {
            tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: classes }] } },
          },
        },
        ...tapOutputs,
      ],
    },
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
  };
  const taps = wopts.tapInputs ? net.qlayers.map((_, i) => tapped.get(i) as string) : undefined;
  return { model: proto, feeds, inputName, outputName, ...(taps ? { taps } : {}) };
}
