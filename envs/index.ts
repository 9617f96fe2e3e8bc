/** The bit-allocation MDP: the env, its spaces, observation layout, constraints, rewards, and a synthetic problem. */
export * from './types.js';
export * from './spaces.js';
export * from './observation.js';
export * from './constraints.js';
export * from './rewards.js';
export * from './bit-allocation-env.js';
export * from './synthetic.js';
