/** Every CLI command, in the order `bitalloc --help` lists them. */
import type { CliCommand } from './types.js';
import { infoCommand } from './info.js';
import { modelsCommand } from './models.js';
import { agentsCommand } from './agents.js';
import { inspectCommand } from './inspect.js';
import { exportCommand } from './export.js';
import { profileCommand } from './profile.js';
import { experimentCommand } from './experiment.js';
import { reportCommand } from './report.js';
import { trainCommand } from './train.js';
import { evalCommand } from './eval.js';
import { compareCommand, runCommand, searchCommand } from './run.js';
import { workerCommand } from './worker.js';
import { queueCommand } from './queue.js';

export const commands: CliCommand[] = [
  infoCommand,
  modelsCommand,
  agentsCommand,
  inspectCommand,
  exportCommand,
  profileCommand,
  experimentCommand,
  reportCommand,
  trainCommand,
  evalCommand,
  searchCommand,
  runCommand,
  compareCommand,
  workerCommand,
  queueCommand,
];
