/** Post-training quantization: calibration rules, bias correction, frozen BatchNorm, label-free targets and distillation. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import type { Dataset } from '../src/data/api.js';
import { buildNetwork } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import {
  collectLayerStats,
  mseClip,
  percentileOf,
  postTrainingQuantize,
  quantizationMse,
  setBiasCorrection,
} from '../src/quant/ptq.js';
import { applyTargets } from '../src/train/distill.js';
import { applyFineTuneRegime, setBatchNormFrozen } from '../src/train/finetune.js';
import { createTrainer, evaluateModel } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

before(async () => {
  await initBackend('wasm');
});

function randomDataset(n: number, shape: [number, number, number], seed: number): Dataset {
  const rng = new Rng(seed);
  const mk = (k: number) => {
    const px = new Float32Array(k * shape[0] * shape[1] * shape[2]);
    for (let i = 0; i < px.length; i++) px[i] = rng.next();
    return { x: tf.tensor4d(px, [k, ...shape]), y: tf.zeros<tf.Rank.R2>([k, 1]), labels: new Int32Array(k) };
  };
  return {
    name: 'random',
    inputShape: shape,
    numClasses: 0,
    labeled: false,
    train: mk(n),
    val: mk(16),
    test: mk(16),
    source: 'random',
  };
}

test('percentile and MSE clips ignore a single outlier that min-max follows', () => {
  const v = new Float32Array(10_001);
  for (let i = 0; i < 10_000; i++) v[i] = i / 10_000;
  v[10_000] = 3;
  assert.ok(Math.abs(percentileOf(v, 99) - 0.99) < 1e-3);
  const c = mseClip(v, 3, 4, false);
  assert.ok(c > 0.8 && c < 1.5, `mse clip ${c}`);
  assert.ok(quantizationMse(v, c, 4, false) < quantizationMse(v, 3, 4, false));
});

test('bias correction removes most of the mean output shift that 3-bit weights cause', async () => {
  const ds = randomDataset(64, [16, 16, 3], 1);
  const net = buildNetwork('mobilenet-tiny', { inputShape: [16, 16, 3], numClasses: 5, seed: 4 });
  const x = ds.train.x;
  const float = net.model.predict(x) as tf.Tensor;
  net.setBits(uniformBits(net.layers, 3, 32));
  const shift = (): number =>
    tf.tidy(() => tf.mean(tf.abs(tf.mean(tf.sub(net.model.predict(x) as tf.Tensor, float), 0))).dataSync()[0]);
  const before = shift();
  setBiasCorrection(net, collectLayerStats(net, ds.train, { batches: 4, batchSize: 16 }));
  const after = shift();
  assert.ok(after < 0.5 * before, `mean output shift ${before} -> ${after}`);
  setBiasCorrection(net, null);
  assert.ok(Math.abs(shift() - before) < 1e-6);
  float.dispose();
  net.model.dispose();
});

test('with BatchNorm frozen a training pass computes what inference computes (folded statistics, frozen ranges)', async () => {
  const ds = randomDataset(32, [16, 16, 3], 2);
  const net = buildNetwork('mobilenet-tiny', { inputShape: [16, 16, 3], numClasses: 5, seed: 5 });
  // non-trivial moving statistics
  const trainer = createTrainer(net, ds, { lr: 1e-3, batchSize: 16, optimizer: 'adam', seed: 1 });
  ds.train.y.dispose();
  ds.train.y = tf
    .oneHot(
      tf.tensor1d(
        new Int32Array(32).map((_, i) => i % 5),
        'int32',
      ),
      5,
    )
    .toFloat() as tf.Tensor2D;
  await trainer.trainSteps(4);
  trainer.dispose();
  net.setBits(uniformBits(net.layers, 8, 8));
  await postTrainingQuantize(net, ds.train, { batches: 2, batchSize: 16 });
  const xb = tf.slice(ds.train.x, [0, 0, 0, 0], [8, -1, -1, -1]);
  const inference = net.model.predict(xb) as tf.Tensor;
  const trainingPass = () =>
    tf.tidy(
      () => tf.max(tf.abs(tf.sub(net.model.apply(xb, { training: true }) as tf.Tensor, inference))).dataSync()[0],
    );
  applyFineTuneRegime(net);
  const frozen = trainingPass();
  // equal up to float rounding, which can move a value across an 8-bit activation step
  assert.ok(frozen < 5e-3, `frozen: max difference ${frozen}`);
  setBatchNormFrozen(net, false); // BatchNorm on batch statistics again (ranges stay frozen)
  const unfrozen = trainingPass();
  assert.ok(unfrozen > 20 * frozen, `unfrozen: max difference ${unfrozen}, frozen ${frozen}`);
  xb.dispose();
  inference.dispose();
  net.model.dispose();
});

test('label-free data: targets are the float network top-1 (agreement 100% at float), training targets are its softened probabilities', async () => {
  const ds = randomDataset(32, [16, 16, 3], 3);
  const net = buildNetwork('mobilenet-tiny', { inputShape: [16, 16, 3], numClasses: 5, seed: 6 });
  const applied = applyTargets(net, ds, { temperature: 2 });
  assert.equal(applied.metric, 'agreement');
  assert.equal(applied.distill, true);
  assert.equal(ds.numClasses, 5);
  assert.equal(ds.metric, 'agreement');
  assert.equal((await evaluateModel(net.model, ds.test)).accuracy, 1);
  const rows = ds.train.y.sum(1).dataSync();
  for (const r of rows) assert.ok(Math.abs(r - 1) < 1e-5);
  const maxProb = ds.train.y.max().dataSync()[0];
  assert.ok(maxProb < 1 - 1e-3, 'soft targets');
  // the distillation loss of the float network against its own soft targets is T^2 * their entropy (KL = 0)
  const T = 2;
  const entropy = tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(ds.train.y, tf.log(ds.train.y)), 1))).dataSync()[0]);
  const trainer = createTrainer(net, ds, { lr: 1e-12, batchSize: 32, optimizer: 'sgd', seed: 1, temperature: T });
  setBatchNormFrozen(net, true);
  const stats = await trainer.trainSteps(1);
  assert.ok(
    Math.abs(stats.loss - T * T * entropy) < 1e-3 * T * T * entropy,
    `loss ${stats.loss} vs T^2 H ${T * T * entropy}`,
  );
  assert.equal(stats.accuracy, 1);
  trainer.dispose();
  net.model.dispose();
});

test('a batch split into chunks gives the same update as one pass (BatchNorm frozen)', async () => {
  const run = async (microBatch: number): Promise<Float32Array> => {
    const ds = randomDataset(16, [16, 16, 3], 4);
    const net = buildNetwork('mobilenet-tiny', { inputShape: [16, 16, 3], numClasses: 5, seed: 7 });
    applyTargets(net, ds, {});
    setBatchNormFrozen(net, true);
    const trainer = createTrainer(net, ds, {
      lr: 1e-2,
      batchSize: 16,
      optimizer: 'sgd',
      seed: 1,
      temperature: 2,
      microBatch,
    });
    await trainer.trainSteps(1);
    trainer.dispose();
    const w = Float32Array.from(net.qlayers[0]?.getKernel().read().dataSync() ?? []);
    net.model.dispose();
    return w;
  };
  const whole = await run(16);
  const chunked = await run(4);
  let diff = 0;
  for (let i = 0; i < whole.length; i++) diff = Math.max(diff, Math.abs(whole[i] - chunked[i]));
  assert.ok(diff < 1e-5, `max weight difference ${diff}`);
});
