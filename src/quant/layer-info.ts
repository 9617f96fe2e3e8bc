/**
 * The layer inventory: what the simulator, the environment and the agents know of a network.
 * One entry per quantizable layer (Conv2D, DepthwiseConv2D, Dense), in forward order.
 */
export type LayerKind = 'conv' | 'depthwise' | 'dense';

export interface LayerInfo {
  /** Position among the quantizable layers, 0-based. */
  index: number;
  /** The tfjs layer name. */
  name: string;
  kind: LayerKind;
  inChannels: number;
  outChannels: number;
  /** [kh, kw]; dense: [1, 1]. */
  kernel: [number, number];
  /** [sh, sw]; dense: [0, 0] as in HAQ's features. */
  stride: [number, number];
  /** Input spatial size [h, w]; dense: [1, 1]. */
  inSize: [number, number];
  /** Output spatial size [h, w]; dense: [1, 1]. */
  outSize: [number, number];
  /** Weight count (without bias): the parameters whose size follows wBits. */
  params: number;
  /** Bias and folded BatchNorm parameters (kept at 32 bits). */
  biasParams: number;
  /** Multiply-accumulates per sample. */
  macs: number;
  /** Elements of the input activation per sample (h*w*c). */
  inElements: number;
  /** Elements of the output activation per sample. */
  outElements: number;
  /**
   * Elements of other tensors that must stay alive while this layer runs (residual branches
   * waiting for their Add), per sample. Stored at this layer's aBits for peak memory.
   */
  liveElements: number;
}

/** One layer's bit-widths: weights and the activation quantizer that feeds the layer. 32 = float. */
export interface LayerBits {
  wBits: number;
  aBits: number;
}

/** A bit allocation: one LayerBits per quantizable layer, in inventory order. */
export type BitConfig = LayerBits[];

/** Bit-widths a quantizer accepts: 1..8, 16, and 32 meaning float pass-through. */
export const VALID_BITS: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 16, 32];

export function uniformBits(layers: readonly LayerInfo[], wBits: number, aBits: number): BitConfig {
  return layers.map(() => ({ wBits, aBits }));
}

export function formatBits(bits: BitConfig): string {
  return bits.map((b) => (b.wBits === b.aBits ? `${b.wBits}` : `${b.wBits}/${b.aBits}`)).join(',');
}
