/**
 * Training kernels for the wasm backend. tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter,
 * DepthwiseConv2dNativeBackpropFilter or DepthwiseConv2dNativeBackpropInput, and its
 * Conv2DBackpropInput is a naive loop; these replacements run on the backend's XNNPACK forward
 * convolutions (see backprop-filter.ts, backprop-input.ts). Its MaxPoolGrad gives wrong
 * gradients when a pooling window holds only negative values; max-pool-grad.ts replaces it.
 * Every other kernel needed to train the layers this project uses is present and agrees with
 * the cpu backend (checked by tests/train-wasm.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterKernel, depthwiseConv2dNativeBackpropFilterKernel } from './backprop-filter.js';
import { conv2DBackpropInputKernel, depthwiseConv2dNativeBackpropInputKernel } from './backprop-input.js';
import { maxPoolGradKernel } from './max-pool-grad.js';

export { conv2DBackpropFilterKernel, depthwiseConv2dNativeBackpropFilterKernel } from './backprop-filter.js';
export { conv2DBackpropInputKernel, depthwiseConv2dNativeBackpropInputKernel } from './backprop-input.js';
export { maxPoolGradKernel } from './max-pool-grad.js';

/** The kernels this module provides for the wasm backend, by kernel name. */
export const WASM_TRAINING_KERNELS: ReadonlyArray<{ kernelName: string; kernelFunc: tf.KernelFunc }> = [
  { kernelName: 'Conv2DBackpropFilter', kernelFunc: conv2DBackpropFilterKernel },
  { kernelName: 'Conv2DBackpropInput', kernelFunc: conv2DBackpropInputKernel },
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', kernelFunc: depthwiseConv2dNativeBackpropFilterKernel },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', kernelFunc: depthwiseConv2dNativeBackpropInputKernel },
  { kernelName: 'MaxPoolGrad', kernelFunc: maxPoolGradKernel },
];

/**
 * Registers (or replaces the built-in version of) each kernel in WASM_TRAINING_KERNELS for the
 * 'wasm' backend. Idempotent. Returns the names of the kernels of this module now in place.
 */
export function registerWasmTrainingKernels(): string[] {
  const names: string[] = [];
  for (const { kernelName, kernelFunc } of WASM_TRAINING_KERNELS) {
    const current = tf.getKernel(kernelName, 'wasm');
    if (current?.kernelFunc !== kernelFunc) {
      if (current != null) tf.unregisterKernel(kernelName, 'wasm');
      tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
    }
    names.push(kernelName);
  }
  return names;
}
