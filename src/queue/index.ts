/** Cells as BullMQ jobs on Redis: the coordinator of a queued run, workers, and the status of a queue. */
export {
  DEFAULT_PREFIX,
  ENV_CA,
  ENV_PASSWORD,
  ENV_USERNAME,
  checkQueueReachable,
  parseQueueTarget,
  type QueueTarget,
} from './connection.js';
export { runCellsOnQueue, runKeyOf, type QueueRunOptions, type RunMetaRecord } from './coordinator.js';
export { startQueueWorker, type QueueWorkerHandle, type QueueWorkerOptions } from './worker.js';
export { queueStatus, type CellQueueStatus, type RunQueueStatus } from './status.js';

import { checkQueueReachable, parseQueueTarget, type QueueTarget } from './connection.js';

/** Parses `--queue` / `--prefix` and checks within seconds that Redis answers (UserError otherwise). */
export async function connectQueue(url: unknown, prefix: unknown, timeoutMs?: number): Promise<QueueTarget> {
  const target = parseQueueTarget(url, prefix, timeoutMs !== undefined ? { connectTimeoutMs: timeoutMs } : {});
  await checkQueueReachable(target);
  return target;
}
