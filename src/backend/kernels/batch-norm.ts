/**
 * FusedBatchNorm (the forward op) for wasm: one SIMD pass of native/elementwise.c's batch_norm,
 * y = (x - mean) * k + offset with k = scale / sqrt(variance + eps) per channel (computed here,
 * in double precision then float32). The backend's own kernel recomputes the broadcast indices
 * and the square root for every element; in MobileNet-style networks it was the largest kernel of
 * a training step. Parameters other than one value per channel of x's last axis (or missing
 * mean/variance, non-float32 data) go to the built-in kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeKernels } from './native.js';
import { asWasmBackend, heapF32, makeF32, release, type TensorInfo } from './wasm-ops.js';

let builtin: tf.KernelConfig | null = null;

/** Remembers the backend's own FusedBatchNorm (its setupFunc stays with the replacement). */
export function rememberBuiltinBatchNorm(config: tf.KernelConfig): void {
  builtin = config;
}

function perChannel(t: TensorInfo | undefined, c: number): t is TensorInfo {
  return t != null && t.dtype === 'float32' && t.shape.reduce((a, b) => a * b, 1) === c;
}

export const fusedBatchNormKernel: tf.KernelFunc = (args) => {
  if (builtin == null) throw new Error("FusedBatchNorm: the wasm backend's own kernel was not found");
  const { x, mean, variance, offset, scale } = args.inputs;
  const native = nativeKernels(args.backend);
  const c = x == null || x.shape.length === 0 ? 0 : x.shape[x.shape.length - 1];
  if (
    native == null ||
    x == null ||
    x.dtype !== 'float32' ||
    c === 0 ||
    !perChannel(mean, c) ||
    !perChannel(variance, c) ||
    (offset != null && !perChannel(offset, c)) ||
    (scale != null && !perChannel(scale, c))
  ) {
    return builtin.kernelFunc(args);
  }
  const backend = asWasmBackend(args.backend, 'FusedBatchNorm');
  const { varianceEpsilon } = (args.attrs ?? {}) as { varianceEpsilon?: number };
  const eps = varianceEpsilon ?? 0.001;
  // [mean, k, offset], one row of c values each.
  const params = makeF32(backend, [3, c], (out) => {
    const m = heapF32(backend, mean);
    const v = heapF32(backend, variance);
    const s = scale == null ? null : heapF32(backend, scale);
    const o = offset == null ? null : heapF32(backend, offset);
    for (let j = 0; j < c; j++) {
      out[j] = m[j];
      out[c + j] = (s == null ? 1 : s[j]) / Math.sqrt(v[j] + eps);
      out[2 * c + j] = o == null ? 0 : o[j];
    }
  });
  const y = backend.makeOutput([...x.shape], 'float32');
  const size = x.shape.reduce((a, b) => a * b, 1);
  const p = heapF32(backend, params).byteOffset;
  native.batchNorm(
    heapF32(backend, x).byteOffset,
    p,
    p + 4 * c,
    p + 8 * c,
    heapF32(backend, y).byteOffset,
    size / c,
    c,
  );
  release(backend, params);
  return y;
};
