/**
 * GatherV2 along the first axis (the trainer's minibatch gather: rows of the training set) for
 * wasm: one contiguous copy per index on the backend's heap. The backend's own kernel computes
 * every element's source index and runs at a few tens of million floats per second, a visible
 * share of small networks' training steps. Other gathers (another axis, batchDims, an index out
 * of range, other dtypes) go to the built-in kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend } from './wasm-ops.js';

let builtin: tf.KernelConfig | null = null;

/** Remembers the backend's own GatherV2 (its setupFunc stays with the replacement). */
export function rememberBuiltinGather(config: tf.KernelConfig): void {
  builtin = config;
}

export const gatherKernel: tf.KernelFunc = (args) => {
  if (builtin == null) throw new Error("GatherV2: the wasm backend's own kernel was not found");
  const { x, indices } = args.inputs;
  const { axis, batchDims } = (args.attrs ?? {}) as { axis?: number; batchDims?: number };
  if (
    x == null ||
    indices == null ||
    x.shape.length === 0 ||
    (axis ?? 0) % x.shape.length !== 0 ||
    (batchDims ?? 0) !== 0 ||
    indices.dtype !== 'int32' ||
    (x.dtype !== 'float32' && x.dtype !== 'int32')
  ) {
    return builtin.kernelFunc(args);
  }
  const backend = asWasmBackend(args.backend, 'GatherV2');
  const rows = x.shape[0];
  const idx = backend.typedArrayFromHeap(indices) as Int32Array;
  for (const i of idx) if (!(i >= 0 && i < rows)) return builtin.kernelFunc(args);
  const rowSize = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
  // views after the allocation (the heap may have grown)
  const src = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const dst = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
  const at = backend.typedArrayFromHeap(indices) as Int32Array;
  for (let k = 0; k < at.length; k++) dst.set(src.subarray(at[k] * rowSize, (at[k] + 1) * rowSize), k * rowSize);
  return out;
};
