/**
 * Bytes that follow the bits: weight storage and activation footprints.
 *
 * Weights of a layer quantized to w bits take ceil(params * w / 8) bytes, plus one float32 scale per
 * output channel (per-channel symmetric quantization; none at 32 bits, which is float), plus the bias
 * and folded BatchNorm parameters at 32 bits. A tensor quantized to w bits can always be stored
 * exactly in any wider format, so the storage of a layer is the cheapest of its own format and every
 * wider valid format: this keeps size monotonic in bits by construction (it only matters for layers
 * with about one weight per output channel, where the scales outweigh the saving).
 */
import { VALID_BITS, type LayerInfo } from '../models/layer-info.js';

const SCALE_BYTES = 4;
const BIAS_BYTES = 4;

/** Weight bytes of a layer stored at exactly `wBits` (no wider-format fallback). */
export function rawWeightBytes(layer: LayerInfo, wBits: number): number {
  const scales = wBits < 32 ? layer.outChannels * SCALE_BYTES : 0;
  return Math.ceil((layer.params * wBits) / 8) + scales + layer.biasParams * BIAS_BYTES;
}

/** Weight bytes of a layer quantized to `wBits`: the cheapest exact storage at `wBits` or wider. */
export function weightStorageBytes(layer: LayerInfo, wBits: number): number {
  let best = rawWeightBytes(layer, wBits);
  for (const b of VALID_BITS) {
    if (b > wBits) {
      const bytes = rawWeightBytes(layer, b);
      if (bytes < best) best = bytes;
    }
  }
  return best;
}

/** Bytes of `elements` activations at `aBits` (32 = float32). */
export function activationBytes(elements: number, aBits: number): number {
  return Math.ceil((elements * aBits) / 8);
}

/** weightStorageBytes(layer, b) for every b in 1..32, indexed by bits (for the cost table's inner loops). */
export function weightBytesByBits(layer: LayerInfo): Float64Array {
  const out = new Float64Array(33);
  for (let b = 1; b <= 32; b++) out[b] = weightStorageBytes(layer, b);
  return out;
}
