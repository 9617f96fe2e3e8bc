/** Budget strings and the three constraint modes (lower, penalty, reject). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseConstraint,
  parseConstraints,
  relativeExcess,
  resolveConstraints,
  CONSTRAINT_GRAMMAR,
} from '../envs/constraints.js';
import { haqReward } from '../envs/rewards.js';
import { syntheticProblem } from '../envs/synthetic.js';
import type { EpisodeSummary } from '../envs/types.js';
import { UserError } from '../src/errors.js';
import { uniformBits, type BitConfig } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';

describe('budget strings', () => {
  const cases: [string, object][] = [
    ['latency<=0.5x', { metric: 'latency', kind: 'relative', value: 0.5 }],
    ['energy<=0.4x', { metric: 'energy', kind: 'relative', value: 0.4 }],
    ['size<=200KB', { metric: 'size', kind: 'absolute', value: 200 * 1024 }],
    ['size<=0.25x', { metric: 'size', kind: 'relative', value: 0.25 }],
    ['peak-memory<=320KB', { metric: 'peakMemory', kind: 'absolute', value: 320 * 1024 }],
    ['latency<=2ms', { metric: 'latency', kind: 'absolute', value: 2 }],
    ['latency<=500us', { metric: 'latency', kind: 'absolute', value: 0.5 }],
    ['energy<=50uJ', { metric: 'energy', kind: 'absolute', value: 50 }],
    ['energy<=2mJ', { metric: 'energy', kind: 'absolute', value: 2000 }],
    [' Latency <= 40 % ', { metric: 'latency', kind: 'relative', value: 0.4 }],
    ['size<=1.5MB', { metric: 'size', kind: 'absolute', value: 1.5 * 1024 * 1024 }],
  ];
  for (const [text, want] of cases) {
    it(`parses '${text}'`, () => {
      const c = parseConstraint(text);
      assert.deepEqual({ metric: c.metric, kind: c.kind, value: c.value }, want);
    });
  }

  for (const bad of [
    'latency<0.5x',
    'latency<=',
    'speed<=0.5x',
    'latency<=0.5',
    'latency<=2KB',
    'size<=2ms',
    'size<=-1KB',
    'size<=0x',
    '',
  ]) {
    it(`rejects '${bad}' with a UserError stating the grammar`, () => {
      assert.throws(
        () => parseConstraint(bad, { file: 'exp.json', field: '$.constraints[0]' }),
        (e: unknown) =>
          e instanceof UserError &&
          e.message.includes('exp.json $.constraints[0]') &&
          e.message.includes(CONSTRAINT_GRAMMAR) &&
          e.details.expected === CONSTRAINT_GRAMMAR,
      );
    });
  }

  it('a list names the offending entry', () => {
    assert.throws(
      () => parseConstraints(['latency<=0.5x', 'size<=lots'], { field: '--constraint' }),
      /--constraint\[1\]/,
    );
  });

  it('the env reports a bad budget string as a UserError', () => {
    assert.throws(() => syntheticProblem({ constraints: ['latency<=fast'] }), UserError);
  });

  it('relative limits resolve against the W8A8 cost; absolute ones stay', () => {
    const { env, table, layers } = syntheticProblem({ constraints: ['latency<=0.5x', 'size<=100KB'] });
    const ref = table.costAllocation(uniformBits(layers, 8, 8));
    assert.equal(env.constraints[0].limit, 0.5 * ref.latencyMs);
    assert.equal(env.constraints[1].limit, 100 * 1024);
  });
});

/** Random allocations over the bit choices (masks are not consulted: budgets are broken often). */
function randomAllocations(n: number, layers: number, seed: number, tied = false): BitConfig[] {
  const rng = new Rng(seed);
  const choices = [2, 3, 4, 5, 6, 7, 8];
  return Array.from({ length: n }, () =>
    Array.from({ length: layers }, () => {
      const w = rng.pick(choices);
      return { wBits: w, aBits: tied ? w : rng.pick(choices) };
    }),
  );
}

describe('constraint modes', () => {
  const budget = ['latency<=0.35x', 'peak-memory<=0.5x'];

  it('lower: every final allocation is feasible, never above the proposal, and feasible proposals are untouched', async () => {
    const { env, layers } = syntheticProblem({ constraints: budget, constraintMode: 'lower' });
    let lowered = 0;
    for (const bits of randomAllocations(40, layers.length, 1)) {
      const s = await env.evaluateAllocation(bits);
      assert.ok(s.feasible);
      s.bits.forEach((b, i) => {
        assert.ok(b.wBits <= bits[i].wBits && b.aBits <= bits[i].aBits);
        assert.ok(b.wBits >= 2 && b.aBits >= 2);
      });
      if (env.isFeasible(bits)) assert.deepEqual(s.bits, bits);
      else lowered++;
    }
    assert.ok(lowered > 10, `most random proposals break the budget (${lowered}/40)`);
  });

  it("lower: HAQ's walk lowers the last layer's activation bits first, then its weight bits", () => {
    const { env, layers } = syntheticProblem({ constraints: [] });
    // A budget that the W8A8 network misses by a hair: one decrement on the last layer fixes it.
    const full = uniformBits(layers, 8, 8);
    const cost = env.costOf(full);
    const { env: tight } = syntheticProblem({ constraints: [`latency<=${cost.latencyMs * 0.99999}ms`] });
    const out = tight.lowerToBudget(full);
    assert.deepEqual(out.slice(0, 11), full.slice(0, 11));
    assert.deepEqual(out[11], { wBits: 8, aBits: 7 });
  });

  it('lower: in tied mode weights and activations go down together', async () => {
    const { env, layers } = syntheticProblem({ stepMode: 'tied', constraints: budget });
    for (const bits of randomAllocations(10, layers.length, 2, true)) {
      const s = await env.evaluateAllocation(bits);
      assert.ok(s.feasible);
      assert.ok(s.bits.every((b) => b.wBits === b.aBits));
    }
  });

  it('reject: infeasible allocations are not evaluated and get the fixed low reward; feasible ones are evaluated', async () => {
    const { env, layers, evaluator } = syntheticProblem({
      constraints: budget,
      constraintMode: 'reject',
      rejectReward: -5,
    });
    const summaries: EpisodeSummary[] = [];
    for (const bits of randomAllocations(40, layers.length, 3)) summaries.push(await env.evaluateAllocation(bits));
    const feasible = summaries.filter((s) => s.feasible);
    const rejected = summaries.filter((s) => !s.feasible);
    assert.ok(feasible.length > 0 && rejected.length > 0);
    assert.equal(evaluator.evaluations, feasible.length, 'only feasible allocations cost an evaluation');
    for (const s of rejected) {
      assert.equal(s.evaluated, false);
      assert.equal(s.reward, -5);
      assert.ok(Number.isNaN(s.accuracy));
      assert.deepEqual(s.bits, s.proposedBits);
    }
    for (const s of feasible) {
      assert.equal(s.evaluated, true);
      assert.ok(s.reward > -5);
    }
  });

  it('reject: the default reject reward is below every feasible reward (haq)', async () => {
    const { env, layers } = syntheticProblem({ constraints: budget, constraintMode: 'reject' });
    const rewards = { feasible: [] as number[], rejected: [] as number[] };
    for (const bits of randomAllocations(30, layers.length, 4)) {
      const s = await env.evaluateAllocation(bits);
      (s.feasible ? rewards.feasible : rewards.rejected).push(s.reward);
    }
    assert.ok(Math.max(...rewards.rejected) < Math.min(...rewards.feasible));
  });

  it('penalty: reward = base reward - penaltyScale x sum of relative excesses; feasible ones pay nothing', async () => {
    const { env, layers, evaluator } = syntheticProblem({
      constraints: budget,
      constraintMode: 'penalty',
      penaltyScale: 2,
    });
    let penalised = 0;
    for (const bits of randomAllocations(30, layers.length, 5)) {
      const s = await env.evaluateAllocation(bits);
      assert.deepEqual(s.bits, bits, 'penalty mode evaluates the allocation as chosen');
      const excess = relativeExcess(s.cost, env.constraints);
      const base = haqReward(evaluator.accuracyOf(bits), evaluator.accFloat);
      assert.ok(Math.abs(s.reward - (base - 2 * excess)) < 1e-12);
      assert.equal(s.penalty, 2 * excess);
      if (s.feasible) assert.equal(excess, 0);
      else {
        assert.ok(excess > 0);
        penalised++;
      }
    }
    assert.ok(penalised > 0);
  });

  it('relativeExcess sums max(0, cost / limit - 1) over the budgets', () => {
    const { table, layers } = syntheticProblem();
    const ref = table.costAllocation(uniformBits(layers, 8, 8));
    const cs = resolveConstraints(parseConstraints(['latency<=0.5x', 'size<=0.25x', 'energy<=2x']), ref);
    assert.ok(Math.abs(relativeExcess(ref, cs) - (1 / 0.5 - 1 + 1 / 0.25 - 1)) < 1e-9);
  });

  it('the summary carries costs relative to the W8A8 network', async () => {
    const { env, layers } = syntheticProblem({ constraints: [] });
    const s8 = await env.evaluateAllocation(uniformBits(layers, 8, 8));
    assert.deepEqual(s8.relativeCost, { latency: 1, energy: 1, size: 1, peakMemory: 1 });
    const s4 = await env.evaluateAllocation(uniformBits(layers, 4, 4));
    assert.ok(s4.relativeCost.latency < 1 && s4.relativeCost.size < 1 && s4.relativeCost.peakMemory === 0.5);
  });

  it('evaluateAllocation refuses bits outside the choices and wrong lengths', async () => {
    const { env, layers } = syntheticProblem({ bitChoices: [2, 4, 8] });
    await assert.rejects(env.evaluateAllocation(uniformBits(layers, 3, 3)), /not among the choices/);
    await assert.rejects(env.evaluateAllocation(uniformBits(layers.slice(1), 4, 4)), /needs 12 entries/);
  });
});
