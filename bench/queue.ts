/**
 * `npm run bench -- queue [--json] [--cells N] [--episodes N] [--reps N]`: a small preset (lenet5/mnist on
 * bitfusion-45nm, random agent, N seeds = N cells, wasm) run locally (`bitalloc run`, one process) and on
 * the queue (`bitalloc run --queue` with 1 and with 2 `bitalloc worker` processes, on a redis-server started
 * here on loopback). Prints cells per hour of each, and the overhead per episode of the queue path against
 * the local run: end to end ((queued wall - local wall) / episodes, as a share of the local time per
 * episode) and inside the episode loop (median episode wallMs). Target: overhead per episode <= 5%.
 * Reps are interleaved (local, 1 worker, 2 workers, local, ...) so each comparison is from the same minutes;
 * figures are medians over reps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bitalloc.js');

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function waitFor(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const t = setTimeout(
      () => reject(new Error(`${what}: not ready within ${timeoutMs / 1000} s: ${seen}`)),
      timeoutMs,
    );
    const on = (d: Buffer): void => {
      seen += d.toString();
      if (pattern.test(seen)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => {
      clearTimeout(t);
      if (!pattern.test(seen)) reject(new Error(`${what} exited with ${code}: ${seen}`));
    });
  });
}

function runCli(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) =>
      code === 0
        ? resolve((performance.now() - t0) / 1000)
        : reject(new Error(`bitalloc ${args.join(' ')}: exit ${code}\n${err}`)),
    );
  });
}

function episodeWallMs(runDir: string): number[] {
  const out: number[] = [];
  for (const c of readdirSync(join(runDir, 'cells'))) {
    for (const line of readFileSync(join(runDir, 'cells', c, 'episodes.jsonl'), 'utf8').split('\n')) {
      if (line.trim()) out.push((JSON.parse(line) as { wallMs: number }).wallMs);
    }
  }
  return out;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

interface Sample {
  wallSeconds: number;
  medianEpisodeMs: number;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const cells = Number(flag(argv, 'cells') ?? 4);
  const episodes = Number(flag(argv, 'episodes') ?? 20);
  const reps = Number(flag(argv, 'reps') ?? 3);
  const work = mkdtempSync(join(tmpdir(), 'bitalloc-bench-queue-'));
  const expFile = join(work, 'experiment.json');
  writeFileSync(
    expFile,
    JSON.stringify({
      name: 'bench-queue',
      model: 'lenet5',
      dataset: 'mnist',
      profiles: ['bitfusion-45nm'],
      budgets: [['latency<=0.5x']],
      agents: ['random'],
      seeds: Array.from({ length: cells }, (_, i) => i + 1),
      episodes,
      qatSteps: 5,
      warmupEpochs: 0,
      finetuneEpochs: 0,
      evalSamples: 200,
      trainSamples: 1000,
      checkpointEvery: 5,
    }),
  );
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const redis = spawn(
    '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const workers: ChildProcess[] = [];
  try {
    await waitFor(redis, /Ready to accept connections/i, 'redis-server');
    const startWorkers = async (n: number, prefix: string): Promise<ChildProcess[]> => {
      const ws = Array.from({ length: n }, () =>
        spawn(process.execPath, [BIN, 'worker', '--queue', url, '--prefix', prefix, '--backend', 'wasm'], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      workers.push(...ws);
      await Promise.all(ws.map((w) => waitFor(w, /taking cells from/, 'worker')));
      return ws;
    };
    const stopWorkers = async (ws: ChildProcess[]): Promise<void> => {
      await Promise.all(
        ws.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.exitCode !== null) return resolve();
              w.once('exit', () => resolve());
              w.kill('SIGTERM');
            }),
        ),
      );
    };
    const samples: Record<'local' | 'queue1' | 'queue2', Sample[]> = { local: [], queue1: [], queue2: [] };
    for (let rep = 0; rep < reps; rep++) {
      const localDir = join(work, `local-${rep}`);
      const wall = await runCli(['run', expFile, '--out', localDir, '--backend', 'wasm', '--log-level', 'warn']);
      samples.local.push({ wallSeconds: wall, medianEpisodeMs: median(episodeWallMs(localDir)) });
      for (const n of [1, 2] as const) {
        const prefix = `bench${rep}w${n}`;
        const ws = await startWorkers(n, prefix); // workers idle and connected: the clock starts with the coordinator
        const dir = join(work, `queue${n}-${rep}`);
        const w = await runCli([
          'run',
          expFile,
          '--out',
          dir,
          '--queue',
          url,
          '--prefix',
          prefix,
          '--backend',
          'wasm',
          '--log-level',
          'warn',
        ]);
        samples[n === 1 ? 'queue1' : 'queue2'].push({ wallSeconds: w, medianEpisodeMs: median(episodeWallMs(dir)) });
        await stopWorkers(ws);
      }
      process.stderr.write(
        `rep ${rep + 1}/${reps}: local ${samples.local[rep]?.wallSeconds.toFixed(1)} s, 1 worker ${samples.queue1[rep]?.wallSeconds.toFixed(1)} s, 2 workers ${samples.queue2[rep]?.wallSeconds.toFixed(1)} s\n`,
      );
    }
    const totalEpisodes = cells * episodes;
    const med = (k: keyof typeof samples, f: keyof Sample): number => median(samples[k].map((s) => s[f]));
    const localWall = med('local', 'wallSeconds');
    const q1Wall = med('queue1', 'wallSeconds');
    const q2Wall = med('queue2', 'wallSeconds');
    const perEpisodeLocalMs = (1000 * localWall) / totalEpisodes;
    const result = {
      bench: 'queue',
      preset: {
        model: 'lenet5',
        dataset: 'mnist',
        profile: 'bitfusion-45nm',
        agent: 'random',
        cells,
        episodes,
        qatSteps: 5,
        evalSamples: 200,
        backend: 'wasm',
      },
      reps,
      wallSeconds: { local: localWall, queue1Worker: q1Wall, queue2Workers: q2Wall },
      cellsPerHour: {
        local: (3600 * cells) / localWall,
        queue1Worker: (3600 * cells) / q1Wall,
        queue2Workers: (3600 * cells) / q2Wall,
      },
      speedup2vs1Workers: q1Wall / q2Wall,
      overheadPerEpisode: {
        endToEndMs: (1000 * (q1Wall - localWall)) / totalEpisodes,
        endToEndShare: (q1Wall - localWall) / localWall,
        localMsPerEpisode: perEpisodeLocalMs,
        medianEpisodeMs: { local: med('local', 'medianEpisodeMs'), queue1Worker: med('queue1', 'medianEpisodeMs') },
        inLoopShare: med('queue1', 'medianEpisodeMs') / med('local', 'medianEpisodeMs') - 1,
      },
      target: 'overhead per episode <= 5%',
      samples,
    };
    if (json) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      return;
    }
    const o = result.overheadPerEpisode;
    process.stdout.write(
      `queue bench: ${cells} cells x ${episodes} episodes (lenet5/mnist/bitfusion-45nm, random, K=5, 200 val samples, wasm), median of ${reps} reps\n` +
        `                     wall s   cells/hour\n` +
        `local (1 process)  ${localWall.toFixed(1).padStart(7)}  ${result.cellsPerHour.local.toFixed(0).padStart(11)}\n` +
        `queue, 1 worker    ${q1Wall.toFixed(1).padStart(7)}  ${result.cellsPerHour.queue1Worker.toFixed(0).padStart(11)}\n` +
        `queue, 2 workers   ${q2Wall.toFixed(1).padStart(7)}  ${result.cellsPerHour.queue2Workers.toFixed(0).padStart(11)}   (${result.speedup2vs1Workers.toFixed(2)}x 1 worker)\n` +
        `overhead per episode, queue (1 worker) vs local: end to end ${o.endToEndMs.toFixed(1)} ms = ${(100 * o.endToEndShare).toFixed(1)}% of ${o.localMsPerEpisode.toFixed(1)} ms; ` +
        `inside the episode loop (median episode ${o.medianEpisodeMs.queue1Worker.toFixed(1)} vs ${o.medianEpisodeMs.local.toFixed(1)} ms) ${(100 * o.inLoopShare).toFixed(1)}%  (target <= 5%)\n`,
    );
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    redis.kill('SIGTERM');
    await new Promise((r) => (redis.exitCode !== null ? r(null) : redis.once('exit', r)));
    rmSync(work, { recursive: true, force: true });
  }
}
