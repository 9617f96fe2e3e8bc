/**
 * The one-pass elementwise kernels of the wasm backend (fused fake quantizer, ClipByValue gradient)
 * give exactly the cpu backend's values and gradients, run in place of tfjs's chains of ops, and
 * leave no tensor behind.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, tf } from '../src/backend/index.js';
import { CLIP_BY_VALUE_GRAD, FAKE_QUANTIZE, FAKE_QUANTIZE_GRAD, simdOptions } from '../src/backend/kernels/index.js';
import { nativeKernels, nativeModuleBytes, wasmSectionIds } from '../src/backend/kernels/native.js';
import { fakeQuantize } from '../src/quant/quantizers.js';
import { Rng } from '../src/util/rng.js';

before(async () => {
  await initBackend('wasm');
});

function randomArray(rng: Rng, n: number, spread: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = spread * rng.normal();
  return a;
}

/** Value and gradient of sum(f(x) * r) on a backend. */
async function valueAndGrad(
  backend: 'wasm' | 'cpu',
  f: (x: tf.Tensor) => tf.Tensor,
  x: Float32Array,
  r: Float32Array,
  shape: number[],
): Promise<[Float32Array, Float32Array]> {
  await tf.setBackend(backend);
  const xt = tf.tensor(x, shape);
  const rt = tf.tensor(r, shape);
  const y = f(xt);
  const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), rt)))(xt);
  const out: [Float32Array, Float32Array] = [
    Float32Array.from(y.dataSync() as Float32Array),
    Float32Array.from(g.dataSync() as Float32Array),
  ];
  tf.dispose([xt, rt, y, g]);
  return out;
}

function assertSame(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}: element ${i}: ${a[i]} (wasm) vs ${b[i]} (cpu)`);
  }
}

test('the fused fake quantizer equals the cpu backend exactly, forward and straight-through gradient', async () => {
  const rng = new Rng(41);
  const ranges = [
    { qmin: 0, qmax: 15, binary: false }, // unsigned 4-bit
    { qmin: -7, qmax: 7, binary: false }, // signed 4-bit
    { qmin: 0, qmax: 255, binary: false },
    { qmin: -1, qmax: 1, binary: true },
  ];
  for (let c = 0; c < 12; c++) {
    const range = ranges[c % ranges.length];
    const shape = [1 + rng.int(3), 1 + rng.int(7), 1 + rng.int(7), 1 + rng.int(5)];
    const n = shape.reduce((a, b) => a * b, 1);
    const scale = 0.05 + rng.next() * 0.3;
    const x = randomArray(rng, n, scale * range.qmax * 0.8);
    // values on the grid's edges and half-way points (round half to even)
    x[0] = range.qmax * scale;
    if (n > 1) x[1] = range.qmin * scale;
    if (n > 2) x[2] = 2.5 * scale;
    const r = randomArray(rng, n, 1);
    const f = (t: tf.Tensor): tf.Tensor => fakeQuantize(t, scale, range, range.binary);
    const [yw, gw] = await valueAndGrad('wasm', f, x, r, shape);
    const [yc, gc] = await valueAndGrad('cpu', f, x, r, shape);
    assertSame(yw, yc, `case ${c} value`);
    assertSame(gw, gc, `case ${c} gradient`);
    assert.ok(gw.some((v) => v === 0) || range.binary, `case ${c}: some values lie outside the range`);
  }
  await tf.setBackend('wasm');
});

test('on wasm, the fake quantizer and the ClipByValue gradient run as single kernels', async () => {
  const x = tf.randomNormal([4, 8, 8, 3], 0, 3, 'float32', 1);
  const info = await tf.profile(() => {
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.clipByValue(fakeQuantize(a, 0.1, { qmin: -7, qmax: 7 }), 0, 6)))(x);
    return g;
  });
  const names = info.kernels.map((k) => k.name);
  for (const k of [FAKE_QUANTIZE, FAKE_QUANTIZE_GRAD, CLIP_BY_VALUE_GRAD])
    assert.ok(names.includes(k), `${k} not among ${names.join(', ')}`);
  for (const k of ['Round', 'LogicalAnd', 'Select', 'Equal']) assert.ok(!names.includes(k), `${k} still runs`);
  x.dispose();
  if (info.result instanceof tf.Tensor) info.result.dispose();
});

test('the ClipByValue gradient (ReLU6, clipByValue) equals the cpu backend exactly, boundaries included', async () => {
  const rng = new Rng(43);
  for (let c = 0; c < 8; c++) {
    const shape = [1 + rng.int(3), 1 + rng.int(9), 1 + rng.int(9), 1 + rng.int(6)];
    const n = shape.reduce((a, b) => a * b, 1);
    const x = randomArray(rng, n, 4);
    x[0] = 0;
    if (n > 1) x[1] = 6;
    const r = randomArray(rng, n, 1);
    const lo = c % 2 === 0 ? 0 : -1.5;
    const hi = c % 2 === 0 ? 6 : 2.25;
    const f = (t: tf.Tensor): tf.Tensor => tf.clipByValue(t, lo, hi);
    const [yw, gw] = await valueAndGrad('wasm', f, x, r, shape);
    const [yc, gc] = await valueAndGrad('cpu', f, x, r, shape);
    assertSame(yw, yc, `case ${c} value`);
    assertSame(gw, gc, `case ${c} gradient`);
  }
  // the layer ReLU6 of the zoo's MobileNet
  const relu6 = tf.layers.reLU({ maxValue: 6 });
  const x = randomArray(rng, 2 * 5 * 5 * 4, 5);
  const r = randomArray(rng, x.length, 1);
  const f = (t: tf.Tensor): tf.Tensor => relu6.apply(t) as tf.Tensor;
  const [, gw] = await valueAndGrad('wasm', f, x, r, [2, 5, 5, 4]);
  const [, gc] = await valueAndGrad('cpu', f, x, r, [2, 5, 5, 4]);
  assertSame(gw, gc, 'ReLU6 gradient');
  await tf.setBackend('wasm');
});

test('the elementwise kernels leave no tensors behind', () => {
  const x = tf.randomNormal([3, 6, 6, 2], 0, 2, 'float32', 2);
  const before = tf.memory().numTensors;
  const g = tf.grad((a: tf.Tensor) => tf.sum(tf.clipByValue(fakeQuantize(a, 0.2, { qmin: 0, qmax: 15 }), 0, 2)))(x);
  assert.equal(tf.memory().numTensors, before + 1);
  g.dispose();
  x.dispose();
});

test('the compiled SIMD loops and the JS loops give the same values (NaN, infinities, ties, odd sizes)', async () => {
  await tf.setBackend('wasm');
  assert.ok(nativeKernels(tf.backend()) != null, 'the compiled kernels load on the wasm backend');
  const rng = new Rng(47);
  const special = [NaN, Infinity, -Infinity, -0, 0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 7.5, -7.5, 15.5, 1e30, -1e30];
  for (const n of [1, 3, 4, 5, 17, 64, 1023]) {
    const scale = 0.1 + rng.next() * 0.2;
    const x = randomArray(rng, n, 2);
    for (let i = 0; i < Math.min(n, special.length); i++) x[(i * 7) % n] = special[i] * scale;
    const r = randomArray(rng, n, 1);
    const cases: Array<(t: tf.Tensor) => tf.Tensor> = [
      (t) => fakeQuantize(t, scale, { qmin: -7, qmax: 7 }),
      (t) => fakeQuantize(t, scale, { qmin: 0, qmax: 15 }),
      (t) => fakeQuantize(t, scale, { qmin: -1, qmax: 1 }, true),
      (t) => tf.clipByValue(t, -0.25, 0.75),
    ];
    for (const [k, f] of cases.entries()) {
      simdOptions.enabled = true;
      const [yn, gn] = await valueAndGrad('wasm', f, x, r, [n]);
      simdOptions.enabled = false;
      const [yj, gj] = await valueAndGrad('wasm', f, x, r, [n]);
      simdOptions.enabled = true;
      // equal values (-0 and +0 alike, as tf.round's own results differ in the sign of zero), NaN where NaN
      const same = (a: Float32Array, b: Float32Array, what: string): void => {
        for (let i = 0; i < a.length; i++) {
          if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i])))
            assert.fail(`n ${n} case ${k} ${what} ${i}: ${a[i]} (SIMD) vs ${b[i]} (JS), x = ${x[i]}`);
        }
      };
      same(yn, yj, 'value');
      same(gn, gj, 'gradient');
    }
  }
});

test('the committed native module has no data segment and matches its C source when clang is installed', async (t) => {
  const bytes = nativeModuleBytes();
  const committed = readFileSync(
    fileURLToPath(new URL('../../src/backend/kernels/native/kernels.wasm', import.meta.url)),
  );
  assert.deepEqual(Buffer.from(bytes), committed, 'native-module.ts holds kernels.wasm');
  const ids = wasmSectionIds(bytes);
  assert.ok(ids.includes(10) && !ids.includes(11), `sections ${ids.join(',')}`);
  const clang = spawnSync('clang', ['--version']);
  if (clang.status !== 0) {
    t.skip('clang is not installed');
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'bitalloc-native-'));
  try {
    const script = fileURLToPath(new URL('../../src/backend/kernels/native/build.sh', import.meta.url));
    const r = spawnSync('sh', [script, out], { encoding: 'utf8' });
    if (r.status !== 0 && /wasm32|wasm-ld|unable to execute/.test(r.stderr)) {
      t.skip(`clang cannot build wasm32 here: ${r.stderr.split('\n')[0]}`);
      return;
    }
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readFileSync(join(out, 'kernels.wasm')), committed, 'rebuilt kernels.wasm differs');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
