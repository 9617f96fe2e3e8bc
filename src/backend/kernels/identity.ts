/**
 * Identity for wasm. The built-in kernel copies its input into new memory; the engine runs it
 * for every tensor it saves for a gradient (tf.clone), so a training step copies each saved
 * activation once more (e.g. the input of every BatchNorm and ReLU). Tensors are immutable and
 * the wasm backend counts references per buffer (its Reshape shares buffers the same way), so
 * this kernel returns the input's buffer with one more reference, as the cpu and webgl
 * backends' Identity do.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend } from './wasm-ops.js';

export const identityKernel: tf.KernelFunc = ({ inputs, backend: b }) => {
  const name = 'Identity';
  const backend = asWasmBackend(b, name);
  const x = inputs['x'];
  if (x == null) throw new Error(`${name}: input 'x' is required`);
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
};
