/**
 * Input gradients on wasm. Conv2D (and the depthwise fallback): XNNPACK forward convolutions over dy.
 *
 * Stride 1: dx is the correlation of dy with the flipped filter (input/output channels swapped
 * for Conv2D), with padding (k-1)*d - pad: one forward convolution, no copies of dy.
 * Stride s > 1: the rows (and columns) of dx split into s phases; each phase is a stride-1
 * correlation of dy with the flipped sub-filter of the taps that reach it (see geometry.ts).
 * The phases are interleaved into dx in one pass. Multiply-adds are the same as the forward
 * convolution's (no zero-insertion).
 * Depthwise with channel multiplier M > 1: the helper depthwise correlation yields [.., C*M]
 * and the M values of each channel are summed in the same interleave pass.
 * Depthwise by default: one pass of the SIMD scatter routine of simd.ts (see
 * depthwiseInputGradBySimd), which handles every stride and dilation without phases.
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
import { inputGradPhases, readExtent, readsUnpadded, type Phase1D } from './geometry.js';
import { runDepthwiseOnBuffer, wasmSimdRoutines, type SimdRoutines } from './simd.js';
import {
  asWasmBackend,
  cropNHWC,
  heapF32,
  makeF32,
  rank4Input,
  release,
  zeros,
  runWasmKernel,
  transpose,
  type TensorInfo,
  type WasmBackend,
} from './wasm-ops.js';

type Shape4 = [number, number, number, number];

/** The flipped sub-filter of one phase, laid out for the helper forward convolution. */
function subFilter(
  backend: WasmBackend,
  filter: TensorInfo,
  depthwise: boolean,
  rowTaps: number[],
  colTaps: number[],
): TensorInfo {
  const [, kw, c2, c3] = filter.shape as Shape4;
  const nh = rowTaps.length;
  const nw = colTaps.length;
  const tapSize = c2 * c3;
  // Conv2D: [nh, nw, Co, Ci] from w[kh, kw, Ci, Co]. Depthwise: [nh, nw, C*M, 1] from w[kh, kw, C, M].
  const shape = depthwise ? [nh, nw, tapSize, 1] : [nh, nw, c3, c2];
  return makeF32(backend, shape, (out) => {
    const w = heapF32(backend, filter);
    for (let jh = 0; jh < nh; jh++) {
      const ih = rowTaps[nh - 1 - jh];
      for (let jw = 0; jw < nw; jw++) {
        const iw = colTaps[nw - 1 - jw];
        const src = (ih * kw + iw) * tapSize;
        const dst = (jh * nw + jw) * tapSize;
        if (depthwise) {
          out.set(w.subarray(src, src + tapSize), dst);
        } else {
          // out[dst + co*Ci + ci] = w[src + ci*Co + co]
          for (let ci = 0; ci < c2; ci++) {
            for (let co = 0; co < c3; co++) out[dst + co * c2 + ci] = w[src + ci * c3 + co];
          }
        }
      }
    }
  });
}

/** Runs the helper correlation of one (row phase, column phase); null when no tap reaches it. */
function phaseCorrelation(
  backend: WasmBackend,
  dy: TensorInfo,
  filter: TensorInfo,
  depthwise: boolean,
  rp: Phase1D,
  cp: Phase1D,
): TensorInfo | null {
  if (rp.taps.length === 0 || cp.taps.length === 0 || rp.pads.keptLength <= 0 || cp.pads.keptLength <= 0) return null;
  const cropped = rp.pads.cropBefore + rp.pads.cropAfter + cp.pads.cropBefore + cp.pads.cropAfter > 0;
  const src = cropped
    ? cropNHWC(backend, dy, rp.pads.cropBefore, rp.pads.keptLength, cp.pads.cropBefore, cp.pads.keptLength)
    : dy;
  const f = subFilter(backend, filter, depthwise, rp.taps, cp.taps);
  const attrs: tf.NamedAttrMap = {
    strides: [1, 1],
    dilations: [rp.dilation, cp.dilation],
    pad: explicitPad(rp.pads.padBefore, rp.pads.padAfter, cp.pads.padBefore, cp.pads.padAfter),
  };
  if (!depthwise) attrs['dataFormat'] = 'NHWC';
  const out = runWasmKernel(backend, depthwise ? 'DepthwiseConv2dNative' : 'Conv2D', { x: src, filter: f }, attrs);
  release(backend, f);
  if (cropped) release(backend, src);
  return out;
}

/** out[dst + p*dstStep + k] = src[base + p*srcStep + k] for p < count, k < c. */
function copyPixels(
  out: Float32Array,
  dst: number,
  dstStep: number,
  src: Float32Array,
  base: number,
  srcStep: number,
  count: number,
  c: number,
): void {
  for (let p = 0; p < count; p++) {
    const d = dst + p * dstStep;
    const s = base + p * srcStep;
    for (let k = 0; k < c; k++) out[d + k] = src[s + k];
  }
}

/** As copyPixels, each output channel summing `m` consecutive source values (channel multiplier). */
function sumPixels(
  out: Float32Array,
  dst: number,
  dstStep: number,
  src: Float32Array,
  base: number,
  srcStep: number,
  count: number,
  c: number,
  m: number,
): void {
  for (let p = 0; p < count; p++) {
    const d = dst + p * dstStep;
    const s = base + p * srcStep;
    for (let k = 0; k < c; k++) {
      let acc = 0;
      for (let j = 0; j < m; j++) acc += src[s + k * m + j];
      out[d + k] = acc;
    }
  }
}

/** dx (NHWC) of a regular or depthwise convolution from dy (NHWC) and the filter. */
function inputGradient(
  backend: WasmBackend,
  spec: ConvSpec,
  dy: TensorInfo,
  filter: TensorInfo,
  depthwise: boolean,
): TensorInfo {
  const rowPlan = inputGradPhases(spec.rows);
  const colPlan = inputGradPhases(spec.cols);
  const sh = spec.rows.stride;
  const sw = spec.cols.stride;
  const multiplier = depthwise ? spec.filterShape[3] : 1;
  // One result per (row phase, column phase), each [N, qCountRows, qCountCols, C * multiplier].
  const parts: (TensorInfo | null)[] = [];
  for (const rp of rowPlan.phases) {
    for (const cp of colPlan.phases) parts.push(phaseCorrelation(backend, dy, filter, depthwise, rp, cp));
  }
  const single = parts.length === 1 ? parts[0] : null;
  if (single != null && multiplier === 1) return single; // stride 1: already exactly dx

  const [n, h, w, c] = spec.inShape;
  const simd = wasmSimdRoutines(backend);
  const qRows = rowPlan.qCount;
  const qCols = colPlan.qCount;
  const cm = c * multiplier;
  const dx = makeF32(backend, [n, h, w, c], (out) => {
    for (let ry = 0; ry < sh; ry++) {
      for (let rx = 0; rx < sw; rx++) {
        const part = parts[ry * sw + rx];
        const src = part == null ? null : heapF32(backend, part);
        // First row and column of dx in this phase: (y + padTop) = ry (mod sh).
        const y0 = (((ry - spec.rows.padBefore) % sh) + sh) % sh;
        const x0 = (((rx - spec.cols.padBefore) % sw) + sw) % sw;
        const qx0 = (x0 + spec.cols.padBefore - rx) / sw - colPlan.qFirst;
        const qy0 = (y0 + spec.rows.padBefore - ry) / sh - rowPlan.qFirst;
        const rowCount = Math.ceil((h - y0) / sh);
        const count = Math.ceil((w - x0) / sw);
        if (rowCount <= 0 || count <= 0) continue;
        for (let b = 0; b < n; b++) {
          const dst = ((b * h + y0) * w + x0) * c;
          const base = ((b * qRows + qy0) * qCols + qx0) * cm;
          if (src == null) {
            for (let t = 0; t < rowCount; t++) {
              for (let p = 0; p < count; p++)
                out.fill(0, dst + (t * sh * w + p * sw) * c, dst + (t * sh * w + p * sw) * c + c);
            }
          } else if (multiplier === 1 && simd != null) {
            simd.copyPixels(
              out.byteOffset + dst * 4,
              sw * c * 4,
              sh * w * c * 4,
              src.byteOffset + base * 4,
              cm * 4,
              qCols * cm * 4,
              rowCount,
              count,
              c >> 2,
              c & 3,
            );
          } else {
            for (let t = 0; t < rowCount; t++) {
              const d = dst + t * sh * w * c;
              const s0 = base + t * qCols * cm;
              if (multiplier === 1) copyPixels(out, d, sw * c, src, s0, cm, count, c);
              else sumPixels(out, d, sw * c, src, s0, cm, count, c, multiplier);
            }
          }
        }
      }
    }
  });
  for (const p of parts) release(backend, p);
  return dx;
}

export const conv2DBackpropInputKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const name = 'Conv2DBackpropInput';
  const backend = asWasmBackend(b, name);
  const dy = rank4Input(inputs, 'dy', name);
  const filter = rank4Input(inputs, 'filter', name);
  const a = (attrs ?? {}) as Conv2DGradAttrs & { inputShape: Shape4 };
  const channelsFirst = a.dataFormat === 'NCHW';
  const spec = conv2DGradSpec(name, a, a.inputShape, filter.shape as Shape4, dy.shape);
  if (!channelsFirst) return inputGradient(backend, spec, dy, filter, false);
  const dyNHWC = transpose(backend, dy, [0, 2, 3, 1]);
  const dxNHWC = inputGradient(backend, spec, dyNHWC, filter, false);
  release(backend, dyNHWC);
  const dx = transpose(backend, dxNHWC, [0, 3, 1, 2]);
  release(backend, dxNHWC);
  return dx;
};

export const depthwiseConv2dNativeBackpropInputKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const name = 'DepthwiseConv2dNativeBackpropInput';
  const backend = asWasmBackend(b, name);
  const dy = rank4Input(inputs, 'dy', name);
  const filter = rank4Input(inputs, 'filter', name);
  const a = (attrs ?? {}) as DepthwiseGradAttrs & { inputShape: Shape4 };
  const spec = depthwiseGradSpec(name, a, a.inputShape, filter.shape as Shape4, dy.shape as Shape4);
  const simd = wasmSimdRoutines(b);
  if (simd != null) return depthwiseInputGradBySimd(backend, simd, spec, dy, filter);
  return inputGradient(backend, spec, dy, filter, true);
};

/**
 * Depthwise dx in one pass of the SIMD scatter routine: dxpad[pixel*stride + tap*dilation, k] +=
 * w[tap, k] * dy[pixel, k] over k = c*M + m, into a zero-filled padded buffer, then cropped
 * (and summed over m when M > 1).
 */
function depthwiseInputGradBySimd(
  backend: WasmBackend,
  simd: SimdRoutines,
  spec: ConvSpec,
  dy: TensorInfo,
  filter: TensorInfo,
): TensorInfo {
  const [, , c, m] = spec.filterShape;
  const [n, h, w] = spec.inShape;
  const { rows, cols } = spec;
  const cm = c * m;
  const hp = readExtent(rows);
  const wp = readExtent(cols);
  const direct = readsUnpadded(rows) && readsUnpadded(cols) && m === 1;
  const rowsP = direct ? h : Math.max(hp, rows.padBefore + h);
  const colsP = direct ? w : Math.max(wp, cols.padBefore + w);
  const dxp = zeros(backend, [n, rowsP, colsP, cm]);
  runDepthwiseOnBuffer(
    simd.dwInputGrad,
    spec,
    heapF32(backend, dxp).byteOffset,
    heapF32(backend, dy).byteOffset,
    heapF32(backend, filter).byteOffset,
    rowsP,
    colsP,
  );
  if (direct) return dxp;
  const dx = makeF32(backend, [n, h, w, c], (out) => {
    const src = heapF32(backend, dxp);
    for (let b = 0; b < n; b++) {
      for (let y = 0; y < h; y++) {
        const from = ((b * rowsP + y + rows.padBefore) * colsP + cols.padBefore) * cm;
        const to = (b * h + y) * w * c;
        if (m === 1) out.set(src.subarray(from, from + w * c), to);
        else sumPixels(out, to, c, src, from, cm, w, c, m);
      }
    }
  });
  release(backend, dxp);
  return dx;
}
