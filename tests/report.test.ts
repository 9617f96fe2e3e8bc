/**
 * Reports from real run directories. The runs are produced here with the run store from a real search:
 * real agents (agents/index.ts) stepping the real BitAllocationEnv through runEpisode, the real cost table
 * of built-in device profiles for the mobilenet-tiny layer inventory, and the synthetic accuracy evaluator
 * (envs/synthetic.ts) in place of QAT so the test stays fast. final.json holds the evaluator's noise-free
 * accuracy of the best allocation (standing in for the fine-tuned test accuracy), uniform.json the uniform
 * W8A8..W2A2 points.
 *
 * One more run comes from the search runner itself (src/search/runner.ts: real QAT of LeNet-5 on MNIST,
 * a few episodes) to check that what the real search writes reports the same way.
 *
 * The HTML is opened in headless Chromium (skipped, with a message, only when /usr/bin/chromium is absent).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { createAgent } from '../agents/index.js';
import { BitAllocationEnv } from '../envs/bit-allocation-env.js';
import { SyntheticEvaluator } from '../envs/synthetic.js';
import { initBackend, tf } from '../src/backend/index.js';
import { buildCostTable, loadProfile } from '../src/hardware/index.js';
import { loadInventory } from '../src/models/index.js';
import type { LayerInfo } from '../src/models/layer-info.js';
import { CSV_COLUMNS, loadRuns, paretoFront, renderHtml, writeReport } from '../src/report/index.js';
import { runEpisode } from '../src/search/episode.js';
import { envRewardSpec, validateExperiment } from '../src/experiment/experiment.js';
import { runPendingCells } from '../src/search/runner.js';
import {
  appendEpisode,
  createRun,
  readEpisodes,
  saveCheckpoint,
  type EpisodeRecord,
  type UniformPoint,
} from '../src/run/run-store.js';

const bin = fileURLToPath(new URL('../../bin/bitalloc.js', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const root = mkdtempSync(join(tmpdir(), 'bitalloc-report-'));
after(() => {
  if (!process.env['BITALLOC_KEEP_TEST_RUNS']) rmSync(root, { recursive: true, force: true });
});

const EPISODES = 30;
let runA = '';
let runB = '';
let runReal = '';
let layers: LayerInfo[] = [];
let reportAll = { code: -1, stdout: '', stderr: '' };

/** Runs every cell of an experiment into a new run directory (see the header comment). */
async function makeRun(dir: string, raw: Record<string, unknown>): Promise<string> {
  const exp = validateExperiment(raw);
  const run = createRun(dir, exp, { backend: tf.getBackend(), tfjs: tf.version.tfjs, command: ['test', 'report'] });
  for (const cell of run.cells) {
    const spec = cell.spec;
    const table = buildCostTable(loadProfile(spec.profile.spec), layers, exp.bitChoices);
    const evaluator = new SyntheticEvaluator({ layers, seed: 11, noise: 0.004 });
    const env = new BitAllocationEnv({
      layers,
      bitChoices: exp.bitChoices,
      cost: (b) => table.costAllocation(b),
      evaluator,
      constraints: spec.budget.constraints,
      constraintMode: exp.constraintMode,
      reward: envRewardSpec(exp.reward),
      stepMode: exp.stepMode,
      seed: spec.seed,
    });
    const agent = createAgent(spec.agent.name, spec.agent.options);
    cell.setStatus('running');
    const started = Date.now();
    await agent.setup(env.agentContext(spec.seed));
    for (let e = 1; e <= exp.episodes; e++) {
      if (agent.kind === 'allocation' && agent.exhausted?.()) break;
      const t0 = performance.now();
      const s = await runEpisode(env, agent);
      const record: EpisodeRecord = {
        episode: e,
        bits: s.bits,
        accuracy: Number.isFinite(s.accuracy) ? s.accuracy : null,
        loss: Number.isFinite(s.loss) ? s.loss : null,
        latencyMs: s.cost.latencyMs,
        energyUj: s.cost.energyUj,
        sizeBytes: s.cost.sizeBytes,
        peakMemoryBytes: s.cost.peakMemoryBytes,
        feasible: s.feasible,
        reward: s.reward,
        wallMs: performance.now() - t0,
      };
      appendEpisode(cell, record);
      cell.offerBest(record);
      if (e % exp.checkpointEvery === 0) await saveCheckpoint(cell, { episode: e, agentState: agent.getState() });
    }
    const best = cell.readBest();
    if (best) {
      const cost = table.costAllocation(best.bits);
      cell.writeFinal({
        bits: best.bits,
        testAccuracy: evaluator.accuracyOf(best.bits),
        latencyMs: cost.latencyMs,
        energyUj: cost.energyUj,
        sizeBytes: cost.sizeBytes,
        peakMemoryBytes: cost.peakMemoryBytes,
        feasible: true,
        wallSeconds: (Date.now() - started) / 1000,
        episodesToBest: best.episode,
        layerNames: layers.map((l) => l.name),
      });
    }
    const uniform: UniformPoint[] = [8, 6, 4, 3, 2].map((b) => {
      const bits = layers.map(() => ({ wBits: b, aBits: b }));
      const cost = table.costAllocation(bits);
      return {
        bits: { wBits: b, aBits: b },
        accuracy: evaluator.accuracyOf(bits),
        latencyMs: cost.latencyMs,
        energyUj: cost.energyUj,
        sizeBytes: cost.sizeBytes,
        peakMemoryBytes: cost.peakMemoryBytes,
      };
    });
    cell.writeUniform(uniform);
    agent.dispose?.();
    cell.setStatus('done');
  }
  run.close();
  return run.dir;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  await initBackend('wasm');
  layers = await loadInventory('mobilenet-tiny', { inputShape: [28, 28, 1], numClasses: 10 });
  const t0 = Date.now();
  runA = await makeRun(join(root, 'runA'), {
    name: 'report-a',
    model: 'mobilenet-tiny',
    dataset: 'fashion-mnist',
    profiles: ['bitfusion-45nm', 'bismo-pynq-z1'],
    budgets: [['latency<=0.5x']],
    agents: ['random', 'reinforce', 'evolution'],
    seeds: [1, 2],
    episodes: EPISODES,
    checkpointEvery: 10,
  });
  runB = await makeRun(join(root, 'runB'), {
    name: 'report-b',
    model: 'mobilenet-tiny',
    dataset: 'fashion-mnist',
    profiles: ['bitfusion-45nm'],
    budgets: [['latency<=0.5x']],
    agents: ['uniform'],
    seeds: [1],
    episodes: EPISODES,
  });
  const t1 = Date.now();
  const real = createRun(
    join(root, 'runReal'),
    validateExperiment({
      name: 'report-real',
      model: 'lenet5',
      dataset: 'mnist',
      profiles: ['bitfusion-45nm'],
      budgets: [['latency<=0.6x']],
      agents: ['random'],
      seeds: [1],
      episodes: 4,
      qatSteps: 2,
      warmupEpochs: 0,
      finetuneEpochs: 0,
      evalSamples: 200,
      checkpointEvery: 2,
    }),
    { backend: tf.getBackend(), tfjs: tf.version.tfjs, command: ['test', 'report'] },
  );
  const outcomes = await runPendingCells(real, { workers: 1 });
  real.close();
  assert.ok(
    outcomes.every((o) => o.ok),
    JSON.stringify(outcomes.map((o) => o.error)),
  );
  runReal = real.dir;
  process.stdout.write(`# search runner (real QAT) run in ${((Date.now() - t1) / 1000).toFixed(1)} s\n`);
  reportAll = await cli(['report', runA, '--format', 'all']);
  process.stdout.write(`# made the run directories in ${((Date.now() - t0) / 1000).toFixed(1)} s (${root})\n`);
});

function allEpisodes(dir: string): { cell: string; episodes: EpisodeRecord[] }[] {
  return loadRuns([dir])[0]?.cells.map((c) => ({ cell: c.id, episodes: c.episodes })) ?? [];
}

test('bitalloc report --format all writes report.html, report.md and episodes.csv into the run directory', () => {
  const r = reportAll;
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['report.html', 'report.md', 'episodes.csv']) {
    assert.ok(existsSync(join(runA, f)), f);
    assert.match(r.stdout, new RegExp(`wrote .*${f.replace('.', '\\.')}`));
  }
});

test('CSV: every episode of every cell, with the documented columns, bits as w/a;w/a', async () => {
  const csv = readFileSync(join(runA, 'episodes.csv'), 'utf8').trimEnd().split('\n');
  assert.equal(csv[0], CSV_COLUMNS.join(','));
  const cells = allEpisodes(runA);
  const total = cells.reduce((a, c) => a + c.episodes.length, 0);
  assert.equal(csv.length - 1, total);
  assert.ok(total >= 12 * 5, `${total} episodes`);
  const first = cells[0];
  const row = csv[1].split(',');
  const col = (name: string) => row[CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number])];
  assert.equal(col('cell'), first.cell);
  assert.equal(col('run'), 'runA');
  assert.equal(col('episode'), '1');
  assert.equal(Number(col('latencyMs')), first.episodes[0]?.latencyMs);
  assert.equal(col('bits'), first.episodes[0]?.bits.map((b) => `${b.wBits}/${b.aBits}`).join(';'));
  assert.equal(col('budget'), 'latency<=0.5x');
});

test('Markdown: a summary table per (profile, budget) with a row per agent', () => {
  const md = readFileSync(join(runA, 'report.md'), 'utf8');
  assert.match(md, /^## bitfusion-45nm · latency<=0\.5x$/m);
  assert.match(md, /^## bismo-pynq-z1 · latency<=0\.5x$/m);
  assert.match(
    md,
    /\| agent \| seeds done \| accuracy \| latency \(ms\) \| energy \(uJ\) \| size \(KB\) \| episodes to best \| wall time \(s\) \|/,
  );
  for (const agent of ['random', 'reinforce', 'evolution']) {
    const rows = md.split('\n').filter((l) => l.startsWith(`| ${agent} |`));
    assert.equal(rows.length, 2, agent);
    assert.match(rows[0], /\| 2\/2 \| \d+\.\d\d% ± \d+\.\d\d% \|/);
  }
  assert.match(md, /\| W8A8 \| \d+\.\d\d% \|/);
});

test('summary figures are the mean over seeds of final.json', () => {
  const runs = loadRuns([runA]);
  const cells = runs[0]?.cells.filter((c) => c.agent === 'reinforce' && c.profile === 'bitfusion-45nm') ?? [];
  assert.equal(cells.length, 2);
  const mean = cells.reduce((a, c) => a + (c.final?.testAccuracy ?? NaN), 0) / 2;
  const md = readFileSync(join(runA, 'report.md'), 'utf8');
  const row = md.split('\n').find((l) => l.startsWith('| reinforce |')) as string;
  assert.ok(row.includes(`${(mean * 100).toFixed(2)}%`), `${row} vs mean ${mean}`);
});

test('HTML is self-contained: no scripts, no external URLs, one chart set per group', () => {
  const html = readFileSync(join(runA, 'report.html'), 'utf8');
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /<link/i);
  assert.doesNotMatch(html, /@import|url\(/i);
  const urls = html.match(/https?:\/\/[^\s"'<)]+/g) ?? [];
  assert.deepEqual([...new Set(urls)], ['http://www.w3.org/2000/svg'], 'only the SVG namespace');
  assert.equal((html.match(/data-chart="reward-/g) ?? []).length, 2);
  assert.equal((html.match(/data-chart="bits-/g) ?? []).length, 2 * 3);
});

test('the HTML opens in headless Chromium with no console errors, every chart non-empty; screenshot saved', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing: install it with 'apt-get install -y chromium' to run this test`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    const url = `file://${join(runA, 'report.html')}`;
    await page.goto(url, { waitUntil: 'load' });
    assert.deepEqual(errors, []);
    assert.deepEqual(requests, [url], 'nothing fetched but the page itself');
    requests.length = 0;

    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((s) => {
        const box = s.getBoundingClientRect();
        const marks = [...s.querySelectorAll('.mark')];
        return {
          id: s.getAttribute('data-chart') ?? '',
          marks: marks.length,
          series: [...s.querySelectorAll('g.series')].filter((g) => g.querySelector('.mark')).length,
          fronts: s.querySelectorAll('.mark.front').length,
          refs: s.querySelectorAll('.mark.ref').length,
          bars: s.querySelectorAll('.mark.bar').length,
          nonZeroBars: [...s.querySelectorAll('.mark.bar')].filter((b) => Number(b.getAttribute('height')) > 0).length,
          visible: box.width > 100 && box.height > 100,
        };
      }),
    );
    for (const group of ['bitfusion-45nm__latency-0-5x', 'bismo-pynq-z1__latency-0-5x']) {
      const of = (prefix: string) => charts.filter((c) => c.id.startsWith(`${prefix}-${group}`));
      for (const c of [...of('reward'), ...of('best-accuracy')]) {
        assert.equal(c.series, 3, `${c.id}: a line (or a point, for one episode) per agent`);
        assert.ok(c.visible, c.id);
      }
      assert.equal(of('reward').length, 1);
      assert.equal(of('best-accuracy').length, 1);
      for (const prefix of ['acc-vs-latency', 'acc-vs-energy']) {
        const [c] = of(prefix);
        assert.ok(c, `${prefix} ${group}`);
        assert.ok(c.marks > 3 * EPISODES, `${c.id}: ${c.marks} marks`);
        assert.equal(c.fronts, 3, `${c.id}: one Pareto front per agent`);
        assert.equal(c.refs, 5, `${c.id}: the uniform W8A8..W2A2 points`);
      }
      const bits = of('bits');
      assert.equal(bits.length, 3, 'one bit chart per agent');
      for (const c of bits) {
        assert.equal(c.bars, 2 * layers.length, `${c.id}: wBits and aBits for each layer`);
        assert.equal(c.nonZeroBars, 2 * layers.length);
      }
    }
    assert.equal(charts.length, 2 * (4 + 3));
    const tableRows = await page.$$eval('table.summary tr', (rows) => rows.length);
    assert.equal(tableRows, 2 * (1 + 3));
    // the report of the run made by the search runner (real QAT) renders too
    const [realHtml] = writeReport([runReal], { formats: ['html'] }).files;
    await page.goto(`file://${realHtml}`, { waitUntil: 'load' });
    const realCharts = await page.$$eval('svg.chart', (svgs) => svgs.map((s) => s.querySelectorAll('.mark').length));
    assert.equal(realCharts.length, 5);
    assert.ok(
      realCharts.every((n) => n > 0),
      `marks per chart: ${realCharts.join(', ')}`,
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(requests, [`file://${realHtml}`]);
    await page.goto(url, { waitUntil: 'load' });

    const shot = join(runA, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 50_000, 'a full-page screenshot');
    process.stdout.write(`# screenshot: ${shot}\n`);
  } finally {
    await browser.close();
  }
});

test('a run made by the search runner (real QAT) reports in every format', () => {
  const { files } = writeReport([runReal], { formats: ['html', 'md', 'csv'] });
  assert.equal(files.length, 3);
  const [cell] = loadRuns([runReal])[0]?.cells ?? [];
  assert.ok(
    cell && cell.status === 'done' && cell.final && cell.uniform.length > 0,
    'the runner wrote final.json and uniform.json',
  );
  const csv = readFileSync(join(runReal, 'episodes.csv'), 'utf8').trimEnd().split('\n');
  assert.equal(csv.length - 1, 4);
  const md = readFileSync(join(runReal, 'report.md'), 'utf8');
  assert.ok(md.includes(`| random | 1/1 | ${(100 * cell.final.testAccuracy).toFixed(2)}% |`), md);
  const html = readFileSync(join(runReal, 'report.html'), 'utf8');
  for (const chart of ['reward-', 'best-accuracy-', 'acc-vs-latency-', 'acc-vs-energy-', 'bits-'])
    assert.ok(html.includes(`data-chart="${chart}`), chart);
  assert.equal((html.match(/class="mark bar"/g) ?? []).length, 2 * cell.final.bits.length);
});

test('several run directories merge into one report', () => {
  const out = join(root, 'merged', 'compare.md');
  mkdirSync(join(root, 'merged'), { recursive: true });
  const { files } = writeReport([runA, runB], { out, formats: ['md'] });
  assert.deepEqual(files, [out]);
  const md = readFileSync(out, 'utf8');
  const group = md.split('## bismo-pynq-z1')[0];
  for (const agent of ['random', 'reinforce', 'evolution', 'uniform'])
    assert.match(group, new RegExp(`^\\| ${agent} \\|`, 'm'));
  assert.match(md, /\| runA \| report-a \|/);
  assert.match(md, /\| runB \| report-b \|/);
  const html = renderHtml(loadRuns([runA, runB]));
  assert.equal((html.match(/data-chart="bits-bitfusion/g) ?? []).length, 4);
});

test('a run still being written (torn last line) is reported without touching its files', () => {
  const cell = join(runB, 'cells', 'uniform__bitfusion-45nm__latency-0.5x__s1', 'episodes.jsonl');
  appendFileSync(cell, '{"episode": 99, "bits": [');
  const before = readFileSync(cell, 'utf8');
  writeReport([runB], { formats: ['csv'], out: join(root, 'b.csv') });
  assert.equal(readFileSync(cell, 'utf8'), before);
  assert.equal(
    readFileSync(join(root, 'b.csv'), 'utf8').trimEnd().split('\n').length - 1,
    readEpisodes(cell, { repair: false }).episodes.length,
  );
});

test('a missing directory, or one that is not a run, is a clear error with exit 1', async () => {
  mkdirSync(join(root, 'plain'), { recursive: true });
  const [missing, plain, badFormat] = await Promise.all([
    cli(['report', join(root, 'no-such-run')]),
    cli(['report', join(root, 'plain')]),
    cli(['report', runA, '--out', join(root, 'x.csv'), '--format', 'html']),
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: .*no-such-run: run directory not found/);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /plain: not a bitalloc run directory \(no run\.json\)/);
  assert.doesNotMatch(missing.stderr + plain.stderr, /\n\s+at /);
  assert.equal(badFormat.code, 1);
  assert.match(badFormat.stderr, /--out/);
});

test('Pareto front: non-dominated points only, sorted by cost', () => {
  const pts = [
    { x: 1, y: 0.5 },
    { x: 2, y: 0.7 },
    { x: 2, y: 0.6 },
    { x: 3, y: 0.65 },
    { x: 0.5, y: 0.4 },
    { x: 4, y: 0.9 },
  ];
  assert.deepEqual(paretoFront(pts), [
    { x: 0.5, y: 0.4 },
    { x: 1, y: 0.5 },
    { x: 2, y: 0.7 },
    { x: 4, y: 0.9 },
  ]);
});
