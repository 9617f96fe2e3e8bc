/**
 * Bit Fusion (Sharma et al., ISCA 2018): 2-bit BitBricks fuse into wider multipliers, so narrower
 * operands give more MACs per cycle: speed-up over 8x8 = floor(8/max(a,2)) x floor(8/max(w,2)),
 * 3 bits run as 4, 5-7 as 8, 1 as 2; above 8 bits each wide operand multiplies the cycles by
 * ceil(bits/8). The array draws `pJPerCycle` while busy, so energy per MAC falls with the speed-up.
 */
import { fusionFactor } from '../bit-scaling.js';
import type { BitFusionSpec } from '../profile-types.js';
import { resetResult, type ComputeModel, type ComputeResult, type LayerGeometry } from './types.js';

export function bitFusionModel(spec: BitFusionSpec): ComputeModel {
  const rate = spec.macsPerCycleAt8x8 * (spec.efficiency ?? 1);
  return {
    name: 'bit-fusion',
    userSupplied: false,
    evaluate(g: LayerGeometry, wBits: number, aBits: number, out: ComputeResult): void {
      resetResult(out, wBits, aBits);
      out.cycles = (g.macs * fusionFactor(wBits, aBits)) / rate;
      out.energyPJ = out.cycles * spec.pJPerCycle;
    },
    summary: () => `bit-fusion, ${spec.macsPerCycleAt8x8} MACs/cycle at 8x8 (x16 at 2x2)`,
    supportedBits: () => null,
  };
}
