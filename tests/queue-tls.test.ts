/**
 * rediss:// against a real TLS redis-server on loopback (plain port disabled), with a throwaway CA made by
 * openssl: the CA reaches the client through BITALLOC_REDIS_CA; without it the certificate is refused with an
 * error naming that variable; a queued 1-cell run and `queue status` work over TLS.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUserError } from '../src/errors.js';
import { checkQueueReachable, parseQueueTarget } from '../src/queue/connection.js';
import {
  BIN,
  bitalloc,
  makeTlsFiles,
  readEpisodeLines,
  startRedis,
  tlsUnavailable,
  within,
  type RedisFixture,
  type TlsFiles,
} from './queue-redis.js';

const skip = tlsUnavailable();
const work = mkdtempSync(join(tmpdir(), 'bitalloc-queue-tls-'));
let redis: RedisFixture | undefined;
let tls: TlsFiles;

before(async () => {
  if (skip) return;
  tls = makeTlsFiles(work);
  redis = await startRedis([], { tls });
});
after(async () => {
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

test(
  'rediss:// with the CA in BITALLOC_REDIS_CA connects; without it the certificate is refused',
  { skip: skip ?? false },
  async () => {
    const url = (redis as RedisFixture).url;
    assert.match(url, /^rediss:\/\/127\.0\.0\.1:\d+$/);
    await checkQueueReachable(parseQueueTarget(url, 'tls', { env: { BITALLOC_REDIS_CA: tls.caCert } }));
    await assert.rejects(
      checkQueueReachable(parseQueueTarget(url, 'tls', { env: {}, connectTimeoutMs: 3000 })),
      (e: unknown) => {
        assert.ok(isUserError(e), String(e));
        assert.match(e.message, /^--queue: cannot use Redis at rediss:\/\/127\.0\.0\.1:\d+: [A-Z_]*CERT/);
        assert.match(e.message, /BITALLOC_REDIS_CA/);
        return true;
      },
    );
    // the plain protocol on the TLS port gets no answer it understands: an error, not a hang
    const t0 = Date.now();
    await assert.rejects(
      checkQueueReachable(parseQueueTarget(url.replace('rediss:', 'redis:'), 'tls', { connectTimeoutMs: 2000 })),
      (e: unknown) => isUserError(e) && /^--queue: cannot use Redis at redis:\/\//.test(e.message),
    );
    // a liveness bound (a hang would never answer), far above the 2 s connect timeout so load cannot trip it
    assert.ok(Date.now() - t0 < 30_000, `answered in ${Date.now() - t0} ms`);
  },
);

test('a queued 1-cell run and queue status over rediss://', { skip: skip ?? false }, async () => {
  const url = (redis as RedisFixture).url;
  const env = { BITALLOC_REDIS_CA: tls.caCert };
  const exp = join(work, 'tls.json');
  writeFileSync(
    exp,
    JSON.stringify({
      name: 'tls-run',
      model: 'lenet5',
      dataset: 'mnist',
      profiles: ['bitfusion-45nm'],
      budgets: [['latency<=0.5x']],
      agents: ['random'],
      seeds: [1],
      episodes: 2,
      qatSteps: 1,
      warmupEpochs: 0,
      finetuneEpochs: 0,
      evalSamples: 50,
      trainSamples: 200,
      checkpointEvery: 1,
    }),
  );
  const dir = join(work, 'run');
  const args = ['--queue', url, '--prefix', 'tls', '--backend', 'wasm'];
  const coordinator = bitalloc(['run', exp, '--out', dir, ...args], env);
  const worker = bitalloc(['worker', ...args, '--lock-duration', '4000', '--stalled-interval', '1000'], env);
  try {
    assert.equal(await within(coordinator.exited, 180_000, 'coordinator'), 0, coordinator.stderr());
    assert.deepEqual(
      readEpisodeLines(join(dir, 'cells', 'random__bitfusion-45nm__latency-0.5x__s1', 'episodes.jsonl')).map(
        (e) => e.episode,
      ),
      [1, 2],
    );
    const status = spawnSync(process.execPath, [BIN, 'queue', 'status', '--queue', url, '--prefix', 'tls', '--json'], {
      encoding: 'utf8',
      timeout: 90_000,
      env: { ...process.env, ...env },
    });
    assert.equal(status.status, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { queue: string; runs: { name: string; counts: Record<string, number> }[] };
    assert.equal(s.queue, url);
    assert.equal(s.runs[0]?.name, 'tls-run');
    assert.equal(s.runs[0]?.counts['done'], 1);
    // Node's own NODE_EXTRA_CA_CERTS (added to the system's CAs) works as well
    const viaNode = spawnSync(process.execPath, [BIN, 'queue', 'status', '--queue', url, '--prefix', 'tls'], {
      encoding: 'utf8',
      timeout: 90_000,
      env: { ...process.env, BITALLOC_REDIS_CA: '', NODE_EXTRA_CA_CERTS: tls.caCert },
    });
    assert.equal(viaNode.status, 0, viaNode.stderr);
    assert.match(viaNode.stdout, /run tls-run-[0-9a-f]{10} .*: 0 waiting, 0 running, 1 done, 0 failed/);
  } finally {
    worker.child.kill('SIGTERM');
    await within(worker.exited, 30_000, 'worker on SIGTERM');
    if (coordinator.child.exitCode === null) coordinator.child.kill('SIGKILL');
  }
});
