/**
 * Gradient functions this project registers in place of tfjs-core's, for every backend (the
 * gradient registry is global): FusedBatchNorm (batch-norm-grad.ts), Mean (mean-grad.ts) and
 * ClipByValue (elementwise.ts, one pass on wasm), all of which tfjs-core computes with more
 * full-size tensors than needed.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedBatchNormGradConfig } from './batch-norm-grad.js';
import { meanGradConfig } from './mean-grad.js';
import { clipByValueGradConfig } from './elementwise.js';

export const PROJECT_GRADIENTS: ReadonlyArray<tf.GradConfig> = [
  fusedBatchNormGradConfig,
  meanGradConfig,
  clipByValueGradConfig,
];

/** How registerProjectGradients names a gradient in its list, e.g. 'FusedBatchNorm (gradient)'. */
export function gradientLabel(kernelName: string): string {
  return `${kernelName} (gradient)`;
}

/** The gradient each replaced one had before, by kernel name (null: there was none). */
const previous = new Map<string, tf.GradConfig | null>();

/**
 * Makes each config of PROJECT_GRADIENTS its kernel's gradient, remembering the one it
 * replaces. Idempotent and silent (tfjs warns about overridden gradients in debug mode, so the
 * old one is unregistered first). Returns their labels.
 */
export function registerProjectGradients(): string[] {
  return PROJECT_GRADIENTS.map((config) => {
    const current = tf.getGradient(config.kernelName) as tf.GradConfig | undefined;
    if (current !== config) {
      previous.set(config.kernelName, current ?? null);
      if (current != null) tf.unregisterGradient(config.kernelName);
      tf.registerGradient(config);
    }
    return gradientLabel(config.kernelName);
  });
}

/**
 * Puts back the gradient a project gradient replaced (tfjs-core's own), e.g. to compare the
 * two. Does nothing when the kernel's gradient is not this project's.
 */
export function restorePreviousGradient(kernelName: string): void {
  const current = tf.getGradient(kernelName) as tf.GradConfig | undefined;
  if (current == null || !PROJECT_GRADIENTS.includes(current)) return;
  tf.unregisterGradient(kernelName);
  const before = previous.get(kernelName);
  if (before != null) tf.registerGradient(before);
}
