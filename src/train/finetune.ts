/**
 * The fine-tune regime for a network that is already trained (a model loaded from a file): QAT
 * starts from its weights without a float warm-up, at a small learning rate, with every
 * BatchNorm frozen (its moving statistics folded into the quantized layer before it during training
 * as at inference; a BatchNorm that cannot be folded runs in inference mode), activation ranges
 * calibrated once after training-free PTQ (quant/ptq.ts) and then kept, and, optionally,
 * distillation from the float network (distill.ts).
 */
import type * as tf from '@tensorflow/tfjs';
import type { QuantNetwork } from '../quant/network.js';

export interface FineTuneRegime {
  /** Learning rate of QAT (Adam). */
  lr: number;
  /** Float epochs before QAT (0: none). */
  warmupEpochs: number;
  freezeBatchNorm: boolean;
  freezeRanges: boolean;
  /**
   * Dropout (and the other noise layers) off during training passes: the float teacher that
   * distillation matches and the evaluation both run without it, and it is what made QAT of a
   * pretrained network unrepeatable (tfjs draws dropout masks from an unseeded generator).
   */
  freezeDropout: boolean;
}

/**
 * Defaults for a pretrained network. Adam at lr 1e-6: on nsfwjs's MobileNetV2 (8 steps of batch 4 on
 * 32 photo crops, distillation at T = 2), W8A8 kept its agreement (100% -> 100%) and W6A6 recovered
 * (87.5% -> 100%); at 1e-5 W6A6 recovered as well but W8A8 lost two crops (100% -> 93.75%) and its
 * distillation loss rose: Adam moves every weight by about lr per step whatever its gradient, which
 * at 8 bits is noise above the loss floor (measured in the set-up of tests/pretrained.test.ts; on other crops
 * `npm run bench -- finetune --regimes pretrained --lrs 1e-5,1e-6 --bits 8,6` compares the rates).
 */
export const PRETRAINED_FINETUNE: Readonly<FineTuneRegime> = {
  lr: 1e-6,
  warmupEpochs: 0,
  freezeBatchNorm: true,
  freezeRanges: true,
  freezeDropout: true,
};

/**
 * How the search's QAT treats the shared weights between episodes:
 * - `carry`: each episode trains on from the weights the previous episodes left (AMED's interleaved
 *   training and search). Right for a network trained from scratch, whose weights are still improving.
 * - `restore`: each episode's QAT starts from the weights the search started with (after PTQ) with a
 *   fresh optimizer, as HAQ's environment reloads the pretrained model before every episode's
 *   short fine-tune. The uniform points and the final fine-tune then start from the pretrained
 *   weights, which no sequence of low-bit episodes can move.
 */
export type SharedWeights = 'carry' | 'restore';
export const SHARED_WEIGHTS: readonly SharedWeights[] = ['carry', 'restore'];

const FROZEN = Symbol('bitalloc.frozenBatchNorm');
type LayerCall = tf.layers.Layer['call'];
type Frozen = tf.layers.Layer & { [FROZEN]?: { original: LayerCall; active: boolean } };

/** Makes a layer run in inference mode during training passes while `frozen` (reversible). */
function setInferenceMode(l: tf.layers.Layer, frozen: boolean): void {
  const f = l as Frozen;
  if (!f[FROZEN]) {
    const original: LayerCall = l.call.bind(l);
    const state = { original, active: false };
    f[FROZEN] = state;
    l.call = (inputs, kwargs) => original(inputs, state.active ? { ...kwargs, training: false } : kwargs);
  }
  (f[FROZEN] as { active: boolean }).active = frozen;
}

/** True when some layer of the model is held in inference mode for training passes (BatchNorm or dropout). */
export function hasInferenceModeLayers(model: tf.LayersModel): boolean {
  return model.layers.some((l) => (l as Frozen)[FROZEN]?.active === true);
}

/** Layers that only add noise in training: identity at inference. */
export const NOISE_LAYERS: readonly string[] = [
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
];

/** Turns the network's dropout and noise layers off (or on again) for training passes; returns how many there are. */
export function setDropoutFrozen(net: QuantNetwork, frozen: boolean): number {
  let count = 0;
  for (const l of net.model.layers) {
    if (!NOISE_LAYERS.includes(l.getClassName())) continue;
    setInferenceMode(l, frozen);
    count++;
  }
  return count;
}

/** Freezes (or unfreezes) every BatchNorm of the network for training passes (see the module comment). */
export function setBatchNormFrozen(net: QuantNetwork, frozen: boolean): void {
  const folded = new Set<tf.layers.Layer>();
  for (const q of net.qlayers) {
    q.foldBnInTraining = frozen && q.foldedBn !== null;
    if (q.foldedBn) folded.add(q.foldedBn);
  }
  for (const l of net.model.layers) {
    if (l.getClassName() !== 'BatchNormalization' || folded.has(l)) continue;
    setInferenceMode(l, frozen);
  }
}

/** Keeps (or releases) the calibrated activation ranges during training passes. */
export function setRangesFrozen(net: QuantNetwork, frozen: boolean): void {
  for (const q of net.qlayers) q.rangesFrozen = frozen;
}

/** Applies a regime's freezing to a network. */
export function applyFineTuneRegime(net: QuantNetwork, regime: FineTuneRegime = PRETRAINED_FINETUNE): void {
  setBatchNormFrozen(net, regime.freezeBatchNorm);
  setRangesFrozen(net, regime.freezeRanges);
  setDropoutFrozen(net, regime.freezeDropout);
}
