/** Quantizer math: grids, rounding, and the STE / LSQ / PACT gradients on hand-computed cases. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import {
  activationRange,
  fakeQuantize,
  lsqGradScale,
  lsqQuantize,
  lsqRange,
  pactQuantize,
  quantizeWeightsSte,
  symmetricRange,
} from '../src/quant/quantizers.js';

before(async () => {
  await initBackend('wasm');
});

function close(actual: ArrayLike<number>, expected: number[], tol = 1e-5, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Values of channel c (last axis) of a [.., C] array. */
function channel(data: Float32Array, C: number, c: number): number[] {
  const out: number[] = [];
  for (let i = c; i < data.length; i += C) out.push(data[i]);
  return out;
}

test('b-bit weights: per channel at most 2^b values, all on the grid s*k, each the nearest level', () => {
  const w = tf.randomNormal([3, 3, 4, 5], 0, 1, 'float32', 11);
  const wd = w.dataSync() as Float32Array;
  for (const bits of [2, 3, 4, 5, 6, 7, 8, 16]) {
    const q = quantizeWeightsSte(w, bits, [0, 1, 2]).dataSync() as Float32Array;
    const qp = 2 ** (bits - 1) - 1;
    for (let c = 0; c < 5; c++) {
      const wc = channel(wd, 5, c);
      const qc = channel(q, 5, c);
      const s = Math.max(...wc.map(Math.abs)) / qp;
      assert.ok(new Set(qc).size <= 2 ** bits, `${bits}-bit channel ${c} has ${new Set(qc).size} values`);
      qc.forEach((v, i) => {
        const k = v / s;
        assert.ok(
          Math.abs(k - Math.round(k)) < 1e-3 + Math.abs(k) * 1e-6,
          `${bits}-bit value ${v} is off the grid (k=${k})`,
        );
        assert.ok(Math.abs(Math.round(k)) <= qp, `${bits}-bit code ${k} outside the symmetric range`);
        assert.ok(
          Math.abs(v - wc[i]) <= s / 2 + 1e-5 * s + 1e-7,
          `${bits}-bit: ${wc[i]} -> ${v} is not the nearest level (s=${s})`,
        );
      });
    }
  }
  w.dispose();
});

test('1-bit weights are sign(w) times the per-channel mean |w|', () => {
  const w = tf.tensor2d([
    [0.5, -2],
    [-1.5, 1],
    [1, 3],
  ]);
  const q = quantizeWeightsSte(w, 1, [0]).dataSync();
  const m0 = (0.5 + 1.5 + 1) / 3;
  const m1 = (2 + 1 + 3) / 3;
  close(q, [m0, -m1, -m0, m1, m0, m1], 1e-6, 'q');
});

test('32-bit weights pass through untouched (no op)', () => {
  const w = tf.randomNormal([4, 3]);
  assert.equal(quantizeWeightsSte(w, 32, [0]), w);
});

test('weight STE gradient is the identity', () => {
  const w = tf.randomNormal([2, 2, 3, 4], 0, 1, 'float32', 3);
  const c = tf.randomNormal([2, 2, 3, 4], 0, 1, 'float32', 4);
  const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(quantizeWeightsSte(x, 3, [0, 1, 2]), c)))(w);
  close(g.dataSync(), Array.from(c.dataSync()), 1e-6, 'grad');
});

test('unsigned activations: nearest level inside the clip range, clipped outside, STE gradient 1 inside / 0 outside', () => {
  // 2 bits, clip 1: levels 0, 1/3, 2/3, 1
  const range = activationRange(2, false);
  assert.deepEqual(range, { qmin: 0, qmax: 3 });
  const x = tf.tensor1d([-0.5, 0.1, 0.2, 0.6, 0.9, 1.5]);
  const f = (v: tf.Tensor) => fakeQuantize(v, 1 / 3, range);
  close(f(x).dataSync(), [0, 0, 1 / 3, 2 / 3, 1, 1], 1e-6, 'q');
  const dy = tf.tensor1d([1, 2, 3, 4, 5, 6]);
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(f(v), dy)))(x);
  close(g.dataSync(), [0, 2, 3, 4, 5, 0], 1e-6, 'grad');
});

test('signed activations use the symmetric grid', () => {
  const range = activationRange(3, true);
  assert.deepEqual(range, symmetricRange(3));
  const x = tf.tensor1d([-2, -0.74, 0.2, 0.76, 5]);
  close(fakeQuantize(x, 0.5, range).dataSync(), [-1.5, -0.5, 0, 1, 1.5], 1e-6, 'q');
});

test('LSQ value and gradients (v and step) match the formulas on a hand case', () => {
  // 2-bit signed: Qn = 2, Qp = 1; s = 0.5 so v/s = [-3.2, -0.4, 0.6, 2.2, 5.0]
  const range = lsqRange(2, true);
  assert.deepEqual(range, { qmin: -2, qmax: 1 });
  const v = tf.tensor1d([-1.6, -0.2, 0.3, 1.1, 2.5]);
  const s = tf.scalar(0.5);
  const dy = tf.tensor1d([1, 2, 3, 4, 5]);
  const g = lsqGradScale(5, range);
  assert.ok(Math.abs(g - 1 / Math.sqrt(5 * 1)) < 1e-12);
  close(lsqQuantize(v, s, range, g).dataSync(), [-1, 0, 0.5, 0.5, 0.5], 1e-6, 'v_hat');
  const [dv, ds] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(lsqQuantize(a, b, range, g), dy)))([
    v,
    s,
  ]) as [tf.Tensor, tf.Tensor];
  close(dv.dataSync(), [0, 2, 3, 0, 0], 1e-6, 'dv');
  // dv_hat/ds: below -Qn -> -2; inside round(r) - r -> 0.4, 0.4; above Qp -> 1, 1
  const expected = (-2 * 1 + 0.4 * 2 + 0.4 * 3 + 1 * 4 + 1 * 5) * g;
  close(ds.dataSync(), [expected], 1e-5, 'ds');
});

test('LSQ unsigned range is [0, 2^b - 1]', () => {
  assert.deepEqual(lsqRange(4, false), { qmin: 0, qmax: 15 });
  const v = tf.tensor1d([-1, 0.26, 100]);
  close(lsqQuantize(v, tf.scalar(0.5), lsqRange(4, false), 1).dataSync(), [0, 0.5, 7.5], 1e-6, 'v_hat');
});

test('PACT value and gradients: dy/dx = 1 for 0 < x < alpha, dy/dalpha = 1 for x >= alpha', () => {
  // 2 bits, alpha 2: s = 2/3
  const x = tf.tensor1d([-1, 0.5, 1.5, 3]);
  const alpha = tf.scalar(2);
  const dy = tf.tensor1d([1, 2, 3, 4]);
  close(pactQuantize(x, alpha, 2, false).dataSync(), [0, 2 / 3, 4 / 3, 2], 1e-6, 'y_q');
  const [dx, da] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(pactQuantize(a, b, 2, false), dy)))([
    x,
    alpha,
  ]) as [tf.Tensor, tf.Tensor];
  close(dx.dataSync(), [0, 2, 3, 0], 1e-6, 'dx');
  close(da.dataSync(), [4], 1e-6, 'dalpha');
});

test('signed PACT: dy/dalpha = sign(x) for |x| >= alpha', () => {
  const x = tf.tensor1d([-3, -0.5, 0.5, 2.5]);
  const alpha = tf.scalar(2);
  const dy = tf.tensor1d([1, 2, 3, 4]);
  const [dx, da] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(pactQuantize(a, b, 3, true), dy)))([
    x,
    alpha,
  ]) as [tf.Tensor, tf.Tensor];
  close(dx.dataSync(), [0, 2, 3, 0], 1e-6, 'dx');
  close(da.dataSync(), [-1 + 4], 1e-6, 'dalpha');
});
