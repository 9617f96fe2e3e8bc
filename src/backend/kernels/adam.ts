/**
 * Adam with one kernel call per parameter on wasm: `FusedAdamOptimizer` is tfjs's AdamOptimizer
 * (same state, same `getWeights`/`setWeights`, same class name) whose update of each variable is
 * the BitallocAdam kernel, native/elementwise.c's adam_update, instead of tfjs's twelve kernels
 * (Mul, Add, Square, RealDiv, Sqrt, ... per variable: about 650 kernels a step on resnet20).
 * adam_update performs the same float32 operations in the same order, so the weights and moments
 * are bit-identical to tfjs's optimizer step after step. Off wasm, without the compiled module,
 * or with `adamOptions.fused = false`, the step is tfjs's own.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeKernels } from './native.js';
import { asWasmBackend, heapF32, type TensorInfo } from './wasm-ops.js';

export const ADAM_UPDATE = 'BitallocAdam';

/** `fused: false` runs tfjs's own Adam step (to compare the two). */
export const adamOptions: { fused: boolean } = { fused: true };

/** Variables updated by the fused kernel (for tests: the path is really taken). */
export const adamCounters: { fused: number } = { fused: 0 };

interface AdamAttrs {
  beta1: number;
  beta2: number;
  oneMinusAccBeta1: number;
  oneMinusAccBeta2: number;
  epsilon: number;
  learningRate: number;
}

function input(inputs: tf.NamedTensorInfoMap, name: string): TensorInfo {
  const t = inputs[name];
  if (t == null || t.dtype !== 'float32') throw new Error(`${ADAM_UPDATE}: input '${name}' must be a float32 tensor`);
  return t;
}

/** Inputs value, m, v, gradient (one shape); outputs [value', m', v']. Wasm with the compiled module only. */
export const adamUpdateKernel: tf.KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = asWasmBackend(b, ADAM_UPDATE);
  const native = nativeKernels(b);
  if (native == null) throw new Error(`${ADAM_UPDATE}: the compiled kernels are not available`);
  const value = input(inputs, 'value');
  const m = input(inputs, 'm');
  const v = input(inputs, 'v');
  const g = input(inputs, 'gradient');
  const a = attrs as unknown as AdamAttrs;
  const shape = [...value.shape];
  const wOut = backend.makeOutput(shape, 'float32');
  const mOut = backend.makeOutput(shape, 'float32');
  const vOut = backend.makeOutput(shape, 'float32');
  const f = Math.fround;
  native.adamUpdate(
    heapF32(backend, value).byteOffset,
    heapF32(backend, m).byteOffset,
    heapF32(backend, v).byteOffset,
    heapF32(backend, g).byteOffset,
    heapF32(backend, wOut).byteOffset,
    heapF32(backend, mOut).byteOffset,
    heapF32(backend, vOut).byteOffset,
    heapF32(backend, value).length,
    // The scalars as tfjs makes them: float32 tensors of the JS numbers.
    f(a.beta1),
    f(1 - a.beta1),
    f(a.beta2),
    f(1 - a.beta2),
    f(a.oneMinusAccBeta1),
    f(a.oneMinusAccBeta2),
    f(a.epsilon),
    f(-a.learningRate),
  );
  return [wOut, mOut, vOut];
};

/** The AdamOptimizer fields its step uses (private in tfjs's typings). */
interface AdamState {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  incrementIterations(): void;
}

function fusedAvailable(): boolean {
  return (
    adamOptions.fused &&
    tf.getBackend() === 'wasm' &&
    tf.getKernel(ADAM_UPDATE, 'wasm') != null &&
    nativeKernels(tf.backend()) != null
  );
}

type AdamGradients = Parameters<tf.AdamOptimizer['applyGradients']>[0];

export class FusedAdamOptimizer extends tf.AdamOptimizer {
  override applyGradients(variableGradients: AdamGradients): void {
    if (!fusedAvailable()) {
      super.applyGradients(variableGradients);
      return;
    }
    const s = this as unknown as AdamState;
    const names = Array.isArray(variableGradients)
      ? variableGradients.map((v) => v.name)
      : Object.keys(variableGradients);
    tf.tidy(() => {
      // As tfjs: 1 - beta^t in float32, from the powers before this step.
      const c1 = Math.fround(1 - s.accBeta1.dataSync()[0]);
      const c2 = Math.fround(1 - s.accBeta2.dataSync()[0]);
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name];
        if (s.accumulatedFirstMoment[i] == null) {
          s.accumulatedFirstMoment[i] = {
            originalName: `${name}/m`,
            variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        if (s.accumulatedSecondMoment[i] == null) {
          s.accumulatedSecondMoment[i] = {
            originalName: `${name}/v`,
            variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        const gradient = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
        if (gradient == null) return;
        const m = s.accumulatedFirstMoment[i].variable;
        const v = s.accumulatedSecondMoment[i].variable;
        if (value.dtype !== 'float32' || gradient.dtype !== 'float32') {
          throw new Error(`${ADAM_UPDATE}: variable ${name} and its gradient must be float32`);
        }
        const attrs: AdamAttrs = {
          beta1: s.beta1,
          beta2: s.beta2,
          oneMinusAccBeta1: c1,
          oneMinusAccBeta2: c2,
          epsilon: s.epsilon,
          learningRate: s.learningRate,
        };
        const [w2, m2, v2] = tf
          .engine()
          .runKernel<tf.Tensor[]>(ADAM_UPDATE, { value, m, v, gradient }, attrs as unknown as tf.NamedAttrMap);
        m.assign(m2);
        v.assign(v2);
        value.assign(w2);
        adamCounters.fused++;
      });
      s.accBeta1.assign(tf.mul(s.accBeta1, s.beta1));
      s.accBeta2.assign(tf.mul(s.accBeta2, s.beta2));
    });
    s.incrementIterations();
  }
}

/** tf.train.adam(lr) with the fused update (same defaults: beta1 0.9, beta2 0.999, the backend's epsilon). */
export function fusedAdam(learningRate: number): tf.AdamOptimizer {
  return new FusedAdamOptimizer(learningRate, 0.9, 0.999);
}
