/**
 * A real pretrained network end to end: nsfwjs's MobileNetV2 (a Keras model converted to TF.js
 * layers, 224x224x3, 5 classes; the devDependency `nsfwjs`, written out in set-up) on seeded crops of
 * real photographs (Debian's skimage samples), label-free. Skipped, with the reason, when either is absent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../src/backend/index.js';
import { disposeDataset, loadDataset } from '../src/data/index.js';
import type { Dataset } from '../src/data/api.js';
import { readModelPreprocess } from '../src/data/preprocess.js';
import { loadUserModel } from '../src/models/user-model.js';
import { uniformBits } from '../src/models/layer-info.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { postTrainingQuantize } from '../src/quant/ptq.js';
import { applyTargets } from '../src/train/distill.js';
import { applyFineTuneRegime, hasInferenceModeLayers, PRETRAINED_FINETUNE } from '../src/train/finetune.js';
import { createTrainer, evaluateModel } from '../src/train/trainer.js';
import { nsfwjsModels, photoCrops, photoFiles, pretrainedModel } from './pretrained-fixture.js';

const BIN = fileURLToPath(new URL('../../bin/bitalloc.js', import.meta.url));
const missing =
  nsfwjsModels().dir === null
    ? nsfwjsModels().reason
    : photoFiles().length === 0
      ? 'needs Debian python3-skimage sample photos'
      : null;
const skip = missing ?? false;

let model = '';
let crops = '';
before(async () => {
  if (missing) return;
  // a private decoded-image cache (the CLI runs below inherit it): nothing shared with other test files or runs
  process.env['BITALLOC_CACHE_DIR'] = mkdtempSync(join(tmpdir(), 'bitalloc-cache-'));
  await initBackend('wasm');
  model = pretrainedModel('mobilenet_v2') as string;
  crops = (await photoCrops(40, 3, 256)) as string;
});

after(() => {
  const dir = process.env['BITALLOC_CACHE_DIR'];
  if (dir && !missing) rmSync(dir, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('eval --model FILE on a label-free folder reports W8A8 agreement with the float network', { skip }, async () => {
  const r = await cli(
    'eval',
    '--model',
    model,
    '--dataset',
    'folder',
    '--data-dir',
    crops,
    '--wbits',
    '8',
    '--abits',
    '8',
    '--split',
    'train',
    '--batch-size',
    '16',
    '--json',
  );
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out['metric'], 'agreement');
  assert.equal(out['calibration'], 'mse');
  assert.equal(out['samples'], 32);
  assert.equal((out['bits'] as unknown[]).length, 55);
  assert.ok((out['accuracy'] as number) >= 0.9, `agreement ${String(out['accuracy'])}`);
});

test('a float model folder given as --checkpoint is refused, pointing to --model', { skip }, async () => {
  const r = await cli(
    'eval',
    '--checkpoint',
    dirname(model),
    '--dataset',
    'folder',
    '--data-dir',
    crops,
    '--wbits',
    '8',
    '--abits',
    '8',
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not a bitalloc checkpoint.*--model .*model\.json/s);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test("search checks the model against the data before any work, with train's message", { skip }, async () => {
  const r = await cli('search', '--model', model, '--dataset', 'mnist', '--episodes', '1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /takes inputs of 224x224x3, dataset mnist has 28x28x1/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('a label-free search on real photographs runs to the end and reports agreement', { skip }, async () => {
  const r = await cli(
    'search',
    '--model',
    model,
    '--dataset',
    'folder',
    '--data-dir',
    crops,
    '--agent',
    'random',
    '--episodes',
    '2',
    '--qat-steps',
    '1',
    '--batch-size',
    '4',
    '--eval-samples',
    '4',
    '--finetune-epochs',
    '0',
    '--bits',
    '6,8',
    '--json',
  );
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    metric: string;
    best: { accuracy: number; feasible: boolean } | null;
    final: { accuracy: number } | null;
    reference: { floatValAccuracy: number; w8a8ValAccuracyStart: number };
  };
  assert.equal(out.metric, 'agreement');
  assert.equal(out.reference.floatValAccuracy, 1);
  assert.ok(out.reference.w8a8ValAccuracyStart >= 0 && out.reference.w8a8ValAccuracyStart <= 1);
  if (out.best) {
    assert.equal(typeof out.best.feasible, 'boolean');
    assert.ok(out.final && out.final.accuracy >= 0 && out.final.accuracy <= 1);
  }
});

// QAT of a pretrained network is deterministic under the regime (dropout off: tfjs draws its masks from an
// unseeded generator, which made this check differ between runs), so one crop of slack is a fixed margin.
test('the fine-tune regime keeps W8A8 agreement over QAT steps', { skip }, async () => {
  const ds: Dataset = await loadDataset('folder', {
    dataDir: crops,
    seed: 2,
    imageSize: [224, 224],
    preprocess: readModelPreprocess(model) ?? undefined,
  });
  const net: QuantNetwork = await loadUserModel(model);
  applyTargets(net, ds, { batchSize: 16 });
  net.setBits(uniformBits(net.layers, 8, 8));
  await postTrainingQuantize(net, ds.train, { batchSize: 16 });
  applyFineTuneRegime(net);
  assert.ok(hasInferenceModeLayers(net.model), 'the regime holds dropout in inference mode');
  const before = (await evaluateModel(net.model, ds.train, { batchSize: 16 })).accuracy;
  const trainer = createTrainer(net, ds, {
    lr: PRETRAINED_FINETUNE.lr,
    batchSize: 4,
    optimizer: 'adam',
    seed: 1,
    temperature: 2,
  });
  await trainer.trainSteps(8);
  trainer.dispose();
  const after = (await evaluateModel(net.model, ds.train, { batchSize: 16 })).accuracy;
  assert.ok(after >= before - 1 / 32, `agreement ${before} -> ${after}`);
  net.model.dispose();
  disposeDataset(ds);
});
