/**
 * `npm run bench -- qat-profile [--json] [--models resnet20,mobilenet-tiny] [--batch 64] [--steps 3]`:
 * where the time of one training step goes, on one thread (wasm). Per model and setting (float, W4A4):
 * - phases: forward (training mode), forward+backward (gradients), the full trainer step (with Adam
 *   and the trainer's bookkeeping), each the median over `steps` runs;
 * - kernels: tf.profile of full steps, the time of every kernel the engine runs summed by kernel
 *   name (op scopes such as customGrad wrappers left out: they contain kernels), as a share of
 *   the kernels' total, and the step time the kernels do not account for (tensor bookkeeping, JS
 *   between kernels, reading values back; tf.profile's own checks inflate it).
 * With `--ab`: instead, the one-thread trainer step time with a set of kernels on and off, in
 * alternating rounds on the same trainer (so machine load hits both alike), medians and their ratio.
 * `--part` picks the set: `native` (default: every kernel of the compiled module
 * src/backend/kernels/native, off = the earlier XNNPACK / JS paths), `filter-grad` (the compiled
 * Conv2D filter gradient against simd.ts's routines), `bn` (the fused training BatchNorm backward
 * against tfjs-layers' path), `adam` (the fused Adam step against tfjs's), `added` (filter-grad,
 * bn and adam together), `chunks` (the direct convolution's padding and the filter gradient's packing
 * a cache-sized chunk of the batch at a time, against the whole batch at once).
 */
import { initBackend, tf } from '../src/backend/index.js';
import {
  adamOptions,
  batchNormTrainingOptions,
  convOptions,
  filterGradOptions,
  nativeOptions,
} from '../src/backend/kernels/index.js';
import { buildNetwork, ZOO, ZOO_NAMES } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import { formatTable, printJson, printText } from '../src/cli/output.js';
import { createTrainer } from '../src/train/trainer.js';
import { shardGradients } from '../src/train/parallel.js';
import { crossEntropy } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import { flag, randomDataset } from './kit.js';

const CLASSES = 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

interface KernelShare {
  kernel: string;
  ms: number;
  share: number;
  calls: number;
}

interface Profile {
  model: string;
  setting: 'float' | 'W4A4';
  batchSize: number;
  forwardMs: number;
  forwardBackwardMs: number;
  stepMs: number;
  /** stepMs - forwardBackwardMs: optimizer and trainer bookkeeping. */
  optimizerAndBookkeepingMs: number;
  /** Sum of kernel times in a profiled step. */
  kernelMs: number;
  /** Wall time of the profiled step. */
  profiledStepMs: number;
  kernels: KernelShare[];
}

async function profileModel(model: string, bits: number, batch: number, steps: number): Promise<Profile> {
  const shape = (ZOO[model] as { inputShape: [number, number, number] }).inputShape;
  const ds = randomDataset(batch * 2, shape, new Rng(3), CLASSES);
  const train = ds.train;
  const net = buildNetwork(model, { inputShape: shape, numClasses: CLASSES, seed: 1 });
  net.setBits(uniformBits(net.layers, bits, bits));
  const trainer = createTrainer(net, ds, { lr: 1e-3, batchSize: batch, optimizer: 'adam', seed: 1 });
  await trainer.trainSteps(2);
  const xb = tf.slice(train.x, [0, 0, 0, 0], [batch, -1, -1, -1]);
  const yb = tf.slice(train.y, [0, 0], [batch, -1]);
  const vars = net.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const fwd: number[] = [];
  const fb: number[] = [];
  const st: number[] = [];
  for (let i = 0; i < steps; i++) {
    let t0 = performance.now();
    tf.tidy(() => (net.model.apply(xb, { training: true }) as tf.Tensor).dataSync());
    fwd.push(performance.now() - t0);
    t0 = performance.now();
    const r = shardGradients(net.model, vars, xb, yb, 1, (y, o) => crossEntropy(y, o, false));
    for (const g of r.grads) g.dispose();
    fb.push(performance.now() - t0);
    t0 = performance.now();
    await trainer.trainSteps(1);
    st.push(performance.now() - t0);
  }
  const byKernel = new Map<string, { ms: number; calls: number }>();
  let profiledStepMs = 0;
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const info = await tf.profile(async () => {
      await trainer.trainSteps(1);
      return tf.scalar(0);
    });
    profiledStepMs += performance.now() - t0;
    for (const k of info.kernels) {
      // op scopes (customGrad wrappers such as fusedConv2d__op) time the kernels they run: count only kernels
      if (tf.getKernel(k.name, 'wasm') == null) continue;
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
      e.ms += ms;
      e.calls += 1;
      byKernel.set(k.name, e);
    }
  }
  const kernelMs = [...byKernel.values()].reduce((a, e) => a + e.ms, 0);
  const kernels = [...byKernel.entries()]
    .map(([kernel, e]) => ({ kernel, ms: e.ms / steps, share: e.ms / kernelMs, calls: e.calls / steps }))
    .sort((a, b) => b.ms - a.ms);
  trainer.dispose();
  xb.dispose();
  yb.dispose();
  net.model.dispose();
  train.x.dispose();
  train.y.dispose();
  const stepMs = median(st);
  const forwardBackwardMs = median(fb);
  return {
    model,
    setting: bits === 32 ? 'float' : 'W4A4',
    batchSize: batch,
    forwardMs: median(fwd),
    forwardBackwardMs,
    stepMs,
    optimizerAndBookkeepingMs: stepMs - forwardBackwardMs,
    kernelMs: kernelMs / steps,
    profiledStepMs: profiledStepMs / steps,
    kernels,
  };
}

interface AbRow {
  model: string;
  setting: 'float' | 'W4A4';
  batchSize: number;
  rounds: number;
  /** Median step ms with the compiled kernels, and without (previous kernels). */
  nativeMs: number;
  previousMs: number;
  speedup: number;
}

const AB_PARTS = ['native', 'filter-grad', 'bn', 'adam', 'added', 'chunks'] as const;
type AbPart = (typeof AB_PARTS)[number];

/** Switches the kernels of `part` on or off. */
function setPart(part: AbPart, on: boolean): void {
  if (part === 'native') nativeOptions.enabled = on;
  if (part === 'filter-grad' || part === 'added') filterGradOptions.native = on;
  if (part === 'bn' || part === 'added') batchNormTrainingOptions.fused = on;
  if (part === 'adam' || part === 'added') adamOptions.fused = on;
  if (part === 'chunks') {
    convOptions.chunked = on;
    filterGradOptions.chunked = on;
  }
}

async function abModel(model: string, bits: number, batch: number, rounds: number, part: AbPart): Promise<AbRow> {
  const shape = (ZOO[model] as { inputShape: [number, number, number] }).inputShape;
  const ds = randomDataset(batch * 4, shape, new Rng(3), CLASSES);
  const train = ds.train;
  const net = buildNetwork(model, { inputShape: shape, numClasses: CLASSES, seed: 1 });
  net.setBits(uniformBits(net.layers, bits, bits));
  const trainer = createTrainer(net, ds, { lr: 1e-3, batchSize: batch, optimizer: 'adam', seed: 1, threads: 1 });
  const times = { on: [] as number[], off: [] as number[] };
  try {
    for (const on of [true, false]) {
      setPart(part, on);
      await trainer.trainSteps(1); // warm-up
    }
    for (let r = 0; r < rounds; r++) {
      for (const on of r % 2 === 0 ? [true, false] : [false, true]) {
        setPart(part, on);
        const t0 = performance.now();
        await trainer.trainSteps(1);
        times[on ? 'on' : 'off'].push(performance.now() - t0);
      }
    }
  } finally {
    setPart(part, true);
    trainer.dispose();
    net.model.dispose();
    train.x.dispose();
    train.y.dispose();
  }
  const nativeMs = median(times.on);
  const previousMs = median(times.off);
  return {
    model,
    setting: bits === 32 ? 'float' : 'W4A4',
    batchSize: batch,
    rounds,
    nativeMs,
    previousMs,
    speedup: previousMs / nativeMs,
  };
}

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--ab')) {
    const json = argv.includes('--json');
    const rounds = Number(flag(argv, '--rounds') ?? 6);
    const batch = Number(flag(argv, '--batch') ?? 64);
    const models = (flag(argv, '--models') ?? 'resnet20,mobilenet-tiny').split(',');
    for (const m of models) if (!ZOO[m]) throw new Error(`unknown zoo model '${m}' (${ZOO_NAMES.join(', ')})`);
    const part = (flag(argv, '--part') ?? 'native') as AbPart;
    if (!AB_PARTS.includes(part)) throw new Error(`--part: expected one of ${AB_PARTS.join(', ')}, got '${part}'`);
    await initBackend('wasm');
    const rows: AbRow[] = [];
    for (const m of models) for (const bits of [32, 4]) rows.push(await abModel(m, bits, batch, rounds, part));
    if (json) {
      printJson({ suite: 'qat-profile', mode: 'ab', part, rows });
      return;
    }
    printText(
      formatTable(
        ['model', 'setting', 'batch', `step ms (${part} on)`, `step ms (${part} off)`, 'speedup'],
        rows.map((r) => [
          r.model,
          r.setting,
          String(r.batchSize),
          r.nativeMs.toFixed(0),
          r.previousMs.toFixed(0),
          `${r.speedup.toFixed(2)}x`,
        ]),
      ) + `\none thread, wasm, medians of ${rounds} alternating rounds of one step each, on the same trainer\n`,
    );
    return;
  }
  const json = argv.includes('--json');
  const steps = Number(flag(argv, '--steps') ?? 3);
  const batch = Number(flag(argv, '--batch') ?? 64);
  const top = Number(flag(argv, '--top') ?? 14);
  const models = (flag(argv, '--models') ?? 'resnet20,mobilenet-tiny').split(',');
  for (const m of models) if (!ZOO[m]) throw new Error(`unknown zoo model '${m}' (${ZOO_NAMES.join(', ')})`);
  await initBackend('wasm');
  const out: Profile[] = [];
  for (const m of models) for (const bits of [32, 4]) out.push(await profileModel(m, bits, batch, steps));
  if (json) {
    printJson({ suite: 'qat-profile', batchSize: batch, steps, profiles: out });
    return;
  }
  for (const p of out) {
    printText(
      `${p.model} ${p.setting}, batch ${p.batchSize}: forward ${p.forwardMs.toFixed(0)} ms, forward+backward ${p.forwardBackwardMs.toFixed(0)} ms, ` +
        `step ${p.stepMs.toFixed(0)} ms (optimizer + bookkeeping ${p.optimizerAndBookkeepingMs.toFixed(0)} ms); profiled step ${p.profiledStepMs.toFixed(0)} ms, ` +
        `kernels ${p.kernelMs.toFixed(0)} ms`,
    );
    printText(
      formatTable(
        ['kernel', 'ms/step', 'share %', 'calls/step'],
        p.kernels.slice(0, top).map((k) => [k.kernel, k.ms.toFixed(1), (100 * k.share).toFixed(1), k.calls.toFixed(0)]),
      ) + '\n',
    );
  }
}
