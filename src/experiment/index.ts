/**
 * The experiment format: what `bitalloc run` / `compare` / `search` take. Reading a file (with `--set`
 * overrides), validating it (every problem with its JSON path), filling the defaults (EXPERIMENT_DEFAULTS, which
 * `bitalloc search` shares) and expanding it into cells, one per (agent, profile, budget, seed). The names it
 * uses (step modes, constraint modes, reward kinds, cost metrics, agents) are the env's and the agent registry's.
 */
export * from './experiment.js';
