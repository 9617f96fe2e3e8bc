/**
 * The `bitalloc` command line. Global flags: --backend, --log-level, --log-file, --seed, --json, --verbose.
 * Errors a user can cause print as `error: ...` without a stack trace (stack with --verbose), exit code 1.
 */
import yargs from 'yargs';
import type { Argv } from 'yargs';
import { BACKEND_CHOICES, initBackend } from '../backend/index.js';
import { isUserError } from '../errors.js';
import { LOG_LEVELS, addLogFile, log, setLogLevel } from '../log.js';
import { checkAppendableFile } from '../util/output-dir.js';
import { VERSION } from '../version.js';
import { commands } from './commands.js';
import type { CommandArgs } from './types.js';

function globalOptions<T>(y: Argv<T>) {
  return y
    .option('backend', {
      choices: BACKEND_CHOICES,
      default: 'auto' as const,
      describe: 'TensorFlow.js backend: auto = tfjs-node when installed, else wasm',
      global: true,
    })
    .option('log-level', { choices: LOG_LEVELS, default: 'info', describe: 'console log level (stderr)', global: true })
    .option('log-file', { type: 'string', describe: 'also write logs to this file as JSON lines', global: true })
    .option('seed', { type: 'number', default: 1, describe: 'random seed', global: true })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'machine-readable output on stdout (logs stay on stderr)',
      global: true,
    })
    .option('verbose', { type: 'boolean', default: false, describe: 'show stack traces on errors', global: true });
}

export async function main(argv: string[]): Promise<number> {
  let verbose = argv.includes('--verbose');
  let failure: string | null = null;
  let parser = globalOptions(yargs(argv))
    .scriptName('bitalloc')
    .usage('$0 <command> [options]\n\nHardware-aware mixed-precision bit allocation for neural networks.')
    .version(VERSION)
    .strict()
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .middleware(async (a) => {
      const args = a as unknown as CommandArgs;
      verbose = args.verbose;
      setLogLevel(args.logLevel);
      if (args.logFile !== undefined) {
        checkAppendableFile(String(args.logFile), '--log-file');
        addLogFile(String(args.logFile));
      }
      if (!Number.isInteger(args.seed) || args.seed < 0) {
        throw new CliFlagError(`--seed must be a non-negative integer, got '${String(args.seed)}'`);
      }
      const b = await initBackend(args.backend);
      log.debug(`bitalloc ${VERSION} on backend ${b.name}`);
    })
    .fail((msg, err) => {
      if (err) throw err;
      // a parse or validation failure (unknown flag, bad choice, missing argument): stop before any handler runs
      failure = msg;
      throw new CliFlagError(msg);
    })
    .exitProcess(false);
  for (const c of commands) {
    parser = parser.command({
      command: c.command,
      describe: c.describe,
      builder: (y: Argv) => (c.builder ? c.builder(y) : y),
      handler: async (a) => c.handler(a as unknown as CommandArgs),
    });
  }
  try {
    await parser.parseAsync();
    if (failure) {
      process.stderr.write(`error: ${failure}\nRun 'bitalloc --help' for usage.\n`);
      return 1;
    }
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    if (failure !== null && e instanceof CliFlagError) {
      process.stderr.write(`error: ${failure}\nRun 'bitalloc --help' for usage.\n`);
      return 1;
    }
    if (isUserError(e) || e instanceof CliFlagError) {
      process.stderr.write(`error: ${e.message}\n`);
      if (verbose && e.stack) process.stderr.write(e.stack + '\n');
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`error: ${err.message}\n`);
    process.stderr.write(verbose && err.stack ? err.stack + '\n' : '(run with --verbose for the stack trace)\n');
    return 1;
  } finally {
    await new Promise<void>((resolve) => {
      // let file transports flush before the process exits
      if (log.transports.length <= 1) return resolve();
      log.on('finish', () => resolve());
      log.end();
      setTimeout(resolve, 500).unref();
    });
  }
}

class CliFlagError extends Error {}
