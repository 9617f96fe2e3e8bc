/** Post-training quantization: calibration rules, bias correction, frozen BatchNorm, label-free targets and distillation. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import type { Dataset } from '../src/data/api.js';
import { buildNetwork } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import { batchNormFactors } from '../src/quant/layers.js';
import {
  collectLayerStats,
  equalizeCrossLayer,
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

test('cross-layer equalisation leaves the float network unchanged, evens out pair ranges and fixes an unbalanced grid', () => {
  const net = buildNetwork('cnn-small', { inputShape: [12, 12, 3], numClasses: 4, seed: 7 });
  const rng = new Rng(3);
  // trained-looking BatchNorms, and one input channel of conv2 30x larger than the rest with conv1's
  // BatchNorm shrinking that channel 30x: the same float function, an unbalanced per-channel grid in conv2
  for (const l of net.model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const c = l.getWeights()[0].shape[0];
    const r = (lo: number, hi: number) => tf.tensor1d(Array.from({ length: c }, () => lo + (hi - lo) * rng.next()));
    const gamma = r(0.3, 2);
    l.setWeights([
      l.name === 'conv1_bn'
        ? tf.mul(
            gamma,
            tf
              .oneHot(0, c)
              .mul(1 / 30 - 1)
              .add(1),
          )
        : gamma,
      r(-0.5, 0.5),
      r(-0.3, 0.3),
      r(0.2, 1.5),
    ]);
  }
  const conv2 = net.qlayers[1];
  const k2 = conv2.getKernel();
  const cin = (k2.shape as number[])[2];
  k2.write(tf.mul(k2.read(), tf.reshape(tf.oneHot(0, cin).mul(29).add(1), [1, 1, cin, 1])));
  const x = tf.randomUniform([8, 12, 12, 3], 0, 1, 'float32', 5);
  const predict = () => net.model.predict(x) as tf.Tensor;
  // conv2 alone at 4-bit weights: its per-output-channel grid spans every input channel
  const err4 = (ref: tf.Tensor): number => {
    net.setBits(net.layers.map((_, i) => (i === 1 ? { wBits: 4, aBits: 32 } : { wBits: 32, aBits: 32 })));
    const e = tf.tidy(() => tf.mean(tf.square(tf.sub(predict(), ref))).dataSync()[0]);
    net.setBits(uniformBits(net.layers, 32, 32));
    return e;
  };
  const float0 = predict();
  const before4 = err4(float0);
  const pairs = equalizeCrossLayer(net, { iterations: 4 });
  assert.deepEqual(
    pairs.map((p) => `${p.first}>${p.second}`),
    ['conv1>conv2', 'conv2>conv3', 'conv3>conv4'],
  );
  const float1 = predict();
  const scale = tf.max(tf.abs(float0)).dataSync()[0];
  const diff = tf.max(tf.abs(tf.sub(float1, float0))).dataSync()[0];
  assert.ok(diff <= 1e-4 * scale, `float output moved by ${diff} (outputs up to ${scale})`);
  // the last pair of the last sweep: both sides of every channel have the same range
  const [c3, c4] = [net.qlayers[2], net.qlayers[3]];
  const { k } = batchNormFactors(c3.foldedBn as tf.layers.Layer);
  const r1 = tf.mul(tf.max(tf.abs(c3.getKernel().read()), [0, 1, 2]), tf.abs(k)).dataSync();
  const k4 = batchNormFactors(c4.foldedBn as tf.layers.Layer).k;
  const r2 = tf.max(tf.abs(tf.mul(c4.getKernel().read(), tf.reshape(tf.abs(k4), [1, 1, 1, -1]))), [0, 1, 3]).dataSync();
  r1.forEach((v, i) => assert.ok(Math.abs(v - r2[i]) <= 1e-4 * Math.max(v, r2[i]), `channel ${i}: ${v} vs ${r2[i]}`));
  const after4 = err4(float0);
  assert.ok(after4 < 0.5 * before4, `conv2 at W4: output error ${before4} -> ${after4}`);
});
