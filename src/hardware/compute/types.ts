/**
 * What a compute model sees of a layer and what it returns. A compute model turns (layer, wBits,
 * aBits) into compute cycles and compute energy; the memory term, the roofline and the totals are
 * the same for every model (see ../cost-model.ts). Compute models are chosen by the profile's
 * `compute.model`, never by device name.
 */
import type { LayerInfo } from '../../models/layer-info.js';
import type { ComputeModelName, ProfileSpec } from '../profile-types.js';
import { weightBytesByBits } from '../storage.js';

/** A layer as the cost model uses it: per-batch counts and the layer viewed as GEMMs. */
export interface LayerGeometry {
  readonly layer: LayerInfo;
  readonly batch: number;
  /** MACs per batch. */
  readonly macs: number;
  /** Independent GEMMs (depthwise: one per channel). */
  readonly groups: number;
  /** Reduction length of each GEMM (kh*kw*cin; depthwise kh*kw; dense: input features). */
  readonly gemmK: number;
  /** Output columns of each GEMM (filters; depthwise 1). */
  readonly gemmN: number;
  /** Output rows of each GEMM: output pixels x batch. */
  readonly gemmP: number;
  /** Activation elements per batch. */
  readonly inElements: number;
  readonly outElements: number;
  readonly liveElements: number;
  /** Weight storage bytes at each bit-width 1..32 (index = bits): weightStorageBytes, precomputed. */
  readonly weightBytesAt: Float64Array;
}

export function layerGeometry(layer: LayerInfo, batch: number): LayerGeometry {
  const pixels = layer.kind === 'dense' ? 1 : layer.outSize[0] * layer.outSize[1];
  const kernel = layer.kernel[0] * layer.kernel[1];
  let groups = 1;
  let gemmK = kernel * layer.inChannels;
  let gemmN = layer.outChannels;
  if (layer.kind === 'depthwise') {
    groups = layer.outChannels;
    gemmK = kernel;
    gemmN = 1;
  } else if (layer.kind === 'dense') {
    gemmK = layer.inChannels;
  }
  return {
    layer,
    batch,
    macs: layer.macs * batch,
    groups,
    gemmK,
    gemmN,
    gemmP: pixels * batch,
    inElements: layer.inElements * batch,
    outElements: layer.outElements * batch,
    liveElements: layer.liveElements * batch,
    weightBytesAt: weightBytesByBits(layer),
  };
}

/** Scratch result a compute model writes into (reused: no allocation per evaluation). */
export interface ComputeResult {
  cycles: number;
  energyPJ: number;
  /** Bits the layer's weights and activations are moved and held at while it runs (a mode may be wider). */
  execWBits: number;
  execABits: number;
  /** How many times each kind of data crosses the off-chip interface (re-fetches when tiles do not fit). */
  weightTraffic: number;
  inputTraffic: number;
  outputTraffic: number;
  /** 0: decided by the roofline; 1: compute; 2: memory (a measured table may say). */
  boundOverride: 0 | 1 | 2;
}

export function newComputeResult(): ComputeResult {
  return {
    cycles: 0,
    energyPJ: 0,
    execWBits: 0,
    execABits: 0,
    weightTraffic: 1,
    inputTraffic: 1,
    outputTraffic: 1,
    boundOverride: 0,
  };
}

export interface ComputeModel {
  readonly name: ComputeModelName;
  /**
   * True when the numbers come from the user (expressions, measurements) rather than from a model that
   * is monotonic in bits by construction; the cost table then takes the monotone envelope.
   */
  readonly userSupplied: boolean;
  /** Writes the compute cost of one layer at (wBits, aBits) into `out`. May throw a UserError (lookup: missing entry). */
  evaluate(g: LayerGeometry, wBits: number, aBits: number, out: ComputeResult): void;
  /** A one-line summary for listings. */
  summary(): string;
  /** Bit-widths the model has data for (lookup tables); null when any width can be costed. */
  supportedBits(): number[] | null;
}

/** What a compute-model factory gets: the validated profile, where it came from, and a place for problems. */
export interface ComputeContext {
  readonly spec: ProfileSpec;
  readonly file: string;
  /** Directory that relative paths in the profile resolve against. */
  readonly baseDir: string;
  /** Problems found while compiling (JSON path first); the loader reports them all. */
  readonly problems: string[];
}

/** Resets the per-evaluation defaults. */
export function resetResult(out: ComputeResult, wBits: number, aBits: number): void {
  out.execWBits = wBits;
  out.execABits = aBits;
  out.weightTraffic = 1;
  out.inputTraffic = 1;
  out.outputTraffic = 1;
  out.boundOverride = 0;
}
