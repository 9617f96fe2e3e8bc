/**
 * Fake quantizers as tfjs ops with custom gradients.
 *
 * - Weights, uniform symmetric per output channel (STE): s_c = max|w_c| / (2^(b-1) - 1),
 *   q = s_c * round(w / s_c), integers in the symmetric range [-(2^(b-1) - 1), 2^(b-1) - 1]
 *   (the symmetric range keeps the grid when a per-channel factor of either sign is folded in,
 *   e.g. a BatchNorm with negative gamma). 1-bit weights: sign(w) * mean|w_c| per channel
 *   (w = 0 counts as negative so a channel holds exactly two values). Gradient: identity (STE).
 * - Activations (STE) on a clip range c: unsigned s = c / (2^b - 1), integers [0, 2^b - 1];
 *   signed s = c / (2^(b-1) - 1), integers [-(2^(b-1) - 1), 2^(b-1) - 1]; signed 1-bit: ±c.
 *   Gradient 1 inside the clipping range, 0 outside.
 * - LSQ (Esser et al. 2020): v_bar = clamp(round(v/s), -Qn, Qp), v_hat = v_bar * s with the
 *   paper's gradients for v and s; the step gradient is scaled by g = 1/sqrt(N * Qp).
 * - PACT (Choi et al. 2018): y = clip(x, 0, alpha), y_q = round(y / s) * s, s = alpha / (2^k - 1);
 *   dy/dx = 1 for 0 < x < alpha; dy/dalpha = 1 for x >= alpha. Signed inputs (our choice):
 *   clip to [-alpha, alpha], dy/dalpha = sign(x) for |x| >= alpha.
 * - 32 bits: float pass-through, no op at all.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedFakeQuantize } from '../backend/kernels/elementwise.js';

/** Bits that mean "not quantized". */
export const FLOAT_BITS = 32;

/** Integer range of a grid: values q * scale with q in [qmin, qmax]. */
export interface IntRange {
  qmin: number;
  qmax: number;
}

/** Integer range of the symmetric (STE) grid; 1-bit is the binary grid {-1, +1}. */
export function symmetricRange(bits: number): IntRange {
  if (bits <= 1) return { qmin: -1, qmax: 1 };
  const q = 2 ** (bits - 1) - 1;
  return { qmin: -q, qmax: q };
}

/** Integer range of an unsigned activation grid. */
export function unsignedRange(bits: number): IntRange {
  return { qmin: 0, qmax: 2 ** bits - 1 };
}

/** LSQ's integer range: unsigned Qn = 0, Qp = 2^b - 1; signed Qn = 2^(b-1), Qp = 2^(b-1) - 1. */
export function lsqRange(bits: number, signed: boolean): IntRange {
  if (!signed) return unsignedRange(bits);
  if (bits <= 1) return { qmin: -1, qmax: 1 };
  return { qmin: -(2 ** (bits - 1)), qmax: 2 ** (bits - 1) - 1 };
}

/** Activation range for the STE/PACT quantizers. */
export function activationRange(bits: number, signed: boolean): IntRange {
  return signed ? symmetricRange(bits) : unsignedRange(bits);
}

/**
 * The positive level count used to turn a clip value into a step: clip / levels.
 * Signed 1-bit activations use two levels ±clip, hence 1.
 */
export function positiveLevels(bits: number, signed: boolean): number {
  return signed ? (bits <= 1 ? 1 : 2 ** (bits - 1) - 1) : 2 ** bits - 1;
}

/** Axes to reduce to get one value per output channel, for a kernel of the given kind. */
export function channelReduceAxes(kind: 'conv' | 'depthwise' | 'dense', rank: number): number[] {
  if (kind === 'depthwise') return Array.from({ length: rank - 2 }, (_, i) => i); // [kh, kw, cin, mult]
  return Array.from({ length: rank - 1 }, (_, i) => i);
}

const EPS = 1e-12;

type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

/** tf.customGrad over `n` tensor inputs, with typed arguments. */
export function customOp(
  n: number,
  f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => GradResult,
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const g = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) =>
    f(args.slice(0, n) as tf.Tensor[], args[n] as tf.GradSaveFunc),
  );
  return (...inputs: tf.Tensor[]) => g(...inputs);
}

/** Per-output-channel scale of the symmetric weight grid (keepDims so it broadcasts). */
export function weightScales(w: tf.Tensor, bits: number, axes: number[]): tf.Tensor {
  return tf.tidy(() => {
    const a = tf.abs(w);
    if (bits <= 1) return tf.maximum(tf.mean(a, axes, true), EPS);
    return tf.mul(tf.maximum(tf.max(a, axes, true), EPS), 1 / (2 ** (bits - 1) - 1));
  });
}

/**
 * Uniform symmetric per-channel weight quantizer with a straight-through gradient.
 * `axes` are the axes reduced to get one scale per output channel.
 */
export function quantizeWeightsSte(w: tf.Tensor, bits: number, axes: number[]): tf.Tensor {
  if (bits >= FLOAT_BITS) return w;
  const op = customOp(1, ([x]) => {
    const v = x;
    const s = weightScales(v, bits, axes);
    const value = bits <= 1 ? tf.mul(tf.step(v, -1), s) : tf.mul(tf.round(tf.div(v, s)), s);
    return { value, gradFunc: (dy: tf.Tensor) => [dy] };
  });
  return op(w);
}

/** The integer codes of weights on the symmetric per-channel grid (for export). */
export function weightCodes(w: tf.Tensor, bits: number, axes: number[]): { codes: tf.Tensor; scales: tf.Tensor } {
  return tf.tidy(() => {
    const s = weightScales(w, bits, axes);
    const codes = bits <= 1 ? tf.step(w, -1) : tf.round(tf.div(w, s));
    return { codes, scales: s };
  });
}

/**
 * Fake quantization on a fixed grid: scale * clamp(round(x / scale), qmin, qmax), with the
 * straight-through gradient (1 inside [qmin*scale, qmax*scale], 0 outside).
 * Signed 1-bit (qmin = -1, qmax = 1, `binary`) rounds to ±scale.
 */
export function fakeQuantize(x: tf.Tensor, scale: number, range: IntRange, binary = false): tf.Tensor {
  // on wasm: the same function in one pass forward and one backward (src/backend/kernels/elementwise.ts)
  const fused = fusedFakeQuantize(x, scale, range, binary);
  if (fused) return fused;
  const inv = 1 / scale;
  const op = customOp(1, ([v], save) => {
    const r = tf.mul(v, inv);
    const c = tf.clipByValue(r, range.qmin, range.qmax);
    save([r, c]);
    const value = binary ? tf.mul(tf.step(c, -1), scale) : tf.mul(tf.round(c), scale);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [rs, cs] = saved as [tf.Tensor, tf.Tensor];
        return [tf.mul(dy, tf.cast(tf.equal(rs, cs), 'float32'))];
      },
    };
  });
  return op(x);
}

/**
 * LSQ quantizer: v_hat = clamp(round(v/s), -Qn, Qp) * s, learned step s (a scalar tensor).
 * dv_hat/dv = 1 if -Qn < v/s < Qp else 0;
 * dv_hat/ds = round(v/s) - v/s inside, -Qn below, Qp above; times gradScale.
 * With range {qmin: -1, qmax: 1} and `binary`, v_hat = sign(v) * s (dv_hat/ds = sign(v)).
 */
export function lsqQuantize(
  v: tf.Tensor,
  step: tf.Tensor,
  range: IntRange,
  gradScale: number,
  binary = false,
): tf.Tensor {
  const op = customOp(2, ([x, sIn], save) => {
    const s = sIn;
    const r = tf.div(x, s);
    const c = tf.clipByValue(r, range.qmin, range.qmax);
    const bar = binary ? tf.step(c, -1) : tf.round(c);
    save([r, c, bar]);
    return {
      value: tf.mul(bar, s),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [rs, cs, bars] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const inside = tf.equal(rs, cs);
        const dx = tf.mul(dy, tf.cast(inside, 'float32'));
        const dsElem = binary ? bars : tf.where(inside, tf.sub(bars, cs), cs);
        const ds = tf.reshape(tf.mul(tf.sum(tf.mul(dy, dsElem)), gradScale), s.shape);
        return [dx, ds];
      },
    };
  });
  return op(v, step);
}

/** LSQ's step gradient scale g = 1 / sqrt(N * Qp). */
export function lsqGradScale(n: number, range: IntRange): number {
  return 1 / Math.sqrt(Math.max(1, n) * Math.max(1, range.qmax));
}

/**
 * PACT activation quantizer with a learned clip alpha (a scalar tensor).
 * Unsigned: y = clip(x, 0, alpha), y_q = round(y * Qp / alpha) * alpha / Qp with Qp = 2^b - 1;
 * dy/dx = 1 for 0 < x < alpha, dy/dalpha = 1 for x >= alpha.
 * Signed: clip to [-alpha, alpha], Qp = 2^(b-1) - 1, dy/dalpha = sign(x) for |x| >= alpha.
 */
export function pactQuantize(x: tf.Tensor, alpha: tf.Tensor, bits: number, signed: boolean): tf.Tensor {
  const levels = positiveLevels(bits, signed);
  const binary = signed && bits <= 1;
  const op = customOp(2, ([vIn, aIn], save) => {
    const v = vIn;
    const a = aIn;
    const lo = signed ? tf.neg(a) : tf.scalar(0);
    const y = tf.minimum(tf.maximum(v, lo), a);
    const s = tf.div(a, levels);
    const value = binary ? tf.mul(tf.step(y, -1), s) : tf.mul(tf.round(tf.div(y, s)), s);
    save([v, y, a]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [vs, ys, as] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const inside = tf.logicalAnd(
          tf.equal(vs, ys),
          signed ? tf.less(tf.abs(vs), as) : tf.logicalAnd(tf.greater(vs, 0), tf.less(vs, as)),
        );
        const dx = tf.mul(dy, tf.cast(inside, 'float32'));
        const above = tf.cast(tf.greaterEqual(signed ? tf.abs(vs) : vs, as), 'float32');
        const dirn = signed ? tf.mul(above, tf.sign(vs)) : above;
        const da = tf.reshape(tf.sum(tf.mul(dy, dirn)), as.shape);
        return [dx, da];
      },
    };
  });
  return op(x, alpha);
}
