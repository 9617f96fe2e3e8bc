/**
 * The observation: a fixed-length Float32Array, OBSERVATION_SIZE = 21 values.
 *
 *  index  name             meaning
 *  0      depthwise        1 for a depthwise conv layer, else 0                     (HAQ)
 *  1      cIn              input channels            min-max normalised over the layers (HAQ)
 *  2      cOut             output channels           "                              (HAQ)
 *  3      stride           stride (dense: 0)         "                              (HAQ)
 *  4      kernel           kernel size (dense: 1)    "                              (HAQ)
 *  5      weights          number of weights         "                              (HAQ)
 *  6      inputHW          input H x W               "                              (HAQ)
 *  7      layerIndex       position of the layer     "                              (HAQ)
 *  8      prevAction       previous step's bits / max bits; 0 at the first step.    (HAQ)
 *                          joint/tied: the previous chosen layer's weight bits.
 *  9      isWeightStep     two-step mode: 1 on a weight step, 0 on an activation step;
 *                          joint/tied: 0.5 (both at once).                           (HAQ)
 *  10     progress         steps taken / steps per episode
 *  11     meanWBits        mean weight bits of the layers chosen so far / max bits (0 if none)
 *  12     meanABits        mean activation bits of the layers chosen so far / max bits (0 if none)
 *  13-16  used.*           cost of the cheapest completion of the choices so far (every remaining
 *                          layer at the minimum bits) / cost of the W8A8 network, for latency,
 *                          energy, size, peak memory; clipped to [0, 8]
 *  17-20  left.*           budget left for the same four metrics: the tightest (limit - used cost)
 *                          / W8A8 cost over the constraints on that metric, clipped to [-1, 1];
 *                          1 when the metric has no constraint
 *
 * Pinned layers (pinFirstLast) have no steps, but count in the normalisation and in the costs.
 */
import type { LayerInfo } from '../src/models/layer-info.js';
import { Box } from './spaces.js';

export const OBSERVATION_LAYOUT: readonly string[] = [
  'depthwise',
  'cIn',
  'cOut',
  'stride',
  'kernel',
  'weights',
  'inputHW',
  'layerIndex',
  'prevAction',
  'isWeightStep',
  'progress',
  'meanWBits',
  'meanABits',
  'used.latency',
  'used.energy',
  'used.size',
  'used.peakMemory',
  'left.latency',
  'left.energy',
  'left.size',
  'left.peakMemory',
];
export const OBSERVATION_SIZE = OBSERVATION_LAYOUT.length;
export const LAYER_FEATURES = 8;
export const USED_OFFSET = 13;
export const LEFT_OFFSET = 17;
export const USED_MAX = 8;

export function observationSpace(): Box {
  const low = new Float32Array(OBSERVATION_SIZE);
  const high = new Float32Array(OBSERVATION_SIZE).fill(1);
  for (let i = 0; i < 4; i++) {
    high[USED_OFFSET + i] = USED_MAX;
    low[LEFT_OFFSET + i] = -1;
  }
  return new Box(low, high);
}

function rawLayerFeatures(l: LayerInfo): number[] {
  return [
    l.kind === 'depthwise' ? 1 : 0,
    l.inChannels,
    l.outChannels,
    l.kind === 'dense' ? 0 : l.stride[0],
    l.kind === 'dense' ? 1 : l.kernel[0],
    l.params,
    l.inSize[0] * l.inSize[1],
    l.index,
  ];
}

/** HAQ's static per-layer features (indices 0-7), each min-max normalised over the layers. */
export function layerFeatureTable(layers: readonly LayerInfo[]): Float32Array[] {
  const raw = layers.map(rawLayerFeatures);
  const out = layers.map(() => new Float32Array(LAYER_FEATURES));
  for (let j = 0; j < LAYER_FEATURES; j++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const r of raw) {
      lo = Math.min(lo, r[j]);
      hi = Math.max(hi, r[j]);
    }
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i][j];
      (out[i] as Float32Array)[j] = hi > lo ? (v - lo) / (hi - lo) : 0;
    }
  }
  return out;
}

export function clip(v: number, lo: number, hi: number): number {
  return Number.isNaN(v) ? lo : Math.min(hi, Math.max(lo, v));
}
