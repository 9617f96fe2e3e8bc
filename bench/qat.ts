/**
 * `npm run bench -- qat [--json] [--steps N] [--rounds R] [--batch B] [--models a,b] [--threads T] [--no-torch] [--no-independent]`:
 * training throughput (samples/s) of every zoo model, and of a 224x224 MobileNetV2 at batch 8
 * ('mobilenetv2-224'), in float and with QAT at W4A4 (STE quantizers), on one thread and on T threads
 * (default: every core; data-parallel over worker threads), on synthetic random data of the model's
 * input shape. Float / QAT and 1 / T threads alternate round by round on the same network (one trainer
 * per thread count), so load on the machine hits all four alike; each figure is total samples / total
 * time over its rounds after a warm-up. Right after each model, Debian's PyTorch (/usr/bin/python3,
 * bench/torch_qat.py) trains the same architecture the same way on 1 and T threads ("not installed"
 * when torch is missing), so every ratio compares figures measured in the same minute.
 * Each round also runs, for zoo models, T independent one-thread QAT trainings at once (this thread's and
 * T-1 workers', each on its own copy of the network, never synchronised; qat-independent-worker.ts):
 * what T cores give when nothing is shared but the machine, the ceiling of the T-thread/one-thread ratio.
 * The report adds the ratio round by round and the data-parallel step's phases (parallelCounters).
 * Targets: T threads >= 1.7x one thread on resnet20; QAT >= 0.5x PyTorch's on resnet20 and mobilenet-tiny.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initBackend, tf } from '../src/backend/index.js';
import { buildNetwork, ZOO, ZOO_NAMES } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import { QConv2D, QDense, QDepthwiseConv2D } from '../src/quant/layers.js';
import { QuantNetwork } from '../src/quant/network.js';
import { formatTable, printJson, printText } from '../src/cli/output.js';
import { Worker } from 'node:worker_threads';
import {
  coreCount,
  parallelCounters,
  resetParallelCounters,
  zeroParallelCounters,
  type ParallelCounters,
} from '../src/train/parallel.js';
import type { IndependentMessage, IndependentReply } from './qat-independent-worker.js';
import { createTrainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import { flag, median, randomDataset } from './kit.js';

const QAT_BITS = 4;
const CLASSES = 10;
const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('../../bench/torch_qat.py', import.meta.url));
const MOBILENETV2 = 'mobilenetv2-224';
const TARGETS = { speedupResnet20: 1.7, vsTorch: 0.5 };

interface Row {
  model: string;
  inputShape: [number, number, number];
  batchSize: number;
  threads: number;
  floatSamplesPerSec1: number;
  qatSamplesPerSec1: number;
  floatSamplesPerSec: number;
  qatSamplesPerSec: number;
  /** qatSamplesPerSec / qatSamplesPerSec1. */
  speedup: number;
  /** The same ratio round by round (each round's T-thread rate over its one-thread rate). */
  speedupByRound: number[];
  /**
   * T unsynchronised one-thread QAT trainings at once, each on its own copy of the network in its
   * own thread (samples of all / wall time): what T cores give this training when nothing is shared
   * (null for mobilenetv2-224, or with --no-independent).
   */
  independentQatSamplesPerSec: number | null;
  /**
   * One thread's QAT at a shard's batch (batch / T, e.g. 32 of 64): per-step costs that do not shrink
   * with the batch (kernel dispatch, weight quantizers, the optimizer) weigh more there (null as above).
   */
  qatShardBatchSamplesPerSec1: number | null;
  /** independentQatSamplesPerSec / qatSamplesPerSec1: the machine's ceiling for qatSamplesPerSec / qatSamplesPerSec1. */
  independentSpeedup: number | null;
  /** Per data-parallel QAT step, ms (main thread): see parallelCounters in src/train/parallel.ts. */
  parallelStepMs: {
    send: number;
    ownShard: number;
    workerShard: number;
    wait: number;
    combine: number;
    optimizer: number;
  } | null;
  torchFloatSamplesPerSec1: number | null;
  torchQatSamplesPerSec1: number | null;
  torchFloatSamplesPerSec: number | null;
  torchQatSamplesPerSec: number | null;
  /** qatSamplesPerSec / torchQatSamplesPerSec (null without torch). */
  vsTorch: number | null;
  /** qatSamplesPerSec1 / torchQatSamplesPerSec1: one thread each (null without torch). */
  vsTorch1: number | null;
}

/** MobileNetV2 (width 1.0, torchvision's layout: inverted residuals, ReLU6, BatchNorm) of quantized layers. */
function mobilenetV2(shape: [number, number, number], classes: number): QuantNetwork {
  let seed = 1;
  let id = 0;
  const name = (p: string): string => `${p}${++id}`;
  const bn = (x: tf.SymbolicTensor): tf.SymbolicTensor =>
    tf.layers.batchNormalization({ name: name('bn'), momentum: 0.9, epsilon: 1e-3 }).apply(x) as tf.SymbolicTensor;
  const relu6 = (x: tf.SymbolicTensor): tf.SymbolicTensor =>
    tf.layers.reLU({ name: name('relu'), maxValue: 6 }).apply(x) as tf.SymbolicTensor;
  const conv = (x: tf.SymbolicTensor, filters: number, k: number, stride: number): tf.SymbolicTensor =>
    new QConv2D({
      name: name('conv'),
      filters,
      kernelSize: k,
      strides: stride,
      padding: 'same',
      useBias: false,
      seed: seed++,
    }).apply(x) as tf.SymbolicTensor;
  const dw = (x: tf.SymbolicTensor, stride: number): tf.SymbolicTensor =>
    new QDepthwiseConv2D({
      name: name('dw'),
      kernelSize: 3,
      strides: stride,
      padding: 'same',
      useBias: false,
      seed: seed++,
    }).apply(x) as tf.SymbolicTensor;
  const input = tf.input({ shape, name: 'input' });
  let y = relu6(bn(conv(input, 32, 3, 2)));
  let channels = 32;
  const settings: [number, number, number, number][] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
  ];
  for (const [t, c, n, s] of settings) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      let r = y;
      if (t !== 1) r = relu6(bn(conv(r, channels * t, 1, 1)));
      r = relu6(bn(dw(r, stride)));
      r = bn(conv(r, c, 1, 1));
      y =
        stride === 1 && channels === c ? (tf.layers.add({ name: name('add') }).apply([y, r]) as tf.SymbolicTensor) : r;
      channels = c;
    }
  }
  y = relu6(bn(conv(y, 1280, 1, 1)));
  y = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(y) as tf.SymbolicTensor;
  y = new QDense({ name: 'fc', units: classes, useBias: true, seed: seed++ }).apply(y) as tf.SymbolicTensor;
  return new QuantNetwork(tf.model({ inputs: input, outputs: y, name: MOBILENETV2 }));
}

function inputShapeOf(model: string): [number, number, number] {
  return model === MOBILENETV2 ? [224, 224, 3] : (ZOO[model] as { inputShape: [number, number, number] }).inputShape;
}

type Measured = Pick<
  Row,
  | 'floatSamplesPerSec1'
  | 'qatSamplesPerSec1'
  | 'floatSamplesPerSec'
  | 'qatSamplesPerSec'
  | 'speedupByRound'
  | 'independentQatSamplesPerSec'
  | 'qatShardBatchSamplesPerSec1'
  | 'parallelStepMs'
>;

/** T-1 worker threads, each training its own copy of `model` on one thread (qat-independent-worker.ts). */
class Independent {
  private readonly workers: Worker[] = [];
  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      this.workers.push(new Worker(new URL('./qat-independent-worker.js', import.meta.url)));
    }
  }
  /** Sends `m` to every worker; resolves with their replies. */
  all(m: IndependentMessage): Promise<IndependentReply[]> {
    return Promise.all(
      this.workers.map(
        (w) =>
          new Promise<IndependentReply>((resolve, reject) => {
            w.once('message', (r: IndependentReply) =>
              r.kind === 'error' ? reject(new Error(`independent training worker: ${r.message}`)) : resolve(r),
            );
            w.once('error', reject);
            w.postMessage(m);
          }),
      ),
    );
  }
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

async function measure(
  model: string,
  batch: number,
  steps: number,
  rounds: number,
  threads: number,
  independentToo: boolean,
): Promise<Measured> {
  const shape = inputShapeOf(model);
  const rng = new Rng(7);
  const ds = randomDataset(batch * 4, shape, rng, CLASSES);
  const train = ds.train;
  const net =
    model === MOBILENETV2
      ? mobilenetV2(shape, CLASSES)
      : buildNetwork(model, { inputShape: shape, numClasses: CLASSES, seed: 1 });
  const trainers = new Map(
    [1, threads].map((t) => [
      t,
      createTrainer(net, ds, { lr: 1e-3, batchSize: batch, optimizer: 'adam', seed: 1, threads: t }),
    ]),
  );
  const floatBits = uniformBits(net.layers, 32, 32);
  const qatBits = uniformBits(net.layers, QAT_BITS, QAT_BITS);
  const key = (kind: string, t: number): string => `${kind}${t}`;
  const time = new Map<string, number>();
  const samples = new Map<string, number>();
  const speedupByRound: number[] = [];
  const independent = independentToo && threads > 1 && model !== MOBILENETV2 ? new Independent(threads - 1) : null;
  let independentSamples = 0;
  let independentSeconds = 0;
  const shardBatch = Math.ceil(batch / threads);
  const shardTrainer =
    threads > 1 && independentToo
      ? createTrainer(net, ds, { lr: 1e-3, batchSize: shardBatch, optimizer: 'adam', seed: 1, threads: 1 })
      : null;
  let shardSamples = 0;
  let shardSeconds = 0;
  // the data-parallel step's phases, summed over the T-thread QAT rounds
  const counted = zeroParallelCounters();
  try {
    if (independent) {
      await independent.all({ kind: 'init', model, batch, classes: CLASSES, seed: 1 });
      await independent.all({ kind: 'run', steps: 1, bits: QAT_BITS });
    }
    // warm-up: kernels, workers, optimizer slots and activation ranges at both settings
    for (const tr of trainers.values()) {
      for (const b of [floatBits, qatBits]) {
        net.setBits(b);
        await tr.trainSteps(1);
      }
    }
    const one = trainers.get(1);
    if (!one) throw new Error('no one-thread trainer');
    if (shardTrainer) {
      net.setBits(qatBits);
      await shardTrainer.trainSteps(1);
    }
    for (let r = 0; r < rounds; r++) {
      const qatRate = new Map<number, number>();
      for (const [t, tr] of trainers) {
        for (const kind of ['float', 'qat'] as const) {
          net.setBits(kind === 'float' ? floatBits : qatBits);
          resetParallelCounters();
          const s = await tr.trainSteps(steps);
          if (kind === 'qat' && t === threads) {
            for (const k of Object.keys(counted) as (keyof ParallelCounters)[]) counted[k] += parallelCounters[k];
          }
          time.set(key(kind, t), (time.get(key(kind, t)) ?? 0) + s.seconds);
          samples.set(key(kind, t), (samples.get(key(kind, t)) ?? 0) + s.samples);
          if (kind === 'qat') qatRate.set(t, s.samples / s.seconds);
        }
      }
      speedupByRound.push((qatRate.get(threads) ?? NaN) / (qatRate.get(1) ?? NaN));
      if (shardTrainer) {
        // one thread at a shard's batch: what the smaller batch alone costs each shard
        net.setBits(qatBits);
        const st = await shardTrainer.trainSteps(steps * threads);
        shardSamples += st.samples;
        shardSeconds += st.seconds;
      }
      if (independent) {
        // T one-thread trainings at once: this thread's and the workers', started together
        net.setBits(qatBits);
        const t0 = performance.now();
        const others = independent.all({ kind: 'run', steps, bits: QAT_BITS });
        const mine = await one.trainSteps(steps);
        const replies = await others;
        independentSeconds += (performance.now() - t0) / 1000;
        independentSamples += mine.samples + replies.reduce((a, q) => a + (q.kind === 'done' ? q.samples : 0), 0);
      }
    }
  } finally {
    await independent?.close();
    shardTrainer?.dispose();
    for (const tr of trainers.values()) tr.dispose();
    net.model.dispose();
    train.x.dispose();
    train.y.dispose();
  }
  const rate = (kind: string, t: number): number => (samples.get(key(kind, t)) ?? 0) / (time.get(key(kind, t)) ?? NaN);
  const c = counted;
  const per = (v: number): number => v / c.steps;
  return {
    floatSamplesPerSec1: rate('float', 1),
    qatSamplesPerSec1: rate('qat', 1),
    floatSamplesPerSec: rate('float', threads),
    qatSamplesPerSec: rate('qat', threads),
    speedupByRound,
    independentQatSamplesPerSec: independent ? independentSamples / independentSeconds : null,
    qatShardBatchSamplesPerSec1: shardTrainer ? shardSamples / shardSeconds : null,
    parallelStepMs:
      c.steps > 0
        ? {
            send: per(c.sendMs),
            ownShard: per(c.ownShardMs),
            workerShard: per(c.workerShardMs / Math.max(1, threads - 1)),
            wait: per(c.waitMs),
            combine: per(c.combineMs),
            optimizer: per(c.optimizerMs),
          }
        : null,
  };
}

interface TorchRow {
  floatSamplesPerSec1: number;
  qatSamplesPerSec1: number;
  floatSamplesPerSec: number;
  qatSamplesPerSec: number;
}

function torchAvailable(): { ok: boolean; version: string | null } {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? { ok: true, version: r.stdout.trim() } : { ok: false, version: null };
}

function torchMeasure(model: string, batch: number, steps: number, rounds: number, threads: number): TorchRow | null {
  const args = [
    TORCH_SCRIPT,
    '--models',
    model,
    '--batch',
    String(batch),
    '--steps',
    String(steps),
    '--rounds',
    String(rounds),
    '--threads',
    String(threads),
  ];
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    process.stderr.write(`torch bench of ${model} failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0] ?? ''}\n`);
    return null;
  }
  const doc = JSON.parse(r.stdout) as { results: TorchRow[] };
  return doc.results[0] ?? null;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const steps = Number(flag(argv, '--steps') ?? 5);
  const rounds = Number(flag(argv, '--rounds') ?? 5);
  const batch = Number(flag(argv, '--batch') ?? 64);
  const threads = Number(flag(argv, '--threads') ?? coreCount());
  const known = [...ZOO_NAMES, MOBILENETV2];
  const models = (flag(argv, '--models') ?? known.join(',')).split(',');
  for (const m of models) if (!known.includes(m)) throw new Error(`unknown model '${m}' (${known.join(', ')})`);
  const backend = await initBackend((flag(argv, '--backend') ?? 'wasm') as 'wasm' | 'cpu' | 'auto');
  const torch = argv.includes('--no-torch') ? { ok: false, version: null } : torchAvailable();
  const rows: Row[] = [];
  for (const m of models) {
    // the 224x224 network: batch 8 and single steps (a step takes seconds)
    const big = m === MOBILENETV2;
    const b = big ? 8 : batch;
    const s = big ? 1 : steps;
    const rr = big ? Math.min(rounds, 2) : rounds;
    const mine = await measure(m, b, s, rr, threads, !argv.includes('--no-independent'));
    const t = torch.ok ? torchMeasure(m, b, s, rr, threads) : null;
    const row: Row = {
      model: m,
      inputShape: inputShapeOf(m),
      batchSize: b,
      threads,
      ...mine,
      speedup: mine.qatSamplesPerSec / mine.qatSamplesPerSec1,
      independentSpeedup:
        mine.independentQatSamplesPerSec === null ? null : mine.independentQatSamplesPerSec / mine.qatSamplesPerSec1,
      torchFloatSamplesPerSec1: t?.floatSamplesPerSec1 ?? null,
      torchQatSamplesPerSec1: t?.qatSamplesPerSec1 ?? null,
      torchFloatSamplesPerSec: t?.floatSamplesPerSec ?? null,
      torchQatSamplesPerSec: t?.qatSamplesPerSec ?? null,
      vsTorch: t ? mine.qatSamplesPerSec / t.qatSamplesPerSec : null,
      vsTorch1: t ? mine.qatSamplesPerSec1 / t.qatSamplesPerSec1 : null,
    };
    rows.push(row);
    if (!json) {
      process.stderr.write(
        `${m}: W4A4 ${row.qatSamplesPerSec1.toFixed(1)} (1 thread) / ${row.qatSamplesPerSec.toFixed(1)} (${threads}) samples/s` +
          (t ? `; PyTorch ${t.qatSamplesPerSec1.toFixed(1)} / ${t.qatSamplesPerSec.toFixed(1)}` : '') +
          '\n',
      );
    }
  }
  const resnet20 = rows.find((r) => r.model === 'resnet20');
  const summary = {
    suite: 'qat',
    backend: backend.name,
    qatBits: `W${QAT_BITS}A${QAT_BITS}`,
    threads,
    torch: torch.ok ? torch.version : 'not installed',
    stepsPerRound: steps,
    rounds,
    batchSize: batch,
    targets: TARGETS,
    meetsSpeedupTarget: resnet20 ? resnet20.speedup >= TARGETS.speedupResnet20 : null,
    meetsTorchTarget: torch.ok
      ? rows
          .filter((r) => r.model === 'resnet20' || r.model === 'mobilenet-tiny')
          .every((r) => r.vsTorch !== null && r.vsTorch >= TARGETS.vsTorch)
      : null,
    results: rows,
  };
  if (json) {
    printJson(summary);
    return;
  }
  const f = (v: number | null, d = 0): string => (v === null ? 'not installed' : v.toFixed(d));
  printText(
    formatTable(
      [
        'model',
        'input',
        'batch',
        'float 1t',
        `float ${threads}t`,
        'W4A4 1t',
        `W4A4 ${threads}t`,
        `${threads}t/1t`,
        `torch W4A4 1t`,
        `torch W4A4 ${threads}t`,
        'vs torch 1t',
        `vs torch ${threads}t`,
      ],
      rows.map((r) => [
        r.model,
        r.inputShape.join('x'),
        r.batchSize,
        r.floatSamplesPerSec1.toFixed(1),
        r.floatSamplesPerSec.toFixed(1),
        r.qatSamplesPerSec1.toFixed(1),
        r.qatSamplesPerSec.toFixed(1),
        r.speedup.toFixed(2),
        f(r.torchQatSamplesPerSec1, 1),
        f(r.torchQatSamplesPerSec, 1),
        r.vsTorch1 === null ? '-' : `${r.vsTorch1.toFixed(2)}x`,
        r.vsTorch === null ? '-' : `${r.vsTorch.toFixed(2)}x`,
      ]),
    ) +
      `\nbackend ${backend.name}, samples/s, batch ${batch} (mobilenetv2-224: 8), ${rounds} alternating rounds of ${steps} steps per setting; ` +
      `torch ${torch.ok ? torch.version : 'not installed'}\n` +
      rows
        .filter((r) => r.threads > 1)
        .map((r) => {
          const byRound = [...r.speedupByRound].sort((a, b) => a - b);
          const p = r.parallelStepMs;
          return (
            `${r.model}: ${threads}t/1t by round ${byRound[0].toFixed(2)} / ${median(byRound).toFixed(2)} / ${byRound[byRound.length - 1].toFixed(2)} (min / median / max)` +
            (r.independentQatSamplesPerSec === null || r.independentSpeedup === null
              ? ''
              : `; ${threads} independent one-thread trainings at once: ${r.independentQatSamplesPerSec.toFixed(1)} samples/s = ` +
                `${r.independentSpeedup.toFixed(2)}x one thread (data-parallel reaches ${((100 * r.speedup) / r.independentSpeedup).toFixed(0)}% of it)`) +
            (r.qatShardBatchSamplesPerSec1 === null
              ? ''
              : `\n  one thread at the shards' batch ${Math.ceil(r.batchSize / r.threads)}: ${r.qatShardBatchSamplesPerSec1.toFixed(1)} samples/s ` +
                `(${((100 * r.qatShardBatchSamplesPerSec1) / r.qatSamplesPerSec1).toFixed(0)}% of batch ${r.batchSize}'s)`) +
            (p
              ? `\n  per ${threads}t W4A4 step, ms: send ${p.send.toFixed(1)}, shard 0 ${p.ownShard.toFixed(1)}, ` +
                `worker shard ${p.workerShard.toFixed(1)}, waiting ${p.wait.toFixed(1)}, combine ${p.combine.toFixed(1)}, optimizer ${p.optimizer.toFixed(1)}`
              : '')
          );
        })
        .join('\n') +
      '\n' +
      `targets: ${threads}t/1t >= ${TARGETS.speedupResnet20} on resnet20 (${summary.meetsSpeedupTarget ? 'met' : 'NOT met'}); ` +
      `vs torch >= ${TARGETS.vsTorch} on resnet20 and mobilenet-tiny (${summary.meetsTorchTarget === null ? 'no torch' : summary.meetsTorchTarget ? 'met' : 'NOT met'})`,
  );
}
