/** The model zoo, the layer inventory, and the `models` / `inspect` commands. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { initBackend, tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { ZOO, ZOO_NAMES, buildNetwork, loadInventory } from '../src/models/index.js';

const BIN = join(process.cwd(), 'bin', 'bitalloc.js');

before(async () => {
  await initBackend('wasm');
});

for (const name of ['lenet5', 'cnn-small', 'resnet8', 'resnet20', 'mobilenet-tiny']) {
  test(`${name} builds for two input shapes and class counts, with a consistent inventory`, () => {
    assert.ok(ZOO_NAMES.includes(name));
    for (const [shape, classes] of [
      [[28, 28, 1], 10],
      [[16, 20, 3], 7],
    ] as [[number, number, number], number][]) {
      const net = buildNetwork(name, { inputShape: shape, numClasses: classes, seed: 1 });
      const y = net.model.predict(tf.zeros([2, ...shape])) as tf.Tensor;
      assert.deepEqual(y.shape, [2, classes]);
      assert.ok(net.layers.length >= 3);
      net.layers.forEach((l, i) => {
        assert.equal(l.index, i);
        assert.ok(l.params > 0 && l.macs > 0 && l.inElements > 0 && l.outElements > 0, `${l.name} has empty counts`);
        if (l.kind === 'conv') assert.equal(l.params, l.kernel[0] * l.kernel[1] * l.inChannels * l.outChannels);
        if (l.kind === 'depthwise') assert.equal(l.params, l.kernel[0] * l.kernel[1] * l.outChannels);
        if (l.kind !== 'dense') assert.equal(l.macs, l.outSize[0] * l.outSize[1] * l.params);
        if (l.kind === 'dense') assert.equal(l.macs, l.params);
      });
      assert.equal(net.layers[0]?.inElements, shape[0] * shape[1] * shape[2]);
      assert.equal(net.layers.at(-1)?.outChannels, classes);
      net.model.dispose();
    }
  });
}

test('the same seed builds the same weights; another seed different ones', () => {
  const w = (seed: number) => {
    const net = buildNetwork('resnet8', { inputShape: [8, 8, 3], numClasses: 10, seed });
    const data = net.model.getWeights().map((t) => Array.from(t.dataSync()));
    net.model.dispose();
    return data;
  };
  assert.deepEqual(w(5), w(5));
  assert.notDeepEqual(w(5), w(6));
});

test('lenet5 inventory matches a hand count', async () => {
  const inv = await loadInventory('lenet5');
  const pick = (name: string) => {
    const l = inv.find((x) => x.name === name);
    assert.ok(l, `no layer ${name}`);
    return l;
  };
  assert.deepEqual(
    inv.map((l) => l.name),
    ['conv1', 'conv2', 'fc1', 'fc2', 'fc3'],
  );
  // conv1: 5x5x1x6 'same' on 28x28 -> 28x28x6
  assert.deepEqual(
    { ...pick('conv1') },
    {
      index: 0,
      name: 'conv1',
      kind: 'conv',
      inChannels: 1,
      outChannels: 6,
      kernel: [5, 5],
      stride: [1, 1],
      inSize: [28, 28],
      outSize: [28, 28],
      params: 150,
      biasParams: 6,
      macs: 28 * 28 * 6 * 25,
      inElements: 784,
      outElements: 4704,
      liveElements: 0,
    },
  );
  // conv2: 5x5x6x16 valid on 14x14 -> 10x10x16
  const c2 = pick('conv2');
  assert.equal(c2.params, 2400);
  assert.equal(c2.macs, 10 * 10 * 16 * 150);
  assert.deepEqual(c2.inSize, [14, 14]);
  assert.deepEqual(c2.outSize, [10, 10]);
  // fc1 400 -> 120, fc2 120 -> 84, fc3 84 -> 10
  assert.deepEqual([pick('fc1').params, pick('fc2').params, pick('fc3').params], [48000, 10080, 840]);
  assert.deepEqual([pick('fc1').macs, pick('fc2').macs, pick('fc3').macs], [48000, 10080, 840]);
  assert.deepEqual(pick('fc1').stride, [0, 0]);
  assert.equal(
    inv.reduce((a, l) => a + l.params + l.biasParams, 0),
    61706,
  ); // Keras' LeNet-5 count
});

test('residual tensors waiting for their Add count as live elements', async () => {
  const inv = await loadInventory('resnet8', { inputShape: [32, 32, 3] });
  const byName = new Map(inv.map((l) => [l.name, l]));
  assert.equal(byName.get('s1b1_conv1')?.liveElements, 0); // its input is the shortcut itself
  assert.equal(byName.get('s1b1_conv2')?.liveElements, 32 * 32 * 16); // the block input waits
  assert.equal(byName.get('s2b1_proj')?.liveElements, 16 * 16 * 32); // the residual branch waits
  assert.equal(byName.get('conv1')?.liveElements, 0);
});

test('unknown model names and impossible shapes are user errors', async () => {
  await assert.rejects(
    loadInventory('resnet99'),
    (e: unknown) => e instanceof UserError && /resnet99/.test(e.message) && /lenet5/.test(e.message),
  );
  assert.throws(() => buildNetwork('lenet5', { inputShape: [6, 6, 1], numClasses: 10, seed: 1 }), UserError);
  assert.throws(() => buildNetwork('cnn-small', { inputShape: [28, 28, 1], numClasses: 1, seed: 1 }), UserError);
});

test('`bitalloc models --json` lists every zoo model with its defaults', () => {
  const out = JSON.parse(execFileSync('node', [BIN, 'models', '--json'], { encoding: 'utf8' })) as {
    models: { name: string; inputShape: number[]; dataset: string; params: number }[];
  };
  assert.deepEqual(
    out.models.map((m) => m.name),
    ZOO_NAMES,
  );
  for (const m of out.models) {
    assert.deepEqual(m.inputShape, ZOO[m.name]?.inputShape);
    assert.equal(m.dataset, ZOO[m.name]?.dataset);
    assert.ok(m.params > 0);
  }
});

test('`bitalloc inspect` prints the inventory as JSON and as a table with totals', () => {
  const out = JSON.parse(
    execFileSync('node', [BIN, 'inspect', '--model', 'lenet5', '--json'], { encoding: 'utf8' }),
  ) as { layers: { name: string; macs: number }[] };
  assert.deepEqual(
    out.layers.map((l) => l.name),
    ['conv1', 'conv2', 'fc1', 'fc2', 'fc3'],
  );
  const text = execFileSync('node', [BIN, 'inspect', '--model', 'lenet5'], { encoding: 'utf8' });
  assert.match(text, /conv2/);
  assert.match(text, /total\s.*\b61470\b.*\b416520\b/);
  const bad = spawnSync('node', [BIN, 'inspect', '--model', 'nope'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown model 'nope'/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
});
