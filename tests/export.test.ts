/** Integer export: packing, byte sizes, the manifest, and the reloaded network's outputs. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { initBackend, tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { buildNetwork } from '../src/models/index.js';
import { uniformBits, type BitConfig, type LayerInfo } from '../src/models/layer-info.js';
import {
  exportNetwork,
  loadExport,
  packCodes,
  saveNetwork,
  unpackCodes,
  type QuantNetwork,
  type QuantizerKind,
} from '../src/quant/index.js';

const BIN = join(process.cwd(), 'bin', 'bitalloc.js');

before(async () => {
  await initBackend('wasm');
});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'bitalloc-export-'));
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** params x bits / 8 rounded up per layer, + one float32 scale per output channel (32 bits: float32 kernel). */
function impliedBytes(layers: readonly LayerInfo[], bits: BitConfig): number {
  return layers.reduce((sum, l, i) => {
    const w = (bits[i] as { wBits: number }).wBits;
    return sum + (w === 32 ? 4 * l.params : Math.ceil((l.params * w) / 8) + 4 * l.outChannels);
  }, 0);
}

function trainedNet(name: string, quantizer: QuantizerKind, seed: number): { net: QuantNetwork; x: tf.Tensor } {
  const net = buildNetwork(name, { inputShape: [12, 12, 3], numClasses: 10, seed, quantizer });
  let s = seed * 10;
  for (const l of net.model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const [g, b, m, v] = l.getWeights() as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    l.setWeights([
      tf.randomUniform(g.shape, -1.5, 1.5, 'float32', s++), // some negative gammas
      tf.randomUniform(b.shape, -0.3, 0.3, 'float32', s++),
      tf.randomUniform(m.shape, -0.3, 0.3, 'float32', s++),
      tf.randomUniform(v.shape, 0.5, 2, 'float32', s++),
    ]);
  }
  return { net, x: tf.randomUniform([16, 12, 12, 3], 0, 1, 'float32', seed) };
}

test('packing: any b in 1..8 and 16 round-trips densely', () => {
  for (const bits of [1, 2, 3, 4, 5, 6, 7, 8, 16]) {
    const lo = bits === 1 ? -1 : -(2 ** (bits - 1));
    const hi = bits === 1 ? 1 : 2 ** (bits - 1) - 1;
    const codes = Array.from({ length: 37 }, (_, i) =>
      bits === 1 ? (i % 3 === 0 ? 1 : -1) : lo + ((i * 7) % (hi - lo + 1)),
    );
    const packed = packCodes(codes, bits);
    assert.equal(packed.length, Math.ceil((37 * bits) / 8));
    assert.deepEqual(Array.from(unpackCodes(packed, 37, bits)), codes);
  }
  // two 4-bit weights per byte, low nibble first, two's complement
  assert.deepEqual(Array.from(packCodes([1, -2, 7, -8], 4)), [0xe1, 0x87]);
  // 16 bits are little-endian int16
  assert.deepEqual(Array.from(packCodes([-2, 300], 16)), [0xfe, 0xff, 0x2c, 0x01]);
});

for (const [label, quantizer, name] of [
  ['ste resnet8', 'ste', 'resnet8'],
  ['lsq mobilenet-tiny', 'lsq', 'mobilenet-tiny'],
  ['pact lenet5', 'pact', 'lenet5'],
] as [string, QuantizerKind, string][]) {
  test(`${label}: export at 2, 4, 8 and mixed bits has the implied byte size and reproduces the outputs`, async () => {
    const { net, x } = trainedNet(name, quantizer, 3);
    const mixed = net.layers.map((_, i) => ({
      wBits: [3, 8, 2, 16, 4, 1, 32, 5][i % 8],
      aBits: [8, 4, 32, 2, 6, 16, 3, 8][i % 8],
    }));
    for (const bits of [
      uniformBits(net.layers, 2, 2),
      uniformBits(net.layers, 4, 4),
      uniformBits(net.layers, 8, 8),
      mixed,
    ]) {
      net.setBits(bits);
      net.calibrate(x);
      const y = net.model.predict(x) as tf.Tensor;
      const dir = tmp();
      const m = exportNetwork(net, dir);
      const size = statSync(join(dir, 'weights.bin')).size;
      assert.equal(size, impliedBytes(net.layers, bits), `weights.bin size for ${JSON.stringify(bits[0])}...`);
      assert.equal(m.weightsBytes, size);
      const back = await loadExport(dir);
      const d = maxAbsDiff(y, back.model.predict(x) as tf.Tensor);
      assert.ok(d <= 1e-4, `max abs diff ${d}`);
      back.model.dispose();
      y.dispose();
    }
    net.model.dispose();
  });
}

test('the manifest describes the integer network: decoding a layer by hand gives the kernel inference uses', () => {
  const { net, x } = trainedNet('cnn-small', 'ste', 4);
  const bits = net.layers.map(() => ({ wBits: 3, aBits: 5 }));
  net.setBits(bits);
  net.calibrate(x);
  const dir = tmp();
  const m = exportNetwork(net, dir);
  const bin = readFileSync(join(dir, 'weights.bin'));
  const e = m.layers.find((l) => l.name === 'conv2');
  assert.ok(e);
  assert.equal(e.foldedBatchNorm, 'conv2_bn');
  assert.equal(e.encoding, 'twos-complement');
  assert.deepEqual([e.wBits, e.aBits, e.qmin, e.qmax], [3, 5, -3, 3]);
  assert.deepEqual(e.activation && [e.activation.bits, e.activation.signed, e.activation.qmin, e.activation.qmax], [
    5,
    false,
    0,
    31,
  ]);
  assert.ok(
    e.scales && e.scales.every((s) => s > 0),
    'scales are positive (negative BN factors flipped into the codes)',
  );
  const codes = unpackCodes(new Uint8Array(bin.buffer, bin.byteOffset + e.weightsOffset, e.weightsBytes), e.params, 3);
  const scales = new Float32Array(
    Uint8Array.from(bin.subarray(e.scalesOffset as number, (e.scalesOffset as number) + e.scalesBytes)).buffer,
  );
  assert.deepEqual(Array.from(scales), e.scales);
  const C = e.outChannels;
  const manual = Float32Array.from(codes, (c, i) => c * scales[i % C]);
  const layer = net.qlayers.find((l) => l.name === 'conv2');
  assert.ok(layer);
  const used = tf.tidy(() => layer.inferenceParams().kernel.dataSync());
  for (let i = 0; i < manual.length; i++) assert.ok(Math.abs(manual[i] - used[i]) <= 1e-6 * Math.abs(used[i]) + 1e-9);
  // the BN is gone from the exported topology
  assert.ok(!JSON.stringify(m.topology).includes('"conv2_bn"'));
  net.model.dispose();
});

test('an uncalibrated activation range and a truncated export are user errors', async () => {
  const net = buildNetwork('lenet5', { inputShape: [12, 12, 1], numClasses: 10, seed: 1 });
  net.setBits(uniformBits(net.layers, 4, 4));
  assert.throws(
    () => exportNetwork(net, tmp()),
    (e: unknown) => e instanceof UserError && /conv1/.test(e.message) && /not calibrated/.test(e.message),
  );
  net.calibrate(tf.randomUniform([4, 12, 12, 1]));
  const dir = tmp();
  exportNetwork(net, dir);
  truncateSync(join(dir, 'weights.bin'), 10);
  await assert.rejects(
    loadExport(dir),
    (e: unknown) => e instanceof UserError && /weights\.bin/.test(e.message) && /truncated or corrupt/.test(e.message),
  );
  await assert.rejects(loadExport(tmp()), (e: unknown) => e instanceof UserError && /manifest\.json/.test(e.message));
  net.model.dispose();
});

test('`bitalloc export --checkpoint DIR --bits-file F --out DIR2` writes the export', async () => {
  const { net, x } = trainedNet('lenet5', 'ste', 5);
  net.setBits(uniformBits(net.layers, 8, 8));
  net.model.apply(x, { training: true }); // activation statistics, as QAT leaves them
  const ckpt = tmp();
  await saveNetwork(net, ckpt);
  const bitsFile = join(tmp(), 'bits.json');
  const bits = net.layers.map((l, i) => ({ name: l.name, wBits: [4, 2, 8, 4, 8][i], aBits: 8 }));
  writeFileSync(bitsFile, JSON.stringify({ layers: bits }));
  const out = tmp();
  const r = spawnSync('node', [BIN, 'export', '--checkpoint', ckpt, '--bits-file', bitsFile, '--out', out, '--json'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { weightsBytes: number; layers: { name: string; wBits: number }[] };
  assert.equal(summary.weightsBytes, impliedBytes(net.layers, bits));
  assert.deepEqual(
    summary.layers.map((l) => l.wBits),
    [4, 2, 8, 4, 8],
  );
  const back = await loadExport(out);
  assert.deepEqual(back.model.outputs[0]?.shape, [null, 10]);
  const bad = spawnSync('node', [BIN, 'export', '--checkpoint', join(ckpt, 'nope'), '--out', out], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /checkpoint directory not found/);
  back.model.dispose();
  net.model.dispose();
});
