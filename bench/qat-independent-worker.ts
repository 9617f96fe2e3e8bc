/**
 * A worker thread of `npm run bench -- qat`'s "independent" setting: its own tfjs engine (wasm)
 * trains its own copy of a zoo network on one thread, with no exchange with any other thread, so
 * that T of them at once show what T cores give when nothing is shared but the machine.
 * Messages: {kind:'init', model, batch} -> {kind:'ready'}; {kind:'run', steps, bits} -> {kind:'done', samples}.
 */
import { parentPort } from 'node:worker_threads';
import { initBackend } from '../src/backend/index.js';
import { buildNetwork, ZOO } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { createTrainer, type Trainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import { randomDataset } from './kit.js';

export type IndependentMessage =
  | { kind: 'init'; model: string; batch: number; classes: number; seed: number }
  | { kind: 'run'; steps: number; bits: number };
export type IndependentReply =
  { kind: 'ready' } | { kind: 'done'; samples: number } | { kind: 'error'; message: string };

let state: { net: QuantNetwork; trainer: Trainer } | null = null;

async function handle(m: IndependentMessage): Promise<IndependentReply> {
  if (m.kind === 'init') {
    await initBackend('wasm');
    const shape = (ZOO[m.model] as { inputShape: [number, number, number] }).inputShape;
    const ds = randomDataset(m.batch * 4, shape, new Rng(m.seed), m.classes);
    const net = buildNetwork(m.model, { inputShape: shape, numClasses: m.classes, seed: m.seed });
    const trainer = createTrainer(net, ds, {
      lr: 1e-3,
      batchSize: m.batch,
      optimizer: 'adam',
      seed: m.seed,
      threads: 1,
    });
    state = { net, trainer };
    return { kind: 'ready' };
  }
  if (!state) throw new Error('independent training worker used before init');
  state.net.setBits(uniformBits(state.net.layers, m.bits, m.bits));
  const s = await state.trainer.trainSteps(m.steps);
  return { kind: 'done', samples: s.samples };
}

parentPort?.on('message', (m: IndependentMessage) => {
  handle(m).then(
    (r) => parentPort?.postMessage(r),
    (e: unknown) => parentPort?.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) }),
  );
});
