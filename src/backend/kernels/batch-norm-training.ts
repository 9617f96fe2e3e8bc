/**
 * BatchNormalization in training mode with a fused backward pass, for every backend.
 *
 * tfjs-layers normalises a training batch with tf.moments (Mean, Sub, Square, Mean) and then
 * FusedBatchNorm with the batch mean and variance as inputs, so the gradient runs the
 * FusedBatchNorm gradient and then, through mean and variance, the gradients of the two Means, the
 * Square and the Sub: about fifteen full-size passes per layer. With the batch moments taken
 * over every axis but the last (x has C channels last, N values per channel), the whole gradient
 * is, per channel,
 *
 *   inv = rsqrt(variance + eps),  k = gamma * inv,  S1 = sum(dy),  S2 = sum(dy * (x - mean))
 *   dgamma = S2 * inv,  dbeta = S1,  dx = dy * k + (x - mean) * c1 + c0
 *   with c1 = -k * inv^2 * S2 / N and c0 = -k * S1 / N,
 *
 * two full-size passes: the sums, then dx (on wasm, batch_norm_grad_sums and batch_norm_grad_dx of
 * native/elementwise.c, through the BitallocBatchNormTrainingGrad kernel; elsewhere, or without
 * the compiled module, the same formulas in tf ops).
 *
 * `installFusedBatchNormTraining` replaces BatchNormalization's `call` (the class's, so every
 * network, however built or loaded, gets it) by one that, in training mode with the channels on
 * the last axis, computes mean and variance as tf.moments does (on wasm in two passes by the
 * BitallocBatchMoments kernel, bit-identical to tf.moments there; elsewhere tf.moments itself),
 * so the forward values and the moving averages stay bit-identical, and the output with the same FusedBatchNorm, inside a
 * tf.customGrad whose gradient is the one above. The moments reach the custom op by closure, so
 * the tape does not differentiate them. Every other case (inference, other axes, no scale or
 * centre, non-float32) runs the original `call`. `batchNormTrainingOptions.fused = false` restores
 * the original path (to compare the two).
 */
import * as tf from '@tensorflow/tfjs';
import { nativeKernels } from './native.js';
import { asWasmBackend, heapF32, release, type TensorInfo } from './wasm-ops.js';

export const BATCH_NORM_TRAINING_GRAD = 'BitallocBatchNormTrainingGrad';
export const BATCH_MOMENTS = 'BitallocBatchMoments';

/** `fused: false` sends training-mode BatchNormalization back to tfjs-layers' own path. */
export const batchNormTrainingOptions: { fused: boolean } = { fused: true };

/** Calls of the fused layer path, of the compiled gradient and of the compiled moments (for tests: the paths are taken). */
export const batchNormTrainingCounters: { fused: number; native: number; moments: number } = {
  fused: 0,
  native: 0,
  moments: 0,
};

/**
 * Input x (channels last); outputs [mean, variance] over every other axis, bit-identical to
 * tf.moments on wasm (native/elementwise.c's batch_norm_moments: two passes instead of Mean, Sub,
 * Square, Mean). Wasm with the compiled module only (the caller checks).
 */
export const batchMomentsKernel: tf.KernelFunc = ({ inputs, backend: b }) => {
  const backend = asWasmBackend(b, BATCH_MOMENTS);
  const native = nativeKernels(b);
  if (native == null) throw new Error(`${BATCH_MOMENTS}: the compiled kernels are not available`);
  const x = input(inputs, 'x');
  const c = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((p, q) => p * q, 1) / c;
  const mean = backend.makeOutput([c], 'float32');
  const variance = backend.makeOutput([c], 'float32');
  // c float64 sums (the allocator's blocks are 8-byte aligned at least).
  const acc = backend.makeOutput([2 * c], 'float32');
  const at = heapF32(backend, acc).byteOffset;
  if (at % 8 !== 0) throw new Error(`${BATCH_MOMENTS}: scratch buffer not 8-byte aligned`);
  native.batchNormMoments(
    heapF32(backend, x).byteOffset,
    heapF32(backend, mean).byteOffset,
    heapF32(backend, variance).byteOffset,
    at,
    rows,
    c,
  );
  release(backend, acc);
  batchNormTrainingCounters.moments++;
  return [mean, variance];
};

/** Whether the compiled training kernels can run on the current backend. */
function onCompiledWasm(kernel: string): boolean {
  return tf.getBackend() === 'wasm' && tf.getKernel(kernel, 'wasm') != null && nativeKernels(tf.backend()) != null;
}

function input(inputs: tf.NamedTensorInfoMap, name: string): TensorInfo {
  const t = inputs[name];
  if (t == null || t.dtype !== 'float32') {
    throw new Error(`${BATCH_NORM_TRAINING_GRAD}: input '${name}' must be a float32 tensor`);
  }
  return t;
}

/**
 * Inputs x, dy (same shape, channels last), mean, variance, scale ([C]); attr varianceEpsilon.
 * Outputs [dx, dscale, doffset]. Wasm with the compiled module only (the caller checks).
 */
export const batchNormTrainingGradKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = asWasmBackend(b, BATCH_NORM_TRAINING_GRAD);
  const native = nativeKernels(b);
  if (native == null) throw new Error(`${BATCH_NORM_TRAINING_GRAD}: the compiled kernels are not available`);
  const x = input(inputs, 'x');
  const dy = input(inputs, 'dy');
  const mean = input(inputs, 'mean');
  const variance = input(inputs, 'variance');
  const scale = input(inputs, 'scale');
  const c = x.shape[x.shape.length - 1];
  const size = x.shape.reduce((p, q) => p * q, 1);
  const pixels = size / c;
  const eps = (attrs as { varianceEpsilon: number }).varianceEpsilon;
  // Every buffer first: an allocation may grow the heap and move the views.
  const sums = backend.makeOutput([2, c], 'float32');
  const params = backend.makeOutput([3, c], 'float32');
  const dscale = backend.makeOutput([c], 'float32');
  const doffset = backend.makeOutput([c], 'float32');
  const dx = backend.makeOutput([...x.shape], 'float32');
  const s = heapF32(backend, sums);
  const meanAt = heapF32(backend, mean).byteOffset;
  native.batchNormGradSums(
    heapF32(backend, x).byteOffset,
    heapF32(backend, dy).byteOffset,
    meanAt,
    s.byteOffset,
    s.byteOffset + 4 * c,
    pixels,
    c,
  );
  const v = heapF32(backend, variance);
  const g = heapF32(backend, scale);
  const p = heapF32(backend, params);
  const ds = heapF32(backend, dscale);
  const doff = heapF32(backend, doffset);
  for (let j = 0; j < c; j++) {
    const inv = 1 / Math.sqrt(v[j] + eps);
    const k = g[j] * inv;
    const s1 = s[j];
    const s2 = s[c + j];
    p[j] = k;
    p[c + j] = (-k * inv * inv * s2) / pixels;
    p[2 * c + j] = (-k * s1) / pixels;
    ds[j] = s2 * inv;
    doff[j] = s1;
  }
  native.batchNormGradDx(
    heapF32(backend, x).byteOffset,
    heapF32(backend, dy).byteOffset,
    meanAt,
    p.byteOffset,
    p.byteOffset + 4 * c,
    p.byteOffset + 8 * c,
    heapF32(backend, dx).byteOffset,
    pixels,
    c,
  );
  release(backend, sums);
  release(backend, params);
  batchNormTrainingCounters.native++;
  return [dx, dscale, doffset];
};

/** [dx, dgamma, dbeta] of y = batchNorm(x, mean, variance, beta, gamma, eps) with batch moments. */
function trainingGradient(
  dy: tf.Tensor,
  x: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  gamma: tf.Tensor,
  eps: number,
): tf.Tensor[] {
  const useNative = onCompiledWasm(BATCH_NORM_TRAINING_GRAD) && dy.dtype === 'float32';
  if (useNative) {
    return tf
      .engine()
      .runKernel<tf.Tensor[]>(
        BATCH_NORM_TRAINING_GRAD,
        { x, dy, mean, variance, scale: gamma },
        { varianceEpsilon: eps },
      );
  }
  return tf.tidy(() => {
    const axes = x.shape.slice(0, -1).map((_, i) => i);
    const n = x.size / x.shape[x.shape.length - 1];
    const xc = tf.sub(x, mean);
    const s1 = tf.sum(dy, axes);
    const s2 = tf.sum(tf.mul(dy, xc), axes);
    const inv = tf.rsqrt(tf.add(variance, tf.scalar(eps)));
    const k = tf.mul(gamma, inv);
    const c1 = tf.mul(tf.neg(tf.mul(k, tf.square(inv))), tf.div(s2, tf.scalar(n)));
    const c0 = tf.mul(tf.neg(k), tf.div(s1, tf.scalar(n)));
    const dx = tf.add(tf.add(tf.mul(dy, k), tf.mul(xc, c1)), c0);
    return [dx, tf.mul(s2, inv), s1];
  });
}

/** y = batchNorm(x, mean, variance, beta, gamma, eps) whose gradient treats mean and variance as x's batch moments. */
function fusedTrainingNorm(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  eps: number,
): tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xi, g, bt, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xi, mean, variance, g]);
    return {
      value: tf.batchNorm(xi, mean, variance, bt, g, eps),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const d = Array.isArray(dy) ? dy[0] : dy;
        const [sx, sm, sv, sg] = saved;
        return trainingGradient(d, sx, sm, sv, sg, eps);
      },
    };
  });
  return op(x, gamma, beta);
}

interface LayerVar {
  read(): tf.Tensor;
  write(t: tf.Tensor): void;
}

/** The fields of tfjs-layers' BatchNormalization that its training path uses. */
interface BatchNormLayer {
  axis: number;
  momentum: number;
  epsilon: number;
  gamma?: LayerVar | null;
  beta?: LayerVar | null;
  movingMean: LayerVar;
  movingVariance: LayerVar;
  call: (
    this: BatchNormLayer,
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: Record<string, unknown>,
  ) => tf.Tensor | tf.Tensor[];
}

let originalCall: BatchNormLayer['call'] | null = null;

/** Replaces BatchNormalization's `call` as described above. Idempotent. */
export function installFusedBatchNormTraining(): void {
  if (originalCall != null) return;
  // An explicit name: the probe takes no number from the layer-name counter.
  const proto = Object.getPrototypeOf(tf.layers.batchNormalization({ name: 'bitalloc_probe' })) as BatchNormLayer;
  const original = proto.call;
  originalCall = original;
  proto.call = function (this: BatchNormLayer, inputs, kwargs) {
    const training = kwargs?.['training'] === true;
    const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : null) : inputs;
    const ndim = x?.shape.length ?? 0;
    const axis = this.axis >= 0 ? this.axis : this.axis + ndim;
    if (
      !batchNormTrainingOptions.fused ||
      !training ||
      x == null ||
      x.dtype !== 'float32' ||
      ndim < 2 ||
      ndim > 4 ||
      axis !== ndim - 1 ||
      this.gamma == null ||
      this.beta == null
    ) {
      return original.call(this, inputs, kwargs);
    }
    const gammaVar = this.gamma;
    const betaVar = this.beta;
    return tf.tidy(() => {
      const axes = x.shape.slice(0, -1).map((_, i) => i);
      const { mean, variance } = onCompiledWasm(BATCH_MOMENTS)
        ? (([m, v]) => ({ mean: m, variance: v }))(tf.engine().runKernel<tf.Tensor[]>(BATCH_MOMENTS, { x }, {}))
        : tf.moments(x, axes);
      const y = fusedTrainingNorm(x, gammaVar.read(), betaVar.read(), mean, variance, this.epsilon);
      // The moving averages exactly as tfjs-layers updates them.
      const movingAverage = (variable: LayerVar, value: tf.Tensor): void => {
        tf.tidy(() => {
          const decay = 1 - this.momentum;
          const orig = variable.read();
          variable.write(tf.sub(orig, tf.mul(tf.sub(orig, value), decay)));
        });
      };
      movingAverage(this.movingMean, mean);
      movingAverage(this.movingVariance, variance);
      batchNormTrainingCounters.fused++;
      return y;
    });
  };
}
