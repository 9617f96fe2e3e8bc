/**
 * Fixed-precision modes (CPU SIMD, GPU tensor cores, microcontrollers). A layer at (w, a) runs in the
 * narrowest supported mode that is at least as wide in both operands, and its data is moved and held
 * at that mode's widths (the device unpacks narrower weights when it loads the model): narrower bits
 * save storage (model size, flash), not time. Model size still follows the chosen wBits.
 *
 * Checked at load, so that "the narrowest wider mode" exists and costs are monotonic in bits:
 * - the modes are closed under the element-wise minimum (any two modes have their common narrower
 *   mode in the list), which makes the narrowest eligible mode unique;
 * - a mode narrower than another is not slower (macsPerCycle x efficiency) and not costlier per MAC.
 */
import { UserError } from '../../errors.js';
import type { ModeSpec, ModesSpec } from '../profile-types.js';
import {
  resetResult,
  type ComputeContext,
  type ComputeModel,
  type ComputeResult,
  type LayerGeometry,
} from './types.js';

const MAX_BITS = 32;

function label(m: { wBits: number; aBits: number }): string {
  return `W${m.wBits}A${m.aBits}`;
}

/** Problems with the mode table (empty when it is usable). */
export function checkModes(spec: ModesSpec, path = '$.compute.modes'): string[] {
  const problems: string[] = [];
  const modes = spec.modes;
  const eff = (m: ModeSpec) => m.macsPerCycle * (m.efficiency ?? 1);
  for (let i = 0; i < modes.length; i++) {
    const mi = modes[i];
    for (let j = 0; j < modes.length; j++) {
      if (i === j) continue;
      const mj = modes[j];
      if (j < i && mi.wBits === mj.wBits && mi.aBits === mj.aBits) {
        problems.push(`${path}[${i}]: ${label(mi)} is listed twice (also ${path}[${j}])`);
        continue;
      }
      if (j < i) {
        const w = Math.min(mi.wBits, mj.wBits);
        const a = Math.min(mi.aBits, mj.aBits);
        if (!modes.some((m) => m.wBits === w && m.aBits === a)) {
          problems.push(
            `${path}: ${label(mj)} (${path}[${j}]) and ${label(mi)} (${path}[${i}]) have no common narrower mode; add W${w}A${a} so that every width has one narrowest mode to run in`,
          );
        }
      }
      const narrower = mi.wBits <= mj.wBits && mi.aBits <= mj.aBits && (mi.wBits !== mj.wBits || mi.aBits !== mj.aBits);
      if (narrower) {
        if (eff(mi) < eff(mj)) {
          problems.push(
            `${path}[${i}]: ${label(mi)} is narrower than ${label(mj)} (${path}[${j}]) but slower (macsPerCycle x efficiency ${eff(mi)} < ${eff(mj)})`,
          );
        }
        if (mi.pJPerMac > mj.pJPerMac) {
          problems.push(
            `${path}[${i}]: ${label(mi)} is narrower than ${label(mj)} (${path}[${j}]) but costs more energy (pJPerMac ${mi.pJPerMac} > ${mj.pJPerMac})`,
          );
        }
      }
    }
  }
  return problems;
}

export function modesModel(spec: ModesSpec, ctx: ComputeContext): ComputeModel {
  for (const p of checkModes(spec)) ctx.problems.push(p);
  const global = spec.efficiency ?? 1;
  const modes = spec.modes;
  // narrowest eligible mode for every (w, a) in 0..32: the eligible mode with the least wBits + aBits
  const choice = new Int16Array((MAX_BITS + 1) * (MAX_BITS + 1)).fill(-1);
  for (let w = 0; w <= MAX_BITS; w++) {
    for (let a = 0; a <= MAX_BITS; a++) {
      let best = -1;
      for (let m = 0; m < modes.length; m++) {
        const mode = modes[m];
        if (mode.wBits < w || mode.aBits < a) continue;
        const b = best < 0 ? null : modes[best];
        if (!b || mode.wBits + mode.aBits < b.wBits + b.aBits) best = m;
      }
      choice[w * (MAX_BITS + 1) + a] = best;
    }
  }
  const rate = modes.map((m) => m.macsPerCycle * (m.efficiency ?? 1) * global);
  return {
    name: 'modes',
    userSupplied: false,
    evaluate(g: LayerGeometry, wBits: number, aBits: number, out: ComputeResult): void {
      const m =
        wBits >= 0 && wBits <= MAX_BITS && aBits >= 0 && aBits <= MAX_BITS
          ? (choice[wBits * (MAX_BITS + 1) + aBits] ?? -1)
          : -1;
      if (m < 0) {
        throw new UserError(`no supported mode is wide enough for W${wBits}A${aBits}`, {
          file: ctx.file,
          field: '$.compute.modes',
          expected: `bits within one of ${modes.map(label).join(', ')}`,
        });
      }
      const mode = modes[m];
      resetResult(out, mode.wBits, mode.aBits);
      out.cycles = g.macs / rate[m];
      out.energyPJ = g.macs * mode.pJPerMac;
    },
    summary: () => `modes ${modes.map((m) => `${m.name ? m.name + ' ' : ''}${label(m)}`).join(', ')}`,
    supportedBits: () => null,
  };
}
