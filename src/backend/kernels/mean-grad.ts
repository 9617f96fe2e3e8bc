/**
 * Gradient of Mean, for every backend. tfjs-core's builds a tensor of ones of x's full shape
 * (on the wasm backend an upload from JavaScript, slower than the rest of the gradient),
 * multiplies it by dy and divides the product by the number of reduced elements: three
 * full-size steps. This one divides dy first (a per-channel tensor for BatchNorm's batch
 * moments) and broadcasts the quotient to x's shape (one Tile): the same values, bit for bit.
 */
import * as tf from '@tensorflow/tfjs';

export const meanGradConfig: tf.GradConfig = {
  kernelName: 'Mean',
  // x is saved for its shape.
  inputsToSave: ['x'],
  gradFunc: (dyOrDys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const dy = Array.isArray(dyOrDys) ? dyOrDys[0] : dyOrDys;
    const [x] = saved as [tf.Tensor];
    const { axis } = attrs as unknown as { axis: number | number[] };
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const reduceSize = axes.reduce((p, a) => p * x.shape[a], 1);
    const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return { x: () => tf.broadcastTo(tf.div(tf.reshape(dy, expanded), reduceSize), x.shape) };
  },
};
