/**
 * The integer evaluation graph: the network at its current bits written so that onnxruntime's QDQ
 * fusions turn its convolutions into integer kernels (QLinearConv: uint8/int8 activations, int8
 * weights, int32 accumulation; VNNI on CPUs that have it).
 *
 * It starts from the deployable QDQ graph (graph.ts, mode `qdq`: int8 weight codes with per-channel
 * scales through DequantizeLinear; activations Min / Max then QuantizeLinear / DequantizeLinear) and
 * rewrites it:
 * - an activation quantizer becomes QuantizeLinear -> Clip on the integer codes (qmin..qmax) ->
 *   DequantizeLinear (the Min / Max in float would keep the producer from fusing with the QuantizeLinear);
 * - a ReLU / ReLU6 (Relu, Clip) read only by a quantizer is absorbed into the code Clip: rounding is
 *   monotone, so Q(min(max(x, a), b)) = min(max(Q(x), Q(a)), Q(b)) exactly;
 * - a zero Pad read only by one quantizer whose codes go only to convolutions is folded into their
 *   pads (every grid holds 0);
 * - activation codes are uint8 (onnxruntime's x86 integer convolutions take no int8 activations): a
 *   signed grid qmin..qmax is held as 0..qmax-qmin with zero point -qmin;
 * - codes are spread over uint8 when every reader is an integer op: codes 0..hi become 0..hi * 2^k
 *   (BitShift) at scale s / 2^k, and a layer's int8 weight codes become codes * 2^k_c at s_c / 2^k_c
 *   (largest k_c with max |code| * 2^k_c <= 127): the same values, and an int32 bias grid
 *   (s_in * s_w) up to 256x finer at W4A4;
 * - a convolution or Gemm whose input and weights are both dequantized gets its float bias as int32
 *   codes at scale s_in * s_w[c] (round to nearest) through DequantizeLinear, as the integer kernels
 *   take it, instead of leaving the choice to onnxruntime;
 * - a layer whose weights are wider than 8 bits (float weights) keeps its input quantizer in float
 *   ops (x * (1/s), Clip, Round, * s), so onnxruntime never quantizes float weights to int8 itself.
 * The session keeps QDQ fusions on (runtime.ts createSession without `fakeQuant`). What differs from
 * the simulated network is the bias: the integer kernels add it as int32 codes at s_in * s_w, so each
 * channel's bias moves by up to half of that grid, and outputs near a rounding boundary of the next
 * quantizer land on the other code; and the requantization, acc * (s_in * s_w / s_out) + bias rounded
 * once in float32, differs from rounding the float conv's output near ties (bench/int-eval.ts measures
 * both: fusions off for the bias alone, fused against unfused for the requantization).
 * Convolutions whose output goes to an Add or a pooling in float (no quantizer right after) stay
 * float convolutions. Input NHWC, like the eval graph.
 */
import type { QuantNetwork } from '../quant/network.js';
import { writeGraph } from './graph.js';
import {
  DataType,
  attributes,
  attrInts,
  floatTensor,
  intTensor,
  tensorValues,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from './proto.js';

export interface IntegerGraph {
  model: ModelProto;
  inputName: string;
  outputName: string;
  /** Convolutions / Gemms whose input and weights are both integer codes (candidates for integer kernels). */
  integerLayers: number;
  /** Quantized layers in all. */
  layers: number;
}

interface Graph {
  nodes: NodeProto[];
  inits: Map<string, TensorProto>;
}

function consumersOf(g: Graph, name: string): NodeProto[] {
  return g.nodes.filter((n) => (n.input ?? []).includes(name));
}

function producerOf(g: Graph, name: string): NodeProto | undefined {
  return g.nodes.find((n) => (n.output ?? []).includes(name));
}

/** A scalar (or one-element) initializer's value, or null when the name is not a constant. */
function scalar(g: Graph, name: string | undefined): number | null {
  if (!name) return null;
  const t = g.inits.get(name);
  if (!t) return null;
  const v = tensorValues(t).data;
  return v.length === 1 ? v[0] : null;
}

function constArray(g: Graph, name: string | undefined): Float32Array | Float64Array | null {
  if (!name) return null;
  const t = g.inits.get(name);
  return t ? tensorValues(t).data : null;
}

let fresh = 0;
function addInit(g: Graph, t: TensorProto): string {
  g.inits.set(t.name as string, t);
  return t.name as string;
}

function remove(g: Graph, n: NodeProto): void {
  g.nodes.splice(g.nodes.indexOf(n), 1);
}

function rename(g: Graph, from: string, to: string): void {
  for (const n of g.nodes) n.input = (n.input ?? []).map((i) => (i === from ? to : i));
}

/** Rounds half to even, as QuantizeLinear does. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Spreads a layer's weight codes over int8: channel c's codes times 2^k_c (the largest k_c with
 * max |code| * 2^k_c <= 127) at scale s_c / 2^k_c, the same products. The integer kernels take the
 * bias as int32 codes at s_in * s_w[c], so a finer weight scale rounds the bias finer (at 4 bits 16x);
 * the accumulation stays exact. A channel of zero codes takes the largest scale of the layer (its bias
 * would overflow int32 at a vanishing scale). Returns the new scales (null when not a constant DQ).
 */
function widenCodes(g: Graph, wdq: NodeProto, axis: number): Float32Array | null {
  const ct = g.inits.get(wdq.input?.[0] as string);
  const st = g.inits.get(wdq.input?.[1] as string);
  if (!ct || !st || ct.dataType !== DataType.INT8) return null;
  const { dims, data: codes } = tensorValues(ct);
  const scales = Float32Array.from(tensorValues(st).data);
  const C = scales.length;
  // element e's channel: axis 0 ([C, ...]) or axis 1 of a [in, C] Gemm weight
  const inner = axis === 0 ? codes.length / C : 1;
  const chan = (e: number): number => (axis === 0 ? Math.floor(e / inner) : e % C);
  const maxAbs = new Float64Array(C);
  for (let e = 0; e < codes.length; e++) maxAbs[chan(e)] = Math.max(maxAbs[chan(e)], Math.abs(codes[e]));
  const mult = new Float64Array(C).fill(1);
  let finest = Infinity;
  for (let c = 0; c < C; c++) {
    if (maxAbs[c] === 0) continue;
    mult[c] = 2 ** Math.floor(Math.log2(127 / maxAbs[c]));
    scales[c] = scales[c] / mult[c];
    finest = Math.min(finest, scales[c]);
  }
  for (let c = 0; c < C; c++) if (maxAbs[c] === 0 && Number.isFinite(finest)) scales[c] = finest;
  const out = new Int8Array(codes.length);
  for (let e = 0; e < codes.length; e++) out[e] = codes[e] * mult[chan(e)];
  addInit(g, intTensor(ct.name as string, dims, out, DataType.INT8));
  addInit(g, floatTensor(st.name as string, (st.dims ?? []).map(Number), scales));
  return scales;
}

/** Writes the integer evaluation graph of the network at its current bits (see the module comment). */
export function writeIntegerGraph(net: QuantNetwork): IntegerGraph {
  const w = writeGraph(net, 'qdq');
  const graph = w.model.graph ?? {};
  const g: Graph = {
    nodes: [...(graph.node ?? [])],
    inits: new Map((graph.initializer ?? []).map((t) => [t.name as string, t] as const)),
  };
  const tag = `i${fresh++}`;
  const qLayers = net.qlayers;
  const wide = new Set(qLayers.filter((q) => q.wBits > 8).map((q) => q.name));

  // ---- activation quantizers: [Min] [Max] -> QuantizeLinear  =>  QuantizeLinear -> Clip(codes)
  for (const q of g.nodes.filter((n) => n.opType === 'QuantizeLinear')) {
    const [x0, sName, zName] = q.input ?? [];
    const s = scalar(g, sName);
    const zt = g.inits.get(zName ?? '');
    if (s === null || !zt) continue;
    const signed = zt.dataType === DataType.INT8;
    let lo = signed ? -128 : 0;
    let hi = signed ? 127 : 255;
    let x = x0;
    for (;;) {
      const p = producerOf(g, x);
      if (!p || (p.opType !== 'Min' && p.opType !== 'Max') || consumersOf(g, x).length > 1) break;
      const c = scalar(g, p.input?.[1]);
      if (c === null) break;
      const code = roundEven(c / s);
      if (p.opType === 'Min') hi = Math.min(hi, code);
      else lo = Math.max(lo, code);
      x = p.input?.[0] as string;
      remove(g, p);
    }
    // signed grids as uint8 codes from 0 (zero point -qmin, the same values): onnxruntime's x86 integer
    // convolutions take uint8 activations only
    const qOut = (q.output ?? [])[0];
    const dqs = consumersOf(g, qOut);
    let zp = zName;
    if (signed) {
      const z = -lo;
      zp = addInit(g, intTensor(`zp${z}_${tag}`, [], [z], DataType.UINT8));
      lo += z;
      hi += z;
      for (const d of dqs) if (d.input?.[2] === zName) d.input = [d.input[0], d.input[1], zp];
    }
    q.input = [x, sName, zp];
    const dt = DataType.UINT8;
    const loName = addInit(g, intTensor(`${qOut}_${tag}_lo`, [], [lo], dt));
    const hiName = addInit(g, intTensor(`${qOut}_${tag}_hi`, [], [hi], dt));
    const clipped = `${qOut}_${tag}_clip`;
    g.nodes.splice(g.nodes.indexOf(q) + 1, 0, {
      opType: 'Clip',
      input: [qOut, loName, hiName],
      output: [clipped],
      name: clipped,
    });
    for (const d of dqs) d.input = (d.input ?? []).map((i) => (i === qOut ? clipped : i));
  }

  // the chain QuantizeLinear -> Clip -> DequantizeLinear of an activation quantizer, by its QuantizeLinear
  const chain = (q: NodeProto): { clip: NodeProto; dqs: NodeProto[] } | null => {
    const out = (q.output ?? [])[0];
    const cs = consumersOf(g, out);
    if (cs.length !== 1 || cs[0].opType !== 'Clip') return null;
    const dqs = consumersOf(g, (cs[0].output ?? [])[0]);
    if (!dqs.length || !dqs.every((d) => d.opType === 'DequantizeLinear')) return null;
    return { clip: cs[0], dqs };
  };
  const setClip = (clip: NodeProto, lo: number, hi: number): void => {
    const t = g.inits.get(clip.input?.[1] as string) as TensorProto;
    addInit(g, intTensor(clip.input?.[1] as string, [], [lo], t.dataType as number));
    addInit(g, intTensor(clip.input?.[2] as string, [], [Math.max(lo, hi)], t.dataType as number));
  };

  for (const q of g.nodes.filter((n) => n.opType === 'QuantizeLinear')) {
    const c = chain(q);
    if (!c) continue;
    const s = scalar(g, q.input?.[1]) as number;
    // ---- a zero Pad in front, read only by this quantizer, whose codes go only to convolutions: into their pads
    const padNode = producerOf(g, q.input?.[0] as string);
    if (
      padNode?.opType === 'Pad' &&
      consumersOf(g, (padNode.output ?? [])[0]).length === 1 &&
      (scalar(g, padNode.input?.[2]) ?? 0) === 0
    ) {
      const convs = c.dqs.flatMap((d) => consumersOf(g, (d.output ?? [])[0]));
      const pads = constArray(g, padNode.input?.[1]);
      if (pads && pads.length === 8 && convs.every((n) => n.opType === 'Conv' && n.input?.[0] !== n.input?.[1])) {
        const [, , t, l, , , b, r] = Array.from(pads);
        for (const conv of convs) {
          const a = attributes(conv).get('pads');
          const p = a?.ints ? a.ints.map(Number) : [0, 0, 0, 0];
          const np = [p[0] + t, p[1] + l, p[2] + b, p[3] + r];
          conv.attribute = [...(conv.attribute ?? []).filter((x) => x.name !== 'pads'), attrInts('pads', np)];
        }
        q.input = [padNode.input?.[0] as string, q.input?.[1] as string, q.input?.[2] as string];
        remove(g, padNode);
      }
    }
    // ---- a ReLU / ReLU6 read only by this quantizer: into the code Clip
    const act = producerOf(g, q.input?.[0] as string);
    if (act && consumersOf(g, (act.output ?? [])[0]).length === 1) {
      let a: number | null = null;
      let b: number | null = null;
      if (act.opType === 'Relu') a = 0;
      else if (act.opType === 'Clip') {
        a = scalar(g, act.input?.[1]);
        b = scalar(g, act.input?.[2]);
        if ((act.input?.[1] && a === null) || (act.input?.[2] && b === null)) a = b = NaN;
      }
      if (a !== null && !Number.isNaN(a)) {
        let lo = scalar(g, c.clip.input?.[1]) as number;
        let hi = scalar(g, c.clip.input?.[2]) as number;
        const z = scalar(g, q.input?.[2]) ?? 0;
        lo = Math.max(lo, Math.min(hi, roundEven(a / s) + z));
        if (b !== null) hi = Math.min(hi, Math.max(lo, roundEven(b / s) + z));
        setClip(c.clip, lo, hi);
        q.input = [act.input?.[0] as string, q.input?.[1] as string, q.input?.[2] as string];
        remove(g, act);
      }
    }
  }

  // ---- codes spread over uint8: a grid of codes 0..hi becomes 0..hi * 2^k (BitShift) at scale s / 2^k, the same
  // values, when every reader is an integer op; their int32 bias codes (at s_in * s_w) get 2^k times finer
  const intWeights = (n: NodeProto): boolean =>
    (n.opType === 'Conv' || n.opType === 'Gemm') &&
    producerOf(g, n.input?.[1] as string)?.opType === 'DequantizeLinear' &&
    !wide.has(n.name?.replace(/_\d+$/, '') ?? '');
  for (const q of g.nodes.filter((n) => n.opType === 'QuantizeLinear')) {
    const c = chain(q);
    if (!c) continue;
    const readers = c.dqs.flatMap((d) => consumersOf(g, (d.output ?? [])[0]));
    if (!readers.length || !readers.every(intWeights)) continue;
    const hi = scalar(g, c.clip.input?.[2]) as number;
    const z = scalar(g, q.input?.[2]) ?? 0;
    const s = scalar(g, q.input?.[1]) as number;
    const k = hi > 0 ? Math.floor(Math.log2(255 / hi)) : 0;
    if (k < 1) continue;
    const base = `${(c.clip.output ?? [])[0]}_shl`;
    const amount = addInit(g, intTensor(`${base}_k`, [], [k], DataType.UINT8));
    g.nodes.splice(g.nodes.indexOf(c.clip) + 1, 0, {
      opType: 'BitShift',
      input: [(c.clip.output ?? [])[0], amount],
      output: [base],
      name: base,
      attribute: [{ name: 'direction', type: 3, s: new TextEncoder().encode('LEFT') }],
    });
    const sc = addInit(g, floatTensor(`${base}_scale`, [], [s / 2 ** k]));
    const zp = addInit(g, intTensor(`${base}_zp`, [], [z * 2 ** k], DataType.UINT8));
    for (const d of c.dqs) d.input = [base, sc, zp];
  }

  // ---- the ops on integer codes: int32 biases; float-weight layers keep a float input quantizer
  let integerLayers = 0;
  for (const op of g.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm')) {
    const [xName, wName, bName] = op.input ?? [];
    const dq = producerOf(g, xName);
    const wdq = producerOf(g, wName);
    if (dq?.opType !== 'DequantizeLinear') continue;
    if (wdq?.opType !== 'DequantizeLinear' || wide.has(op.name?.replace(/_\d+$/, '') ?? '')) {
      // float weights next to a dequantized input: write this input's quantizer in float ops
      const s = scalar(g, dq.input?.[1]) as number;
      const clip = producerOf(g, dq.input?.[0] as string);
      const q = clip ? producerOf(g, clip.input?.[0] as string) : undefined;
      if (!clip || clip.opType !== 'Clip' || q?.opType !== 'QuantizeLinear') continue;
      const z = scalar(g, q.input?.[2]) ?? 0;
      const lo = (scalar(g, clip.input?.[1]) as number) - z;
      const hi = (scalar(g, clip.input?.[2]) as number) - z;
      const base = `${op.name as string}_${tag}_fq`;
      const c = (n: string, v: number): string => addInit(g, floatTensor(`${base}_${n}`, [], [v]));
      const nodes: NodeProto[] = [
        { opType: 'Mul', input: [q.input?.[0] as string, c('inv', 1 / s)], output: [`${base}_m`], name: `${base}_m` },
        { opType: 'Clip', input: [`${base}_m`, c('lo', lo), c('hi', hi)], output: [`${base}_c`], name: `${base}_c` },
        { opType: 'Round', input: [`${base}_c`], output: [`${base}_r`], name: `${base}_r` },
        { opType: 'Mul', input: [`${base}_r`, c('s', s)], output: [`${base}_y`], name: `${base}_y` },
      ];
      g.nodes.splice(g.nodes.indexOf(op), 0, ...nodes);
      op.input = [`${base}_y`, ...(op.input ?? []).slice(1)];
      continue;
    }
    integerLayers++;
    const ws = widenCodes(g, wdq, op.opType === 'Gemm' ? 1 : 0);
    if (!bName) continue;
    const bias = g.inits.get(bName);
    const sIn = scalar(g, dq.input?.[1]);
    if (!bias || bias.dataType !== DataType.FLOAT || !ws || sIn === null) continue;
    const bv = tensorValues(bias).data;
    const sc = new Float32Array(bv.length);
    const codes = new Int32Array(bv.length);
    for (let i = 0; i < bv.length; i++) {
      sc[i] = Math.fround(sIn * (ws.length === 1 ? ws[0] : ws[i]));
      codes[i] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(bv[i] / sc[i])));
    }
    const base = `${bName}_${tag}`;
    const cName = addInit(g, intTensor(`${base}_codes`, [bv.length], codes, DataType.INT32));
    const sName = addInit(g, floatTensor(`${base}_scale`, [bv.length], sc));
    const zName = addInit(g, intTensor(`${base}_zp`, [bv.length], new Int32Array(bv.length), DataType.INT32));
    const out = `${base}_dq`;
    g.nodes.splice(g.nodes.indexOf(op), 0, {
      opType: 'DequantizeLinear',
      input: [cName, sName, zName],
      output: [out],
      name: out,
      attribute: [{ name: 'axis', type: 2, i: 0 }],
    });
    op.input = [xName, wName, out];
  }

  // ---- NHWC input, like the eval graph
  const inputName = w.inputName;
  const nchw = `${inputName}_${tag}_nchw`;
  rename(g, inputName, nchw);
  g.nodes.unshift({
    opType: 'Transpose',
    input: [inputName],
    output: [nchw],
    name: nchw,
    attribute: [attrInts('perm', [0, 3, 1, 2])],
  });
  const used = new Set(g.nodes.flatMap((n) => n.input ?? []));
  const inShape = net.model.inputs[0].shape;
  const inputs = (graph.input ?? []).map((i) =>
    i.name === inputName
      ? {
          ...i,
          type: {
            tensorType: {
              elemType: DataType.FLOAT,
              shape: {
                dim: [{ dimParam: 'batch' }, ...(inShape.slice(1) as number[]).map((d) => ({ dimValue: d }))],
              },
            },
          },
        }
      : i,
  );
  const model: ModelProto = {
    ...w.model,
    graph: {
      ...graph,
      node: g.nodes,
      initializer: [...g.inits.values()].filter((t) => used.has(t.name as string)),
      input: inputs,
    },
  };
  return { model, inputName, outputName: w.outputName, integerLayers, layers: qLayers.length };
}
