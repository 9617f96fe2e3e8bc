import type { Argv } from 'yargs';
import type { BackendChoice } from '../backend/index.js';
import type { LogLevel } from '../log.js';

/** Flags every command accepts. */
export interface GlobalArgs {
  backend: BackendChoice;
  logLevel: LogLevel;
  logFile?: string;
  seed: number;
  json: boolean;
  verbose: boolean;
}

/** Parsed arguments as handed to a command: the global flags plus the command's own. */
export type CommandArgs = GlobalArgs & { [key: string]: unknown; _: (string | number)[] };

/** One CLI command. Each lives in its own file under src/cli/ and is listed in commands.ts. */
export interface CliCommand {
  command: string | string[];
  describe: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  builder?: (y: Argv<any>) => Argv<any>;
  handler: (args: CommandArgs) => Promise<void>;
}
