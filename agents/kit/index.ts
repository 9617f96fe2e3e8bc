/**
 * The agent kit: what several agents share.
 * - sampling.ts: the masked categorical distribution (ppo, reinforce, amed);
 * - params.ts: named trainable parameters and their checkpoint form (ppo, ddpg, reinforce);
 * - state.ts: the tag of a checkpoint state (`name`; older files `kind`);
 * - rollout.ts: the rollout buffer, whole episodes packed into padded flat arrays (ppo);
 * - adam.ts: Adam on tf.Variables with its state as plain arrays;
 * - dense.ts: the plain-array dense forward for acting on cached weights;
 * - option-checks.ts: option checks whose errors name `<field>.<option>`;
 * - datafree.ts: data-free calibration inputs and per-sample losses (sensitivity, ssps).
 */
export * from './sampling.js';
export * from './adam.js';
export * from './dense.js';
export * from './option-checks.js';
export * from './datafree.js';
export * from './params.js';
export * from './rollout.js';
export * from './state.js';
