/**
 * Queued runs against a real redis-server on loopback: a 6-cell experiment on 3 worker processes with one
 * killed by SIGKILL mid-cell ends with every cell done, every episodes.jsonl holding 1..N once each, and the
 * results of a local run of the same cells (wasm is deterministic); a coordinator killed and resumed with
 * --resume DIR --queue carries on; a worker stopped with SIGTERM hands its cell back to another worker.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseQueueTarget } from '../src/queue/connection.js';
import { queueStatus } from '../src/queue/status.js';
import { bitalloc, readEpisodeLines, sleep, startRedis, within, type Proc, type RedisFixture } from './queue-redis.js';

const EPISODES = 6;
const EXPERIMENT = {
  name: 'queue-test',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm'],
  budgets: [['latency<=0.5x']],
  agents: ['random', 'reinforce', 'uniform'],
  seeds: [1, 2],
  episodes: EPISODES,
  qatSteps: 1,
  warmupEpochs: 0,
  finetuneEpochs: 0,
  evalSamples: 60,
  trainSamples: 200,
  checkpointEvery: 2,
  // tfjs forward passes keep an episode long enough for the hand-back test to stop a cell in its middle
  evalBackend: 'tfjs',
};
const WORKER_FLAGS = [
  '--lock-duration',
  '4000',
  '--stalled-interval',
  '1000',
  '--max-stalled',
  '10',
  '--backend',
  'wasm',
  '--log-level',
  'info',
];

const work = mkdtempSync(join(tmpdir(), 'bitalloc-queue-'));
const expFile = join(work, 'experiment.json');
const localDir = join(work, 'local');
let redis: RedisFixture;
let local: Proc;

before(async () => {
  writeFileSync(expFile, JSON.stringify(EXPERIMENT, null, 2));
  redis = await startRedis();
  // the same cells run locally, for comparison (started now, it runs alongside the queued run)
  local = bitalloc(['run', expFile, '--out', localDir, '--backend', 'wasm']);
});

after(async () => {
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

const readJson = (p: string): Record<string, unknown> => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
function without<T extends Record<string, unknown>>(o: T, ...keys: string[]): Record<string, unknown> {
  const c: Record<string, unknown> = { ...o };
  for (const k of keys) delete c[k];
  return c;
}

/** Every cell of `queuedDir` done, with episodes 1..N and the content of the same cell of the local run. */
async function assertSameAsLocal(queuedDir: string): Promise<string[]> {
  assert.equal(await within(local.exited, 240_000, 'local run'), 0, local.stderr());
  const run = readJson(join(queuedDir, 'run.json')) as { cells: { id: string; status: string }[] };
  const ids = run.cells.map((c) => c.id);
  for (const c of run.cells) assert.equal(c.status, 'done', `${c.id} is done`);
  for (const id of ids) {
    const q = join(queuedDir, 'cells', id);
    const l = join(localDir, 'cells', id);
    const qa = readEpisodeLines(join(q, 'episodes.jsonl'));
    const la = readEpisodeLines(join(l, 'episodes.jsonl'));
    assert.deepEqual(
      qa.map((e) => e.episode),
      Array.from({ length: EPISODES }, (_, i) => i + 1),
      `${id}: episodes 1..${EPISODES} once each`,
    );
    assert.deepEqual(
      qa.map((e) => without(e as unknown as Record<string, unknown>, 'wallMs')),
      la.map((e) => without(e as unknown as Record<string, unknown>, 'wallMs')),
      `${id}: the episodes of the local run`,
    );
    assert.deepEqual(
      without(readJson(join(q, 'final.json')), 'wallSeconds'),
      without(readJson(join(l, 'final.json')), 'wallSeconds'),
      `${id}: final.json`,
    );
    assert.deepEqual(
      without(readJson(join(q, 'best.json')), 'wallMs'),
      without(readJson(join(l, 'best.json')), 'wallMs'),
      `${id}: best.json`,
    );
    assert.deepEqual(readJson(join(q, 'uniform.json')), readJson(join(l, 'uniform.json')), `${id}: uniform.json`);
    // (index: the restart test runs a subset of the cells)
    assert.deepEqual(
      without(readJson(join(q, 'cell.json')), 'index'),
      without(readJson(join(l, 'cell.json')), 'index'),
      `${id}: cell.json`,
    );
    const qc = readJson(join(q, 'checkpoint', 'checkpoint.json')) as { state: { episode: number; best: unknown } };
    const lc = readJson(join(l, 'checkpoint', 'checkpoint.json')) as { state: { episode: number; best: unknown } };
    assert.equal(qc.state.episode, lc.state.episode, `${id}: last checkpoint`);
    assert.deepEqual(
      readFileSync(join(q, 'final-network', 'weights.bin')),
      readFileSync(join(l, 'final-network', 'weights.bin')),
      `${id}: final network`,
    );
    assert.deepEqual(filesUnder(q), filesUnder(l), `${id}: the same files`);
  }
  const top = (d: string) =>
    readdirSync(d)
      .filter((f) => f !== 'run.lock')
      .sort();
  assert.deepEqual(top(queuedDir), top(localDir), 'the same top-level entries');
  return ids;
}

const workerPid = (name: string | undefined): number => Number((name ?? '').split(':').pop());

interface RunningCell {
  cell: string;
  episode: number;
  pid: number;
}

/** Polls `queue status` until a running cell satisfies `want`; null when `gaveUp()` turns true first. */
async function waitForRunning(
  prefix: string,
  want: (c: RunningCell) => boolean,
  gaveUp: () => boolean,
): Promise<RunningCell | null> {
  const target = parseQueueTarget(redis.url, prefix);
  for (;;) {
    for (const run of await queueStatus(target)) {
      for (const c of run.cells) {
        const r = { cell: c.cell, episode: c.episode ?? 0, pid: workerPid(c.worker) };
        if (c.state === 'running' && want(r)) return r;
      }
    }
    if (gaveUp()) return null;
    await sleep(150);
  }
}

test('6 cells on 3 worker processes, one killed with SIGKILL mid-cell: every cell done, episodes 1..N once, equal to a local run', async (t) => {
  const dir = join(work, 'queued');
  const prefix = 'kill';
  const coordinator = bitalloc([
    'run',
    expFile,
    '--queue',
    redis.url,
    '--prefix',
    prefix,
    '--out',
    dir,
    '--backend',
    'wasm',
  ]);
  const workers = [1, 2, 3].map((i) =>
    bitalloc([
      'worker',
      '--queue',
      redis.url,
      '--prefix',
      prefix,
      '--store',
      join(work, `store-${i}`),
      ...WORKER_FLAGS,
    ]),
  );
  try {
    const deadline = Date.now() + 180_000;
    const running = await waitForRunning(
      prefix,
      (c) => c.episode >= 3 && c.episode <= EPISODES - 2 && workers.some((w) => w.child.pid === c.pid),
      () => coordinator.child.exitCode !== null || Date.now() > deadline,
    );
    if (!running)
      assert.fail(`no cell reached episode 3 before the run ended or 180 s passed: ${coordinator.stderr()}`);
    const victim = {
      proc: workers.find((w) => w.child.pid === running.pid) as Proc,
      cell: running.cell,
      episode: running.episode,
    };
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exited;
    t.diagnostic(
      `killed worker pid ${victim.proc.child.pid} (SIGKILL) while it ran ${victim.cell} at episode ${victim.episode}/${EPISODES}`,
    );

    assert.equal(await within(coordinator.exited, 240_000, 'coordinator'), 0, coordinator.stderr());
    const resumedLine = coordinator
      .stderr()
      .split('\n')
      .find((l) => l.includes(victim.cell) && /continuing after episode \d+/.test(l));
    assert.ok(resumedLine, `another worker continued ${victim.cell} from a checkpoint:\n${coordinator.stderr()}`);
    t.diagnostic(`coordinator: ${resumedLine.trim()}`);

    // the others stop cleanly on SIGTERM
    const others = workers.filter((w) => w !== victim.proc);
    for (const w of others) w.child.kill('SIGTERM');
    for (const w of others) assert.equal(await within(w.exited, 30_000, 'worker on SIGTERM'), 0, w.stderr());

    const ids = await assertSameAsLocal(dir);
    assert.equal(ids.length, 6);
    const status = await queueStatus(parseQueueTarget(redis.url, prefix));
    assert.equal(status[0]?.counts.done, 6, 'queue status: 6 done');
  } finally {
    for (const p of [coordinator, ...workers])
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
});

test('a coordinator killed with SIGKILL resumes with --resume DIR --queue; a worker stopped with SIGTERM hands its cell to another', async (t) => {
  const dir = join(work, 'restart');
  const prefix = 'restart';
  const runArgs = ['--queue', redis.url, '--prefix', prefix, '--backend', 'wasm'];
  const first = bitalloc(['run', expFile, '--set', 'seeds=[1]', '--out', dir, ...runArgs]);
  const workerA = bitalloc(['worker', '--queue', redis.url, '--prefix', prefix, ...WORKER_FLAGS]);
  let second: Proc | null = null;
  let workerB: Proc | null = null;
  try {
    const episodesOnDisk = (): number => {
      const cells = join(dir, 'cells');
      if (!existsSync(cells)) return 0;
      return Math.max(0, ...readdirSync(cells).map((c) => readEpisodeLines(join(cells, c, 'episodes.jsonl')).length));
    };
    const deadline = Date.now() + 180_000;
    while (episodesOnDisk() < 3) {
      if (first.child.exitCode !== null) assert.fail(`the coordinator ended early: ${first.stderr()}`);
      if (Date.now() > deadline) assert.fail('no 3 episodes within 180 s');
      await sleep(100);
    }
    first.child.kill('SIGKILL');
    await first.exited;
    t.diagnostic(`coordinator killed with ${episodesOnDisk()} episodes on disk in its furthest cell`);
    await sleep(1500); // the worker carries on meanwhile; its records wait in Redis

    second = bitalloc(['run', '--resume', dir, ...runArgs]);
    // stop worker A with SIGTERM in the middle of a cell; worker B takes the cell over
    const resumed = second;
    const handed = await waitForRunning(
      prefix,
      (c) => c.episode >= 1 && c.episode <= EPISODES - 2 && c.pid === workerA.child.pid,
      () => resumed.child.exitCode !== null || Date.now() > deadline, // (all done before A could be stopped mid-cell)
    );
    workerA.child.kill('SIGTERM');
    assert.equal(await within(workerA.exited, 60_000, 'worker A on SIGTERM'), 0, workerA.stderr());
    if (handed) {
      assert.match(
        workerA.stderr(),
        new RegExp(`${handed.cell.replace(/[.+]/g, '\\$&')}: handed back after episode \\d+`),
      );
      t.diagnostic(
        `worker A stopped with SIGTERM while running ${handed.cell} at episode ${handed.episode}; ${/handed back after episode \d+/.exec(workerA.stderr())?.[0]}`,
      );
    }
    workerB = bitalloc(['worker', '--queue', redis.url, '--prefix', prefix, ...WORKER_FLAGS]);
    assert.equal(await within(second.exited, 240_000, 'resumed coordinator'), 0, second.stderr());
    assert.match(second.stderr(), /resuming .*: \d+ of 3 cells left/);
    workerB.child.kill('SIGTERM');
    assert.equal(await within(workerB.exited, 30_000, 'worker B on SIGTERM'), 0, workerB.stderr());
    const ids = await assertSameAsLocal(dir);
    assert.equal(ids.length, 3);
  } finally {
    for (const p of [first, second, workerA, workerB])
      if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
});
