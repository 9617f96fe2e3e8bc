import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { loadDataset } from '../src/data/index.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import { writeGraph } from '../src/onnx/graph.js';
import { writeIntegerGraph } from '../src/onnx/int-graph.js';
import { DataType, decodeModel, encodeModel } from '../src/onnx/proto.js';
import { createSession, loadOrt, type OrtModule, type OrtSession } from '../src/onnx/runtime.js';
import { feedTensor } from '../src/search/ort-evaluator.js';
import { calibrateNetwork, createTrainer } from '../src/train/trainer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bitalloc-onnx-int-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

async function outputs(
  ort: OrtModule,
  session: OrtSession,
  feeds: Record<string, InstanceType<OrtModule['Tensor']>>,
  x: Float32Array,
  shape: number[],
): Promise<Float32Array> {
  const r = await session.run({ ...feeds, input: new ort.Tensor('float32', x, shape) });
  return (r['logits'] as unknown as { data: Float32Array }).data;
}

function top1(y: Float32Array, n: number): number[] {
  const k = y.length / n;
  return Array.from({ length: n }, (_, r) => {
    let best = 0;
    for (let c = 1; c < k; c++) if (y[r * k + c] > y[r * k + best]) best = c;
    return best;
  });
}

test('the integer graph: onnxruntime fuses its convolutions into QLinearConv; the rewrite keeps the simulated network up to the int32 bias', async (t) => {
  const ort = await loadOrt();
  if (!ort) return t.skip('onnxruntime-node is not installed');
  setLogLevel('warn');
  await initBackend('wasm');
  const ds = await loadDataset('mnist', { seed: 1 });
  const net = await loadModel('mobilenet-tiny', { inputShape: ds.inputShape, numClasses: ds.numClasses, seed: 1 });
  const trainer = createTrainer(net, ds, { lr: 3e-3, batchSize: 64, optimizer: 'adam', seed: 1 });
  await trainer.trainSteps(20);
  const n = 500;
  const shape = [n, ...(ds.inputShape as number[])];
  const x = Float32Array.from(ds.test.x.dataSync()).subarray(0, n * shape.slice(1).reduce((a, b) => a * b, 1));
  for (const bits of [8, 4]) {
    net.setBits(net.layers.map(() => ({ wBits: bits, aBits: bits })));
    calibrateNetwork(net, ds.train, { batches: 1 });
    const e = writeGraph(net, 'eval');
    const feeds: Record<string, InstanceType<OrtModule['Tensor']>> = {};
    for (const f of e.feeds) feeds[f.name] = feedTensor(ort, f);
    const sim = await createSession(ort, encodeModel(e.model), 2, { fakeQuant: true });
    const a = await outputs(ort, sim, feeds, x, shape);
    await sim.release();

    const g = writeIntegerGraph(net);
    assert.equal(g.integerLayers, net.qlayers.length, `W${bits}A${bits}: every layer has integer input and weights`);
    // activations as uint8 codes only (signed grids at zero point 128), weights as int8 codes, biases int32
    const types = new Set(
      (g.model.graph?.node ?? [])
        .filter((nd) => nd.opType === 'QuantizeLinear')
        .map((nd) => g.model.graph?.initializer?.find((i) => i.name === nd.input?.[2])?.dataType),
    );
    assert.deepEqual([...types], [DataType.UINT8], 'activation codes are uint8');
    const opt = path.join(tmp, `int-w${bits}.onnx`);
    const fused = await ort.InferenceSession.create(encodeModel(g.model), {
      executionProviders: ['cpu'],
      intraOpNumThreads: 2,
      graphOptimizationLevel: 'all',
      optimizedModelFilePath: opt,
    });
    const ops = (decodeModel(fs.readFileSync(opt)).graph?.node ?? []).map((nd) => nd.opType);
    const qconv = ops.filter((o) => o === 'QLinearConv').length;
    const conv = ops.filter((o) => o === 'Conv' || o === 'FusedConv').length;
    const b = await outputs(ort, fused, {}, x, shape);
    await fused.release();
    // fusions off: float convolutions on the same codes and int32 biases, the rewrite's own arithmetic
    const plain = await createSession(ort, encodeModel(g.model), 2, { fakeQuant: true });
    const c = await outputs(ort, plain, {}, x, shape);
    await plain.release();

    const ta = top1(a, n);
    const agree = top1(b, n).filter((v, i) => v === ta[i]).length / n;
    const agreePlain = top1(c, n).filter((v, i) => v === ta[i]).length / n;
    let range = 0;
    let diffPlain = 0;
    for (let i = 0; i < a.length; i++) {
      range = Math.max(range, Math.abs(a[i]));
      diffPlain = Math.max(diffPlain, Math.abs(a[i] - c[i]));
    }
    console.log(
      `mobilenet-tiny W${bits}A${bits}: ${qconv} QLinearConv, ${conv} float Conv; top-1 agreement with the simulated graph ${(100 * agree).toFixed(1)}% (fusions off ${(100 * agreePlain).toFixed(1)}%, max |logit diff| ${diffPlain.toExponential(2)} of range ${range.toFixed(2)})`,
    );
    assert.ok(qconv > conv, `W${bits}A${bits}: most convolutions are integer kernels (${ops.join(',')})`);
    // the rewrite itself (codes Clip, absorbed ReLUs, folded pads, widened weight codes) changes only the bias
    // rounding, which grows with the coarser grids (measured: 100% at W8A8, about 95% at W4A4)
    const bar = bits === 8 ? 0.99 : 0.85;
    assert.ok(agreePlain >= bar, `W${bits}A${bits}: fusions off, top-1 agreement ${agreePlain}`);
    assert.ok(diffPlain < 0.25 * range, `W${bits}A${bits}: fusions off, max logit diff ${diffPlain} of ${range}`);
    assert.ok(agree >= bar, `W${bits}A${bits}: integer kernels, top-1 agreement ${agree}`);
  }
  trainer.dispose();
  net.model.dispose();
});
