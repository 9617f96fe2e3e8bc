/**
 * An image folder's splits stream from the uint8 image cache one batch at a time (data/inputs.ts):
 * the batches equal the in-memory float tensors bit for bit, and training, evaluation, float targets,
 * calibration and a whole search give the same result streamed as in memory (real photo crops).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, tf } from '../src/backend/index.js';
import { disposeDataset, loadDataset, splitInputs, type Dataset } from '../src/data/index.js';
import { setLogLevel } from '../src/log.js';
import { loadUserModel, writeModelFiles } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import { postTrainingQuantize } from '../src/quant/ptq.js';
import type { EpisodeRecord } from '../src/run/run-store.js';
import { runSearch, searchSpec } from '../src/search/search.js';
import { applyTargets, networkLogits } from '../src/train/distill.js';
import { createTrainer, evaluateModel } from '../src/train/trainer.js';
import { photoCrops } from './pretrained-fixture.js';

const SIZE = 24;
let work = '';
let photos: string | null = null;
let modelFile = '';

/** A small float network on SIZE x SIZE x 3 inputs with seeded weights (3 classes, softmax). */
async function writeSmallModel(dir: string): Promise<string> {
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [SIZE, SIZE, 3],
        filters: 6,
        kernelSize: 3,
        strides: 2,
        activation: 'relu',
        name: 'c1',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        activation: 'relu',
        name: 'c2',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({
        units: 3,
        activation: 'softmax',
        name: 'fc',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
      }),
    ],
  });
  await writeModelFiles(m, dir);
  m.dispose();
  return join(dir, 'model.json');
}

before(async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  work = mkdtempSync(join(tmpdir(), 'bitalloc-stream-'));
  process.env['BITALLOC_CACHE_DIR'] = join(work, 'cache'); // this file's own image cache
  photos = await photoCrops(40, 3, 64, join(work, 'crops'));
  modelFile = await writeSmallModel(join(work, 'model'));
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function load(inMemory: boolean): Promise<Dataset> {
  return loadDataset('folder', {
    dataDir: photos as string,
    seed: 4,
    imageSize: [SIZE, SIZE],
    preprocess: { resize: 'crop', channels: 'bgr', range: '-1-1', mean: null, std: null },
    ...(inMemory ? { inMemory: true } : {}),
  });
}

function values(t: tf.Tensor): number[] {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

test('folder splits stream from the image cache; their batches equal the in-memory float tensors bit for bit', async (t) => {
  if (!photos) return t.skip('needs python3-skimage photos');
  const streamed = await load(false);
  const held = await load(true);
  try {
    for (const name of ['train', 'val', 'test'] as const) {
      const s = streamed[name];
      const m = held[name];
      assert.ok(s.inputs && !s.inputs.inMemory, `${name}: streamed`);
      assert.equal(splitInputs(m).inMemory, true);
      const n = m.labels.length;
      assert.deepEqual(s.inputs.shape, m.x.shape);
      assert.deepEqual(Array.from(s.labels), Array.from(m.labels));
      assert.deepEqual(values(s.inputs.slice(1, n - 2)), values(tf.slice(m.x, [1, 0, 0, 0], [n - 2, -1, -1, -1])));
      const idx = Int32Array.from([n - 1, 0, Math.floor(n / 2), 0]);
      assert.deepEqual(values(s.inputs.gather(idx)), values(tf.gather(m.x, tf.tensor1d(idx, 'int32'))));
      assert.deepEqual(Array.from(s.inputs.read(0, n)), Array.from(m.x.dataSync()));
    }
    // the values are the preprocessed pixels (BGR in [-1, 1]), not zeros
    const v = streamed.train.inputs?.read(0, 1) ?? new Float32Array(0);
    assert.ok(Math.min(...v) >= -1 && Math.max(...v) <= 1 && new Set(v).size > 10, 'preprocessed pixels');
    assert.throws(() => streamed.train.inputs?.slice(0, streamed.train.labels.length + 1), /outside the split/);
    // `x` of a streamed split is built on first use only, then reused
    const x = streamed.val.x;
    assert.equal(streamed.val.x, x);
    assert.deepEqual(Array.from(x.dataSync()), Array.from(held.val.x.dataSync()));
  } finally {
    disposeDataset(streamed);
    disposeDataset(held);
  }
  assert.equal(streamed.val.x.isDisposed, false, 'x read after dispose is rebuilt');
  streamed.val.inputs?.dispose();
});

test('float targets, PTQ calibration, training steps and evaluation give the same numbers streamed as in memory', async (t) => {
  if (!photos) return t.skip('needs python3-skimage photos');
  const run = async (inMemory: boolean) => {
    const ds = await load(inMemory);
    const net = await loadUserModel(modelFile);
    applyTargets(net, ds, { batchSize: 8 }); // label-free: the float network's targets
    const logits = values(networkLogits(net, splitInputs(ds.val), 5));
    net.setBits(uniformBits(net.layers, 6, 6));
    await postTrainingQuantize(net, ds.train, { batchSize: 4, batches: 3 });
    const trainer = createTrainer(net, ds, {
      lr: 1e-3,
      batchSize: 6,
      optimizer: 'adam',
      seed: 9,
      temperature: 2,
      microBatch: 4,
    });
    const stats = await trainer.trainSteps(4);
    const evalVal = await evaluateModel(net.model, ds.val, { batchSize: 3 });
    const weights = net.model.getWeights().map((w) => Array.from(w.dataSync()));
    trainer.dispose();
    net.model.dispose();
    disposeDataset(ds);
    return { logits, loss: stats.loss, accuracy: stats.accuracy, evalVal: [evalVal.accuracy, evalVal.loss], weights };
  };
  const a = await run(false);
  const b = await run(true);
  assert.ok(
    a.logits.some((v) => v !== a.logits[0]),
    'logits vary',
  );
  assert.ok(Number.isFinite(a.loss));
  assert.deepEqual(a, b);
});

test('a label-free search on a model file gives the same episodes and result streamed as in memory', async (t) => {
  if (!photos) return t.skip('needs python3-skimage photos');
  const spec = searchSpec({
    model: modelFile,
    dataset: 'folder',
    dataDir: photos,
    agent: 'random',
    constraints: ['latency<=0.9x'],
    episodes: 4,
    qatSteps: 2,
    batchSize: 4,
    evalSamples: 4,
    finetuneEpochs: 0,
    seed: 2,
  });
  const search = async (inMemoryData: boolean) => {
    const records: EpisodeRecord[] = [];
    const r = await runSearch(spec, {
      plainProgress: true,
      onEpisode: (e) => records.push({ ...e, wallMs: 0 }),
      ...(inMemoryData ? { inMemoryData } : {}),
    });
    return {
      records,
      best: r.best,
      final: r.final,
      reference: r.reference,
      uniform: r.uniform,
      metric: r.metric,
      engine: r.evalBackend,
    };
  };
  const streamed = await search(false);
  const held = await search(true);
  assert.equal(streamed.records.length, 4);
  assert.equal(streamed.metric, 'agreement');
  assert.equal(typeof streamed.best?.accuracy, 'number', 'a feasible allocation was found');
  assert.ok(streamed.records.every((e) => e.accuracy === null || (e.accuracy >= 0 && e.accuracy <= 1)));
  assert.deepEqual(streamed, held);
});
