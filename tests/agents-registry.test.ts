/**
 * The agent registry (agents/index.ts) is the one list of agents: the experiment schema, the presets that compare
 * every agent, `bitalloc search --help` and `bitalloc agents` follow it, and each entry checks its option values
 * when an experiment is loaded.
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

test('experiments/schema.json names exactly the registered agents', () => {
  const schema = JSON.parse(readFileSync(join(root, 'experiments', 'schema.json'), 'utf8')) as {
    $defs: { agentName: { enum: string[] } };
  };
  assert.deepEqual([...schema.$defs.agentName.enum].sort(), [...AGENT_NAMES].sort());
});

test('the presets that compare agents list every registered agent', () => {
  for (const preset of ['compare-agents.json', 'quality-lenet5.json']) {
    const exp = loadExperiment(join(root, 'experiments', preset));
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
  assert.ok(r.stdout.includes(AGENT_NAMES.join(' | ')), r.stdout);
});
