/**
 * Gradient of FusedBatchNorm (y = (x - mean) * rsqrt(variance + eps) * scale + offset), for
 * every backend. tfjs-core's own gradient materialises tile(rsqrt(variance + eps)) at the full
 * shape of x and repeats the full-size products for each input's gradient (about 14 full-size
 * ops per call, the Tile alone being the slowest kernel of a BatchNorm network's training step
 * on wasm). This one broadcasts the per-channel factors and shares the two per-channel sums:
 *
 *   k = scale * rsqrt(variance + eps),  S1 = sum(dy),  S2 = sum(dy * (x - mean))
 *   dx = dy * k                          dmean = -k * S1
 *   dvariance = -0.5 * rsqrt(variance + eps)^2 * k * S2
 *   dscale = rsqrt(variance + eps) * S2  doffset = S1
 *
 * (sums over the axes along which the parameters broadcast to x): five full-size ops in all.
 * These are exactly the partial derivatives tfjs's gradient returns: mean and variance are
 * inputs like the others (when they are batch moments, as in tfjs-layers' training mode, their
 * gradients flow on into x through tf.moments, as before). The two sums are computed when the
 * gradient function runs (whichever inputs need gradients), like tfjs's own shared terms.
 *
 * tfjs accepts parameters shaped [C] or shaped like x. When mean, variance and scale do not all
 * have one shape, each gradient is computed on its own with broadcasting (still no tile) and
 * summed back to its input's shape, so shapes tfjs's gradient rejects (e.g. [1, C, 1, 1]
 * parameters of a channels-first BatchNorm) work too. As in tfjs, the saved inputs are x, mean,
 * variance and scale (so, as with tfjs's gradient, the tape cannot record a FusedBatchNorm
 * without scale), and offset's gradient has mean's shape.
 */
import * as tf from '@tensorflow/tfjs';

/** Sums `t` over the axes along which `shape` broadcasts to t's shape, then gives it `shape`. */
function reduceTo(t: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(shape, t.shape).filter((a) => t.shape[a] > 1);
  return tf.reshape(axes.length > 0 ? tf.sum(t, axes) : t, shape);
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export const fusedBatchNormGradConfig: tf.GradConfig = {
  kernelName: 'FusedBatchNorm',
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dyOrDys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const dy = Array.isArray(dyOrDys) ? dyOrDys[0] : dyOrDys;
    const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
    const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
    // Per-parameter factors (small tensors).
    const inv = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
    const k = scale == null ? inv : tf.mul(inv, scale);
    const p = mean.shape;
    const uniform = [variance, scale].every((t) => t == null || sameShape(t.shape, p));
    if (uniform) {
      const sumDy = reduceTo(dy, p);
      const sumDyXc = tf.tidy(() => reduceTo(tf.mul(dy, tf.sub(x, mean)), p));
      return {
        x: () => tf.reshape(tf.mul(dy, k), x.shape),
        mean: () => tf.mul(tf.neg(k), sumDy),
        variance: () => tf.mul(tf.mul(tf.mul(k, tf.square(inv)), tf.scalar(-0.5)), sumDyXc),
        scale: () => tf.mul(inv, sumDyXc),
        // A new tensor (sharing sumDy's data): the caller may dispose it independently.
        offset: () => tf.reshape(sumDy, p),
      };
    }
    const dyXc = (): tf.Tensor => tf.mul(dy, tf.sub(x, mean));
    return {
      x: () => reduceTo(tf.mul(dy, k), x.shape),
      mean: () => reduceTo(tf.mul(dy, tf.neg(k)), mean.shape),
      variance: () => reduceTo(tf.mul(dyXc(), tf.mul(tf.mul(k, tf.square(inv)), tf.scalar(-0.5))), variance.shape),
      scale: () => reduceTo(tf.mul(dyXc(), inv), scale == null ? p : scale.shape),
      offset: () => reduceTo(dy, p),
    };
  },
};
