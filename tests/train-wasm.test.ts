/**
 * Training on the wasm backend: every kernel the project's layers need is present, losses go
 * down, and the losses equal the cpu backend's from the same initial weights and data.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend/index.js';
import { Rng } from '../src/util/rng.js';

const LOSS_TOLERANCE = 1e-3;

before(async () => {
  await initBackend('wasm');
});

interface Batch {
  xs: Float32Array;
  ys: Float32Array;
  shape: [number, number, number, number];
  classes: number;
}

/** A learnable batch: the class is the brightest quadrant of channel 0 (4 classes), or its index mod `classes`. */
function quadrantBatch(seed: number, n: number, side: number, channels: number, classes: number): Batch {
  const rng = new Rng(seed);
  const xs = new Float32Array(n * side * side * channels);
  const ys = new Float32Array(n * classes);
  const half = side >> 1;
  for (let i = 0; i < n; i++) {
    const bright = rng.int(4);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const quadrant = (y < half ? 0 : 2) + (x < half ? 0 : 1);
        for (let c = 0; c < channels; c++) {
          const base = c === 0 && quadrant === bright ? 1 : 0;
          xs[((i * side + y) * side + x) * channels + c] = base + 0.3 * rng.normal();
        }
      }
    }
    ys[i * classes + (bright % classes)] = 1;
  }
  return { xs, ys, shape: [n, side, side, channels], classes };
}

/** Builds a fresh model on the current backend. */
type Builder = () => tf.LayersModel;

/** Trains `steps` steps on `backend` from `weights`; returns the loss before each step. */
async function trainLosses(
  backend: 'wasm' | 'cpu',
  build: Builder,
  weights: Float32Array[],
  batch: Batch,
  optimizer: () => tf.Optimizer,
  steps: number,
): Promise<{ losses: number[]; changedTrainable: Array<{ name: string; changed: boolean }> }> {
  await tf.setBackend(backend);
  const model = build();
  const shapes = model.getWeights().map((w) => w.shape);
  model.setWeights(weights.map((w, i) => tf.tensor(w, shapes[i])));
  model.compile({ optimizer: optimizer(), loss: 'categoricalCrossentropy' });
  const xs = tf.tensor4d(batch.xs, batch.shape);
  const ys = tf.tensor2d(batch.ys, [batch.shape[0], batch.classes]);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = await model.trainOnBatch(xs, ys);
    losses.push(Array.isArray(loss) ? loss[0] : loss);
  }
  // model.weights and getWeights() list the same variables in the same order.
  const after = model.getWeights().map((w) => w.dataSync() as Float32Array);
  const changedTrainable = model.weights
    .map((w, i) => ({
      name: w.originalName,
      trainable: w.trainable,
      changed: after[i].some((v, j) => v !== weights[i][j]),
    }))
    .filter((w) => w.trainable)
    .map(({ name, changed }) => ({ name, changed }));
  tf.dispose([xs, ys]);
  model.dispose();
  return { losses, changedTrainable };
}

/** Initial weights drawn on the cpu backend (seeded initializers), as plain arrays. */
async function initialWeights(build: Builder): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  const model = build();
  const weights = model.getWeights().map((w) => (w.dataSync() as Float32Array).slice());
  model.dispose();
  return weights;
}

function assertSameLosses(wasm: number[], cpu: number[]): void {
  assert.equal(wasm.length, cpu.length);
  wasm.forEach((l, i) => {
    assert.ok(Number.isFinite(l), `step ${i}: loss ${l} on wasm`);
    assert.ok(Math.abs(l - cpu[i]) <= LOSS_TOLERANCE, `step ${i}: wasm loss ${l} vs cpu ${cpu[i]}`);
  });
}

const smallCnn: Builder = () => {
  const model = tf.sequential();
  model.add(
    tf.layers.conv2d({ inputShape: [12, 12, 3], filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }),
  );
  model.add(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2 }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 4, activation: 'softmax' }));
  return model;
};

test('a small CNN trains on wasm with the same losses as on cpu (5 SGD steps)', async () => {
  const batch = quadrantBatch(11, 16, 12, 3, 4);
  const weights = await initialWeights(smallCnn);
  const sgd = (): tf.Optimizer => tf.train.sgd(0.1);
  const wasm = await trainLosses('wasm', smallCnn, weights, batch, sgd, 5);
  const cpu = await trainLosses('cpu', smallCnn, weights, batch, sgd, 5);
  await tf.setBackend('wasm');
  assertSameLosses(wasm.losses, cpu.losses);
  assert.ok(
    wasm.losses[4] < wasm.losses[0],
    `loss did not go down on wasm: ${wasm.losses.map((l) => l.toFixed(4)).join(' ')}`,
  );
});

/**
 * Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, Max/Average/GlobalAverage
 * pooling, ReLU, ReLU6, Add, Concatenate, Dropout (seeded), ZeroPadding2D, softmax cross-entropy.
 */
const everything: Builder = () => {
  const input = tf.input({ shape: [16, 16, 3] });
  const padded = tf.layers.zeroPadding2d({ padding: 1 }).apply(input) as tf.SymbolicTensor;
  const conv = tf.layers.conv2d({ filters: 8, kernelSize: 3, useBias: false }).apply(padded) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization().apply(conv) as tf.SymbolicTensor;
  const relu = tf.layers.reLU().apply(bn) as tf.SymbolicTensor;
  const dw = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same' }).apply(relu) as tf.SymbolicTensor;
  const relu6 = tf.layers.reLU({ maxValue: 6 }).apply(dw) as tf.SymbolicTensor;
  const sep = tf.layers
    .separableConv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same' })
    .apply(relu) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([relu6, sep]) as tf.SymbolicTensor;
  const pooled = tf.layers.maxPooling2d({ poolSize: 2 }).apply(relu) as tf.SymbolicTensor;
  const cat = tf.layers.concatenate().apply([sum, pooled]) as tf.SymbolicTensor;
  const strided = tf.layers
    .conv2d({ filters: 12, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' })
    .apply(cat) as tf.SymbolicTensor;
  const avg = tf.layers.averagePooling2d({ poolSize: 2 }).apply(strided) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({}).apply(avg) as tf.SymbolicTensor;
  const drop = tf.layers.dropout({ rate: 0.25, seed: 7 }).apply(gap) as tf.SymbolicTensor;
  const hidden = tf.layers.dense({ units: 16, activation: 'relu' }).apply(drop) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 4, activation: 'softmax' }).apply(hidden) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
};

for (const [name, optimizer] of [
  ['Adam', (): tf.Optimizer => tf.train.adam(0.01)],
  ['SGD', (): tf.Optimizer => tf.train.sgd(0.1)],
] as const) {
  test(`a model with every supported layer type trains on wasm with ${name}, as on cpu`, async () => {
    const batch = quadrantBatch(23, 8, 16, 3, 4);
    const weights = await initialWeights(everything);
    const wasm = await trainLosses('wasm', everything, weights, batch, optimizer, 3);
    const cpu = await trainLosses('cpu', everything, weights, batch, optimizer, 3);
    await tf.setBackend('wasm');
    assertSameLosses(wasm.losses, cpu.losses);
    // Every trainable weight moved: each layer type got a gradient on wasm.
    assert.equal(wasm.changedTrainable.length, 14);
    for (const w of wasm.changedTrainable) assert.ok(w.changed, `weight ${w.name} did not change on wasm`);
  });
}
