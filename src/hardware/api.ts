/**
 * The simulator's contract with the rest of bitalloc (envs, search, agents, CLI).
 * Implemented in this folder; see index.ts.
 *
 * Flow: loadProfile(file|name) -> Profile; buildCostTable(profile, layers, bitChoices) precomputes
 * the cost of every (layer, wBits, aBits); costAllocation(table, bits) is then a lookup and a sum.
 */
import type { BitConfig, LayerInfo } from '../models/layer-info.js';

export interface LayerCost {
  latencyMs: number;
  energyUj: number;
  computeCycles: number;
  memoryCycles: number;
  /** Which side of the roofline limits the layer. */
  bound: 'compute' | 'memory';
  /** Bytes of weights (params * wBits / 8, plus scales / bias). */
  weightBytes: number;
  /** Activation bytes live while the layer runs: input + output + live residuals, at the bits it runs with. */
  activationBytes: number;
  /** Bytes moved to and from off-chip memory for this layer (the roofline's memory term). */
  offChipBytes: number;
}

/** A storage limit an allocation breaks: the model size against flash, or a layer's activations against SRAM. */
export interface FitViolation {
  limit: 'flash' | 'sram';
  /** The layer at fault: the one whose activations exceed SRAM, or (flash) the layer with the most weight bytes. */
  layerIndex: number;
  layerName: string;
  /** What is needed (total model size for flash, that layer's activation bytes for SRAM) and what the device has. */
  bytes: number;
  limitBytes: number;
}

export interface AllocationCost {
  latencyMs: number;
  energyUj: number;
  /** Model size in bytes: weights at their bits + scales + bias/BN. */
  sizeBytes: number;
  /** Largest live activation footprint over the layers, bytes. */
  peakMemoryBytes: number;
  /** Index of the layer where peakMemoryBytes is reached (always set by the simulator). */
  peakLayerIndex?: number;
  /** Within the profile's flash and SRAM limits (true when it has none). */
  fits: boolean;
  /** Why it does not fit: empty when it fits (always set by the simulator). */
  violations?: readonly FitViolation[];
  /** Per layer, from the table (the table's own objects, shared between calls: read, do not modify). */
  layers: LayerCost[];
}

/**
 * Costs of every (layer, wBits, aBits) for one model and profile, computed once.
 * `costAllocation` must stay a lookup and a sum: it runs inside every episode.
 */
export interface CostTable {
  readonly profileId: string;
  readonly layers: readonly LayerInfo[];
  /** Bit-widths the table covers (for both weights and activations). */
  readonly bitChoices: readonly number[];
  layerCost(layerIndex: number, wBits: number, aBits: number): LayerCost;
  costAllocation(bits: BitConfig): AllocationCost;
}
