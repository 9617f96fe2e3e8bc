/**
 * Agent checkpoint states: one tag (`name`, the registry name) and old files still loading, so resumes of
 * existing runs keep working: reinforce's version 1 format (arrays by name, before the kit's parameter store),
 * ppo/ddpg/amed states tagged `kind`, random/uniform states without a tag.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { AmedAgent } from '../agents/amed.js';
import { DdpgAgent } from '../agents/ddpg.js';
import { AGENT_NAMES, createAgent } from '../agents/index.js';
import { stateName } from '../agents/kit/state.js';
import { PpoAgent } from '../agents/ppo.js';
import { RandomAgent } from '../agents/random.js';
import { ReinforceAgent, type ReinforceStateV1 } from '../agents/reinforce.js';
import { syntheticProblem } from '../envs/synthetic.js';
import type { Agent } from '../envs/types.js';
import { initBackend, tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { runEpisode, runEpisodes } from '../src/search/episode.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

before(async () => {
  await initBackend('wasm');
});

type Env = ReturnType<typeof syntheticProblem>['env'];

async function nextRewards(agent: Agent, env: Env, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await runEpisode(env, agent)).reward);
  return out;
}

/** A JSON round trip, as a checkpoint file makes it. */
const viaJson = (x: unknown): unknown => JSON.parse(JSON.stringify(x)) as unknown;

describe('reinforce: version 1 checkpoints (before the parameter store) still resume', () => {
  const fixture = JSON.parse(
    readFileSync(join(root, 'tests', 'fixtures', 'agents', 'reinforce-state-v1.json'), 'utf8'),
  ) as {
    options: Record<string, unknown>;
    state: ReinforceStateV1;
    nextRewards: number[];
    greedyReward: number;
  };

  it('the fixture is in the old format', () => {
    const s = fixture.state as unknown as Record<string, unknown>;
    assert.equal(s['version'], undefined);
    assert.equal(stateName(s), undefined);
    assert.ok(Array.isArray(fixture.state.params['w1']) && fixture.state.adamM['b3']);
    assert.ok((fixture.state.pending ?? []).length > 0, 'an episode waits for the next update');
  });

  it('loads and continues as the code that wrote it did', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    const a = new ReinforceAgent(fixture.options);
    a.setup(env.agentContext(999)); // another seed: everything must come from the state
    a.setState(viaJson(fixture.state));
    assert.deepEqual(await nextRewards(a, env, fixture.nextRewards.length), fixture.nextRewards);
    assert.equal((await runEpisode(env, a, { explore: false })).reward, fixture.greedyReward);
    a.dispose();
  });

  it('its values come through unchanged, and it is written back in the current format', () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    const a = new ReinforceAgent(fixture.options);
    a.setup(env.agentContext(1));
    a.setState(viaJson(fixture.state));
    const now = a.getState();
    assert.equal(now.name, 'reinforce');
    assert.equal(now.version, 2);
    const names = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3'];
    assert.deepEqual(Object.keys(now.params), names);
    for (const [i, n] of names.entries()) {
      assert.deepEqual(now.params[n]?.values, fixture.state.params[n], n);
      assert.deepEqual(now.adam.m[i], fixture.state.adamM[n], `adam m ${n}`);
      assert.deepEqual(now.adam.v[i], fixture.state.adamV[n], `adam v ${n}`);
    }
    assert.equal(now.adam.t, fixture.state.updates);
    assert.deepEqual(
      [now.seed, now.episodes, now.baseline, now.scale2],
      [fixture.state.seed, fixture.state.episodes, fixture.state.baseline, fixture.state.scale2],
    );
    assert.deepEqual(now.pending, fixture.state.pending);
    a.dispose();
  });

  it('a current-format state resumes exactly, and a mis-sized one is a UserError naming the field', async () => {
    const p1 = syntheticProblem({ stepMode: 'tied' });
    const a = new ReinforceAgent({ hiddenSize: 8 });
    await runEpisodes(p1.env, a, 7, 3);
    const state = viaJson(a.getState()) as ReturnType<ReinforceAgent['getState']>;
    const b = new ReinforceAgent({ hiddenSize: 8 });
    b.setup(p1.env.agentContext(5));
    b.setState(state);
    const p2 = syntheticProblem({ stepMode: 'tied' });
    assert.deepEqual(await nextRewards(b, p2.env, 6), await nextRewards(a, p1.env, 6));
    const c = new ReinforceAgent({ hiddenSize: 8 });
    c.setup(p1.env.agentContext(5));
    const before = viaJson(c.getState());
    const bad = viaJson(state) as typeof state;
    bad.params['w2'] = { shape: [8, 8], values: [1, 2, 3] };
    assert.throws(
      () => c.setState(bad),
      (e: unknown) => e instanceof UserError && /agentState\.params\.w2/.test(e.message),
    );
    assert.deepEqual(viaJson(c.getState()), before, 'nothing changed by the refused state');
    assert.throws(() => c.setState({ name: 'ppo' }), UserError);
    for (const x of [a, b, c]) x.dispose();
  });

  it('does not leak tensors loading either format', () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    const a = new ReinforceAgent(fixture.options);
    a.setup(env.agentContext(1));
    const n = tf.memory().numTensors;
    a.setState(viaJson(fixture.state));
    a.setState(viaJson(a.getState()));
    assert.equal(tf.memory().numTensors, n);
    a.dispose();
  });
});

describe('one tag: every agent writes `name`, and older tags still load', () => {
  it('every registered agent tags its state with its registry name', async () => {
    for (const name of AGENT_NAMES) {
      // sensitivity and ssps need a real network (tests/sensitivity.test.ts, tests/ssps.test.ts resume them); their
      // states have been tagged `name` from their first version
      if (name === 'sensitivity' || name === 'ssps') continue;
      const { env } = syntheticProblem({ stepMode: 'joint' });
      const agent = createAgent(name);
      await runEpisodes(env, agent, 2, 1);
      assert.equal(stateName(agent.getState()), name, name);
      assert.equal('kind' in (agent.getState() as object), false, `${name}: no second tag`);
      agent.dispose?.();
    }
  });

  const older: { name: string; make: () => Agent; warm: number }[] = [
    { name: 'ppo', make: () => new PpoAgent({ episodesPerRollout: 4 }), warm: 6 },
    { name: 'ddpg', make: () => new DdpgAgent({ hiddenSize: 16, warmupEpisodes: 2 }), warm: 4 },
    { name: 'amed', make: () => new AmedAgent(), warm: 6 },
  ];
  for (const c of older) {
    it(`${c.name}: a state tagged \`kind\` (older files) resumes as the same state tagged \`name\``, async () => {
      const p1 = syntheticProblem({ stepMode: 'tied', seed: 2 });
      const a = c.make();
      await runEpisodes(p1.env, a, c.warm, 4);
      const current = viaJson(a.getState()) as Record<string, unknown>;
      assert.equal(current['name'], c.name);
      const { name: _tag, ...rest } = current;
      const old = { kind: c.name, ...rest };
      const fromOld = c.make();
      await fromOld.setup(p1.env.agentContext(9));
      await fromOld.setState(old);
      const fromNew = c.make();
      await fromNew.setup(p1.env.agentContext(9));
      await fromNew.setState(current);
      const want = await nextRewards(fromNew, syntheticProblem({ stepMode: 'tied', seed: 2 }).env, 4);
      assert.deepEqual(await nextRewards(fromOld, syntheticProblem({ stepMode: 'tied', seed: 2 }).env, 4), want);
      assert.throws(() => fromOld.setState({ ...rest, kind: 'other' }), UserError);
      for (const x of [a, fromOld, fromNew]) x.dispose?.();
    });
  }

  it('random and uniform states without a tag (older files) still load', async () => {
    const { env } = syntheticProblem({ stepMode: 'joint' });
    const a = new RandomAgent();
    await runEpisodes(env, a, 3, 6);
    const { name: _r, ...untagged } = a.getState();
    const b = new RandomAgent();
    b.setup(env.agentContext(1));
    b.setState(untagged);
    assert.deepEqual(await nextRewards(b, env, 3), await nextRewards(a, env, 3));
    assert.throws(() => b.setState({ ...untagged, name: 'uniform' }));
    const u = createAgent('uniform');
    await runEpisodes(env, u, 2, 1);
    const { name: _u, ...uState } = u.getState() as Record<string, unknown>;
    const v = createAgent('uniform');
    await v.setup(env.agentContext(1));
    await v.setState(uState);
    assert.deepEqual(viaJson(v.getState()), viaJson(u.getState()));
  });
});
