/**
 * Masks that remove dominated choices (agents/kit/dominance.ts) and the `maskDominated` option of ppo and
 * reinforce: on a device whose cost moves in 2/4/8-bit bricks, 3 bits cost what 4 bits cost, so every choice
 * with a 3 is dominated; with the option on the agents never take one, with it off they do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentContext, EpisodeSummary, StepAgent } from '../envs/types.js';
import { syntheticLayers } from '../envs/synthetic.js';
import { OBSERVATION_SIZE } from '../envs/observation.js';
import { createAgent } from '../agents/index.js';
import { bestUniformAction, combineMasks, dominanceMasks } from '../agents/kit/dominance.js';
import { initBackend } from '../src/backend/index.js';
import type { AllocationCost } from '../src/hardware/api.js';
import type { BitConfig } from '../src/models/layer-info.js';

const BITS = [2, 3, 4, 8];
const brick = (b: number): number => (b <= 2 ? 2 : b <= 4 ? 4 : 8);

function context(over: Partial<AgentContext> = {}): AgentContext {
  const layers = syntheticLayers();
  const actionChoices = BITS.flatMap((w) => BITS.map((a) => ({ wBits: w, aBits: a })));
  const costOf = (bits: BitConfig): AllocationCost => {
    const latencyMs = bits.reduce((s, b, i) => s + (layers[i].macs * brick(b.wBits) * brick(b.aBits)) / 64e6, 0);
    return { latencyMs, energyUj: latencyMs, sizeBytes: 1, peakMemoryBytes: 1 } as AllocationCost;
  };
  return {
    layers,
    numActions: actionChoices.length,
    observationSize: OBSERVATION_SIZE,
    stepsPerEpisode: layers.length,
    bitChoices: BITS,
    costOf,
    isFeasible: () => true,
    seed: 7,
    constraints: [{ metric: 'latency', limit: 1 }],
    stepMode: 'joint',
    actionChoices,
    ...over,
  };
}

const isDominated = (c: { wBits: number; aBits: number }): boolean => c.wBits === 3 || c.aBits === 3;

test('a choice is removed exactly when another has as many bits on both sides at no more cost', () => {
  const ctx = context();
  const masks = dominanceMasks(ctx);
  assert.ok(masks);
  assert.equal(masks.length, ctx.layers.length);
  const allowed = ctx.actionChoices!.filter((c) => !isDominated(c)).map((c) => `${c.wBits}/${c.aBits}`);
  for (const m of masks) {
    assert.deepEqual(
      ctx.actionChoices!.filter((_, i) => m[i] === 1).map((c) => `${c.wBits}/${c.aBits}`),
      allowed,
    );
  }
  assert.equal(allowed.length, 9);
});

test('no masks without an additive budget or in two-step step mode; pinned first and last layers are skipped', () => {
  assert.equal(dominanceMasks(context({ constraints: [] })), null);
  assert.equal(dominanceMasks(context({ constraints: [{ metric: 'peakMemory', limit: 1 }] })), null);
  assert.equal(dominanceMasks(context({ stepMode: 'two-step' })), null);
  const n = syntheticLayers().length;
  assert.equal(dominanceMasks(context({ stepsPerEpisode: n - 2 }))?.length, n - 2);
  assert.equal(dominanceMasks(context({ stepsPerEpisode: 3 })), null);
});

test('masks combine with the env mask, and the env mask alone is kept when together they leave nothing', () => {
  const dom = Uint8Array.from([1, 0, 1, 0]);
  assert.deepEqual(Array.from(combineMasks(Uint8Array.from([1, 1, 0, 0]), dom)!), [1, 0, 0, 0]);
  assert.deepEqual(Array.from(combineMasks(null, dom)!), [1, 0, 1, 0]);
  const env = Uint8Array.from([0, 1, 0, 1]);
  assert.equal(combineMasks(env, dom), env);
  assert.equal(combineMasks(env, undefined), env);
});

/** Runs `episodes` episodes of a step agent on the context with constant observations; returns the actions taken. */
async function actions(agent: StepAgent, ctx: AgentContext, episodes: number): Promise<number[]> {
  await agent.setup(ctx);
  const taken: number[] = [];
  const obs = new Float32Array(ctx.observationSize).fill(0.5);
  for (let e = 0; e < episodes; e++) {
    for (let t = 0; t < ctx.stepsPerEpisode; t++) {
      obs[0] = t / ctx.stepsPerEpisode;
      const a = await agent.act(obs, null, true);
      taken.push(a);
      const done = t === ctx.stepsPerEpisode - 1;
      agent.observe({
        observation: obs,
        action: a,
        reward: done ? (e % 3) * 0.1 : 0,
        nextObservation: obs,
        done,
        mask: null,
      });
    }
    await agent.endEpisode({} as EpisodeSummary);
  }
  agent.dispose?.();
  return taken;
}

for (const name of ['ppo', 'reinforce']) {
  test(`${name} with maskDominated never takes a dominated choice; without it it does`, async () => {
    await initBackend('wasm');
    const ctx = context();
    const on = await actions(createAgent(name, { maskDominated: true }) as StepAgent, ctx, 20);
    assert.equal(on.filter((a) => isDominated(ctx.actionChoices![a])).length, 0);
    const off = await actions(createAgent(name, {}) as StepAgent, ctx, 20);
    assert.ok(off.filter((a) => isDominated(ctx.actionChoices![a])).length > 0);
  });
}

test('bestUniformAction is the widest uniform choice that fits; warmStartLogit makes it the first greedy choice', async () => {
  await initBackend('wasm');
  const fits = (bits: BitConfig): boolean => bits.every((b) => b.wBits <= 4 && b.aBits <= 4);
  const ctx = context({ isFeasible: fits });
  const i = bestUniformAction(ctx);
  assert.ok(i !== null);
  assert.deepEqual(ctx.actionChoices![i], { wBits: 4, aBits: 4 });
  assert.equal(bestUniformAction(context({ isFeasible: () => false })), null);
  const obs = new Float32Array(ctx.observationSize).fill(0.5);
  for (const name of ['ppo', 'reinforce']) {
    const warm = createAgent(name, { warmStartLogit: 3 }) as StepAgent;
    await warm.setup(ctx);
    assert.equal(await warm.act(obs, null, false), i, name);
    warm.dispose?.();
    const cold = createAgent(name, {}) as StepAgent;
    await cold.setup(ctx);
    assert.notEqual(await cold.act(obs, null, false), i, `${name} without a warm start`);
    cold.dispose?.();
  }
});
