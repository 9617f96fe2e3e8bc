/**
 * BatchMatMul for wasm. The built-in kernel uses XNNPACK only when neither operand is transposed
 * (and the batch is 1); otherwise it falls back to a naive triple loop that runs at well under
 * 1 GMAC/s. Dense layers hit that loop in every backward pass (dX = dy W^T, dW = x^T dy). This
 * kernel transposes such operands explicitly (the backend's Transpose kernel) and hands the
 * plain product to the built-in kernel's XNNPACK path. Batched products (batch > 1) go to the
 * built-in kernel unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, release, transpose, type TensorInfo } from './wasm-ops.js';

let builtin: tf.KernelConfig | null = null;

/**
 * Remembers the backend's own BatchMatMul before it is replaced (its setupFunc must stay
 * registered with the replacement: it binds the wasm function this kernel delegates to).
 */
export function rememberBuiltinBatchMatMul(config: tf.KernelConfig): void {
  builtin = config;
}

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

export const batchMatMulKernel: tf.KernelFunc = (args) => {
  const name = 'BatchMatMul';
  if (builtin == null) throw new Error(`${name}: the wasm backend's own kernel was not found`);
  const { inputs, attrs } = args;
  const a = inputs['a'];
  const b = inputs['b'];
  const { transposeA, transposeB } = (attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
  if (a == null || b == null) throw new Error(`${name}: inputs 'a' and 'b' are required`);
  const batch = (t: TensorInfo): number => t.shape.slice(0, -2).reduce((p, q) => p * q, 1);
  if (
    (!transposeA && !transposeB) ||
    batch(a) !== 1 ||
    batch(b) !== 1 ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32'
  ) {
    return builtin.kernelFunc(args);
  }
  const backend = asWasmBackend(args.backend, name);
  const aPlain = transposeA ? transpose(backend, a, swapLastTwo(a.shape.length)) : a;
  const bPlain = transposeB ? transpose(backend, b, swapLastTwo(b.shape.length)) : b;
  const out = builtin.kernelFunc({
    inputs: { a: aPlain, b: bPlain },
    backend: args.backend,
    attrs: { ...attrs, transposeA: false, transposeB: false },
  });
  if (aPlain !== a) release(backend, aPlain);
  if (bPlain !== b) release(backend, bPlain);
  return out;
};
