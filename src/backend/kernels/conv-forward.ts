/**
 * Conv2D and FusedConv2D for wasm on the compiled direct convolution of native/conv.c, in place of
 * the backend's XNNPACK path (which the wrappers keep for every case they do not handle).
 *
 * Why: on this project's layer shapes (3x3 and 1x1 convolutions of 3..64 channels at batch 32-64),
 * XNNPACK's convolution runs well under the speed of its own inner loop; conv.c's 4-pixel x
 * 8-channel register tile reads the HWIO filter as it is and reaches more GMAC/s (bench/kernels.ts,
 * "Conv2D (forward)" against "Conv2D (forward), XNNPACK"). The input gradient's helper
 * correlations (backprop-input.ts) run through Conv2D and so take this path too.
 *
 * Handled: NHWC, float32, any stride, dilation and padding ('same', 'valid', explicit, numbers),
 * FusedConv2D with a per-channel bias (or none) and a linear or ReLU activation. Everything else
 * (NCHW, other activations, PReLU weights, broadcast biases) goes to the built-in kernel.
 * Padding: a zero-bordered copy of x, a cache-sized chunk of images at a time (one pass, small next
 * to the multiply-adds; the chunk is still in cache when it is convolved). Output channels
 * not a multiple of 4: the filter (and bias) get zero channels up to one.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeKernels } from './native.js';
import type { Pad, RoundingMode } from './conv-attrs.js';
import { asWasmBackend, heapF32, makeF32, release, type TensorInfo, type WasmBackend } from './wasm-ops.js';

let builtinConv2D: tf.KernelConfig | null = null;
let builtinFusedConv2D: tf.KernelConfig | null = null;

/** Remembers the backend's own Conv2D (its setupFunc stays with the replacement). */
export function rememberBuiltinConv2D(config: tf.KernelConfig): void {
  builtinConv2D = config;
}

/** Remembers the backend's own FusedConv2D. */
export function rememberBuiltinFusedConv2D(config: tf.KernelConfig): void {
  builtinFusedConv2D = config;
}

/**
 * `convOptions.direct = false` sends every call to the built-in kernel (for benchmarks and tests);
 * `chunked = false` pads the whole batch at once instead of a cache-sized chunk at a time (to compare).
 */
export const convOptions: { direct: boolean; chunked: boolean } = { direct: true, chunked: true };

/** Bytes of padded input per chunk of the direct convolution (well inside one core's L2 cache). */
const PAD_CHUNK_BYTES = 192 * 1024;

/** Calls that ran the direct convolution (for tests: the path is really taken). */
export const convCounters: { direct: number } = { direct: 0 };

interface ConvAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: RoundingMode;
  activation?: string;
}

/** A copy of `t` with its last axis zero-padded from `from` to `to` values. */
function padLastAxis(backend: WasmBackend, t: TensorInfo, from: number, to: number): TensorInfo {
  const rows = t.shape.reduce((a, b) => a * b, 1) / from;
  return makeF32(backend, [rows, to], (out) => {
    out.fill(0);
    const src = heapF32(backend, t);
    for (let r = 0; r < rows; r++) out.set(src.subarray(r * from, (r + 1) * from), r * to);
  });
}

/**
 * The direct convolution, or null when this case is left to the built-in kernel.
 * `bias` is a tensor of `co` values or null; relu clamps at 0.
 */
function directConv(
  b: unknown,
  x: TensorInfo,
  filter: TensorInfo,
  bias: TensorInfo | null,
  a: ConvAttrs,
  relu: boolean,
): TensorInfo | null {
  if (!convOptions.direct || a.dataFormat === 'NCHW') return null;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32' || x.shape.length !== 4 || filter.shape.length !== 4) {
    return null;
  }
  const native = nativeKernels(b);
  if (native == null) return null;
  const backend = asWasmBackend(b, 'Conv2D');
  const [n, h, w, ci] = x.shape as [number, number, number, number];
  const [kh, kw, fci, co] = filter.shape as [number, number, number, number];
  if (fci !== ci) return null;
  if (bias != null && (bias.dtype !== 'float32' || bias.shape.reduce((p, q) => p * q, 1) !== co)) return null;
  const strides = typeof a.strides === 'number' ? [a.strides, a.strides] : a.strides;
  const dil = a.dilations == null ? [1, 1] : typeof a.dilations === 'number' ? [a.dilations, a.dilations] : a.dilations;
  const info = tf.backend_util.computeConv2DInfo(
    [n, h, w, ci],
    [kh, kw, ci, co],
    strides as [number, number],
    dil as [number, number],
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { top, left } = info.padInfo;
  const [sh, sw] = strides;
  const [dh, dw] = dil;
  const ho = info.outHeight;
  const wo = info.outWidth;
  const y = backend.makeOutput([n, ho, wo, co], 'float32');
  if (n * ho * wo * co === 0) return y;
  // The padded input must hold every pixel a tap reads (bottom/right may exceed tfjs's padding
  // when rounding gives more outputs; those are zeros too).
  const hp = Math.max(h + top, (ho - 1) * sh + (kh - 1) * dh + 1);
  const wp = Math.max(w + left, (wo - 1) * sw + (kw - 1) * dw + 1);
  const padded = hp !== h || wp !== w || top !== 0 || left !== 0;
  const wco = (co + 3) & ~3;
  const wf = wco === co ? filter : padLastAxis(backend, filter, co, wco);
  const bf = bias == null ? null : wco === co ? bias : padLastAxis(backend, bias, co, wco);
  // A padded input is copied a cache-sized chunk of images at a time into one zero-bordered
  // buffer (the borders stay zero: only the interior is rewritten), and each chunk is convolved
  // while it is still in cache. Every image is computed by the same loops, so the chunking does
  // not change a value.
  const imageValues = hp * wp * ci;
  const chunk = padded && convOptions.chunked ? Math.max(1, Math.floor(PAD_CHUNK_BYTES / (imageValues * 4))) : n;
  const xp = padded ? backend.makeOutput([Math.min(chunk, n), hp, wp, ci], 'float32') : x;
  if (padded) heapF32(backend, xp).fill(0);
  const rowLen = Math.min(w, wp - left) * ci;
  for (let n0 = 0; n0 < n; n0 += chunk) {
    const images = Math.min(chunk, n - n0);
    if (padded) {
      const out = heapF32(backend, xp);
      const src = heapF32(backend, x);
      for (let bi = 0; bi < images; bi++) {
        for (let r = 0; r < h && r + top < hp; r++) {
          const s = ((n0 + bi) * h + r) * w * ci;
          out.set(src.subarray(s, s + rowLen), ((bi * hp + r + top) * wp + left) * ci);
        }
      }
    }
    // Addresses after every allocation (the heap may have grown).
    native.conv2d(
      heapF32(backend, xp).byteOffset + (padded ? 0 : n0 * imageValues * 4),
      heapF32(backend, wf).byteOffset,
      bf == null ? 0 : heapF32(backend, bf).byteOffset,
      heapF32(backend, y).byteOffset + n0 * ho * wo * co * 4,
      images,
      hp,
      wp,
      ci,
      ho,
      wo,
      co,
      wco,
      kh,
      kw,
      sh,
      sw,
      dh,
      dw,
      relu ? 1 : 0,
    );
  }
  convCounters.direct++;
  if (xp !== x) release(backend, xp);
  if (wf !== filter) release(backend, wf);
  if (bf != null && bf !== bias) release(backend, bf);
  return y;
}

export const conv2DKernel: tf.KernelFunc = (args) => {
  if (builtinConv2D == null) throw new Error("Conv2D: the wasm backend's own kernel was not found");
  const { x, filter } = args.inputs;
  const out =
    x && filter ? directConv(args.backend, x, filter, null, (args.attrs ?? {}) as unknown as ConvAttrs, false) : null;
  return out ?? builtinConv2D.kernelFunc(args);
};

export const fusedConv2DKernel: tf.KernelFunc = (args) => {
  if (builtinFusedConv2D == null) throw new Error("FusedConv2D: the wasm backend's own kernel was not found");
  const { x, filter, bias, preluActivationWeights } = args.inputs;
  const a = (args.attrs ?? {}) as unknown as ConvAttrs;
  const act = a.activation ?? 'linear';
  const out =
    x && filter && preluActivationWeights == null && (act === 'linear' || act === 'relu')
      ? directConv(args.backend, x, filter, bias ?? null, a, act === 'relu')
      : null;
  return out ?? builtinFusedConv2D.kernelFunc(args);
};
