/** Reward functions are the published formulas, and reward specs are validated. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  amedReward,
  computeReward,
  defaultRejectReward,
  haqReward,
  releqReward,
  resolveReward,
  weightedReward,
  REWARD_DEFAULTS,
  type RewardInput,
} from '../envs/rewards.js';
import { syntheticProblem } from '../envs/synthetic.js';
import { UserError } from '../src/errors.js';
import { uniformBits } from '../src/models/layer-info.js';

const base: RewardInput = {
  accuracy: 0.9,
  loss: 0.4,
  accFloat: 0.92,
  lossFloat: 0.3,
  relativeCost: { latency: 0.5, energy: 0.4, size: 0.3, peakMemory: 0.25 },
  quantState: 0.6,
  quantStateMin: 0.25,
};

const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

describe('rewards', () => {
  it('haq: 0.1 x (acc - accFloat)', () => {
    close(haqReward(0.9, 0.92), -0.002);
    close(computeReward(base, REWARD_DEFAULTS.haq), -0.002);
  });

  it('amed: -(alpha CE + beta latency/latency8), minus gamma x shortfall below the threshold', () => {
    const p = { alpha: 1, beta: 2, gamma: 10, accThreshold: null, maxAccDrop: 0.05 };
    close(amedReward(base, p), -(0.4 + 2 * 0.5)); // 0.9 is above 0.92 - 0.05
    close(amedReward({ ...base, accuracy: 0.85 }, p), -(0.4 + 1) - 10 * (0.87 - 0.85));
    close(amedReward({ ...base, accuracy: 0.85 }, { ...p, accThreshold: 0.8 }), -(0.4 + 1));
  });

  it('releq: -1 below the margin, else 2((1 - x^0.8) y^(1/y) - 0.5)', () => {
    const y = 0.9 / 0.92;
    const x = 0.6 - 0.25;
    close(releqReward(base, 0.9), 2 * ((1 - Math.pow(x, 0.8)) * Math.pow(y, 1 / y) - 0.5));
    assert.equal(releqReward({ ...base, accuracy: 0.5 }, 0.9), -1);
    // fewer bits (lower quantization state) at the same accuracy earn more
    assert.ok(releqReward({ ...base, quantState: 0.3 }, 0.9) > releqReward(base, 0.9));
  });

  it('weighted: acc - sum_k w_k relCost_k', () => {
    close(weightedReward(base, { latency: 0.1, energy: 0.2, size: 0, peakMemory: 1 }), 0.9 - (0.05 + 0.08 + 0.25));
  });

  it('resolveReward fills defaults and overrides named parameters', () => {
    assert.deepEqual(resolveReward('haq'), { kind: 'haq', scale: 0.1 });
    assert.deepEqual(resolveReward({ kind: 'amed', beta: 3 }), { ...REWARD_DEFAULTS.amed, beta: 3 });
    assert.deepEqual(resolveReward({ kind: 'weighted', weights: { energy: 1 } }), {
      kind: 'weighted',
      weights: { latency: 0, energy: 1, size: 0, peakMemory: 0 },
    });
  });

  it('resolveReward: unknown kind, unknown parameter or wrong type is a UserError naming the field', () => {
    assert.throws(
      () => resolveReward('accuracy' as 'haq'),
      (e: unknown) => e instanceof UserError && /haq\|amed\|releq\|weighted/.test(e.message),
    );
    assert.throws(
      () => resolveReward({ kind: 'haq', scael: 1 }),
      (e: unknown) => e instanceof UserError && /reward\.scael/.test(e.message) && /scale/.test(e.message),
    );
    assert.throws(() => resolveReward({ kind: 'amed', alpha: 'big' }), /reward\.alpha/);
    assert.throws(() => resolveReward({ kind: 'weighted', weights: { speed: 1 } }), /reward\.weights\.speed/);
  });

  it('the env gives 0 before the last step and the configured reward at it', async () => {
    for (const reward of ['haq', 'amed', 'releq', 'weighted'] as const) {
      const { env, evaluator, layers } = syntheticProblem({ stepMode: 'tied', reward, constraints: [] });
      env.reset();
      let last = 0;
      for (let t = 0; t < env.stepsPerEpisode; t++) {
        const r = await env.step(2); // 4 bits everywhere
        if (t < env.stepsPerEpisode - 1) assert.equal(r.reward, 0);
        else last = r.reward;
      }
      const bits = uniformBits(layers, 4, 4);
      const acc = evaluator.accuracyOf(bits);
      const s = await env.evaluateAllocation(bits);
      assert.equal(last, s.reward, reward);
      if (reward === 'haq') close(last, 0.1 * (acc - evaluator.accFloat));
    }
  });

  it('default reject rewards sit at or below the worst feasible reward at accuracy 0', () => {
    const zero = { ...base, accuracy: 0, loss: 2.3, relativeCost: { latency: 1, energy: 1, size: 1, peakMemory: 1 } };
    for (const kind of ['haq', 'amed', 'releq', 'weighted'] as const) {
      const p = resolveReward(kind);
      assert.ok(defaultRejectReward(p) <= computeReward({ ...zero, accFloat: 1 }, p), kind);
    }
  });
});
