/**
 * Queue connection settings and failures: bad --queue URLs and prefixes are named with the expected form
 * (and never echo a password); an unreachable Redis is an error within seconds with no run directory made;
 * credentials come from the environment and are never printed; a cell that fails (a profile that breaks at
 * cost-table time) is reported failed, in run.json and `queue status`, while the other cell completes; a
 * connection lost while running is one warning per outage, without the password.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUserError } from '../src/errors.js';
import { checkQueueReachable, parseQueueTarget } from '../src/queue/connection.js';
import {
  BIN,
  ROOT,
  bitalloc,
  freePort,
  readEpisodeLines,
  sleep,
  startRedis,
  waitForStderr,
  within,
  type RedisFixture,
} from './queue-redis.js';

const work = mkdtempSync(join(tmpdir(), 'bitalloc-queue-errors-'));
let redis: RedisFixture;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

function userError(fn: () => unknown, ...patterns: RegExp[]): string {
  let message = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(isUserError(e), `a UserError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    message = e.message;
    return true;
  });
  return message;
}

test('bad --queue URLs and prefixes name the flag and the expected form', () => {
  userError(
    () => parseQueueTarget('http://127.0.0.1:6379'),
    /^--queue: unsupported scheme 'http'/,
    /expected redis:\/\/HOST:PORT\[\/DB\] or rediss:\/\//,
  );
  userError(
    () => parseQueueTarget('127.0.0.1:6379'),
    /^--queue: unsupported scheme '127\.0\.0\.1'|^--queue: not a URL/,
  );
  userError(() => parseQueueTarget('redis ://x'), /^--queue: not a URL/);
  userError(() => parseQueueTarget(''), /^--queue: needs a Redis URL/);
  userError(() => parseQueueTarget('redis://127.0.0.1:6379/abc'), /^--queue: bad database 'abc'/);
  userError(() => parseQueueTarget('redis://127.0.0.1:6379?x=1'), /^--queue: no \?query/);
  userError(() => parseQueueTarget('redis://127.0.0.1:6379', 'a:b'), /^--prefix: bad prefix 'a:b'/);
  const withPassword = userError(
    () => parseQueueTarget('redis://alice:s3cret-pw@127.0.0.1:6379'),
    /^--queue: .*carries credentials/,
    /BITALLOC_REDIS_PASSWORD/,
  );
  assert.doesNotMatch(withPassword, /s3cret-pw/, 'the password is not echoed');
  const t = parseQueueTarget('rediss://127.0.0.1:6380/2', 'team-a', {
    env: { BITALLOC_REDIS_USERNAME: 'u', BITALLOC_REDIS_PASSWORD: 'p' },
  });
  assert.deepEqual(
    [t.host, t.port, t.db, t.tls, t.prefix, t.display],
    ['127.0.0.1', 6380, 2, true, 'team-a', 'rediss://127.0.0.1:6380/2'],
  );
  assert.equal(t.redis.password, 'p');
  assert.equal(t.redis.username, 'u');
  assert.doesNotMatch(t.display, /\bp\b|u@/);
});

test('an unreachable Redis is an error naming --queue within seconds; no run directory is made', async () => {
  const port = await freePort(); // nothing listens there
  const t0 = Date.now();
  await assert.rejects(
    checkQueueReachable(parseQueueTarget(`redis://127.0.0.1:${port}`, 'x', { connectTimeoutMs: 2000 })),
    (e: unknown) => {
      assert.ok(isUserError(e));
      assert.match(
        e.message,
        new RegExp(`^--queue: cannot use Redis at redis://127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
      );
      return true;
    },
  );
  assert.ok(Date.now() - t0 < 8000, `answered in ${Date.now() - t0} ms`);
  const out = join(work, 'never');
  const r = spawnSync(
    process.execPath,
    [BIN, 'run', join(ROOT, 'experiments', 'quickstart.json'), '--queue', `redis://127.0.0.1:${port}`, '--out', out],
    {
      encoding: 'utf8',
      timeout: 90_000,
    },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /error: --queue: cannot use Redis at redis:\/\/127\.0\.0\.1:\d+/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(existsSync(out), false, 'no run directory');
  const w = spawnSync(
    process.execPath,
    [BIN, 'worker', '--queue', 'redis://127.0.0.1'.replace('127.0.0.1', '127.0.0.1:' + port)],
    { encoding: 'utf8', timeout: 90_000 },
  );
  assert.equal(w.status, 1);
  assert.match(w.stderr, /error: --queue: cannot use Redis/);
  const bad = spawnSync(process.execPath, [BIN, 'queue', 'status', '--queue', 'tcp://127.0.0.1:1'], {
    encoding: 'utf8',
    timeout: 90_000,
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /error: --queue: unsupported scheme 'tcp'/);
});

test('credentials come from BITALLOC_REDIS_USERNAME / BITALLOC_REDIS_PASSWORD and are never printed', async () => {
  const locked = await startRedis(['--requirepass', 'right-horse-battery']);
  try {
    const wrong = spawnSync(process.execPath, [BIN, 'queue', 'status', '--queue', locked.url], {
      encoding: 'utf8',
      timeout: 90_000,
      env: { ...process.env, BITALLOC_REDIS_PASSWORD: 'wrong-staple-42' },
    });
    assert.equal(wrong.status, 1);
    assert.match(
      wrong.stderr,
      /--queue: cannot use Redis at redis:\/\/127\.0\.0\.1:\d+: authentication failed \(expected valid credentials in BITALLOC_REDIS_USERNAME \/ BITALLOC_REDIS_PASSWORD\)/,
    );
    assert.doesNotMatch(wrong.stderr + wrong.stdout, /wrong-staple-42|right-horse-battery/);
    const right = spawnSync(process.execPath, [BIN, 'queue', 'status', '--queue', locked.url, '--json'], {
      encoding: 'utf8',
      timeout: 90_000,
      env: { ...process.env, BITALLOC_REDIS_PASSWORD: 'right-horse-battery' },
    });
    assert.equal(right.status, 0, right.stderr);
    assert.deepEqual(JSON.parse(right.stdout), { queue: locked.url, prefix: 'bitalloc', runs: [] });
    assert.doesNotMatch(right.stderr + right.stdout, /right-horse-battery/);
  } finally {
    await locked.stop();
  }
});

test('a cell whose profile fails is reported failed (run.json, queue status) without stopping the other cell', async () => {
  const npu = JSON.parse(
    readFileSync(join(ROOT, 'hardware-profiles', 'examples', 'expression-npu.json'), 'utf8'),
  ) as Record<string, unknown> & {
    compute: Record<string, unknown>;
  };
  delete npu['$schema'];
  npu['id'] = 'broken-npu';
  npu.compute['cycles'] = 'macs * (wBits - 6) + 64'; // valid JSON and schema, negative cycles below 6 bits
  const profile = join(work, 'broken-npu.json');
  writeFileSync(profile, JSON.stringify(npu, null, 2));
  const exp = join(work, 'failing.json');
  writeFileSync(
    exp,
    JSON.stringify({
      name: 'failing-cell',
      model: 'lenet5',
      dataset: 'mnist',
      profiles: ['bitfusion-45nm', profile],
      budgets: [['latency<=0.5x']],
      agents: ['random'],
      seeds: [1],
      episodes: 3,
      qatSteps: 1,
      warmupEpochs: 0,
      finetuneEpochs: 0,
      evalSamples: 50,
      trainSamples: 200,
      checkpointEvery: 1,
    }),
  );
  const dir = join(work, 'failing-run');
  const prefix = 'failing';
  const coordinator = bitalloc([
    'run',
    exp,
    '--queue',
    redis.url,
    '--prefix',
    prefix,
    '--out',
    dir,
    '--backend',
    'wasm',
  ]);
  const worker = bitalloc([
    'worker',
    '--queue',
    redis.url,
    '--prefix',
    prefix,
    '--backend',
    'wasm',
    '--lock-duration',
    '4000',
    '--stalled-interval',
    '1000',
  ]);
  try {
    assert.equal(await within(coordinator.exited, 180_000, 'coordinator'), 1, coordinator.stderr());
    assert.match(
      coordinator.stderr(),
      /error: 1 of 2 cells failed: random__broken-npu__latency-0\.5x__s1: .*broken-npu\.json \$\.compute\.cycles: evaluates to -\d+ for layer 'conv1'/,
    );
    assert.doesNotMatch(
      coordinator.stderr(),
      /bitalloc-worker-/,
      'the error names the profile file, not the worker scratch copy',
    );
    const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as {
      cells: { id: string; status: string; error?: string }[];
    };
    const byId = new Map(run.cells.map((c) => [c.id, c]));
    assert.equal(byId.get('random__bitfusion-45nm__latency-0.5x__s1')?.status, 'done');
    assert.equal(byId.get('random__broken-npu__latency-0.5x__s1')?.status, 'failed');
    assert.match(byId.get('random__broken-npu__latency-0.5x__s1')?.error ?? '', /evaluates to -\d+/);
    assert.deepEqual(
      readEpisodeLines(join(dir, 'cells', 'random__bitfusion-45nm__latency-0.5x__s1', 'episodes.jsonl')).map(
        (e) => e.episode,
      ),
      [1, 2, 3],
    );
    const status = spawnSync(
      process.execPath,
      [BIN, 'queue', 'status', '--queue', redis.url, '--prefix', prefix, '--json'],
      { encoding: 'utf8', timeout: 90_000 },
    );
    assert.equal(status.status, 0, status.stderr);
    const s = JSON.parse(status.stdout) as {
      runs: {
        name: string;
        counts: Record<string, number>;
        cells: { cell: string; state: string; error?: string }[];
      }[];
    };
    assert.equal(s.runs.length, 1);
    assert.equal(s.runs[0]?.name, 'failing-cell');
    assert.deepEqual(s.runs[0]?.counts, { waiting: 0, running: 0, done: 1, failed: 1 });
    const failed = s.runs[0]?.cells.find((c) => c.state === 'failed');
    assert.equal(failed?.cell, 'random__broken-npu__latency-0.5x__s1');
    assert.match(failed?.error ?? '', /\$\.compute\.cycles: evaluates to -\d+/);
    const text = spawnSync(process.execPath, [BIN, 'queue', 'status', '--queue', redis.url, '--prefix', prefix], {
      encoding: 'utf8',
      timeout: 90_000,
    });
    assert.match(
      text.stdout,
      /run failing-cell-[0-9a-f]{10} \(failing-cell, .* on .*\): 0 waiting, 0 running, 1 done, 1 failed/,
    );
    assert.match(text.stdout, /random__broken-npu__latency-0\.5x__s1\s+failed\s+.*evaluates to/);
  } finally {
    worker.child.kill('SIGTERM');
    await within(worker.exited, 30_000, 'worker on SIGTERM');
    if (coordinator.child.exitCode === null) coordinator.child.kill('SIGKILL');
  }
});

test('a Redis lost under a running worker is one warning without the password, and a note when it is back', async (t) => {
  const secret = 'lost-and-found-77';
  const first = await startRedis(['--requirepass', secret]);
  const worker = bitalloc(
    ['worker', '--queue', first.url, '--prefix', 'lost', '--backend', 'wasm', '--log-level', 'info'],
    { BITALLOC_REDIS_PASSWORD: secret },
  );
  let second: RedisFixture | null = null;
  try {
    await waitForStderr(worker, /taking cells from/, 60_000);
    await first.stop();
    await waitForStderr(worker, /lost the connection to Redis/, 30_000);
    await sleep(3000); // reconnection attempts fail meanwhile
    second = await startRedis(['--requirepass', secret], { port: first.port });
    await waitForStderr(worker, /connected to Redis at redis:\/\/127\.0\.0\.1:\d+ again/, 30_000);
    await sleep(1000);
    const err = worker.stderr();
    assert.equal(err.match(/lost the connection to Redis/g)?.length, 1, err);
    assert.match(
      err,
      /warn: worker \S+: lost the connection to Redis at redis:\/\/127\.0\.0\.1:\d+ \([^)]+\); reconnecting/,
    );
    assert.doesNotMatch(err + worker.stdout(), new RegExp(secret), 'the password is not logged');
    for (const line of err.split('\n').filter((l) => /connection to Redis|to Redis at .* again/.test(l)))
      t.diagnostic(line);
  } finally {
    worker.child.kill('SIGTERM');
    await within(worker.exited, 30_000, 'worker on SIGTERM').catch(() => worker.child.kill('SIGKILL'));
    await second?.stop();
  }
});
