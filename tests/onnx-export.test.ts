import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { loadDataset } from '../src/data/index.js';
import type { Split } from '../src/data/api.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import type { BitConfig } from '../src/models/layer-info.js';
import { exportOnnx } from '../src/onnx/export.js';
import { decodeModel, encodeModel, floatTensor, type ModelProto, type NodeProto } from '../src/onnx/proto.js';
import { createSession, loadOrt } from '../src/onnx/runtime.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { calibrateNetwork, createTrainer } from '../src/train/trainer.js';
import { logitStep } from './logit-step.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bitalloc-onnx-export-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Top-1 agreement and max |logit diff| between the tfjs network and onnxruntime on the exported file. */
async function compare(
  net: QuantNetwork,
  file: string,
  split: Split,
  n: number,
): Promise<{ agree: number; maxDiff: number }> {
  const ort = (await loadOrt())!;
  const x = tf.slice(split.x, [0, 0, 0, 0], [n, -1, -1, -1]);
  const ours = tf.tidy(() => (net.model.predict(x) as tf.Tensor).dataSync());
  const nchw = tf.tidy(() => Float32Array.from(tf.transpose(x, [0, 3, 1, 2]).dataSync()));
  const [h, w, c] = x.shape.slice(1) as [number, number, number];
  x.dispose();
  const session = await createSession(ort, fs.readFileSync(file), 2);
  const r = await session.run({ input: new ort.Tensor('float32', nchw, [n, c, h, w]) });
  await session.release();
  const ref = (r['logits'] as unknown as { data: Float32Array }).data;
  const k = ref.length / n;
  let agree = 0;
  let maxDiff = 0;
  for (let i = 0; i < n; i++) {
    let a = 0;
    let b = 0;
    for (let j = 0; j < k; j++) {
      maxDiff = Math.max(maxDiff, Math.abs(ours[i * k + j] - ref[i * k + j]));
      if (ours[i * k + j] > ours[i * k + a]) a = j;
      if (ref[i * k + j] > ref[i * k + b]) b = j;
    }
    if (a === b) agree++;
  }
  return { agree: agree / n, maxDiff };
}

/**
 * A reference executor for QONNX: each `Quant` node (qonnx.custom_op.general) rewritten into the
 * standard ops of its definition, y = scale * (Clip(Round(x / scale + zp), qmin, qmax) - zp), with
 * qmin / qmax from bitwidth, signed and narrow (signed: [-2^(b-1) (+1 if narrow), 2^(b-1) - 1];
 * unsigned: [0, 2^b - 1 (-1 if narrow)]) and rounding_mode ROUND (half to even, as ONNX Round), so
 * that onnxruntime can run the file.
 */
function qonnxToStandard(m: ModelProto): ModelProto {
  const g = m.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name, t] as const));
  const scalar = (name: string): number => new Float32Array(Uint8Array.from(inits.get(name)!.rawData!).buffer)[0];
  const extra = [...(g.initializer ?? [])];
  const nodes: NodeProto[] = [];
  let k = 0;
  for (const nd of g.node ?? []) {
    if (nd.opType !== 'Quant') {
      nodes.push(nd);
      continue;
    }
    const [x, scale, zp, bw] = nd.input as [string, string, string, string];
    const at = new Map((nd.attribute ?? []).map((a) => [a.name, a] as const));
    const signed = Number(at.get('signed')?.i ?? 1) === 1;
    const narrow = Number(at.get('narrow')?.i ?? 0) === 1;
    assert.equal(new TextDecoder().decode(at.get('rounding_mode')?.s), 'ROUND');
    const b = scalar(bw);
    const qmin = signed ? -(2 ** (b - 1)) + (narrow ? 1 : 0) : 0;
    const qmax = signed ? 2 ** (b - 1) - 1 : 2 ** b - 1 - (narrow ? 1 : 0);
    const c = (v: number): string => {
      const t = floatTensor(`qref_c${k++}`, [], [v]);
      extra.push(t);
      return t.name as string;
    };
    const out = (nd.output ?? [])[0];
    const t = (op: string, ins: string[]): string => {
      const o = `qref_${k++}`;
      nodes.push({ opType: op, input: ins, output: [o], name: o });
      return o;
    };
    const r = t('Round', [t('Add', [t('Div', [x, scale]), zp])]);
    nodes.push({
      opType: 'Mul',
      input: [t('Sub', [t('Clip', [r, c(qmin), c(qmax)]), zp]), scale],
      output: [out],
      name: `qref_${k++}`,
    });
  }
  return {
    ...m,
    opsetImport: (m.opsetImport ?? []).filter((o) => (o.domain ?? '') === ''),
    graph: { ...g, node: nodes, initializer: extra },
  };
}

function allocations(net: QuantNetwork): [string, BitConfig][] {
  return [
    ['W8A8', net.layers.map(() => ({ wBits: 8, aBits: 8 }))],
    ['W4A4', net.layers.map(() => ({ wBits: 4, aBits: 4 }))],
    ['mixed', net.layers.map((_, i) => ({ wBits: [2, 4, 8, 6][i % 4], aBits: [8, 3, 4, 5][i % 4] }))],
  ];
}

test('onnxruntime runs the QDQ export of zoo models at uniform and mixed allocations like the simulated network', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const ds = await loadDataset('mnist', { seed: 1 });
  for (const [name, steps] of [
    ['lenet5', 60],
    ['cnn-small', 20],
    ['mobilenet-tiny', 20],
  ] as const) {
    const net = await loadModel(name, { inputShape: ds.inputShape, numClasses: ds.numClasses, seed: 1 });
    const trainer = createTrainer(net, ds, { lr: 3e-3, batchSize: 64, optimizer: 'adam', seed: 1 });
    await trainer.trainSteps(steps);
    for (const [label, bits] of allocations(net)) {
      net.setBits(bits);
      calibrateNetwork(net, ds.train, { batches: 1 });
      const s = exportOnnx(net, path.join(tmp, `${name}-${label}`), 'onnx');
      const m = decodeModel(fs.readFileSync(s.file));
      const meta = new Map((m.metadataProps ?? []).map((p) => [p.key, p.value] as const));
      assert.deepEqual(
        JSON.parse(meta.get('bitalloc.allocation') ?? '[]').map((l: { wBits: number; aBits: number }) => [
          l.wBits,
          l.aBits,
        ]),
        bits.map((b) => [b.wBits, b.aBits]),
      );
      const ops = new Set((m.graph?.node ?? []).map((nd) => nd.opType));
      assert.ok(ops.has('QuantizeLinear') && ops.has('DequantizeLinear'), `${name} ${label}: QDQ nodes`);
      const { agree, maxDiff } = await compare(net, s.file, ds.test, 1000);
      const step = logitStep(net);
      console.log(
        `${name} ${label}: top-1 agreement ${(100 * agree).toFixed(2)}%, max |logit diff| ${maxDiff.toExponential(2)}, one step ${step.toExponential(2)}`,
      );
      assert.ok(agree >= 0.999, `${name} ${label}: top-1 agreement ${agree}`);
      assert.ok(maxDiff <= step, `${name} ${label}: max |logit diff| ${maxDiff} > one step ${step}`);
    }
    trainer.dispose();
    net.model.dispose();
  }
});

test('an imported ONNX network exports to QDQ that onnxruntime runs like the simulated network', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const file = path.join(process.cwd(), 'tests', 'fixtures', 'onnx', 'resnet18_narrow.onnx');
  const net = await loadModel(file);
  // calibration and test images: smooth random fields (a stand-in for photographs)
  const n = 600;
  const x = tf.tidy(() =>
    tf.image.resizeBilinear(tf.randomUniform<tf.Rank.R4>([n, 8, 8, 3], 0, 1, 'float32', 5), [32, 32]),
  );
  const split: Split = { x, y: tf.zeros<tf.Rank.R2>([n, 10]), labels: new Int32Array(n) };
  for (const [label, bits] of allocations(net)) {
    net.setBits(bits);
    calibrateNetwork(net, split, { batches: 2 });
    const s = exportOnnx(net, path.join(tmp, `resnet18-${label}`), 'onnx');
    const { agree, maxDiff } = await compare(net, s.file, split, n);
    const step = logitStep(net);
    console.log(
      `resnet18_narrow (ONNX) ${label}: top-1 agreement ${(100 * agree).toFixed(2)}%, max |logit diff| ${maxDiff.toExponential(2)}, one step ${step.toExponential(2)}`,
    );
    assert.ok(agree >= 0.999, `${label}: top-1 agreement ${agree}`);
    assert.ok(maxDiff <= step, `${label}: max |logit diff| ${maxDiff} > one step ${step}`);
  }
  tf.dispose([split.x, split.y]);
  net.model.dispose();
});

test('the QONNX export holds one Quant node per quantized tensor with its bit width', async () => {
  setLogLevel('warn');
  await initBackend('wasm');
  const ds = await loadDataset('mnist', { seed: 1, limit: 500 });
  const net = await loadModel('lenet5', { inputShape: ds.inputShape, numClasses: ds.numClasses, seed: 1 });
  const bits = net.layers.map((_, i) => ({ wBits: [2, 4, 8, 6, 3][i % 5], aBits: [8, 3, 4, 5, 6][i % 5] }));
  net.setBits(bits);
  calibrateNetwork(net, ds.train, { batches: 1 });
  const s = exportOnnx(net, path.join(tmp, 'lenet-qonnx'), 'qonnx');
  const m = decodeModel(fs.readFileSync(s.file));
  assert.ok((m.opsetImport ?? []).some((o) => o.domain === 'qonnx.custom_op.general'));
  const quant = (m.graph?.node ?? []).filter((nd) => nd.opType === 'Quant');
  assert.equal(quant.length, 2 * net.layers.length);
  const inits = new Map((m.graph?.initializer ?? []).map((t) => [t.name, t] as const));
  const widths = quant.map(
    (nd) => new Float32Array(Uint8Array.from(inits.get((nd.input ?? [])[3])?.rawData ?? []).buffer)[0],
  );
  const expected = net.qlayers.flatMap((q) => [q.aBits, q.wBits]);
  assert.deepEqual(widths, expected);
  for (const nd of quant) {
    assert.equal(nd.domain, 'qonnx.custom_op.general');
    const names = (nd.attribute ?? []).map((a) => a.name).sort();
    assert.deepEqual(names, ['narrow', 'rounding_mode', 'signed']);
  }
  // the Quant nodes executed by their definition equal the simulated network
  const ref = path.join(tmp, 'lenet-qonnx-reference.onnx');
  fs.writeFileSync(ref, encodeModel(qonnxToStandard(m)));
  const { agree, maxDiff } = await compare(net, ref, ds.test, 500);
  const step = logitStep(net);
  console.log(
    `lenet5 QONNX (reference executor): top-1 agreement ${(100 * agree).toFixed(2)}%, max |logit diff| ${maxDiff.toExponential(2)}, one step ${step.toExponential(2)}`,
  );
  assert.ok(agree >= 0.999, `QONNX top-1 agreement ${agree}`);
  assert.ok(maxDiff <= step, `QONNX max |logit diff| ${maxDiff} > one step ${step}`);
  net.model.dispose();
});
