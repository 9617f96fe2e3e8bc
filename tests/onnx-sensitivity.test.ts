/** The sensitivity agent's probes through onnxruntime (the search's engine) give tfjs's values and allocation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SensitivityAgent } from '../agents/sensitivity.js';
import type { Split } from '../src/data/api.js';
import { evaluateWith, OrtEvaluator } from '../src/search/ort-evaluator.js';
import { calibrateNetwork } from '../src/train/trainer.js';
import { lenetContext, lenetEnv, trainedLenet } from './lenet-fixture.js';

test('sensitivity probes on onnxruntime equal tfjs: same losses within float tolerance, same ranking and allocation', async () => {
  const fx = await trainedLenet(2);
  const { net } = fx;
  net.setBits(net.layers.map(() => ({ wBits: 8, aBits: 8 })));
  calibrateNetwork(net, fx.dataset.train);
  const ev = await OrtEvaluator.create(net, { threads: 2 });
  assert.ok(ev, 'onnxruntime-node loads');
  const env = lenetEnv(fx, { constraints: ['latency<=0.35x'], stepMode: 'joint', pinFirstLast: false, seed: 1 });
  const options = { data: 'real' as const, realSamples: 400, rounds: 1, measure: 'separate' as const };

  const tfjsCtx = lenetContext(fx, env, 1);
  const a = new SensitivityAgent(options);
  await a.setup(tfjsCtx);

  const engines: string[] = [];
  const base = lenetContext(fx, env, 1);
  const ortCtx = {
    ...base,
    training: {
      ...base.training!,
      evaluate: async (split: Split) => {
        const r = await evaluateWith(ev, net, split, { batchSize: split.labels.length });
        engines.push(r.engine);
        return r;
      },
    },
  };
  const b = new SensitivityAgent(options);
  await b.setup(ortCtx);
  await ev.dispose();

  const ra = a.report()!;
  const rb = b.report()!;
  assert.ok(engines.length > 10, `${engines.length} probes`);
  assert.ok(
    engines.every((e) => e === 'onnxruntime'),
    `every probe on onnxruntime: ${[...new Set(engines)].join(',')}`,
  );
  assert.ok(Math.abs(ra.inputLoss - rb.inputLoss) <= 1e-4 * Math.max(1, ra.inputLoss));
  assert.equal(ra.inputAccuracy, rb.inputAccuracy);
  const la = ra.rounds[0];
  const lb = rb.rounds[0];
  assert.ok(Math.abs(la.baseLoss - lb.baseLoss) <= 1e-4 * Math.max(1, la.baseLoss));
  let worst = 0;
  let spread = 0;
  la.raw.forEach((row, l) =>
    row.forEach((v, k) => {
      worst = Math.max(worst, Math.abs(v - lb.raw[l][k]));
      spread = Math.max(spread, Math.abs(v));
    }),
  );
  console.log(
    `sensitivity raw values: largest ${spread.toFixed(4)}, largest tfjs/onnxruntime difference ${worst.toExponential(2)}`,
  );
  assert.ok(spread > 0.01, 'some option is measurably sensitive');
  assert.ok(worst <= 1e-3 * Math.max(1, spread), `raw sensitivities differ by up to ${worst}`);
  // the per-layer ranking of the options at their narrowest width, and the knapsack's allocation
  const rank = (raw: number[][]): number[] =>
    raw
      .map((row, l) => [Math.max(...row), l] as const)
      .sort((x, y) => y[0] - x[0])
      .map((x) => x[1]);
  assert.deepEqual(rank(lb.raw), rank(la.raw));
  assert.deepEqual(rb.proposals, ra.proposals);
  fx.trainer.dispose();
  net.model.dispose();
});
