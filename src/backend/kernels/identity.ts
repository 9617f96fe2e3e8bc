/**
 * Identity and same-type Cast for wasm. The built-in kernels copy their input into new memory.
 * The engine runs Identity for every tensor it saves for a gradient (tf.clone), so a training
 * step copied each saved activation once more (e.g. the input of every BatchNorm and ReLU), and
 * tf.moments casts its float32 input to float32 (a copy, and another for its gradient). Tensors
 * are immutable and the wasm backend counts references per buffer (its Reshape shares buffers
 * the same way), so these kernels return the input's buffer with one more reference, as the cpu
 * and webgl backends' Identity does. Casts that change the type go to the built-in Cast.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, type TensorInfo } from './wasm-ops.js';

let builtinCast: tf.KernelConfig | null = null;

/** Remembers the backend's own Cast before it is replaced (it keeps the type conversions). */
export function rememberBuiltinCast(config: tf.KernelConfig): void {
  builtinCast = config;
}

function share(backendArg: unknown, name: string, x: TensorInfo | undefined): TensorInfo {
  const backend = asWasmBackend(backendArg, name);
  if (x == null) throw new Error(`${name}: input 'x' is required`);
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}

export const identityKernel: tf.KernelFunc = ({ inputs, backend }) => share(backend, 'Identity', inputs['x']);

export const castKernel: tf.KernelFunc = (args) => {
  const x = args.inputs['x'];
  const { dtype } = (args.attrs ?? {}) as { dtype?: tf.DataType };
  if (x != null && x.dtype === dtype && dtype !== 'string') return share(args.backend, 'Cast', x);
  if (builtinCast == null) throw new Error(`Cast: the wasm backend's own kernel was not found`);
  return builtinCast.kernelFunc(args);
};
