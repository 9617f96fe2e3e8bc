/** Small shared utilities: the seeded Rng every component draws from, and the terminal Progress line. */
export { Rng } from './rng.js';
export { Progress, formatDuration, type ProgressOptions } from './progress.js';
