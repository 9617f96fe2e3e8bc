/** Quantized layers in a network: run-time bits, gradients, BatchNorm folding, checkpoints. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, tf } from '../src/backend/index.js';
import { buildNetwork } from '../src/models/index.js';
import { uniformBits, type BitConfig } from '../src/models/layer-info.js';
import { QConv2D, loadNetwork, saveNetwork, type QuantizerKind } from '../src/quant/index.js';

before(async () => {
  await initBackend('wasm');
});

const SHAPE: [number, number, number] = [12, 12, 1];

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function randomizeBatchNorms(model: tf.LayersModel, seed: number): void {
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const [g, b, m, v] = l.getWeights() as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    l.setWeights([
      tf.randomUniform(g.shape, -1.5, 1.5, 'float32', seed),
      tf.randomUniform(b.shape, -0.5, 0.5, 'float32', seed + 1),
      tf.randomUniform(m.shape, -0.3, 0.3, 'float32', seed + 2),
      tf.randomUniform(v.shape, 0.5, 2, 'float32', seed + 3),
    ]);
  }
}

test("changing one layer's bits changes its output and nothing upstream", () => {
  const net = buildNetwork('lenet5', { inputShape: SHAPE, numClasses: 10, seed: 3 });
  const probe = tf.model({
    inputs: net.model.inputs,
    outputs: net.model.layers.slice(1).map((l) => l.output as tf.SymbolicTensor),
  });
  const x = tf.randomUniform([4, ...SHAPE], 0, 1, 'float32', 1);
  const before = probe.predict(x) as tf.Tensor[];
  const bits: BitConfig = uniformBits(net.layers, 32, 32);
  bits[1] = { wBits: 3, aBits: 4 }; // conv2
  net.setBits(bits);
  assert.deepEqual(net.getBits(), bits);
  const after = probe.predict(x) as tf.Tensor[];
  const names = net.model.layers.slice(1).map((l) => l.name);
  const at = names.indexOf('conv2');
  names.forEach((name, i) => {
    const d = maxAbsDiff(before[i], after[i]);
    if (i < at) assert.equal(d, 0, `${name} (upstream of conv2) changed by ${d}`);
    if (i === at) assert.ok(d > 1e-3, `conv2's output did not change (${d})`);
  });
  net.model.dispose();
});

test('bits of 32 mean float: the network at 32 bits equals the network before any setBits', () => {
  const net = buildNetwork('cnn-small', { inputShape: SHAPE, numClasses: 10, seed: 4 });
  const x = tf.randomUniform([3, ...SHAPE], 0, 1, 'float32', 2);
  const y0 = net.model.predict(x) as tf.Tensor;
  net.setBits(uniformBits(net.layers, 4, 4));
  net.setBits(uniformBits(net.layers, 32, 32));
  assert.equal(maxAbsDiff(y0, net.model.predict(x) as tf.Tensor), 0);
  net.model.dispose();
});

for (const quantizer of ['ste', 'lsq', 'pact'] as QuantizerKind[]) {
  test(`${quantizer}: gradients follow the bits set at run time (tf.variableGrads path)`, () => {
    const net = buildNetwork('lenet5', { inputShape: SHAPE, numClasses: 10, seed: 5, quantizer });
    const x = tf.randomUniform([8, ...SHAPE], 0, 1, 'float32', 3);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10);
    const kernel = (net.model.getLayer('fc1') as QConv2D).getKernel();
    const grad = (): tf.Tensor =>
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() =>
          tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(y, net.model.apply(x, { training: true }) as tf.Tensor),
        );
        const g = grads[kernel.name];
        assert.ok(g, 'no gradient for fc1/kernel');
        return tf.keep(g.clone());
      });
    const gFloat = grad();
    net.setBits(uniformBits(net.layers, 2, 2));
    const g2 = grad();
    assert.ok(maxAbsDiff(gFloat, g2) > 1e-6, 'the gradient at W2A2 equals the float gradient');
    assert.ok(tf.tidy(() => tf.sum(tf.abs(g2)).dataSync()[0]) > 0, 'zero gradient at W2A2');
    net.model.dispose();
  });
}

test('model.fit sees bits changed after compile (no recompile)', async () => {
  const run = async (bits: number): Promise<tf.Tensor> => {
    const net = buildNetwork('lenet5', { inputShape: SHAPE, numClasses: 10, seed: 6 });
    net.model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
    net.setBits(uniformBits(net.layers, bits, bits));
    const x = tf.randomUniform([8, ...SHAPE], 0, 1, 'float32', 4);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10).toFloat();
    await net.model.fit(x, tf.softmax(y), { epochs: 1, batchSize: 8, verbose: 0 });
    const w = (net.model.getLayer('fc2') as QConv2D).getKernel().read().clone();
    net.model.dispose();
    return w;
  };
  const wFloat = await run(32);
  const w2 = await run(2);
  assert.ok(maxAbsDiff(wFloat, w2) > 1e-7, 'fit at W2A2 updated the weights exactly as in float');
});

test('STE activation clip is a running max kept in a non-trainable weight, updated only in training', () => {
  const net = buildNetwork('lenet5', { inputShape: SHAPE, numClasses: 10, seed: 7 });
  net.setBits(uniformBits(net.layers, 8, 8));
  const conv1 = net.model.getLayer('conv1');
  const clipVar = conv1.nonTrainableWeights.find((w) => w.name.includes('act_clip'));
  assert.ok(clipVar, 'conv1 has no act_clip weight');
  const x1 = tf.fill([2, ...SHAPE], 0.5);
  const x2 = tf.fill([2, ...SHAPE], 1.0);
  net.model.apply(x1, { training: true });
  assert.ok(Math.abs(clipVar.read().dataSync()[0] - 0.5) < 1e-6);
  net.model.apply(x2, { training: true });
  assert.ok(Math.abs(clipVar.read().dataSync()[0] - (0.9 * 0.5 + 0.1 * 1)) < 1e-6, 'EMA of batch max');
  net.model.predict(tf.fill([2, ...SHAPE], 3));
  assert.ok(Math.abs(clipVar.read().dataSync()[0] - 0.55) < 1e-6, 'inference changed the clip');
  net.model.dispose();
});

test('inference folds each BatchNorm into the conv before it and matches the unfolded network', async () => {
  const net = buildNetwork('resnet8', { inputShape: [8, 8, 3], numClasses: 10, seed: 8 });
  randomizeBatchNorms(net.model, 20);
  const dir = mkdtempSync(join(tmpdir(), 'bitalloc-fold-'));
  await saveNetwork(net, dir);
  // the same weights as a plain tfjs model: BatchNorm layers run unfolded
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
  };
  const plain = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0]?.weights,
      weightData: new Uint8Array(readFileSync(join(dir, 'weights.bin'))).buffer,
    }),
  );
  const x = tf.randomUniform([4, 8, 8, 3], 0, 1, 'float32', 9);
  const folded = net.model.predict(x) as tf.Tensor;
  const unfolded = plain.predict(x) as tf.Tensor;
  const scale = tf.tidy(() => tf.max(tf.abs(unfolded)).dataSync()[0]);
  assert.ok(
    maxAbsDiff(folded, unfolded) <= 1e-4 * Math.max(1, scale),
    `folded vs unfolded differ by ${maxAbsDiff(folded, unfolded)}`,
  );
  assert.ok(
    net.layers.every((l) => l.kind === 'dense' || l.biasParams === 2 * l.outChannels),
    'every conv has a folded BN (2 params per channel)',
  );
  net.model.dispose();
  plain.dispose();
});

test('saveNetwork / loadNetwork restore weights, bits, quantizer state and meta', async () => {
  for (const quantizer of ['ste', 'lsq'] as QuantizerKind[]) {
    const net = buildNetwork('mobilenet-tiny', { inputShape: [8, 8, 3], numClasses: 5, seed: 9, quantizer });
    randomizeBatchNorms(net.model, 30);
    const bits = net.layers.map((_, i) => ({ wBits: [2, 4, 8, 32][i % 4], aBits: [8, 3, 32, 4][i % 4] }));
    net.setBits(bits);
    const x = tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 10);
    net.model.apply(x, { training: true }); // sets the activation statistics
    const y0 = net.model.predict(x) as tf.Tensor;
    const dir = mkdtempSync(join(tmpdir(), 'bitalloc-ckpt-'));
    await saveNetwork(net, dir, { epoch: 3, note: 'test' });
    const { net: back, meta } = await loadNetwork(dir);
    assert.deepEqual(meta, { epoch: 3, note: 'test' });
    assert.deepEqual(back.getBits(), bits);
    assert.deepEqual(back.layers, net.layers);
    assert.equal(maxAbsDiff(y0, back.model.predict(x) as tf.Tensor), 0, `${quantizer}: outputs differ after reload`);
    net.model.dispose();
    back.model.dispose();
  }
});

test('forward passes do not leak tensors (training and inference)', () => {
  const net = buildNetwork('resnet8', { inputShape: [8, 8, 3], numClasses: 10, seed: 10, quantizer: 'lsq' });
  net.setBits(uniformBits(net.layers, 4, 4));
  const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 11);
  const opt = tf.train.sgd(0.01);
  const step = (): void => {
    tf.tidy(() => {
      opt.minimize(() => tf.mean<tf.Scalar>(net.model.apply(x, { training: true }) as tf.Tensor));
      net.model.predict(x);
    });
  };
  step();
  const n = tf.memory().numTensors;
  step();
  step();
  assert.equal(tf.memory().numTensors, n);
  net.model.dispose();
});
