import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { loadModel } from '../src/models/index.js';
import { importOnnxFile } from '../src/onnx/index.js';
import { loadOnnxModel } from '../src/models/index.js';
import { createSession, loadOrt } from '../src/onnx/runtime.js';
import { UserError } from '../src/errors.js';
import { Rng } from '../src/util/rng.js';

const FIXTURES = path.join(process.cwd(), 'tests', 'fixtures', 'onnx');
const META = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'fixtures.json'), 'utf8')) as Record<
  string,
  { inputShape: [number, number, number]; opset: number; layout?: 'nhwc' }
>;

/** Random NCHW images in [0, 1) and the same images NHWC. */
function images(
  n: number,
  [c, h, w]: [number, number, number],
  seed: number,
): { nchw: Float32Array; nhwc: Float32Array } {
  const rng = new Rng(seed);
  const nchw = Float32Array.from({ length: n * c * h * w }, () => rng.next());
  const nhwc = new Float32Array(nchw.length);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < c; k++)
      for (let i = 0; i < h; i++)
        for (let j = 0; j < w; j++) nhwc[((b * h + i) * w + j) * c + k] = nchw[((b * c + k) * h + i) * w + j];
  return { nchw, nhwc };
}

test('every ONNX fixture imports and its float outputs equal onnxruntime on the same inputs', async () => {
  await initBackend('wasm');
  const ort = await loadOrt();
  assert.ok(ort, 'onnxruntime-node loads');
  assert.equal(META['tf2onnx_layout']?.layout, 'nhwc', 'the tf2onnx-layout fixture (NHWC input) is among them');
  for (const [name, meta] of Object.entries(META)) {
    const file = path.join(FIXTURES, `${name}.onnx`);
    const net = loadOnnxModel(file);
    try {
      const [c, h, w] = meta.inputShape;
      const n = 8;
      const { nchw, nhwc } = images(n, meta.inputShape, 3);
      const ours = tf.tidy(() => (net.model.predict(tf.tensor4d(nhwc, [n, h, w, c])) as tf.Tensor).dataSync());
      const session = await createSession(ort, fs.readFileSync(file), 1);
      // tf2onnx's layout takes NHWC images (and transposes them itself)
      const feed =
        meta.layout === 'nhwc'
          ? new ort.Tensor('float32', nhwc, [n, h, w, c])
          : new ort.Tensor('float32', nchw, [n, c, h, w]);
      const res: Record<string, unknown> = await session.run({ [session.inputNames[0]]: feed });
      const ref: Float32Array = (res[session.outputNames[0]] as { data: Float32Array }).data;
      await session.release();
      assert.equal(ours.length, ref.length, `${name}: output size`);
      let lo = Infinity;
      let hi = -Infinity;
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) {
        lo = Math.min(lo, ref[i]);
        hi = Math.max(hi, ref[i]);
        maxDiff = Math.max(maxDiff, Math.abs(ref[i] - ours[i]));
      }
      const rel = maxDiff / Math.max(hi - lo, 1e-12);
      assert.ok(hi - lo > 0, `${name}: outputs vary`);
      assert.ok(rel <= 1e-4, `${name} (opset ${meta.opset}): max |diff| ${maxDiff} is ${rel} of the output range`);
      assert.ok(net.layers.length > 0, `${name}: has quantizable layers`);
    } finally {
      net.model.dispose();
    }
  }
});

test('an .onnx path loads through loadModel like any model, with its inventory', async () => {
  await initBackend('wasm');
  const net = await loadModel(path.join(FIXTURES, 'mobilenet_v2_w010.onnx'));
  try {
    const kinds = new Set(net.layers.map((l) => l.kind));
    assert.deepEqual([...kinds].sort(), ['conv', 'dense', 'depthwise']);
    assert.equal(net.layers[0]?.inChannels, 3);
    assert.equal(net.layers[net.layers.length - 1]?.outChannels, 10);
    // the grouped 1x1 conv of the ops fixture becomes one conv per group
    const ops = loadOnnxModel(path.join(FIXTURES, 'ops_opset17.onnx'));
    assert.equal(ops.layers.filter((l) => l.name.startsWith('g_g')).length, 4);
    ops.model.dispose();
  } finally {
    net.model.dispose();
  }
});

test('an unsupported op is a UserError naming the node, its op type and the supported list', async () => {
  const { decodeModel, encodeModel } = await import('../src/onnx/proto.js');
  const m = decodeModel(fs.readFileSync(path.join(FIXTURES, 'small_cnn.onnx')));
  const node = m.graph!.node!.find((n) => n.opType === 'LeakyRelu')!;
  node.opType = 'Elu';
  node.name = 'my_elu';
  const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'onnx-'));
  const file = path.join(tmp, 'bad.onnx');
  fs.writeFileSync(file, encodeModel(m));
  assert.throws(
    () => importOnnxFile(file),
    (e: unknown) =>
      e instanceof UserError &&
      /my_elu/.test(e.message) &&
      /'Elu'/.test(e.message) &&
      /Conv, Gemm, MatMul/.test(e.message) &&
      e.message.includes(file),
  );
  fs.writeFileSync(file, Buffer.from('not an onnx file at all'));
  assert.throws(
    () => importOnnxFile(file),
    (e: unknown) => e instanceof UserError && /not a valid ONNX file/.test(e.message),
  );
  fs.rmSync(tmp, { recursive: true, force: true });
});
