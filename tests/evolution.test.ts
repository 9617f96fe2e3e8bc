import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { EvolutionAgent, bitOps, type EvolutionOptions } from '../agents/evolution.js';
import { createAgent } from '../agents/index.js';
import { QeScorer, defaultStageWeights, quantizedStd, splitStages, scoredLayers } from '../agents/qe-score.js';
import { BitAllocationEnv } from '../envs/bit-allocation-env.js';
import { SyntheticEvaluator, analyticCostTable, syntheticLayers } from '../envs/synthetic.js';
import type { AgentContext } from '../envs/types.js';
import { initBackend } from '../src/backend/index.js';
import { isUserError } from '../src/errors.js';
import { log } from '../src/log.js';
import { solveMultipleChoiceKnapsack } from '../src/solvers/knapsack.js';
import { loadInventory } from '../src/models/index.js';
import { uniformBits, VALID_BITS, type BitConfig, type LayerInfo } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';

let resnet20: LayerInfo[] = [];
before(async () => {
  await initBackend('wasm');
  resnet20 = await loadInventory('resnet20');
});

/** Std of round(clip(z, -2^(b-1), 2^(b-1))) estimated from seeded samples. */
function monteCarloStd(sigma: number, bits: number, samples: number, seed: number): number {
  const rng = new Rng(seed);
  const lim = 2 ** (bits - 1);
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < samples; i++) {
    const q = Math.round(Math.min(lim, Math.max(-lim, sigma * rng.normal())));
    sum += q;
    sumSq += q * q;
  }
  const mean = sum / samples;
  return Math.sqrt(sumSq / samples - mean * mean);
}

function envFor(layers: readonly LayerInfo[], constraints: string[], seed = 3): BitAllocationEnv {
  const bitChoices = [2, 3, 4, 5, 6, 7, 8];
  const table = analyticCostTable(layers, bitChoices);
  return new BitAllocationEnv({
    layers,
    bitChoices,
    cost: (b) => table.costAllocation(b),
    evaluator: new SyntheticEvaluator({ layers, seed }),
    constraints,
    constraintMode: 'reject',
  });
}

function randomAllocation(rng: Rng, n: number, widths: readonly number[]): BitConfig {
  return Array.from({ length: n }, () => ({ wBits: rng.pick(widths), aBits: rng.pick(widths) }));
}

// ---------------------------------------------------------------------------------------------
// QE-Score
// ---------------------------------------------------------------------------------------------
test('quantized std matches a seeded Monte Carlo estimate within 1% (sigma 4 / 2 bits, sigma 8 / 4 bits)', () => {
  for (const [sigma, bits, expected] of [
    [4, 2, 1.739],
    [8, 4, 5.755],
  ] as const) {
    const exact = quantizedStd(sigma, bits);
    const mc = monteCarloStd(sigma, bits, 400_000, 17 + bits);
    assert.ok(Math.abs(exact - mc) / mc < 0.01, `sigma ${sigma}, ${bits} bits: exact ${exact} vs Monte Carlo ${mc}`);
    assert.ok(Math.abs(exact - expected) / expected < 0.001, `sigma ${sigma}, ${bits} bits: ${exact} vs ${expected}`);
  }
});

test("quantized std equals EMQ's published lookup table", () => {
  // Values from the STD_BITS_LUT of EMQ's code (alibaba/lightweight-neural-architecture-search).
  const lut: [number, number, number][] = [
    [1, 2, 1.0089193649965897],
    [2, 3, 1.9441392428674842],
    [3, 4, 2.9936671208664336],
    [4, 3, 2.8903940182483057],
    [4, 5, 4.010172973403067],
    [4, 8, 4.010403138505321],
    [5, 2, 1.7924496624207404],
    [5, 3, 3.112192524683381],
  ];
  for (const [sigma, bits, v] of lut)
    assert.ok(Math.abs(quantizedStd(sigma, bits) - v) < 1e-9, `sd(${sigma}, ${bits})`);
});

test('quantized std never decreases with bits, and float (32) equals the unclipped rounded std', () => {
  for (const sigma of [0.5, 1, 4, 5, 8]) {
    let prev = 0;
    for (const b of VALID_BITS) {
      const v = quantizedStd(sigma, b);
      assert.ok(v >= prev, `sigma ${sigma}: sd at ${b} bits ${v} < ${prev}`);
      prev = v;
    }
    // Rounding to step 1 adds about 1/12 of variance once the clip range is not reached.
    if (sigma >= 1) assert.ok(Math.abs(quantizedStd(sigma, 32) ** 2 - sigma ** 2 - 1 / 12) < 1e-3);
  }
});

test('raising any layer\u2019s weight or activation bits never lowers the QE-Score', () => {
  const rng = new Rng(5);
  for (const layers of [resnet20, syntheticLayers()]) {
    const scorers = [new QeScorer(layers), new QeScorer(layers, { includeDense: true })];
    const stages = scorers[0].stages.length;
    scorers.push(new QeScorer(layers, { stageWeights: Array.from({ length: stages }, () => rng.next() * 3) }));
    for (const scorer of scorers) {
      for (let trial = 0; trial < 20; trial++) {
        const bits = randomAllocation(rng, layers.length, VALID_BITS);
        const base = scorer.score(bits);
        for (let l = 0; l < layers.length; l++) {
          for (const side of ['wBits', 'aBits'] as const) {
            const cur = bits[l][side];
            const up = VALID_BITS[VALID_BITS.indexOf(cur) + 1];
            if (up === undefined) continue;
            const raised = bits.map((b) => ({ ...b }));
            raised[l][side] = up;
            const s = scorer.score(raised);
            assert.ok(s >= base - 1e-12, `layer ${l} ${side} ${cur}->${up}: ${s} < ${base}`);
          }
        }
      }
    }
  }
});

test('QE-Score: the additive fast path equals the cumulative stage sums', () => {
  const rng = new Rng(6);
  const scorer = new QeScorer(resnet20);
  for (let i = 0; i < 10; i++) {
    const bits = randomAllocation(rng, resnet20.length, [2, 3, 4, 5, 6, 7, 8]);
    const b = scorer.breakdown(bits);
    assert.ok(Math.abs(b.total - scorer.score(bits)) < 1e-9 * Math.abs(b.total));
  }
});

test('QE-Score splits ResNet-20 into 3 stages at the downsampling layers and leaves the classifier out', () => {
  const scored = scoredLayers(resnet20);
  assert.equal(scored.length, resnet20.length - 1);
  const stages = splitStages(resnet20, scored);
  assert.deepEqual(
    stages.map((s) => resnet20[s[0]].outSize[0]),
    [32, 16, 8],
  );
  assert.deepEqual(defaultStageWeights(3), [0, 1, 6]);
  assert.deepEqual(defaultStageWeights(5), [0, 0, 1, 1, 6]);
  assert.deepEqual(
    new QeScorer(resnet20).stages.map((s) => s.outChannels),
    [16, 32, 64],
  );
});

test('QE-Score rejects stage weights of the wrong length with a UserError naming the field', () => {
  assert.throws(
    () => new QeScorer(resnet20, { stageWeights: [0, 0, 1, 1, 6], source: { field: 'agentOptions' } }),
    (e: unknown) =>
      isUserError(e) && /agentOptions\.stageWeights/.test(e.message) && /3 finite numbers/.test(e.message),
  );
});

// ---------------------------------------------------------------------------------------------
// Evolution
// ---------------------------------------------------------------------------------------------
test('QE-Score evolution: 10,000 candidates on ResNet-20 under two budgets: within budget, near the exact optimum (timed)', (t) => {
  const constraints = ['latency<=0.4x', 'size<=0.45x'];
  const env = envFor(resnet20, constraints);
  const ctx = env.agentContext(11);
  const agent = new EvolutionAgent({ candidates: 10000 });
  agent.setup(ctx);
  agent.search();
  const stats = agent.searchStats();
  const best = agent.propose();
  t.diagnostic(
    `QE-Score search: ${stats.candidates} candidates (${stats.unique} distinct, ${stats.feasible} within budget) in ${stats.searchMs.toFixed(0)} ms`,
  );
  assert.equal(stats.candidates, 10000);
  assert.ok(ctx.isFeasible(best));
  assert.ok(agent.exhausted());

  // The score and both budgets are additive over layers here, so the exact optimum over the same
  // space ({3,4,5,6}^2 per inner layer, ends at W8A8) is a multiple-choice knapsack.
  const scorer = new QeScorer(resnet20);
  const table = analyticCostTable(resnet20, [2, 3, 4, 5, 6, 7, 8]);
  const n = resnet20.length;
  const base: BitConfig = resnet20.map((_, i) =>
    i === 0 || i === n - 1 ? { wBits: 8, aBits: 8 } : { wBits: 3, aBits: 3 },
  );
  const s0 = scorer.score(base);
  const groups = resnet20.map((_, l) => {
    const pairs =
      l === 0 || l === n - 1
        ? [{ wBits: 8, aBits: 8 }]
        : [3, 4, 5, 6].flatMap((w) => [3, 4, 5, 6].map((a) => ({ wBits: w, aBits: a })));
    return pairs.map((b) => {
      const c = table.layerCost(l, b.wBits, b.aBits);
      const bits = base.map((x) => ({ ...x }));
      bits[l] = b;
      return { bits: b, cost: [c.latencyMs, c.weightBytes], value: -(scorer.score(bits) - s0) };
    });
  });
  const budgets = [0.4 * env.referenceCost.latencyMs, 0.45 * env.referenceCost.sizeBytes];
  const exact = solveMultipleChoiceKnapsack({ groups, budgets });
  assert.equal(exact.status, 'optimal');
  if (exact.status !== 'optimal') return;
  const optimum = exact.choice.map((k, l) => groups[l][k].bits);
  assert.ok(ctx.isFeasible(optimum));
  const bestScore = scorer.score(best);
  const optimumScore = scorer.score(optimum);
  let uniformBest = -Infinity;
  for (const w of [3, 4, 5, 6]) {
    const u = base.map((b, i) => (i === 0 || i === n - 1 ? b : { wBits: w, aBits: w }));
    if (ctx.isFeasible(u)) uniformBest = Math.max(uniformBest, scorer.score(u));
  }
  t.diagnostic(
    `best QE-Score ${bestScore.toFixed(3)}, exact optimum ${optimumScore.toFixed(3)} (knapsack, ${exact.nodes} nodes), best uniform ${uniformBest.toFixed(3)}`,
  );
  assert.ok(bestScore <= optimumScore + 1e-9, 'no allocation within budget beats the exact optimum');
  // The search closes most of the gap between the best uniform allocation and the optimum.
  assert.ok(
    bestScore - uniformBest > 0.9 * (optimumScore - uniformBest),
    `${bestScore} vs uniform ${uniformBest}, optimum ${optimumScore}`,
  );
});

test('evolution never proposes an allocation over budget (both fitness modes, tight budgets, BitOps budget)', async () => {
  const layers = syntheticLayers();
  const env = envFor(layers, ['latency<=0.35x', 'energy<=0.45x', 'size<=0.45x']);
  const macs = layers.reduce((s, l) => s + l.macs, 0);
  for (const fitness of ['qe-score', 'accuracy'] as const) {
    const agent = new EvolutionAgent({ fitness, candidates: 2000, population: 32, topK: 8, maxBitOpsRelative: 0.3 });
    const ctx = env.agentContext(4);
    agent.setup(ctx);
    for (let e = 0; e < 80 && !agent.exhausted(); e++) {
      const bits = agent.propose();
      assert.ok(ctx.isFeasible(bits), `${fitness}: proposal ${e} over budget`);
      assert.ok(bitOps(layers, bits) <= 0.3 * macs, `${fitness}: proposal ${e} over the BitOps budget`);
      await agent.endEpisode(await env.evaluateAllocation(bits));
    }
    for (const m of agent.ranked()) assert.ok(ctx.isFeasible(m.bits));
  }
});

test('evolution with nothing within budget proposes the lowest-cost allocation and warns', () => {
  const layers = syntheticLayers();
  const env = envFor(layers, ['size<=0.01x']);
  const warnings: string[] = [];
  const original = log.warn;
  (log as { warn: unknown }).warn = (msg: string) => {
    warnings.push(msg);
    return log;
  };
  try {
    const agent = new EvolutionAgent({ candidates: 300, population: 16 });
    agent.setup(env.agentContext(1));
    const bits = agent.propose();
    const cheapest = uniformBits(layers, 3, 3);
    cheapest[0] = { wBits: 8, aBits: 8 };
    cheapest[cheapest.length - 1] = { wBits: 8, aBits: 8 };
    assert.deepEqual(bits, cheapest);
  } finally {
    (log as { warn: unknown }).warn = original;
  }
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /no allocation .* meets every budget/);
});

test('accuracy-mode evolution finds a better allocation than its initial candidates', async () => {
  const layers = syntheticLayers();
  const env = envFor(layers, ['latency<=0.5x'], 9);
  const agent = new EvolutionAgent({ fitness: 'accuracy', population: 16, mutationProb: 0.2 });
  agent.setup(env.agentContext(2));
  let initialBest = -Infinity;
  for (let e = 0; e < 200; e++) {
    const s = await env.evaluateAllocation(agent.propose());
    if (e < 16) initialBest = Math.max(initialBest, s.accuracy);
    await agent.endEpisode(s);
  }
  const best = agent.ranked()[0];
  assert.ok(best.fitness > initialBest, `best ${best.fitness} vs initial ${initialBest}`);
});

test('evolution is deterministic and resumes identically from a JSON checkpoint', async () => {
  const layers = syntheticLayers();
  const run = async (
    opts: Partial<EvolutionOptions>,
    episodes: number,
    checkpointAt: number | null,
  ): Promise<string[]> => {
    const env = envFor(layers, ['latency<=0.5x']);
    let agent = new EvolutionAgent(opts);
    agent.setup(env.agentContext(7));
    const out: string[] = [];
    for (let e = 0; e < episodes; e++) {
      if (e === checkpointAt) {
        const state = JSON.parse(JSON.stringify(agent.getState())) as unknown;
        agent = new EvolutionAgent(opts);
        agent.setup(env.agentContext(7));
        agent.setState(state);
      }
      const bits = agent.propose();
      out.push(JSON.stringify(bits));
      await agent.endEpisode(await env.evaluateAllocation(bits));
    }
    return out;
  };
  const acc: Partial<EvolutionOptions> = { fitness: 'accuracy', population: 8, initialCandidates: 4 };
  const a = await run(acc, 30, null);
  assert.deepEqual(await run(acc, 30, null), a);
  assert.deepEqual(await run(acc, 30, 17), a);
  const qe: Partial<EvolutionOptions> = { candidates: 500, population: 16, topK: 3 };
  const q = await run(qe, 3, null);
  assert.deepEqual(await run(qe, 3, 1), q);
  assert.equal(new Set(q).size, 3);
});

test('evolution options: invalid values and bit choices outside the env are UserErrors naming the field', () => {
  assert.throws(
    () => new EvolutionAgent({ mutationProb: 1.5 }),
    (e: unknown) => isUserError(e) && /agentOptions\.mutationProb/.test(e.message),
  );
  assert.throws(
    () => new EvolutionAgent({ fitness: 'loss' as never }),
    (e: unknown) => isUserError(e) && /qe-score\|accuracy/.test(e.message),
  );
  const agent = new EvolutionAgent({ bitChoices: [1, 4] });
  const ctx: AgentContext = envFor(syntheticLayers(), []).agentContext(0);
  assert.throws(
    () => agent.setup(ctx),
    (e: unknown) => isUserError(e) && /agentOptions\.bitChoices/.test(e.message),
  );
});

test("the registry builds 'evolution' with its defaults and checks option names", () => {
  const agent = createAgent('evolution', { fitness: 'accuracy', population: 8 });
  assert.equal(agent.name, 'evolution');
  assert.equal(agent.kind, 'allocation');
  assert.equal((agent as EvolutionAgent).options.population, 8);
  assert.equal((agent as EvolutionAgent).options.mutationProb, 0.9);
  assert.throws(
    () => createAgent('evolution', { populaton: 8 }),
    (e: unknown) => isUserError(e) && /agentOptions\.populaton/.test(e.message),
  );
});
