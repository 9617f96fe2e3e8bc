/**
 * `npm run bench -- qat [--json] [--steps N] [--batch B] [--models a,b]`: training throughput
 * (samples/s) of every zoo model in float and with QAT at W4A4 (STE quantizers), in one process,
 * on synthetic random data of the input shape of the model's dataset. Float and QAT rounds
 * alternate on the same network and trainer (as the search switches bits), so load on the machine
 * hits both alike; each figure is total samples / total time over its rounds after a warm-up.
 * Target: QAT throughput >= 50% of float on every zoo model.
 */
import { initBackend, tf } from '../src/backend/index.js';
import type { Dataset, Split } from '../src/data/api.js';
import { buildNetwork, ZOO, ZOO_NAMES } from '../src/models/index.js';
import { uniformBits } from '../src/models/layer-info.js';
import { formatTable, printJson, printText } from '../src/cli/output.js';
import { createTrainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

const TARGET_RATIO = 0.5;
const QAT_BITS = 4;
const CLASSES = 10;

interface Row {
  model: string;
  inputShape: [number, number, number];
  batchSize: number;
  floatSamplesPerSec: number;
  qatSamplesPerSec: number;
  ratio: number;
  meetsTarget: boolean;
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

function randomSplit(n: number, shape: [number, number, number], rng: Rng): Split {
  const size = shape[0] * shape[1] * shape[2];
  const px = new Float32Array(n * size);
  for (let i = 0; i < px.length; i++) px[i] = rng.next();
  const labels = Int32Array.from({ length: n }, () => rng.int(CLASSES));
  return {
    x: tf.tensor4d(px, [n, ...shape]),
    y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES).toFloat()) as tf.Tensor2D,
    labels,
  };
}

async function measure(model: string, batch: number, steps: number, rounds: number): Promise<Row> {
  const shape = (ZOO[model] as { inputShape: [number, number, number] }).inputShape;
  const rng = new Rng(7);
  const train = randomSplit(batch * 4, shape, rng);
  const ds: Dataset = { name: 'synthetic', inputShape: shape, numClasses: CLASSES, train, val: train, test: train, source: 'random' };
  const net = buildNetwork(model, { inputShape: shape, numClasses: CLASSES, seed: 1 });
  const trainer = createTrainer(net, ds, { lr: 1e-3, batchSize: batch, optimizer: 'adam', seed: 1 });
  const floatBits = uniformBits(net.layers, 32, 32);
  const qatBits = uniformBits(net.layers, QAT_BITS, QAT_BITS);
  const time = { float: 0, qat: 0 };
  const samples = { float: 0, qat: 0 };
  // warm-up: kernels, optimizer slots and activation ranges at both settings
  for (const b of [floatBits, qatBits]) {
    net.setBits(b);
    await trainer.trainSteps(2);
  }
  for (let r = 0; r < rounds; r++) {
    for (const kind of ['float', 'qat'] as const) {
      net.setBits(kind === 'float' ? floatBits : qatBits);
      const s = await trainer.trainSteps(steps);
      time[kind] += s.seconds;
      samples[kind] += s.samples;
    }
  }
  trainer.dispose();
  net.model.dispose();
  train.x.dispose();
  train.y.dispose();
  const floatSamplesPerSec = samples.float / time.float;
  const qatSamplesPerSec = samples.qat / time.qat;
  const ratio = qatSamplesPerSec / floatSamplesPerSec;
  return { model, inputShape: shape, batchSize: batch, floatSamplesPerSec, qatSamplesPerSec, ratio, meetsTarget: ratio >= TARGET_RATIO };
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const steps = Number(flag(argv, '--steps') ?? 5);
  const rounds = Number(flag(argv, '--rounds') ?? 3);
  const batch = Number(flag(argv, '--batch') ?? 64);
  const models = (flag(argv, '--models') ?? ZOO_NAMES.join(',')).split(',');
  for (const m of models) if (!ZOO[m]) throw new Error(`unknown zoo model '${m}' (${ZOO_NAMES.join(', ')})`);
  const backend = await initBackend((flag(argv, '--backend') ?? 'wasm') as 'wasm' | 'cpu' | 'auto');
  const rows: Row[] = [];
  for (const m of models) {
    const r = await measure(m, batch, steps, rounds);
    rows.push(r);
    if (!json) process.stderr.write(`${m}: float ${r.floatSamplesPerSec.toFixed(0)} samples/s, W4A4 ${r.qatSamplesPerSec.toFixed(0)} samples/s\n`);
  }
  const summary = {
    suite: 'qat',
    backend: backend.name,
    qatBits: `W${QAT_BITS}A${QAT_BITS}`,
    stepsPerRound: steps,
    rounds,
    targetRatio: TARGET_RATIO,
    allMeetTarget: rows.every((r) => r.meetsTarget),
    results: rows,
  };
  if (json) {
    printJson(summary);
    return;
  }
  printText(
    formatTable(
      ['model', 'input', 'float samples/s', 'W4A4 samples/s', 'QAT/float', `>= ${TARGET_RATIO}`],
      rows.map((r) => [r.model, r.inputShape.join('x'), r.floatSamplesPerSec.toFixed(0), r.qatSamplesPerSec.toFixed(0), r.ratio.toFixed(2), r.meetsTarget ? 'yes' : 'NO']),
    ) + `\nbackend ${backend.name}, batch ${batch}, ${rounds} alternating rounds of ${steps} steps per setting`,
  );
}
