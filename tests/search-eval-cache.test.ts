/**
 * The evaluation cache: with qatSteps 0 an allocation evaluated before is not evaluated again (the episode is
 * marked cached and carries the same result); with the cache off every record is the same; with QAT nothing is
 * cached; a resumed cell hits exactly where the uninterrupted one did.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { validateExperiment } from '../src/experiment/experiment.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import { createRun, readEpisodes, type EpisodeRecord } from '../src/run/run-store.js';
import { EvalCache, weightsFingerprint } from '../src/search/eval-cache.js';
import { runCell } from '../src/search/runner.js';
import { runSearch, searchSpec, type SearchSpec } from '../src/search/search.js';

/** Two choices per layer (tied), five layers: 32 allocations, so 16 random episodes repeat some. */
const SMALL: Partial<SearchSpec> = {
  agent: 'random',
  episodes: 16,
  qatSteps: 0,
  warmupEpochs: 0,
  finetuneEpochs: 0,
  evalSamples: 200,
  trainLimit: 400,
  stepMode: 'tied',
  bitChoices: [4, 8],
  constraints: ['latency<=0.9x'],
  evalBackend: 'tfjs',
  seed: 5,
  checkpointEvery: 4,
};

function withoutTiming(r: EpisodeRecord): Omit<EpisodeRecord, 'wallMs' | 'cached'> {
  const { wallMs: _w, cached: _c, ...rest } = r;
  return rest;
}

test('cache keys: the allocation, the weights version and the evaluation subset each change the key', () => {
  const c = new EvalCache({ dataset: 'mnist', seed: 1, split: 'val', samples: 200, engine: 'tfjs' });
  const other = new EvalCache({ dataset: 'mnist', seed: 1, split: 'val', samples: 300, engine: 'tfjs' });
  const a = [
    { wBits: 4, aBits: 4 },
    { wBits: 8, aBits: 8 },
  ];
  const b = [
    { wBits: 4, aBits: 4 },
    { wBits: 8, aBits: 4 },
  ];
  assert.notEqual(c.key(a, 'w1'), c.key(b, 'w1'));
  assert.notEqual(c.key(a, 'w1'), c.key(a, 'w2'));
  assert.notEqual(c.key(a, 'w1'), other.key(a, 'w1'));
  c.set(c.key(a, 'w1'), { accuracy: 0.5, loss: 1.25 });
  c.set(c.key(b, 'w1'), { accuracy: 0.5, loss: Number.NaN }); // not kept: a checkpoint could not carry it
  assert.deepEqual(c.get(c.key(a, 'w1')), { accuracy: 0.5, loss: 1.25 });
  assert.equal(c.get(c.key(a, 'w2')), null);
  assert.equal(c.get(c.key(b, 'w1')), null);
  assert.deepEqual([c.hits, c.misses, c.size], [1, 2, 1]);
  const restored = new EvalCache({ dataset: 'mnist', seed: 1, split: 'val', samples: 200, engine: 'tfjs' }, c.save());
  assert.deepEqual(restored.get(restored.key(a, 'w1')), { accuracy: 0.5, loss: 1.25 });
});

test('the weights fingerprint changes when one weight value changes, and only then', async () => {
  await initBackend('wasm');
  const net = await loadModel('lenet5', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  const before = weightsFingerprint(net.model);
  assert.equal(weightsFingerprint(net.model), before);
  const w = net.model.weights[0];
  const values = w.read().dataSync().slice();
  values[0] = values[0] + 1e-6;
  w.write(tf.tensor(values, w.read().shape));
  assert.notEqual(weightsFingerprint(net.model), before);
  net.model.dispose();
});

test('with qatSteps 0 repeated allocations are cached, and every record equals the uncached search', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const seen: EpisodeRecord[] = [];
  const on = await runSearch(searchSpec(SMALL), { plainProgress: true, onEpisode: (r) => seen.push(r) });
  const plain: EpisodeRecord[] = [];
  const off = await runSearch(searchSpec({ ...SMALL, evalCache: false }), {
    plainProgress: true,
    onEpisode: (r) => plain.push(r),
  });
  const cached = seen.filter((r) => r.cached === true);
  assert.ok(cached.length > 0, 'some allocations repeat and are served from the cache');
  assert.equal(on.evalCache?.hits, cached.length);
  assert.equal(on.evalCache?.entries, seen.length - cached.length);
  assert.equal(off.evalCache, null);
  assert.equal(
    plain.some((r) => r.cached),
    false,
  );
  for (const r of cached) {
    const first = seen.find((e) => e.episode < r.episode && JSON.stringify(e.bits) === JSON.stringify(r.bits));
    assert.ok(first, `episode ${r.episode}'s allocation was evaluated before`);
    assert.equal(r.accuracy, first.accuracy);
    assert.equal(r.loss, first.loss);
  }
  assert.deepEqual(seen.map(withoutTiming), plain.map(withoutTiming));
  assert.deepEqual(on.best, off.best);
});

test('with QAT steps nothing is cached', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const seen: EpisodeRecord[] = [];
  const r = await runSearch(searchSpec({ ...SMALL, qatSteps: 1 }), {
    plainProgress: true,
    onEpisode: (e) => seen.push(e),
  });
  assert.equal(seen.length, SMALL.episodes);
  assert.equal(
    seen.some((e) => e.cached),
    false,
  );
  assert.equal(r.evalCache, null);
});

test('a cell stopped and resumed marks the same episodes cached as the uninterrupted cell', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const root = mkdtempSync(join(tmpdir(), 'bitalloc-evalcache-'));
  try {
    const exp = validateExperiment({
      name: 'cache',
      model: 'lenet5',
      dataset: 'mnist',
      profiles: ['bitfusion-45nm'],
      budgets: [SMALL.constraints],
      agents: ['random'],
      seeds: [SMALL.seed],
      episodes: SMALL.episodes,
      qatSteps: 0,
      warmupEpochs: 0,
      finetuneEpochs: 0,
      stepMode: 'tied',
      bitChoices: SMALL.bitChoices,
      evalSamples: SMALL.evalSamples,
      trainSamples: SMALL.trainLimit,
      checkpointEvery: SMALL.checkpointEvery,
      evalBackend: 'tfjs',
      threads: 1,
    });
    const meta = { backend: 'wasm', tfjs: tf.version_core };
    const whole = createRun(join(root, 'whole'), exp, meta);
    await runCell(whole, whole.cells[0], { label: 'whole', plainProgress: true });
    const parted = createRun(join(root, 'parted'), exp, meta);
    // stop mid-way between checkpoints: the episodes after the last checkpoint are re-run on resume
    const first = await runCell(parted, parted.cells[0], { label: 'part 1', plainProgress: true, stopAfter: 10 });
    assert.equal(first.result?.interrupted, true);
    await runCell(parted, parted.cells[0], { label: 'part 2', plainProgress: true });
    const a = readEpisodes(whole.cells[0]).episodes;
    const b = readEpisodes(parted.cells[0]).episodes;
    assert.equal(b.length, SMALL.episodes);
    assert.ok(a.some((r) => r.cached));
    assert.deepEqual(
      b.map((r) => r.cached === true),
      a.map((r) => r.cached === true),
    );
    assert.deepEqual(b.map(withoutTiming), a.map(withoutTiming));
    whole.close();
    parted.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
