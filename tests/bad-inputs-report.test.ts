/**
 * Bad inputs, part 4: the smaller things a user noticed in the output of info, inspect and the HTML report.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { validateExperiment } from '../src/experiment/experiment.js';
import { loadRuns, renderHtml } from '../src/report/index.js';
import { appendEpisode, createRun, type EpisodeRecord } from '../src/run/run-store.js';
import { cli } from './bad-inputs-kit.js';

const root = mkdtempSync(join(tmpdir(), 'bitalloc-bad-report-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('info keeps its value column narrow; inspect shows no stride for dense layers and explains live', async () => {
  const [info, inspect] = await Promise.all([cli(['info']), cli(['inspect', '--model', 'lenet5'])]);
  assert.equal(info.code, 0, info.stderr);
  const widest = Math.max(...info.stdout.split('\n').map((l) => l.length));
  assert.ok(widest <= 100, `widest line ${widest} characters`);
  assert.match(info.stdout, /kernels registered: /);
  assert.equal(inspect.code, 0, inspect.stderr);
  const fc1 = inspect.stdout.split('\n').find((l) => /\bfc1\b/.test(l)) ?? '';
  assert.doesNotMatch(fc1, /0x0/);
  assert.match(fc1, /dense\s+\S+\s+-\s+-/);
  assert.match(inspect.stdout, /live: elements of earlier tensors still held/);
});

function episode(n: number, accuracy: number, bits = 4): EpisodeRecord {
  return {
    episode: n,
    bits: [
      { wBits: bits, aBits: bits },
      { wBits: bits, aBits: bits },
    ],
    accuracy,
    loss: 1,
    latencyMs: 0.001 * (1 + n / 10),
    energyUj: 1 + n / 10,
    sizeBytes: 1000,
    peakMemoryBytes: 100,
    feasible: true,
    reward: 0,
    wallMs: 10,
  };
}

test('HTML: uniform accuracy labelled, low outliers on the floor, budget line named only when drawn, every seed, no local paths', () => {
  const exp = validateExperiment({
    name: 'report-items',
    model: 'lenet5',
    dataset: 'mnist',
    profiles: ['bitfusion-45nm'],
    budgets: [['latency<=0.5x']],
    agents: ['random'],
    seeds: [1, 2],
    episodes: 12,
  });
  const run = createRun(join(root, 'run'), exp, {
    backend: 'wasm',
    tfjs: '4.22.0',
    command: ['bitalloc', 'run', '/home/someone/secret/exp.json'],
  });
  for (const cell of run.cells) {
    for (let n = 1; n <= 11; n++) appendEpisode(cell, episode(n, 0.9 + n / 1000));
    appendEpisode(cell, episode(12, 0.1, 2)); // a W2A2 outlier
    cell.writeUniform([
      { bits: { wBits: 8, aBits: 8 }, accuracy: 0.9, latencyMs: 0.002, energyUj: 2, sizeBytes: 2000 },
      { bits: { wBits: 2, aBits: 2 }, accuracy: 0.1, latencyMs: 0.0005, energyUj: 0.5, sizeBytes: 500 },
    ]);
  }
  run.close();
  const html = renderHtml(loadRuns([run.dir]));
  assert.match(html, /val accuracy \(not fine-tuned\)/);
  assert.match(html, /class="outlier-note"[^>]*>[^<]*points? below/);
  assert.match(html, /No energy budget in this group, so no budget line/);
  assert.match(html, /acc-vs-latency[\s\S]*Dashed: the budget\./);
  const seedRows = html.match(/<table class="seed-bits">[\s\S]*?<\/table>/)?.[0] ?? '';
  assert.equal((seedRows.match(/<tr><td>random<\/td><td>\d<\/td>/g) ?? []).length, 2, 'a row per seed');
  assert.equal(html.includes(root), false, 'the run folder path is not in the page');
  assert.equal(html.includes('/home/someone'), false);
});
