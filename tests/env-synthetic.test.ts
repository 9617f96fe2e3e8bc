/** The synthetic problem: separable accuracy, monotone analytic costs, an exact optimum; and the env on the real simulator. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BitAllocationEnv } from '../envs/bit-allocation-env.js';
import {
  analyticCostTable,
  optimalUnderBudget,
  optimumForEnv,
  syntheticLayers,
  syntheticProblem,
  SyntheticEvaluator,
} from '../envs/synthetic.js';
import { buildCostTable, loadProfile } from '../src/hardware/index.js';
import { uniformBits, type BitConfig, type LayerBits } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';

describe('synthetic problem', () => {
  it('has 12 layers with consistent shapes and counts', () => {
    const layers = syntheticLayers();
    assert.equal(layers.length, 12);
    layers.forEach((l, i) => {
      assert.equal(l.index, i);
      assert.equal(l.inElements, l.inSize[0] * l.inSize[1] * l.inChannels);
      if (i > 0 && l.kind !== 'dense') assert.equal(l.inChannels, layers[i - 1].outChannels);
    });
    assert.equal(layers.filter((l) => l.kind === 'depthwise').length, 4);
  });

  it('analytic costs never rise when any layer loses a bit', () => {
    const layers = syntheticLayers();
    const t = analyticCostTable(layers, [2, 3, 4, 5, 6, 7, 8]);
    for (let i = 0; i < layers.length; i++) {
      for (let w = 3; w <= 8; w++) {
        for (let a = 2; a <= 8; a++) {
          const hi = t.layerCost(i, w, a);
          const lo = t.layerCost(i, w - 1, a);
          assert.ok(lo.latencyMs <= hi.latencyMs && lo.energyUj <= hi.energyUj && lo.weightBytes <= hi.weightBytes);
          const loA = t.layerCost(i, a, w - 1);
          const hiA = t.layerCost(i, a, w);
          assert.ok(loA.latencyMs <= hiA.latencyMs && loA.activationBytes <= hiA.activationBytes);
        }
      }
    }
  });

  it('accuracy loss is separable: changing one layer changes accuracy by that layer alone', () => {
    const layers = syntheticLayers();
    const ev = new SyntheticEvaluator({ layers, seed: 4 });
    const base = uniformBits(layers, 6, 6);
    const changed = base.map((b, i) => (i === 3 ? { wBits: 2, aBits: 5 } : b));
    const delta = ev.accuracyOf(base) - ev.accuracyOf(changed);
    assert.ok(Math.abs(delta - (ev.layerDrop(3, 2, 5) - ev.layerDrop(3, 6, 6))) < 1e-12);
    assert.ok(ev.accuracyOf(uniformBits(layers, 8, 8)) > ev.accuracyOf(uniformBits(layers, 4, 4)));
    assert.notDeepEqual(new SyntheticEvaluator({ layers, seed: 5 }).sensitivities, ev.sensitivities);
  });

  it('the Pareto DP finds the same optimum as brute force (tied, 5 layers, 7^5 allocations)', () => {
    const layers = syntheticLayers()
      .slice(5, 10)
      .map((l, i) => ({ ...l, index: i }));
    const choices = [2, 3, 4, 5, 6, 7, 8];
    const t = analyticCostTable(layers, choices);
    const ev = new SyntheticEvaluator({ layers, seed: 7 });
    const ref = t.costAllocation(uniformBits(layers, 8, 8)).latencyMs;
    for (const frac of [0.3, 0.45, 0.7]) {
      const limit = frac * ref;
      let best = -Infinity;
      const bits: BitConfig = layers.map(() => ({ wBits: 2, aBits: 2 }));
      const visit = (i: number): void => {
        if (i === layers.length) {
          if (t.costAllocation(bits).latencyMs <= limit) best = Math.max(best, ev.accuracyOf(bits));
          return;
        }
        for (const b of choices) {
          bits[i] = { wBits: b, aBits: b };
          visit(i + 1);
        }
      };
      visit(0);
      const opt = optimalUnderBudget({
        table: t,
        evaluator: ev,
        metric: 'latency',
        limit,
        choices: choices.map((b) => ({ wBits: b, aBits: b })),
      })!;
      assert.ok(Math.abs(opt.accuracy - best) < 1e-12, `budget ${frac}x: ${opt.accuracy} vs ${best}`);
      assert.ok(opt.cost.latencyMs <= limit * (1 + 1e-9));
    }
  });

  it('the DP optimum in joint mode beats (or ties) many random feasible allocations', () => {
    const { env, table, evaluator } = syntheticProblem({ stepMode: 'joint', constraints: ['energy<=0.4x'] });
    const opt = optimumForEnv(env, table, evaluator)!;
    assert.ok(env.isFeasible(opt.bits));
    const rng = new Rng(1);
    const choices = [2, 3, 4, 5, 6, 7, 8];
    for (let k = 0; k < 2000; k++) {
      const bits = env.layers.map(() => ({ wBits: rng.pick(choices), aBits: rng.pick(choices) }));
      if (env.isFeasible(bits)) assert.ok(evaluator.accuracyOf(bits) <= opt.accuracy + 1e-12);
    }
  });

  it('optimumForEnv keeps pinned layers at W8A8 and returns null for an impossible budget', () => {
    const { env, table, evaluator } = syntheticProblem({
      stepMode: 'tied',
      pinFirstLast: true,
      constraints: ['latency<=0.4x'],
    });
    const opt = optimumForEnv(env, table, evaluator)!;
    assert.deepEqual(opt.bits[0], { wBits: 8, aBits: 8 });
    assert.deepEqual(opt.bits[11], { wBits: 8, aBits: 8 });
    const impossible = syntheticProblem({ stepMode: 'tied', constraints: ['latency<=0.01x'] });
    assert.equal(optimumForEnv(impossible.env, impossible.table, impossible.evaluator), null);
  });

  it('the evaluator adds seeded noise only when asked', async () => {
    const layers = syntheticLayers();
    const bits = uniformBits(layers, 4, 4);
    const exact = new SyntheticEvaluator({ layers, seed: 1 });
    assert.equal((await exact.evaluate(bits)).accuracy, exact.accuracyOf(bits));
    const noisy = (): SyntheticEvaluator => new SyntheticEvaluator({ layers, seed: 1, noise: 0.01 });
    const a = noisy();
    const b = noisy();
    const ra = [(await a.evaluate(bits)).accuracy, (await a.evaluate(bits)).accuracy];
    assert.deepEqual(ra, [(await b.evaluate(bits)).accuracy, (await b.evaluate(bits)).accuracy]);
    assert.notEqual(ra[0], ra[1]);
  });
});

describe('env on the real simulator (bitfusion-45nm profile)', () => {
  it('masks, lowering and the exact optimum agree with the cost table', async () => {
    const layers = syntheticLayers();
    const bitChoices = [2, 3, 4, 5, 6, 7, 8];
    const table = buildCostTable(loadProfile('bitfusion-45nm'), layers, bitChoices);
    const evaluator = new SyntheticEvaluator({ layers, seed: 2 });
    const env = new BitAllocationEnv({
      layers,
      bitChoices,
      cost: (b) => table.costAllocation(b),
      evaluator,
      constraints: ['latency<=0.4x'],
      stepMode: 'two-step',
    });
    assert.equal(env.referenceCost.latencyMs, table.costAllocation(uniformBits(layers, 8, 8)).latencyMs);
    // Mask-following episodes end feasible without lowering.
    const rng = new Rng(3);
    for (let e = 0; e < 3; e++) {
      env.reset();
      let done = false;
      let last: LayerBits[] = [];
      while (!done) {
        const r = await env.step(env.actionSpace.sampleMasked(rng, env.actionMask()));
        done = r.terminated;
        if (done) {
          assert.ok(r.info.summary!.feasible);
          last = r.info.summary!.bits;
          assert.deepEqual(last, r.info.summary!.proposedBits);
        }
      }
    }
    // An over-budget proposal is lowered into the budget.
    const s = await env.evaluateAllocation(uniformBits(layers, 8, 8));
    assert.ok(s.feasible && s.relativeCost.latency <= 0.4 + 1e-9);
    // The exact optimum is feasible and at least as accurate as the lowered W8A8.
    const opt = optimumForEnv(env, table, evaluator)!;
    assert.ok(env.isFeasible(opt.bits));
    assert.ok(opt.accuracy >= s.accuracy - 1e-12);
  });
});
