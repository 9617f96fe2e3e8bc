/**
 * The PPO, DDPG (HAQ) and AMED (Metropolis-Hastings) agents on the synthetic problem with a known
 * optimum: learning, masks, feasibility, checkpoints (getState/setState) and tensor hygiene.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { AmedAgent } from '../agents/amed.js';
import { DdpgAgent, DDPG_DEFAULTS, actionToIndex } from '../agents/ddpg.js';
import { AGENTS, createAgent } from '../agents/index.js';
import { PpoAgent } from '../agents/ppo.js';
import { haqReward } from '../envs/rewards.js';
import { optimumForEnv, syntheticProblem } from '../envs/synthetic.js';
import type { Agent, EpisodeSummary } from '../envs/types.js';
import { initBackend, tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { runEpisode, runEpisodes } from '../src/search/episode.js';

/** The highest reward among feasible episodes (-Infinity when none is feasible). */
function maxFeasibleReward(summaries: readonly EpisodeSummary[]): number {
  return Math.max(-Infinity, ...summaries.filter((s) => s.feasible).map((s) => s.reward));
}

before(async () => {
  await initBackend('wasm');
});

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const rewards = (runs: readonly EpisodeSummary[]): number[] => runs.map((s) => s.reward);

/** Tied bits 2..8 under latency <= 0.5x with HAQ's budget walk, as in the reinforce test. */
function haqProblem(seed: number): ReturnType<typeof syntheticProblem> {
  return syntheticProblem({
    stepMode: 'tied',
    constraints: ['latency<=0.5x'],
    constraintMode: 'lower',
    evaluatorSeed: seed,
    seed,
  });
}

/** Small DDPG networks for speed in tests (the defaults are HAQ's 300-300, checked separately). */
const SMALL_DDPG = { hiddenSize: 64, warmupEpisodes: 10 };

/** Rewards of the next `n` episodes of an agent on an env. */
async function nextRewards(
  agent: Agent,
  env: ReturnType<typeof syntheticProblem>['env'],
  n: number,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await runEpisode(env, agent)).reward);
  return out;
}

describe('registry entries', () => {
  it('lists ppo, ddpg and amed with their defaults', () => {
    for (const name of ['ppo', 'ddpg', 'amed']) {
      assert.ok(AGENTS[name], name);
      assert.ok(AGENTS[name].describe.length > 10);
      assert.equal(createAgent(name).name, name);
    }
    assert.equal(createAgent('ppo', { policy: 'lstm' }).name, 'ppo-lstm');
    const d = AGENTS.ddpg.defaults;
    assert.deepEqual(
      [
        d.hiddenSize,
        d.learningRate,
        d.criticLearningRate,
        d.batchSize,
        d.replayEpisodes,
        d.tau,
        d.warmupEpisodes,
        d.initialSigma,
        d.sigmaDecay,
        d.baselineAlpha,
        d.gamma,
      ],
      [300, 1e-4, 1e-3, 64, 128, 0.01, 20, 0.5, 0.99, 0.5, 1],
    );
  });

  it('bad option values are UserErrors naming the option', () => {
    assert.throws(
      () => createAgent('ppo', { policy: 'gru' }),
      (e: unknown) => e instanceof UserError && /policy/.test(e.message) && /mlp\|lstm/.test(e.message),
    );
    assert.throws(
      () => createAgent('ppo', { epochs: 0 }),
      (e: unknown) => e instanceof UserError && /epochs/.test(e.message),
    );
    assert.throws(
      () => createAgent('ddpg', { batchSize: 2.5 }),
      (e: unknown) => e instanceof UserError && /batchSize/.test(e.message),
    );
    assert.throws(
      () => createAgent('amed', { update: 'sgd' }),
      (e: unknown) => e instanceof UserError && /additive\|ema/.test(e.message),
    );
    assert.throws(
      () => createAgent('amed', { accuracyThreshold: 'high' }),
      (e: unknown) => e instanceof UserError && /accuracyThreshold/.test(e.message),
    );
  });
});

describe('ppo', () => {
  /*
   * "% of optimal" as in tests/agents-basic.test.ts: score(R) = (R - mean reward of random search) /
   * (optimal reward - mean reward of random search); the search's result is its best feasible episode.
   */
  for (const seed of [1, 2, 3]) {
    it(`(mlp) reaches >= 95% of the optimal reward within 300 episodes and beats random search (seed ${seed})`, async (t) => {
      const EPISODES = 300;
      const ref = haqProblem(seed);
      const opt = optimumForEnv(ref.env, ref.table, ref.evaluator)!;
      const optimal = haqReward(opt.accuracy, ref.evaluator.accFloat);
      const rand = await runEpisodes(haqProblem(seed).env, createAgent('random'), EPISODES, seed);
      const randMean = mean(rewards(rand));
      const randBest = maxFeasibleReward(rand);
      const score = (r: number): number => (r - randMean) / (optimal - randMean);

      const p = haqProblem(seed);
      const agent = new PpoAgent();
      const runs = await runEpisodes(p.env, agent, EPISODES, seed);
      const best = maxFeasibleReward(runs);
      const greedy = await runEpisode(p.env, agent, { explore: false });
      agent.dispose();
      const figures = `optimum ${optimal.toFixed(5)}, random mean ${randMean.toFixed(5)} best ${randBest.toFixed(5)} (score ${score(randBest).toFixed(3)}), ppo best ${best.toFixed(5)} (score ${score(best).toFixed(3)}), last-20 mean score ${score(mean(rewards(runs.slice(-20)))).toFixed(3)}, greedy ${score(greedy.reward).toFixed(3)}`;
      t.diagnostic(`seed ${seed}: ${figures}`);
      assert.ok(best <= optimal + 1e-12, `nothing beats the exact optimum: ${figures}`);
      assert.ok(score(best) >= 0.95, figures);
      assert.ok(best > randBest, figures);
      assert.ok(greedy.feasible && score(greedy.reward) >= 0.9, figures);
    });
  }

  it('(lstm) runs and improves: last 20 episodes beat the first 20, greedy policy near the optimum', async (t) => {
    const p = haqProblem(1);
    const opt = optimumForEnv(p.env, p.table, p.evaluator)!;
    const optimal = haqReward(opt.accuracy, p.evaluator.accFloat);
    const agent = new PpoAgent({ policy: 'lstm' });
    const runs = await runEpisodes(p.env, agent, 160, 1);
    const first = mean(rewards(runs.slice(0, 20)));
    const last = mean(rewards(runs.slice(-20)));
    const greedy = await runEpisode(p.env, agent, { explore: false });
    agent.dispose();
    const figures = `first-20 mean ${first.toFixed(5)}, last-20 mean ${last.toFixed(5)}, greedy ${greedy.reward.toFixed(5)}, optimum ${optimal.toFixed(5)}`;
    t.diagnostic(figures);
    assert.ok(last > first, figures);
    assert.ok(greedy.feasible, figures);
    assert.ok(greedy.reward - optimal > 0.2 * (first - optimal), `greedy closes most of the gap: ${figures}`);
  });

  for (const policy of ['mlp', 'lstm'] as const) {
    it(`(${policy}) the update recomputes exactly the log-probabilities recorded while acting`, async () => {
      const { env } = haqProblem(2);
      const agent = new PpoAgent({ policy, episodesPerRollout: 4 });
      await runEpisodes(env, agent, 6, 2); // one update, then 2 episodes collected under the new policy
      assert.equal(agent.updateCount, 1);
      const state = agent.getState();
      assert.equal(state.rollout.length, 2);
      const recomputed = agent.recomputeLogProbs(state.rollout);
      state.rollout.forEach((ep, e) =>
        ep.forEach((s, t) =>
          assert.ok(
            Math.abs(recomputed[e][t] - s.logp) < 1e-4,
            `episode ${e} step ${t}: ${recomputed[e][t]} vs ${s.logp}`,
          ),
        ),
      );
      agent.dispose();
    });
  }

  it('(lstm) carries its state across the steps of an episode', async () => {
    const { env } = haqProblem(1);
    const agent = new PpoAgent({ policy: 'lstm' });
    agent.setup(env.agentContext(5));
    const { observation } = env.reset();
    // The same observation twice in a row: the second step sees the first through h and c.
    const first = agent.recomputeLogProbs([[{ obs: Array.from(observation), mask: null, action: 0 }]])[0][0];
    const twice = agent.recomputeLogProbs([
      [
        { obs: Array.from(observation), mask: null, action: 0 },
        { obs: Array.from(observation), mask: null, action: 0 },
      ],
    ])[0];
    assert.ok(Math.abs(twice[0] - first) < 1e-6);
    assert.notEqual(twice[1], twice[0]);
    agent.dispose();
  });

  it('never takes a masked action', async () => {
    // A tight budget makes masks bite; with masks respected the chosen allocation is feasible before lowering.
    const { env } = syntheticProblem({
      stepMode: 'tied',
      constraints: ['latency<=0.3x'],
      constraintMode: 'lower',
      seed: 3,
    });
    const agent = new PpoAgent({ episodesPerRollout: 4 });
    const runs = await runEpisodes(env, agent, 12, 3);
    for (const s of runs) assert.ok(env.isFeasible(s.proposedBits), JSON.stringify(s.proposedBits));
    assert.ok(
      runs.some((s) => s.proposedBits.some((b) => b.wBits > 2)),
      'not trivially all-minimum',
    );
    agent.dispose();
  });

  it('is deterministic for a seed', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const agent = new PpoAgent({ episodesPerRollout: 4 });
      const out = rewards(await runEpisodes(haqProblem(1).env, agent, 10, seed));
      agent.dispose();
      return out;
    };
    const a = await run(7);
    assert.deepEqual(await run(7), a);
    assert.notDeepEqual(await run(8), a);
  });
});

describe('ddpg', () => {
  it('maps a in [0,1] onto the ordered choices with HAQ rounding', () => {
    // n = 7 choices (bits 2..8): bits = round(a * 7 + 1.5), i.e. index = round(a * 7 - 0.5).
    assert.equal(actionToIndex(0, 7), 0);
    assert.equal(actionToIndex(1, 7), 6);
    assert.equal(actionToIndex(0.5, 7), 3);
    assert.equal(actionToIndex(1 / 7 - 1e-9, 7), 0);
    assert.equal(actionToIndex(1 / 7 + 1e-9, 7), 1);
    for (let a = 0; a <= 1; a += 0.01) {
      const bits = Math.round(a * (8 + 0.5 - (2 - 0.5)) + 2 - 0.5);
      assert.equal(actionToIndex(a, 7) + 2, Math.min(8, bits));
    }
  });

  it('runs on the synthetic problem, returns feasible allocations and improves after warm-up', async (t) => {
    const p = haqProblem(1);
    const agent = new DdpgAgent(SMALL_DDPG);
    const runs = await runEpisodes(p.env, agent, 70, 1);
    agent.dispose();
    assert.ok(runs.every((s) => s.feasible));
    const warm = mean(rewards(runs.slice(0, 10)));
    const bestLate = Math.max(...rewards(runs.slice(-20)));
    const lateMean = mean(rewards(runs.slice(-20)));
    t.diagnostic(
      `warm-up mean ${warm.toFixed(5)}, last-20 mean ${lateMean.toFixed(5)}, best of last 20 ${bestLate.toFixed(5)}`,
    );
    assert.ok(bestLate > warm);
    assert.ok(lateMean > warm);
  });

  it('with HAQ defaults (300-300) learns after warm-up: weights move, sigma decays', async () => {
    const { env } = haqProblem(2);
    const agent = new DdpgAgent({ warmupEpisodes: 1 });
    assert.equal(agent.options.hiddenSize, DDPG_DEFAULTS.hiddenSize);
    await runEpisodes(env, agent, 1, 2);
    const before = agent.getState();
    assert.equal(before.params['actor.1.w'].values.length, 300 * 300);
    await runEpisode(env, agent);
    const after = agent.getState();
    assert.notDeepEqual(after.params['actor.0.w'].values, before.params['actor.0.w'].values);
    assert.notDeepEqual(after.params['critic.2.w'].values, before.params['critic.2.w'].values);
    assert.ok(agent.lastLoss && Number.isFinite(agent.lastLoss.critic));
    assert.ok(agent.sigma < DDPG_DEFAULTS.initialSigma);
    agent.dispose();
  });

  it('snaps onto unmasked choices', async () => {
    const { env } = syntheticProblem({
      stepMode: 'tied',
      constraints: ['latency<=0.3x'],
      constraintMode: 'lower',
      seed: 3,
    });
    const agent = new DdpgAgent({ ...SMALL_DDPG, warmupEpisodes: 3 });
    const runs = await runEpisodes(env, agent, 6, 3);
    for (const s of runs) assert.ok(env.isFeasible(s.proposedBits), JSON.stringify(s.proposedBits));
    agent.dispose();
  });

  it('works in HAQ two-step mode (weights, then activations)', async () => {
    const { env } = syntheticProblem({ stepMode: 'two-step', seed: 1 });
    const agent = new DdpgAgent({ ...SMALL_DDPG, warmupEpisodes: 2 });
    const runs = await runEpisodes(env, agent, 4, 1);
    assert.equal(runs.length, 4);
    assert.ok(runs.every((s) => s.feasible && s.bits.length === 12));
    assert.ok(
      runs.some((s) => s.bits.some((b) => b.wBits !== b.aBits)),
      'weights and activations chosen separately',
    );
    agent.dispose();
  });
});

describe('amed', () => {
  /** AMED's own objective: reward = -zeta (no accuracy penalty), AMED's reject mode. */
  const amedProblem = (seed: number, stepMode: 'tied' | 'joint' = 'tied'): ReturnType<typeof syntheticProblem> =>
    syntheticProblem({
      stepMode,
      reward: { kind: 'amed', gamma: 0 },
      constraintMode: 'reject',
      evaluatorSeed: seed,
      seed,
    });

  for (const seed of [1, 2]) {
    it(`proposes only feasible allocations and improves (seed ${seed})`, async (t) => {
      const { env } = amedProblem(seed);
      const agent = new AmedAgent();
      const runs = await runEpisodes(env, agent, 300, seed);
      assert.ok(runs.every((s) => s.feasible && s.evaluated !== false));
      assert.ok(
        runs.every((s) => s.bits.every((b) => b.wBits === b.aBits)),
        'tied bits by default',
      );
      const first = mean(rewards(runs.slice(0, 20)));
      const bestLast = Math.max(...rewards(runs.slice(-50)));
      const lastMean = mean(rewards(runs.slice(-50)));
      t.diagnostic(
        `first-20 mean ${first.toFixed(4)}, last-50 mean ${lastMean.toFixed(4)}, best of last 50 ${bestLast.toFixed(4)}, acceptance ${agent.acceptanceRate.toFixed(2)}`,
      );
      assert.ok(bestLast > first);
      assert.ok(lastMean > first, 'the proposals themselves get better, not just the best one');
      // reward = -zeta exactly, so the agent's zeta agrees with the env's AMED reward
      assert.ok(Math.abs(agent.zeta(runs.at(-1)!) + runs.at(-1)!.reward) < 1e-12);
    });
  }

  it('with independent weight and activation tables (joint step mode) runs and improves', async () => {
    const { env } = amedProblem(3, 'joint');
    const agent = new AmedAgent({ tiedBits: false });
    const runs = await runEpisodes(env, agent, 200, 3);
    assert.ok(runs.every((s) => s.feasible));
    assert.ok(runs.some((s) => s.bits.some((b) => b.wBits !== b.aBits)));
    assert.ok(Math.max(...rewards(runs.slice(-50))) > mean(rewards(runs.slice(0, 20))));
  });

  it('moves the evaluated cells by log10(ref / zeta) and accepts by the MH rule', async () => {
    const { env } = amedProblem(1);
    const agent = new AmedAgent({ reference: 'chain', acceptTemperature: 1e-6, learningRate: 1 });
    agent.setup(env.agentContext(1));
    const s1 = await env.evaluateAllocation(agent.propose());
    agent.endEpisode(s1);
    assert.deepEqual(agent.current()!.bits, s1.bits, 'the first evaluation becomes the chain state');
    const z1 = agent.zeta(s1);
    // Hand the agent a worse outcome and a better one for chosen allocations.
    const worse = { ...s1, bits: s1.bits.map(() => ({ wBits: 2, aBits: 2 })), loss: s1.loss + 1 };
    agent.endEpisode(worse);
    const st = agent.getState();
    const d = Math.log10(z1 / agent.zeta(worse));
    assert.ok(d < 0);
    assert.ok(Math.abs(st.scoresW[0][0] - d) < 1e-12, 'cell (layer 0, 2 bits) moved by log10(ref/zeta)');
    assert.deepEqual(agent.current()!.bits, s1.bits, 'a much worse allocation is rejected');
    const better = { ...s1, bits: s1.bits.map(() => ({ wBits: 8, aBits: 8 })), loss: s1.loss - 0.2 };
    agent.endEpisode(better);
    assert.deepEqual(agent.current()!.bits, better.bits, 'a better allocation is accepted');
  });

  it('falls back to a feasible allocation when the table keeps proposing infeasible ones', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied', constraints: ['latency<=0.2x'], seed: 1 });
    const agent = new AmedAgent({ maxResamples: 1 });
    const runs = await runEpisodes(env, agent, 20, 1);
    for (const s of runs) assert.ok(env.isFeasible(s.proposedBits));
  });
});

describe('checkpoints: an agent restored mid-run makes the same next choices', () => {
  const cases: { name: string; make: () => Agent; warm: number; next: number }[] = [
    // ppo: 10 episodes = one update + 2 episodes in the rollout buffer; the next 8 cross an update
    { name: 'ppo (mlp)', make: () => new PpoAgent({ episodesPerRollout: 8 }), warm: 10, next: 8 },
    { name: 'ppo (lstm)', make: () => new PpoAgent({ policy: 'lstm', episodesPerRollout: 4 }), warm: 6, next: 4 },
    // ddpg: past its warm-up, replay buffer and moving-average baseline in the state
    { name: 'ddpg', make: () => new DdpgAgent({ ...SMALL_DDPG, warmupEpisodes: 3 }), warm: 5, next: 3 },
    { name: 'amed', make: () => new AmedAgent(), warm: 30, next: 20 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const p1 = haqProblem(4);
      const a = c.make();
      await runEpisodes(p1.env, a, c.warm, 4);
      const state = JSON.parse(JSON.stringify(a.getState())) as unknown;
      const b = c.make();
      await b.setup(haqProblem(4).env.agentContext(999)); // a different seed: everything must come from the state
      await b.setState(state);
      const p2 = haqProblem(4);
      const got = await nextRewards(b, p2.env, c.next);
      const want = await nextRewards(a, p1.env, c.next);
      assert.deepEqual(got, want);
      assert.deepEqual(JSON.parse(JSON.stringify(b.getState())), JSON.parse(JSON.stringify(a.getState())));
      a.dispose?.();
      b.dispose?.();
    });
  }

  it('a state from another agent or shape is a UserError', () => {
    const { env } = haqProblem(1);
    const ppo = new PpoAgent();
    ppo.setup(env.agentContext(1));
    const lstm = new PpoAgent({ policy: 'lstm' });
    lstm.setup(env.agentContext(1));
    assert.throws(
      () => ppo.setState(lstm.getState()),
      (e: unknown) => e instanceof UserError && /policy/.test(e.message),
    );
    assert.throws(() => ppo.setState({ kind: 'ddpg' }), UserError);
    const amed = new AmedAgent();
    amed.setup(env.agentContext(1));
    assert.throws(() => amed.setState(ppo.getState()), UserError);
    ppo.dispose();
    lstm.dispose();
  });
});

describe('tensor hygiene', () => {
  const cases: { name: string; make: () => Agent; warm: number }[] = [
    { name: 'ppo (mlp)', make: () => new PpoAgent({ episodesPerRollout: 2 }), warm: 2 },
    { name: 'ppo (lstm)', make: () => new PpoAgent({ policy: 'lstm', episodesPerRollout: 2 }), warm: 2 },
    { name: 'ddpg', make: () => new DdpgAgent({ ...SMALL_DDPG, warmupEpisodes: 1 }), warm: 2 },
  ];
  for (const c of cases) {
    it(`${c.name}: no tensors leak per episode, update, setState or after dispose`, async () => {
      const { env } = haqProblem(1);
      const n0 = tf.memory().numTensors;
      const agent = c.make();
      await runEpisodes(env, agent, c.warm, 1);
      const n1 = tf.memory().numTensors;
      for (let i = 0; i < 4; i++) await runEpisode(env, agent); // includes updates
      await runEpisode(env, agent, { explore: false });
      assert.equal(tf.memory().numTensors, n1);
      await agent.setState(agent.getState());
      assert.equal(tf.memory().numTensors, n1);
      agent.dispose?.();
      assert.equal(tf.memory().numTensors, n0);
    });
  }
});
