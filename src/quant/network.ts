/**
 * QuantNetwork: a tfjs LayersModel whose quantized layers take their bits at run time.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { VALID_BITS, type BitConfig, type LayerInfo } from './layer-info.js';
import { computeInventory, followingBatchNorm, quantLayers } from './inventory.js';
import type { QuantizedNetwork } from './api.js';
import type { QuantLayer } from './layers.js';

type LayerCall = tf.layers.Layer['call'];
const FOLDED = Symbol('bitalloc.foldedBatchNorm');

/**
 * Folds an inference-mode BatchNorm into the quantized layer before it: the layer computes
 * codes * (scale * k) + folded bias at inference and the BatchNorm passes its input through
 * (training mode is unchanged: batch statistics, moving averages updated).
 */
function foldAtInference(q: QuantLayer, bn: tf.layers.Layer): void {
  q.foldedBn = bn;
  const marked = bn as tf.layers.Layer & { [FOLDED]?: boolean };
  if (marked[FOLDED]) return;
  marked[FOLDED] = true;
  const original: LayerCall = bn.call.bind(bn);
  bn.call = (inputs, kwargs) =>
    kwargs['training'] === true && !q.foldBnInTraining
      ? original(inputs, kwargs)
      : Array.isArray(inputs)
        ? inputs[0]
        : inputs;
}

export class QuantNetwork implements QuantizedNetwork {
  readonly model: tf.LayersModel;
  readonly layers: readonly LayerInfo[];
  /** The quantized layers, in inventory order. */
  readonly qlayers: readonly QuantLayer[];

  constructor(model: tf.LayersModel) {
    this.model = model;
    this.qlayers = quantLayers(model);
    this.layers = computeInventory(model);
    for (const q of this.qlayers) {
      const bn = q.frozenWeights ? null : followingBatchNorm(model, q);
      if (bn) foldAtInference(q, bn);
    }
  }

  setBits(bits: BitConfig): void {
    if (bits.length !== this.qlayers.length) {
      throw new UserError(
        `bit configuration has ${bits.length} entries, the network has ${this.qlayers.length} quantizable layers`,
        {
          expected: `${this.qlayers.length} entries (${this.qlayers.map((l) => l.name).join(', ')})`,
        },
      );
    }
    bits.forEach((b, i) => {
      for (const [field, v] of [
        ['wBits', b.wBits],
        ['aBits', b.aBits],
      ] as const) {
        if (!VALID_BITS.includes(v)) {
          throw new UserError(`invalid ${field} ${String(v)} for layer ${this.qlayers[i]?.name}`, {
            field: `layers[${i}].${field}`,
            expected: VALID_BITS.join('|'),
          });
        }
      }
    });
    bits.forEach((b, i) => this.qlayers[i].setLayerBits(b.wBits, b.aBits));
  }

  getBits(): BitConfig {
    return this.qlayers.map((l) => ({ wBits: l.wBits, aBits: l.aBits }));
  }

  /**
   * Updates the activation ranges (STE clip EMA, LSQ/PACT initialisation) from a batch without
   * putting other layers (BatchNorm, Dropout) in training mode.
   */
  calibrate(x: tf.Tensor, passes = 1): void {
    for (const l of this.qlayers) l.calibrating = true;
    try {
      for (let i = 0; i < passes; i++) tf.tidy(() => this.model.predict(x));
    } finally {
      for (const l of this.qlayers) l.calibrating = false;
    }
  }
}
