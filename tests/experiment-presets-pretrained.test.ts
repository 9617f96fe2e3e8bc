/**
 * experiments/quality-mobilenetv2-pretrained.json validates once its network and photographs are prepared
 * (bench/prepare-pretrained.ts writes them; here the test fixture's copies stand in through --set overrides),
 * and expands into every agent x profile x budget x seed cell on the label-free fidelity metric.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cells, loadExperiment } from '../src/experiment/experiment.js';
import { nsfwjsModels, photoCrops, photoFiles, pretrainedModel } from './pretrained-fixture.js';

const PRESET = join(import.meta.dirname, '..', '..', 'experiments', 'quality-mobilenetv2-pretrained.json');

test('the pretrained MobileNetV2 preset validates on the prepared network and photographs', async (t) => {
  const models = nsfwjsModels();
  if (!models.dir) return t.skip(models.reason);
  if (photoFiles().length === 0) return t.skip('python3-skimage sample photographs are not installed');
  const model = pretrainedModel('mobilenet_v2');
  const crops = await photoCrops(20, 3, 64);
  assert.ok(model && crops);
  const exp = loadExperiment(PRESET, [`model=${model}`, `dataDir=${crops}`]);
  assert.equal(exp.model, model);
  assert.equal(exp.dataset, 'folder');
  assert.equal(exp.target, 'fidelity');
  assert.deepEqual(exp.profiles, ['bitfusion-45nm', 'bismo-pynq-z1']);
  assert.equal(exp.seeds.length, 5);
  assert.equal(cells(exp).length, exp.agents.length * 2 * 2 * 5);
});
