/**
 * The contract between quantized networks and the rest of bitalloc (trainer, search, export).
 */
import type * as tf from '@tensorflow/tfjs';
import type { BitConfig, LayerInfo } from './layer-info.js';

export type QuantizerKind = 'ste' | 'lsq' | 'pact';

/** A network whose quantizable layers take their bits at run time. */
export interface QuantizedNetwork {
  /** The trainable tfjs model (quantized Conv2D / DepthwiseConv2D / Dense layers inside). */
  readonly model: tf.LayersModel;
  /** The inventory of its quantizable layers, in forward order. */
  readonly layers: readonly LayerInfo[];
  /** Sets every layer's wBits/aBits; takes effect at the next forward pass, no rebuild or recompile. */
  setBits(bits: BitConfig): void;
  getBits(): BitConfig;
}
