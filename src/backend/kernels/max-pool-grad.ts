/**
 * MaxPoolGrad for wasm. The built-in wasm kernel starts its running maximum at the smallest
 * positive float instead of -infinity, so a window whose values are all negative (max pooling
 * after a convolution or batch normalisation without ReLU) sends its gradient to the window's
 * first pixel instead of its maximum. This kernel routes each dy value to the first maximum of
 * its window (row-major order, strict >, as the cpu backend does). Pooling gradients are
 * memory-bound and small next to the convolutions, so a plain loop over the wasm heap suffices.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, heapF32, makeF32 } from './wasm-ops.js';

type Shape4 = [number, number, number, number];
type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

/**
 * For each channel k of one pooling window (rows [rFrom, rTo), columns [cFrom, cTo) of batch
 * element starting at pixel xBatch): dx[first max pixel, k] += dy[dyBase + k].
 */
function routeToMax(
  xv: Float32Array,
  dyv: Float32Array,
  dx: Float32Array,
  xBatch: number,
  inWidth: number,
  c: number,
  rFrom: number,
  rTo: number,
  cFrom: number,
  cTo: number,
  dyBase: number,
): void {
  for (let k = 0; k < c; k++) {
    let best = -Infinity;
    let where = -1;
    for (let r = rFrom; r < rTo; r++) {
      const rowStart = (xBatch + r * inWidth) * c + k;
      for (let col = cFrom; col < cTo; col++) {
        const v = xv[rowStart + col * c];
        if (v > best) {
          best = v;
          where = rowStart + col * c;
        }
      }
    }
    if (where >= 0) dx[where] = dx[where] + dyv[dyBase + k];
  }
}

export const maxPoolGradKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const name = 'MaxPoolGrad';
  const backend = asWasmBackend(b, name);
  const dy = inputs['dy'];
  const x = inputs['input'];
  if (dy == null || x == null || x.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`${name}: inputs 'dy' and 'input' must be rank-4 tensors`);
  }
  const a = (attrs ?? {}) as {
    filterSize: [number, number] | number;
    strides: [number, number] | number;
    pad: Pad;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const info = tf.backend_util.computePool2DInfo(
    x.shape as Shape4,
    a.filterSize,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth } = info;
  const fh = info.effectiveFilterHeight;
  const fw = info.effectiveFilterWidth;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (dy.shape[1] !== outHeight || dy.shape[2] !== outWidth || dy.shape[3] !== c) {
    throw new Error(
      `${name}: dy has shape [${dy.shape.join(',')}], expected [${batchSize},${outHeight},${outWidth},${c}]`,
    );
  }
  return makeF32(backend, x.shape, (dx) => {
    const xv = heapF32(backend, x);
    const dyv = heapF32(backend, dy);
    dx.fill(0);
    for (let n = 0; n < batchSize; n++) {
      const xBatch = n * inHeight * inWidth;
      for (let oh = 0; oh < outHeight; oh++) {
        const r0 = oh * strideHeight - top;
        const rFrom = Math.max(0, r0);
        const rTo = Math.min(inHeight, r0 + fh);
        for (let ow = 0; ow < outWidth; ow++) {
          const c0 = ow * strideWidth - left;
          const cFrom = Math.max(0, c0);
          const cTo = Math.min(inWidth, c0 + fw);
          const dyBase = ((n * outHeight + oh) * outWidth + ow) * c;
          routeToMax(xv, dyv, dx, xBatch, inWidth, c, rFrom, rTo, cFrom, cTo, dyBase);
        }
      }
    }
  });
};
