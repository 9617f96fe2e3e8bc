/**
 * Bit-serial arithmetic. BISMO and Loom process both operands one bit per step, so a MAC takes
 * wBits x aBits steps; Stripes serialises activations only (aBits steps, weights bit-parallel up to
 * `parallelBits`). cycles = MACs x serialBits / (serialMacsPerCycle x efficiency); energy follows the
 * same bit product.
 */
import { fixedOperandFactor } from '../bit-scaling.js';
import type { BitSerialSpec } from '../profile-types.js';
import { resetResult, type ComputeModel, type ComputeResult, type LayerGeometry } from './types.js';

export function serialBits(
  operands: 'both' | 'activations',
  parallelBits: number,
  wBits: number,
  aBits: number,
): number {
  return operands === 'both' ? wBits * aBits : aBits * fixedOperandFactor(wBits, parallelBits);
}

export function bitSerialModel(spec: BitSerialSpec): ComputeModel {
  const operands = spec.operands ?? 'both';
  const parallelBits = spec.parallelBits ?? 16;
  const rate = spec.serialMacsPerCycle * (spec.efficiency ?? 1);
  const pj = spec.pJPerSerialMac;
  return {
    name: 'bit-serial',
    userSupplied: false,
    evaluate(g: LayerGeometry, wBits: number, aBits: number, out: ComputeResult): void {
      resetResult(out, wBits, aBits);
      const work = g.macs * serialBits(operands, parallelBits, wBits, aBits);
      out.cycles = work / rate;
      out.energyPJ = work * pj;
    },
    summary: () =>
      `bit-serial (${operands === 'both' ? 'weights x activations' : 'activations'}), ${spec.serialMacsPerCycle} MACs/cycle at 1 serial bit`,
    supportedBits: () => null,
  };
}
