/**
 * The fused Adam (adam.ts): on wasm, weights and moments bit-identical to tf.train.adam's after
 * several steps (odd sizes, a changing learning rate, a variable without gradient), its state
 * saved and restored like tfjs's, and a trainer's weights identical with the fused step on and off.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import { adamCounters, adamOptions, fusedAdam } from '../src/backend/kernels/index.js';
import type { Dataset } from '../src/data/api.js';
import { buildNetwork } from '../src/models/index.js';
import { createTrainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

before(async () => {
  await initBackend('wasm');
});

function randomArray(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * (2 * rng.next() - 1);
  return a;
}

const SHAPES = [[1], [3], [7, 5], [3, 3, 4, 9], [129]];
const STEPS = 6;

/** Runs STEPS updates with `make`'s optimizer from fixed weights and gradients; returns weights then moments. */
async function trajectory(make: (lr: number) => tf.Optimizer, tag: string): Promise<Float32Array[]> {
  const rng = new Rng(7);
  const vars = SHAPES.map((s, i) =>
    tf.variable(
      tf.tensor(
        randomArray(
          rng,
          s.reduce((a, b) => a * b, 1),
        ),
        s,
      ),
      true,
      `adam_${tag}_${i}`,
    ),
  );
  const opt = make(1e-2);
  for (let step = 0; step < STEPS; step++) {
    // The trainer changes the learning rate between steps (cosine decay).
    (opt as unknown as { learningRate: number }).learningRate = 1e-2 / (1 + step);
    const grads: tf.NamedTensorMap = {};
    vars.forEach((v, i) => {
      // The last variable gets no gradient on odd steps.
      if (i === vars.length - 1 && step % 2 === 1) return;
      grads[v.name] = tf.tensor(randomArray(rng, v.size, step === 2 ? 1e-6 : 1), v.shape);
    });
    opt.applyGradients(grads);
    tf.dispose(Object.values(grads));
  }
  const weights = await opt.getWeights();
  const out = [
    ...vars.map((v) => v.dataSync() as Float32Array),
    ...weights.map((w) => w.tensor.dataSync() as Float32Array),
  ];
  tf.dispose(vars);
  opt.dispose();
  return out;
}

test('fused Adam on wasm: weights and moments bit-identical to tf.train.adam after several steps', async () => {
  await tf.setBackend('wasm');
  const before = adamCounters.fused;
  const fused = await trajectory((lr) => fusedAdam(lr), 'fused');
  assert.ok(adamCounters.fused > before, 'the fused kernel ran');
  const reference = await trajectory((lr) => tf.train.adam(lr), 'tfjs');
  assert.equal(fused.length, reference.length);
  fused.forEach((a, i) => assert.deepEqual(a, reference[i], `tensor ${i}`));
  // And not trivially: the weights moved.
  const rng = new Rng(7);
  assert.notDeepEqual(fused[0], randomArray(rng, 1));
});

function syntheticDataset(n: number): Dataset {
  const rng = new Rng(5);
  const x = tf.tensor4d(randomArray(rng, n * 28 * 28), [n, 28, 28, 1]);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D);
  const split = { x, y, labels };
  return {
    name: 'synthetic',
    inputShape: [28, 28, 1],
    numClasses: 10,
    train: split,
    val: split,
    test: split,
    source: 'random',
  };
}

test('a trainer gives identical weights with the fused Adam step on and off (cnn-small, 3 steps)', async () => {
  await tf.setBackend('wasm');
  const ds = syntheticDataset(32);
  const { x, y } = ds.train;
  const weightsAfter = async (fused: boolean): Promise<Float32Array[]> => {
    adamOptions.fused = fused;
    try {
      const net = buildNetwork('cnn-small', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
      const trainer = createTrainer(net, ds, { lr: 1e-3, batchSize: 16, optimizer: 'adam', seed: 1, threads: 1 });
      await trainer.trainSteps(3);
      const out = net.model.getWeights().map((w) => w.dataSync() as Float32Array);
      trainer.dispose();
      net.model.dispose();
      return out;
    } finally {
      adamOptions.fused = true;
    }
  };
  const before = adamCounters.fused;
  const on = await weightsAfter(true);
  assert.ok(adamCounters.fused > before, 'the fused kernel ran');
  const off = await weightsAfter(false);
  assert.equal(on.length, off.length);
  on.forEach((a, i) => assert.deepEqual(a, off[i], `weight ${i}`));
  tf.dispose([x, y]);
});

test('a resumed trainer with the fused Adam ends with bit-identical weights (cnn-small, 2 + 2 steps)', async () => {
  await tf.setBackend('wasm');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const ds = syntheticDataset(32);
  const opts = { lr: 1e-3, batchSize: 16, optimizer: 'adam' as const, seed: 1, threads: 1 };
  const dir = mkdtempSync(join(tmpdir(), 'bitalloc-adam-'));
  try {
    const net = buildNetwork('cnn-small', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const trainer = createTrainer(net, ds, opts);
    await trainer.trainSteps(2);
    await trainer.saveState(dir);
    const saved = net.model.getWeights().map((w) => w.clone());
    await trainer.trainSteps(2);
    const straight = net.model.getWeights().map((w) => w.dataSync() as Float32Array);
    trainer.dispose();
    net.model.dispose();

    const net2 = buildNetwork('cnn-small', { inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    net2.model.setWeights(saved);
    const trainer2 = createTrainer(net2, ds, { ...opts, seed: 7 });
    await trainer2.loadState(dir);
    await trainer2.trainSteps(2);
    const resumed = net2.model.getWeights().map((w) => w.dataSync() as Float32Array);
    trainer2.dispose();
    net2.model.dispose();
    tf.dispose(saved);
    straight.forEach((a, i) => assert.deepEqual(resumed[i], a, `weight ${i}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    tf.dispose([ds.train.x, ds.train.y]);
  }
});
