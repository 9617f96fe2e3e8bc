/**
 * Training kernels for the wasm backend. tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter,
 * DepthwiseConv2dNativeBackpropFilter or DepthwiseConv2dNativeBackpropInput, and its
 * Conv2DBackpropInput is a naive loop; these replacements run on the backend's XNNPACK forward
 * convolutions and on WebAssembly SIMD routines (see backprop-filter.ts, backprop-input.ts,
 * simd.ts). Its MaxPoolGrad gives wrong gradients when a pooling window holds only negative
 * values (max-pool-grad.ts replaces it), and its BatchMatMul with a transposed operand (every
 * Dense backward pass) is a naive loop (batch-mat-mul.ts routes it to XNNPACK).
 * Every other kernel needed to train the layers this project uses is present and agrees with
 * the cpu backend (checked by tests/train-wasm.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterKernel, depthwiseConv2dNativeBackpropFilterKernel } from './backprop-filter.js';
import { conv2DBackpropInputKernel, depthwiseConv2dNativeBackpropInputKernel } from './backprop-input.js';
import { batchMatMulKernel, rememberBuiltinBatchMatMul } from './batch-mat-mul.js';
import { maxPoolGradKernel } from './max-pool-grad.js';
import { fusedBatchNormKernel, rememberBuiltinBatchNorm } from './batch-norm.js';
import { gatherKernel, rememberBuiltinGather } from './gather.js';
import { rememberBuiltinSlice, sliceKernel } from './slice.js';
import { conv2DKernel, fusedConv2DKernel, rememberBuiltinConv2D, rememberBuiltinFusedConv2D } from './conv-forward.js';
import { castKernel, identityKernel, rememberBuiltinCast } from './identity.js';
import { meanKernel, rememberBuiltinMean, rememberBuiltinSum, sumKernel } from './reduce.js';
import { rememberBuiltinTile, tileKernel } from './tile.js';
import { registerProjectGradients } from './gradients.js';
import { ADAM_UPDATE, adamUpdateKernel } from './adam.js';
import {
  BATCH_MOMENTS,
  batchMomentsKernel,
  BATCH_NORM_TRAINING_GRAD,
  batchNormTrainingGradKernel,
  installFusedBatchNormTraining,
} from './batch-norm-training.js';
import {
  CLIP_BY_VALUE_GRAD,
  clipByValueGradKernel,
  FAKE_QUANTIZE,
  FAKE_QUANTIZE_GRAD,
  fakeQuantizeGradKernel,
  fakeQuantizeKernel,
} from './elementwise.js';

export {
  conv2DBackpropFilterKernel,
  depthwiseConv2dNativeBackpropFilterKernel,
  filterGradCounters,
  filterGradOptions,
} from './backprop-filter.js';
export { conv2DBackpropInputKernel, depthwiseConv2dNativeBackpropInputKernel } from './backprop-input.js';
export { simdOptions } from './simd.js';
export { nativeOptions } from './native.js';
export { batchMatMulKernel } from './batch-mat-mul.js';
export { maxPoolGradKernel } from './max-pool-grad.js';
export { convCounters, convOptions } from './conv-forward.js';
export { CLIP_BY_VALUE_GRAD, FAKE_QUANTIZE, FAKE_QUANTIZE_GRAD, fusedFakeQuantize } from './elementwise.js';
export { ADAM_UPDATE, adamCounters, adamOptions, fusedAdam, FusedAdamOptimizer } from './adam.js';
export {
  BATCH_MOMENTS,
  BATCH_NORM_TRAINING_GRAD,
  batchNormTrainingCounters,
  batchNormTrainingOptions,
  installFusedBatchNormTraining,
} from './batch-norm-training.js';
export { PROJECT_GRADIENTS, registerProjectGradients, restorePreviousGradient } from './gradients.js';

interface TrainingKernel {
  kernelName: string;
  kernelFunc: tf.KernelFunc;
  /** Delegates to the backend's own kernel, which must exist (its setupFunc is kept). */
  wrapsBuiltin?: (builtin: tf.KernelConfig) => void;
}

/** The kernels this module provides for the wasm backend, by kernel name. */
export const WASM_TRAINING_KERNELS: ReadonlyArray<TrainingKernel> = [
  { kernelName: 'Conv2DBackpropFilter', kernelFunc: conv2DBackpropFilterKernel },
  { kernelName: 'Conv2DBackpropInput', kernelFunc: conv2DBackpropInputKernel },
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', kernelFunc: depthwiseConv2dNativeBackpropFilterKernel },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', kernelFunc: depthwiseConv2dNativeBackpropInputKernel },
  { kernelName: 'MaxPoolGrad', kernelFunc: maxPoolGradKernel },
  // Direct SIMD convolutions (conv-forward.ts); the input gradient's helper correlations use them too.
  { kernelName: 'Conv2D', kernelFunc: conv2DKernel, wrapsBuiltin: rememberBuiltinConv2D },
  { kernelName: 'FusedConv2D', kernelFunc: fusedConv2DKernel, wrapsBuiltin: rememberBuiltinFusedConv2D },
  { kernelName: 'BatchMatMul', kernelFunc: batchMatMulKernel, wrapsBuiltin: rememberBuiltinBatchMatMul },
  // Faster forms of kernels BatchNorm training runs (batch-norm.ts, identity.ts, reduce.ts, tile.ts).
  { kernelName: 'FusedBatchNorm', kernelFunc: fusedBatchNormKernel, wrapsBuiltin: rememberBuiltinBatchNorm },
  { kernelName: 'Identity', kernelFunc: identityKernel },
  { kernelName: 'Cast', kernelFunc: castKernel, wrapsBuiltin: rememberBuiltinCast },
  { kernelName: 'Sum', kernelFunc: sumKernel, wrapsBuiltin: rememberBuiltinSum },
  { kernelName: 'Mean', kernelFunc: meanKernel, wrapsBuiltin: rememberBuiltinMean },
  { kernelName: 'Tile', kernelFunc: tileKernel, wrapsBuiltin: rememberBuiltinTile },
  // The minibatch gather and contiguous slices (evaluation batches): blocks copied on the heap (gather.ts, slice.ts).
  { kernelName: 'GatherV2', kernelFunc: gatherKernel, wrapsBuiltin: rememberBuiltinGather },
  { kernelName: 'Slice', kernelFunc: sliceKernel, wrapsBuiltin: rememberBuiltinSlice },
  // One-pass fake quantizer and ClipByValue gradient (elementwise.ts).
  { kernelName: FAKE_QUANTIZE, kernelFunc: fakeQuantizeKernel },
  { kernelName: FAKE_QUANTIZE_GRAD, kernelFunc: fakeQuantizeGradKernel },
  { kernelName: CLIP_BY_VALUE_GRAD, kernelFunc: clipByValueGradKernel },
  // The fused gradient of training-mode BatchNormalization (batch-norm-training.ts).
  { kernelName: BATCH_NORM_TRAINING_GRAD, kernelFunc: batchNormTrainingGradKernel },
  { kernelName: BATCH_MOMENTS, kernelFunc: batchMomentsKernel },
  // Adam's update of one variable in one call (adam.ts).
  { kernelName: ADAM_UPDATE, kernelFunc: adamUpdateKernel },
];

/**
 * Registers (or replaces the built-in version of) each kernel in WASM_TRAINING_KERNELS for the
 * 'wasm' backend, and the gradients of PROJECT_GRADIENTS (gradients.ts; for every backend).
 * Idempotent. Returns the names of the kernels of this module now in place, then the
 * gradients' labels ('FusedBatchNorm (gradient)', 'Mean (gradient)'). Also installs the fused
 * training-mode BatchNormalization of batch-norm-training.ts (for every backend).
 */
export function registerWasmTrainingKernels(): string[] {
  const names: string[] = [];
  for (const { kernelName, kernelFunc, wrapsBuiltin } of WASM_TRAINING_KERNELS) {
    const current = tf.getKernel(kernelName, 'wasm');
    if (current?.kernelFunc !== kernelFunc) {
      if (wrapsBuiltin) {
        if (current == null) continue; // nothing to wrap: keep the backend as it is
        wrapsBuiltin(current);
      }
      if (current != null) tf.unregisterKernel(kernelName, 'wasm');
      // A wrapper keeps the built-in kernel's setupFunc, which binds the wasm function it delegates to.
      const setupFunc = wrapsBuiltin ? current?.setupFunc : undefined;
      tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc, ...(setupFunc ? { setupFunc } : {}) });
    }
    names.push(kernelName);
  }
  names.push(...registerProjectGradients());
  installFusedBatchNormTraining();
  return names;
}
