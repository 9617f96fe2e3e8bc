/**
 * The fused training-mode BatchNormalization (batch-norm-training.ts): over random shapes, its
 * gradients w.r.t. x, gamma and beta equal tfjs-layers' own path on the cpu backend (on wasm
 * through the compiled kernel, on cpu through tf ops), its output and moving averages are
 * bit-identical to tfjs-layers', and inference mode is left alone.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import { batchNormTrainingCounters, batchNormTrainingOptions } from '../src/backend/kernels/index.js';
import { Rng } from '../src/util/rng.js';

const TOLERANCE = 1e-4;
const CASES = 24;

before(async () => {
  await initBackend('wasm');
});

interface Case {
  shape: number[];
  momentum: number;
  epsilon: number;
  x: Float32Array;
  r: Float32Array;
  /** gamma, beta, moving mean, moving variance. */
  weights: Float32Array[];
}

function randomArray(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.next();
  return a;
}

function randomCase(rng: Rng, wide = false): Case {
  const c = wide ? 257 + rng.int(20) : 1 + rng.int(19);
  const u = rng.next();
  // Some with more rows than one block of the reduction (4096 / c rows) or more than 256 channels.
  const shape = wide
    ? [2 + rng.int(3), 1 + rng.int(3), 1 + rng.int(3), c]
    : u < 0.25
      ? [2 + rng.int(30), c]
      : u < 0.45
        ? [4 + rng.int(5), 16, 8 + rng.int(9), c]
        : [1 + rng.int(4), 1 + rng.int(7), 1 + rng.int(7), c];
  if (shape.length === 4 && shape[0] * shape[1] * shape[2] < 2) shape[0] = 2;
  const size = shape.reduce((a, b) => a * b, 1);
  // An offset and a spread per case, so the batch moments are not those of a standard normal.
  const offset = 4 * rng.next() - 2;
  const x = randomArray(rng, size, offset - 3, offset + 3);
  return {
    shape,
    momentum: 0.5 + 0.49 * rng.next(),
    epsilon: rng.next() < 0.5 ? 1e-3 : 1e-5,
    x,
    r: randomArray(rng, size),
    weights: [randomArray(rng, c, 0.5, 1.5), randomArray(rng, c), randomArray(rng, c), randomArray(rng, c, 0.5, 2)],
  };
}

interface Outcome {
  y: Float32Array;
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
}

/** One training-mode call of a BatchNormalization layer and the gradients of sum(y * r). */
async function run(backend: 'wasm' | 'cpu', c: Case, fused: boolean): Promise<Outcome> {
  await tf.setBackend(backend);
  batchNormTrainingOptions.fused = fused;
  try {
    const layer = tf.layers.batchNormalization({ axis: -1, momentum: c.momentum, epsilon: c.epsilon });
    const x = tf.variable(tf.tensor(c.x, c.shape));
    const r = tf.tensor(c.r, c.shape);
    layer.build(c.shape);
    layer.setWeights(c.weights.map((w) => tf.tensor1d(w)));
    const [gamma, beta] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
    let y: Float32Array = new Float32Array(0);
    const { grads, value } = tf.variableGrads(() => {
      const out = layer.apply(x, { training: true }) as tf.Tensor;
      y = out.dataSync() as Float32Array;
      return tf.sum<tf.Scalar>(tf.mul(out, r));
    }, [x, gamma, beta]);
    const [, , movingMean, movingVariance] = layer.getWeights().map((w) => w.dataSync() as Float32Array);
    const outcome: Outcome = {
      y,
      dx: grads[x.name].dataSync() as Float32Array,
      dgamma: grads[gamma.name].dataSync() as Float32Array,
      dbeta: grads[beta.name].dataSync() as Float32Array,
      movingMean,
      movingVariance,
    };
    tf.dispose([x, r, value, ...Object.values(grads)]);
    for (const w of layer.weights) w.dispose();
    return outcome;
  } finally {
    batchNormTrainingOptions.fused = true;
  }
}

function relativeError(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

test(`fused training BatchNormalization gradients equal tfjs-layers' on cpu (wasm compiled kernel and cpu tf ops, ${CASES} random shapes)`, async () => {
  const rng = new Rng(14);
  for (let i = 0; i < CASES; i++) {
    const c = randomCase(rng, i >= CASES - 2);
    const where = `case ${i}: shape [${c.shape.join(',')}]`;
    const reference = await run('cpu', c, false);
    const fusedBefore = batchNormTrainingCounters.fused;
    const nativeBefore = batchNormTrainingCounters.native;
    const momentsBefore = batchNormTrainingCounters.moments;
    const onWasm = await run('wasm', c, true);
    assert.equal(batchNormTrainingCounters.moments, momentsBefore + 1, `${where}: the compiled moments ran`);
    assert.equal(batchNormTrainingCounters.fused, fusedBefore + 1, `${where}: the fused layer path ran`);
    assert.equal(batchNormTrainingCounters.native, nativeBefore + 1, `${where}: the compiled gradient ran`);
    const onCpu = await run('cpu', c, true);
    assert.equal(batchNormTrainingCounters.native, nativeBefore + 1, `${where}: cpu uses tf ops`);
    for (const [name, got] of [
      ['wasm', onWasm],
      ['cpu', onCpu],
    ] as const) {
      for (const key of ['dx', 'dgamma', 'dbeta'] as const) {
        const err = relativeError(got[key], reference[key]);
        assert.ok(err <= TOLERANCE, `${where}: ${name} ${key} relative error ${err.toExponential(2)}`);
      }
      assert.ok(relativeError(got.y, reference.y) <= TOLERANCE, `${where}: ${name} output`);
    }
    // The forward pass and the moving averages are tfjs-layers' own, bit for bit, on each backend.
    const cpuUnfused = reference;
    assert.deepEqual(onCpu.y, cpuUnfused.y, `${where}: cpu output`);
    assert.deepEqual(onCpu.movingMean, cpuUnfused.movingMean, `${where}: cpu moving mean`);
    assert.deepEqual(onCpu.movingVariance, cpuUnfused.movingVariance, `${where}: cpu moving variance`);
    const wasmUnfused = await run('wasm', c, false);
    assert.deepEqual(onWasm.y, wasmUnfused.y, `${where}: wasm output`);
    assert.deepEqual(onWasm.movingMean, wasmUnfused.movingMean, `${where}: wasm moving mean`);
    assert.deepEqual(onWasm.movingVariance, wasmUnfused.movingVariance, `${where}: wasm moving variance`);
  }
  await tf.setBackend('wasm');
});

test('inference-mode BatchNormalization and other axes keep tfjs-layers’ path', async () => {
  await tf.setBackend('wasm');
  const before = batchNormTrainingCounters.fused;
  const layer = tf.layers.batchNormalization({ axis: -1 });
  const x = tf.randomNormal([2, 3, 3, 4]);
  const y = layer.apply(x, { training: false }) as tf.Tensor;
  const channelsFirst = tf.layers.batchNormalization({ axis: 1 });
  const z = channelsFirst.apply(x, { training: true }) as tf.Tensor;
  assert.equal(batchNormTrainingCounters.fused, before);
  assert.deepEqual(z.shape, [2, 3, 3, 4]);
  tf.dispose([x, y, z]);
  for (const w of [...layer.weights, ...channelsFirst.weights]) w.dispose();
});
