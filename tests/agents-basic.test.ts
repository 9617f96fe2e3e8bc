/**
 * The agent registry, the episode runner, and the simple agents (random, uniform, reinforce),
 * including REINFORCE learning a synthetic problem with a known optimum.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AGENTS, createAgent } from '../agents/index.js';
import { RandomAgent } from '../agents/random.js';
import { ReinforceAgent } from '../agents/reinforce.js';
import { UniformAgent } from '../agents/uniform.js';
import { haqReward } from '../envs/rewards.js';
import { optimumForEnv, syntheticProblem } from '../envs/synthetic.js';
import type { AgentContext, EpisodeSummary, StepAgent, Transition } from '../envs/types.js';
import { initBackend, tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { uniformBits } from '../src/models/layer-info.js';
import { runEpisode, runEpisodes } from '../src/search/episode.js';

/** The highest reward among feasible episodes (-Infinity when none is feasible). */
function maxFeasibleReward(summaries: readonly EpisodeSummary[]): number {
  return Math.max(-Infinity, ...summaries.filter((s) => s.feasible).map((s) => s.reward));
}

before(async () => {
  await initBackend('wasm');
});

describe('agent registry', () => {
  it('lists random, uniform and reinforce with descriptions and defaults', () => {
    for (const name of ['random', 'uniform', 'reinforce']) {
      assert.ok(AGENTS[name], name);
      assert.ok(AGENTS[name].describe.length > 10);
      assert.equal(createAgent(name).name, name);
    }
  });

  it('an unknown agent is a UserError listing the valid names', () => {
    assert.throws(
      () => createAgent('qlearning'),
      (e: unknown) =>
        e instanceof UserError && /random/.test(e.message) && /reinforce/.test(e.message) && /uniform/.test(e.message),
    );
  });

  it('an unknown option is a UserError listing the valid options; a wrong type is one too', () => {
    assert.throws(
      () => createAgent('reinforce', { lr: 0.1 }),
      (e: unknown) => e instanceof UserError && /agentOptions\.lr/.test(e.message) && /learningRate/.test(e.message),
    );
    assert.throws(
      () => createAgent('reinforce', { hiddenSize: '64' }),
      (e: unknown) => e instanceof UserError && /number/.test(e.message),
    );
    assert.throws(
      () => createAgent('random', { seed: 1 }),
      (e: unknown) => e instanceof UserError && /no options/.test(e.message),
    );
    assert.throws(() => createAgent('uniform', { order: 'sideways' }), UserError);
  });

  it('options override the defaults', () => {
    const a = createAgent('reinforce', { hiddenSize: 16, entropyCoef: 0.5 }) as ReinforceAgent;
    assert.equal(a.options.hiddenSize, 16);
    assert.equal(a.options.entropyCoef, 0.5);
    assert.equal(a.options.learningRate, AGENTS.reinforce.defaults.learningRate);
  });
});

/** A step agent that records what the runner hands it, taking the first allowed action. */
class RecordingAgent implements StepAgent {
  readonly name = 'recording';
  readonly kind = 'step' as const;
  masks: (Uint8Array | null)[] = [];
  transitions: Transition[] = [];
  ended: EpisodeSummary[] = [];
  explores: boolean[] = [];
  setup(_ctx: AgentContext): void {}
  act(_o: Float32Array, mask: Uint8Array | null, explore: boolean): number {
    this.masks.push(mask);
    this.explores.push(explore);
    return mask ? mask.indexOf(1) : 0;
  }
  observe(t: Transition): void {
    this.transitions.push(t);
  }
  endEpisode(s: EpisodeSummary): void {
    this.ended.push(s);
  }
  getState(): unknown {
    return {};
  }
  setState(): void {}
}

describe('runEpisode', () => {
  it('step agents: reset/act/step/observe with masks, done on the last transition, then endEpisode', async () => {
    const { env } = syntheticProblem({ stepMode: 'two-step' });
    const agent = new RecordingAgent();
    const s = await runEpisode(env, agent, { explore: false });
    assert.equal(agent.transitions.length, 24);
    assert.deepEqual(
      agent.transitions.map((t) => t.done),
      [...new Array(23).fill(false), true],
    );
    assert.ok(agent.masks.every((m) => m instanceof Uint8Array));
    assert.deepEqual(
      agent.transitions.map((t) => t.mask),
      agent.masks,
    );
    assert.ok(agent.explores.every((e) => e === false));
    assert.equal(agent.transitions[23].reward, s.reward);
    assert.deepEqual(agent.ended, [s]);
    // each transition's next observation is the following one's observation
    for (let t = 0; t < 23; t++)
      assert.deepEqual(agent.transitions[t].nextObservation, agent.transitions[t + 1].observation);
  });

  it('allocation agents: propose -> evaluateAllocation -> endEpisode; runEpisodes stops when exhausted', async () => {
    const { env } = syntheticProblem({ stepMode: 'joint' });
    const agent = new UniformAgent('descending');
    const summaries = await runEpisodes(env, agent, 100, 0);
    assert.equal(summaries.length, 7);
    assert.deepEqual(
      summaries.map((s) => s.episode),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(
      summaries.map((s) => s.proposedBits[4].wBits),
      [8, 7, 6, 5, 4, 3, 2],
    );
    assert.ok(agent.exhausted());
    assert.throws(() => agent.propose(), /every width/);
  });
});

describe('random agent', () => {
  it('only picks unmasked actions, covers them all, and repeats under the same seed', () => {
    const mask = Uint8Array.from([0, 1, 1, 0, 1, 0, 0]);
    const pick = (seed: number): number[] => {
      const a = new RandomAgent();
      a.setup({ ...syntheticProblem().env.agentContext(seed), numActions: 7 });
      return Array.from({ length: 300 }, () => a.act(new Float32Array(21), mask));
    };
    const xs = pick(1);
    assert.deepEqual(new Set(xs), new Set([1, 2, 4]));
    assert.deepEqual(pick(1), xs);
    assert.notDeepEqual(pick(2), xs);
  });

  it('its state resumes the same sequence of episodes', async () => {
    const episodes = async (agent: RandomAgent, n: number): Promise<number[]> => {
      const { env } = syntheticProblem({ stepMode: 'tied' });
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await runEpisode(env, agent)).reward);
      return out;
    };
    const a = new RandomAgent();
    a.setup(syntheticProblem({ stepMode: 'tied' }).env.agentContext(5));
    await episodes(a, 3);
    const state = JSON.parse(JSON.stringify(a.getState())) as unknown;
    const b = new RandomAgent();
    b.setup(syntheticProblem({ stepMode: 'tied' }).env.agentContext(99));
    b.setState(state);
    assert.deepEqual(await episodes(b, 4), await episodes(a, 4));
  });
});

describe('uniform agent', () => {
  it('feasible-first: the widest width that meets the budget comes first, infeasible widths last', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied', constraints: ['latency<=0.3x'], constraintMode: 'reject' });
    const agent = createAgent('uniform') as UniformAgent;
    const summaries = await runEpisodes(env, agent, 100, 0);
    const widths = summaries.map((s) => s.proposedBits[0].wBits);
    const feasible = [2, 3, 4, 5, 6, 7, 8].filter((b) => env.isFeasible(uniformBits(env.layers, b, b))).reverse();
    assert.ok(feasible.length > 0 && feasible.length < 7);
    assert.deepEqual(widths.slice(0, feasible.length), feasible);
    assert.ok(summaries.slice(0, feasible.length).every((s) => s.feasible));
    assert.ok(summaries.slice(feasible.length).every((s) => !s.feasible));
    assert.equal(widths.length, 7);
  });

  it('ascending order and state round trip', () => {
    const { env } = syntheticProblem();
    const a = new UniformAgent('ascending');
    a.setup(env.agentContext(0));
    assert.deepEqual(a.schedule, [2, 3, 4, 5, 6, 7, 8]);
    a.endEpisode({} as EpisodeSummary);
    const b = new UniformAgent('ascending');
    b.setup(env.agentContext(0));
    b.setState(JSON.parse(JSON.stringify(a.getState())));
    assert.equal(b.propose()[0].wBits, 3);
  });
});

describe('reinforce agent', () => {
  const agents: ReinforceAgent[] = [];
  after(() => agents.forEach((a) => a.dispose()));
  const make = (opts: Record<string, unknown> = {}): ReinforceAgent => {
    const a = createAgent('reinforce', opts) as ReinforceAgent;
    agents.push(a);
    return a;
  };

  it('never takes a masked action', async () => {
    const { env } = syntheticProblem({ stepMode: 'joint', constraints: ['latency<=0.25x'], strictMasks: true });
    const summaries = await runEpisodes(env, make(), 20, 3);
    assert.ok(summaries.every((s) => s.feasible && s.bits.every((b, i) => b.wBits === s.proposedBits[i].wBits)));
  });

  it('is deterministic for a seed (and differs across seeds)', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const { env } = syntheticProblem({ stepMode: 'tied' });
      return (await runEpisodes(env, make(), 25, seed)).map((s) => s.reward);
    };
    const a = await run(7);
    assert.deepEqual(await run(7), a);
    assert.notDeepEqual(await run(8), a);
  });

  it('getState/setState (through JSON) resumes training exactly', async () => {
    const p1 = syntheticProblem({ stepMode: 'tied' });
    const a = make();
    await runEpisodes(p1.env, a, 15, 4);
    const state = JSON.parse(JSON.stringify(a.getState())) as unknown;
    const b = make();
    b.setup(p1.env.agentContext(123));
    await b.setState(state);
    const p2 = syntheticProblem({ stepMode: 'tied' });
    const next = async (agent: ReinforceAgent, env: typeof p1.env): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 10; i++) out.push((await runEpisode(env, agent)).reward);
      return out;
    };
    assert.deepEqual(await next(b, p2.env), await next(a, p1.env));
  });

  it('greedy episodes (explore = false) do not change the policy', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    const a = make();
    await runEpisodes(env, a, 5, 1);
    const before = a.getState().params;
    await runEpisode(env, a, { explore: false });
    assert.deepEqual(a.getState().params, before);
  });

  it('does not leak tensors: per episode, on setState, and after dispose', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    const n0 = tf.memory().numTensors;
    const a = new ReinforceAgent();
    await runEpisodes(env, a, 3, 1);
    const n1 = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await runEpisode(env, a);
    await a.setState(a.getState());
    assert.equal(tf.memory().numTensors, n1);
    a.dispose();
    assert.equal(tf.memory().numTensors, n0);
  });

  /*
   * Learning on the synthetic problem: 12 layers, separable accuracy loss, latency <= 0.5x of W8A8,
   * tied bits 2..8, HAQ reward 0.1 x (acc - accFloat), which is negative. "% of optimal" is measured
   * on the gap between a random allocation and the optimum:
   *
   *   score(R) = (R - mean reward of random search) / (optimal reward - mean reward of random search)
   *
   * so 0 is what a random allocation gets on average and 1 is the exact optimum (Pareto DP).
   * A search's result is the best feasible allocation it found; reinforce must reach score >= 0.95
   * within 300 episodes, beat the best of random search's 300 episodes, and its final greedy policy
   * must itself score >= 0.9 (the agent learned, it did not stumble on a good allocation).
   */
  for (const seed of [1, 2, 3]) {
    it(`reaches >= 95% of the optimal reward within 300 episodes and beats random search (seed ${seed})`, async (t) => {
      const EPISODES = 300;
      const problem = (): ReturnType<typeof syntheticProblem> =>
        syntheticProblem({
          stepMode: 'tied',
          constraints: ['latency<=0.5x'],
          constraintMode: 'lower',
          evaluatorSeed: seed,
          seed,
        });
      const ref = problem();
      const opt = optimumForEnv(ref.env, ref.table, ref.evaluator)!;
      const optimal = haqReward(opt.accuracy, ref.evaluator.accFloat);

      const rand = await runEpisodes(problem().env, createAgent('random'), EPISODES, seed);
      const randMean = rand.reduce((s, e) => s + e.reward, 0) / rand.length;
      const randBest = maxFeasibleReward(rand);
      const score = (r: number): number => (r - randMean) / (optimal - randMean);

      const p = problem();
      const agent = make();
      const runs = await runEpisodes(p.env, agent, EPISODES, seed);
      const best = maxFeasibleReward(runs);
      const greedy = await runEpisode(p.env, agent, { explore: false });
      const figures = `optimum ${optimal.toFixed(5)}, random mean ${randMean.toFixed(5)} best ${randBest.toFixed(5)} (score ${score(randBest).toFixed(3)}), reinforce best ${best.toFixed(5)} (score ${score(best).toFixed(3)}), greedy policy ${greedy.reward.toFixed(5)} (score ${score(greedy.reward).toFixed(3)})`;
      t.diagnostic(`seed ${seed}: ${figures}`);
      assert.ok(best <= optimal + 1e-12, `nothing beats the exact optimum: ${figures}`);
      assert.ok(score(best) >= 0.95, figures);
      assert.ok(best > randBest, figures);
      assert.ok(greedy.feasible && score(greedy.reward) >= 0.9, figures);
    });
  }
});
