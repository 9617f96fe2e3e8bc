/** `bitalloc train` / `bitalloc eval` as a user runs them: a child process, --json output, exit codes. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/bitalloc.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'bitalloc-cli-'));
const floatDir = join(dir, 'float');

test('train --json prints accuracy, loss, epochs, bits, backend, samplesPerSec, model, dataset, seed and saves a checkpoint', async () => {
  const r = await cli(
    'train',
    '--model',
    'lenet5',
    '--dataset',
    'mnist',
    '--limit',
    '400',
    '--epochs',
    '2',
    '--seed',
    '3',
    '--json',
    '--out',
    floatDir,
  );
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  for (const k of ['accuracy', 'loss', 'epochs', 'bits', 'backend', 'samplesPerSec', 'model', 'dataset', 'seed'])
    assert.ok(k in out, `missing ${k}`);
  assert.equal(out['model'], 'lenet5');
  assert.equal(out['dataset'], 'mnist');
  assert.equal(out['seed'], 3);
  assert.equal(out['epochs'], 2);
  assert.equal(out['backend'], 'wasm');
  assert.equal(out['quantized'], false);
  assert.ok((out['accuracy'] as number) > 0.3 && (out['accuracy'] as number) <= 1);
  assert.ok((out['loss'] as number) > 0);
  assert.ok((out['samplesPerSec'] as number) > 0);
  const bits = out['bits'] as { name: string; wBits: number; aBits: number }[];
  assert.deepEqual(
    bits.map((b) => b.name),
    ['conv1', 'conv2', 'fc1', 'fc2', 'fc3'],
  );
  assert.ok(bits.every((b) => b.wBits === 32 && b.aBits === 32));
  for (const f of ['model.json', 'weights.bin', 'bits.json', 'run.json']) assert.ok(existsSync(join(floatDir, f)), f);
  const run = JSON.parse(readFileSync(join(floatDir, 'run.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(run['seed'], 3);
  assert.equal(run['backend'], 'wasm');
  assert.equal((run['versions'] as Record<string, unknown>)['bitalloc'], '0.1.0');
  assert.equal((run['config'] as Record<string, unknown>)['epochs'], 2);
});

test('eval reproduces the checkpoint test accuracy; QAT from the checkpoint with a bits file', async () => {
  assert.ok(existsSync(floatDir), 'needs the train test');
  const saved = JSON.parse(readFileSync(join(floatDir, 'run.json'), 'utf8')) as {
    results: { test: { accuracy: number; loss: number } };
  };
  const e = await cli('eval', '--checkpoint', floatDir, '--limit', '400', '--json');
  assert.equal(e.code, 0, e.stderr);
  const ev = JSON.parse(e.stdout) as Record<string, unknown>;
  assert.equal(ev['accuracy'], saved.results.test.accuracy);
  assert.ok(Math.abs((ev['loss'] as number) - saved.results.test.loss) < 1e-6);
  assert.equal(ev['dataset'], 'mnist');

  const bitsFile = join(dir, 'bits.json');
  writeFileSync(
    bitsFile,
    JSON.stringify({
      layers: ['conv1', 'conv2', 'fc1', 'fc2', 'fc3'].map((name, i) => ({
        name,
        wBits: i === 0 ? 8 : 4,
        aBits: i === 0 ? 8 : 4,
      })),
    }),
  );
  const q = await cli('train', '--checkpoint', floatDir, '--bits-file', bitsFile, '--limit', '400', '--json');
  assert.equal(q.code, 0, q.stderr);
  const qo = JSON.parse(q.stdout) as Record<string, unknown>;
  assert.equal(qo['quantized'], true);
  assert.equal(qo['model'], 'lenet5');
  assert.equal(qo['epochs'], 2, 'QAT from a checkpoint defaults to a quarter of the float epochs');
  assert.deepEqual(
    (qo['bits'] as { wBits: number }[]).map((b) => b.wBits),
    [8, 4, 4, 4, 4],
  );

  const w = await cli('eval', '--checkpoint', floatDir, '--wbits', '8', '--abits', '8', '--limit', '400', '--json');
  assert.equal(w.code, 0, w.stderr);
  const wo = JSON.parse(w.stdout) as { bits: { wBits: number; aBits: number }[]; accuracy: number };
  assert.ok(wo.bits.every((b) => b.wBits === 8 && b.aBits === 8));
  assert.ok(Math.abs(wo.accuracy - saved.results.test.accuracy) < 0.05, `W8A8 post-training ${wo.accuracy}`);
});

const BAD: [string, string[], RegExp][] = [
  ['negative epochs', ['--model', 'lenet5', '--epochs', '-2'], /--epochs: must be an integer >= 0, got '-2'/],
  ['unknown model', ['--model', 'vgg99'], /--model: unknown model 'vgg99'.*lenet5/],
  [
    'unknown dataset',
    ['--model', 'lenet5', '--dataset', 'imagenet'],
    /--dataset: unknown dataset 'imagenet'.*fashion-mnist/,
  ],
  ['--wbits without --abits', ['--model', 'lenet5', '--wbits', '4'], /--wbits needs --abits/],
  [
    'bits out of range',
    ['--model', 'lenet5', '--wbits', '12', '--abits', '4'],
    /--wbits: invalid bit-width '12'.*1, 2, 3, 4, 5, 6, 7, 8, 16, 32/,
  ],
  ['missing cifar10 directory', ['--model', 'resnet8', '--dataset', 'cifar10'], /--data-dir.*data_batch_1\.bin/],
];

describe('bad flags', { concurrency: 3 }, () => {
  for (const [what, args, re] of BAD) {
    test(`train with ${what} exits 1 with a clear message and no stack trace`, async () => {
      const r = await cli('train', ...args, '--json');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: /m);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.equal(r.stdout, '');
    });
  }
});

test('eval of a missing checkpoint exits 1 naming it', async () => {
  const r = await cli('eval', '--checkpoint', join(dir, 'nope'), '--json');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: .*nope.*checkpoint directory not found/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
