/** Data-parallel training over worker threads: same gradient as one thread, deterministic, resumable, no leaks. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initBackend, tf } from '../src/backend/index.js';
import type { Dataset, Split } from '../src/data/api.js';
import { isUserError } from '../src/errors.js';
import { log } from '../src/log.js';
import { validateExperiment } from '../src/experiment/experiment.js';
import { buildNetwork } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import type { QuantNetwork } from '../src/quant/network.js';
import {
  createDataParallel,
  defaultThreads,
  parallelCounters,
  parallelTesting,
  resetParallelCounters,
  shardSizes,
  threadsFlag,
} from '../src/train/parallel.js';
import { createTrainer, type TrainerOptions } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

const SHAPE: [number, number, number] = [16, 16, 1];

function randomSplit(n: number, seed: number): Split {
  const rng = new Rng(seed);
  const px = new Float32Array(n * SHAPE[0] * SHAPE[1] * SHAPE[2]);
  for (let i = 0; i < px.length; i++) px[i] = rng.next();
  const labels = Int32Array.from({ length: n }, () => rng.int(10));
  return {
    x: tf.tensor4d(px, [n, ...SHAPE]),
    y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat()) as tf.Tensor2D,
    labels,
  };
}

let ds: Dataset;

before(async () => {
  await initBackend('wasm');
  const train = randomSplit(96, 3);
  ds = { name: 'random', inputShape: SHAPE, numClasses: 10, train, val: train, test: train, source: 'test' };
});

function net(model: string, bits: number): QuantNetwork {
  const n = buildNetwork(model, { inputShape: SHAPE, numClasses: 10, seed: 5 });
  n.setBits(uniformBits(n.layers, bits, bits));
  return n;
}

function weightsOf(n: QuantNetwork): Float32Array[] {
  return n.model.weights.map((w) => Float32Array.from(w.read().dataSync() as Float32Array));
}

/** Trains `steps` minibatches of a fresh network; returns its weights and the mean loss. */
async function trainFresh(
  model: string,
  bits: number,
  steps: number,
  opts: Partial<TrainerOptions>,
): Promise<{ weights: Float32Array[]; loss: number }> {
  const n = net(model, bits);
  const tr = createTrainer(n, ds, { lr: 3e-3, batchSize: 24, optimizer: 'adam', seed: 2, ...opts });
  try {
    const s = await tr.trainSteps(steps);
    return { weights: weightsOf(n), loss: s.loss };
  } finally {
    tr.dispose();
    n.model.dispose();
  }
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((x, i) => x.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j])))));
  return m;
}

test('a batch splits into contiguous shards whose sizes differ by at most one', () => {
  assert.deepEqual(shardSizes(10, 3), [4, 3, 3]);
  assert.deepEqual(shardSizes(64, 2), [32, 32]);
  assert.deepEqual(shardSizes(2, 4), [1, 1]);
});

test('without BatchNorm, 2 and 3 threads train like one thread on the same global batch (float tolerance)', async () => {
  // plain SGD: the update is linear in the gradient, so this compares the summed gradients
  const init = weightsOf(net('lenet5', 32));
  const sgd = { optimizer: 'sgd', lr: 0.05 } as const;
  const one = await trainFresh('lenet5', 32, 3, { ...sgd, threads: 1 });
  const two = await trainFresh('lenet5', 32, 3, { ...sgd, threads: 2 });
  const three = await trainFresh('lenet5', 32, 3, { ...sgd, threads: 3, batchSize: 10 });
  const oneB10 = await trainFresh('lenet5', 32, 3, { ...sgd, threads: 1, batchSize: 10 });
  assert.ok(maxAbsDiff(one.weights, init) > 1e-3, 'the steps moved the weights');
  assert.ok(maxAbsDiff(one.weights, two.weights) < 1e-5, `1 vs 2 threads: ${maxAbsDiff(one.weights, two.weights)}`);
  assert.ok(
    maxAbsDiff(oneB10.weights, three.weights) < 1e-5,
    `1 vs 3 threads: ${maxAbsDiff(oneB10.weights, three.weights)}`,
  );
  assert.ok(Math.abs(one.loss - two.loss) < 1e-5, `loss ${one.loss} vs ${two.loss}`);
});

test('QAT with BatchNorm on 2 threads is bit-identical across runs', async () => {
  const a = await trainFresh('cnn-small', 4, 3, { threads: 2 });
  const b = await trainFresh('cnn-small', 4, 3, { threads: 2 });
  assert.equal(maxAbsDiff(a.weights, b.weights), 0);
  assert.equal(a.loss, b.loss);
  // per-shard BatchNorm statistics: close to, not equal to, one thread
  const one = await trainFresh('cnn-small', 4, 3, { threads: 1 });
  assert.ok(Math.abs(one.loss - a.loss) < 0.5, `loss ${one.loss} (1 thread) vs ${a.loss} (2 threads)`);
});

test("parallelCounters account for the data-parallel steps' phases", async () => {
  resetParallelCounters();
  const c = parallelCounters;
  assert.equal(c.steps, 0);
  await trainFresh('cnn-small', 4, 3, { threads: 2 });
  assert.equal(c.steps, 3);
  for (const k of ['sendMs', 'ownShardMs', 'workerShardMs', 'combineMs', 'optimizerMs'] as const) {
    assert.ok(c[k] > 0, `${k} = ${c[k]}`);
  }
  assert.ok(c.waitMs >= 0);
  await trainFresh('cnn-small', 4, 2, { threads: 1 });
  assert.equal(c.steps, 3, 'one thread: no data-parallel step counted');
});

test('a 2-thread trainer saved and resumed continues bit-identically', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bitalloc-parallel-'));
  const opts: TrainerOptions = { lr: 3e-3, batchSize: 24, optimizer: 'adam', seed: 2, threads: 2 };
  try {
    const a = net('cnn-small', 4);
    const ta = createTrainer(a, ds, opts);
    await ta.trainSteps(2);
    const saved = weightsOf(a);
    await ta.saveState(dir);
    await ta.trainSteps(3); // crosses a reshuffle (4 batches per epoch)
    const straight = weightsOf(a);
    ta.dispose();
    a.model.dispose();

    const b = net('cnn-small', 4);
    b.model.weights.forEach((w, i) => w.write(tf.tensor(saved[i], w.shape as number[])));
    const tb = createTrainer(b, ds, opts);
    await tb.loadState(dir);
    await tb.trainSteps(3);
    assert.equal(maxAbsDiff(weightsOf(b), straight), 0);
    tb.dispose();
    b.model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('data-parallel steps leave no tensors behind', async () => {
  const n = net('cnn-small', 4);
  const tr = createTrainer(n, ds, { lr: 1e-3, batchSize: 24, optimizer: 'adam', seed: 2, threads: 2 });
  await tr.trainSteps(1);
  const before = tf.memory().numTensors;
  await tr.trainSteps(3);
  assert.equal(tf.memory().numTensors, before);
  tr.dispose();
  n.model.dispose();
});

test('one thread, or a backend other than wasm, trains in this thread', () => {
  const n = net('lenet5', 32);
  assert.equal(
    createDataParallel(n, 1, false, () => tf.zeros<tf.Rank.R1>([1])),
    null,
  );
  n.model.dispose();
  assert.ok(defaultThreads() >= 1);
  assert.equal(defaultThreads(1000), 1);
});

test('--threads takes an integer 1..64', () => {
  assert.equal(threadsFlag(undefined), undefined);
  assert.equal(threadsFlag(2), 2);
  for (const bad of [0, -1, 1.5, 65, 'two']) {
    assert.throws(
      () => threadsFlag(bad),
      (e: unknown) => isUserError(e) && e.message.includes('1..64'),
    );
  }
});

test("an experiment's threads field: absent, or an integer >= 1", () => {
  const valid = {
    name: 'ok',
    model: 'lenet5',
    dataset: 'mnist',
    profiles: ['bitfusion-45nm'],
    budgets: [['latency<=0.5x']],
    agents: ['random'],
    episodes: 10,
  };
  assert.equal(validateExperiment(valid).threads, undefined);
  assert.equal(validateExperiment({ ...valid, threads: 2 }).threads, 2);
  assert.throws(
    () => validateExperiment({ ...valid, threads: 0 }),
    (e: unknown) => isUserError(e) && JSON.stringify(e.details).includes('$.threads'),
  );
});

test('a worker thread that fails to start: one warning, then the training runs on one thread', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bitalloc-parallel-fail-'));
  const script = join(dir, 'broken-worker.mjs');
  writeFileSync(script, "throw new Error('this worker cannot start');\n");
  const warnings: string[] = [];
  const warn = log.warn;
  log.warn = ((m: unknown) => {
    warnings.push(String(m));
    return log;
  }) as typeof log.warn;
  parallelTesting.workerUrl = pathToFileURL(script);
  try {
    const two = await trainFresh('cnn-small', 4, 3, { threads: 2 });
    parallelTesting.workerUrl = null;
    log.warn = warn;
    const one = await trainFresh('cnn-small', 4, 3, { threads: 1 });
    assert.equal(maxAbsDiff(two.weights, one.weights), 0, 'trained exactly as with --threads 1');
    assert.equal(two.loss, one.loss);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], /^training on 1 thread instead of 2: a worker thread failed to start \(.*cannot start/);
    assert.ok(!warnings[0].includes('\n'), 'one line');
  } finally {
    parallelTesting.workerUrl = null;
    log.warn = warn;
    rmSync(dir, { recursive: true, force: true });
  }
});
