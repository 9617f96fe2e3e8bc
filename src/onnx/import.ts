/**
 * ONNX import: an ONNX CNN (as torch.onnx.export or tf2onnx write it, opsets 11-17) translated
 * into the internal network representation, a float tfjs layers model in NHWC (Conv2D,
 * DepthwiseConv2D, Dense, BatchNormalization, ReLU, Add, Concatenate, pooling ...) with the NCHW
 * weights transposed, which quantizeModel then turns into a QuantNetwork like any user model.
 *
 * Layout: a 4-D ONNX tensor [N, C, H, W] is the tfjs tensor [N, H, W, C]; GlobalAveragePool's
 * [N, C, 1, 1] is the tfjs [N, C]. Flatten of a [C, H, W] map flattens in H, W, C order in tfjs, so
 * the next Gemm / MatMul gets its weight rows permuted to match. Subgraphs over constants (the
 * pads computation torch writes for F.pad, Clip bounds, Reshape targets) are evaluated at import.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { ChannelSlice, MAX_POOL_PAD, OnnxClip, OnnxHardSigmoid, OnnxHardSwish, OnnxPad2D } from './layers.js';
import { attrText, attributes, decodeModel, tensorValues, type AttributeProto, type ModelProto } from './proto.js';

/** ONNX operators the importer translates. */
export const SUPPORTED_OPS: readonly string[] = [
  'Conv',
  'Gemm',
  'MatMul',
  'Add',
  'Mul',
  'BatchNormalization',
  'Relu',
  'Clip',
  'LeakyRelu',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Softmax',
  'Concat',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'AveragePool',
  'MaxPool',
  'Pad',
  'Flatten',
  'Reshape',
  'Transpose',
  'Squeeze',
  'Unsqueeze',
  'Identity',
  'Dropout',
  'Constant',
  'ConstantOfShape',
  'Shape',
  'Gather',
  'Slice',
  'Cast',
];

type Sym = tf.SymbolicTensor;

/** A constant tensor (initializer, Constant node, or folded). */
interface Const {
  dims: number[];
  data: Float32Array | Float64Array;
}

/**
 * A runtime tensor: `image` = ONNX [N, C, H, W] held as tfjs [N, H, W, C]; `vector` = ONNX [N, F]
 * held as tfjs [N, F] (perm[i] = the ONNX feature index of tfjs feature i, null when equal);
 * `pooled` = ONNX [N, C, 1, 1] held as tfjs [N, C]; `nhwc` = a 4-D graph input already NHWC
 * (tf2onnx), which a Transpose [0, 3, 1, 2] turns into an image.
 */
interface Value {
  sym: Sym;
  kind: 'image' | 'vector' | 'pooled' | 'nhwc';
  perm: Int32Array | null;
}

export interface OnnxImport {
  /** The float network (NHWC), weights set. */
  model: tf.LayersModel;
  /** Input shape [h, w, c]. */
  inputShape: [number, number, number];
  opset: number;
  producer: string;
}

function numel(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function ints(a: AttributeProto | undefined, d: number[]): number[] {
  return a?.ints && a.ints.length ? a.ints.map(Number) : d;
}

function intAttr(a: AttributeProto | undefined, d: number): number {
  return a?.i !== undefined ? Number(a.i) : d;
}

function floatAttr(a: AttributeProto | undefined, d: number): number {
  return a?.f !== undefined ? a.f : d;
}

/** TF's 'same' padding for one axis: [before, after]. */
function samePads(size: number, k: number, s: number, d: number): [number, number] {
  const ek = (k - 1) * d + 1;
  const out = Math.ceil(size / s);
  const total = Math.max(0, (out - 1) * s + ek - size);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** Row-major strides of dims. */
function strides(dims: number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

function transposeConst(c: Const, perm: number[]): Const {
  const dims = perm.map((p) => c.dims[p]);
  const src = strides(c.dims);
  const out = new (c.data.constructor as Float64ArrayConstructor)(c.data.length);
  const dst = strides(dims);
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    let rem = i;
    let off = 0;
    for (let a = 0; a < dims.length; a++) {
      idx[a] = Math.floor(rem / dst[a]);
      rem -= idx[a] * dst[a];
      off += idx[a] * src[perm[a]];
    }
    out[i] = c.data[off];
  }
  return { dims, data: out };
}

function sliceConst(c: Const, starts: number[], ends: number[], axes: number[], steps: number[]): Const {
  const dims = [...c.dims];
  const ranges = dims.map((d) => ({ start: 0, step: 1, count: d }));
  axes.forEach((ax0, j) => {
    const ax = ax0 < 0 ? ax0 + dims.length : ax0;
    const d = dims[ax];
    const step = steps[j] ?? 1;
    let st = starts[j];
    let en = ends[j];
    if (st < 0) st += d;
    if (en < 0) en += d;
    if (step > 0) {
      st = Math.min(Math.max(st, 0), d);
      en = Math.min(Math.max(en, 0), d);
    } else {
      st = Math.min(Math.max(st, -1), d - 1);
      en = Math.min(Math.max(en, -1), d - 1);
    }
    const count = Math.max(0, Math.ceil((en - st) / step));
    ranges[ax] = { start: st, step, count };
  });
  const outDims = ranges.map((r) => r.count);
  const src = strides(c.dims);
  const dst = strides(outDims);
  const out = new (c.data.constructor as Float64ArrayConstructor)(numel(outDims));
  for (let i = 0; i < out.length; i++) {
    let rem = i;
    let off = 0;
    for (let a = 0; a < outDims.length; a++) {
      const k = Math.floor(rem / dst[a]);
      rem -= k * dst[a];
      const r = ranges[a] as { start: number; step: number };
      off += (r.start + k * r.step) * src[a];
    }
    out[i] = c.data[off];
  }
  return { dims: outDims, data: out };
}

/** A layer's name from its weight's name (torch: `features.0.0.weight` -> features_0_0), else the node's. */
function weightBase(weight: string, nodeName: string | undefined): string {
  if (weight && !weight.startsWith('onnx::') && /\.weight$/.test(weight)) return weight.replace(/\.weight$/, '');
  if (nodeName && nodeName.includes('/')) {
    // torch scopes: /layer1/layer1.0/conv1/Conv -> layer1.0.conv1
    const segs = nodeName.split('/').filter(Boolean).slice(0, -1);
    let p = '';
    for (const seg of segs) p = p && !seg.startsWith(`${p}.`) ? `${p}.${seg}` : seg;
    if (p) return p;
  }
  return nodeName || weight || 'layer';
}

function sanitize(name: string): string {
  const s = name
    .replace(/^\/+/, '')
    .replace(/[^A-Za-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return s.length ? s : 'node';
}

/** Reads and translates an ONNX file. */
export function importOnnxFile(file: string, opts: { inputShape?: number[] } = {}): OnnxImport {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT' ? 'ONNX model not found' : `cannot read ONNX model: ${(e as Error).message}`,
      { file },
    );
  }
  let m: ModelProto;
  try {
    m = decodeModel(bytes);
  } catch (e) {
    throw new UserError(`not a valid ONNX file: ${(e as Error).message}`, {
      file,
      expected: 'an ONNX ModelProto (e.g. written by torch.onnx.export)',
    });
  }
  return importOnnx(m, file, opts);
}

/** Translates a decoded ONNX model (see the module comment). */
export function importOnnx(m: ModelProto, file: string, opts: { inputShape?: number[] } = {}): OnnxImport {
  const graph = m.graph;
  if (!graph || !graph.node || graph.node.length === 0)
    throw new UserError('the ONNX model has no graph nodes', { file, field: 'graph' });
  const opset = Number((m.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0);
  const consts = new Map<string, Const>();
  for (const t of graph.initializer ?? []) {
    try {
      consts.set(t.name ?? '', tensorValues(t));
    } catch (e) {
      throw new UserError((e as Error).message, { file, field: `graph.initializer '${t.name}'` });
    }
  }
  const inputs = (graph.input ?? []).filter((v) => !consts.has(v.name));
  if (inputs.length !== 1)
    throw new UserError(`the ONNX graph has ${inputs.length} inputs`, {
      file,
      field: 'graph.input',
      expected: 'one image input [N, C, H, W]',
    });
  if ((graph.output ?? []).length !== 1)
    throw new UserError(`the ONNX graph has ${(graph.output ?? []).length} outputs`, {
      file,
      field: 'graph.output',
      expected: 'one output (logits)',
    });
  const inVi = inputs[0];
  const dims = (inVi.type?.tensorType?.shape?.dim ?? []).map((d) =>
    d.dimValue !== undefined ? Number(d.dimValue) : null,
  );
  if (dims.length !== 4)
    throw new UserError(`input '${inVi.name}' has rank ${dims.length}`, {
      file,
      field: 'graph.input[0]',
      expected: 'a 4-D image input [N, C, H, W]',
    });

  const nodes = graph.node;
  const consumersOf = new Map<string, number[]>();
  nodes.forEach((n, i) => {
    for (const x of n.input ?? []) if (x) consumersOf.set(x, [...(consumersOf.get(x) ?? []), i]);
  });
  // tf2onnx feeds NHWC and transposes: recognise an input whose every consumer is Transpose [0, 3, 1, 2]
  const inCons = consumersOf.get(inVi.name) ?? [];
  const nhwcInput =
    inCons.length > 0 &&
    inCons.every((i) => {
      const n = nodes[i];
      return n.opType === 'Transpose' && ints(attributes(n).get('perm'), []).join(',') === '0,3,1,2';
    });
  let shape: [number, number, number];
  const fromFile = nhwcInput ? [dims[1], dims[2], dims[3]] : [dims[2], dims[3], dims[1]];
  if (opts.inputShape && opts.inputShape.length === 3) {
    fromFile.forEach((d, i) => {
      if (d !== null && d !== opts.inputShape![i]) {
        throw new UserError(
          `the ONNX input is [h, w, c] = [${fromFile.join(', ')}], the data is [${opts.inputShape!.join(', ')}]`,
          { file, field: `graph.input '${inVi.name}'`, expected: 'matching shapes' },
        );
      }
    });
    shape = opts.inputShape as [number, number, number];
  } else {
    if (fromFile.some((d) => d === null))
      throw new UserError(`input '${inVi.name}' has dynamic spatial or channel dims`, {
        file,
        field: 'graph.input[0]',
        expected: 'fixed C, H, W (or give the dataset)',
      });
    shape = fromFile as [number, number, number];
  }

  const x = tf.input({ shape, name: sanitize(inVi.name) || 'input' });
  const values = new Map<string, Value>([[inVi.name, { sym: x, kind: nhwcInput ? 'nhwc' : 'image', perm: null }]]);
  const pending: [tf.layers.Layer, tf.Tensor[]][] = [];
  const used = new Set<string>([x.sourceLayer.name]);
  const skip = new Set<number>();
  const uniq = (base: string): string => {
    let n = sanitize(base);
    for (let k = 1; used.has(n); k++) n = `${sanitize(base)}_${k}`;
    used.add(n);
    return n;
  };
  const apply = (layer: tf.layers.Layer, ins: Sym | Sym[], weights?: tf.Tensor[]): Sym => {
    const y = layer.apply(ins) as Sym;
    if (weights) pending.push([layer, weights]);
    return y;
  };

  try {
    nodes.forEach((node, idx) => {
      if (skip.has(idx)) return;
      const op = node.opType;
      const nodeName = node.name || (node.output ?? [])[0] || `#${idx}`;
      const where = { file, field: `graph.node[${idx}] '${nodeName}' (${op})` };
      const fail = (msg: string, expected?: string): never => {
        throw new UserError(msg, { ...where, ...(expected ? { expected } : {}) });
      };
      if (node.domain && node.domain !== 'ai.onnx')
        fail(`node '${nodeName}' is in domain '${node.domain}'`, 'standard ONNX operators');
      const at = attributes(node);
      const ins = node.input ?? [];
      const outs = node.output ?? [];
      const out = outs[0];
      const isConst = (n: string | undefined): boolean => n !== undefined && n !== '' && consts.has(n);
      const c = (n: string | undefined): Const => {
        const v = n ? consts.get(n) : undefined;
        if (!v) return fail(`input '${n}' of node '${nodeName}' must be a constant`);
        return v;
      };
      const v = (n: string | undefined): Value => {
        const r = n ? values.get(n) : undefined;
        if (!r) return fail(`input '${n}' of node '${nodeName}' is not produced by a supported node`);
        return r;
      };
      const layerName = (fallback: string): string => uniq(node.name ? node.name : fallback);
      const setConst = (k: Const): void => void consts.set(out, k);
      const alias = (val: Value): void => void values.set(out, val);

      if (!SUPPORTED_OPS.includes(op)) {
        fail(`node '${nodeName}' has op type '${op}', which is not supported`, `one of ${SUPPORTED_OPS.join(', ')}`);
      }

      // ---- constant folding
      const allConst = ins.filter((n) => n !== '').every((n) => isConst(n));
      if (op === 'Constant') {
        const t = at.get('value')?.t;
        if (t) return setConst(tensorValues(t));
        const f = at.get('value_float');
        if (f) return setConst({ dims: [], data: Float32Array.of(f.f ?? 0) });
        const fs_ = at.get('value_floats');
        if (fs_?.floats) return setConst({ dims: [fs_.floats.length], data: Float32Array.from(fs_.floats) });
        const i1 = at.get('value_int');
        if (i1) return setConst({ dims: [], data: Float64Array.of(Number(i1.i ?? 0)) });
        const is = at.get('value_ints');
        if (is?.ints) return setConst({ dims: [is.ints.length], data: Float64Array.from(is.ints.map(Number)) });
        return fail('Constant without a supported value attribute', 'value, value_float(s) or value_int(s)');
      }
      if (op === 'Shape') {
        const val = v(ins[0]);
        const s = val.sym.shape;
        if (val.kind === 'image')
          return setConst({ dims: [4], data: Float64Array.from([s[0] ?? 1, s[3] ?? 0, s[1] ?? 0, s[2] ?? 0]) });
        if (val.kind === 'pooled')
          return setConst({ dims: [4], data: Float64Array.from([s[0] ?? 1, s[1] ?? 0, 1, 1]) });
        return setConst({ dims: [s.length], data: Float64Array.from(s.map((d) => d ?? 1)) });
      }
      if (
        allConst &&
        ins.length > 0 &&
        [
          'ConstantOfShape',
          'Concat',
          'Reshape',
          'Slice',
          'Transpose',
          'Cast',
          'Squeeze',
          'Unsqueeze',
          'Gather',
          'Identity',
          'Add',
          'Mul',
        ].includes(op)
      ) {
        const a = c(ins[0]);
        switch (op) {
          case 'ConstantOfShape': {
            const t = at.get('value')?.t;
            const fill = t ? (tensorValues(t).data[0] ?? 0) : 0;
            const d = Array.from(a.data, Number);
            return setConst({ dims: d, data: new Float64Array(numel(d)).fill(fill) });
          }
          case 'Concat': {
            const parts = ins.map((n) => c(n));
            if (parts.some((p) => p.dims.length !== 1))
              return fail('Concat of constants: only 1-D constants are folded');
            const data = Float64Array.from(parts.flatMap((p) => Array.from(p.data)));
            return setConst({ dims: [data.length], data });
          }
          case 'Reshape': {
            const target = Array.from(c(ins[1]).data, Number);
            const n = numel(a.dims);
            const known = target.reduce((p, d, i) => (d === -1 ? p : p * (d === 0 ? a.dims[i] : d)), 1);
            return setConst({
              dims: target.map((d, i) => (d === -1 ? n / known : d === 0 ? a.dims[i] : d)),
              data: a.data,
            });
          }
          case 'Slice': {
            const starts = Array.from(ins[1] ? c(ins[1]).data : [], Number);
            const ends = Array.from(ins[2] ? c(ins[2]).data : [], Number);
            const axes = ins[3] ? Array.from(c(ins[3]).data, Number) : starts.map((_, i) => i);
            const steps = ins[4] ? Array.from(c(ins[4]).data, Number) : starts.map(() => 1);
            return setConst(sliceConst(a, starts, ends, axes, steps));
          }
          case 'Transpose':
            return setConst(
              transposeConst(
                a,
                ints(
                  at.get('perm'),
                  a.dims.map((_, i) => a.dims.length - 1 - i),
                ),
              ),
            );
          case 'Cast':
          case 'Identity':
            return setConst(a);
          case 'Squeeze':
          case 'Unsqueeze': {
            const axes = ins[1] ? Array.from(c(ins[1]).data, Number) : ints(at.get('axes'), []);
            let d = [...a.dims];
            if (op === 'Squeeze')
              d = d.filter(
                (x2, i) => !(axes.length ? axes.map((q) => (q < 0 ? q + a.dims.length : q)).includes(i) : x2 === 1),
              );
            else for (const q of [...axes].sort((p, r) => p - r)) d.splice(q < 0 ? q + d.length + 1 : q, 0, 1);
            return setConst({ dims: d, data: a.data });
          }
          case 'Gather': {
            const indices = c(ins[1]);
            if (a.dims.length !== 1 || intAttr(at.get('axis'), 0) !== 0)
              return fail('Gather of constants: only 1-D along axis 0 is folded');
            const data = Float64Array.from(indices.data, (i) => a.data[i < 0 ? i + a.data.length : i]);
            return setConst({ dims: indices.dims, data });
          }
          case 'Add':
          case 'Mul': {
            const b = c(ins[1]);
            if (numel(b.dims) !== 1 && numel(b.dims) !== numel(a.dims))
              return fail('elementwise op on constants: only same-size or scalar operands are folded');
            const data = Float64Array.from(a.data, (q, i) =>
              op === 'Add' ? q + b.data[numel(b.dims) === 1 ? 0 : i] : q * b.data[numel(b.dims) === 1 ? 0 : i],
            );
            return setConst({ dims: a.dims, data });
          }
        }
      }
      if (['ConstantOfShape', 'Shape', 'Gather', 'Slice', 'Cast'].includes(op)) {
        fail(`node '${nodeName}' (${op}) works on a runtime tensor; only constant subgraphs of it are supported`);
      }

      // ---- network layers
      switch (op) {
        case 'Identity':
        case 'Dropout':
          return alias(v(ins[0]));
        case 'Conv': {
          const xin = v(ins[0]);
          if (xin.kind !== 'image') return fail('Conv input is not an image tensor [N, C, H, W]');
          const w = c(ins[1]);
          const bias = ins[2] ? c(ins[2]) : null;
          if (w.dims.length !== 4)
            return fail(`Conv weight has rank ${w.dims.length}`, 'a 2-D convolution (weight [M, C/group, kh, kw])');
          const [cout, cinG, kh, kw] = w.dims as [number, number, number, number];
          const group = intAttr(at.get('group'), 1);
          const st = ints(at.get('strides'), [1, 1]);
          const dil = ints(at.get('dilations'), [1, 1]);
          const [h, wd, cin] = xin.sym.shape.slice(1) as [number, number, number];
          if (cinG * group !== cin)
            return fail(`Conv weight expects ${cinG * group} input channels, its input has ${cin}`);
          const auto = attrText(at.get('auto_pad')) ?? 'NOTSET';
          let pads = ints(at.get('pads'), [0, 0, 0, 0]); // [top, left, bottom, right]
          const sh = samePads(h, kh, st[0], dil[0]);
          const sw = samePads(wd, kw, st[1], dil[1]);
          if (auto === 'SAME_UPPER') pads = [sh[0], sw[0], sh[1], sw[1]];
          else if (auto === 'SAME_LOWER') pads = [sh[1], sw[1], sh[0], sw[0]];
          else if (auto === 'VALID') pads = [0, 0, 0, 0];
          let src = xin.sym;
          let padding: 'same' | 'valid' = 'valid';
          if (pads.every((p) => p === 0)) padding = 'valid';
          else if (pads[0] === sh[0] && pads[2] === sh[1] && pads[1] === sw[0] && pads[3] === sw[1]) padding = 'same';
          else
            src = apply(
              tf.layers.zeroPadding2d({
                name: uniq(`${nodeName}_pad`),
                padding: [
                  [pads[0], pads[2]],
                  [pads[1], pads[3]],
                ],
              }),
              src,
            );
          const base = weightBase(ins[1], node.name);
          const geom = {
            kernelSize: [kh, kw] as [number, number],
            strides: st.slice(0, 2) as [number, number],
            padding,
            dilationRate: dil.slice(0, 2) as [number, number],
            useBias: bias !== null,
          };
          if (group === 1) {
            // [M, C, kh, kw] -> [kh, kw, C, M]
            const k = transposeConst(w, [2, 3, 1, 0]);
            const layer = tf.layers.conv2d({ name: uniq(base), filters: cout, ...geom });
            const wts: tf.Tensor[] = [tf.tensor(Float32Array.from(k.data), k.dims)];
            if (bias) wts.push(tf.tensor1d(Float32Array.from(bias.data)));
            return alias({ sym: apply(layer, src, wts), kind: 'image', perm: null });
          }
          if (cinG === 1) {
            // depthwise: [C*mult, 1, kh, kw] -> [kh, kw, C, mult] (output channel c*mult + m)
            const mult = cout / cin;
            const k = transposeConst({ dims: [cin, mult, kh, kw], data: w.data }, [2, 3, 0, 1]);
            const layer = tf.layers.depthwiseConv2d({ name: uniq(base), depthMultiplier: mult, ...geom });
            const wts: tf.Tensor[] = [tf.tensor(Float32Array.from(k.data), k.dims)];
            if (bias) wts.push(tf.tensor1d(Float32Array.from(bias.data)));
            return alias({ sym: apply(layer, src, wts), kind: 'image', perm: null });
          }
          // grouped: one conv per group on its slice of channels, concatenated
          const coutG = cout / group;
          const parts: Sym[] = [];
          for (let g = 0; g < group; g++) {
            const sl = apply(new ChannelSlice({ name: uniq(`${base}_slice${g}`), start: g * cinG, size: cinG }), src);
            const wg: Const = {
              dims: [coutG, cinG, kh, kw],
              data: w.data.slice(g * coutG * cinG * kh * kw, (g + 1) * coutG * cinG * kh * kw),
            };
            const k = transposeConst(wg, [2, 3, 1, 0]);
            const wts: tf.Tensor[] = [tf.tensor(Float32Array.from(k.data), k.dims)];
            if (bias) wts.push(tf.tensor1d(Float32Array.from(bias.data.slice(g * coutG, (g + 1) * coutG))));
            parts.push(apply(tf.layers.conv2d({ name: uniq(`${base}_g${g}`), filters: coutG, ...geom }), sl, wts));
          }
          return alias({
            sym: apply(tf.layers.concatenate({ name: uniq(`${base}_groups`), axis: -1 }), parts),
            kind: 'image',
            perm: null,
          });
        }
        case 'Gemm':
        case 'MatMul': {
          const a = v(ins[0]);
          if (a.kind === 'image' || a.kind === 'nhwc')
            return fail(`${op} input is a 4-D tensor`, 'a [N, F] input (Flatten first)');
          if (!isConst(ins[1])) return fail(`${op} with a runtime second operand`, 'a constant weight');
          const w = c(ins[1]);
          if (w.dims.length !== 2) return fail(`${op} weight has rank ${w.dims.length}`, 'a 2-D weight');
          let k = w; // [in, out]
          let bias: Const | null = null;
          let alpha = 1;
          let beta = 1;
          if (op === 'Gemm') {
            if (intAttr(at.get('transA'), 0) !== 0) return fail('Gemm with transA = 1', 'transA = 0');
            if (intAttr(at.get('transB'), 0) === 1) k = transposeConst(w, [1, 0]);
            alpha = floatAttr(at.get('alpha'), 1);
            beta = floatAttr(at.get('beta'), 1);
            if (ins[2]) bias = c(ins[2]);
          } else {
            const next = consumersOf.get(out) ?? [];
            const nn = next.length === 1 ? nodes[next[0]] : undefined;
            if (nn && nn.opType === 'Add') {
              const other = (nn.input ?? []).find((n) => n !== out);
              if (other && isConst(other) && numel(c(other).dims) === k.dims[1]) {
                bias = c(other);
                skip.add(next[0]);
              }
            }
          }
          const [fin, fout] = k.dims as [number, number];
          const dimIn = a.sym.shape[a.sym.shape.length - 1];
          if (dimIn !== fin) return fail(`${op} weight expects ${fin} input features, its input has ${dimIn}`);
          const kern = new Float32Array(fin * fout);
          for (let i = 0; i < fin; i++) {
            const row = a.perm ? a.perm[i] : i;
            for (let j = 0; j < fout; j++) kern[i * fout + j] = alpha * k.data[row * fout + j];
          }
          const wts: tf.Tensor[] = [tf.tensor2d(kern, [fin, fout])];
          if (bias) {
            const b = bias;
            const bv = Float32Array.from({ length: fout }, (_, j) => beta * b.data[numel(b.dims) === 1 ? 0 : j]);
            wts.push(tf.tensor1d(bv));
          }
          const base = weightBase(ins[1], node.name);
          const layer = tf.layers.dense({ name: uniq(base), units: fout, useBias: bias !== null });
          const y = apply(layer, a.sym, wts);
          const target = skip.has((consumersOf.get(out) ?? [])[0] ?? -1)
            ? (nodes[(consumersOf.get(out) ?? [])[0]].output ?? [])[0]
            : out;
          values.set(target, { sym: y, kind: 'vector', perm: null });
          return;
        }
        case 'BatchNormalization': {
          const xin = v(ins[0]);
          const [g, b, mean, variance] = [1, 2, 3, 4].map((i) => c(ins[i]));
          const layer = tf.layers.batchNormalization({
            name: layerName('bn'),
            axis: -1,
            epsilon: floatAttr(at.get('epsilon'), 1e-5),
            momentum: floatAttr(at.get('momentum'), 0.9),
          });
          const wts = [g, b, mean, variance].map((q) => tf.tensor1d(Float32Array.from(q.data)));
          return alias({ ...xin, sym: apply(layer, xin.sym, wts) });
        }
        case 'Relu':
          return alias({ ...v(ins[0]), sym: apply(tf.layers.reLU({ name: layerName('relu') }), v(ins[0]).sym) });
        case 'LeakyRelu':
          return alias({
            ...v(ins[0]),
            sym: apply(
              tf.layers.leakyReLU({ name: layerName('leaky_relu'), alpha: floatAttr(at.get('alpha'), 0.01) }),
              v(ins[0]).sym,
            ),
          });
        case 'Sigmoid':
          return alias({
            ...v(ins[0]),
            sym: apply(tf.layers.activation({ name: layerName('sigmoid'), activation: 'sigmoid' }), v(ins[0]).sym),
          });
        case 'HardSigmoid':
          return alias({
            ...v(ins[0]),
            sym: apply(
              new OnnxHardSigmoid({
                name: layerName('hard_sigmoid'),
                alpha: floatAttr(at.get('alpha'), 0.2),
                beta: floatAttr(at.get('beta'), 0.5),
              }),
              v(ins[0]).sym,
            ),
          });
        case 'HardSwish':
          return alias({
            ...v(ins[0]),
            sym: apply(new OnnxHardSwish({ name: layerName('hard_swish') }), v(ins[0]).sym),
          });
        case 'Softmax': {
          const xin = v(ins[0]);
          if (xin.kind !== 'vector' && xin.kind !== 'pooled')
            return fail('Softmax over a 4-D tensor', 'Softmax over the features of [N, F]');
          return alias({ ...xin, sym: apply(tf.layers.softmax({ name: layerName('softmax') }), xin.sym) });
        }
        case 'Clip': {
          const xin = v(ins[0]);
          const lo = ins[1] ? c(ins[1]).data[0] : floatAttr(at.get('min'), -Infinity);
          const hi = ins[2] ? c(ins[2]).data[0] : floatAttr(at.get('max'), Infinity);
          let layer: tf.layers.Layer;
          if (lo === 0 && hi === 6) layer = tf.layers.reLU({ name: layerName('relu6'), maxValue: 6 });
          else if (lo === 0 && !Number.isFinite(hi)) layer = tf.layers.reLU({ name: layerName('relu') });
          else layer = new OnnxClip({ name: layerName('clip'), min: Math.max(lo, -3.4e38), max: Math.min(hi, 3.4e38) });
          return alias({ ...xin, sym: apply(layer, xin.sym) });
        }
        case 'Add':
        case 'Mul': {
          if (ins.some((n) => isConst(n)))
            return fail(
              `${op} with a constant operand`,
              `${op} of two runtime tensors (a constant bias is supported after MatMul)`,
            );
          const [a, b] = [v(ins[0]), v(ins[1])];
          if (a.perm || b.perm) return fail(`${op} on flattened feature maps`);
          const kind = a.kind === 'image' || b.kind === 'image' ? 'image' : a.kind;
          const layer =
            op === 'Add' ? tf.layers.add({ name: layerName('add') }) : tf.layers.multiply({ name: layerName('mul') });
          return alias({ sym: apply(layer, [a.sym, b.sym]), kind, perm: null });
        }
        case 'Concat': {
          const parts = ins.map((n) => v(n));
          const axis = intAttr(at.get('axis'), 1);
          if (axis !== 1 || parts.some((p) => p.perm || p.kind !== parts[0].kind))
            return fail(`Concat along axis ${axis}`, 'a channel concat (axis 1) of tensors of one layout');
          return alias({
            sym: apply(
              tf.layers.concatenate({ name: layerName('concat'), axis: -1 }),
              parts.map((p) => p.sym),
            ),
            kind: parts[0].kind,
            perm: null,
          });
        }
        case 'GlobalAveragePool':
        case 'GlobalMaxPool': {
          const xin = v(ins[0]);
          if (xin.kind !== 'image') return fail(`${op} input is not an image tensor`);
          const layer =
            op === 'GlobalAveragePool'
              ? tf.layers.globalAveragePooling2d({ name: layerName('gap') })
              : tf.layers.globalMaxPooling2d({ name: layerName('gmp') });
          return alias({ sym: apply(layer, xin.sym), kind: 'pooled', perm: null });
        }
        case 'AveragePool':
        case 'MaxPool': {
          const xin = v(ins[0]);
          if (xin.kind !== 'image') return fail(`${op} input is not an image tensor`);
          if (intAttr(at.get('ceil_mode'), 0) !== 0) return fail(`${op} with ceil_mode = 1`, 'ceil_mode = 0');
          if (ints(at.get('dilations'), [1, 1]).some((d) => d !== 1))
            return fail(`${op} with dilations`, 'dilations 1');
          const ks = ints(at.get('kernel_shape'), []);
          const st = ints(at.get('strides'), [1, 1]);
          const auto = attrText(at.get('auto_pad')) ?? 'NOTSET';
          if (auto !== 'NOTSET' && auto !== 'VALID') return fail(`${op} with auto_pad ${auto}`, 'explicit pads');
          const pads = auto === 'VALID' ? [0, 0, 0, 0] : ints(at.get('pads'), [0, 0, 0, 0]);
          let src = xin.sym;
          if (pads.some((p) => p !== 0)) {
            if (op === 'AveragePool' && intAttr(at.get('count_include_pad'), 0) !== 1)
              return fail('AveragePool with pads and count_include_pad = 0', 'pads 0, or count_include_pad = 1');
            const value = op === 'MaxPool' ? MAX_POOL_PAD : 0;
            src = apply(
              new OnnxPad2D({ name: uniq(`${nodeName}_pad`), pads: [pads[0], pads[2], pads[1], pads[3]], value }),
              src,
            );
          }
          const cfg = {
            name: layerName(op === 'MaxPool' ? 'maxpool' : 'avgpool'),
            poolSize: ks.slice(0, 2) as [number, number],
            strides: st.slice(0, 2) as [number, number],
            padding: 'valid' as const,
          };
          const layer = op === 'MaxPool' ? tf.layers.maxPooling2d(cfg) : tf.layers.averagePooling2d(cfg);
          return alias({ sym: apply(layer, src), kind: 'image', perm: null });
        }
        case 'Pad': {
          const xin = v(ins[0]);
          if (xin.kind !== 'image') return fail('Pad input is not an image tensor');
          const mode = attrText(at.get('mode')) ?? 'constant';
          if (mode !== 'constant') return fail(`Pad mode '${mode}'`, 'constant');
          const p = ins[1] ? Array.from(c(ins[1]).data, Number) : ints(at.get('pads'), []);
          const value = ins[2] ? c(ins[2]).data[0] : floatAttr(at.get('value'), 0);
          if (p.length !== 8 || p[0] !== 0 || p[1] !== 0 || p[4] !== 0 || p[5] !== 0 || p.some((q) => q < 0))
            return fail(`Pad pads [${p.join(', ')}]`, 'non-negative padding of H and W only');
          if (p.every((q) => q === 0)) return alias(xin);
          const [t, l, b, r] = [p[2], p[3], p[6], p[7]] as [number, number, number, number];
          const layer =
            value === 0
              ? tf.layers.zeroPadding2d({
                  name: layerName('pad'),
                  padding: [
                    [t, b],
                    [l, r],
                  ],
                })
              : new OnnxPad2D({ name: layerName('pad'), pads: [t, b, l, r], value });
          return alias({ sym: apply(layer, xin.sym), kind: 'image', perm: null });
        }
        case 'Flatten':
        case 'Reshape':
        case 'Squeeze': {
          const xin = v(ins[0]);
          if (op === 'Flatten' && intAttr(at.get('axis'), 1) !== 1) return fail('Flatten with axis != 1', 'axis 1');
          if (op === 'Reshape') {
            const target = Array.from(c(ins[1]).data, Number);
            const flat =
              target.length === 2 &&
              (target[1] === -1 ||
                (target[0] !== undefined && (target[0] === -1 || target[0] === 0 || target[0] === 1)));
            if (!flat) return fail(`Reshape to [${target.join(', ')}]`, 'a flatten to [N, F] (layout plumbing only)');
          }
          if (op === 'Squeeze') {
            const axes = ins[1] ? Array.from(c(ins[1]).data, Number) : ints(at.get('axes'), []);
            if (
              xin.kind !== 'pooled' ||
              !(
                axes.length === 0 ||
                axes
                  .map((q) => (q < 0 ? q + 4 : q))
                  .sort()
                  .join(',') === '2,3'
              )
            )
              return fail('Squeeze other than of the 1x1 spatial axes after global pooling');
          }
          if (xin.kind === 'vector' || xin.kind === 'pooled') return alias({ ...xin, kind: 'vector' });
          if (xin.kind === 'nhwc') {
            // an NHWC tensor flattens in the internal (NHWC) order: no feature permutation
            return alias({
              sym: apply(tf.layers.flatten({ name: layerName('flatten') }), xin.sym),
              kind: 'vector',
              perm: null,
            });
          }
          if (xin.kind !== 'image') return fail(`${op} of an NHWC input`);
          const [h, w, ch] = xin.sym.shape.slice(1) as [number, number, number];
          const y = apply(tf.layers.flatten({ name: layerName('flatten') }), xin.sym);
          let perm: Int32Array | null = null;
          if (h * w > 1) {
            perm = new Int32Array(h * w * ch);
            for (let i = 0; i < h; i++)
              for (let j = 0; j < w; j++)
                for (let k = 0; k < ch; k++) perm[(i * w + j) * ch + k] = k * h * w + i * w + j;
          }
          return alias({ sym: y, kind: 'vector', perm });
        }
        case 'Unsqueeze': {
          const xin = v(ins[0]);
          const axes = ins[1] ? Array.from(c(ins[1]).data, Number) : ints(at.get('axes'), []);
          if (
            xin.kind !== 'vector' ||
            xin.perm ||
            axes
              .map((q) => (q < 0 ? q + 4 : q))
              .sort()
              .join(',') !== '2,3'
          )
            return fail('Unsqueeze other than [N, C] -> [N, C, 1, 1]');
          return alias({ ...xin, kind: 'pooled' });
        }
        case 'Transpose': {
          const xin = v(ins[0]);
          const perm = ints(at.get('perm'), []).join(',');
          if (xin.kind === 'nhwc' && perm === '0,3,1,2') return alias({ ...xin, kind: 'image' });
          // tf2onnx, before a Keras Flatten: back to NHWC (the internal layout already)
          if (xin.kind === 'image' && perm === '0,2,3,1') return alias({ ...xin, kind: 'nhwc' });
          if ((xin.kind === 'vector' || xin.kind === 'pooled') && (perm === '0,1' || perm === '0,1,2,3'))
            return alias(xin);
          return fail(
            `Transpose with perm [${perm}]`,
            'layout plumbing only (an NHWC input transposed to NCHW, or an identity)',
          );
        }
      }
      return fail(`node '${nodeName}' (${op}) is used in a way the importer does not support`);
    });

    const outName = (graph.output ?? [])[0]?.name;
    const y = values.get(outName);
    if (!y)
      throw new UserError(`the graph output '${outName}' is not produced by a translated node`, {
        file,
        field: 'graph.output[0]',
      });
    if (y.kind !== 'vector' && y.kind !== 'pooled')
      throw new UserError(`the graph output '${outName}' is a 4-D tensor`, {
        file,
        field: 'graph.output[0]',
        expected: 'logits [N, classes]',
      });
    if (y.perm)
      throw new UserError(`the graph output '${outName}' is a flattened feature map`, {
        file,
        field: 'graph.output[0]',
        expected: 'logits [N, classes]',
      });
    const model = tf.model({ inputs: x, outputs: y.sym, name: sanitize(graph.name ?? 'onnx') || 'onnx' });
    for (const [layer, w] of pending) layer.setWeights(w);
    return { model, inputShape: shape, opset, producer: `${m.producerName ?? ''} ${m.producerVersion ?? ''}`.trim() };
  } finally {
    for (const [, w] of pending) tf.dispose(w);
  }
}
