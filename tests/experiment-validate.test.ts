/**
 * Experiment validation as a user meets it: each malformed file gives a UserError naming the file, the JSON
 * path and what is valid; `bitalloc experiment validate FILE` prints it without a stack trace, exits 1 and
 * writes nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { AGENTS } from '../agents/index.js';
import { isUserError } from '../src/errors.js';
import { loadExperiment } from '../src/experiment/experiment.js';

const bin = fileURLToPath(new URL('../../bin/bitalloc.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bitalloc-exp-validate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const valid = {
  name: 'ok',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm'],
  budgets: [['latency<=0.5x']],
  agents: ['random'],
  episodes: 10,
};

function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return p;
}

/** loadExperiment must throw a UserError whose message matches every pattern. */
function rejects(content: unknown, ...patterns: RegExp[]): string {
  const p = file('case.json', content);
  try {
    loadExperiment(p);
  } catch (e) {
    assert.ok(isUserError(e), `expected a UserError, got ${String(e)}`);
    assert.match(e.message, /case\.json/, 'names the file');
    for (const pat of patterns) assert.match(e.message, pat);
    return e.message;
  }
  assert.fail(`accepted: ${JSON.stringify(content)}`);
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: dir }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('unknown agent: the JSON path and the valid agent names', () => {
  const names = Object.keys(AGENTS);
  rejects(
    { ...valid, agents: ['random', 'alphazero'] },
    /\$\.agents\[1\]: unknown agent 'alphazero'/,
    new RegExp(names.join(', ')),
  );
  rejects({ ...valid, agents: [{ name: 'nope', options: {} }] }, /\$\.agents\[0\]\.name: unknown agent 'nope'/);
});

test('unknown agent option: the JSON path and the valid options', () => {
  const defaults = Object.keys(AGENTS['random']?.defaults ?? {});
  const msg = rejects(
    { ...valid, agents: [{ name: 'random', options: { learningRateTypo: 1 } }] },
    /\$\.agents\[0\]\.options\.learningRateTypo: unknown option/,
  );
  for (const d of defaults) assert.ok(msg.includes(d), `lists ${d}`);
});

test('unknown profile, and a profile path that does not exist', () => {
  rejects(
    { ...valid, profiles: ['bitfusion-9000'] },
    /\$\.profiles\[0\]: unknown profile 'bitfusion-9000'/,
    /bitfusion-45nm/,
    /path to a profile JSON/,
  );
  rejects(
    { ...valid, profiles: ['./profiles/mine.json'] },
    /\$\.profiles\[0\]: profile file '\.\/profiles\/mine\.json' not found/,
  );
});

test('a profile file with a mistake is reported with its own JSON path', () => {
  const bad = file('bad-profile.json', { id: 'mine', description: 'x' });
  rejects({ ...valid, profiles: [bad] }, /\$\.profiles\[0\]: invalid profile file/, /bad-profile\.json/);
});

test('bad budget strings: the grammar, the offending entry, and what is wrong', () => {
  rejects(
    { ...valid, budgets: ['latency<0.5x'] },
    /\$\.budgets\[0\]: bad constraint 'latency<0\.5x': does not match the grammar/,
    /<metric><=<number><unit> with metric latency\|energy\|size\|peak-memory/,
  );
  rejects(
    { ...valid, budgets: [['size<=200KB', 'speed<=2x']] },
    /\$\.budgets\[0\]\[1\]: bad constraint 'speed<=2x': unknown metric 'speed'/,
  );
  rejects({ ...valid, budgets: [['latency<=200KB']] }, /unit 'KB' does not fit latency \(use x, %, or s, ms, us/);
  rejects({ ...valid, budgets: [['energy<=0uJ']] }, /the limit must be a positive number/);
  rejects({ ...valid, budgets: [['energy<=-3uJ']] }, /bad constraint 'energy<=-3uJ': does not match the grammar/);
  rejects({ ...valid, budgets: [['size<=1MB', 'size<=2MB']] }, /a second limit on size/);
  rejects({ ...valid, budgets: [] }, /\$\.budgets: must have at least 1 item/);
  rejects({ ...valid, budgets: [42] }, /\$\.budgets\[0\]: must be an array, got 42/);
});

test('negative or non-integer counts', () => {
  rejects({ ...valid, episodes: -5 }, /\$\.episodes: must be >= 1, got -5/);
  rejects({ ...valid, qatSteps: -1 }, /\$\.qatSteps: must be >= 0/);
  rejects({ ...valid, episodes: 2.5 }, /\$\.episodes: must be an integer/);
  rejects({ ...valid, seeds: [1, -2] }, /\$\.seeds\[1\]: must be >= 0, got -2/);
});

test('wrong types and unknown fields', () => {
  rejects({ ...valid, episodes: '10' }, /\$\.episodes: must be an integer, got string "10"/);
  rejects({ ...valid, profiles: 'bitfusion-45nm' }, /\$\.profiles: must be an array, got string "bitfusion-45nm"/);
  rejects({ ...valid, seeds: 3 }, /\$\.seeds: must be an array, got 3/);
  rejects({ ...valid, pinFirstLast: 'yes' }, /\$\.pinFirstLast: must be a boolean/);
  rejects(
    { ...valid, constraintMode: 'clip' },
    /\$\.constraintMode: must be one of "lower", "penalty", "reject", got string "clip"/,
  );
  rejects(
    { ...valid, stepMode: 'pairs' },
    /\$\.stepMode: must be one of "joint", "tied", "two-step", got string "pairs"/,
  );
  rejects({ ...valid, reward: 'accuracy' }, /\$\.reward: unknown reward 'accuracy'/, /haq, amed, releq, weighted/);
  rejects(
    { ...valid, bitChoices: [4, 9] },
    /\$\.bitChoices\[1\]: must be one of 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, got 9/,
  );
  rejects({ ...valid, episdoes: 10 }, /\$\.episdoes: unknown field/);
  rejects([valid], /must be a JSON object/);
});

test('missing required fields, each named', () => {
  const msg = rejects({ name: 'x' }, /5 problems/);
  for (const f of ['model', 'dataset', 'profiles', 'budgets', 'agents'])
    assert.match(msg, new RegExp(`\\$\\.${f}: required field is missing`));
});

test('unknown model and dataset; a dataset read from files needs dataDir', () => {
  rejects({ ...valid, model: 'resnet1000' }, /\$\.model: unknown model 'resnet1000'/, /lenet5/);
  rejects({ ...valid, model: 'models/mine/model.json' }, /\$\.model: model file 'models\/mine\/model\.json' not found/);
  rejects({ ...valid, dataset: 'imagenet' }, /\$\.dataset: unknown dataset 'imagenet'/, /fashion-mnist/);
  rejects({ ...valid, dataset: 'cifar10' }, /\$\.dataDir: missing: dataset 'cifar10'/);
});

test('every problem of a file is reported at once', () => {
  const msg = rejects({ ...valid, agents: ['nope'], episodes: -1, budgets: ['latency<=x'], stepMode: 3 }, /4 problems/);
  for (const p of ['$.agents[0]', '$.episodes', '$.budgets[0]', '$.stepMode']) assert.ok(msg.includes(p), p);
});

test('non-JSON: line and column of the syntax error', () => {
  rejects('{\n  "name": "x",\n  "model": "lenet5"\n  "dataset": "mnist"\n}\n', /not valid JSON at line 4, column 3/);
  rejects('{\n  "name": "x",', /not valid JSON at line 2/);
});

test('missing file', () => {
  assert.throws(
    () => loadExperiment(join(dir, 'nope.json')),
    (e: unknown) => isUserError(e) && /nope\.json: experiment file not found/.test(e.message),
  );
});

test('--set overrides that break the file are reported as such; malformed overrides are refused', () => {
  const p = file('ok.json', valid);
  assert.throws(
    () => loadExperiment(p, ['episodes=-2']),
    (e: unknown) => isUserError(e) && /\$\.episodes: must be >= 1.*\[set by --set\]/.test(e.message),
  );
  assert.throws(
    () => loadExperiment(p, ['episodes']),
    (e: unknown) => isUserError(e) && /--set: bad override 'episodes'/.test(e.message),
  );
  assert.throws(
    () => loadExperiment(p, ['name.x=1']),
    (e: unknown) => isUserError(e) && /cannot be applied: \$\.name is not an object/.test(e.message),
  );
});

// ---------------------------------------------------------------------------------------------------------
// Through the CLI: exit 1, `error:` without a stack trace, nothing written.
// ---------------------------------------------------------------------------------------------------------

test('CLI: malformed experiments exit 1 with the clear message, no stack trace, and write nothing', async () => {
  const cases: { args: string[]; expect: RegExp[] }[] = [
    {
      args: [
        'experiment',
        'validate',
        file('many.json', {
          ...valid,
          agents: ['nope'],
          profiles: ['nowhere-9'],
          budgets: ['latency<=3KB'],
          episodes: -1,
          seeds: 'x',
        }),
      ],
      expect: [
        /many\.json: invalid experiment: 5 problems/,
        /\$\.agents\[0\]: unknown agent 'nope'/,
        /\$\.profiles\[0\]: unknown profile 'nowhere-9'/,
        /\$\.budgets\[0\]/,
        /\$\.episodes: must be >= 1/,
        /\$\.seeds/,
      ],
    },
    {
      args: ['experiment', 'validate', file('syntax.json', '{"name": "x",,}')],
      expect: [/syntax\.json: not valid JSON at line 1, column 14/],
    },
    { args: ['experiment', 'validate', join(dir, 'absent.json')], expect: [/absent\.json: experiment file not found/] },
    {
      args: ['experiment', 'validate', file('ok2.json', valid), '--set', 'agents.0=ghost'],
      expect: [/\$\.agents\[0\]: unknown agent 'ghost'.*\[set by --set\]/],
    },
  ];
  const before = readdirSync(dir).sort();
  const results = await Promise.all(cases.map((c) => cli(c.args)));
  results.forEach((r, i) => {
    const c = cases[i];
    assert.equal(r.code, 1, `exit code for ${c.args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: /);
    for (const e of c.expect) assert.match(r.stderr, e);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(r.stdout, '');
  });
  assert.deepEqual(readdirSync(dir).sort(), before, 'nothing written (no run directory, no temp files)');
});

test('CLI: a valid experiment lists its cells and exits 0', async () => {
  const p = file('good.json', { ...valid, agents: ['random', 'uniform'], seeds: [1, 2] });
  const r = await cli(['experiment', 'validate', p, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { valid: boolean; cells: { id: string }[] };
  assert.equal(out.valid, true);
  assert.deepEqual(
    out.cells.map((c) => c.id),
    [
      'random__bitfusion-45nm__latency-0.5x__s1',
      'random__bitfusion-45nm__latency-0.5x__s2',
      'uniform__bitfusion-45nm__latency-0.5x__s1',
      'uniform__bitfusion-45nm__latency-0.5x__s2',
    ],
  );
});
