/**
 * The hardware simulator: JSON device profiles (hardware-profiles/*.json, schema.json) and the cost
 * of a bit allocation on them (latency, energy, model size, peak memory, fit).
 *
 *   const profile = loadProfile('bitfusion-45nm');            // or a path to a profile file
 *   const table = buildCostTable(profile, layers, [2, 4, 8]);  // every (layer, wBits, aBits), once
 *   const cost = table.costAllocation(bits);                   // a lookup and a sum
 */
import type { BitConfig, LayerInfo } from '../models/layer-info.js';
import type { AllocationCost } from './api.js';
import { buildCostTable } from './cost-table.js';
import type { Profile } from './profiles.js';

export type { AllocationCost, CostTable, FitViolation, LayerCost } from './api.js';
export { buildCostTable, DEFAULT_BIT_CHOICES, monotoneEnvelope, profileBitChoices } from './cost-table.js';
export {
  listBuiltinProfiles,
  loadProfile,
  loadProfileFile,
  looksLikePath,
  parseProfile,
  profileProblems,
  profileSchema,
  profilesDir,
  readJsonFile,
  type BuiltinProfileInfo,
  type Profile,
} from './profiles.js';
export type { ComputeModelName, ProfileSpec, ProfileSource } from './profile-types.js';
export { COMPUTE_MODEL_NAMES } from './profile-types.js';
export { EXPRESSION_VARIABLES } from './compute/expression.js';
export { activationBytes, weightStorageBytes } from './storage.js';
export { fusionFactor } from './bit-scaling.js';

/** Costs one allocation directly (builds a table over the bits it uses). For one-off use; searches should keep a table. */
export function simulate(profile: Profile, layers: readonly LayerInfo[], bits: BitConfig): AllocationCost {
  const used = [...new Set(bits.flatMap((b) => [b.wBits, b.aBits]))];
  return buildCostTable(profile, layers, used).costAllocation(bits);
}
