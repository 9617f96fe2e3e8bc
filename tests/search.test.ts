/**
 * The search end to end on a real network: a short search returns a feasible allocation; a run killed with
 * SIGKILL resumes with episodes exactly 1..N and the same result as an uninterrupted run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { setLogLevel } from '../src/log.js';
import { runSearch, searchSpec } from '../src/search/search.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bitalloc.js');

test('a short real search (lenet5, mnist, bitfusion-45nm, 20 episodes) returns a feasible allocation', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const r = await runSearch(
    searchSpec({
      agent: 'reinforce',
      episodes: 20,
      qatSteps: 5,
      evalSamples: 300,
      finetuneEpochs: 1,
      seed: 3,
      checkpointEvery: 5,
    }),
    { plainProgress: true },
  );
  assert.equal(r.episodes, 20);
  assert.ok(r.best, 'a feasible allocation was found');
  assert.equal(r.best.feasible, true);
  assert.equal(r.best.bits.length, 5);
  assert.ok(
    r.best.latencyMs <= 0.5 * r.reference.w8a8LatencyMs * (1 + 1e-9),
    `latency ${r.best.latencyMs} within 0.5x of ${r.reference.w8a8LatencyMs}`,
  );
  assert.ok(r.final && r.final.testAccuracy > 0.8, `test accuracy after fine-tune ${r.final?.testAccuracy}`);
  assert.equal(r.uniform.length, 7);
});

interface Line {
  episode: number;
  bits: unknown;
  accuracy: number | null;
  reward: number;
}

function readLines(file: string): Line[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
}

const RUN_ARGS = [
  'run',
  join(ROOT, 'experiments', 'quickstart.json'),
  '--set',
  'episodes=8',
  '--set',
  'qatSteps=3',
  '--set',
  'warmupEpochs=0',
  '--set',
  'finetuneEpochs=0',
  '--set',
  'evalSamples=200',
  '--set',
  'checkpointEvery=1',
  '--set',
  'agents=["reinforce"]',
  '--backend',
  'wasm',
];

test('a run killed with SIGKILL resumes with no episode lost or repeated, equal to the uninterrupted run', async () => {
  const work = mkdtempSync(join(tmpdir(), 'bitalloc-resume-'));
  try {
    const killedDir = join(work, 'killed');
    const fullDir = join(work, 'full');
    const child = spawn(process.execPath, [BIN, ...RUN_ARGS, '--out', killedDir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const episodesFile = (dir: string) => {
      const cells = join(dir, 'cells');
      if (!existsSync(cells)) return null;
      const id = spawnSync('ls', [cells], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
      return id ? join(cells, id, 'episodes.jsonl') : null;
    };
    // wait until at least 3 episodes are on disk, then kill -9 mid-run
    const deadline = Date.now() + 240_000;
    for (;;) {
      const f = episodesFile(killedDir);
      if (f && existsSync(f) && readLines(f).length >= 3) break;
      if (child.exitCode !== null) assert.fail(`the run ended before it could be killed: ${stderr}`);
      if (Date.now() > deadline) assert.fail('no 3 episodes within 240 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = readLines(episodesFile(killedDir) as string).length;
    assert.ok(before >= 3 && before < 8, `killed mid-run after ${before} episodes`);

    const resumed = spawnSync(process.execPath, [BIN, 'run', '--resume', killedDir, '--backend', 'wasm'], {
      encoding: 'utf8',
    });
    assert.equal(resumed.status, 0, resumed.stderr);
    const full = spawnSync(process.execPath, [BIN, ...RUN_ARGS, '--out', fullDir], { encoding: 'utf8' });
    assert.equal(full.status, 0, full.stderr);

    const a = readLines(episodesFile(killedDir) as string);
    const b = readLines(episodesFile(fullDir) as string);
    assert.deepEqual(
      a.map((l) => l.episode),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    // the wasm backend is deterministic: the resumed run equals the uninterrupted one
    assert.deepEqual(
      a.map((l) => [l.episode, l.bits, l.accuracy, l.reward]),
      b.map((l) => [l.episode, l.bits, l.accuracy, l.reward]),
    );
    const finalA = JSON.parse(readFileSync(join(episodesFile(killedDir) as string, '..', 'final.json'), 'utf8')) as {
      testAccuracy: number;
      bits: unknown;
    };
    const finalB = JSON.parse(readFileSync(join(episodesFile(fullDir) as string, '..', 'final.json'), 'utf8')) as {
      testAccuracy: number;
      bits: unknown;
    };
    assert.deepEqual(finalA.bits, finalB.bits);
    assert.equal(finalA.testAccuracy, finalB.testAccuracy);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('search: bad flags are named as flags, exit 1, no stack trace, nothing written', () => {
  const work = mkdtempSync(join(tmpdir(), 'bitalloc-search-flags-'));
  try {
    const out = join(work, 'run');
    const r = spawnSync(
      process.execPath,
      [
        BIN,
        'search',
        '--episodes',
        '-3',
        '--agent',
        'foo',
        '--budget',
        'latency<0.5',
        '--profile',
        'nope.json',
        '--out',
        out,
      ],
      {
        encoding: 'utf8',
        cwd: work,
      },
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--episodes: must be >= 1, got -3/);
    assert.match(r.stderr, /--agent: unknown agent 'foo' \(expected one of .*ppo/);
    assert.match(r.stderr, /--budget: bad constraint 'latency<0\.5'/);
    assert.match(r.stderr, /--profile: profile file 'nope\.json' not found/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(existsSync(out), false, 'nothing written');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("sharedWeights 'restore': every episode's QAT starts from the starting weights, so uniform W8A8 ends where it began", async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const spec = {
    agent: 'random',
    episodes: 3,
    qatSteps: 8,
    evalSamples: 200,
    finetuneEpochs: 0,
    trainLimit: 600,
    seed: 5,
  };
  const restored = await runSearch(searchSpec({ ...spec, sharedWeights: 'restore' }), { plainProgress: true });
  assert.equal(restored.reference.sharedWeights, 'restore');
  const start = restored.reference.w8a8ValAccuracyStart;
  assert.ok(typeof start === 'number' && start > 0.5, `W8A8 start ${String(start)}`);
  assert.equal(restored.reference.w8a8ValAccuracyEnd, start);
  const carried = await runSearch(searchSpec(spec), { plainProgress: true });
  assert.equal(carried.reference.sharedWeights, 'carry', 'the default for a zoo network');
  assert.equal(carried.reference.w8a8ValAccuracyStart, start, 'same start');
  assert.equal(typeof carried.reference.w8a8ValAccuracyEnd, 'number');
});
