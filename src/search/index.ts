/**
 * The search loop for one cell: an agent on a BitAllocationEnv with QAT on shared weights and the simulator's
 * cost tables (runSearch), one episode of any agent (runEpisode / runEpisodes), and running an experiment's
 * pending cells on the main thread or worker threads (runPendingCells).
 */
export {
  runSearch,
  searchSpec,
  QatEvaluator,
  type SearchSpec,
  type SearchOptions,
  type SearchResult,
  type NamedBits,
} from './search.js';
export { runEpisode, runEpisodes, type EpisodeOptions, type RunEpisodesOptions } from './episode.js';
export { runCell, runPendingCells, specForCell, warmupCacheDir, type CellOutcome, type RunOptions } from './runner.js';
