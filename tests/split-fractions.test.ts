/** --val-fraction / --test-fraction and the experiment fields valFraction / testFraction: checked, and passed to the search. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { isUserError } from '../src/errors.js';
import { cells, validateExperiment } from '../src/experiment/experiment.js';
import { checkSplitFractions } from '../src/experiment/split-fractions.js';
import { specForCell } from '../src/search/runner.js';

const BIN = join(process.cwd(), 'bin', 'bitalloc.js');

function fieldOf(fn: () => void): string | undefined {
  try {
    fn();
  } catch (e) {
    assert.ok(isUserError(e), String(e));
    return e.details.field;
  }
  return undefined;
}

test('checkSplitFractions: each in (0, 1), a test fraction only for image folders, the two below 1', () => {
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 0.2 }, 'mnist')),
    undefined,
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 0.3, testFraction: 0.2 }, 'folder')),
    undefined,
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 0.95 }, 'mnist')),
    undefined,
    'no test split is carved from mnist',
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 0 }, 'mnist')),
    '--val-fraction',
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 1 }, undefined)),
    '--val-fraction',
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ testFraction: Number.NaN }, 'folder')),
    '--test-fraction',
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ testFraction: 0.2 }, 'cifar10')),
    '--test-fraction',
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 0.6, testFraction: 0.4 }, 'folder')),
    '--val-fraction + --test-fraction',
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 0.95 }, 'folder')),
    '--val-fraction',
    "with the folder's default test fraction (0.1) the sum reaches 1",
  );
  assert.equal(
    fieldOf(() => checkSplitFractions({ valFraction: 0.5, testFraction: 0.5 }, undefined)),
    '--val-fraction + --test-fraction',
  );
});

test('valFraction / testFraction are experiment fields that reach the search', () => {
  const base = {
    name: 'x',
    model: 'lenet5',
    profiles: ['bitfusion-45nm'],
    budgets: ['latency<=0.5x'],
    agents: ['random'],
  };
  const exp = validateExperiment({ ...base, dataset: 'mnist', valFraction: 0.2 });
  assert.equal(exp.valFraction, 0.2);
  assert.equal(exp.testFraction, undefined);
  assert.equal(specForCell(exp, cells(exp)[0]).valFraction, 0.2);
  assert.throws(
    () => validateExperiment({ ...base, dataset: 'mnist', testFraction: 0.2 }),
    (e: unknown) => isUserError(e) && /\$\.testFraction/.test(e.message),
  );
  assert.throws(
    () => validateExperiment({ ...base, dataset: 'mnist', valFraction: 1.5 }),
    (e: unknown) => isUserError(e) && /\$\.valFraction/.test(e.message),
  );
});

test('the CLI names the flag of a bad fraction before any work, and --help documents both flags', () => {
  for (const [args, flag] of [
    [['search', '--val-fraction', '1.5'], '--val-fraction'],
    [['search', '--test-fraction', '0.2'], '--test-fraction'],
    [['train', '--model', 'lenet5', '--val-fraction', '0'], '--val-fraction'],
    [['run', join('experiments', 'quickstart.json'), '--val-fraction', '2'], '--val-fraction'],
  ] as const) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`error: ${flag}: `), `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  for (const cmd of ['search', 'run', 'train', 'eval']) {
    const r = spawnSync(process.execPath, [BIN, cmd, '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /--val-fraction/, `${cmd} --help`);
    assert.match(r.stdout, /--test-fraction/, `${cmd} --help`);
  }
});
