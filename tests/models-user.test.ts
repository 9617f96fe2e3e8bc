/** A user's own tfjs layers model loaded from disk and run quantized. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { loadInventory, loadUserModel, writeModelFiles } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';

before(async () => {
  await initBackend('wasm');
});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'bitalloc-user-'));
}

type Sym = tf.SymbolicTensor;

/** Functional model with BN, ReLU6 (both spellings), ZeroPadding2D, Add, Dropout, DepthwiseConv2D, pooling, Dense. */
function functionalModel(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const x = tf.input({ shape: [12, 12, 3], name: 'image' });
  let y = tf.layers.zeroPadding2d({ padding: 1, name: 'pad' }).apply(x) as Sym;
  y = tf.layers
    .conv2d({ filters: 8, kernelSize: 3, name: 'stem', useBias: false, kernelInitializer: init(1) })
    .apply(y) as Sym;
  y = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(y) as Sym;
  y = tf.layers.reLU({ maxValue: 6, name: 'stem_relu6' }).apply(y) as Sym;
  let r = tf.layers
    .depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw', depthwiseInitializer: init(2) })
    .apply(y) as Sym;
  r = tf.layers.batchNormalization({ name: 'dw_bn' }).apply(r) as Sym;
  r = tf.layers.activation({ activation: 'relu6', name: 'dw_relu6' }).apply(r) as Sym;
  r = tf.layers.conv2d({ filters: 8, kernelSize: 1, name: 'pw', kernelInitializer: init(3) }).apply(r) as Sym;
  y = tf.layers.add({ name: 'add' }).apply([y, r]) as Sym;
  y = tf.layers
    .conv2d({ filters: 16, kernelSize: 3, strides: 2, activation: 'relu', name: 'conv2', kernelInitializer: init(4) })
    .apply(y) as Sym;
  y = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(y) as Sym;
  y = tf.layers.flatten({ name: 'flat' }).apply(y) as Sym;
  y = tf.layers.dropout({ rate: 0.3, name: 'drop' }).apply(y) as Sym;
  y = tf.layers.dense({ units: 32, activation: 'relu', name: 'fc1', kernelInitializer: init(5) }).apply(y) as Sym;
  y = tf.layers.dense({ units: 10, name: 'fc2', kernelInitializer: init(6) }).apply(y) as Sym;
  return tf.model({ inputs: x, outputs: y, name: 'user_net' });
}

/** Non-trivial BatchNorm statistics so folding is exercised. */
function randomizeBatchNorms(model: tf.LayersModel): void {
  let s = 100;
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const [g, b, m, v] = l.getWeights() as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    l.setWeights([
      tf.randomUniform(g.shape, 0.5, 1.5, 'float32', s++),
      tf.randomUniform(b.shape, -0.2, 0.2, 'float32', s++),
      tf.randomUniform(m.shape, -0.2, 0.2, 'float32', s++),
      tf.randomUniform(v.shape, 0.5, 1.5, 'float32', s++),
    ]);
  }
}

function argmax(t: tf.Tensor): Int32Array {
  return tf.tidy(() => tf.argMax(t, -1).dataSync() as Int32Array);
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('a saved functional model (BN, ReLU6, ZeroPadding2D, Add, Dropout, DepthwiseConv2D) runs quantized at W8A8 with >= 99% top-1 agreement', async () => {
  const src = functionalModel();
  randomizeBatchNorms(src);
  const dir = tmp();
  await writeModelFiles(src, dir);
  const net = await loadUserModel(join(dir, 'model.json'));
  assert.deepEqual(
    net.layers.map((l) => `${l.name}:${l.kind}`),
    ['stem:conv', 'dw:depthwise', 'pw:conv', 'conv2:conv', 'fc1:dense', 'fc2:dense'],
  );
  assert.equal(net.layers[0]?.biasParams, 2 * 8, 'stem: folded BN, no bias');
  assert.equal(net.layers[2]?.liveElements, 12 * 12 * 8, 'the Add shortcut is live while pw runs');

  const x = tf.randomUniform([300, 12, 12, 3], 0, 1, 'float32', 7);
  const yFloat = src.predict(x) as tf.Tensor;
  // at 32 bits the rebuilt network is the user's network
  const y32 = net.model.predict(x) as tf.Tensor;
  assert.ok(maxAbsDiff(yFloat, y32) < 1e-4, `rebuilt float network differs by ${maxAbsDiff(yFloat, y32)}`);

  net.setBits(uniformBits(net.layers, 8, 8));
  net.calibrate(x.slice(0, 100));
  const y8 = net.model.predict(x) as tf.Tensor;
  const a = argmax(yFloat);
  const b = argmax(y8);
  const agree = a.reduce((n, v, i) => n + (v === b[i] ? 1 : 0), 0) / a.length;
  if (process.env.BITALLOC_TEST_VERBOSE) console.log(`W8A8 top-1 agreement ${agree}`);
  assert.ok(agree >= 0.99, `top-1 agreement ${agree}`);
  assert.ok(maxAbsDiff(yFloat, y8) > 0, 'W8A8 output identical to float: not quantized');
  // the measure discriminates: 2-bit weights and activations lose agreement
  net.setBits(uniformBits(net.layers, 2, 2));
  const b2 = argmax(net.model.predict(x) as tf.Tensor);
  const agree2 = a.reduce((n, v, i) => n + (v === b2[i] ? 1 : 0), 0) / a.length;
  if (process.env.BITALLOC_TEST_VERBOSE) console.log(`W2A2 top-1 agreement ${agree2}`);
  assert.ok(agree2 < agree, `W2A2 agreement ${agree2} not below W8A8 ${agree}`);
  net.model.dispose();
  src.dispose();
});

test('a Sequential model loads too, from its directory, and its inventory is available', async () => {
  const src = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [10, 10, 1], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
      tf.layers.averagePooling2d({ poolSize: 2, name: 'p1' }),
      tf.layers.flatten({ name: 'f' }),
      tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }),
    ],
  });
  const dir = tmp();
  await writeModelFiles(src, dir);
  const inv = await loadInventory(dir);
  assert.deepEqual(
    inv.map((l) => [l.name, l.kind, l.params, l.macs]),
    [
      ['c1', 'conv', 36, 8 * 8 * 4 * 9],
      ['out', 'dense', 64 * 3, 64 * 3],
    ],
  );
  const net = await loadUserModel(dir);
  const x = tf.randomUniform([5, 10, 10, 1], 0, 1, 'float32', 3);
  assert.ok(maxAbsDiff(src.predict(x) as tf.Tensor, net.model.predict(x) as tf.Tensor) < 1e-5);
  net.model.dispose();
  src.dispose();
});

test('signedness of each quantized input follows the layer that feeds it', async () => {
  const x = tf.input({ shape: [6, 6, 2] });
  const a = tf.layers.conv2d({ filters: 3, kernelSize: 3, name: 'a' }).apply(x) as Sym; // linear output
  const b = tf.layers.conv2d({ filters: 3, kernelSize: 1, name: 'b', activation: 'relu' }).apply(a) as Sym;
  const c = tf.layers.conv2d({ filters: 3, kernelSize: 1, name: 'c' }).apply(b) as Sym;
  const src = tf.model({ inputs: x, outputs: c });
  const dir = tmp();
  await writeModelFiles(src, dir);
  const net = await loadUserModel(dir);
  assert.deepEqual(
    net.qlayers.map((l) => [l.name, l.signed]),
    [
      ['a', false], // the network input (0..1 data)
      ['b', true], // a linear conv's output
      ['c', false], // after ReLU
    ],
  );
  net.model.dispose();
  src.dispose();
});

test('an unsupported layer is a user error naming the layer and its class', async () => {
  const src = tf.sequential({
    layers: [
      tf.layers.separableConv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, name: 'sep' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2 }),
    ],
  });
  const dir = tmp();
  await writeModelFiles(src, dir);
  await assert.rejects(loadUserModel(dir), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /layer 'sep' has unsupported class 'SeparableConv2D'/);
    assert.match(e.message, /model\.json/);
    return true;
  });
  src.dispose();
});

test('missing or corrupt model files are user errors naming the file', async () => {
  const src = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, name: 'd' })] });
  const dir = tmp();
  await writeModelFiles(src, dir);
  const json = join(dir, 'model.json');
  const shard = join(dir, 'weights.bin');

  await assert.rejects(
    loadUserModel(join(dir, 'nothing.json')),
    (e: unknown) => e instanceof UserError && /nothing\.json/.test(e.message) && /not found/.test(e.message),
  );

  const bytes = readFileSync(shard);
  truncateSync(shard, bytes.length - 4);
  await assert.rejects(
    loadUserModel(json),
    (e: unknown) => e instanceof UserError && /weights\.bin/.test(e.message) && /truncated or corrupt/.test(e.message),
  );
  rmSync(shard);
  await assert.rejects(
    loadUserModel(json),
    (e: unknown) => e instanceof UserError && /weights\.bin/.test(e.message) && /not found/.test(e.message),
  );
  writeFileSync(shard, bytes);

  const text = readFileSync(json, 'utf8');
  writeFileSync(json, text.slice(0, text.length / 2));
  await assert.rejects(
    loadUserModel(json),
    (e: unknown) => e instanceof UserError && /model\.json/.test(e.message) && /not valid JSON/.test(e.message),
  );
  writeFileSync(json, JSON.stringify({ weightsManifest: [] }));
  await assert.rejects(loadUserModel(json), (e: unknown) => e instanceof UserError && /modelTopology/.test(e.message));
  src.dispose();
});
