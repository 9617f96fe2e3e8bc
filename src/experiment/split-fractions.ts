/**
 * The held-out fractions of a dataset's splits (`valFraction`, `testFraction`), as flags (--val-fraction,
 * --test-fraction on search / run / train / eval) or experiment fields, checked before any data is read.
 * valFraction: share of the training pool held out for validation (mnist, fashion-mnist, cifar10, idx, folder);
 * testFraction: share of an image folder held out as the test split (the other datasets have fixed test sets).
 */
import { UserError } from '../errors.js';

export interface SplitFractions {
  valFraction?: number;
  testFraction?: number;
}

/** The default validation and test fractions of an image folder (src/data/folder.ts). */
const FOLDER_DEFAULT = 0.1;

/**
 * Throws a UserError naming the flag (or field) when a fraction is not a number in (0, 1), when
 * testFraction is given for a dataset other than `folder`, or when, for an image folder (or an unnamed
 * dataset given both), the two (a missing one at its folder default, 0.1) do not sum below 1.
 */
export function checkSplitFractions(
  f: SplitFractions,
  dataset: string | undefined,
  names: { val: string; test: string } = { val: '--val-fraction', test: '--test-fraction' },
  file?: string,
): void {
  checkFractionRanges(f, names, file);
  const where = file !== undefined ? { file } : {};
  if (f.testFraction !== undefined && dataset !== undefined && dataset !== 'folder')
    throw new UserError(`applies to image folders only (dataset '${dataset}' has a fixed test split)`, {
      ...where,
      field: names.test,
      expected: '--dataset folder --data-dir DIR, or no test fraction',
    });
  // the sum matters for image folders; with the dataset not known yet, only when both are given
  const both = f.valFraction !== undefined && f.testFraction !== undefined;
  if (dataset !== 'folder' && !(dataset === undefined && both)) return;
  if (f.valFraction === undefined && f.testFraction === undefined) return;
  const val = f.valFraction ?? FOLDER_DEFAULT;
  const test = f.testFraction ?? FOLDER_DEFAULT;
  if (!(val + test < 1)) {
    const field =
      f.valFraction !== undefined && f.testFraction !== undefined
        ? `${names.val} + ${names.test}`
        : f.valFraction !== undefined
          ? names.val
          : names.test;
    throw new UserError(
      `validation (${val}) and test (${test}) fractions must sum below 1 (the rest is the training split)`,
      { ...where, field, expected: 'fractions summing below 1, e.g. 0.1 and 0.1' },
    );
  }
}

/** Throws a UserError naming the flag (or field) of a fraction that is not a number in (0, 1). */
export function checkFractionRanges(
  f: SplitFractions,
  names: { val: string; test: string } = { val: '--val-fraction', test: '--test-fraction' },
  file?: string,
): void {
  for (const [v, field] of [
    [f.valFraction, names.val],
    [f.testFraction, names.test],
  ] as const) {
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0 && v < 1))
      throw new UserError(`must be a number in (0, 1), got ${String(v)}`, {
        ...(file !== undefined ? { file } : {}),
        field,
        expected: 'a fraction, e.g. 0.1',
      });
  }
}

/** The fractions as loadDataset / SearchSpec options (absent ones left out). */
export function fractionOptions(f: SplitFractions): SplitFractions {
  return {
    ...(f.valFraction !== undefined ? { valFraction: f.valFraction } : {}),
    ...(f.testFraction !== undefined ? { testFraction: f.testFraction } : {}),
  };
}
