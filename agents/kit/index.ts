/**
 * The agent kit: what several agents share. The masked categorical distribution (sampling.ts), Adam on named
 * tf.Variables with its state as plain arrays (adam.ts), the plain-array dense forward for acting on cached
 * weights (dense.ts), option checks that name `<field>.<option>` (option-checks.ts), and data-free calibration
 * inputs with per-sample losses (datafree.ts).
 */
export * from './sampling.js';
export * from './adam.js';
export * from './dense.js';
export * from './option-checks.js';
export * from './datafree.js';
