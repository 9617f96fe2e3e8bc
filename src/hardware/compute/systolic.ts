/**
 * An analytic systolic array in the manner of SCALE-Sim (Samajdar et al.): a layer is a GEMM
 * (depthwise: one GEMM per channel) of reduction length K, N output columns and P output rows
 * (output pixels x batch). The dataflow decides which two dimensions are laid on the rows x cols
 * array and which one streams through it:
 *
 *   ws (weight-stationary): rows <- K, cols <- N, streams P
 *   os (output-stationary): rows <- P, cols <- N, streams K
 *   is (input-stationary):  rows <- K, cols <- P, streams N
 *
 * Cycles per fold (one tile of the two spatial dimensions), as SCALE-Sim v2 counts them
 * (scalesim/compute/systolic_compute_{ws,os,is}.py: the rows of a fold's demand matrix):
 *
 *   ws, is: 2*rows + cols + T - 2   (rows cycles to load the stationary tile, then T streamed steps,
 *                                     cols - 1 to drain the last partial sums, rows - 1 of skew)
 *   os:       rows + cols + T - 2   (no stationary tile to load: operands stream in skewed from two
 *                                     edges and the finished outputs drain)
 *
 * SCALE-Sim reports the index of the last cycle of a layer, one less than this count. The bits scale
 * T (the time per streamed MAC) by the profile's `bitScaling`; load, fill and drain do not scale.
 *
 * Off-chip traffic: the stationary operand is read once; the streamed operand is read once when it
 * fits in its SRAM (the on-chip buffers of memory.onChip that hold it), else once per fold of the
 * other spatial dimension; partial outputs that do not fit in the output SRAM are written and read
 * back once per extra reduction fold. Whether a tensor fits depends on its bytes at the layer's bits,
 * so lower bits never add traffic.
 */
import { timeFactor } from '../bit-scaling.js';
import type { DataKind, SystolicSpec } from '../profile-types.js';
import { activationBytes } from '../storage.js';
import {
  resetResult,
  type ComputeContext,
  type ComputeModel,
  type ComputeResult,
  type LayerGeometry,
} from './types.js';

export interface SystolicShape {
  rowFolds: number;
  colFolds: number;
  /** Streamed length per fold at native bits. */
  stream: number;
}

export function systolicShape(spec: SystolicSpec, g: LayerGeometry): SystolicShape {
  const R = spec.rows;
  const C = spec.cols;
  switch (spec.dataflow) {
    case 'ws':
      return { rowFolds: Math.ceil(g.gemmK / R), colFolds: Math.ceil(g.gemmN / C), stream: g.gemmP };
    case 'os':
      return { rowFolds: Math.ceil(g.gemmP / R), colFolds: Math.ceil(g.gemmN / C), stream: g.gemmK };
    case 'is':
      return { rowFolds: Math.ceil(g.gemmK / R), colFolds: Math.ceil(g.gemmP / C), stream: g.gemmN };
  }
}

/** Cycles of one fold that streams `steps` steps: the stationary load (ws, is), skewed fill and drain, the steps. */
export function foldCycles(spec: Pick<SystolicSpec, 'rows' | 'cols' | 'dataflow'>, steps: number): number {
  const load = spec.dataflow === 'os' ? 0 : spec.rows;
  return load + spec.rows + spec.cols + steps - 2;
}

/** Compute cycles of a layer on the array at a time factor `tf` per streamed MAC. */
export function systolicCycles(spec: SystolicSpec, g: LayerGeometry, tf: number): number {
  const s = systolicShape(spec, g);
  return g.groups * s.rowFolds * s.colFolds * foldCycles(spec, Math.ceil(s.stream * tf));
}

export function systolicModel(spec: SystolicSpec, ctx: ComputeContext): ComputeModel {
  const kind = spec.bitScaling.kind;
  const native = spec.bitScaling.nativeBits ?? 8;
  const sram = (k: DataKind): number =>
    (ctx.spec.memory?.onChip ?? []).filter((b) => b.holds.includes(k)).reduce((s, b) => s + b.sizeBytes, 0);
  const names: Record<DataKind, string> = { weights: 'filter', inputs: 'ifmap', outputs: 'ofmap' };
  for (const k of ['weights', 'inputs', 'outputs'] as const) {
    if (ctx.spec.memory && sram(k) === 0) {
      ctx.problems.push(
        `$.memory.onChip: a systolic profile needs an on-chip buffer that holds ${k} (SCALE-Sim's ${names[k]} SRAM)`,
      );
    }
  }
  const filterBytes = sram('weights');
  const ifmapBytes = sram('inputs');
  const ofmapBytes = sram('outputs');
  return {
    name: 'systolic',
    userSupplied: false,
    evaluate(g: LayerGeometry, wBits: number, aBits: number, out: ComputeResult): void {
      resetResult(out, wBits, aBits);
      const tf = timeFactor(kind, native, wBits, aBits);
      const s = systolicShape(spec, g);
      out.cycles = g.groups * s.rowFolds * s.colFolds * foldCycles(spec, Math.ceil(s.stream * tf));
      out.energyPJ = g.macs * spec.pJPerMac * tf;
      const fitsW = (g.weightBytesAt[wBits] ?? Infinity) <= filterBytes;
      const fitsI = activationBytes(g.inElements, aBits) <= ifmapBytes;
      const fitsO = activationBytes(g.outElements, aBits) <= ofmapBytes;
      const partialSums = fitsO ? 1 : 2 * s.rowFolds - 1;
      switch (spec.dataflow) {
        case 'ws':
          out.inputTraffic = fitsI ? 1 : s.colFolds;
          out.outputTraffic = partialSums;
          break;
        case 'os':
          out.inputTraffic = fitsI ? 1 : s.colFolds;
          out.weightTraffic = fitsW ? 1 : s.rowFolds;
          break;
        case 'is':
          out.weightTraffic = fitsW ? 1 : s.colFolds;
          out.outputTraffic = partialSums;
          break;
      }
    },
    summary: () => `systolic ${spec.rows}x${spec.cols} ${spec.dataflow}, ${kind} bit scaling (native ${native} bits)`,
    supportedBits: () => null,
  };
}
