/**
 * MaxPoolGrad for wasm. The built-in wasm kernel starts its running maximum at the smallest
 * positive float instead of -infinity, so a window whose values are all negative (max pooling
 * after a convolution or batch normalisation without ReLU) sends its gradient to the window's
 * first pixel instead of its maximum. This kernel routes each dy value to the first maximum of
 * its window (row-major order, strict >, as the cpu backend does). Pooling gradients are
 * memory-bound and small next to the convolutions, so a plain loop over the wasm heap suffices.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, heapF32, makeF32, type TensorInfo } from './wasm-ops.js';

type Shape4 = [number, number, number, number];
type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

export const maxPoolGradKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const name = 'MaxPoolGrad';
  const backend = asWasmBackend(b, name);
  const dy = inputs['dy'];
  const x = inputs['input'];
  if (dy == null || x == null || x.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`${name}: inputs 'dy' and 'input' must be rank-4 tensors`);
  }
  const a = (attrs ?? {}) as { filterSize: [number, number] | number; strides: [number, number] | number; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
  const info = tf.backend_util.computePool2DInfo(x.shape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth } = info;
  const fh = info.effectiveFilterHeight;
  const fw = info.effectiveFilterWidth;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (dy.shape[1] !== outHeight || dy.shape[2] !== outWidth || dy.shape[3] !== c) {
    throw new Error(`${name}: dy has shape [${dy.shape.join(',')}], expected [${batchSize},${outHeight},${outWidth},${c}]`);
  }
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  return makeF32(backend, x.shape, (dx) => {
    const xv = heapF32(backend, x as TensorInfo);
    const dyv = heapF32(backend, dy as TensorInfo);
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
          best.fill(-Infinity);
          where.fill(-1);
          for (let r = rFrom; r < rTo; r++) {
            for (let col = cFrom; col < cTo; col++) {
              const pixel = xBatch + r * inWidth + col;
              const base = pixel * c;
              for (let k = 0; k < c; k++) {
                const v = xv[base + k] as number;
                if (v > (best[k] as number)) {
                  best[k] = v;
                  where[k] = pixel;
                }
              }
            }
          }
          const dyBase = ((n * outHeight + oh) * outWidth + ow) * c;
          for (let k = 0; k < c; k++) {
            const p = where[k] as number;
            if (p >= 0) dx[p * c + k] = (dx[p * c + k] as number) + (dyv[dyBase + k] as number);
          }
        }
      }
    }
  });
};
