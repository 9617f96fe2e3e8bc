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
}

export interface AllocationCost {
  latencyMs: number;
  energyUj: number;
  /** Model size in bytes: weights at their bits + scales + bias/BN. */
  sizeBytes: number;
  /** Largest live activation footprint over the layers, bytes. */
  peakMemoryBytes: number;
  /** Within the profile's flash and SRAM limits (true when it has none). */
  fits: boolean;
  /** Per layer, from the table. */
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
