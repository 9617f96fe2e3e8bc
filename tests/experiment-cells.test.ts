/** Experiment files: defaults, overrides, cells and their ids, the presets, the schema. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { AGENTS } from '../agents/index.js';
import { unsupportedKeywords, validateJson, type JsonSchema } from '../src/hardware/json-schema.js';
import {
  EXPERIMENT_DEFAULTS,
  EXPERIMENT_FIELDS,
  applyOverrides,
  cells,
  defaultRunDir,
  loadExperiment,
  parseConstraint,
  validateExperiment,
} from '../src/experiment/experiment.js';

const experimentsDir = fileURLToPath(new URL('../../experiments/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bitalloc-exp-cells-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  name: 'cells',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm', 'gpu-t4'],
  budgets: ['latency<=0.5x', ['size<=200KB', 'peak-memory<=320KB']],
  agents: ['random', { name: 'uniform' }],
  seeds: [3, 1],
};

test('defaults are filled in and the result is itself a valid experiment (round trip)', () => {
  const exp = validateExperiment(base);
  assert.equal(exp.episodes, EXPERIMENT_DEFAULTS.episodes);
  assert.equal(exp.constraintMode, 'lower');
  assert.equal(exp.stepMode, 'joint');
  assert.deepEqual(exp.reward, { name: 'haq', options: {} });
  assert.deepEqual(exp.bitChoices, [2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(exp.agents, [
    { name: 'random', label: 'random', options: {} },
    { name: 'uniform', label: 'uniform', options: {} },
  ]);
  assert.deepEqual(exp.budgets, [['latency<=0.5x'], ['size<=200KB', 'peak-memory<=320KB']]);
  assert.deepEqual(validateExperiment(JSON.parse(JSON.stringify(exp))), exp);
});

test('cells: one per (profile, budget, agent, seed), with stable, unique, file-name-safe ids', () => {
  const exp = validateExperiment(base);
  const list = cells(exp);
  assert.equal(list.length, 2 * 2 * 2 * 2);
  const ids = list.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9._+-]+$/);
  assert.equal(ids[0], 'random__bitfusion-45nm__latency-0.5x__s3');
  assert.ok(ids.includes('uniform__gpu-t4__size-200KB+peak-memory-320KB__s1'));
  assert.deepEqual(
    cells(validateExperiment(base)).map((c) => c.id),
    ids,
    'same ids every time',
  );
  assert.deepEqual(
    list.map((c) => c.index),
    list.map((_, i) => i),
  );
  const c = list.find((x) => x.budget.constraints.length === 2);
  assert.deepEqual(
    c?.budget.parsed.map((p) => [p.metric, p.value]),
    [
      ['size', 200 * 1024],
      ['peakMemory', 320 * 1024],
    ],
  );
});

test('the same agent twice needs distinct labels, which name its cells', () => {
  assert.throws(
    () => validateExperiment({ ...base, agents: ['random', 'random'] }),
    /\$\.agents\[1\]: agent label 'random' is already used by \$\.agents\[0\]/,
  );
  const exp = validateExperiment({
    ...base,
    profiles: ['gpu-t4'],
    budgets: ['latency<=0.5x'],
    seeds: [1],
    agents: [{ name: 'random' }, { name: 'random', label: 'random-b', options: {} }],
  });
  assert.deepEqual(
    cells(exp).map((c) => c.id),
    ['random__gpu-t4__latency-0.5x__s1', 'random-b__gpu-t4__latency-0.5x__s1'],
  );
});

test('constraint grammar: units per metric, converted to ms / uJ / bytes', () => {
  const ok: [string, string, number, boolean][] = [
    ['latency<=0.35x', 'latency', 0.35, true],
    ['latency<=2ms', 'latency', 2, false],
    ['latency <= 500us', 'latency', 0.5, false],
    ['energy<=50uJ', 'energy', 50, false],
    ['energy<=1.5mJ', 'energy', 1500, false],
    ['size<=200KB', 'size', 204800, false],
    ['size<=1MB', 'size', 1048576, false],
    ['peak-memory<=4096B', 'peakMemory', 4096, false],
  ];
  for (const [text, metric, value, relative] of ok) {
    const c = parseConstraint(text);
    assert.ok(!('error' in c), `${text}: ${'error' in c ? c.error : ''}`);
    assert.equal(c.metric, metric);
    assert.ok(Math.abs(c.value - value) < 1e-9, `${text}: ${c.value}`);
    assert.equal(c.relative, relative);
  }
  for (const bad of [
    'latency<0.5x',
    'latency<=0.5',
    'latency<=0x',
    'memory<=2KB',
    'size<=2ms',
    'energy<=3KB',
    '<=2x',
    'latency<=abc',
  ]) {
    assert.ok('error' in parseConstraint(bad), bad);
  }
});

test('--set: dotted keys into objects and arrays, JSON values, shorthand agents expanded', () => {
  const { value, paths } = applyOverrides(base, [
    'episodes=7',
    'seeds=[5,6]',
    'agents.0.options.explore=true',
    'model=cnn-small',
    'reward.name=amed',
  ]);
  const v = value as Record<string, unknown>;
  assert.equal(v['episodes'], 7);
  assert.deepEqual(v['seeds'], [5, 6]);
  assert.deepEqual((v['agents'] as unknown[])[0], { name: 'random', options: { explore: true } });
  assert.equal(v['model'], 'cnn-small');
  assert.deepEqual(v['reward'], { name: 'amed' });
  assert.deepEqual(paths, ['$.episodes', '$.seeds', '$.agents[0].options.explore', '$.model', '$.reward.name']);
  assert.equal(base.seeds.length, 2, 'the input is not modified');
});

test('loadExperiment applies overrides before validating, and resolves paths against the file', () => {
  const p = join(dir, 'exp.json');
  writeFileSync(p, JSON.stringify({ ...base, profiles: ['./my-profile.json'] }));
  writeFileSync(
    join(dir, 'my-profile.json'),
    readFileSync(fileURLToPath(new URL('../../hardware-profiles/gpu-t4.json', import.meta.url)), 'utf8'),
  );
  const exp = loadExperiment(p, ['episodes=12', 'seeds=[9]']);
  assert.equal(exp.episodes, 12);
  assert.deepEqual(exp.seeds, [9]);
  assert.equal(exp.profiles[0], join(dir, 'my-profile.json'));
  assert.equal(cells(exp)[0]?.profile.id, 'gpu-t4', 'a profile file is named by its id');
});

test('defaultRunDir is <out>/<name>-<timestamp>', () => {
  const exp = validateExperiment({ ...base, out: join(dir, 'runs') });
  assert.equal(defaultRunDir(exp, new Date(2024, 0, 2, 3, 4, 5)), join(dir, 'runs', 'cells-20240102-030405'));
});

test('every preset in experiments/ validates', () => {
  const presets = readdirSync(experimentsDir).filter((f) => f.endsWith('.json') && f !== 'schema.json');
  for (const name of ['compare-agents.json', 'mcu.json', 'quickstart.json', 'transfer.json'])
    assert.ok(presets.includes(name), `preset ${name} ships`);
  for (const f of presets) {
    // reads files prepared by bench/prepare-pretrained.ts: validated in experiment-presets-pretrained.test.ts
    if (f === 'quality-mobilenetv2-pretrained.json') continue;
    const exp = loadExperiment(join(experimentsDir, f));
    assert.ok(cells(exp).length >= 1, f);
  }
  const compare = loadExperiment(join(experimentsDir, 'compare-agents.json'));
  assert.deepEqual(
    [...new Set(compare.agents.map((a) => a.name))].sort(),
    Object.keys(AGENTS).sort(),
    'compare-agents runs every registered agent',
  );
  assert.deepEqual(compare.seeds, [1, 2, 3]);
  assert.equal(loadExperiment(join(experimentsDir, 'transfer.json')).profiles.length, 3);
});

test('experiments/schema.json describes exactly the fields the validator accepts', () => {
  const schema = JSON.parse(readFileSync(join(experimentsDir, 'schema.json'), 'utf8')) as {
    properties: Record<string, unknown>;
    required: string[];
  };
  assert.deepEqual(Object.keys(schema.properties).sort(), [...EXPERIMENT_FIELDS].sort());
  assert.deepEqual(schema.required.sort(), ['agents', 'budgets', 'dataset', 'model', 'name', 'profiles']);
});

test('the presets satisfy experiments/schema.json, and the schema rejects what the validator rejects', () => {
  const schema = JSON.parse(readFileSync(join(experimentsDir, 'schema.json'), 'utf8')) as JsonSchema;
  assert.deepEqual(unsupportedKeywords(schema), [], 'every keyword is one the project validator checks');
  for (const f of readdirSync(experimentsDir).filter((x) => x.endsWith('.json') && x !== 'schema.json')) {
    assert.deepEqual(validateJson(JSON.parse(readFileSync(join(experimentsDir, f), 'utf8')), schema), [], f);
  }
  const bad: [unknown, RegExp][] = [
    [{ ...base, budgets: ['latency<=3KB'] }, /\$\.budgets\[0\]/],
    [{ ...base, budgets: [['size<=1MB', 'speed<=2x']] }, /\$\.budgets\[1\]\[1\]|\$\.budgets\[0\]\[1\]/],
    [{ ...base, agents: [''] }, /\$\.agents\[0\]/],
    [{ ...base, agents: [{ name: 'random', opts: {} }] }, /\$\.agents\[0\]/],
    [{ ...base, episodes: -1 }, /\$\.episodes/],
    [{ ...base, reward: { name: 'haq', weights: 1 } }, /\$\.reward/],
    [{ ...base, extra: 1 }, /extra/],
  ];
  for (const [doc, where] of bad) {
    const problems = validateJson(doc, schema);
    assert.ok(
      problems.some((p) => where.test(p)),
      `${JSON.stringify(doc).slice(0, 80)}: ${problems.join('; ')}`,
    );
    assert.throws(() => validateExperiment(doc));
  }
});
