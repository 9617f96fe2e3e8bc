/**
 * One name per thing: the step mode that takes two steps per layer is `two-step` ("haq" names the reward only;
 * the budget walk is the constraint mode `lower`). Experiment files and the `--step-mode` flag still accept the
 * older spelling `haq`, as `two-step`, with a one-line warning naming where it was written.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { DEPRECATED_STEP_MODES, STEP_MODES } from '../envs/bit-allocation-env.js';
import { CONSTRAINT_MODES } from '../envs/constraints.js';
import { REWARD_KINDS } from '../envs/rewards.js';
import { validateExperiment } from '../src/experiment/experiment.js';

const bin = fileURLToPath(new URL('../../bin/bitalloc.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bitalloc-deprecated-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const valid = {
  name: 'old-names',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm'],
  budgets: ['latency<=0.5x'],
  agents: ['random'],
};

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: dir }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('step modes, rewards and constraint modes share no name', () => {
  const names = [...STEP_MODES, ...REWARD_KINDS, ...CONSTRAINT_MODES];
  assert.equal(new Set(names).size, names.length, names.join(', '));
  assert.deepEqual([...STEP_MODES], ['joint', 'tied', 'two-step']);
  assert.deepEqual(DEPRECATED_STEP_MODES, { haq: 'two-step' });
});

test('an experiment with stepMode "haq" is read as two-step, with one warning naming the field', () => {
  const warnings: string[] = [];
  const exp = validateExperiment({ ...valid, stepMode: 'haq' }, { warn: (m) => warnings.push(m) });
  assert.equal(exp.stepMode, 'two-step');
  assert.deepEqual(warnings, [
    "$.stepMode: 'haq' is a deprecated spelling of 'two-step' (two steps per layer: weights, then activations)",
  ]);
  const quiet: string[] = [];
  assert.equal(
    validateExperiment({ ...valid, stepMode: 'two-step' }, { warn: (m) => quiet.push(m) }).stepMode,
    'two-step',
  );
  assert.deepEqual(quiet, []);
  // the validated experiment (what a run directory stores) uses today's name
  assert.equal(JSON.parse(JSON.stringify(exp)).stepMode, 'two-step');
});

test('CLI: experiment validate and --set accept "haq" with a one-line warning naming the file', async () => {
  const p = join(dir, 'old.json');
  writeFileSync(p, JSON.stringify({ ...valid, stepMode: 'haq' }));
  const r = await cli(['experiment', 'validate', p]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => /deprecated/.test(l));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', /^warn: .*old\.json: \$\.stepMode: 'haq' is a deprecated spelling of 'two-step'/);
  const set = await cli(['experiment', 'validate', join(dir, 'old.json'), '--set', 'stepMode=tied']);
  assert.equal(set.code, 0, set.stderr);
  assert.doesNotMatch(set.stderr, /deprecated/);
});

test('CLI: search --step-mode haq is accepted with a warning naming the flag; a wrong mode names the flag', async () => {
  // a bad budget stops the search at validation, before any work: the step mode itself must not be a problem
  const before = readdirSync(dir);
  const old = await cli(['search', '--step-mode', 'haq', '--budget', 'latency<=3KB']);
  assert.equal(old.code, 1);
  assert.match(old.stderr, /warn: --step-mode: 'haq' is a deprecated spelling of 'two-step'/);
  assert.match(old.stderr, /--budget/);
  assert.doesNotMatch(old.stderr, /error:.*--step-mode|- --step-mode/);
  const bad = await cli(['search', '--step-mode', 'pairs']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--step-mode: must be one of "joint", "tied", "two-step", got string "pairs"/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(readdirSync(dir), before, 'nothing written');
});
