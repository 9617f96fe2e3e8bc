/**
 * SSPS on a trained LeNet-5: the expected-cost term falls while the bit logits train with the weights, and the
 * frozen allocation meets the budget. The layer hook it uses (weightMix) applies to training passes only.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../src/backend/index.js';
import { isUserError } from '../src/errors.js';
import type { BitConfig } from '../src/models/layer-info.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { QDense } from '../src/quant/layers.js';
import { BitAllocationEnv, type StepMode } from '../envs/bit-allocation-env.js';
import { BITS, lenetContext, lenetEnv, trainedLenet, type TrainedLenet } from './lenet-fixture.js';
import type { AgentContext } from '../envs/types.js';
import { createAgent } from '../agents/index.js';
import { SspsAgent } from '../agents/ssps.js';

let fx: TrainedLenet;
let net: QuantNetwork;

before(async () => {
  fx = await trainedLenet(2);
  ({ net } = fx);
});

function makeEnv(constraints: string[], stepMode: StepMode = 'joint', pinFirstLast = false): BitAllocationEnv {
  return lenetEnv(fx, { constraints, stepMode, pinFirstLast, seed: 3 });
}

function context(env: BitAllocationEnv): AgentContext {
  return lenetContext(fx, env, 3);
}

const fmt = (bits: BitConfig): string => bits.map((b) => `${b.wBits}`).join(',');

test('ssps on lenet5 (latency<=0.32x): the expected-cost term falls and the frozen allocation meets the budget', async () => {
  const env = makeEnv(['latency<=0.32x']);
  const ctx = context(env);
  const agent = createAgent('ssps', { steps: 150, lambda: 2 }) as SspsAgent;
  await agent.setup(ctx);
  assert.equal(agent.exhausted(), false);
  const bits = await agent.propose();
  const r = agent.report()!;
  const ref = env.referenceCost.latencyMs;
  assert.ok(r.target !== null, 'a budget binds');
  const target = r.target;
  const first = r.curve[0];
  const last = r.curve[r.curve.length - 1];
  net.setBits(bits);
  const acc = (await fx.trainer.evaluate('val', { limit: 500 })).accuracy;
  console.log(
    `ssps: target ${(target / ref).toFixed(3)}x (${r.targetSource} ${r.metric}); E[latency] ${(first.expectedCost / ref).toFixed(3)}x -> ${(last.expectedCost / ref).toFixed(3)}x, ` +
      `penalty ${first.penalty.toFixed(3)} -> ${last.penalty.toFixed(3)}; allocation ${fmt(bits)} at ${(ctx.costOf(bits).latencyMs / ref).toFixed(3)}x; ` +
      `val accuracy (500) ${(100 * acc).toFixed(1)}%; freezes ${r.freezes.map((f) => `${f.name}@${f.step}=${f.bits}`).join(' ')}; ${r.seconds.toFixed(1)} s`,
  );
  console.log(
    `targets: ${r.targets.map((x) => `${x.metric} ${(x.target / (x.metric === 'latency' ? env.referenceCost.latencyMs : x.metric === 'energy' ? env.referenceCost.energyUj : env.referenceCost.sizeBytes)).toFixed(3)}x`).join(', ')}`,
  );
  assert.equal(r.metric, 'latency');
  assert.ok(target <= 0.32 * ref * (1 + 1e-9) && target > 0.3 * ref, `target ${target / ref}x`);
  assert.ok(first.penalty > 0, 'the budget binds at the start (uniform probabilities)');
  assert.ok(last.expectedCost < first.expectedCost, `E[cost] ${first.expectedCost} -> ${last.expectedCost}`);
  assert.ok(last.penalty < first.penalty);
  assert.ok(env.isFeasible(bits), `allocation ${fmt(bits)} is feasible`);
  assert.ok(ctx.costOf(bits).latencyMs <= 0.32 * ref * (1 + 1e-9));
  assert.ok(bits.every((b) => b.wBits === b.aBits && BITS.includes(b.wBits)));
  assert.equal(r.freezes.length, 5, 'every layer frozen');
  assert.deepEqual(new Set(r.freezes.map((f) => f.layer)).size, 5);
  assert.ok(acc > 0.5, `the network still classifies at the found allocation (${acc})`);
  assert.equal(agent.exhausted(), true);
  assert.ok(
    net.qlayers.every((q) => q.weightMix === null),
    'hooks removed',
  );
  // State round trip.
  const copy = new SspsAgent();
  await copy.setup(ctx);
  copy.setState(JSON.parse(JSON.stringify(agent.getState())));
  assert.equal(copy.exhausted(), true);
  assert.deepEqual(copy.report()!.allocation, bits);
});

test('ssps with declared limits and pinned ends: target from the declared limit, ends at 8 bits', async () => {
  const env = makeEnv(['latency<=0.45x'], 'tied', true);
  const ctx = {
    ...context(env),
    constraints: env.constraints.map((c) => ({ metric: c.metric, limit: c.limit })),
  } as AgentContext;
  const agent = new SspsAgent({ steps: 60, stepsPerFreeze: 15 });
  await agent.setup(ctx);
  const bits = await agent.propose();
  const r = agent.report()!;
  console.log(
    `ssps pinned: ${fmt(bits)}, E[latency] ${r.curve[0].expectedCost.toPrecision(4)} -> ${r.curve[r.curve.length - 1].expectedCost.toPrecision(4)} ms`,
  );
  assert.equal(r.targetSource, 'declared');
  assert.equal(r.target, env.constraints[0].limit);
  assert.deepEqual(bits[0], { wBits: 8, aBits: 8 });
  assert.deepEqual(bits[4], { wBits: 8, aBits: 8 });
  assert.deepEqual(
    r.freezes.map((f) => f.step),
    [15, 30, 45],
    'one freeze every 15 steps',
  );
  assert.ok(env.isFeasible(bits));
});

test('weightMix replaces the kernel in training passes only', () => {
  const layer = new QDense({ units: 2, useBias: false, wBits: 8, aBits: 32, seed: 1 });
  const x = tf.tensor2d([[1, 2, 3]]);
  layer.apply(x); // builds
  layer.weightMix = (l) => tf.mul(l.getKernel().read(), 0);
  const train = layer.apply(x, { training: true }) as tf.Tensor;
  const infer = layer.apply(x) as tf.Tensor;
  assert.deepEqual(Array.from(train.dataSync()), [0, 0]);
  assert.ok(Array.from(infer.dataSync()).some((v) => v !== 0));
  layer.weightMix = null;
  const restored = layer.apply(x, { training: true }) as tf.Tensor;
  assert.ok(Array.from(restored.dataSync()).some((v) => v !== 0));
  tf.dispose([x, train, infer, restored]);
});

test('ssps needs a real network and checks its options', () => {
  const env = makeEnv(['latency<=0.32x']);
  assert.throws(
    () => new SspsAgent().setup(env.agentContext(1)),
    (e: unknown) => isUserError(e) && /real network/.test((e as Error).message),
  );
  assert.throws(
    () => createAgent('ssps', { metric: 'peakMemory' }),
    (e: unknown) => isUserError(e) && /metric/.test((e as Error).message),
  );
  assert.throws(
    () => createAgent('ssps', { steps: 0 }),
    (e: unknown) => isUserError(e),
  );
  assert.throws(
    () => createAgent('ssps', { lr: 1 }),
    (e: unknown) => isUserError(e) && /unknown option/.test((e as Error).message),
  );
});
