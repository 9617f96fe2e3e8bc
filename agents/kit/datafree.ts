/**
 * Data-free labelled inputs (after Lee et al., arXiv 2103.10051): inputs are generated from the network
 * itself by optimising noise toward chosen labels, with no user data and no BatchNorm statistics.
 *
 *   x_i    <- uniform noise in [lo, hi] (seeded), label y_i = i mod classes (perClass inputs per class)
 *   loss   =  sum_i [ CE(f(x_i), y_i) + tvWeight * TV(x_i) + l2Weight * mean((x_i - mid)^2) ]
 *             TV(x) = mean of squared differences between vertical and horizontal neighbours
 *             f is the float network (every quantized layer at 32 bits) in inference mode
 *   step   =  Adam on the pixels (lr), then x <- clip(x, lo, hi) (the data range, 0..1 for every dataset)
 *   stop   =  after `steps` updates, or earlier once the mean cross-entropy is below `stopLoss`
 *
 * The total-variation and L2 priors keep the inputs smooth and near mid-grey; their weights, the noise
 * initialisation and the early stop are our choices (the paper leaves them out). Stopping at a moderate
 * loss rather than driving it to zero keeps the inputs near the decision boundaries, where a
 * quantization error changes the loss measurably. Deterministic from the seed on a deterministic backend.
 */
import { tf } from '../../src/backend/index.js';
import type { Split } from '../../src/data/api.js';
import { splitInputs } from '../../src/data/inputs.js';
import { outputsProbabilities } from '../../src/train/trainer.js';
import { Progress } from '../../src/util/progress.js';
import { Rng } from '../../src/util/rng.js';
import type { BitConfig } from '../../src/models/layer-info.js';
import type { QuantizedNetwork } from '../../src/quant/api.js';
import { FLOAT_BITS } from '../../src/quant/quantizers.js';

export interface DataFreeOptions {
  /** Inputs generated per class. */
  perClass: number;
  /** Adam steps at most. */
  steps: number;
  /** Adam learning rate on the pixels. */
  lr: number;
  /** Weight of the total-variation prior (per input). */
  tvWeight: number;
  /** Weight of the L2 prior toward the middle of the range (per input). */
  l2Weight: number;
  /** Stop once the mean cross-entropy over all inputs falls below this (0 = run every step). */
  stopLoss: number;
  /** The data range the inputs are clipped to. */
  range: [number, number];
  /** Inputs optimised together (the whole set is optimised; this only bounds memory). */
  batchSize: number;
  seed: number;
}

export const DATA_FREE_DEFAULTS: DataFreeOptions = {
  perClass: 32,
  steps: 200,
  lr: 0.05,
  tvWeight: 0.05,
  l2Weight: 0.01,
  stopLoss: 0.1,
  range: [0, 1],
  batchSize: 320,
  seed: 1,
};

export interface GeneratedInputs {
  /** The inputs and their target labels (x [n, h, w, c], y one-hot). */
  split: Split;
  /** Share of the inputs the float network classifies as their target. */
  accuracy: number;
  /** Mean cross-entropy of the float network on them, at the end. */
  loss: number;
  /** Adam updates run (per batch, the largest). */
  steps: number;
  seconds: number;
}

/** Per-sample cross-entropy on logits or probabilities, [n]. */
export function perSampleCrossEntropy(y: tf.Tensor, out: tf.Tensor, probabilities: boolean): tf.Tensor1D {
  if (probabilities) {
    const p = tf.clipByValue(out, 1e-7, 1 - 1e-7);
    return tf.neg(tf.sum(tf.mul(y, tf.log(p)), -1)) as tf.Tensor1D;
  }
  return tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Tensor1D>(y, out, undefined, undefined, tf.Reduction.NONE);
}

/** Squared-difference total variation per sample (mean over neighbours), [n]. */
function totalVariation(x: tf.Tensor4D): tf.Tensor1D {
  const [, h, w] = x.shape;
  const parts: tf.Tensor1D[] = [];
  if (h > 1) {
    const dy = tf.sub(tf.slice(x, [0, 1, 0, 0], [-1, -1, -1, -1]), tf.slice(x, [0, 0, 0, 0], [-1, h - 1, -1, -1]));
    parts.push(tf.mean<tf.Tensor1D>(tf.square(dy), [1, 2, 3]));
  }
  if (w > 1) {
    const dx = tf.sub(tf.slice(x, [0, 0, 1, 0], [-1, -1, -1, -1]), tf.slice(x, [0, 0, 0, 0], [-1, -1, w - 1, -1]));
    parts.push(tf.mean<tf.Tensor1D>(tf.square(dx), [1, 2, 3]));
  }
  if (parts.length === 0) return tf.zeros<tf.Rank.R1>([x.shape[0]]);
  return parts.length === 1 ? parts[0] : tf.add<tf.Tensor1D>(parts[0], parts[1]);
}

function checkOptions(o: DataFreeOptions): void {
  const positiveInt = (v: number, name: string): void => {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`generateInputs: ${name} must be a positive integer, got ${v}`);
  };
  positiveInt(o.perClass, 'perClass');
  positiveInt(o.batchSize, 'batchSize');
  if (!Number.isInteger(o.steps) || o.steps < 0)
    throw new RangeError(`generateInputs: steps must be a non-negative integer, got ${o.steps}`);
  if (!(o.lr > 0)) throw new RangeError(`generateInputs: lr must be > 0, got ${o.lr}`);
  for (const [name, v] of [
    ['tvWeight', o.tvWeight],
    ['l2Weight', o.l2Weight],
    ['stopLoss', o.stopLoss],
  ] as const) {
    if (!(v >= 0) || !Number.isFinite(v))
      throw new RangeError(`generateInputs: ${name} must be a finite number >= 0, got ${v}`);
  }
  if (!(o.range[1] > o.range[0]))
    throw new RangeError(`generateInputs: range must be [lo, hi] with lo < hi, got [${o.range.join(', ')}]`);
}

/**
 * Generates `perClass` inputs for every class of the network's output, from the float network (the
 * network's bits are set to 32 while generating and restored afterwards). The caller owns the returned
 * split's tensors.
 */
export async function generateInputs(
  net: QuantizedNetwork,
  opts: Partial<DataFreeOptions> = {},
): Promise<GeneratedInputs> {
  const o: DataFreeOptions = { ...DATA_FREE_DEFAULTS, ...opts };
  checkOptions(o);
  const model = net.model;
  const inShape = model.inputs[0]?.shape ?? [];
  const outShape = model.outputs[0]?.shape ?? [];
  const [h, w, c] = inShape.slice(1) as [number | null, number | null, number | null];
  const classes = outShape[outShape.length - 1];
  if (inShape.length !== 4 || !h || !w || !c)
    throw new Error(`generateInputs: the model's input must be [n, h, w, c], got [${inShape.join(', ')}]`);
  if (!classes || classes < 2)
    throw new Error(`generateInputs: the model must output class scores, got [${outShape.join(', ')}]`);
  const probabilities = outputsProbabilities(model);
  const [lo, hi] = o.range;
  const mid = (lo + hi) / 2;
  const n = o.perClass * classes;
  const pixels = h * w * c;
  const rng = new Rng(o.seed);
  const init = new Float32Array(n * pixels);
  for (let i = 0; i < init.length; i++) init[i] = lo + (hi - lo) * rng.next();
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = i % classes;

  const saved: BitConfig = net.getBits();
  net.setBits(saved.map(() => ({ wBits: FLOAT_BITS, aBits: FLOAT_BITS })));
  const t0 = performance.now();
  const out = new Float32Array(n * pixels);
  let maxSteps = 0;
  try {
    const progress = new Progress({
      label: 'data-free inputs: optimisation steps',
      total: Math.ceil(n / o.batchSize) * o.steps,
    });
    for (let start = 0; start < n; start += o.batchSize) {
      const size = Math.min(o.batchSize, n - start);
      const x = tf.variable(tf.tensor4d(init.subarray(start * pixels, (start + size) * pixels), [size, h, w, c]), true);
      const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels.subarray(start, start + size), 'int32'), classes).toFloat());
      const optimizer = tf.train.adam(o.lr);
      try {
        let step = 0;
        for (; step < o.steps; step++) {
          // Cross-entropy at the current inputs; stop before updating once it is low enough.
          let ce = Infinity;
          tf.tidy(() => {
            const { grads } = tf.variableGrads(() => {
              const logits = model.apply(x, { training: false }) as tf.Tensor;
              const ceEach = perSampleCrossEntropy(y, logits, probabilities);
              ce = tf.mean(ceEach).dataSync()[0];
              const tv = totalVariation(x);
              const l2 = tf.mean(tf.square(tf.sub(x, mid)), [1, 2, 3]);
              const total = tf.add(tf.add(ceEach, tf.mul(tv, o.tvWeight)), tf.mul(l2, o.l2Weight));
              return tf.sum<tf.Scalar>(total);
            }, [x]);
            if (ce < o.stopLoss) return;
            optimizer.applyGradients([{ name: x.name, tensor: grads[x.name] }]);
            x.assign(tf.clipByValue(x, lo, hi));
          });
          if (ce < o.stopLoss) break;
          if ((step + 1) % 25 === 0) await new Promise<void>((r) => setImmediate(r));
          progress.update((start / o.batchSize) * o.steps + step + 1, `cross-entropy ${ce.toFixed(3)}`);
        }
        maxSteps = Math.max(maxSteps, step);
        out.set(x.dataSync(), start * pixels);
      } finally {
        optimizer.dispose();
        x.dispose();
        y.dispose();
      }
    }
    const split: Split = {
      x: tf.tensor4d(out, [n, h, w, c]),
      y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classes).toFloat()) as tf.Tensor2D,
      labels,
    };
    const { accuracy, loss } = floatScore(net, split, probabilities, o.batchSize);
    return { split, accuracy, loss, steps: maxSteps, seconds: (performance.now() - t0) / 1000 };
  } finally {
    net.setBits(saved);
  }
}

/** Accuracy and mean cross-entropy of the network as it is set now, inference mode. */
function floatScore(
  net: QuantizedNetwork,
  split: Split,
  probabilities: boolean,
  batch: number,
): { accuracy: number; loss: number } {
  const n = split.labels.length;
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < n; start += batch) {
    const size = Math.min(batch, n - start);
    const [l, k] = tf.tidy(() => {
      const xb = splitInputs(split).slice(start, size);
      const yb = tf.slice(split.y, [start, 0], [size, -1]);
      const outb = net.model.apply(xb, { training: false }) as tf.Tensor;
      const hit = tf.sum(tf.cast(tf.equal(tf.argMax(outb, -1), tf.argMax(yb, -1)), 'float32'));
      return [tf.sum(perSampleCrossEntropy(yb, outb, probabilities)).dataSync()[0], hit.dataSync()[0]];
    });
    lossSum += l;
    correct += k;
  }
  return { accuracy: n > 0 ? correct / n : NaN, loss: n > 0 ? lossSum / n : NaN };
}
