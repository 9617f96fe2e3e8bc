/**
 * Bad inputs, part 2: outputs of another kind (checkpoint, export, run), files a command did not write,
 * model files that leave their folder or do not fit, and run directories damaged or edited between sessions.
 * All fail before any training and leave the existing files byte for byte as they were.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { validateExperiment } from '../src/experiment/experiment.js';
import { writeModelFiles } from '../src/quant/model-files.js';
import { appendEpisode, createRun, writeJsonAtomic, type EpisodeRecord } from '../src/run/run-store.js';
import { QUICKSTART, cli, fingerprint } from './bad-inputs-kit.js';

const root = mkdtempSync(join(tmpdir(), 'bitalloc-bad-outputs-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A folder that looks like a training checkpoint (model.json + weights.bin + bits.json). */
const ckpt = join(root, 'ckpt');
/** A folder holding an integer export. */
const exported = join(root, 'export');
const dense = join(root, 'dense');
const lstm = join(root, 'lstm');

before(async () => {
  await tf.setBackend('cpu');
  const m = tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), tf.layers.dense({ units: 10, name: 'fc1' })],
  });
  await writeModelFiles(m, ckpt, { bitalloc: { model: 'tiny', dataset: 'mnist' } });
  writeFileSync(join(ckpt, 'bits.json'), JSON.stringify({ layers: [{ name: 'fc1', wBits: 32, aBits: 32 }] }));
  await writeModelFiles(m, dense);
  m.dispose();
  mkdirSync(exported);
  writeFileSync(join(exported, 'manifest.json'), JSON.stringify({ format: 'bitalloc-quantized', version: 1 }));
  writeFileSync(join(exported, 'weights.bin'), Buffer.from([1, 2, 3]));
  const r = tf.sequential({
    layers: [
      tf.layers.reshape({ inputShape: [28, 28, 1], targetShape: [28, 28] }),
      tf.layers.lstm({ units: 4 }),
      tf.layers.dense({ units: 10 }),
    ],
  });
  await writeModelFiles(r, lstm);
  r.dispose();
});

test('export --out onto a checkpoint, train --out onto an export or a checkpoint: refused, nothing changed', async () => {
  const before = { ckpt: fingerprint(ckpt), exported: fingerprint(exported) };
  const [exportOnCkpt, trainOnExport, trainOnCkpt, exportOnExport] = await Promise.all([
    cli(['export', '--checkpoint', ckpt, '--out', ckpt]),
    cli(['train', '--model', 'lenet5', '--limit', '100', '--epochs', '1', '--out', exported]),
    cli(['train', '--model', 'cnn-small', '--dataset', 'mnist', '--limit', '100', '--epochs', '1', '--out', ckpt]),
    cli(['export', '--checkpoint', ckpt, '--out', exported]),
  ]);
  assert.equal(exportOnCkpt.code, 1);
  assert.match(exportOnCkpt.stderr, /ckpt --out: holds a training checkpoint .*`export` writes an integer export/);
  assert.equal(trainOnExport.code, 1);
  assert.match(trainOnExport.stderr, /export --out: holds an integer export .*`train` writes a training checkpoint/);
  assert.equal(trainOnCkpt.code, 1);
  assert.match(
    trainOnCkpt.stderr,
    /ckpt --out: already holds model\.json, weights\.bin, bits\.json, which `train` would overwrite \(expected a new or empty folder, or --force/,
  );
  assert.equal(exportOnExport.code, 1);
  assert.match(
    exportOnExport.stderr,
    /export --out: already holds manifest\.json, weights\.bin, which `export` would overwrite/,
  );
  for (const r of [exportOnCkpt, trainOnExport, trainOnCkpt, exportOnExport])
    assert.doesNotMatch(r.stderr, /epoch|samples\/s/, 'no training ran');
  assert.deepEqual({ ckpt: fingerprint(ckpt), exported: fingerprint(exported) }, before);
});

test('a checkpoint or an export is refused as a run directory (run and search --out)', async () => {
  const before = { ckpt: fingerprint(ckpt), exported: fingerprint(exported) };
  const [run, search] = await Promise.all([
    cli(['run', QUICKSTART, '--out', ckpt]),
    cli(['search', '--episodes', '1', '--out', exported]),
  ]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /ckpt --out: holds a training checkpoint, not a run; a run directory would destroy it/);
  assert.equal(search.code, 1);
  assert.match(search.stderr, /export --out: holds an integer export, not a run/);
  assert.deepEqual({ ckpt: fingerprint(ckpt), exported: fingerprint(exported) }, before);
});

test('train --out naming a file or an impossible folder fails before training', async () => {
  const file = join(ckpt, 'weights.bin');
  const before = fingerprint(ckpt);
  const [onFile, onProc] = await Promise.all([
    cli(['train', '--model', 'lenet5', '--limit', '100', '--epochs', '1', '--out', file]),
    cli(['train', '--model', 'lenet5', '--limit', '100', '--epochs', '1', '--out', '/proc/nope/ck']),
  ]);
  assert.equal(onFile.code, 1);
  assert.match(onFile.stderr, /weights\.bin --out: is a file, not a folder/);
  assert.equal(onProc.code, 1);
  assert.match(onProc.stderr, /\/proc\/nope\/ck --out: cannot create the folder \/proc\/nope/);
  assert.deepEqual(fingerprint(ckpt), before);
});

test('--checkpoint naming a file says it is a file, not "not valid JSON"', async () => {
  const r = await cli(['eval', '--checkpoint', join(ckpt, 'weights.bin')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /weights\.bin --checkpoint: is a file, not a checkpoint folder/);
  assert.doesNotMatch(r.stderr, /JSON/);
});

test('model.json: a shard path leaving the folder is refused; a swapped weight shape names the layer; LSTM is named', async () => {
  const escape = join(root, 'escape');
  const swapped = join(root, 'swapped');
  for (const d of [escape, swapped]) {
    mkdirSync(d);
    writeFileSync(join(d, 'weights.bin'), readFileSync(join(dense, 'weights.bin')));
  }
  const json = JSON.parse(readFileSync(join(dense, 'model.json'), 'utf8')) as {
    weightsManifest: { paths: string[]; weights: { name: string; shape: number[] }[] }[];
  };
  const esc = structuredClone(json);
  (esc.weightsManifest[0] as { paths: string[] }).paths = ['../../../../etc/passwd'];
  writeFileSync(join(escape, 'model.json'), JSON.stringify(esc));
  const sw = structuredClone(json);
  const kernel = sw.weightsManifest[0]?.weights.find((w) => w.name.endsWith('kernel'));
  assert.ok(kernel);
  kernel.shape = [10, 784];
  writeFileSync(join(swapped, 'model.json'), JSON.stringify(sw));
  const [e, s, l, le] = await Promise.all([
    cli(['inspect', '--model', escape]),
    cli(['inspect', '--model', swapped]),
    cli(['inspect', '--model', lstm]),
    cli(['eval', '--checkpoint', lstm]),
  ]);
  assert.equal(e.code, 1);
  assert.match(
    e.stderr,
    /escape\/model\.json \$\.weightsManifest\[0\]\.paths\[0\]: shard path '\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd' leaves the model folder/,
  );
  assert.equal(s.code, 1);
  assert.match(
    s.stderr,
    /weight fc1\/kernel \(layer 'fc1'\) has shape \[10,784\] in the weights manifest, but the layer needs \[784,10\]/,
  );
  for (const r of [l, le]) {
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\$\.modelTopology\.config\.layers\[1\]: layer '[^']+' has unsupported class 'LSTM'/);
  }
});

// ------------------------------------------------------------------------------------------------------
// run directories between sessions
// ------------------------------------------------------------------------------------------------------

const experiment = validateExperiment({
  name: 'bad-outputs',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm'],
  budgets: [['latency<=0.5x']],
  agents: ['random'],
  seeds: [1],
  episodes: 30,
});

function episode(n: number): EpisodeRecord {
  return {
    episode: n,
    bits: [{ wBits: 4, aBits: 4 }],
    accuracy: 0.5 + n / 100,
    loss: 1,
    latencyMs: 0.002,
    energyUj: 1,
    sizeBytes: 1000,
    peakMemoryBytes: 100,
    feasible: true,
    reward: 0,
    wallMs: 10,
  };
}

test('resume refuses an experiment.json edited in the run directory, showing the change', async () => {
  const run = createRun(join(root, 'edited'), experiment, { backend: 'wasm', tfjs: '4.22.0' });
  run.close();
  const path = join(run.dir, 'experiment.json');
  writeFileSync(path, readFileSync(path, 'utf8').replace('"episodes": 30', '"episodes": 25'));
  const before = fingerprint(run.dir);
  const r = await cli(['run', '--resume', run.dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /experiment\.json: experiment\.json was edited after the run was created/);
  assert.match(r.stderr, /- \$\.episodes: 30 when the run was created, now 25/);
  assert.deepEqual(fingerprint(run.dir), before, 'not even run.json changed');
});

test('a corrupt best.json is found before any episode runs', async () => {
  const run = createRun(join(root, 'corrupt-best'), experiment, { backend: 'wasm', tfjs: '4.22.0' });
  const cell = run.cells[0];
  assert.ok(cell);
  appendEpisode(cell, episode(1));
  writeFileSync(cell.bestPath, '{"episode": 1, "bits": ');
  run.close();
  const before = fingerprint(run.dir);
  const r = await cli(['run', '--resume', run.dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /best\.json: not valid JSON/);
  assert.doesNotMatch(r.stderr, /float warm-up|resuming/);
  assert.deepEqual(fingerprint(run.dir), before);
  assert.equal(existsSync(join(run.dir, 'run.lock')), false);
});

test('run --resume of a finished run shows its results instead of an empty table', async () => {
  const run = createRun(join(root, 'finished'), experiment, { backend: 'wasm', tfjs: '4.22.0' });
  const cell = run.cells[0];
  assert.ok(cell);
  for (let n = 1; n <= 3; n++) appendEpisode(cell, episode(n));
  cell.offerBest(episode(3));
  writeJsonAtomic(cell.finalPath, { ...episode(3), testAccuracy: 0.8125, wallSeconds: 42, episodesToBest: 3 });
  cell.setStatus('done');
  run.close();
  // One after the other: a resume holds the run's lock, so a second one at the same time is refused.
  const json = await cli(['run', '--resume', run.dir, '--json']);
  const text = await cli(['run', '--resume', run.dir]);
  assert.equal(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout) as {
    cells: { id: string; status: string; testAccuracy: number; episodes: number; ranNow: boolean }[];
  };
  assert.equal(out.cells.length, 1);
  assert.deepEqual(
    {
      status: out.cells[0]?.status,
      testAccuracy: out.cells[0]?.testAccuracy,
      episodes: out.cells[0]?.episodes,
      ranNow: out.cells[0]?.ranNow,
    },
    { status: 'done', testAccuracy: 0.8125, episodes: 3, ranNow: false },
  );
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /81\.25/);
  assert.match(text.stdout, /every cell was already done/);
  assert.match(text.stdout, /this command: /);
});
