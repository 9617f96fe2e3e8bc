/**
 * A training worker of DataParallel (parallel.ts): its own tfjs engine on the wasm backend with this
 * project's kernels, the network rebuilt from its topology. Per step it copies the weights from the
 * shared buffer, runs the forward and backward pass of its shard and writes the gradients (and the
 * non-trainable weights its forward pass updated) into its region of the results buffer.
 */
import { parentPort } from 'node:worker_threads';
import { initBackend, tf } from '../backend/index.js';
import { QuantNetwork } from '../quant/network.js';
import { crossEntropy } from './trainer.js';
import { shardGradients, type InitMessage, type StepMessage, type WorkerReply } from './parallel.js';

interface State {
  init: InitMessage;
  model: tf.LayersModel;
  net: QuantNetwork;
  weights: Float32Array;
  results: Float32Array;
}

let state: State | null = null;

async function init(msg: InitMessage): Promise<void> {
  await initBackend('wasm');
  const model = await tf.models.modelFromJSON({
    modelTopology: JSON.parse(msg.topology) as tf.io.ModelJSON['modelTopology'],
  });
  if (model.weights.length !== msg.layout.offsets.length)
    throw new Error(`rebuilt network has ${model.weights.length} weights, expected ${msg.layout.offsets.length}`);
  state = {
    init: msg,
    model,
    net: new QuantNetwork(model),
    weights: new Float32Array(msg.weights),
    results: new Float32Array(msg.results),
  };
}

function step(msg: StepMessage): { weightedLoss: number; correct: number } {
  const s = state;
  if (!s) throw new Error('training worker used before init');
  const { layout, slot, probabilities } = s.init;
  const weights = s.model.weights;
  tf.tidy(() => {
    weights.forEach((w, i) => {
      const off = layout.offsets[i];
      w.write(tf.tensor(s.weights.slice(off, off + layout.sizes[i]), layout.shapes[i]));
    });
  });
  if (msg.bits) s.net.setBits(msg.bits);
  const vars = msg.trainable.map((i) => weights[i].read() as tf.Variable);
  const base = slot * layout.total;
  const r = tf.tidy(() => {
    const xb = tf.tensor(msg.x, msg.xShape);
    const yb = tf.tensor(msg.y, msg.yShape);
    const out = shardGradients(s.model, vars, xb, yb, msg.weight, (y, o) => crossEntropy(y, o, probabilities));
    msg.trainable.forEach((wi, j) => s.results.set(out.grads[j].dataSync(), base + layout.offsets[wi]));
    return { weightedLoss: out.weightedLoss, correct: out.correct };
  });
  const trainable = new Set(msg.trainable);
  weights.forEach((w, i) => {
    if (!trainable.has(i)) s.results.set(w.read().dataSync(), base + layout.offsets[i]);
  });
  return r;
}

parentPort?.on('message', (msg: InitMessage | StepMessage) => {
  const reply = (m: WorkerReply): void => parentPort?.postMessage(m);
  const failed = (e: unknown): void =>
    reply({ kind: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  if (msg.kind === 'init') {
    init(msg).then(() => reply({ kind: 'ready' }), failed);
    return;
  }
  try {
    const t0 = performance.now();
    const r = step(msg);
    reply({ kind: 'done', ...r, ms: performance.now() - t0 });
  } catch (e) {
    failed(e);
  }
});
