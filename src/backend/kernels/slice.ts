/**
 * Slice for wasm when the slice is one contiguous block (e.g. a batch of rows of a dataset, as
 * evaluation and calibration take them): one copy from the backend's heap. The backend's own
 * kernel first copies the whole input out of the heap (readSync), so slicing a batch out of a
 * large split cost as much as copying the split. Everything else goes to the built-in kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend } from './wasm-ops.js';

let builtin: tf.KernelConfig | null = null;

/** Remembers the backend's own Slice (its setupFunc stays with the replacement). */
export function rememberBuiltinSlice(config: tf.KernelConfig): void {
  builtin = config;
}

export const sliceKernel: tf.KernelFunc = (args) => {
  if (builtin == null) throw new Error("Slice: the wasm backend's own kernel was not found");
  const { x } = args.inputs;
  const { begin, size } = (args.attrs ?? {}) as { begin?: number | number[]; size?: number | number[] };
  if (x == null || begin == null || size == null || (x.dtype !== 'float32' && x.dtype !== 'int32')) {
    return builtin.kernelFunc(args);
  }
  const [b, s] = tf.slice_util.parseSliceParams(x, begin, size);
  if (!tf.slice_util.isSliceContinous(x.shape, b, s)) return builtin.kernelFunc(args);
  const backend = asWasmBackend(args.backend, 'Slice');
  const offset = tf.slice_util.computeFlatOffset(b, tf.util.computeStrides(x.shape));
  const count = s.reduce((p, q) => p * q, 1);
  const out = backend.makeOutput(s, x.dtype);
  const src = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const dst = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
  dst.set(src.subarray(offset, offset + count));
  return out;
};
