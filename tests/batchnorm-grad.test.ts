/**
 * BatchNorm training on wasm: the project's FusedBatchNorm and Mean gradients return what
 * tfjs-core's return (compared on the cpu backend), the faster wasm kernels they and the layers
 * run (Sum, Mean, Tile, Identity, Cast) equal the cpu backend's, and cnn-small trains on wasm
 * with the losses tfjs's own gradients give on cpu.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import { registerWasmTrainingKernels } from '../src/backend/kernels/index.js';
import { fusedBatchNormGradConfig } from '../src/backend/kernels/batch-norm-grad.js';
import { meanGradConfig } from '../src/backend/kernels/mean-grad.js';
import {
  PROJECT_GRADIENTS,
  registerProjectGradients,
  restorePreviousGradient,
} from '../src/backend/kernels/gradients.js';
import { blockReduction } from '../src/backend/kernels/reduce.js';
import { buildNetwork } from '../src/models/index.js';
import { Rng } from '../src/util/rng.js';

const TOLERANCE = 1e-4;
const LOSS_TOLERANCE = 1e-3;
const CASES = 24;

before(async () => {
  await initBackend('wasm');
});

/** tfjs-core's own gradient for `kernelName` (the one the project's replaced). */
function tfjsGradient(kernelName: string): tf.GradConfig {
  restorePreviousGradient(kernelName);
  const config = tf.getGradient(kernelName) as tf.GradConfig | undefined;
  registerProjectGradients();
  assert.ok(config != null && !PROJECT_GRADIENTS.includes(config), `no tfjs gradient for ${kernelName}`);
  return config;
}

/** Makes each config its kernel's gradient. */
function useGradients(configs: tf.GradConfig[]): void {
  for (const config of configs) {
    tf.unregisterGradient(config.kernelName);
    tf.registerGradient(config);
  }
}

/** Runs `f` with `config` as its kernel's gradient, then puts the project's gradients back. */
function withGradient<T>(config: tf.GradConfig, f: () => T): T {
  useGradients([config]);
  try {
    return f();
  } finally {
    registerProjectGradients();
  }
}

/** max |a - b| / max |b| (b: the reference). */
function relativeError(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const av = a.dataSync();
  const bv = b.dataSync();
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < bv.length; i++) {
    diff = Math.max(diff, Math.abs(av[i] - bv[i]));
    scale = Math.max(scale, Math.abs(bv[i]));
  }
  return diff / scale;
}

function randomTensor(rng: Rng, shape: number[], shift = 0, spread = 1): tf.Tensor {
  const size = shape.reduce((p, q) => p * q, 1);
  return tf.tensor(
    Float32Array.from({ length: size }, () => shift + spread * rng.normal()),
    shape,
  );
}

function positiveTensor(rng: Rng, shape: number[]): tf.Tensor {
  const size = shape.reduce((p, q) => p * q, 1);
  return tf.tensor(
    Float32Array.from({ length: size }, () => 0.2 + 2 * rng.next()),
    shape,
  );
}

interface BatchNormCase {
  xShape: number[];
  /** Shape of mean, variance, scale and offset. */
  paramShape: number[];
  eps: number;
}

/** Rank-4 NHWC and rank-2 inputs; parameters per channel ([C]) or shaped like x. */
function batchNormCase(rng: Rng, i: number): BatchNormCase {
  const c = 1 + rng.int(9);
  const xShape = i % 2 === 0 ? [1 + rng.int(4), 1 + rng.int(6), 1 + rng.int(6), c] : [1 + rng.int(12), c];
  const paramShape = i % 3 === 2 ? xShape : [c];
  return { xShape, paramShape, eps: [1e-3, 1e-5, 0.1][rng.int(3)] };
}

const INPUTS = ['x', 'mean', 'variance', 'scale', 'offset'] as const;

test(`FusedBatchNorm gradients equal tfjs's w.r.t. x, mean, variance, scale and offset (cpu, ${CASES} random shapes)`, async () => {
  await tf.setBackend('cpu');
  const tfjs = tfjsGradient('FusedBatchNorm');
  assert.equal(tf.getGradient('FusedBatchNorm'), fusedBatchNormGradConfig);
  const rng = new Rng(5);
  for (let i = 0; i < CASES; i++) {
    const c = batchNormCase(rng, i);
    tf.tidy(() => {
      // Batch statistics far from 0 and 1, as the output of a convolution can have.
      const x = randomTensor(rng, c.xShape, 3, 2);
      const mean = randomTensor(rng, c.paramShape, 3);
      const variance = positiveTensor(rng, c.paramShape);
      const scale = randomTensor(rng, c.paramShape);
      const offset = randomTensor(rng, c.paramShape);
      const dy = randomTensor(rng, c.xShape);
      const f = (...t: tf.Tensor[]): tf.Tensor => tf.batchNorm(t[0], t[1], t[2], t[4], t[3], c.eps);
      const args = [x, mean, variance, scale, offset];
      const ours = tf.grads(f)(args, dy);
      const theirs = withGradient(tfjs, () => tf.grads(f)(args, dy));
      INPUTS.forEach((name, j) => {
        const err = relativeError(ours[j], theirs[j]);
        assert.ok(
          err <= TOLERANCE,
          `case ${i} (x [${c.xShape}], params [${c.paramShape}]): d${name} relative error ${err.toExponential(2)}`,
        );
      });
    });
  }
  await tf.setBackend('wasm');
});

test('without scale or offset, the FusedBatchNorm gradient functions agree too (called directly: the tape needs every input)', async () => {
  await tf.setBackend('cpu');
  const tfjs = tfjsGradient('FusedBatchNorm');
  const rng = new Rng(6);
  for (let i = 0; i < CASES; i++) {
    const c = batchNormCase(rng, i);
    const withScale = i % 4 >= 2;
    tf.tidy(() => {
      // FusedBatchNorm sees x as rank 4 (tf.batchNorm reshapes it); parameters keep their shape.
      const x4 = [1, 1, 1, 1].slice(0, 4 - c.xShape.length).concat(c.xShape);
      const x = randomTensor(rng, x4, -2, 3);
      const mean = randomTensor(rng, c.paramShape, -2);
      const variance = positiveTensor(rng, c.paramShape);
      const scale = withScale ? randomTensor(rng, c.paramShape) : undefined;
      const dy = randomTensor(rng, x4);
      // tfjs-core's saved list is [x, mean, variance, scale]; offset is never saved.
      const saved = [x, mean, variance, scale] as tf.Tensor[];
      const attrs = { varianceEpsilon: c.eps };
      const ours = fusedBatchNormGradConfig.gradFunc(dy, saved, attrs);
      const theirs = tfjs.gradFunc(dy, saved, attrs);
      for (const name of INPUTS) {
        const a = ours[name]();
        const b = theirs[name]();
        const err = relativeError(a, b);
        assert.ok(
          err <= TOLERANCE,
          `case ${i} (x [${x4}], params [${c.paramShape}], scale ${withScale}): d${name} relative error ${err.toExponential(2)}`,
        );
      }
    });
  }
  await tf.setBackend('wasm');
});

test('FusedBatchNorm gradients for parameters shaped [1, C, 1, 1] (which tfjs-core cannot differentiate) equal those of the explicit formula', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await tf.setBackend(backend);
    const rng = new Rng(7);
    for (let i = 0; i < 6; i++) {
      const [n, ch, h, w] = [1 + rng.int(3), 1 + rng.int(5), 1 + rng.int(5), 1 + rng.int(5)];
      tf.tidy(() => {
        const x = randomTensor(rng, [n, ch, h, w], 1);
        const p = [1, ch, 1, 1];
        const args = [x, randomTensor(rng, p, 1), positiveTensor(rng, p), randomTensor(rng, p), randomTensor(rng, p)];
        const dy = randomTensor(rng, [n, ch, h, w]);
        const eps = 1e-3;
        const fused = (...t: tf.Tensor[]): tf.Tensor => tf.batchNorm(t[0], t[1], t[2], t[4], t[3], eps);
        const explicit = (...t: tf.Tensor[]): tf.Tensor =>
          tf.add(tf.mul(tf.mul(tf.sub(t[0], t[1]), tf.rsqrt(tf.add(t[2], eps))), t[3]), t[4]);
        const ours = tf.grads(fused)(args, dy);
        const reference = tf.grads(explicit)(args, dy);
        INPUTS.forEach((name, j) => {
          const err = relativeError(ours[j], reference[j]);
          assert.ok(
            err <= TOLERANCE,
            `${backend} case ${i} [${n},${ch},${h},${w}]: d${name} relative error ${err.toExponential(2)}`,
          );
        });
      });
    }
  }
  await tf.setBackend('wasm');
});

test(`Mean gradients equal tfjs's bit for bit (cpu, ${CASES} random shapes and axes)`, async () => {
  await tf.setBackend('cpu');
  const tfjs = tfjsGradient('Mean');
  assert.equal(tf.getGradient('Mean'), meanGradConfig);
  const rng = new Rng(8);
  for (let i = 0; i < CASES; i++) {
    const rank = 1 + rng.int(4);
    const shape = Array.from({ length: rank }, () => 1 + rng.int(5));
    const axes = Array.from({ length: rank }, (_, a) => a).filter(() => rng.next() < 0.5);
    const keepDims = rng.next() < 0.5;
    tf.tidy(() => {
      const x = randomTensor(rng, shape);
      const f = (t: tf.Tensor): tf.Tensor =>
        tf.mul(tf.mean(t, axes.length > 0 ? axes : undefined, keepDims), tf.scalar(3));
      const ours = tf.grad(f)(x);
      const theirs = withGradient(tfjs, () => tf.grad(f)(x));
      assert.deepEqual(
        Array.from(ours.dataSync()),
        Array.from(theirs.dataSync()),
        `case ${i}: [${shape}] axes [${axes}]`,
      );
    });
  }
  await tf.setBackend('wasm');
});

/** Runs `f` on cpu and on wasm with the same input values; returns both outputs' values and dtypes. */
async function onBothBackends(
  values: number[],
  shape: number[],
  dtype: tf.DataType,
  f: (x: tf.Tensor) => tf.Tensor,
): Promise<{ wasm: tf.Tensor; cpu: tf.Tensor }> {
  const run = async (backend: 'cpu' | 'wasm'): Promise<tf.Tensor> => {
    await tf.setBackend(backend);
    const out = tf.tidy(() => f(tf.tensor(values, shape, dtype)));
    const copy = tf.tensor(await out.data(), out.shape, out.dtype);
    out.dispose();
    return copy;
  };
  const cpu = await run('cpu');
  const wasm = await run('wasm');
  return { wasm, cpu };
}

test('on wasm, Sum and Mean over consecutive leading or middle axes equal cpu; other reductions are unchanged', async () => {
  assert.deepEqual(blockReduction([64, 28, 28, 16], [0, 1, 2]), { outer: 1, reduced: 64 * 28 * 28, inner: 16 });
  assert.deepEqual(blockReduction([8, 7, 7, 64], [1, 2]), { outer: 8, reduced: 49, inner: 64 });
  assert.equal(blockReduction([8, 7, 7, 64], [3]), null, 'innermost axes stay with the built-in kernel');
  assert.equal(blockReduction([8, 7, 7, 64], [0, 2]), null, 'axes with a gap stay with the built-in kernel');
  const rng = new Rng(9);
  const cases: Array<{ shape: number[]; axes: number[] }> = [
    { shape: [64, 9, 9, 6], axes: [0, 1, 2] }, // per channel: several row blocks, 4 + 2 columns
    { shape: [3, 5, 300], axes: [0, 1] }, // rows wider than 256
    { shape: [4, 7, 7, 5], axes: [1, 2] }, // global average pooling
  ];
  while (cases.length < CASES) {
    const rank = 2 + rng.int(3);
    const shape = Array.from({ length: rank }, () => 1 + rng.int(8));
    let axes: number[];
    if (cases.length % 4 === 0) {
      axes = shape.map((_, a) => a).filter(() => rng.next() < 0.5); // anything, e.g. innermost or with gaps
      if (axes.length === 0) axes = [rank - 1];
    } else {
      const first = rng.int(rank - 1);
      axes = Array.from({ length: 1 + rng.int(rank - 1 - first) }, (_, k) => first + k);
      assert.notEqual(blockReduction(shape, axes), null);
    }
    cases.push({ shape, axes });
  }
  for (const [i, { shape, axes }] of cases.entries()) {
    const keepDims = rng.next() < 0.5;
    const size = shape.reduce((p, q) => p * q, 1);
    const values = Array.from({ length: size }, () => 5 + rng.normal());
    for (const op of ['sum', 'mean'] as const) {
      const { wasm, cpu } = await onBothBackends(values, shape, 'float32', (x) =>
        op === 'sum' ? tf.sum(x, axes, keepDims) : tf.mean(x, axes, keepDims),
      );
      assert.deepEqual(wasm.shape, cpu.shape);
      const err = relativeError(wasm, cpu);
      assert.ok(
        err <= 1e-6,
        `case ${i}: ${op} of [${shape}] over [${axes}] keepDims ${keepDims}: relative error ${err.toExponential(2)}`,
      );
      tf.dispose([wasm, cpu]);
    }
  }
  // int32 sums stay with the built-in kernel and stay int32.
  const { wasm, cpu } = await onBothBackends([1, 2, 3, 4, 5, 6], [3, 2], 'int32', (x) => tf.sum(x, 0));
  assert.equal(wasm.dtype, 'int32');
  assert.deepEqual(Array.from(wasm.dataSync()), Array.from(cpu.dataSync()));
});

test('on wasm, Tile (and broadcastTo) equals cpu for float32, int32 and bool tensors', async () => {
  const rng = new Rng(10);
  for (let i = 0; i < CASES; i++) {
    const rank = 1 + rng.int(5);
    const shape = Array.from({ length: rank }, () => 1 + rng.int(4));
    const reps = Array.from({ length: rank }, () => 1 + rng.int(4));
    const dtype = (['float32', 'int32', 'bool'] as const)[i % 3];
    const size = shape.reduce((p, q) => p * q, 1);
    const values = Array.from({ length: size }, () =>
      dtype === 'bool' ? rng.int(2) : dtype === 'int32' ? rng.int(100) - 50 : rng.normal(),
    );
    const { wasm, cpu } = await onBothBackends(values, shape, dtype, (x) => tf.tile(x, reps));
    assert.equal(wasm.dtype, dtype);
    assert.deepEqual(wasm.shape, cpu.shape);
    assert.deepEqual(
      Array.from(wasm.dataSync()),
      Array.from(cpu.dataSync()),
      `case ${i}: tile [${shape}] by [${reps}] (${dtype})`,
    );
    tf.dispose([wasm, cpu]);
  }
  const { wasm, cpu } = await onBothBackends([1, 2, 3], [3], 'float32', (x) => tf.broadcastTo(x, [2, 4, 3]));
  assert.deepEqual(Array.from(wasm.dataSync()), Array.from(cpu.dataSync()));
});

test('on wasm, clones and same-type casts share their input buffer and outlive it; casts to another type convert', async () => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as { numDataIds(): number };
  const before = backend.numDataIds();
  const x = tf.tensor([1.5, -2.25, 3], [3]);
  const clone = tf.clone(x);
  const same = tf.cast(x, 'float32');
  assert.equal(backend.numDataIds(), before + 1, 'clone and cast allocated memory');
  const asInt = tf.cast(x, 'int32');
  assert.equal(asInt.dtype, 'int32');
  assert.deepEqual(Array.from(asInt.dataSync()), [1, -2, 3]);
  x.dispose();
  assert.deepEqual(Array.from(clone.dataSync()), [1.5, -2.25, 3]);
  assert.deepEqual(Array.from(same.dataSync()), [1.5, -2.25, 3]);
  tf.dispose([clone, same, asInt]);
  assert.equal(backend.numDataIds(), before, 'buffers left behind');
});

test('registerWasmTrainingKernels installs the gradients, lists them, and stays silent and idempotent', async () => {
  for (const config of PROJECT_GRADIENTS) restorePreviousGradient(config.kernelName);
  assert.notEqual(tf.getGradient('FusedBatchNorm'), fusedBatchNormGradConfig);
  const warnings: string[] = [];
  const warn = console.warn;
  const debug = tf.env().getBool('DEBUG');
  console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(' '));
  try {
    tf.env().set('DEBUG', true); // tfjs warns about overridden gradients only in debug mode
    const first = registerWasmTrainingKernels();
    const second = registerWasmTrainingKernels();
    assert.deepEqual(first, second);
    assert.ok(first.includes('FusedBatchNorm (gradient)') && first.includes('Mean (gradient)'), first.join(', '));
  } finally {
    tf.env().set('DEBUG', debug);
    console.warn = warn;
  }
  assert.deepEqual(
    warnings.filter((w) => w.includes('Overriding')),
    [],
  );
  assert.equal(tf.getGradient('FusedBatchNorm'), fusedBatchNormGradConfig);
  assert.equal(tf.getGradient('Mean'), meanGradConfig);
});

/** Losses of `steps` Adam steps of cnn-small (12x12x1 inputs) from the given weights, on `backend`. */
async function cnnSmallLosses(
  backend: 'cpu' | 'wasm',
  weights: Float32Array[] | null,
  steps: number,
): Promise<{ losses: number[]; weights: Float32Array[]; leaked: number }> {
  await tf.setBackend(backend);
  const net = buildNetwork('cnn-small', { inputShape: [12, 12, 1], numClasses: 10, seed: 3 });
  const model = net.model;
  const initial = weights ?? model.getWeights().map((w) => (w.dataSync() as Float32Array).slice());
  const shapes = model.getWeights().map((w) => w.shape);
  tf.tidy(() => model.setWeights(initial.map((w, i) => tf.tensor(w, shapes[i]))));
  const rng = new Rng(12);
  const n = 8;
  const xs = tf.tensor4d(
    Float32Array.from({ length: n * 144 }, () => 2 + rng.normal()),
    [n, 12, 12, 1],
  );
  const ys = tf
    .oneHot(
      tf.tensor1d(
        Array.from({ length: n }, () => rng.int(10)),
        'int32',
      ),
      10,
    )
    .toFloat();
  const optimizer = tf.train.adam(0.01);
  const losses: number[] = [];
  let tensorsAfterFirst = 0;
  for (let i = 0; i < steps; i++) {
    const loss = optimizer.minimize(
      () => tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(ys, model.apply(xs, { training: true }) as tf.Tensor),
      true,
    );
    losses.push((loss as tf.Scalar).dataSync()[0]);
    (loss as tf.Scalar).dispose();
    if (i === 0) tensorsAfterFirst = tf.memory().numTensors;
  }
  const leaked = tf.memory().numTensors - tensorsAfterFirst;
  tf.dispose([xs, ys]);
  optimizer.dispose();
  model.dispose();
  return { losses, weights: initial, leaked };
}

test("cnn-small trains on wasm (project gradients and kernels) with the losses of cpu with tfjs's gradients (3 Adam steps)", async () => {
  const steps = 3;
  const tfjsBatchNorm = tfjsGradient('FusedBatchNorm');
  const tfjsMean = tfjsGradient('Mean');
  useGradients([tfjsBatchNorm, tfjsMean]);
  let cpu: Awaited<ReturnType<typeof cnnSmallLosses>>;
  try {
    cpu = await cnnSmallLosses('cpu', null, steps);
  } finally {
    registerProjectGradients();
  }
  assert.equal(tf.getGradient('FusedBatchNorm'), fusedBatchNormGradConfig);
  const wasm = await cnnSmallLosses('wasm', cpu.weights, steps);
  await tf.setBackend('wasm');
  assert.equal(wasm.leaked, 0, 'tensors left behind by training steps on wasm');
  wasm.losses.forEach((l, i) => {
    const ref = cpu.losses[i];
    assert.ok(
      Number.isFinite(l) && Math.abs(l - ref) <= LOSS_TOLERANCE * Math.max(1, Math.abs(ref)),
      `step ${i}: wasm loss ${l} vs cpu ${ref}`,
    );
  });
  assert.notEqual(wasm.losses[steps - 1], wasm.losses[0], 'the loss did not change: no gradient reached the weights');
});

test('on wasm, the FusedBatchNorm forward kernel (SIMD pass) equals cpu, with and without scale and offset', async () => {
  const rng = new Rng(19);
  for (let i = 0; i < CASES; i++) {
    const c = 1 + rng.int(13);
    const shape = i % 3 === 0 ? [1 + rng.int(40), c] : [1 + rng.int(3), 1 + rng.int(6), 1 + rng.int(6), c];
    const size = shape.reduce((p, q) => p * q, 1);
    const values = Array.from({ length: size }, () => 3 * rng.normal());
    const param = (lo: number): number[] => Array.from({ length: c }, () => lo + rng.next());
    const [m, v, s, o] = [param(-0.5), param(0.1), param(0.5), param(-0.5)];
    // per-channel parameters shaped [C] or [1, .., 1, C]; the last cases broadcast x-shaped parameters (built-in kernel)
    const pShape = i % 4 === 1 ? [...shape.slice(0, -1).map(() => 1), c] : [c];
    const full = i >= CASES - 2;
    const eps = [1e-3, 1e-5][i % 2];
    const withScale = i % 5 !== 2;
    const withOffset = i % 5 !== 3;
    const { wasm, cpu } = await onBothBackends(values, shape, 'float32', (x) => {
      const p = (a: number[]): tf.Tensor => (full ? tf.broadcastTo(tf.tensor(a, [c]), shape) : tf.tensor(a, pShape));
      return tf.batchNorm(x, p(m), p(v), withOffset ? p(o) : undefined, withScale ? p(s) : undefined, eps);
    });
    const err = relativeError(wasm, cpu);
    assert.ok(err <= 1e-6, `case ${i}: [${shape}] params [${pShape}]: relative error ${err.toExponential(2)}`);
    assert.ok(wasm.dataSync().some((val) => val !== 0));
    tf.dispose([wasm, cpu]);
  }
  await tf.setBackend('wasm');
});
