/**
 * The run store: a run directory (run.json, experiment.json, log), its cells (cell.json, episodes.jsonl,
 * checkpoints, best.json, final.json, uniform.json), locking and resume, and the one rule for the best
 * episode (isBetterEpisode). report/ reads runs through this folder.
 */
export * from './run-store.js';
