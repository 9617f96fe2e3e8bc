/**
 * The sensitivity allocator: data-free inputs generated from a trained LeNet-5 are classified as their
 * targets; the allocation is the exact knapsack optimum of the measured sensitivities under the budget, found
 * from isFeasible alone; data-free and real-data allocations agree on most layers.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../src/backend/index.js';
import { isUserError } from '../src/errors.js';
import { buildCostTable, loadProfile } from '../src/hardware/index.js';
import { loadInventory } from '../src/models/index.js';
import type { BitConfig, LayerBits } from '../src/models/layer-info.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { generateInputs } from '../agents/kit/datafree.js';
import { BitAllocationEnv, type StepMode } from '../envs/bit-allocation-env.js';
import { BITS, lenetContext, lenetEnv, trainedLenet, type TrainedLenet } from './lenet-fixture.js';
import type { AgentContext } from '../envs/types.js';
import { createAgent } from '../agents/index.js';
import {
  SensitivityAgent,
  layerOptions,
  monotoneEnvelope,
  solveUnderBudgets,
  type SensitivityReport,
} from '../agents/sensitivity.js';
import { Rng } from '../src/util/rng.js';

const BUDGET = 0.35;

let fx: TrainedLenet;
let net: QuantNetwork;

before(async () => {
  fx = await trainedLenet(1);
  ({ net } = fx);
});

function makeEnv(stepMode: StepMode, pinFirstLast = false, constraints = [`latency<=${BUDGET}x`]): BitAllocationEnv {
  return lenetEnv(fx, { constraints, stepMode, pinFirstLast, seed: 1 });
}

function context(env: BitAllocationEnv): AgentContext {
  return lenetContext(fx, env, 1);
}

const fmt = (bits: BitConfig): string =>
  bits.map((b) => (b.wBits === b.aBits ? `${b.wBits}` : `${b.wBits}/${b.aBits}`)).join(',');

test('data-free inputs generated from a trained lenet5 are classified as their targets (>= 90%), within the data range', async () => {
  const before = net.getBits();
  const g = await generateInputs(net, { perClass: 32, seed: 7 });
  try {
    console.log(
      `generated ${g.split.labels.length} inputs in ${g.steps} steps (${g.seconds.toFixed(1)} s): float accuracy ${(100 * g.accuracy).toFixed(1)}%, loss ${g.loss.toFixed(3)}`,
    );
    assert.equal(g.split.labels.length, 320);
    assert.deepEqual(g.split.x.shape, [320, 28, 28, 1]);
    assert.ok(g.accuracy >= 0.9, `accuracy on generated inputs ${g.accuracy}`);
    const [lo, hi] = tf.tidy(() => [tf.min(g.split.x).dataSync()[0], tf.max(g.split.x).dataSync()[0]]);
    assert.ok(lo >= 0 && hi <= 1, `pixels in [${lo}, ${hi}]`);
    // Every class is a target.
    assert.deepEqual(
      [...new Set(g.split.labels)].sort((a, b) => a - b),
      [...Array(10).keys()],
    );
    assert.deepEqual(net.getBits(), before, 'the network bits are restored');
  } finally {
    g.split.x.dispose();
    g.split.y.dispose();
  }
});

/** Minimal total sensitivity over every tied allocation the env judges feasible (5 layers x 7 widths). */
function bruteForceOptimum(ctx: AgentContext, report: SensitivityReport): number {
  const round = report.rounds[report.rounds.length - 1];
  const n = ctx.layers.length;
  let best = Infinity;
  const pick = new Array<number>(n).fill(0);
  const visit = (l: number, value: number): void => {
    if (l === n) {
      const bits = pick.map((k, i) => report.options[i][k]);
      if (ctx.isFeasible(bits)) best = Math.min(best, value);
      return;
    }
    for (let k = 0; k < report.options[l].length; k++) {
      pick[l] = k;
      visit(l + 1, value + round.sensitivity[l][k]);
    }
  };
  visit(0, 0);
  return best;
}

test('sensitivity (tied widths): the allocation meets the budget, is the knapsack optimum, and free vs real data agree on most layers', async () => {
  const env = makeEnv('tied');
  const ctx = context(env);
  const proposals: Record<string, BitConfig> = {};
  for (const data of ['free', 'real'] as const) {
    const agent = new SensitivityAgent({ data });
    await agent.setup(ctx);
    const r = agent.report()!;
    const bits = agent.propose();
    proposals[data] = bits;
    const cost = ctx.costOf(bits);
    console.log(
      `${data}: inputs ${r.inputs}, accuracy on them ${(100 * r.inputAccuracy).toFixed(1)}%, ${r.rounds.length} round(s) of ${r.rounds[0].measurements} measurements, ` +
        `allocation ${fmt(bits)}, latency ${(cost.latencyMs / env.referenceCost.latencyMs).toFixed(3)}x, ${r.seconds.toFixed(1)} s`,
    );
    assert.ok(ctx.isFeasible(bits), `${data}: allocation ${fmt(bits)} is feasible`);
    assert.ok(cost.latencyMs <= BUDGET * env.referenceCost.latencyMs * (1 + 1e-9));
    assert.ok(bits.every((b) => b.wBits === b.aBits && BITS.includes(b.wBits)));
    if (data === 'free') assert.ok(r.inputAccuracy >= 0.9, `generated inputs accuracy ${r.inputAccuracy}`);
    // Sensitivities rise as widths narrow: in the raw measurements (before the monotone envelope, which is
    // non-increasing by construction) the narrowest width of every layer costs the most.
    const last = r.rounds[r.rounds.length - 1];
    console.log(
      `${data}: raw loss increase per layer (2..8 bits): ${last.raw.map((row) => row.map((v) => v.toFixed(4)).join(' ')).join(' | ')}`,
    );
    for (const row of last.raw) assert.equal(Math.max(...row), row[0], `raw ${row.join(', ')}`);
    assert.ok(
      r.rounds[0].sensitivity.some((row) => row[0] > 0.01),
      'some layer is measurably sensitive at 2 bits',
    );
    // Exact: no feasible tied allocation has a lower total sensitivity.
    const optimum = bruteForceOptimum(ctx, r);
    assert.ok(
      Math.abs(last.value - optimum) <= 1e-9 * Math.max(1, Math.abs(optimum)),
      `knapsack value ${last.value} vs exhaustive ${optimum}`,
    );
    // Proposals: the final allocation, then (if different) the earlier round's; then exhausted.
    for (let i = 1; i < r.proposals.length; i++) assert.ok(ctx.isFeasible(agent.propose()));
    assert.equal(agent.exhausted(), true);
  }
  const free = proposals['free'];
  const real = proposals['real'];
  const close = free.filter((b, i) => Math.abs(b.wBits - real[i].wBits) <= 1).length;
  const equal = free.filter((b, i) => b.wBits === real[i].wBits).length;
  console.log(`free ${fmt(free)} vs real ${fmt(real)}: ${close} of 5 layers within one bit, ${equal} equal`);
  assert.ok(close >= 3, `only ${close} of 5 layers within one bit`);
});

test('sensitivity in joint mode (separate weight/activation measurement, pinned ends): feasible, ends at W8A8', async () => {
  const env = makeEnv('joint', true, ['latency<=0.5x']);
  const ctx = context(env);
  const agent = createAgent('sensitivity', {
    data: 'real',
    measure: 'separate',
    rounds: 1,
    realSamples: 200,
  }) as SensitivityAgent;
  await agent.setup(ctx);
  const bits = agent.propose();
  const r = agent.report()!;
  console.log(`joint/separate, pinned ends: ${fmt(bits)} with ${r.rounds[0].measurements} measurements`);
  assert.equal(r.measure, 'separate');
  assert.equal(r.inputs, 200);
  assert.deepEqual(bits[0], { wBits: 8, aBits: 8 });
  assert.deepEqual(bits[4], { wBits: 8, aBits: 8 });
  assert.ok(ctx.isFeasible(bits));
  // 3 free layers x (6 other weight widths + 6 other activation widths) + the base
  assert.equal(r.rounds[0].measurements, 3 * 12 + 1);
  assert.equal(agent.exhausted(), true);
  // State round trip: a fresh agent restored from the state proposes the same.
  const copy = new SensitivityAgent({ data: 'real' });
  copy.setState(JSON.parse(JSON.stringify(agent.getState())));
  assert.equal(copy.exhausted(), true);
  assert.deepEqual(copy.report()!.proposals[0], bits);
});

test('solveUnderBudgets: probing isFeasible finds the same optimum as the declared limits, for a single budget', async () => {
  const layers = await loadInventory('lenet5', {});
  const t = buildCostTable(loadProfile('bitfusion-45nm'), layers, [...BITS, 32]);
  const rng = new Rng(5);
  for (const budget of ['latency<=0.4x', 'energy<=0.3x', 'size<=0.35x', 'latency<=0.6x']) {
    const env = new BitAllocationEnv({
      layers,
      bitChoices: BITS,
      cost: (b) => t.costAllocation(b),
      evaluator: {
        reference: async () => ({ accuracy: 1, loss: 0 }),
        evaluate: async () => ({ accuracy: 1, loss: 0 }),
      },
      constraints: [budget],
      stepMode: 'joint',
      seed: 1,
    });
    // without the env's declared limits, solveUnderBudgets has to probe isFeasible
    const ctx: AgentContext = { ...env.agentContext(1), constraints: undefined };
    const options = layerOptions(ctx);
    // Random sensitivities, decreasing in both widths.
    const values = options.map((opts) =>
      monotoneEnvelope(
        opts,
        opts.map((o) => rng.next() / (o.wBits * o.aBits)),
      ),
    );
    const probed = solveUnderBudgets(ctx, t, options, values);
    const c = env.constraints[0];
    const declared = solveUnderBudgets(
      { ...ctx, constraints: [{ metric: c.metric, limit: c.limit }] },
      t,
      options,
      values,
    );
    assert.equal(declared.source, 'declared');
    assert.equal(probed.source, 'probed');
    assert.ok(probed.feasible && ctx.isFeasible(probed.bits));
    assert.ok(
      Math.abs(probed.value - declared.value) <= 1e-9 * Math.max(1, declared.value),
      `${budget}: probed ${probed.value} vs declared ${declared.value}`,
    );
    assert.ok(probed.limit <= c.limit * (1 + 1e-9), 'the probed limit is a lower bound of the true one');
  }
});

test('solveUnderBudgets: no binding budget gives the per-layer minimum; an impossible budget is reported as none', async () => {
  const layers = await loadInventory('lenet5', {});
  const t = buildCostTable(loadProfile('bitfusion-45nm'), layers, [...BITS, 32]);
  const mk = (constraints: string[]): AgentContext => ({
    ...new BitAllocationEnv({
      layers,
      bitChoices: BITS,
      cost: (b) => t.costAllocation(b),
      evaluator: {
        reference: async () => ({ accuracy: 1, loss: 0 }),
        evaluate: async () => ({ accuracy: 1, loss: 0 }),
      },
      constraints,
      stepMode: 'tied',
      seed: 1,
    }).agentContext(1),
    constraints: undefined, // probe isFeasible rather than read the declared limits
  });
  const loose = mk(['latency<=3x']);
  const options = layerOptions(loose);
  const values = options.map((opts) => opts.map((o) => 1 / o.wBits));
  const free = solveUnderBudgets(loose, t, options, values);
  assert.equal(free.source, 'unconstrained');
  assert.ok(free.bits.every((b: LayerBits) => b.wBits === 8));
  const impossible = solveUnderBudgets(mk(['latency<=0.01x']), t, options, values);
  assert.equal(impossible.source, 'none');
  assert.equal(impossible.feasible, false);
  assert.ok(
    impossible.bits.every((b: LayerBits) => b.wBits === 2),
    'the cheapest allocation',
  );
});

test('monotoneEnvelope: non-negative, non-increasing in each width', () => {
  const opts: LayerBits[] = [2, 4, 8].flatMap((w) => [2, 4, 8].map((a) => ({ wBits: w, aBits: a })));
  const raw = [0.9, 0.3, 0.5, 0.2, -0.1, 0.05, 0.4, 0.01, -0.2];
  const env = monotoneEnvelope(opts, raw);
  opts.forEach((o, i) => {
    assert.ok(env[i] >= 0 && env[i] >= raw[i]);
    opts.forEach((p, k) => {
      if (p.wBits >= o.wBits && p.aBits >= o.aBits) assert.ok(env[i] >= env[k]);
    });
  });
  assert.equal(env[8], 0); // (8, 8): max(0, -0.2)
  assert.equal(env[4], 0.05); // (4, 4): the (4, 8) measurement
});

test('sensitivity needs a real network and checks its options', async () => {
  const env = makeEnv('tied');
  const agent = new SensitivityAgent();
  await assert.rejects(
    () => agent.setup(env.agentContext(1)),
    (e: unknown) => isUserError(e) && /real network/.test((e as Error).message),
  );
  assert.throws(
    () => createAgent('sensitivity', { data: 'imagined' }),
    (e: unknown) => isUserError(e) && /data/.test((e as Error).message),
  );
  assert.throws(
    () => createAgent('sensitivity', { rounds: 0 }),
    (e: unknown) => isUserError(e),
  );
  assert.throws(
    () => createAgent('sensitivity', { budget: 3 }),
    (e: unknown) => isUserError(e) && /unknown option/.test((e as Error).message),
  );
});
