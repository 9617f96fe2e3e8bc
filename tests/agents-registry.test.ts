/**
 * The agent registry (agents/index.ts) is the one list of agents: experiment validation (the schema keeps no list),
 * the presets that compare every agent ("*"), `bitalloc search --help` and `bitalloc agents` follow it, and each
 * entry checks its option values when an experiment is loaded.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { test } from 'node:test';
import { AGENTS, AGENT_NAMES, agentInfos } from '../agents/index.js';
import { loadExperiment, validateExperiment } from '../src/experiment/experiment.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(root, 'bin', 'bitalloc.js');
const base = {
  name: 'reg',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm'],
  budgets: ['latency<=0.5x'],
};

test('every agent accepts its own defaults', () => {
  for (const [name, entry] of Object.entries(AGENTS)) {
    assert.doesNotThrow(() => entry.validate({ ...entry.defaults }, 'opts'), name);
  }
});

test('an option value an agent rejects fails at experiment load, named by its JSON path', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    [
      'ppo',
      { epochs: 0 },
      /\$\.agents\[0\]\.options\.epochs: invalid option 'epochs' for agent 'ppo': 0 \(expected an integer >= 1\)/,
    ],
    ['ppo', { policy: 'gru' }, /\$\.agents\[0\]\.options\.policy/],
    ['ddpg', { warmupEpisodes: -1 }, /\$\.agents\[0\]\.options\.warmupEpisodes/],
    ['amed', { update: 'sometimes' }, /\$\.agents\[0\]\.options\.update/],
    ['reinforce', { learningRate: 0 }, /\$\.agents\[0\]\.options\.learningRate/],
    ['uniform', { order: 'sideways' }, /\$\.agents\[0\]\.options\.order/],
    ['evolution', { population: 0 }, /\$\.agents\[0\]\.options\.population/],
  ];
  for (const [name, options, where] of bad) {
    assert.throws(
      () => validateExperiment({ ...base, agents: [{ name, options }] }),
      where,
      `${name} ${JSON.stringify(options)}`,
    );
  }
  assert.doesNotThrow(() => validateExperiment({ ...base, agents: [{ name: 'ppo', options: { epochs: 3 } }] }));
});

test('experiments/schema.json keeps no list of agents: the validator checks names against the registry', () => {
  const schema = JSON.parse(readFileSync(join(root, 'experiments', 'schema.json'), 'utf8')) as {
    $defs: { agentName: Record<string, unknown> };
  };
  assert.equal(schema.$defs.agentName['enum'], undefined);
  for (const name of AGENT_NAMES) assert.doesNotThrow(() => validateExperiment({ ...base, agents: [name] }), name);
  assert.throws(
    () => validateExperiment({ ...base, agents: ['ppo', { name: 'x' }] }),
    (e: Error) => e.message.includes(`$.agents[1].name: unknown agent 'x' (expected one of ${AGENT_NAMES.join(', ')})`),
  );
});

test('"*" in agents is every registered agent that no other entry names, in registry order, at its place', () => {
  const all = validateExperiment({ ...base, agents: ['*'] });
  assert.deepEqual(
    all.agents.map((a) => [a.name, a.label]),
    AGENT_NAMES.map((n) => [n, n]),
  );
  const lstm = { name: 'ppo', label: 'ppo-lstm', options: { policy: 'lstm' } };
  const mixed = validateExperiment({ ...base, agents: [lstm, '*', 'random'] });
  assert.deepEqual(
    mixed.agents.map((a) => a.label),
    ['ppo-lstm', ...AGENT_NAMES.filter((n) => n !== 'ppo' && n !== 'random'), 'random'],
  );
  // The validated experiment (what a run directory stores) names each agent, so a run keeps its cells when
  // agents are added to the registry later.
  assert.deepEqual(validateExperiment(JSON.parse(JSON.stringify(mixed))).agents, mixed.agents);
  assert.throws(() => validateExperiment({ ...base, agents: ['*', '*'] }), /\$\.agents\[1\]: a second '\*'/);
  assert.throws(
    () => validateExperiment({ ...base, agents: [{ name: '*', options: {} }] }),
    /\$\.agents\[0\]\.name: '\*' \(every registered agent\) takes no label or options/,
  );
  assert.throws(
    () => validateExperiment({ ...base, agents: [{ name: 'ppo', label: 'random' }, '*'] }),
    /\$\.agents\[1\]: agent label 'random' is already used by \$\.agents\[0\]/,
  );
});

test('the presets that compare agents list every registered agent, through "*" (no hand-kept list)', () => {
  for (const preset of [
    'compare-agents.json',
    'quality-lenet5.json',
    'quality-resnet20.json',
    'quality-mobilenet-tiny.json',
  ]) {
    const path = join(root, 'experiments', preset);
    const raw = JSON.parse(readFileSync(path, 'utf8')) as { agents: unknown[] };
    assert.ok(raw.agents.includes('*'), preset);
    const exp = loadExperiment(path);
    assert.deepEqual([...new Set(exp.agents.map((a) => a.name))].sort(), [...AGENT_NAMES].sort(), preset);
  }
});

test('`bitalloc agents --json` lists every agent with its options, types and defaults', () => {
  const r = spawnSync(process.execPath, [BIN, 'agents', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    agents: { name: string; describe: string; options: { name: string; type: string; default: unknown }[] }[];
  };
  assert.deepEqual(
    out.agents.map((a) => a.name),
    [...AGENT_NAMES],
  );
  const ppo = out.agents.find((a) => a.name === 'ppo');
  assert.deepEqual(
    ppo?.options.find((o) => o.name === 'epochs'),
    { name: 'epochs', type: 'number', default: AGENTS['ppo']?.defaults['epochs'] },
  );
  assert.deepEqual(out.agents, JSON.parse(JSON.stringify(agentInfos())));
});

test('`bitalloc search --help` lists the registered agents', () => {
  const r = spawnSync(process.execPath, [BIN, 'search', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // yargs wraps long descriptions: compare with runs of white space as one space
  assert.ok(r.stdout.replace(/\s+/g, ' ').includes(AGENT_NAMES.join(' | ')), r.stdout);
});
