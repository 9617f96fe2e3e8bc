/**
 * Checks of a profile beyond its schema, run by `bitalloc profile validate`: user-supplied formulas
 * (expression profiles) evaluated over real layers at every default bit-width, so that a formula that
 * divides by zero, overflows or goes negative for some layer is found when the profile is validated,
 * not in the middle of a search.
 */
import { isUserError } from '../errors.js';
import type { LayerInfo } from '../models/layer-info.js';
import { DEFAULT_BIT_CHOICES } from './cost-table.js';
import { layerGeometry, newComputeResult } from './compute/types.js';
import { parseProfile, type Profile } from './profiles.js';

export interface LayerSet {
  /** A model name, for messages. */
  name: string;
  layers: readonly LayerInfo[];
}

/**
 * Problems of an expression profile over the layers of `sets` at every pair of `bits` (default 1..8,
 * 16, 32): the first layer and bit pair where each expression is not finite or is negative, per model.
 * Empty for other compute models (their numbers are checked by the schema).
 */
export function expressionRangeProblems(
  profile: Profile,
  sets: readonly LayerSet[],
  bits: readonly number[] = DEFAULT_BIT_CHOICES,
): string[] {
  const compute = profile.spec.compute;
  if (compute.model !== 'expression') return [];
  const problems: string[] = [];
  const r = newComputeResult();
  // each expression on its own (the other replaced by 0), so that both are checked
  for (const field of ['cycles', 'energyPJ'] as const) {
    const alone = parseProfile(
      { ...profile.spec, compute: { ...compute, [field === 'cycles' ? 'energyPJ' : 'cycles']: '0' } },
      profile.file,
    );
    const failures: string[] = [];
    let first = '';
    for (const set of sets) {
      let failed = false;
      for (const layer of set.layers) {
        if (failed) break;
        const g = layerGeometry(layer, profile.spec.batchSize);
        for (const w of bits) {
          if (failed) break;
          for (const a of bits) {
            try {
              alone.compute.evaluate(g, w, a, r);
            } catch (e) {
              if (!isUserError(e)) throw e;
              failed = true;
              failures.push(set.name);
              if (!first)
                first = `${e.message.replace(/^.*?: (evaluates to)/, '$1').replace(/ \(expected .*$/s, '')} of model ${set.name}`;
              break;
            }
          }
        }
      }
    }
    if (failures.length) {
      const others = failures.length > 1 ? ` (also in ${failures.slice(1).join(', ')})` : '';
      problems.push(
        `$.compute.${field}: ${JSON.stringify(compute[field])} ${first}${others}; it must give a finite number >= 0 for every layer and bit-width`,
      );
    }
  }
  return problems;
}
