/**
 * The wasm training kernels give the cpu backend's gradients (relative tolerance 1e-3 on the
 * max abs difference over the max abs value) over randomized, seeded convolution shapes, and
 * leave no tensor behind.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import {
  convCounters,
  convOptions,
  filterGradCounters,
  filterGradOptions,
  nativeOptions,
  registerWasmTrainingKernels,
  simdOptions,
  WASM_TRAINING_KERNELS,
} from '../src/backend/kernels/index.js';
import { wasmSimdRoutines } from '../src/backend/kernels/simd.js';
import { Rng } from '../src/util/rng.js';

const CASES_PER_KERNEL = 40;
const TOLERANCE = 1e-3;

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  depthwise: boolean;
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  /** Output channels (Conv2D) or channel multiplier (depthwise). */
  outC: number;
  kH: number;
  kW: number;
  strides: [number, number];
  dilations: [number, number];
  pad: Pad;
  x: Float32Array;
  filter: Float32Array;
  /** Weights of the output in the loss sum(conv(x, w) * r), so dy is random. */
  r: Float32Array;
  outShape: Shape4;
}

before(async () => {
  await initBackend('wasm');
});

function randomArray(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

function describe(c: Case): string {
  return (
    `x [${c.batch},${c.inH},${c.inW},${c.inC}] k ${c.kH}x${c.kW} out/mult ${c.outC} ` +
    `strides ${c.strides.join('x')} dilations ${c.dilations.join('x')} pad ${JSON.stringify(c.pad)}`
  );
}

/** Output size of one dimension as tfjs computes it, or 0 when the case is invalid. */
function outSize(inSize: number, k: number, s: number, d: number, before: number, after: number, pad: Pad): number {
  const eff = (k - 1) * d + 1;
  if (pad === 'same') return Math.ceil(inSize / s);
  if (pad === 'valid') return Math.ceil((inSize - eff + 1) / s);
  return Math.trunc((inSize + before + after - eff) / s + 1);
}

interface Geometry {
  depthwise: boolean;
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outC: number;
  kH: number;
  kW: number;
  strides: [number, number];
  dilations: [number, number];
  pad: Pad;
}

/** Random data for a geometry, or null when the convolution has no output. */
function caseFrom(rng: Rng, g: Geometry): Case | null {
  const p = Array.isArray(g.pad)
    ? [g.pad[1][0], g.pad[1][1], g.pad[2][0], g.pad[2][1]]
    : typeof g.pad === 'number'
      ? [g.pad, g.pad, g.pad, g.pad]
      : [0, 0, 0, 0];
  const oh = outSize(g.inH, g.kH, g.strides[0], g.dilations[0], p[0], p[1], g.pad);
  const ow = outSize(g.inW, g.kW, g.strides[1], g.dilations[1], p[2], p[3], g.pad);
  if (oh < 1 || ow < 1) return null;
  const oc = g.depthwise ? g.inC * g.outC : g.outC;
  return {
    ...g,
    x: randomArray(rng, g.batch * g.inH * g.inW * g.inC),
    filter: randomArray(rng, g.kH * g.kW * g.inC * g.outC),
    r: randomArray(rng, g.batch * oh * ow * oc),
    outShape: [g.batch, oh, ow, oc],
  };
}

/**
 * A random convolution: batch 1..8, channels 1..17, kernel 1..5, strides 1..3, dilations 1..2
 * (only with stride 1, as tfjs requires), 'same' / 'valid' / numeric / explicit padding (up to
 * the kernel size), spatial sizes 1..13 (odd and even). Depthwise draws a channel multiplier 1..2.
 */
function randomCase(rng: Rng, depthwise: boolean, allowDilation: boolean): Case {
  for (;;) {
    const kind = rng.int(4);
    // tfjs sizes numerically padded outputs with the row kernel and stride for both dimensions,
    // so numeric padding is only well-defined for square kernels and strides.
    const square = kind === 2;
    const kH = 1 + rng.int(5);
    const kW = square || rng.next() < 0.7 ? kH : 1 + rng.int(5);
    const dil = allowDilation && rng.next() < 0.5 ? 2 : 1;
    const sH = 1 + rng.int(3);
    const sW = square ? sH : 1 + rng.int(3);
    let pad: Pad;
    if (kind === 0) pad = 'same';
    else if (kind === 1) pad = 'valid';
    else if (kind === 2) pad = rng.int(3);
    else {
      pad = [
        [0, 0],
        [rng.int(kH + 1), rng.int(kH + 1)],
        [rng.int(kW + 1), rng.int(kW + 1)],
        [0, 0],
      ];
    }
    const c = caseFrom(rng, {
      depthwise,
      batch: 1 + rng.int(8),
      inH: 1 + rng.int(13),
      inW: 1 + rng.int(13),
      inC: 1 + rng.int(17),
      outC: depthwise ? 1 + rng.int(2) : 1 + rng.int(17),
      kH,
      kW,
      strides: dil > 1 ? [1, 1] : [sH, sW],
      dilations: [dil, dil],
      pad,
    });
    if (c) return c;
  }
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length, 'gradient sizes differ');
  let maxAbs = 0;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
  }
  return maxAbs === 0 ? maxDiff : maxDiff / maxAbs;
}

/** Gradient of sum(conv(x, w) * r) with respect to x or w, on the given backend. */
async function gradient(
  backend: 'wasm' | 'cpu',
  c: Case,
  depthwise: boolean,
  wrt: 'x' | 'filter',
): Promise<Float32Array> {
  await tf.setBackend(backend);
  const x = tf.tensor4d(c.x, [c.batch, c.inH, c.inW, c.inC]);
  const w = tf.tensor4d(c.filter, [c.kH, c.kW, c.inC, c.outC]);
  const r = tf.tensor4d(c.r, c.outShape);
  const conv = (a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D =>
    depthwise
      ? tf.depthwiseConv2d(a, b, c.strides, c.pad, 'NHWC', c.dilations)
      : tf.conv2d(a, b, c.strides, c.pad, 'NHWC', c.dilations);
  const g =
    wrt === 'x'
      ? tf.grad((a: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, w), r)))(x)
      : tf.grad((b: tf.Tensor) => tf.sum(tf.mul(conv(x, b as tf.Tensor4D), r)))(w);
  const values = g.dataSync() as Float32Array;
  tf.dispose([x, w, r, g]);
  return values;
}

async function checkGradients(
  seed: number,
  depthwise: boolean,
  wrt: 'x' | 'filter',
  cases = CASES_PER_KERNEL,
): Promise<void> {
  const rng = new Rng(seed);
  let worst = 0;
  for (let i = 0; i < cases; i++) {
    const c = randomCase(rng, depthwise, false);
    const onWasm = await gradient('wasm', c, depthwise, wrt);
    const onCpu = await gradient('cpu', c, depthwise, wrt);
    const err = relativeError(onWasm, onCpu);
    worst = Math.max(worst, err);
    assert.ok(err <= TOLERANCE, `case ${i}: ${describe(c)}: relative error ${err.toExponential(2)}`);
  }
  await tf.setBackend('wasm');
  assert.ok(worst <= TOLERANCE);
}

test('registering the wasm training kernels is idempotent and replaces the built-in Conv2DBackpropInput, MaxPoolGrad and BatchMatMul', () => {
  const first = registerWasmTrainingKernels();
  const second = registerWasmTrainingKernels();
  assert.deepEqual(first, second);
  assert.deepEqual([...first].sort(), [
    'BatchMatMul',
    'BitallocAdam',
    'BitallocBatchMoments',
    'BitallocBatchNormTrainingGrad',
    'BitallocClipByValueGrad',
    'BitallocFakeQuantize',
    'BitallocFakeQuantizeGrad',
    'Cast',
    'ClipByValue (gradient)',
    'Conv2D',
    'Conv2DBackpropFilter',
    'Conv2DBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    'FusedBatchNorm',
    'FusedBatchNorm (gradient)',
    'FusedConv2D',
    'GatherV2',
    'Identity',
    'MaxPoolGrad',
    'Mean',
    'Mean (gradient)',
    'Slice',
    'Sum',
    'Tile',
  ]);
  for (const { kernelName, kernelFunc } of WASM_TRAINING_KERNELS) {
    assert.equal(
      tf.getKernel(kernelName, 'wasm')?.kernelFunc,
      kernelFunc,
      `${kernelName} is not this project's kernel`,
    );
  }
});

test('the WebAssembly SIMD routines compile and bind to the wasm backend memory', async () => {
  await tf.setBackend('wasm');
  // Node 20+ has WebAssembly SIMD: without this the tests below would only exercise the fallbacks.
  const routines = wasmSimdRoutines(tf.backend());
  assert.ok(routines, 'SIMD routines unavailable');
  assert.equal(typeof routines.dwFilterGrad, 'function');
  assert.equal(typeof routines.dwInputGrad, 'function');
  assert.equal(routines.convFilterGrad.size, 4);
});

/** conv2d(x, w) on a backend, fused with a per-channel bias and ReLU when `fused`. */
async function forward(backend: 'wasm' | 'cpu', c: Case, bias: Float32Array, fused: boolean): Promise<Float32Array> {
  await tf.setBackend(backend);
  const x = tf.tensor4d(c.x, [c.batch, c.inH, c.inW, c.inC]);
  const w = tf.tensor4d(c.filter, [c.kH, c.kW, c.inC, c.outC]);
  const b = tf.tensor1d(bias);
  const y = fused
    ? tf.fused.conv2d({
        x,
        filter: w,
        strides: c.strides,
        pad: c.pad,
        dilations: c.dilations,
        bias: b,
        activation: 'relu',
      })
    : tf.conv2d(x, w, c.strides, c.pad, 'NHWC', c.dilations);
  const values = Float32Array.from(y.dataSync() as Float32Array);
  tf.dispose([x, w, b, y]);
  return values;
}

test(`Conv2D and FusedConv2D (bias, ReLU) on wasm equal cpu and XNNPACK over ${CASES_PER_KERNEL} random shapes`, async () => {
  const rng = new Rng(67);
  for (let i = 0; i < CASES_PER_KERNEL; i++) {
    const c = randomCase(rng, false, i % 4 === 3);
    const bias = randomArray(rng, c.outC);
    for (const fused of [false, true]) {
      const where = `case ${i} (${fused ? 'fused' : 'plain'}): ${describe(c)}`;
      const calls = convCounters.direct;
      const direct = await forward('wasm', c, bias, fused);
      assert.equal(convCounters.direct, calls + 1, `${where}: the direct convolution ran`);
      const onCpu = await forward('cpu', c, bias, fused);
      assert.ok(relativeError(direct, onCpu) <= TOLERANCE, `${where}: vs cpu`);
      convOptions.direct = false;
      const xnnpack = await forward('wasm', c, bias, fused);
      convOptions.direct = true;
      assert.ok(relativeError(direct, xnnpack) <= 1e-5, `${where}: vs XNNPACK`);
      if (fused) assert.ok(direct.every((v) => v >= 0) && direct.some((v) => v > 0), `${where}: ReLU`);
    }
  }
  await tf.setBackend('wasm');
});

test('the direct convolution and the compiled filter gradient give the same bits a cache-sized chunk at a time as over the whole batch, and equal cpu', async () => {
  // Images large enough that a batch spans several chunks, with a shorter last chunk.
  const rng = new Rng(71);
  const base = { depthwise: false, kH: 3, kW: 3, dilations: [1, 1] as [number, number], pad: 'same' as Pad };
  const geometries: Geometry[] = [
    { ...base, batch: 5, inH: 40, inW: 40, inC: 8, outC: 8, strides: [1, 1] },
    { ...base, batch: 3, inH: 70, inW: 66, inC: 16, outC: 12, strides: [2, 2] },
    { ...base, batch: 7, inH: 36, inW: 36, inC: 1, outC: 16, strides: [1, 1], pad: 1 },
  ];
  for (const g of geometries) {
    const c = caseFrom(rng, g);
    assert.ok(c);
    const where = describe(c);
    const bias = randomArray(rng, c.outC);
    const chunked = {
      y: await forward('wasm', c, bias, true),
      dx: await gradient('wasm', c, false, 'x'),
      dw: await gradient('wasm', c, false, 'filter'),
    };
    convOptions.chunked = false;
    filterGradOptions.chunked = false;
    let whole: typeof chunked;
    try {
      whole = {
        y: await forward('wasm', c, bias, true),
        dx: await gradient('wasm', c, false, 'x'),
        dw: await gradient('wasm', c, false, 'filter'),
      };
    } finally {
      convOptions.chunked = true;
      filterGradOptions.chunked = true;
    }
    for (const k of ['y', 'dx', 'dw'] as const) {
      assert.deepEqual(chunked[k], whole[k], `${where}: ${k} chunked = whole batch`);
    }
    assert.ok(relativeError(chunked.y, await forward('cpu', c, bias, true)) <= TOLERANCE, `${where}: y vs cpu`);
    assert.ok(relativeError(chunked.dx, await gradient('cpu', c, false, 'x')) <= TOLERANCE, `${where}: dx vs cpu`);
    assert.ok(relativeError(chunked.dw, await gradient('cpu', c, false, 'filter')) <= TOLERANCE, `${where}: dw vs cpu`);
  }
  await tf.setBackend('wasm');
});

test(`Conv2DBackpropInput on wasm equals cpu over ${CASES_PER_KERNEL} random shapes`, async () => {
  await checkGradients(101, false, 'x');
});

test(`Conv2DBackpropFilter on wasm (compiled kernel) equals cpu over ${CASES_PER_KERNEL} random shapes`, async () => {
  const calls = filterGradCounters.native;
  await checkGradients(202, false, 'filter');
  assert.equal(filterGradCounters.native, calls + CASES_PER_KERNEL, 'the compiled filter gradient ran for every case');
});

test('Conv2DBackpropFilter without the compiled module (SIMD routines) equals cpu', async () => {
  nativeOptions.enabled = false;
  const calls = filterGradCounters.native;
  try {
    await checkGradients(203, false, 'filter', 15);
  } finally {
    nativeOptions.enabled = true;
  }
  assert.equal(filterGradCounters.native, calls, 'the compiled filter gradient did not run');
});

test(`DepthwiseConv2dNativeBackpropInput on wasm equals cpu over ${CASES_PER_KERNEL} random shapes`, async () => {
  await checkGradients(303, true, 'x');
});

test(`DepthwiseConv2dNativeBackpropFilter on wasm equals cpu over ${CASES_PER_KERNEL} random shapes`, async () => {
  await checkGradients(404, true, 'filter');
});

test('without WebAssembly SIMD, the fallbacks (XNNPACK formulations, plain JS) equal cpu', async () => {
  simdOptions.enabled = false;
  try {
    await checkGradients(111, false, 'x', 15);
    await checkGradients(212, false, 'filter', 15);
    await checkGradients(313, true, 'x', 15);
    await checkGradients(414, true, 'filter', 15);
  } finally {
    simdOptions.enabled = true;
  }
});

/** The filter with d-1 zeros between taps: a dilation-1 convolution with it equals dilation d. */
function dilateFilter(
  f: Float32Array,
  kH: number,
  kW: number,
  inner: number,
  d: number,
): { values: Float32Array; kH: number; kW: number } {
  const eH = (kH - 1) * d + 1;
  const eW = (kW - 1) * d + 1;
  const out = new Float32Array(eH * eW * inner);
  for (let i = 0; i < kH; i++) {
    for (let j = 0; j < kW; j++)
      out.set(f.subarray((i * kW + j) * inner, (i * kW + j + 1) * inner), (i * d * eW + j * d) * inner);
  }
  return { values: out, kH: eH, kW: eW };
}

function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: tf.NamedAttrMap): Float32Array {
  const out = tf.engine().runKernel<tf.Tensor>(name, inputs, attrs);
  const values = out.dataSync() as Float32Array;
  out.dispose();
  return values;
}

test('depthwise backprop kernels handle dilation 2, with and without SIMD (reference: cpu with the zero-dilated filter)', async () => {
  // tf.grad refuses dilations > 1, but the kernels take a dilations attribute.
  const rng = new Rng(505);
  try {
    for (let i = 0; i < 24; i++) {
      simdOptions.enabled = i % 2 === 0;
      await checkDilated(i);
    }
  } finally {
    simdOptions.enabled = true;
  }
  await tf.setBackend('wasm');

  async function checkDilated(i: number): Promise<void> {
    let c = randomCase(rng, true, true);
    while (c.dilations[0] === 1) c = randomCase(rng, true, true);
    const d = c.dilations[0];
    const inner = c.inC * c.outC;
    const dilated = dilateFilter(c.filter, c.kH, c.kW, inner, d);
    const xShape: Shape4 = [c.batch, c.inH, c.inW, c.inC];
    const common = { strides: c.strides, pad: c.pad };

    await tf.setBackend('wasm');
    let x = tf.tensor4d(c.x, xShape);
    let dy = tf.tensor4d(c.r, c.outShape);
    let w = tf.tensor4d(c.filter, [c.kH, c.kW, c.inC, c.outC]);
    const dwWasm = runKernel(
      'DepthwiseConv2dNativeBackpropFilter',
      { x, dy },
      { ...common, dilations: c.dilations, filterShape: [c.kH, c.kW, c.inC, c.outC] },
    );
    const dxWasm = runKernel(
      'DepthwiseConv2dNativeBackpropInput',
      { dy, filter: w },
      { ...common, dilations: c.dilations, inputShape: xShape },
    );
    tf.dispose([x, dy, w]);

    await tf.setBackend('cpu');
    x = tf.tensor4d(c.x, xShape);
    dy = tf.tensor4d(c.r, c.outShape);
    w = tf.tensor4d(dilated.values, [dilated.kH, dilated.kW, c.inC, c.outC]);
    const dwDilated = runKernel(
      'DepthwiseConv2dNativeBackpropFilter',
      { x, dy },
      { ...common, dilations: 1, filterShape: [dilated.kH, dilated.kW, c.inC, c.outC] },
    );
    const dxCpu = runKernel(
      'DepthwiseConv2dNativeBackpropInput',
      { dy, filter: w },
      { ...common, dilations: 1, inputShape: xShape },
    );
    tf.dispose([x, dy, w]);
    // The taps of the dilated filter's gradient at multiples of d are the gradient of the original taps.
    const dwCpu = new Float32Array(c.kH * c.kW * inner);
    for (let a = 0; a < c.kH; a++) {
      for (let b = 0; b < c.kW; b++) {
        const src = (a * d * dilated.kW + b * d) * inner;
        dwCpu.set(dwDilated.subarray(src, src + inner), (a * c.kW + b) * inner);
      }
    }
    const errW = relativeError(dwWasm, dwCpu);
    const errX = relativeError(dxWasm, dxCpu);
    const mode = simdOptions.enabled ? 'SIMD' : 'fallback';
    assert.ok(
      errW <= TOLERANCE,
      `case ${i} (${mode}): ${describe(c)}: filter gradient relative error ${errW.toExponential(2)}`,
    );
    assert.ok(
      errX <= TOLERANCE,
      `case ${i} (${mode}): ${describe(c)}: input gradient relative error ${errX.toExponential(2)}`,
    );
  }
});

test('Conv2D backprop kernels accept NCHW data (direct kernel calls, equal to cpu)', async () => {
  const rng = new Rng(606);
  for (let i = 0; i < 10; i++) {
    const c = randomCase(rng, false, false);
    const toNCHW = (a: Float32Array, s: Shape4): Float32Array => {
      const t = tf.tidy(() => tf.tensor4d(a, s).transpose([0, 3, 1, 2]));
      const v = t.dataSync() as Float32Array;
      t.dispose();
      return v;
    };
    await tf.setBackend('cpu');
    const xShape: Shape4 = [c.batch, c.inH, c.inW, c.inC];
    const xNCHW = toNCHW(c.x, xShape);
    const dyNCHW = toNCHW(c.r, c.outShape);
    const xShapeNCHW: Shape4 = [c.batch, c.inC, c.inH, c.inW];
    const dyShapeNCHW: Shape4 = [c.batch, c.outShape[3], c.outShape[1], c.outShape[2]];
    const pad: Pad = Array.isArray(c.pad) ? [[0, 0], [0, 0], c.pad[1], c.pad[2]] : c.pad;
    const attrs = { strides: c.strides, pad, dataFormat: 'NCHW' };
    const results: Record<string, Float32Array[]> = {};
    for (const backend of ['wasm', 'cpu'] as const) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(xNCHW, xShapeNCHW);
      const dy = tf.tensor4d(dyNCHW, dyShapeNCHW);
      const w = tf.tensor4d(c.filter, [c.kH, c.kW, c.inC, c.outC]);
      results[backend] = [
        runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: [c.kH, c.kW, c.inC, c.outC] }),
        runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: xShapeNCHW }),
      ];
      tf.dispose([x, dy, w]);
    }
    const [wW, xW] = results['wasm'];
    const [wC, xC] = results['cpu'];
    assert.ok(relativeError(wW, wC) <= TOLERANCE, `case ${i}: ${describe(c)}: filter gradient`);
    assert.ok(relativeError(xW, xC) <= TOLERANCE, `case ${i}: ${describe(c)}: input gradient`);
  }
  await tf.setBackend('wasm');
});

test(`MaxPoolGrad on wasm equals cpu over ${CASES_PER_KERNEL} random poolings of signed values`, async () => {
  // Windows holding only negative values are the case the built-in wasm kernel gets wrong.
  const rng = new Rng(909);
  for (let i = 0; i < CASES_PER_KERNEL; i++) {
    const size = 1 + rng.int(3);
    const filterSize: [number, number] = [size, rng.next() < 0.7 ? size : 1 + rng.int(3)];
    const strides: [number, number] = [1 + rng.int(3), 1 + rng.int(3)];
    const pad = rng.next() < 0.5 ? 'same' : 'valid';
    const shape: Shape4 = [1 + rng.int(4), filterSize[0] + rng.int(10), filterSize[1] + rng.int(10), 1 + rng.int(9)];
    const x = randomArray(
      rng,
      shape.reduce((p, q) => p * q, 1),
    );
    if (i % 4 === 0) for (let j = 0; j < x.length; j++) x[j] = -Math.abs(x[j]);
    const results: Float32Array[] = [];
    for (const backend of ['wasm', 'cpu'] as const) {
      await tf.setBackend(backend);
      const xt = tf.tensor4d(x, shape);
      const y = tf.maxPool(xt, filterSize, strides, pad);
      const r = tf.tensor(randomArray(new Rng(i), y.size), y.shape);
      const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, filterSize, strides, pad), r)))(
        xt,
      );
      results.push(g.dataSync() as Float32Array);
      tf.dispose([xt, y, r, g]);
    }
    const err = relativeError(results[0], results[1]);
    assert.ok(
      err <= TOLERANCE,
      `case ${i}: x [${shape.join(',')}] pool ${filterSize.join('x')} strides ${strides.join('x')} ${pad}: relative error ${err.toExponential(2)}`,
    );
  }
  await tf.setBackend('wasm');
});

test('BatchMatMul on wasm equals cpu for every transpose combination, with and without batch', async () => {
  const rng = new Rng(1001);
  for (let i = 0; i < 24; i++) {
    const [m, k, n] = [1 + rng.int(40), 1 + rng.int(40), 1 + rng.int(40)];
    const transposeA = i % 2 === 1;
    const transposeB = (i >> 1) % 2 === 1;
    const batch = [[], [1], [3]][(i >> 2) % 3];
    const aShape = [...batch, ...(transposeA ? [k, m] : [m, k])];
    const bShape = [...batch, ...(transposeB ? [n, k] : [k, n])];
    const av = randomArray(
      rng,
      aShape.reduce((p, q) => p * q, 1),
    );
    const bv = randomArray(
      rng,
      bShape.reduce((p, q) => p * q, 1),
    );
    const results: Float32Array[] = [];
    for (const name of ['wasm', 'cpu'] as const) {
      await tf.setBackend(name);
      const buffers = (): number => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
      const a = tf.tensor(av, aShape);
      const b = tf.tensor(bv, bShape);
      const buffersBefore = buffers();
      const out = tf.matMul(a, b, transposeA, transposeB);
      results.push(out.dataSync() as Float32Array);
      out.dispose();
      assert.equal(buffers(), buffersBefore, `${name}: BatchMatMul left buffers behind`);
      tf.dispose([a, b]);
    }
    const err = relativeError(results[0], results[1]);
    assert.ok(
      err <= TOLERANCE,
      `case ${i}: a [${aShape.join(',')}] b [${bShape.join(',')}] transposeA ${transposeA} transposeB ${transposeB}: relative error ${err.toExponential(2)}`,
    );
  }
  await tf.setBackend('wasm');
});

test('the kernels leave no tensors or wasm buffers behind', async () => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as { numDataIds(): number };
  const rng = new Rng(707);
  const base = { batch: 3, inH: 14, inW: 13, inC: 5, outC: 2, kH: 3, kW: 3, dilations: [1, 1] as [number, number] };
  const geometries: Geometry[] = [
    { ...base, depthwise: false, strides: [1, 1], pad: 'same' },
    // 'valid' with strides that leave input rows unused (cropped filter-gradient input), several phases.
    { ...base, depthwise: false, strides: [2, 3], pad: 'valid' },
    // Padding larger than the kernel (cropped dy in the input gradient).
    {
      ...base,
      depthwise: true,
      strides: [2, 2],
      pad: [
        [0, 0],
        [4, 0],
        [0, 4],
        [0, 0],
      ],
    },
    { ...base, depthwise: true, strides: [1, 1], dilations: [2, 2], pad: 'same' },
  ];
  const runs = geometries.flatMap((g) => [true, false].map((simd) => ({ g, simd })));
  try {
    for (const { g, simd } of runs) checkNoLeaks(g, simd);
  } finally {
    simdOptions.enabled = true;
  }

  function checkNoLeaks(g: Geometry, simd: boolean): void {
    simdOptions.enabled = simd;
    const c = caseFrom(rng, g);
    assert.ok(c);
    const x = tf.tensor4d(c.x, [c.batch, c.inH, c.inW, c.inC]);
    const w = tf.tensor4d(c.filter, [c.kH, c.kW, c.inC, c.outC]);
    const dy = tf.tensor4d(c.r, c.outShape);
    const tensorsBefore = tf.memory().numTensors;
    const buffersBefore = backend.numDataIds();
    const common = { strides: c.strides, pad: c.pad, dilations: c.dilations, dataFormat: 'NHWC' };
    const [filterKernel, inputKernel] = c.depthwise
      ? ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']
      : ['Conv2DBackpropFilter', 'Conv2DBackpropInput'];
    const outs = [
      tf.engine().runKernel<tf.Tensor>(filterKernel, { x, dy }, { ...common, filterShape: w.shape }),
      tf.engine().runKernel<tf.Tensor>(inputKernel, { dy, filter: w }, { ...common, inputShape: x.shape }),
    ];
    // The direct forward convolution (padded input, filter and bias padded to 4 output channels).
    if (!c.depthwise) {
      const bias = tf.ones([c.outC]);
      outs.push(tf.fused.conv2d({ x, filter: w, strides: c.strides, pad: c.pad, bias, activation: 'relu' }));
      bias.dispose();
    }
    const where = `${describe(c)} (${simd ? 'SIMD' : 'fallback'})`;
    const k = outs.length;
    assert.equal(tf.memory().numTensors, tensorsBefore + k, `${where}: exactly the ${k} outputs are new tensors`);
    assert.equal(backend.numDataIds(), buffersBefore + k, `${where}: exactly the ${k} outputs hold wasm memory`);
    tf.dispose(outs);
    assert.equal(tf.memory().numTensors, tensorsBefore);
    assert.equal(backend.numDataIds(), buffersBefore);
    tf.dispose([x, w, dy]);
  }
});

test('GatherV2 on wasm (row copies along axis 0; the built-in kernel otherwise) equals cpu', async () => {
  const rng = new Rng(71);
  for (let i = 0; i < 16; i++) {
    const rank = 1 + rng.int(4);
    const shape = Array.from({ length: rank }, () => 1 + rng.int(6));
    const size = shape.reduce((p, q) => p * q, 1);
    const dtype = i % 3 === 2 ? 'int32' : 'float32';
    const values = Array.from({ length: size }, () => (dtype === 'int32' ? rng.int(100) : rng.normal()));
    const axis = i % 4 === 3 ? rank - 1 : 0;
    const n = 1 + rng.int(7);
    const idx = Array.from({ length: n }, () => rng.int(shape[axis]));
    const idxShape = i % 2 === 0 ? [n] : [1, n];
    const results: number[][] = [];
    for (const backend of ['wasm', 'cpu'] as const) {
      await tf.setBackend(backend);
      const x = tf.tensor(values, shape, dtype);
      const it = tf.tensor(idx, idxShape, 'int32');
      const y = tf.gather(x, it, axis);
      assert.equal(y.dtype, dtype);
      results.push([...y.shape, -1, ...Array.from(y.dataSync())]);
      tf.dispose([x, it, y]);
    }
    assert.deepEqual(results[0], results[1], `case ${i}: [${shape}] axis ${axis} indices [${idx}]`);
  }
  await tf.setBackend('wasm');
  const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  const bad = tf.tensor1d([0, 2], 'int32');
  assert.throws(() => tf.gather(x, bad).dataSync(), /not in \[0, 1\]/);
  tf.dispose([x, bad]);
});

test('Slice on wasm (contiguous blocks copied on the heap; the built-in kernel otherwise) equals cpu', async () => {
  const rng = new Rng(73);
  for (let i = 0; i < 16; i++) {
    const rank = 1 + rng.int(4);
    const shape = Array.from({ length: rank }, () => 1 + rng.int(6));
    const size = shape.reduce((p, q) => p * q, 1);
    const dtype = i % 3 === 2 ? 'int32' : 'float32';
    const values = Array.from({ length: size }, () => (dtype === 'int32' ? rng.int(100) : rng.normal()));
    // leading-axis rows (contiguous) or any box
    const begin = shape.map((d, a) => (a === 0 || i % 2 === 1 ? rng.int(d) : 0));
    const sz = shape.map((d, a) => (a === 0 || i % 2 === 1 ? 1 + rng.int(d - begin[a]) : -1));
    const results: number[][] = [];
    for (const backend of ['wasm', 'cpu'] as const) {
      await tf.setBackend(backend);
      const x = tf.tensor(values, shape, dtype);
      const y = tf.slice(x, begin, sz);
      assert.equal(y.dtype, dtype);
      results.push([...y.shape, -1, ...Array.from(y.dataSync())]);
      tf.dispose([x, y]);
    }
    assert.deepEqual(results[0], results[1], `case ${i}: [${shape}] begin [${begin}] size [${sz}]`);
  }
  await tf.setBackend('wasm');
});
