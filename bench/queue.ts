/**
 * `npm run bench -- queue [--json] [--cells N] [--episodes N] [--qat-steps N] [--reps N]`: a small preset
 * (lenet5/mnist on bitfusion-45nm, random agent, N seeds = N cells, K QAT steps, wasm) run locally (`bitalloc
 * run`, one process) and on the queue (`bitalloc run --queue` with 1 and with 2 `bitalloc worker` processes,
 * on a redis-server started here on loopback). Workers are started, connected and warm (threads loaded)
 * before the clock starts with the coordinator, as long-lived workers are.
 *
 * Prints cells per hour of each, and the overhead per episode of the queue path (1 worker) against the local
 * run of the same rep, three ways:
 * - end to end: wall time of the run command, (queued - local) / episodes, as a share of the local time;
 * - inside the episode loop: the median episode wallMs of the two runs;
 * - CPU: coordinator + worker + redis-server CPU time against the local process's (load on the machine
 *   changes wall times far more than CPU times).
 * Reps are interleaved (local, 1 worker, 2 workers, local, ...); every figure is the median over reps of
 * the per-rep figure. Target: overhead per episode <= 5%.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BIN, startRedis } from '../tests/queue-redis.js';

const CPU_PRELOAD = pathToFileURL(join(import.meta.dirname, 'cpu-at-exit.js')).href;

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

function positiveInt(argv: string[], name: string, fallback: number): number {
  const v = Number(flag(argv, name) ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer`);
  return v;
}

function waitFor(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 120_000): Promise<void> {
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

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU seconds (user + system) a live process (every thread, or its main thread) has used so far; null off Linux. */
function procCpuSeconds(pid: number | undefined, mainThreadOnly = false): number | null {
  const file = mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`;
  if (!pid || !existsSync(file)) return null;
  const stat = readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // after "pid (comm) ": state is field 3 of stat(5); utime and stime are fields 14 and 15
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Runs `bitalloc ARGS`; wall seconds and the process's CPU seconds. */
function runCli(args: string[], cpuFile: string): Promise<{ wallSeconds: number; cpuSeconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--import', CPU_PRELOAD, BIN, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, BITALLOC_BENCH_CPU_FILE: cpuFile },
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      const wallSeconds = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`bitalloc ${args.join(' ')}: exit ${code}\n${err}`));
      const u = JSON.parse(readFileSync(cpuFile, 'utf8')) as { userMicros: number; systemMicros: number };
      resolve({ wallSeconds, cpuSeconds: (u.userMicros + u.systemMicros) / 1e6 });
    });
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
  /** CPU seconds: the local process, or coordinator + workers + redis-server during the run. */
  cpuSeconds: number | null;
  /** Of a queued run: the CPU seconds of each part. */
  cpuParts?: {
    coordinator: number;
    workers: number | null;
    /** The workers' main threads (Redis, BullMQ, records), without the cell threads that compute. */
    workerMainThreads: number | null;
    redis: number | null;
  };
  medianEpisodeMs: number;
}

interface RepOverhead {
  endToEndMs: number;
  endToEndShare: number;
  inLoopShare: number;
  cpuMs: number | null;
  cpuShare: number | null;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const cells = positiveInt(argv, 'cells', 4);
  const episodes = positiveInt(argv, 'episodes', 20);
  const qatSteps = positiveInt(argv, 'qat-steps', 5);
  const reps = positiveInt(argv, 'reps', 3);
  const work = mkdtempSync(join(tmpdir(), 'bitalloc-bench-queue-'));
  const expFile = join(work, 'experiment.json');
  const preset = {
    model: 'lenet5',
    dataset: 'mnist',
    profile: 'bitfusion-45nm',
    agent: 'random',
    cells,
    episodes,
    qatSteps,
    evalSamples: 200,
    trainSamples: 1000,
    checkpointEvery: 5,
    backend: 'wasm',
  };
  writeFileSync(
    expFile,
    JSON.stringify({
      name: 'bench-queue',
      model: preset.model,
      dataset: preset.dataset,
      profiles: [preset.profile],
      budgets: [['latency<=0.5x']],
      agents: [preset.agent],
      seeds: Array.from({ length: cells }, (_, i) => i + 1),
      episodes,
      qatSteps,
      warmupEpochs: 0,
      finetuneEpochs: 0,
      evalSamples: preset.evalSamples,
      trainSamples: preset.trainSamples,
      checkpointEvery: preset.checkpointEvery,
    }),
  );
  const redis = await startRedis();
  const workers: ChildProcess[] = [];
  try {
    const startWorkers = async (n: number, prefix: string): Promise<ChildProcess[]> => {
      const ws = Array.from({ length: n }, () =>
        spawn(process.execPath, [BIN, 'worker', '--queue', redis.url, '--prefix', prefix, '--backend', 'wasm'], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      workers.push(...ws);
      await Promise.all(ws.map((w) => waitFor(w, /cell thread\(s\) ready/, 'worker')));
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
      const local = await runCli(
        ['run', expFile, '--out', localDir, '--backend', 'wasm', '--log-level', 'warn'],
        join(work, `cpu-local-${rep}.json`),
      );
      samples.local.push({ ...local, medianEpisodeMs: median(episodeWallMs(localDir)) });
      for (const n of [1, 2] as const) {
        const prefix = `bench${rep}w${n}`;
        const ws = await startWorkers(n, prefix); // idle, connected and warm: the clock starts with the coordinator
        const before = [redis.pid, ...ws.map((w) => w.pid)].map((p) => procCpuSeconds(p));
        const mainBefore = ws.map((w) => procCpuSeconds(w.pid, true));
        const dir = join(work, `queue${n}-${rep}`);
        const coordinator = await runCli(
          ['run', expFile, '--out', dir, '--queue', redis.url, '--prefix', prefix, '--backend', 'wasm'].concat([
            '--log-level',
            'warn',
          ]),
          join(work, `cpu-queue${n}-${rep}.json`),
        );
        const afterCpu = [redis.pid, ...ws.map((w) => w.pid)].map((p) => procCpuSeconds(p));
        const mainAfter = ws.map((w) => procCpuSeconds(w.pid, true));
        const mainDelta = mainAfter.every((c, i) => c !== null && mainBefore[i] !== null)
          ? mainAfter.reduce<number>((sum, c, i) => sum + (c as number) - (mainBefore[i] as number), 0)
          : null;
        const delta = afterCpu.map((c, i) => (c === null || before[i] === null ? null : c - before[i]));
        const redisCpu = delta[0] ?? null;
        const workersCpu = delta.slice(1).every((c) => c !== null)
          ? delta.slice(1).reduce<number>((s, c) => s + (c as number), 0)
          : null;
        samples[n === 1 ? 'queue1' : 'queue2'].push({
          wallSeconds: coordinator.wallSeconds,
          cpuSeconds: redisCpu === null || workersCpu === null ? null : coordinator.cpuSeconds + workersCpu + redisCpu,
          cpuParts: {
            coordinator: coordinator.cpuSeconds,
            workers: workersCpu,
            workerMainThreads: mainDelta,
            redis: redisCpu,
          },
          medianEpisodeMs: median(episodeWallMs(dir)),
        });
        await stopWorkers(ws);
      }
      const f = (s: Sample | undefined): string =>
        `${s?.wallSeconds.toFixed(1)} s (CPU ${s?.cpuSeconds?.toFixed(1) ?? '-'} s)`;
      process.stderr.write(
        `rep ${rep + 1}/${reps}: local ${f(samples.local[rep])}, 1 worker ${f(samples.queue1[rep])}, 2 workers ${f(samples.queue2[rep])}\n`,
      );
    }
    const totalEpisodes = cells * episodes;
    const perRep: RepOverhead[] = samples.local.map((l, i) => {
      const q = samples.queue1[i];
      const cpu = l.cpuSeconds !== null && q.cpuSeconds !== null ? q.cpuSeconds - l.cpuSeconds : null;
      return {
        endToEndMs: (1000 * (q.wallSeconds - l.wallSeconds)) / totalEpisodes,
        endToEndShare: q.wallSeconds / l.wallSeconds - 1,
        inLoopShare: q.medianEpisodeMs / l.medianEpisodeMs - 1,
        cpuMs: cpu === null ? null : (1000 * cpu) / totalEpisodes,
        cpuShare: cpu === null || !l.cpuSeconds ? null : cpu / l.cpuSeconds,
      };
    });
    const med = (k: keyof typeof samples, f: 'wallSeconds' | 'medianEpisodeMs'): number =>
      median(samples[k].map((s) => s[f]));
    const medNullable = (xs: (number | null)[]): number | null => (xs.every((x) => x !== null) ? median(xs) : null);
    const localWall = med('local', 'wallSeconds');
    const q1Wall = med('queue1', 'wallSeconds');
    const q2Wall = med('queue2', 'wallSeconds');
    const overhead = {
      endToEndMs: median(perRep.map((r) => r.endToEndMs)),
      endToEndShare: median(perRep.map((r) => r.endToEndShare)),
      localMsPerEpisode: (1000 * localWall) / totalEpisodes,
      medianEpisodeMs: { local: med('local', 'medianEpisodeMs'), queue1Worker: med('queue1', 'medianEpisodeMs') },
      inLoopShare: median(perRep.map((r) => r.inLoopShare)),
      cpuMs: medNullable(perRep.map((r) => r.cpuMs)),
      cpuShare: medNullable(perRep.map((r) => r.cpuShare)),
      localCpuMsPerEpisode: (() => {
        const c = medNullable(samples.local.map((s) => s.cpuSeconds));
        return c === null ? null : (1000 * c) / totalEpisodes;
      })(),
    };
    const TARGET = 0.05;
    const result = {
      bench: 'queue',
      preset,
      reps,
      wallSeconds: { local: localWall, queue1Worker: q1Wall, queue2Workers: q2Wall },
      cpuSeconds: {
        local: medNullable(samples.local.map((s) => s.cpuSeconds)),
        queue1Worker: medNullable(samples.queue1.map((s) => s.cpuSeconds)),
        queue2Workers: medNullable(samples.queue2.map((s) => s.cpuSeconds)),
      },
      cellsPerHour: {
        local: (3600 * cells) / localWall,
        queue1Worker: (3600 * cells) / q1Wall,
        queue2Workers: (3600 * cells) / q2Wall,
      },
      speedup2vs1Workers: q1Wall / q2Wall,
      overheadPerEpisode: overhead,
      target: {
        share: TARGET,
        endToEndMet: overhead.endToEndShare <= TARGET,
        inLoopMet: overhead.inLoopShare <= TARGET,
        cpuMet: overhead.cpuShare === null ? null : overhead.cpuShare <= TARGET,
      },
      perRep,
      samples,
    };
    if (json) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      return;
    }
    const o = overhead;
    const pct = (x: number | null): string => (x === null ? '-' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);
    const met = (x: boolean | null): string => (x === null ? 'not measured' : x ? 'met' : 'NOT met');
    const cpu = (x: number | null): string => (x === null ? '-' : x.toFixed(1));
    process.stdout.write(
      `queue bench: ${cells} cells x ${episodes} episodes (lenet5/mnist/bitfusion-45nm, random, K=${qatSteps}, 200 val samples, wasm); ` +
        `${reps} reps interleaved, medians\n` +
        `                     wall s   cells/hour   CPU s\n` +
        `local (1 process)  ${localWall.toFixed(1).padStart(7)}  ${result.cellsPerHour.local.toFixed(0).padStart(11)}  ${cpu(result.cpuSeconds.local).padStart(6)}\n` +
        `queue, 1 worker    ${q1Wall.toFixed(1).padStart(7)}  ${result.cellsPerHour.queue1Worker.toFixed(0).padStart(11)}  ${cpu(result.cpuSeconds.queue1Worker).padStart(6)}\n` +
        `queue, 2 workers   ${q2Wall.toFixed(1).padStart(7)}  ${result.cellsPerHour.queue2Workers.toFixed(0).padStart(11)}  ${cpu(result.cpuSeconds.queue2Workers).padStart(6)}   (${result.speedup2vs1Workers.toFixed(2)}x 1 worker)\n` +
        `overhead per episode, queue (1 worker) against the local run of the same rep (target <= 5%):\n` +
        `  end to end (wall of the run command)   ${o.endToEndMs.toFixed(1)} ms = ${pct(o.endToEndShare)} of ${o.localMsPerEpisode.toFixed(1)} ms   ${met(result.target.endToEndMet)}\n` +
        `  inside the episode loop (median wallMs) ${o.medianEpisodeMs.queue1Worker.toFixed(1)} vs ${o.medianEpisodeMs.local.toFixed(1)} ms = ${pct(o.inLoopShare)}   ${met(result.target.inLoopMet)}\n` +
        `  CPU of the queued run (1 worker): coordinator ${cpu(medNullable(samples.queue1.map((x) => x.cpuParts?.coordinator ?? null)))} s, ` +
        `worker ${cpu(medNullable(samples.queue1.map((x) => x.cpuParts?.workers ?? null)))} s ` +
        `(of which its main thread ${cpu(medNullable(samples.queue1.map((x) => x.cpuParts?.workerMainThreads ?? null)))} s), ` +
        `redis-server ${cpu(medNullable(samples.queue1.map((x) => x.cpuParts?.redis ?? null)))} s\n` +
        `  CPU (coordinator+worker+redis vs local) ${o.cpuMs === null ? '-' : o.cpuMs.toFixed(1)} ms = ${pct(o.cpuShare)} of ${o.localCpuMsPerEpisode === null ? '-' : o.localCpuMsPerEpisode.toFixed(1)} ms   ${met(result.target.cpuMet)}\n`,
    );
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    await redis.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
