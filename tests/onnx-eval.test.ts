import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { loadDataset } from '../src/data/index.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import { OrtEvaluator, resolveEvalBackend } from '../src/search/ort-evaluator.js';
import { runSearch, searchSpec } from '../src/search/search.js';
import { calibrateNetwork, createTrainer, evaluateModel } from '../src/train/trainer.js';
import { networkLogits } from '../src/train/distill.js';
import { validateExperiment } from '../src/experiment/experiment.js';
import { UserError } from '../src/errors.js';

test('accuracy at an allocation is the same through tfjs and onnxruntime, and a session per weight state serves every activation allocation', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const ds = await loadDataset('mnist', { seed: 1 });
  const net = await loadModel('lenet5', { inputShape: ds.inputShape, numClasses: ds.numClasses, seed: 1 });
  const trainer = createTrainer(net, ds, { lr: 3e-3, batchSize: 64, optimizer: 'adam', seed: 1 });
  await trainer.trainSteps(40);
  net.setBits(net.layers.map(() => ({ wBits: 8, aBits: 8 })));
  calibrateNetwork(net, ds.train);
  const ev = await OrtEvaluator.create(net, { threads: 2 });
  assert.ok(ev, 'onnxruntime-node loads');
  // engine agreement on 3,000 digits (MNIST's val and test splits hold 1,000 each here)
  const n = 3000;
  const split = ds.train;
  const allocations = [
    net.layers.map(() => ({ wBits: 32, aBits: 32 })),
    net.layers.map(() => ({ wBits: 4, aBits: 4 })),
    net.layers.map((_, i) => ({ wBits: [2, 8, 5, 3][i % 4], aBits: [6, 3, 8, 4][i % 4] })),
  ];
  for (const bits of allocations) {
    net.setBits(bits);
    const a = await evaluateModel(net.model, split, { limit: n });
    const b = await ev.evaluate(split, { limit: n });
    assert.equal(b.samples, n);
    assert.ok(
      Math.abs(a.accuracy - b.accuracy) <= 0.001,
      `${JSON.stringify(bits[0])}: tfjs ${a.accuracy} vs onnxruntime ${b.accuracy}`,
    );
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-3 * Math.max(1, a.loss), `loss tfjs ${a.loss} vs onnxruntime ${b.loss}`);
  }
  // QAT moves the weights: the next evaluation sees them without a new session
  await trainer.trainSteps(5);
  const a = await evaluateModel(net.model, split, { limit: n });
  const b = await ev.evaluate(split, { limit: n });
  assert.ok(Math.abs(a.accuracy - b.accuracy) <= 0.001, `after QAT: tfjs ${a.accuracy} vs onnxruntime ${b.accuracy}`);
  assert.equal(
    ev.sessionsBuilt,
    5,
    'one session per weight state: W8A8 at creation, three allocations, the weights QAT moved',
  );
  // the same weights again: the cached session, whatever the activation bits
  net.setBits(net.getBits().map((b) => ({ ...b, aBits: 3 })));
  const c = await evaluateModel(net.model, split, { limit: n });
  const d = await ev.evaluate(split, { limit: n });
  assert.ok(Math.abs(c.accuracy - d.accuracy) <= 0.001, `A3: tfjs ${c.accuracy} vs onnxruntime ${d.accuracy}`);
  assert.equal(ev.sessionsBuilt, 5, 'a new activation allocation on the same weights reuses the session');
  await ev.dispose();
  trainer.dispose();
  net.model.dispose();
});

test('the search records its forward-pass engine; onnxruntime and tfjs give the same episodes', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const base = {
    model: 'lenet5',
    agent: 'random',
    episodes: 3,
    qatSteps: 0,
    warmupEpochs: 0,
    finetuneEpochs: 0,
    evalSamples: 400,
    trainLimit: 600,
    bitChoices: [3, 4, 8],
  };
  const ort = await runSearch(searchSpec({ ...base, evalBackend: 'onnxruntime' }));
  const tfjs = await runSearch(searchSpec({ ...base, evalBackend: 'tfjs' }));
  assert.equal(ort.evalBackend, 'onnxruntime');
  assert.equal(tfjs.evalBackend, 'tfjs');
  assert.ok(ort.best && tfjs.best);
  assert.deepEqual(ort.best.bits, tfjs.best.bits);
  assert.ok(
    Math.abs(ort.best.accuracy - tfjs.best.accuracy) <= 0.0025,
    `${ort.best.accuracy} vs ${tfjs.best.accuracy}`,
  );
  assert.deepEqual(
    ort.uniform.map((u) => (u.accuracy ?? NaN).toFixed(2)),
    tfjs.uniform.map((u) => (u.accuracy ?? NaN).toFixed(2)),
  );
});

test('the float reference logits (fidelity targets) through onnxruntime equal tfjs; a fidelity search gives the same reference on both engines', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const ds = await loadDataset('mnist', { seed: 2, limit: 300 });
  const net = await loadModel('lenet5', { inputShape: ds.inputShape, numClasses: ds.numClasses, seed: 2 });
  const ev = await OrtEvaluator.create(net, { threads: 2 });
  assert.ok(ev);
  const z = await ev.logits(ds.val);
  const ref = networkLogits(net, ds.val.x);
  const r = ref.dataSync();
  assert.equal(z.length, r.length);
  let range = 0;
  let diff = 0;
  for (let i = 0; i < r.length; i++) {
    range = Math.max(range, Math.abs(r[i]));
    diff = Math.max(diff, Math.abs(r[i] - z[i]));
  }
  assert.ok(range > 0 && diff <= 1e-4 * range, `max |diff| ${diff} against range ${range}`);
  ref.dispose();
  await ev.dispose();
  net.model.dispose();
  const base = {
    model: 'lenet5',
    agent: 'random',
    episodes: 2,
    qatSteps: 0,
    warmupEpochs: 0,
    finetuneEpochs: 0,
    evalSamples: 300,
    trainLimit: 400,
    bitChoices: [4, 8],
    target: 'fidelity' as const,
  };
  const a = await runSearch(searchSpec({ ...base, evalBackend: 'onnxruntime' }));
  const b = await runSearch(searchSpec({ ...base, evalBackend: 'tfjs' }));
  assert.equal(a.metric, 'agreement');
  assert.equal(a.reference.floatTestAccuracy, 1, 'the float network agrees with its own targets');
  assert.equal(a.reference.floatTestAccuracy, b.reference.floatTestAccuracy);
  assert.ok(
    Math.abs((a.reference.w8a8ValAccuracyStart ?? NaN) - (b.reference.w8a8ValAccuracyStart ?? NaN)) <= 0.0034,
    `W8A8 agreement at the start: ${a.reference.w8a8ValAccuracyStart} vs ${b.reference.w8a8ValAccuracyStart}`,
  );
});

test('evalBackend is an experiment field with a checked value', () => {
  const ok = validateExperiment({
    name: 'x',
    model: 'lenet5',
    dataset: 'mnist',
    profiles: ['bitfusion-45nm'],
    budgets: ['latency<=0.5x'],
    agents: ['random'],
    evalBackend: 'tfjs',
  });
  assert.equal(ok.evalBackend, 'tfjs');
  assert.equal(
    validateExperiment({
      name: 'x',
      model: 'lenet5',
      dataset: 'mnist',
      profiles: ['bitfusion-45nm'],
      budgets: ['latency<=0.5x'],
      agents: ['random'],
    }).evalBackend,
    'auto',
  );
  assert.throws(
    () =>
      validateExperiment({
        name: 'x',
        model: 'lenet5',
        dataset: 'mnist',
        profiles: ['bitfusion-45nm'],
        budgets: ['latency<=0.5x'],
        agents: ['random'],
        evalBackend: 'gpu',
      }),
    (e: unknown) =>
      e instanceof UserError && /evalBackend/.test(e.message) && /"auto", "onnxruntime", "tfjs"/.test(e.message),
  );
});

test('an imported ONNX network evaluates through onnxruntime too', async () => {
  await initBackend('wasm');
  const net = await loadModel(path.join(process.cwd(), 'tests', 'fixtures', 'onnx', 'ops_opset17.onnx'));
  const engine = await resolveEvalBackend('auto', net);
  assert.equal(engine.name, 'onnxruntime', engine.reason);
  await engine.evaluator?.dispose();
  net.model.dispose();
});
