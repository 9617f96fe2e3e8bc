/**
 * Filter gradients on wasm.
 *
 * Conv2DBackpropFilter: dW[i,j,ci,co] = sum_{n,oh,ow} xpad[n, oh*sh + i, ow*sw + j, ci] * dy[n,oh,ow,co].
 * Default: the compiled kernel of native/filter-grad.c (dW[tap] = X_tap^T dy in 4 x 8 register
 * tiles, one call per cache-sized batch chunk); without it, the same tiles by the SIMD routines
 * of simd.ts. Both run in place on the wasm heap (x first copied into a zero-padded buffer when the
 * convolution pads; dy's channels padded to a multiple of 4 when needed).
 * Fallback without SIMD: with ci as the batch and n as the input channel the gradient is a Conv2D
 * of x^T [Ci,H,W,N] with the filter dy^T [Ho,Wo,N,Co], stride = the forward dilation, dilation =
 * the forward stride, transposed from [Ci,kh,kw,Co] to [kh,kw,Ci,Co]; exact, but XNNPACK repacks
 * dy as weights on every call, which costs about as much as the multiply-adds.
 *
 * DepthwiseConv2dNativeBackpropFilter: dW[i,j,c,m] = sum_{n,oh,ow} xpad[n,..,c] * dy[n,oh,ow,c*M+m].
 * Default: the WebAssembly SIMD routine of simd.ts, run in place on the wasm heap (x is first
 * copied into a zero-padded buffer when the convolution pads, and its channels repeated M times
 * when M > 1). Fallback without SIMD: with (n,c) pairs as channels the
 * gradient is a DepthwiseConv2dNative of x as [1,H,W,N*C] with the filter dy as [Ho,Wo,N*C,M],
 * summed over n; exact, but XNNPACK runs such a large depthwise kernel slowly.
 */
import * as tf from '@tensorflow/tfjs';
import {
  conv2DGradSpec,
  depthwiseGradSpec,
  explicitPad,
  type Conv2DGradAttrs,
  type ConvSpec,
  type DepthwiseGradAttrs,
} from './conv-attrs.js';
import { filterGradPads, readExtent, readsUnpadded } from './geometry.js';
import { nativeKernels, type NativeKernels } from './native.js';
import { runDepthwiseOnBuffer, wasmSimdRoutines, type SimdRoutines } from './simd.js';
import {
  asWasmBackend,
  cropNHWC,
  heapF32,
  makeF32,
  rank4Input,
  release,
  runWasmKernel,
  transpose,
  view,
  zeros,
  type TensorInfo,
  type WasmBackend,
} from './wasm-ops.js';

type Shape4 = [number, number, number, number];

/**
 * Crops the (already transposed) input when the correlation would need negative padding on the
 * far side. Takes ownership of `x`: returns either `x` itself or a cropped copy (freeing `x`).
 */
function cropIfNeeded(
  backend: WasmBackend,
  x: TensorInfo,
  rows: ReturnType<typeof filterGradPads>,
  cols: ReturnType<typeof filterGradPads>,
): TensorInfo {
  if (rows.cropBefore === 0 && rows.cropAfter === 0 && cols.cropBefore === 0 && cols.cropAfter === 0) return x;
  const cropped = cropNHWC(backend, x, rows.cropBefore, rows.keptLength, cols.cropBefore, cols.keptLength);
  release(backend, x);
  return cropped;
}

export const conv2DBackpropFilterKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const name = 'Conv2DBackpropFilter';
  const backend = asWasmBackend(b, name);
  const x = rank4Input(inputs, 'x', name);
  const dy = rank4Input(inputs, 'dy', name);
  const a = (attrs ?? {}) as Conv2DGradAttrs & { filterShape: Shape4 };
  const channelsFirst = a.dataFormat === 'NCHW';
  const spec = conv2DGradSpec(name, a, x.shape, a.filterShape, dy.shape);
  const simd = wasmSimdRoutines(b);
  if (simd == null) return convFilterGradByXnnpack(backend, spec, x, dy, channelsFirst);
  const native = filterGradOptions.native ? nativeKernels(b) : null;
  const run = (xs: TensorInfo, dys: TensorInfo): TensorInfo =>
    native != null
      ? convFilterGradByNative(backend, native, spec, xs, dys)
      : convFilterGradBySimd(backend, simd, spec, xs, dys);
  if (!channelsFirst) return run(x, dy);
  const xNHWC = transpose(backend, x, [0, 2, 3, 1]);
  const dyNHWC = transpose(backend, dy, [0, 2, 3, 1]);
  const dW = run(xNHWC, dyNHWC);
  release(backend, xNHWC);
  release(backend, dyNHWC);
  return dW;
};

/** Bytes of x and dy a batch chunk of the SIMD filter gradient should stay within (cache-sized). */
const SIMD_CHUNK_BYTES = 256 * 1024;

/**
 * `native: false` runs the SIMD routines of simd.ts even when the compiled module is there (to compare);
 * `chunked: false` packs the whole batch before the compiled reduction instead of a chunk at a time.
 */
export const filterGradOptions: { native: boolean; chunked: boolean } = { native: true, chunked: true };

/** Calls that ran the compiled filter gradient (for tests: the path is really taken). */
export const filterGradCounters: { native: number } = { native: 0 };

/**
 * dW by native/filter-grad.c: per cache-sized batch chunk, x and dy packed into channel blocks (x
 * zero-padded on the way) and one call accumulating into dW, which is finally cut to shape.
 */
function convFilterGradByNative(
  backend: WasmBackend,
  native: NativeKernels,
  spec: ConvSpec,
  x: TensorInfo,
  dy: TensorInfo,
): TensorInfo {
  const [kh, kw, ci, co] = spec.filterShape;
  const [n, h, w] = spec.inShape;
  const [, ho, wo] = spec.outShape;
  const { rows, cols } = spec;
  const hp = readExtent(rows);
  const wp = readExtent(cols);
  const shared = ci === 1 && cols.dilation === 1;
  const cb = shared ? 1 : Math.ceil(ci / 4);
  const kws = shared ? Math.ceil(kw / 4) : kw;
  const ob = Math.ceil(co / 8);
  const xBatchBytes = cb * hp * wp * 16;
  const dyBatchBytes = ob * ho * wo * 32;
  const chunk = Math.max(1, Math.floor(SIMD_CHUNK_BYTES / (xBatchBytes + dyBatchBytes)));
  // x and dy are packed one batch chunk at a time into two chunk-sized buffers, and each chunk is
  // reduced while it is still in cache (filterGradOptions.chunked = false: the whole batch packed
  // first). The chunks accumulate into dW in the same order either way.
  const span = filterGradOptions.chunked ? Math.min(chunk, n) : n;
  const xp = backend.makeOutput([span, cb, hp, wp, 4], 'float32');
  const dyp = backend.makeOutput([span, ob, ho, wo, 8], 'float32');
  const dWP = zeros(backend, [kh, kws, cb * 4, ob * 8]);
  for (let p0 = 0; p0 < n; p0 += span) {
    const packed = Math.min(span, n - p0);
    // Addresses after every allocation (the heap may have grown).
    const xBase = heapF32(backend, xp).byteOffset;
    const dyBase = heapF32(backend, dyp).byteOffset;
    native.filterGradPackX(
      heapF32(backend, x).byteOffset + p0 * h * w * ci * 4,
      xBase,
      packed,
      h,
      w,
      ci,
      hp,
      wp,
      rows.padBefore,
      cols.padBefore,
      cb,
      shared ? 1 : 0,
    );
    native.filterGradPackDy(heapF32(backend, dy).byteOffset + p0 * ho * wo * co * 4, dyBase, packed, ho * wo, co, ob);
    const outBase = heapF32(backend, dWP).byteOffset;
    for (let n0 = 0; n0 < packed; n0 += chunk) {
      const batch = Math.min(chunk, packed - n0);
      native.conv2dFilterGrad(
        xBase + n0 * xBatchBytes,
        dyBase + n0 * dyBatchBytes,
        outBase,
        batch,
        hp,
        wp,
        cb,
        ho,
        wo,
        ob,
        kh,
        kws,
        rows.stride,
        cols.stride,
        rows.dilation,
        shared ? 4 : cols.dilation,
      );
    }
  }
  filterGradCounters.native++;
  release(backend, xp);
  release(backend, dyp);
  // [kh][kws][cb*4][ob*8] -> [kh][kw][ci][co] (with shared taps, [kh][kws*4][1][ob*8]).
  const rowsP = shared ? kws * 4 : cb * 4;
  const coP = ob * 8;
  const dW = makeF32(backend, [kh, kw, ci, co], (out) => {
    const src = heapF32(backend, dWP);
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        for (let c = 0; c < ci; c++) {
          const s0 = shared ? (i * rowsP + j) * coP : ((i * kw + j) * rowsP + c) * coP;
          out.set(src.subarray(s0, s0 + co), ((i * kw + j) * ci + c) * co);
        }
      }
    }
  });
  release(backend, dWP);
  return dW;
}

/** dW without the zero output channels the kernels padded it with (takes ownership of dWP). */
function unpadFilter(backend: WasmBackend, dWP: TensorInfo, shape: Shape4, coP: number): TensorInfo {
  const [kh, kw, ci, co] = shape;
  if (coP === co) return dWP;
  const dW = makeF32(backend, shape, (out) => {
    const src = heapF32(backend, dWP);
    for (let r = 0; r < kh * kw * ci; r++) out.set(src.subarray(r * coP, r * coP + co), r * co);
  });
  release(backend, dWP);
  return dW;
}

/**
 * dW = sum over pixels of x[pixel + tap] (outer) dy[pixel], in register tiles of the SIMD
 * routines. The batch is processed in chunks whose x and dy fit in cache, each chunk running all
 * tiles and accumulating into dW. With one input channel and no column dilation, 4 neighbouring
 * column taps share one tile (their x values are adjacent).
 */
function convFilterGradBySimd(
  backend: WasmBackend,
  simd: SimdRoutines,
  spec: ConvSpec,
  x: TensorInfo,
  dy: TensorInfo,
): TensorInfo {
  const [kh, kw, ci, co] = spec.filterShape;
  const [n, h, w] = spec.inShape;
  const [, ho, wo] = spec.outShape;
  const { rows, cols } = spec;
  const hp = readExtent(rows);
  const wp = readExtent(cols);
  const direct = readsUnpadded(rows) && readsUnpadded(cols);
  const xp = direct ? x : paddedInput(backend, spec, x, hp, wp, 1);
  const [xRows, xCols] = direct ? [h, w] : [hp, wp];
  // Output channels padded to a multiple of 4 (one f32x4 lane group).
  const coP = Math.ceil(co / 4) * 4;
  const dyP = coP === co ? dy : padChannels(backend, dy, coP);
  const dWP = zeros(backend, [kh, kw, ci, coP]);
  const xBase = heapF32(backend, xp).byteOffset;
  const dyBase = heapF32(backend, dyP).byteOffset;
  const outBase = heapF32(backend, dWP).byteOffset;
  const pixelBytes = ci * 4;
  const rowBytes = xCols * pixelBytes;
  const xBatchBytes = xRows * rowBytes;
  const dyBatchBytes = ho * wo * coP * 4;
  const chunk = Math.max(1, Math.floor(SIMD_CHUNK_BYTES / (xBatchBytes + dyBatchBytes)));
  const tile = (c: number, v: number) => {
    const f = simd.convFilterGrad.get(`${c}x${4 * v}`);
    if (f == null) throw new Error(`missing SIMD tile ${c}x${4 * v}`);
    return f;
  };
  const tapsShareTile = ci === 1 && cols.dilation === 1;
  for (let n0 = 0; n0 < n; n0 += chunk) {
    const batch = Math.min(chunk, n - n0);
    const xChunk = xBase + n0 * xBatchBytes;
    const dyChunk = dyBase + n0 * dyBatchBytes;
    /** All output-channel tiles of one tile row group (`tileRows` = 4 or 1). */
    const runTiles = (tileRows: number, xStart: number, outStart: number): void => {
      for (let o0 = 0; o0 < coP;) {
        const vectors = coP - o0 >= 8 ? 2 : 1;
        tile(tileRows, vectors)(
          xStart,
          dyChunk + o0 * 4,
          outStart + o0 * 4,
          batch,
          ho,
          wo,
          xBatchBytes,
          rows.stride * rowBytes,
          cols.stride * pixelBytes,
          coP * 4,
          coP * 4,
        );
        o0 += 4 * vectors;
      }
    };
    for (let i = 0; i < kh; i++) {
      const xRow = xChunk + i * rows.dilation * rowBytes;
      const outRow = outBase + i * kw * ci * coP * 4;
      if (tapsShareTile) {
        // One input channel: tile rows are the column taps j..j+3 (adjacent in x and in dW).
        for (let j = 0; j < kw;) {
          const step = kw - j >= 4 ? 4 : 1;
          runTiles(step, xRow + j * 4, outRow + j * coP * 4);
          j += step;
        }
        continue;
      }
      for (let j = 0; j < kw; j++) {
        const xTap = xRow + j * cols.dilation * pixelBytes;
        const outTap = outRow + j * ci * coP * 4;
        for (let c0 = 0; c0 < ci;) {
          const step = ci - c0 >= 4 ? 4 : 1;
          runTiles(step, xTap + c0 * 4, outTap + c0 * coP * 4);
          c0 += step;
        }
      }
    }
  }
  if (!direct) release(backend, xp);
  if (dyP !== dy) release(backend, dyP);
  return unpadFilter(backend, dWP, [kh, kw, ci, co], coP);
}

/** An NHWC tensor with its channels zero-padded to `channels`. */
function padChannels(backend: WasmBackend, t: TensorInfo, channels: number): TensorInfo {
  const c = t.shape[3];
  const pixels = t.shape[0] * t.shape[1] * t.shape[2];
  return makeF32(backend, [t.shape[0], t.shape[1], t.shape[2], channels], (out) => {
    const src = heapF32(backend, t);
    out.fill(0);
    for (let p = 0; p < pixels; p++) {
      const s0 = p * c;
      const d0 = p * channels;
      for (let k = 0; k < c; k++) out[d0 + k] = src[s0 + k];
    }
  });
}

/** Conv2D filter gradient as one XNNPACK Conv2D of x^T [Ci,H,W,N] with the filter dy^T [Ho,Wo,N,Co]. */
function convFilterGradByXnnpack(
  backend: WasmBackend,
  spec: ConvSpec,
  x: TensorInfo,
  dy: TensorInfo,
  channelsFirst: boolean,
): TensorInfo {
  const [kh, kw, ci, co] = spec.filterShape;
  const rows = filterGradPads(spec.rows);
  const cols = filterGradPads(spec.cols);
  if (rows.keptLength <= 0 || cols.keptLength <= 0) return zeros(backend, [kh, kw, ci, co]);

  // x -> [Ci, H, W, N]; dy -> [Ho, Wo, N, Co].
  const xT = cropIfNeeded(backend, transpose(backend, x, channelsFirst ? [1, 2, 3, 0] : [3, 1, 2, 0]), rows, cols);
  const dyT = transpose(backend, dy, channelsFirst ? [2, 3, 0, 1] : [1, 2, 0, 3]);
  const corr = runWasmKernel(
    backend,
    'Conv2D',
    { x: xT, filter: dyT },
    {
      strides: [spec.rows.dilation, spec.cols.dilation],
      dilations: [spec.rows.stride, spec.cols.stride],
      pad: explicitPad(rows.padBefore, rows.padAfter, cols.padBefore, cols.padAfter),
      dataFormat: 'NHWC',
    },
  );
  release(backend, xT);
  release(backend, dyT);
  const dW = transpose(backend, corr, [1, 2, 0, 3]);
  release(backend, corr);
  return dW;
}

export const depthwiseConv2dNativeBackpropFilterKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const name = 'DepthwiseConv2dNativeBackpropFilter';
  const backend = asWasmBackend(b, name);
  const x = rank4Input(inputs, 'x', name);
  const dy = rank4Input(inputs, 'dy', name);
  const a = (attrs ?? {}) as DepthwiseGradAttrs & { filterShape: Shape4 };
  const spec = depthwiseGradSpec(name, a, x.shape as Shape4, a.filterShape, dy.shape as Shape4);
  const simd = wasmSimdRoutines(b);
  if (simd != null) return depthwiseFilterGradBySimd(backend, simd, spec, x, dy);
  return depthwiseFilterGradByXnnpack(backend, spec, x, dy);
};

/** x copied into [N, Hp, Wp, C*M]: zero padding, cropped unused rows/columns, channels repeated M times. */
function paddedInput(
  backend: WasmBackend,
  spec: ConvSpec,
  x: TensorInfo,
  hp: number,
  wp: number,
  m: number,
): TensorInfo {
  const [n, h, w, c] = spec.inShape;
  const top = spec.rows.padBefore;
  const left = spec.cols.padBefore;
  const cm = c * m;
  return makeF32(backend, [n, hp, wp, cm], (out) => {
    const src = heapF32(backend, x);
    out.fill(0);
    const colFrom = Math.max(0, -left);
    const colTo = Math.min(w, wp - left);
    if (colTo <= colFrom) return;
    for (let b = 0; b < n; b++) {
      for (let r = 0; r < h; r++) {
        const rp = r + top;
        if (rp < 0 || rp >= hp) continue;
        const srcRow = (b * h + r) * w * c;
        const dstRow = (b * hp + rp) * wp * cm;
        if (m === 1) {
          out.set(src.subarray(srcRow + colFrom * c, srcRow + colTo * c), dstRow + (colFrom + left) * c);
          continue;
        }
        for (let col = colFrom; col < colTo; col++) {
          const s0 = srcRow + col * c;
          const d0 = dstRow + (col + left) * cm;
          for (let k = 0; k < c; k++) {
            const v = src[s0 + k];
            for (let j = 0; j < m; j++) out[d0 + k * m + j] = v;
          }
        }
      }
    }
  });
}

function depthwiseFilterGradBySimd(
  backend: WasmBackend,
  simd: SimdRoutines,
  spec: ConvSpec,
  x: TensorInfo,
  dy: TensorInfo,
): TensorInfo {
  const [kh, kw, c, m] = spec.filterShape;
  const [, h, w] = spec.inShape;
  const { rows, cols } = spec;
  // Extent of x (in padded coordinates) that the convolution reads.
  const hp = readExtent(rows);
  const wp = readExtent(cols);
  const direct = readsUnpadded(rows) && readsUnpadded(cols) && m === 1;
  const xp = direct ? x : paddedInput(backend, spec, x, hp, wp, m);
  const [xRows, xCols] = direct ? [h, w] : [hp, wp];
  const dW = zeros(backend, [kh, kw, c, m]);
  runDepthwiseOnBuffer(
    simd.dwFilterGrad,
    spec,
    heapF32(backend, xp).byteOffset,
    heapF32(backend, dy).byteOffset,
    heapF32(backend, dW).byteOffset,
    xRows,
    xCols,
  );
  if (!direct) release(backend, xp);
  return dW;
}

function depthwiseFilterGradByXnnpack(backend: WasmBackend, spec: ConvSpec, x: TensorInfo, dy: TensorInfo): TensorInfo {
  const [kh, kw, c, m] = spec.filterShape;
  const n = spec.batch;
  const rows = filterGradPads(spec.rows);
  const cols = filterGradPads(spec.cols);
  if (rows.keptLength <= 0 || cols.keptLength <= 0) return zeros(backend, [kh, kw, c, m]);

  // x -> [H, W, N, C] seen as [1, H, W, N*C]; dy -> [Ho, Wo, N, C*M] seen as [Ho, Wo, N*C, M].
  const [, h, w] = spec.inShape;
  const [, ho, wo] = spec.outShape;
  // The view shares xT's memory: releasing xChannels (or cropping it) frees xT.
  const xT = transpose(backend, x, [1, 2, 0, 3]);
  const xChannels = cropIfNeeded(backend, view(xT, [1, h, w, n * c]), rows, cols);
  const dyT = transpose(backend, dy, [1, 2, 0, 3]);
  const corr = runWasmKernel(
    backend,
    'DepthwiseConv2dNative',
    { x: xChannels, filter: view(dyT, [ho, wo, n * c, m]) },
    {
      strides: [spec.rows.dilation, spec.cols.dilation],
      dilations: [spec.rows.stride, spec.cols.stride],
      pad: explicitPad(rows.padBefore, rows.padAfter, cols.padBefore, cols.padAfter),
    },
  );
  release(backend, xChannels);
  release(backend, dyT);
  if (n === 1) return { dataId: corr.dataId, shape: [kh, kw, c, m], dtype: 'float32' };
  // corr is [kh*kw, N, C*M]: sum over N.
  const cm = c * m;
  const taps = kh * kw;
  const dW = makeF32(backend, [kh, kw, c, m], (out) => {
    const src = heapF32(backend, corr);
    out.fill(0);
    for (let t = 0; t < taps; t++) {
      const o = t * cm;
      for (let b2 = 0; b2 < n; b2++) {
        const s0 = (t * n + b2) * cm;
        for (let j = 0; j < cm; j++) out[o + j] += src[s0 + j];
      }
    }
  });
  release(backend, corr);
  return dW;
}
