/**
 * --val-fraction and --test-fraction: one definition of the two flags (train, eval, search, run) and
 * one reader of their values; each command checks them as far as it knows the dataset.
 */
import type { Argv } from 'yargs';
import { fractionOptions, type SplitFractions } from '../experiment/split-fractions.js';
import type { CommandArgs } from './types.js';

/** Adds the two flags; `fields` says they set the experiment's fields (run / compare). */
export function splitFractionOptions<T>(y: Argv<T>, fields = false) {
  return y
    .option('val-fraction', {
      type: 'number',
      describe: fields
        ? 'share of the training pool held out for validation, in (0, 1) (sets the experiment field valFraction; default 1/9 for mnist, else 0.1)'
        : 'share of the training pool held out for validation, in (0, 1) (default 1/9 for mnist, else 0.1)',
    })
    .option('test-fraction', {
      type: 'number',
      describe: fields
        ? 'folder dataset: share of the images held out for test, in (0, 1), below 1 with --val-fraction (sets testFraction; default 0.1)'
        : 'folder dataset: share of the images held out for test, in (0, 1), below 1 with --val-fraction (default 0.1)',
    });
}

/** The flags' values as given (absent ones left out), not yet checked. */
export function fractionFlagValues(args: CommandArgs): SplitFractions {
  return fractionOptions({
    ...(args['val-fraction'] !== undefined ? { valFraction: args['val-fraction'] as number } : {}),
    ...(args['test-fraction'] !== undefined ? { testFraction: args['test-fraction'] as number } : {}),
  });
}
