/** The trainer: minibatch cycling, no tensor leaks, determinism, evaluation, BatchNorm mode, schedules. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import type { Dataset, Split } from '../src/data/api.js';
import { createTrainer, outputsProbabilities } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

before(async () => {
  await initBackend('wasm');
});

/** Two Gaussian blobs per class on a 6x6x1 "image": class k has mean +1 on row k. */
function blobs(n: number, seed: number, classes = 3): Split {
  const rng = new Rng(seed);
  const px = new Float32Array(n * 36);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % classes;
    labels[i] = k;
    for (let j = 0; j < 36; j++) px[i * 36 + j] = 0.3 * rng.normal() + (Math.floor(j / 6) === k ? 1 : 0);
  }
  return {
    x: tf.tensor4d(px, [n, 6, 6, 1]),
    y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classes).toFloat()) as tf.Tensor2D,
    labels,
  };
}

function dataset(nTrain = 96): Dataset {
  return {
    name: 'blobs',
    inputShape: [6, 6, 1],
    numClasses: 3,
    train: blobs(nTrain, 1),
    val: blobs(30, 2),
    test: blobs(30, 3),
    source: 'test',
  };
}

function model(opts: { bn?: boolean; softmax?: boolean; seed?: number } = {}): tf.LayersModel {
  const s = opts.seed ?? 1;
  const layers: tf.layers.Layer[] = [
    tf.layers.conv2d({
      inputShape: [6, 6, 1],
      filters: 4,
      kernelSize: 3,
      kernelInitializer: tf.initializers.glorotUniform({ seed: s }),
    }),
  ];
  if (opts.bn) layers.push(tf.layers.batchNormalization({ name: 'bn' }));
  layers.push(
    tf.layers.reLU(),
    tf.layers.flatten(),
    tf.layers.dense({
      units: 3,
      activation: opts.softmax ? 'softmax' : 'linear',
      kernelInitializer: tf.initializers.glorotUniform({ seed: s + 1 }),
    }),
  );
  return tf.sequential({ layers });
}

test('training lowers the loss and raises accuracy on a separable task', async () => {
  const ds = dataset();
  const net = { model: model() };
  const tr = createTrainer(net, ds, { lr: 0.01, batchSize: 16, optimizer: 'adam', seed: 1 });
  const before = await tr.evaluate('test');
  await tr.trainEpochs(5);
  const after = await tr.evaluate('test');
  assert.ok(after.loss < before.loss * 0.5, `loss ${before.loss} -> ${after.loss}`);
  assert.ok(after.accuracy >= 0.9, `accuracy ${after.accuracy}`);
  assert.ok(tr.samplesPerSec > 0);
  tr.dispose();
});

test('trainSteps(k) runs k minibatches, continues the shuffle across calls and leaks no tensors', async () => {
  const ds = dataset(100);
  const tr = createTrainer({ model: model({ bn: true }) }, ds, { lr: 0.01, batchSize: 16, optimizer: 'adam', seed: 4 });
  assert.equal(tr.stepsPerEpoch, 6);
  await tr.trainSteps(1); // creates the optimizer's slots
  const n0 = tf.memory().numTensors;
  const s = await tr.trainSteps(7);
  assert.equal(s.steps, 7);
  assert.equal(s.samples, 7 * 16);
  assert.equal(tr.stepsDone, 8);
  await tr.evaluate('val');
  await tr.evaluate(ds.test, { limit: 10 });
  await tr.trainEpochs(1, () => undefined, { schedule: 'cosine' });
  assert.equal(tf.memory().numTensors, n0);
  tr.dispose();
});

test('the same seeds give the same losses; another shuffle seed gives others', async () => {
  const ds = dataset();
  const losses = async (shuffleSeed: number) => {
    const tr = createTrainer({ model: model({ seed: 7 }) }, ds, {
      lr: 0.01,
      batchSize: 8,
      optimizer: 'sgd',
      seed: shuffleSeed,
    });
    const out: number[] = [];
    for (let i = 0; i < 4; i++) out.push((await tr.trainSteps(1)).loss);
    tr.dispose();
    return out;
  };
  const a = await losses(3);
  const b = await losses(3);
  const c = await losses(4);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('evaluate() reports the accuracy and mean cross-entropy of model.predict', async () => {
  const ds = dataset();
  const m = model();
  const tr = createTrainer({ model: m }, ds, { lr: 0.01, batchSize: 16, optimizer: 'adam', seed: 1, evalBatchSize: 7 });
  await tr.trainSteps(3);
  const r = await tr.evaluate('test');
  const [acc, loss] = tf.tidy(() => {
    const logits = m.predict(ds.test.x) as tf.Tensor;
    const a = tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), tf.tensor1d(ds.test.labels, 'int32')), 'float32'));
    const l = tf.losses.softmaxCrossEntropy(ds.test.y, logits);
    return [a.dataSync()[0], l.dataSync()[0]];
  });
  assert.equal(r.samples, 30);
  assert.ok(Math.abs(r.accuracy - acc) < 1e-6, `${r.accuracy} vs ${acc}`);
  assert.ok(Math.abs(r.loss - loss) < 1e-4, `${r.loss} vs ${loss}`);
  tr.dispose();
});

test('a model ending in softmax is trained on its probabilities', async () => {
  const ds = dataset();
  const m = model({ softmax: true });
  assert.equal(outputsProbabilities(m), true);
  assert.equal(outputsProbabilities(model()), false);
  const tr = createTrainer({ model: m }, ds, { lr: 0.01, batchSize: 16, optimizer: 'adam', seed: 1 });
  const r0 = await tr.evaluate('test');
  const expected = tf.tidy(() => {
    const p = m.predict(ds.test.x) as tf.Tensor;
    return tf.mean(tf.neg(tf.sum(tf.mul(ds.test.y, tf.log(tf.clipByValue(p, 1e-7, 1))), -1))).dataSync()[0];
  });
  assert.ok(Math.abs(r0.loss - expected) < 1e-4);
  await tr.trainEpochs(4);
  assert.ok((await tr.evaluate('test')).loss < r0.loss);
  tr.dispose();
});

test('BatchNorm runs in training mode while training: its moving statistics move', async () => {
  const ds = dataset();
  const m = model({ bn: true });
  const bn = m.getLayer('bn');
  const movingMean = () => Array.from(bn.getWeights()[2].dataSync());
  const m0 = movingMean();
  const tr = createTrainer({ model: m }, ds, { lr: 0.01, batchSize: 16, optimizer: 'adam', seed: 1 });
  await tr.evaluate('test');
  assert.deepEqual(movingMean(), m0, 'evaluation must not touch the statistics');
  await tr.trainSteps(3);
  assert.notDeepEqual(movingMean(), m0);
  tr.dispose();
});

test('a cosine schedule restores the base learning rate; setLearningRate changes it', async () => {
  const ds = dataset(32);
  for (const optimizer of ['adam', 'sgd', 'momentum'] as const) {
    const tr = createTrainer({ model: model() }, ds, { lr: 0.05, batchSize: 16, optimizer, seed: 1 });
    const seen: number[] = [];
    await tr.trainEpochs(2, () => seen.push(tr.learningRate), { schedule: 'cosine' });
    assert.equal(seen.length, 4);
    assert.ok(seen[0] < 0.05 && seen[3] <= 0.0005 + 1e-12, `${optimizer}: ${seen.join(', ')}`);
    assert.equal(tr.learningRate, 0.05);
    tr.setLearningRate(0.01);
    assert.equal(tr.learningRate, 0.01);
    tr.dispose();
  }
});

test('saveState/loadState: a resumed trainer continues with exactly the same losses', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const ds = dataset(70);
  for (const optimizer of ['adam', 'momentum'] as const) {
    const m = model({ bn: true, seed: 3 });
    const tr = createTrainer({ model: m }, ds, { lr: 0.02, batchSize: 16, optimizer, seed: 9 });
    await tr.trainSteps(6); // crosses an epoch boundary (4 steps per epoch)
    const dir = mkdtempSync(join(tmpdir(), 'bitalloc-trainer-'));
    await tr.saveState(dir);
    const weights = m.getWeights().map((w) => w.clone());
    const continued: number[] = [];
    for (let i = 0; i < 5; i++) continued.push((await tr.trainSteps(1)).loss);

    const m2 = model({ bn: true, seed: 4 });
    m2.setWeights(weights);
    const tr2 = createTrainer({ model: m2 }, ds, { lr: 0.02, batchSize: 16, optimizer, seed: 123 });
    await tr2.loadState(dir);
    assert.equal(tr2.stepsDone, 6);
    const resumed: number[] = [];
    for (let i = 0; i < 5; i++) resumed.push((await tr2.trainSteps(1)).loss);
    for (let i = 0; i < 5; i++)
      assert.ok(Math.abs(continued[i] - resumed[i]) < 1e-5, `${optimizer} step ${i}: ${continued[i]} vs ${resumed[i]}`);

    const other = createTrainer({ model: m2 }, ds, { lr: 0.02, batchSize: 8, optimizer, seed: 1 });
    await assert.rejects(other.loadState(dir), /batch size 16, this trainer has 8/);
    writeFileSync(join(dir, 'optimizer.bin'), 'x');
    await assert.rejects(tr2.loadState(dir), /optimizer\.bin: holds 1 bytes/);
    for (const t of [tr, tr2, other]) t.dispose();
    for (const w of weights) w.dispose();
  }
});
