/** Post-training calibration statistics through onnxruntime equal the tfjs path's (zoo model and imported ONNX). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { initBackend, tf } from '../src/backend/index.js';
import type { Split } from '../src/data/api.js';
import { buildNetwork, loadModel } from '../src/models/index.js';
import { collectLayerStatsOrt, ortStatsCollector } from '../src/onnx/calibration.js';
import { collectLayerStats, postTrainingQuantize, type LayerStats } from '../src/quant/ptq.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { Rng } from '../src/util/rng.js';

function randomSplit(n: number, shape: number[], seed: number): Split {
  const rng = new Rng(seed);
  const px = new Float32Array(n * shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < px.length; i++) px[i] = rng.next() * 2 - 1;
  return { x: tf.tensor4d(px, [n, shape[0], shape[1], shape[2]]), y: tf.zeros([n, 1]), labels: new Int32Array(n) };
}

function assertSameStats(a: LayerStats[], b: LayerStats[], where: string): void {
  assert.equal(a.length, b.length);
  a.forEach((s, i) => {
    const t = b[i];
    const scale = Math.max(1e-6, s.max);
    assert.ok(Math.abs(s.max - t.max) <= 1e-4 * scale, `${where} layer ${i}: max ${s.max} vs ${t.max}`);
    assert.equal(s.samples.length, t.samples.length, `${where} layer ${i}: subsample size`);
    let worst = 0;
    for (let k = 0; k < s.samples.length; k++) worst = Math.max(worst, Math.abs(s.samples[k] - t.samples[k]));
    assert.ok(worst <= 1e-4 * scale, `${where} layer ${i}: subsample differs by ${worst} (range ${scale})`);
    assert.equal(s.channelMean.length, t.channelMean.length, `${where} layer ${i}: channels`);
    for (let c = 0; c < s.channelMean.length; c++)
      assert.ok(
        Math.abs(s.channelMean[c] - t.channelMean[c]) <= 1e-4 * scale,
        `${where} layer ${i} channel ${c}: mean ${s.channelMean[c]} vs ${t.channelMean[c]}`,
      );
  });
}

async function compare(net: QuantNetwork, split: Split, where: string): Promise<void> {
  net.setBits(net.layers.map((_, i) => ({ wBits: [4, 8, 3][i % 3], aBits: [4, 6, 3][i % 3] })));
  const opts = { batches: 3, batchSize: 5, seed: 7 };
  const a = collectLayerStats(net, split, opts);
  const b = await collectLayerStatsOrt(net, split, opts);
  assertSameStats(a, b, where);
  assert.ok(
    a.some((s) => s.max > 0 && s.samples.some((v) => v !== 0)),
    'the statistics are not trivially zero',
  );
  for (const method of ['minmax', 'percentile', 'mse'] as const) {
    const ta = await postTrainingQuantize(net, split, { ...opts, method });
    const meansA = net.qlayers.map((q) => (q.inputMean ? Float32Array.from(q.inputMean.dataSync()) : null));
    const tb = await postTrainingQuantize(net, split, { ...opts, method, collect: ortStatsCollector() });
    ta.clips.forEach((c, i) => {
      const d = tb.clips[i];
      if (c === null || d === null) return assert.equal(c, d);
      assert.ok(Math.abs(c - d) <= 1e-3 * Math.max(1e-6, c), `${where} ${method} layer ${i}: clip ${c} vs ${d}`);
    });
    net.qlayers.forEach((q, i) => {
      const mb = q.inputMean ? q.inputMean.dataSync() : null;
      const ma = meansA[i];
      assert.equal(ma === null, mb === null);
      if (ma && mb) ma.forEach((v, c) => assert.ok(Math.abs(v - mb[c]) <= 1e-4 * Math.max(1e-6, ta.stats[i].max)));
    });
  }
}

test('calibration statistics, clips and bias corrections through onnxruntime equal tfjs (zoo MobileNet)', async () => {
  await initBackend('wasm');
  const net = buildNetwork('mobilenet-tiny', { inputShape: [16, 16, 3], numClasses: 5, seed: 4 });
  const split = randomSplit(15, [16, 16, 3], 3);
  await compare(net, split, 'mobilenet-tiny');
  net.model.dispose();
  split.x.dispose();
});

test('calibration statistics through onnxruntime equal tfjs on imported ONNX files', async () => {
  await initBackend('wasm');
  for (const file of ['mobilenet_v2_w010.onnx', 'resnet18_narrow.onnx']) {
    const net = await loadModel(path.join(process.cwd(), 'tests', 'fixtures', 'onnx', file));
    const shape = net.model.inputs[0].shape.slice(1) as number[];
    const split = randomSplit(15, shape, 5);
    await compare(net, split, file);
    net.model.dispose();
    split.x.dispose();
  }
});
