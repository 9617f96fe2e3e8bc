/**
 * Bad inputs, part 1: flags, log files, impossible output paths, report outputs, missing data and IDX
 * problems. Every command here must fail (or warn) before any training, naming the flag/file/field, and
 * leave every file that was there unchanged.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { validateExperiment } from '../src/experiment/experiment.js';
import { encodeIdx } from '../src/data/idx.js';
import { createRun } from '../src/run/run-store.js';
import { QUICKSTART, cli, fingerprint } from './bad-inputs-kit.js';

const root = mkdtempSync(join(tmpdir(), 'bitalloc-bad-flags-'));
after(() => rmSync(root, { recursive: true, force: true }));

const experiment = validateExperiment({
  name: 'bad-inputs',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm'],
  budgets: [['latency<=0.5x']],
  agents: ['random'],
  seeds: [1],
  episodes: 3,
});
let runA = '';
let runB = '';
before(() => {
  runA = createRun(join(root, 'runA'), experiment, { backend: 'wasm', tfjs: '4.22.0' }).dir;
  runB = createRun(join(root, 'runB'), experiment, { backend: 'wasm', tfjs: '4.22.0' }).dir;
});

test('unknown flags, bad choices and extra arguments stop before any work (no run directory appears)', async () => {
  const out = join(root, 'never');
  const rs = await Promise.all([
    cli(['run', QUICKSTART, '--wrokers', '2', '--out', out]),
    cli(['search', '--episodez', '3', '--out', out]),
    cli(['run', QUICKSTART, '--log-level', 'loud', '--out', out]),
    cli(['run', QUICKSTART, 'extra', '--out', out]),
    cli(['report', runA, '--format', 'pdf']),
  ]);
  const expected = [
    /Unknown argument: wrokers/,
    /Unknown argument: episodez/,
    /log-level.*loud/s,
    /Unknown argument: extra/,
    /format.*pdf.*Choices/s,
  ];
  rs.forEach((r, i) => {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, expected[i]);
    assert.doesNotMatch(r.stderr, /TypeError|at .*\.js:\d+/);
    assert.equal(r.stdout, '', 'nothing ran');
  });
  assert.equal(existsSync(out), false);
  assert.equal(existsSync(join(runA, 'report.html')), false);
});

test('--log-file naming a folder or an unwritable path is an error up front, not a silent exit 13', async () => {
  const before = fingerprint(root);
  const [dir, proc] = await Promise.all([
    cli(['info', '--log-file', root]),
    cli(['info', '--log-file', '/proc/nope/x.log']),
  ]);
  assert.equal(dir.code, 1);
  assert.match(dir.stderr, /--log-file: is a folder, not a file/);
  assert.equal(proc.code, 1);
  assert.match(proc.stderr, /\/proc\/nope\/x\.log --log-file: /);
  assert.equal(dir.stdout + proc.stdout, '');
  assert.deepEqual(fingerprint(root), before);
});

test('run/search --out under /proc fails at once naming the folder (no mkdir loop)', async () => {
  const [run, search] = await Promise.all([
    cli(['run', QUICKSTART, '--out', '/proc/nope/run1'], { timeoutMs: 30_000 }),
    cli(['search', '--episodes', '1', '--out', '/proc/nope/run2'], { timeoutMs: 30_000 }),
  ]);
  for (const r of [run, search]) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /--out: cannot create the folder \/proc\/nope/);
  }
});

test('report does not overwrite a report.html it did not write; --force does', async () => {
  const cwd = join(root, 'cwd');
  mkdirSync(cwd);
  writeFileSync(join(cwd, 'report.html'), '<p>my own notes</p>');
  const before = fingerprint(cwd);
  const refused = await cli(['report', runA, runB], { cwd });
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /report\.html --out: exists; `report` did not write it and will not replace it \(expected another path, or --force/,
  );
  assert.deepEqual(fingerprint(cwd), before);
  const forced = await cli(['report', runA, runB, '--force'], { cwd });
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(readFileSync(join(cwd, 'report.html'), 'utf8'), '<p>my own notes</p>');
});

test('report --out r.docx is refused; --out on an unwritable path names it', async () => {
  const before = fingerprint(root);
  const [docx, proc] = await Promise.all([
    cli(['report', runA, '--out', join(root, 'r.docx')]),
    cli(['report', runA, '--out', '/proc/nope/r.html']),
  ]);
  assert.equal(docx.code, 1);
  assert.match(docx.stderr, /r\.docx --out: unknown report file type '\.docx' \(expected a \.html, \.md or \.csv file/);
  assert.equal(proc.code, 1);
  assert.match(proc.stderr, /--out: cannot create the folder \/proc\/nope/);
  assert.doesNotMatch(proc.stderr, /tmp-/);
  assert.deepEqual(fingerprint(root), before);
});

test('a missing dataset fails experiment validate and run once, before a run directory is made', async () => {
  const empty = join(root, 'no-fashion');
  mkdirSync(empty);
  const out = join(root, 'fashion-run');
  const set = ['--set', 'dataset=fashion-mnist', '--set', `dataDir=${empty}`];
  const [validate, run] = await Promise.all([
    cli(['experiment', 'validate', QUICKSTART, ...set]),
    cli(['run', QUICKSTART, ...set, '--out', out]),
  ]);
  for (const r of [validate, run]) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no-fashion: missing dataset file train-images-idx3-ubyte\[\.gz\]/);
    assert.equal(r.stderr.match(/missing dataset file/g)?.length, 1, 'said once');
    assert.ok(r.stderr.length < 1000, `${r.stderr.length} characters`);
  }
  assert.equal(existsSync(out), false);
});

test('episodes: 1e9 is warned about before the run starts', async () => {
  const r = await cli(['experiment', 'validate', QUICKSTART, '--set', 'episodes=1000000000']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warn: episodes: 1000000000 is far beyond what searches need/);
});

function writeIdx(dir: string, labels: number[], prefix = 'train'): void {
  mkdirSync(dir, { recursive: true });
  const n = labels.length;
  writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), encodeIdx([n, 28, 28], new Uint8Array(n * 784).fill(7)));
  writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), encodeIdx([n], labels));
}

test('idx: a label byte of 200 does not make a 201-class network; --num-classes states the count', async () => {
  const dir = join(root, 'idx-200');
  const labels = Array.from({ length: 40 }, (_, i) => i % 10);
  labels[17] = 200;
  writeIdx(dir, labels);
  const before = fingerprint(dir);
  const args = ['train', '--model', 'lenet5', '--dataset', 'idx', '--data-dir', dir, '--epochs', '1'];
  const [inferred, stated, elsewhere] = await Promise.all([
    cli(args),
    cli([...args, '--num-classes', '10']),
    cli(['train', '--model', 'lenet5', '--num-classes', '10']),
  ]);
  assert.equal(inferred.code, 1);
  assert.match(
    inferred.stderr,
    /train-labels-idx1-ubyte --num-classes: label 200 \(at index 17\) implies 201 classes, but only 11 distinct labels occur/,
  );
  assert.equal(stated.code, 1);
  assert.match(
    stated.stderr,
    /train-labels-idx1-ubyte: label 200 at index 17 is out of range \(expected labels 0\.\.9/,
  );
  assert.equal(elsewhere.code, 1);
  assert.match(elsewhere.stderr, /--num-classes: applies to --dataset idx only/);
  assert.deepEqual(fingerprint(dir), before);
});

test('idx: a folder with only t10k files says there are no training files', async () => {
  const dir = join(root, 'idx-t10k');
  writeIdx(dir, [0, 1, 2, 3], 't10k');
  const r = await cli(['train', '--model', 'lenet5', '--dataset', 'idx', '--data-dir', dir]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /idx-t10k --data-dir: holds only test files \(t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte\) and no training files/,
  );
});
