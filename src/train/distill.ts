/**
 * Learning from the float network. Two uses:
 *
 * - Label-free data (or `target: fidelity`): every split's targets become the float network's
 *   top-1 class (one-hot), so `accuracy` everywhere (trainer, evaluator, search, reports) is the
 *   top-1 agreement of the quantized network with the float one on the same inputs.
 * - Distillation (`distill`, and always with label-free data): the training split's targets become
 *   the float network's softened class probabilities softmax(z / T) (z: logits, or log p for a
 *   network ending in a softmax). The trainer's soft-target cross-entropy on the student's
 *   softened outputs, times T^2 (trainer option `temperature`), is the KL divergence of Hinton et
 *   al. up to a constant.
 *
 * Targets are computed once, before any quantization (the network must be at float bits), batch by
 * batch; the old target tensors are freed.
 */
import { tf } from '../backend/index.js';
import type { Dataset, Split, SplitInputs } from '../data/api.js';
import { splitInputs, tensorInputs } from '../data/inputs.js';
import type { TrainableNetwork } from './trainer.js';
import { outputsProbabilities } from './trainer.js';

export type Target = 'accuracy' | 'fidelity';
export const TARGETS: readonly Target[] = ['accuracy', 'fidelity'];
export const DEFAULT_TEMPERATURE = 2;

export interface TargetOptions {
  /** `fidelity`: agreement with the float network even when the data has labels. */
  target?: Target;
  /** Train on the float network's soft targets. */
  distill?: boolean;
  /** Softening temperature of the soft targets (default 2). */
  temperature?: number;
  /** Batch of the float network's forward passes (default 32). */
  batchSize?: number;
  /** The float network's logits per split, computed elsewhere (e.g. onnxruntime); used instead of a tfjs pass and disposed. */
  logits?: Partial<Record<'train' | 'val' | 'test', tf.Tensor2D>>;
}

export interface TargetsApplied {
  /** What `accuracy` means now. */
  metric: 'accuracy' | 'agreement';
  /** Whether the training split holds soft targets (train with the trainer's `temperature`). */
  distill: boolean;
  temperature: number;
}

/** The network's logits (log-probabilities for a softmax output) on a split, [n, classes], batch by batch. */
export function networkLogits(net: TrainableNetwork, x: tf.Tensor4D | SplitInputs, batchSize = 32): tf.Tensor2D {
  const probs = outputsProbabilities(net.model);
  const inputs = 'inMemory' in x ? x : tensorInputs(x);
  const n = inputs.shape[0];
  const parts: tf.Tensor[] = [];
  for (let s = 0; s < n; s += batchSize) {
    const size = Math.min(batchSize, n - s);
    parts.push(
      tf.tidy(() => {
        const out = net.model.predict(inputs.slice(s, size)) as tf.Tensor;
        return probs ? tf.log(tf.clipByValue(out, 1e-12, 1)) : out;
      }),
    );
  }
  const all = tf.concat(parts, 0) as tf.Tensor2D;
  for (const p of parts) p.dispose();
  return all;
}

function replaceTargets(split: Split, y: tf.Tensor2D): void {
  split.y.dispose();
  split.y = y;
  const labels = tf.tidy(() => tf.argMax(y, -1)).dataSync();
  split.labels = Int32Array.from(labels);
}

/**
 * Sets the dataset's targets from the float network when the data has no labels, with
 * `target: fidelity` or with `distill` (see the module comment). Returns what the metric now is.
 */
export function applyTargets(net: TrainableNetwork, ds: Dataset, opts: TargetOptions = {}): TargetsApplied {
  const T = opts.temperature ?? DEFAULT_TEMPERATURE;
  if (!(T > 0)) throw new Error(`applyTargets: temperature must be > 0, got ${T}`);
  const fidelity = ds.labeled === false || opts.target === 'fidelity';
  const distill = opts.distill === true || ds.labeled === false;
  if (!fidelity && !distill) return { metric: ds.metric ?? 'accuracy', distill: false, temperature: T };
  const outShape = net.model.outputs[0]?.shape ?? [];
  const classes = outShape[outShape.length - 1] as number;
  for (const name of ['train', 'val', 'test'] as const) {
    const split = ds[name];
    const soft = distill && name === 'train';
    if (!fidelity && !soft) continue;
    const z = opts.logits?.[name] ?? networkLogits(net, splitInputs(split), opts.batchSize ?? 32);
    const y = tf.tidy(() =>
      soft ? tf.softmax(tf.div(z, T)) : tf.oneHot(tf.argMax(z, -1), classes).toFloat(),
    ) as tf.Tensor2D;
    z.dispose();
    replaceTargets(split, y);
  }
  if (fidelity) {
    ds.numClasses = classes;
    ds.metric = 'agreement';
  }
  return { metric: fidelity ? 'agreement' : 'accuracy', distill, temperature: T };
}
