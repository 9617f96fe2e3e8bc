/**
 * Bad inputs, part 3: a run stopped by SIGTERM finishes its episode, checkpoints, releases run.lock, leaves
 * the cell pending, exits 143 and says how to resume; the resume continues from that episode. A SIGTERM during
 * the float warm-up stops the run as promptly, keeping nothing of the half warm-up.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BIN, QUICKSTART, cli } from './bad-inputs-kit.js';

const root = mkdtempSync(join(tmpdir(), 'bitalloc-bad-signals-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SMALL = [
  '--set',
  'episodes=500',
  '--set',
  'qatSteps=1',
  '--set',
  'warmupEpochs=0',
  '--set',
  'finetuneEpochs=0',
  '--set',
  'evalSamples=50',
  '--set',
  'checkpointEvery=100',
];

function episodeLines(dir: string): number {
  const cellDir = join(dir, 'cells', 'ppo__bitfusion-45nm__latency-0.5x__s1');
  const p = join(cellDir, 'episodes.jsonl');
  return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter(Boolean).length : 0;
}

test('SIGTERM: the episode finishes, a checkpoint is written, run.lock released, exit 143 with the resume command', async () => {
  const dir = join(root, 'run');
  const child = spawn(process.execPath, [BIN, 'run', QUICKSTART, ...SMALL, '--out', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 120_000;
  while (episodeLines(dir) < 2) {
    assert.ok(Date.now() < deadline, `no episodes after 120 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  const code = await exited;
  assert.equal(code, 143, stderr);
  assert.match(stderr, /SIGTERM: finishing the current episode/);
  assert.match(stderr, new RegExp(`resume with: bitalloc run --resume ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.equal(existsSync(join(dir, 'run.lock')), false, 'lock released');
  const info = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { cells: { status: string }[] };
  assert.equal(info.cells[0]?.status, 'pending');
  const lines = episodeLines(dir);
  assert.ok(lines >= 2 && lines < 500, `${lines} episodes`);
  const ck = JSON.parse(
    readFileSync(join(dir, 'cells', 'ppo__bitfusion-45nm__latency-0.5x__s1', 'checkpoint', 'checkpoint.json'), 'utf8'),
  ) as { state: { episode: number } };
  assert.equal(ck.state.episode, lines, 'checkpoint at the last finished episode, although checkpointEvery is 100');

  const resumed = await cli(['run', '--resume', dir, '--stop-after', '1'], { timeoutMs: 120_000 });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming .* after episode ${lines}`));
  assert.equal(episodeLines(dir), lines + 1, 'no episode lost or repeated');
});

test('SIGTERM during the float warm-up: the run stops mid warm-up, the cell stays pending, nothing half-trained is kept', async () => {
  const dir = join(root, 'warmup-run');
  const args = [BIN, 'run', QUICKSTART, ...SMALL, '--set', 'warmupEpochs=50', '--out', dir];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 120_000;
  while (!/float warm-up \d+\/\d+/.test(stderr)) {
    assert.ok(Date.now() < deadline, `no warm-up progress after 120 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  const code = await exited;
  assert.equal(code, 143, stderr);
  // the warm-up ended where the signal found it, not after its last step (50 epochs of the quickstart take minutes)
  const steps = [...stderr.matchAll(/float warm-up (\d+)\/(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  const [done, total] = steps[steps.length - 1] ?? [NaN, NaN];
  assert.ok(done < total, `the warm-up went on to step ${done} of ${total}`);
  assert.match(stderr, /stopped by SIGTERM during the float warm-up/);
  assert.doesNotMatch(stderr, /float warm-up \d+\/\d+ \(100%\)/, 'the warm-up bar does not claim it finished');
  assert.equal(existsSync(join(dir, 'run.lock')), false, 'lock released');
  const info = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { cells: { status: string }[] };
  assert.equal(info.cells[0]?.status, 'pending');
  assert.equal(episodeLines(dir), 0);
  assert.equal(
    existsSync(join(dir, 'warmup')) && readdirSync(join(dir, 'warmup')).length > 0,
    false,
    'no warm-up cached',
  );
});
