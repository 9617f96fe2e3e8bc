/**
 * Sum and Mean for wasm over a block of consecutive axes that is not innermost, e.g. the
 * per-channel sums of an NHWC tensor (axes [0, 1, 2]: BatchNorm's batch moments and its
 * gradients) or global average pooling (axes [1, 2]). The built-in kernels first transpose the
 * reduced axes to the end (a full copy, most of their time); these read the data in place:
 * out[o, t] = sum over r of x[o, r, t], accumulated in float64 (as the cpu backend does).
 * Other reductions (innermost axes, axes with gaps, non-float32 data) go to the built-in kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, heapF32, makeF32 } from './wasm-ops.js';

let builtinSum: tf.KernelConfig | null = null;
let builtinMean: tf.KernelConfig | null = null;

/** Remembers the backend's own Sum before it is replaced (for the reductions it keeps). */
export function rememberBuiltinSum(config: tf.KernelConfig): void {
  builtinSum = config;
}

/** Remembers the backend's own Mean before it is replaced (for the reductions it keeps). */
export function rememberBuiltinMean(config: tf.KernelConfig): void {
  builtinMean = config;
}

/** x seen as [outer, reduced, inner] when `axes` are consecutive and not innermost, else null. */
export function blockReduction(
  shape: number[],
  axes: number[],
): { outer: number; reduced: number; inner: number } | null {
  const rank = shape.length;
  if (axes.length === 0) return null;
  const sorted = [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  if (first < 0 || last >= rank - 1 || last - first + 1 !== sorted.length) return null;
  const size = (from: number, to: number): number => shape.slice(from, to).reduce((p, q) => p * q, 1);
  const dims = { outer: size(0, first), reduced: size(first, last + 1), inner: size(last + 1, rank) };
  return dims.outer * dims.reduced * dims.inner === 0 ? null : dims;
}

/** Rows of x per block of the column sums: a block (about 16 KB) stays in the L1 cache. */
const BLOCK_FLOATS = 4096;

/**
 * acc[t] += sum over r < rows of xs[start + r * inner + t]. Narrow rows (the usual per-channel
 * case) are summed a block of rows at a time, four columns per pass with the sums in locals
 * (about five times faster than one pass adding each row into acc); wide rows row by row.
 */
function addColumnSums(xs: Float32Array, start: number, rows: number, inner: number, acc: Float64Array): void {
  if (inner > 256) {
    for (let r = 0, p = start; r < rows; r++, p += inner) {
      for (let t = 0; t < inner; t++) acc[t] = acc[t] + xs[p + t];
    }
    return;
  }
  const block = Math.max(1, Math.floor(BLOCK_FLOATS / inner));
  for (let r0 = 0; r0 < rows; r0 += block) {
    const from = start + r0 * inner;
    const end = start + Math.min(rows, r0 + block) * inner;
    let t = 0;
    for (; t + 4 <= inner; t += 4) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let p = from + t; p < end; p += inner) {
        s0 += xs[p];
        s1 += xs[p + 1];
        s2 += xs[p + 2];
        s3 += xs[p + 3];
      }
      acc[t] = acc[t] + s0;
      acc[t + 1] = acc[t + 1] + s1;
      acc[t + 2] = acc[t + 2] + s2;
      acc[t + 3] = acc[t + 3] + s3;
    }
    for (; t < inner; t++) {
      let s = 0;
      for (let p = from + t; p < end; p += inner) s += xs[p];
      acc[t] = acc[t] + s;
    }
  }
}

function reduceKernel(name: 'Sum' | 'Mean', builtin: () => tf.KernelConfig | null, mean: boolean): tf.KernelFunc {
  return (args) => {
    const config = builtin();
    if (config == null) throw new Error(`${name}: the wasm backend's own kernel was not found`);
    const x = args.inputs['x'];
    if (x == null) throw new Error(`${name}: input 'x' is required`);
    const { axis, keepDims } = (args.attrs ?? {}) as { axis: number | number[]; keepDims?: boolean };
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const dims = x.dtype === 'float32' ? blockReduction(x.shape, axes) : null;
    if (dims == null) return config.kernelFunc(args);
    const backend = asWasmBackend(args.backend, name);
    const reducedAxes = new Set(axes);
    const outShape = keepDims
      ? x.shape.map((d, i) => (reducedAxes.has(i) ? 1 : d))
      : x.shape.filter((_, i) => !reducedAxes.has(i));
    const { outer, reduced, inner } = dims;
    return makeF32(backend, outShape, (out) => {
      const xs = heapF32(backend, x);
      const acc = new Float64Array(inner);
      for (let o = 0; o < outer; o++) {
        acc.fill(0);
        addColumnSums(xs, o * reduced * inner, reduced, inner, acc);
        const base = o * inner;
        for (let t = 0; t < inner; t++) out[base + t] = mean ? acc[t] / reduced : acc[t];
      }
    });
  };
}

export const sumKernel: tf.KernelFunc = reduceKernel('Sum', () => builtinSum, false);
export const meanKernel: tf.KernelFunc = reduceKernel('Mean', () => builtinMean, true);
