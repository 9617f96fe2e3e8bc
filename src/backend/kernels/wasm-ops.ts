/**
 * Low-level access to the wasm backend from inside a kernel: running the backend's own
 * kernels (XNNPACK convolutions, transposes) on TensorInfos, reading and writing tensor memory
 * on the wasm heap, and freeing intermediates. Everything here works on backend-owned
 * TensorInfos (not engine Tensors), so nothing shows up in `tf.memory()`; every intermediate
 * made here must be released with `release`.
 */
import * as tf from '@tensorflow/tfjs';

export type TensorInfo = tf.TensorInfo;

/** The part of the wasm backend (BackendWasm) these kernels use. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  incRef(dataId: tf.DataId): void;
  numDataIds(): number;
}

/** Checks that `backend` is the wasm backend and returns it typed. */
export function asWasmBackend(backend: unknown, kernelName: string): WasmBackend {
  const b = backend as Partial<WasmBackend> | null;
  if (
    b == null ||
    typeof b.makeOutput !== 'function' ||
    typeof b.typedArrayFromHeap !== 'function' ||
    typeof b.disposeData !== 'function' ||
    typeof b.incRef !== 'function'
  ) {
    throw new Error(`${kernelName}: this kernel runs only on the wasm backend`);
  }
  return b as WasmBackend;
}

/** Runs a kernel registered for the wasm backend on backend-owned TensorInfos. */
export function runWasmKernel(
  backend: WasmBackend,
  kernelName: string,
  inputs: Record<string, TensorInfo>,
  attrs: tf.NamedAttrMap,
): TensorInfo {
  const config = tf.getKernel(kernelName, 'wasm');
  if (config == null) throw new Error(`wasm kernel '${kernelName}' is not registered`);
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`wasm kernel '${kernelName}' returned several outputs`);
  return out;
}

/** A rank-4 float32 input of a kernel, checked. */
export function rank4Input(inputs: tf.NamedTensorInfoMap, name: string, kernelName: string): TensorInfo {
  const t = inputs[name];
  if (t == null || t.shape.length !== 4) throw new Error(`${kernelName}: input '${name}' must be a rank-4 tensor`);
  if (t.dtype !== 'float32') throw new Error(`${kernelName}: input '${name}' must be float32, got ${t.dtype}`);
  return t;
}

/** Frees a TensorInfo made by this module (or returned by a kernel run through `runWasmKernel`). */
export function release(backend: WasmBackend, t: TensorInfo | null): void {
  if (t != null) backend.disposeData(t.dataId);
}

/**
 * The same memory seen with another shape of equal size. It does not own the memory:
 * never release a view, never return one from a kernel.
 */
export function view(t: TensorInfo, shape: number[]): TensorInfo {
  const size = shape.reduce((a, b) => a * b, 1);
  const have = t.shape.reduce((a, b) => a * b, 1);
  if (size !== have) throw new Error(`view: shape [${shape.join(',')}] does not match [${t.shape.join(',')}]`);
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

/** Float32 contents of a tensor, as a view on the wasm heap. Valid until the next allocation. */
export function heapF32(backend: WasmBackend, t: TensorInfo): Float32Array {
  const a = backend.typedArrayFromHeap(t);
  if (!(a instanceof Float32Array)) throw new Error(`expected a float32 tensor, got ${t.dtype}`);
  return a;
}

/** A new float32 tensor filled by `fill`, which receives the (heap) array to write. */
export function makeF32(backend: WasmBackend, shape: number[], fill: (out: Float32Array) => void): TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  fill(heapF32(backend, out));
  return out;
}

export function transpose(backend: WasmBackend, x: TensorInfo, perm: number[]): TensorInfo {
  return runWasmKernel(backend, 'Transpose', { x }, { perm });
}

/**
 * Crops an NHWC tensor to rows [top, top+rows) and columns [left, left+cols); returns a new tensor.
 * Used only when a convolution would need negative padding.
 */
export function cropNHWC(
  backend: WasmBackend,
  x: TensorInfo,
  top: number,
  rows: number,
  left: number,
  cols: number,
): TensorInfo {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const out = backend.makeOutput([n, rows, cols, c], 'float32');
  const src = heapF32(backend, x);
  const dst = heapF32(backend, out);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < rows; r++) {
      const start = ((b * h + top + r) * w + left) * c;
      dst.set(src.subarray(start, start + cols * c), o);
      o += cols * c;
    }
  }
  return out;
}

/** A zero-filled float32 tensor. */
export function zeros(backend: WasmBackend, shape: number[]): TensorInfo {
  return makeF32(backend, shape, (a) => a.fill(0));
}
