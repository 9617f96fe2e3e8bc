/** BitAllocationEnv follows the Gymnasium contract: spaces, reset/step, masks, determinism. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Box, Discrete } from '../envs/spaces.js';
import { OBSERVATION_LAYOUT, OBSERVATION_SIZE } from '../envs/observation.js';
import { syntheticProblem } from '../envs/synthetic.js';
import type { BitAllocationEnv, StepResult } from '../envs/bit-allocation-env.js';
import { Rng } from '../src/util/rng.js';

/** Plays one episode choosing actions with `choose`; returns every step result. */
async function play(
  env: BitAllocationEnv,
  choose: (mask: Uint8Array | null, t: number) => number,
): Promise<StepResult[]> {
  env.reset();
  const out: StepResult[] = [];
  for (let t = 0; ; t++) {
    const r = await env.step(choose(env.actionMask(), t));
    out.push(r);
    if (r.terminated || r.truncated) return out;
  }
}

function firstAllowed(mask: Uint8Array | null, fromTop = false): number {
  if (!mask) return 0;
  const idx = [...mask.keys()].filter((i) => mask[i]);
  return fromTop ? idx[idx.length - 1] : idx[0];
}

describe('spaces', () => {
  it('Discrete samples lie in the space; non-integers and out-of-range values do not', () => {
    const d = new Discrete(7);
    const rng = new Rng(3);
    for (let i = 0; i < 200; i++) assert.ok(d.contains(d.sample(rng)));
    for (const bad of [-1, 7, 2.5, Number.NaN]) assert.equal(d.contains(bad), false, String(bad));
  });

  it('Discrete.sampleMasked only returns allowed indices', () => {
    const d = new Discrete(5);
    const rng = new Rng(1);
    const mask = Uint8Array.from([0, 1, 0, 1, 0]);
    for (let i = 0; i < 100; i++) assert.ok([1, 3].includes(d.sampleMasked(rng, mask)));
  });

  it('Box samples lie in the box; wrong length, out-of-bounds or NaN values do not', () => {
    const b = new Box([0, -1, 0], [1, 1, 8]);
    const rng = new Rng(5);
    for (let i = 0; i < 200; i++) assert.ok(b.contains(b.sample(rng)));
    assert.equal(b.contains(Float32Array.from([0, 0])), false);
    assert.equal(b.contains(Float32Array.from([0, -1.5, 0])), false);
    assert.equal(b.contains(Float32Array.from([0, 0, 9])), false);
    assert.equal(b.contains(Float32Array.from([Number.NaN, 0, 0])), false);
  });

  it("the env's spaces match its action choices and the documented observation layout", () => {
    const { env } = syntheticProblem({ stepMode: 'joint' });
    assert.equal(env.actionSpace.n, 49);
    assert.equal(env.actionChoices.length, 49);
    assert.deepEqual(env.actionChoices[0], { wBits: 2, aBits: 2 });
    assert.deepEqual(env.actionChoices[48], { wBits: 8, aBits: 8 });
    assert.equal(env.observationSpace.shape[0], OBSERVATION_SIZE);
    assert.equal(OBSERVATION_LAYOUT.length, 21);
    assert.equal(syntheticProblem({ stepMode: 'tied' }).env.actionSpace.n, 7);
    assert.equal(syntheticProblem({ stepMode: 'two-step' }).env.actionSpace.n, 7);
  });
});

describe('reset / step contract', () => {
  for (const stepMode of ['joint', 'tied', 'two-step'] as const) {
    it(`${stepMode}: terminated exactly at the last step, reward 0 before it, observations fixed-length and in the space`, async () => {
      const { env } = syntheticProblem({ stepMode });
      const expectedSteps = stepMode === 'two-step' ? 24 : 12;
      assert.equal(env.stepsPerEpisode, expectedSteps);
      const { observation } = env.reset(0);
      assert.ok(env.observationSpace.contains(observation));
      const rng = new Rng(2);
      const results = await play(env, (mask) => env.actionSpace.sampleMasked(rng, mask));
      assert.equal(results.length, expectedSteps);
      results.forEach((r, t) => {
        const last = t === expectedSteps - 1;
        assert.equal(r.terminated, last, `step ${t}`);
        assert.equal(r.truncated, false);
        assert.equal(r.observation.length, OBSERVATION_SIZE);
        assert.ok(env.observationSpace.contains(r.observation), `observation at step ${t} in the space`);
        if (!last) assert.equal(r.reward, 0);
        assert.equal(r.info.summary !== undefined, last);
      });
      const s = results[expectedSteps - 1].info.summary!;
      assert.equal(s.reward, results[expectedSteps - 1].reward);
      assert.equal(s.episode, 1);
      assert.equal(s.bits.length, 12);
    });
  }

  it('two-step mode alternates weight and activation steps over the layers', async () => {
    const { env } = syntheticProblem({ stepMode: 'two-step' });
    const results = await play(env, () => 0);
    assert.deepEqual(
      results.slice(0, 4).map((r) => [r.info.layerIndex, r.info.side]),
      [
        [0, 'weights'],
        [0, 'activations'],
        [1, 'weights'],
        [1, 'activations'],
      ],
    );
  });

  it('step after the episode ended throws, and so does step before reset', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    await assert.rejects(env.step(0), /before reset/);
    await play(env, () => 0);
    await assert.rejects(env.step(0), /after the episode ended/);
    env.reset();
    await env.step(0); // a new episode starts cleanly
  });

  it('an action outside the space throws', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    env.reset();
    await assert.rejects(env.step(7), RangeError);
    await assert.rejects(env.step(1.5), RangeError);
    await assert.rejects(env.step(-1), RangeError);
  });

  it('the evaluator is asked exactly once per episode', async () => {
    const { env, evaluator } = syntheticProblem({ stepMode: 'two-step' });
    await play(env, () => 0);
    assert.equal(evaluator.evaluations, 1);
    await play(env, () => 0);
    assert.equal(evaluator.evaluations, 2);
  });

  it('the same seed and actions give identical observations, rewards and summaries', async () => {
    const run = async (): Promise<StepResult[]> => {
      const { env } = syntheticProblem({ stepMode: 'joint', seed: 9 });
      const rng = new Rng(4);
      return play(env, (mask) => env.actionSpace.sampleMasked(rng, mask));
    };
    const a = await run();
    const b = await run();
    assert.deepEqual(
      a.map((r) => [Array.from(r.observation), r.reward]),
      b.map((r) => [Array.from(r.observation), r.reward]),
    );
    assert.deepEqual(a.at(-1)!.info.summary, b.at(-1)!.info.summary);
  });

  it('reset(seed) reseeds env.rng', () => {
    const { env } = syntheticProblem();
    env.reset(11);
    const x = env.actionSpace.sample(env.rng);
    const y = env.actionSpace.sample(env.rng);
    env.reset(11);
    assert.deepEqual([env.actionSpace.sample(env.rng), env.actionSpace.sample(env.rng)], [x, y]);
  });

  it('pinFirstLast keeps the first and last layer at W8A8 and gives them no step', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied', pinFirstLast: true, constraints: [] });
    assert.equal(env.stepsPerEpisode, 10);
    const results = await play(env, () => 0);
    assert.deepEqual(
      results.map((r) => r.info.layerIndex),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    const s = results.at(-1)!.info.summary!;
    assert.deepEqual(s.bits[0], { wBits: 8, aBits: 8 });
    assert.deepEqual(s.bits[11], { wBits: 8, aBits: 8 });
    assert.deepEqual(s.bits[5], { wBits: 2, aBits: 2 });
  });

  it('observation features: layer index, progress, previous action and budget left follow the layout', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied' });
    const at = (name: string): number => OBSERVATION_LAYOUT.indexOf(name);
    const o0 = env.reset().observation;
    assert.equal(o0[at('layerIndex')], 0);
    assert.equal(o0[at('progress')], 0);
    assert.equal(o0[at('prevAction')], 0);
    assert.equal(o0[at('isWeightStep')], 0.5);
    assert.equal(o0[at('left.energy')], 1, 'no energy budget: left = 1');
    const r = await env.step(6); // 8 bits on layer 0
    const o1 = r.observation;
    assert.ok(Math.abs(o1[at('layerIndex')] - 1 / 11) < 1e-6);
    assert.ok(Math.abs(o1[at('progress')] - 1 / 12) < 1e-6);
    assert.equal(o1[at('prevAction')], 1);
    assert.equal(o1[at('meanWBits')], 1);
    assert.ok(o1[at('used.latency')] > o0[at('used.latency')], 'more bits used more budget');
    assert.ok(o1[at('left.latency')] < o0[at('left.latency')], 'and left less of it');
  });
});

describe('action masks', () => {
  it('masked choices are exactly those whose cheapest completion breaks the budget', async () => {
    const { env } = syntheticProblem({ stepMode: 'joint', constraints: ['latency<=0.3x'] });
    env.reset();
    const decided = new Map<number, { wBits: number; aBits: number }>();
    // Take the widest allowed choice each step, checking the mask against the definition.
    for (let t = 0; t < env.stepsPerEpisode; t++) {
      const mask = env.actionMask()!;
      const layer = env.freeLayers[t];
      for (let i = 0; i < mask.length; i++) {
        const probe = env.layers.map(() => ({ wBits: 2, aBits: 2 }));
        // layers already decided are read back from the steps taken
        decided.forEach((b, j) => (probe[j] = b));
        probe[layer] = { ...env.actionChoices[i] };
        assert.equal(mask[i] === 1, env.isFeasible(probe), `step ${t} choice ${i}`);
      }
      const a = firstAllowed(mask, true);
      const r = await env.step(a);
      decided.set(layer, r.info.bits);
    }
  });

  it('following the mask always ends feasible, with no lowering needed', async () => {
    for (const stepMode of ['joint', 'tied', 'two-step'] as const) {
      const { env } = syntheticProblem({ stepMode, constraints: ['latency<=0.3x', 'size<=0.4x'] });
      const rng = new Rng(8);
      for (let e = 0; e < 5; e++) {
        const results = await play(env, (mask) => env.actionSpace.sampleMasked(rng, mask));
        const s = results.at(-1)!.info.summary!;
        assert.ok(s.feasible, `${stepMode} episode ${e}`);
        assert.deepEqual(s.bits, s.proposedBits, 'nothing lowered');
        assert.ok(results.every((r) => !r.info.maskViolated));
      }
    }
  });

  it('taking a masked action is reported in info.maskViolated (and lowered at the end)', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied', constraints: ['latency<=0.3x'] });
    const results = await play(env, () => 6); // always 8 bits
    assert.ok(results.some((r) => r.info.maskViolated));
    assert.ok(results.at(-1)!.info.summary!.feasible);
  });

  it('with strictMasks a masked action throws', async () => {
    const { env } = syntheticProblem({ stepMode: 'tied', constraints: ['latency<=0.3x'], strictMasks: true });
    env.reset();
    let threw = false;
    for (let t = 0; t < env.stepsPerEpisode && !threw; t++) {
      const mask = env.actionMask()!;
      if (mask[6] === 0) {
        await assert.rejects(env.step(6), /masked/);
        threw = true;
      } else await env.step(6);
    }
    assert.ok(threw, 'some step masks 8 bits under a 0.3x budget');
  });

  it('when even the minimum bits miss the budget, only the cheapest choice stays allowed', () => {
    const { env } = syntheticProblem({ stepMode: 'tied', constraints: ['latency<=0.01x'] });
    env.reset();
    assert.deepEqual(Array.from(env.actionMask()!), [1, 0, 0, 0, 0, 0, 0]);
  });

  it('masks: false gives null masks', () => {
    const { env } = syntheticProblem({ masks: false });
    env.reset();
    assert.equal(env.actionMask(), null);
  });
});
