/**
 * One-pass elementwise kernels for the wasm backend, where tfjs runs chains of full-size ops:
 * - the fake quantizer (quantize-dequantize with a straight-through gradient): tfjs ops take
 *   mul, clipByValue, round, mul forward and equal, cast, mul backward, each a pass over the
 *   activation with a new tensor, and save two full-size tensors for the backward pass; the fused
 *   forward kernel makes one pass and the backward kernel recomputes the pass-through mask from x;
 * - the gradient of ClipByValue (every ReLU6, and clipByValue in general): tfjs's gradient runs
 *   greaterEqual, lessEqual, logicalAnd, zerosLike and where, five full-size passes on bool
 *   tensors, the largest share of a MobileNet training step on wasm.
 * Results equal the tfjs ops exactly (float32 products with fround, round half to even, like
 * tf.round); on other backends the callers use the tfjs ops. Each kernel runs the compiled SIMD
 * loop of native/elementwise.c when it can (native.ts), else the JS loop here (same results).
 */
import * as tf from '@tensorflow/tfjs';
import { nativeKernels } from './native.js';
import { asWasmBackend, heapF32 } from './wasm-ops.js';

export const FAKE_QUANTIZE = 'BitallocFakeQuantize';
export const FAKE_QUANTIZE_GRAD = 'BitallocFakeQuantizeGrad';
export const CLIP_BY_VALUE_GRAD = 'BitallocClipByValueGrad';

interface FakeQuantAttrs {
  /** 1 / scale (used as a float32, like tf.mul(x, 1 / scale)). */
  inv: number;
  scale: number;
  qmin: number;
  qmax: number;
  /** Two levels: +scale where the clipped value is > 0, else -scale (tf.step(c, -1) * scale). */
  binary: boolean;
}

/** Round half to even, as tf.round. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function input(inputs: tf.NamedTensorInfoMap, name: string, kernel: string): tf.TensorInfo {
  const t = inputs[name];
  if (t == null || t.dtype !== 'float32') throw new Error(`${kernel}: input '${name}' must be a float32 tensor`);
  return t;
}

/** y = round(clamp(x * inv, qmin, qmax)) * scale (or the binary grid). */
export function fakeQuantizeKernel({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const b = asWasmBackend(backend, FAKE_QUANTIZE);
  const x = input(inputs, 'x', FAKE_QUANTIZE);
  const a = attrs as unknown as FakeQuantAttrs;
  const inv = Math.fround(a.inv);
  const scale = Math.fround(a.scale);
  const { qmin, qmax } = a;
  const out = b.makeOutput([...x.shape], 'float32');
  const src = heapF32(b, x);
  const dst = heapF32(b, out);
  const n = src.length;
  const native = nativeKernels(backend);
  if (native != null) {
    const run = a.binary ? native.fakeQuantizeBinary : native.fakeQuantize;
    run(src.byteOffset, dst.byteOffset, n, inv, scale, qmin, qmax);
    return out;
  }
  if (a.binary) {
    for (let i = 0; i < n; i++) {
      const r = Math.fround(src[i] * inv);
      const c = r < qmin ? qmin : r > qmax ? qmax : r;
      dst[i] = c > 0 ? scale : -scale;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const r = Math.fround(src[i] * inv);
      const c = r < qmin ? qmin : r > qmax ? qmax : r;
      dst[i] = roundHalfEven(c) * scale;
    }
  }
  return out;
}

/** dx = dy where qmin <= x * inv <= qmax, else 0. */
export function fakeQuantizeGradKernel({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const b = asWasmBackend(backend, FAKE_QUANTIZE_GRAD);
  const x = input(inputs, 'x', FAKE_QUANTIZE_GRAD);
  const dy = input(inputs, 'dy', FAKE_QUANTIZE_GRAD);
  const a = attrs as unknown as FakeQuantAttrs;
  const inv = Math.fround(a.inv);
  const { qmin, qmax } = a;
  const out = b.makeOutput([...x.shape], 'float32');
  const xs = heapF32(b, x);
  const dys = heapF32(b, dy);
  const dst = heapF32(b, out);
  if (dys.length !== xs.length) throw new Error(`${FAKE_QUANTIZE_GRAD}: dy and x differ in size`);
  const native = nativeKernels(backend);
  if (native != null) {
    native.fakeQuantizeGrad(xs.byteOffset, dys.byteOffset, dst.byteOffset, xs.length, inv, qmin, qmax);
    return out;
  }
  for (let i = 0; i < xs.length; i++) {
    const r = Math.fround(xs[i] * inv);
    dst[i] = r >= qmin && r <= qmax ? dys[i] : 0;
  }
  return out;
}

/** dx = dy where clipValueMin <= x <= clipValueMax, else 0. */
export function clipByValueGradKernel({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const b = asWasmBackend(backend, CLIP_BY_VALUE_GRAD);
  const x = input(inputs, 'x', CLIP_BY_VALUE_GRAD);
  const dy = input(inputs, 'dy', CLIP_BY_VALUE_GRAD);
  const { clipValueMin, clipValueMax } = attrs as unknown as { clipValueMin: number; clipValueMax: number };
  const lo = Math.fround(clipValueMin);
  const hi = Math.fround(clipValueMax);
  const out = b.makeOutput([...x.shape], 'float32');
  const xs = heapF32(b, x);
  const dys = heapF32(b, dy);
  const dst = heapF32(b, out);
  if (dys.length !== xs.length) throw new Error(`${CLIP_BY_VALUE_GRAD}: dy and x differ in size`);
  const native = nativeKernels(backend);
  if (native != null) {
    native.clipGrad(xs.byteOffset, dys.byteOffset, dst.byteOffset, xs.length, lo, hi);
    return out;
  }
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    dst[i] = v >= lo && v <= hi ? dys[i] : 0;
  }
  return out;
}

function onWasmWith(kernel: string): boolean {
  return tf.getBackend() === 'wasm' && tf.getKernel(kernel, 'wasm') != null;
}

/**
 * The fused fake quantizer with its straight-through gradient (dy where x / scale lies in the
 * range), or null when the backend is not wasm (the caller then uses tfjs ops).
 */
export function fusedFakeQuantize(
  x: tf.Tensor,
  scale: number,
  range: { qmin: number; qmax: number },
  binary: boolean,
): tf.Tensor | null {
  if (!onWasmWith(FAKE_QUANTIZE) || x.dtype !== 'float32') return null;
  const attrs = { inv: 1 / scale, scale, qmin: range.qmin, qmax: range.qmax, binary };
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const v = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([v]);
    return {
      value: tf.engine().runKernel<tf.Tensor>(FAKE_QUANTIZE, { x: v }, attrs),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel<tf.Tensor>(FAKE_QUANTIZE_GRAD, { dy, x: saved[0] }, attrs),
    };
  });
  return op(x);
}

/** Gradient of ClipByValue for every backend: one pass on wasm, tfjs's formulation elsewhere. */
export const clipByValueGradConfig: tf.GradConfig = {
  kernelName: 'ClipByValue',
  inputsToSave: ['x'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const g = Array.isArray(dy) ? dy[0] : dy;
    const x = saved[0];
    const { clipValueMin, clipValueMax } = attrs as unknown as { clipValueMin: number; clipValueMax: number };
    return {
      x: () =>
        onWasmWith(CLIP_BY_VALUE_GRAD) && g.dtype === 'float32' && x.dtype === 'float32' && g.size === x.size
          ? tf.engine().runKernel<tf.Tensor>(CLIP_BY_VALUE_GRAD, { dy: g, x }, { clipValueMin, clipValueMax })
          : tf.where(
              tf.logicalAnd(tf.greaterEqual(x, clipValueMin), tf.lessEqual(x, clipValueMax)),
              g,
              tf.zerosLike(g),
            ),
    };
  },
};
