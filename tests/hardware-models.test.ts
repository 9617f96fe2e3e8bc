/**
 * The compute models and the cost model: Bit Fusion and bit-serial scaling, the roofline, modes
 * (GPU, CPU, MCU), the systolic array, storage limits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUserError } from '../src/errors.js';
import {
  buildCostTable,
  fusionFactor,
  loadProfile,
  parseProfile,
  profileProblems,
  simulate,
  weightStorageBytes,
} from '../src/hardware/index.js';
import { uniformBits, type LayerInfo } from '../src/models/layer-info.js';
import { LENET5, convLayer, denseLayer, resnet20Layers } from './hardware-fixtures.js';

/** A large 3x3 convolution: about 450 MACs per byte moved at 8 bits, compute-bound on every accelerator profile. */
const BIG_CONV = convLayer(0, 'big', [14, 14], 256, 256, 3, 1);
/** A depthwise 3x3 convolution: 9 MACs per activation element, memory-bound. */
const DEPTHWISE = convLayer(0, 'dw', [56, 56], 128, 128, 3, 1, { kind: 'depthwise' });

describe('Bit Fusion', () => {
  const profile = loadProfile('bitfusion-45nm');
  const table = buildCostTable(profile, [BIG_CONV, DEPTHWISE], [2, 3, 4, 8, 16]);

  it('gives a compute-bound layer 1, 1/4, 1/16, 1/4, 1/4 of the 8x8 cycles at 8x8, 4x4, 2x2, 2x8, 3x3', () => {
    const c88 = table.layerCost(0, 8, 8).computeCycles;
    const expected: [number, number, number][] = [
      [8, 8, 1],
      [4, 4, 1 / 4],
      [2, 2, 1 / 16],
      [2, 8, 1 / 4],
      [3, 3, 1 / 4],
    ];
    for (const [w, a, ratio] of expected) {
      const c = table.layerCost(0, w, a);
      assert.equal(c.bound, 'compute', `W${w}A${a} should be compute-bound`);
      assert.equal(c.computeCycles, c88 * ratio, `W${w}A${a}`);
    }
    assert.equal(c88, BIG_CONV.macs / 512);
  });

  it('follows floor(8/max(a,2)) x floor(8/max(w,2)) up to 8 bits and doubles per wide operand above', () => {
    for (let w = 1; w <= 8; w++) {
      for (let a = 1; a <= 8; a++) {
        const asBits = (b: number) => (b === 3 ? 4 : b >= 5 ? 8 : b === 1 ? 2 : b);
        const speedup = Math.floor(8 / Math.max(asBits(a), 2)) * Math.floor(8 / Math.max(asBits(w), 2));
        assert.equal(fusionFactor(w, a), 1 / speedup, `W${w}A${a}`);
      }
    }
    assert.equal(fusionFactor(16, 16), 4);
    assert.equal(table.layerCost(0, 16, 16).computeCycles, 4 * table.layerCost(0, 8, 8).computeCycles);
  });

  it('does not give a memory-bound depthwise layer the compute speed-up: its latency follows the bytes moved', () => {
    const c88 = table.layerCost(1, 8, 8);
    const c22 = table.layerCost(1, 2, 2);
    assert.equal(c88.bound, 'memory');
    assert.equal(c22.bound, 'memory');
    const speedup = c88.latencyMs / c22.latencyMs;
    assert.ok(speedup < 4.1 && speedup > 3.5, `2x2 speed-up ${speedup} should be about the 4x fewer bytes, not 16x`);
    assert.ok(Math.abs(c88.offChipBytes / c22.offChipBytes - speedup) / speedup < 0.02);
  });
});

describe('bit-serial', () => {
  it('BISMO: 2x2 takes 1/16 of the 8x8 cycles, and cycles follow w x a', () => {
    const table = buildCostTable(loadProfile('bismo-pynq-z1'), [BIG_CONV], [1, 2, 4, 8]);
    const c88 = table.layerCost(0, 8, 8).computeCycles;
    assert.equal(table.layerCost(0, 2, 2).computeCycles, c88 / 16);
    assert.equal(table.layerCost(0, 1, 4).computeCycles, c88 / 16);
    assert.equal(table.layerCost(0, 8, 1).computeCycles, c88 / 8);
    assert.equal(c88, (BIG_CONV.macs * 64) / 16384);
  });

  it('Stripes-style (activations only): cycles follow aBits and not wBits', () => {
    const profile = parseProfile(
      {
        id: 'stripes-like',
        description: 'activation-serial test device',
        sources: [{ what: 'all', source: 'test', estimate: true }],
        clockMHz: 1000,
        batchSize: 1,
        compute: { model: 'bit-serial', operands: 'activations', serialMacsPerCycle: 4096, pJPerSerialMac: 0.1 },
        memory: { offChip: { bandwidthGBps: 1000, pJPerBit: 1 } },
      },
      'stripes-like.json',
    );
    const table = buildCostTable(profile, [BIG_CONV], [2, 4, 8, 16]);
    const c = (w: number, a: number) => table.layerCost(0, w, a).computeCycles;
    assert.equal(c(2, 8), c(16, 8));
    assert.equal(c(8, 2), c(8, 8) / 4);
    assert.equal(c(8, 4), c(8, 8) / 2);
  });
});

describe('modes (fixed-precision devices)', () => {
  const layers = resnet20Layers();

  it('gpu-h100 has no INT4: 4-bit takes the same time as 8-bit but less size', () => {
    const table = buildCostTable(loadProfile('gpu-h100'), layers, [4, 8]);
    const c8 = table.costAllocation(uniformBits(layers, 8, 8));
    const c4 = table.costAllocation(uniformBits(layers, 4, 4));
    assert.equal(c4.latencyMs, c8.latencyMs);
    assert.ok(c4.sizeBytes < c8.sizeBytes * 0.6, `size ${c4.sizeBytes} vs ${c8.sizeBytes}`);
  });

  it('gpu-t4 has INT4: 4-bit is faster than 8-bit, by the 1.7x measured ratio on a compute-bound layer', () => {
    const table = buildCostTable(loadProfile('gpu-t4'), layers, [4, 8]);
    const c8 = table.costAllocation(uniformBits(layers, 8, 8));
    const c4 = table.costAllocation(uniformBits(layers, 4, 4));
    assert.ok(c4.latencyMs < c8.latencyMs);
    assert.ok(c4.energyUj < c8.energyUj);
    const big = buildCostTable(loadProfile('gpu-t4'), [BIG_CONV], [4, 8]);
    const ratio = big.layerCost(0, 8, 8).computeCycles / big.layerCost(0, 4, 4).computeCycles;
    assert.ok(Math.abs(ratio - 1.7) < 1e-3, `INT8/INT4 compute ratio ${ratio}`);
  });

  it('runs widths between modes in the next wider mode (cpu-arm-sdot: 2..8 bits as int8, 16 as fp32)', () => {
    const table = buildCostTable(loadProfile('cpu-arm-sdot'), [BIG_CONV], [2, 5, 8, 16, 32]);
    const c = (w: number, a: number) => table.layerCost(0, w, a).computeCycles;
    assert.equal(c(2, 2), c(8, 8));
    assert.equal(c(5, 8), c(8, 8));
    assert.equal(c(16, 16), c(32, 32));
    assert.ok(c(32, 32) > c(8, 8));
  });

  it('rejects a width no mode covers, naming the profile file', () => {
    const profile = parseProfile(
      {
        id: 'int8-only',
        description: 'test device',
        sources: [{ what: 'all', source: 'test', estimate: true }],
        clockMHz: 100,
        batchSize: 1,
        compute: { model: 'modes', modes: [{ wBits: 8, aBits: 8, macsPerCycle: 4, pJPerMac: 1 }] },
        memory: { offChip: { bandwidthGBps: 1, pJPerBit: 1 } },
      },
      'int8-only.json',
    );
    assert.throws(
      () => buildCostTable(profile, LENET5, [8, 16]),
      (e: unknown) =>
        isUserError(e) &&
        /int8-only\.json/.test(e.message) &&
        /W(8A16|16A\d+)/.test(e.message) &&
        /\$\.compute\.modes/.test(e.message),
    );
  });
  it('rejects at load a mode table where two modes have no common narrower mode, or a narrower mode is slower', () => {
    const problems = profileProblems(
      {
        id: 'odd-modes',
        description: 'test device',
        sources: [{ what: 'all', source: 'test', estimate: true }],
        clockMHz: 100,
        batchSize: 1,
        compute: {
          model: 'modes',
          modes: [
            { wBits: 4, aBits: 16, macsPerCycle: 8, pJPerMac: 1 },
            { wBits: 16, aBits: 4, macsPerCycle: 8, pJPerMac: 1 },
            { wBits: 16, aBits: 16, macsPerCycle: 4, pJPerMac: 2 },
            { wBits: 8, aBits: 8, macsPerCycle: 2, pJPerMac: 1 },
          ],
        },
        memory: { offChip: { bandwidthGBps: 1, pJPerBit: 1 } },
      },
      'odd-modes.json',
    );
    assert.ok(
      problems.some((p) =>
        /W4A16 \(\$\.compute\.modes\[0\]\) and W16A4 \(\$\.compute\.modes\[1\]\) have no common narrower mode; add W4A4/.test(
          p,
        ),
      ),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) =>
        /^\$\.compute\.modes\[3\]: W8A8 is narrower than W16A16 \(\$\.compute\.modes\[2\]\) but slower/.test(p),
      ),
      problems.join('\n'),
    );
  });
});

describe('microcontroller limits (mcu-stm32f746)', () => {
  const profile = loadProfile('mcu-stm32f746');
  // 112x112x16 in and out at 8 bits: 401,408 bytes of activations > 320 KB of SRAM
  const tooBig: LayerInfo[] = [
    convLayer(0, 'stem', [112, 112], 3, 16, 3, 1),
    convLayer(1, 'wide', [112, 112], 16, 16, 3, 1),
    convLayer(2, 'down', [112, 112], 16, 8, 3, 4),
    denseLayer(3, 'fc', 28 * 28 * 8, 10),
  ];

  it('reports fits: false and names the layer whose activations exceed SRAM', () => {
    const cost = simulate(profile, tooBig, uniformBits(tooBig, 8, 8));
    assert.equal(cost.fits, false);
    assert.equal(cost.peakMemoryBytes, 2 * 112 * 112 * 16);
    assert.equal(cost.peakLayerIndex, 1);
    assert.deepEqual(
      (cost.violations ?? []).map((v) => [v.limit, v.layerName, v.bytes, v.limitBytes]),
      [['sram', 'wide', 401408, 327680]],
    );
  });

  it('keeps activations at 8 bits in SRAM: 4-bit activations do not make it fit', () => {
    const cost = simulate(profile, tooBig, uniformBits(tooBig, 4, 4));
    assert.equal(cost.fits, false);
    assert.equal(cost.peakMemoryBytes, 401408);
  });

  it('int4 weights save flash but not cycles', () => {
    const fc = [denseLayer(0, 'fc', 1500, 1000)];
    const c8 = simulate(profile, fc, uniformBits(fc, 8, 8));
    const c4 = simulate(profile, fc, uniformBits(fc, 4, 8));
    assert.equal(c8.fits, false);
    assert.deepEqual(
      (c8.violations ?? []).map((v) => [v.limit, v.layerName]),
      [['flash', 'fc']],
    );
    assert.equal(c4.fits, true);
    assert.equal(c4.sizeBytes, 750000 + 1000 * 4 + 1000 * 4);
    assert.equal(c4.layers[0]?.computeCycles, c8.layers[0]?.computeCycles);
  });

  it('fits LeNet-5 comfortably', () => {
    const cost = simulate(profile, LENET5, uniformBits(LENET5, 8, 8));
    assert.equal(cost.fits, true);
    assert.deepEqual(cost.violations, []);
  });
});

/** eyeriss-systolic with the roofline memory model and 108 KiB SRAMs (AMED's sizes): the fold arithmetic and the roofline's re-fetch counts. */
function rooflineEyeriss(): ReturnType<typeof loadProfile> {
  const spec = structuredClone(loadProfile('eyeriss-systolic').spec);
  if (!spec.memory) throw new Error('eyeriss-systolic has a memory section');
  delete spec.memory.model;
  for (const b of spec.memory.onChip ?? []) {
    b.sizeBytes = 108 * 1024;
    delete b.bandwidthGBps;
  }
  return parseProfile({ ...spec, id: 'eyeriss-roofline' }, 'eyeriss-roofline.json');
}

describe('systolic array (eyeriss-systolic, SCALE-Sim style)', () => {
  const profile = rooflineEyeriss();

  it('counts folds and fill/drain by hand for LeNet-5 conv1 and fc1 (weight-stationary, 12x14)', () => {
    const table = buildCostTable(profile, LENET5, [4, 8]);
    // conv1: K = 5*5*1 = 25 on rows -> 3 folds, N = 6 filters on cols -> 1 fold, streams P = 24*24 = 576
    assert.equal(table.layerCost(0, 8, 8).computeCycles, 3 * 1 * (2 * 12 + 14 + 576 - 2));
    // at 4x4 the Bit Fusion scaling streams 576/4 = 144 steps per fold; fill and drain stay
    assert.equal(table.layerCost(0, 4, 4).computeCycles, 3 * 1 * (2 * 12 + 14 + 144 - 2));
    // fc1: K = 256 -> 22 folds, N = 120 -> 9 folds, P = 1 (batch 1)
    assert.equal(table.layerCost(2, 8, 8).computeCycles, 22 * 9 * (2 * 12 + 14 + 1 - 2));
  });

  it('re-fetches the streamed input once per column fold when it does not fit in the ifmap SRAM', () => {
    // 64x64x32 input: 131,072 bytes at 8 bits > 110,592; 65,536 at 4 bits fits. 32 filters -> 3 column folds.
    const layer = convLayer(0, 'c', [64, 64], 32, 32, 3, 1);
    const table = buildCostTable(profile, [layer], [4, 8]);
    const w8 = weightStorageBytes(layer, 8);
    const w4 = weightStorageBytes(layer, 4);
    assert.equal(table.layerCost(0, 8, 8).offChipBytes, w8 + 3 * 131072 + 131072 * (2 * Math.ceil(288 / 12) - 1));
    assert.equal(table.layerCost(0, 4, 4).offChipBytes, w4 + 65536 + 65536);
  });
});

describe('size and peak memory', () => {
  it('counts weights at their bits plus float32 per-channel scales and 32-bit bias', () => {
    const cost = simulate(loadProfile('bitfusion-45nm'), LENET5, uniformBits(LENET5, 4, 8));
    const params = 150 + 2400 + 30720 + 10080 + 840;
    const channels = 6 + 16 + 120 + 84 + 10;
    assert.equal(cost.sizeBytes, params / 2 + channels * 4 + channels * 4);
  });

  it('takes the peak over layers of input + output + live residual bytes at the activation bits', () => {
    const layers = resnet20Layers();
    const cost = simulate(loadProfile('bitfusion-45nm'), layers, uniformBits(layers, 8, 8));
    // a stage-1 second convolution: 32x32x16 in, 32x32x16 out, the block input alive for the residual Add
    assert.equal(cost.peakMemoryBytes, 3 * 32 * 32 * 16);
    assert.equal(layers[cost.peakLayerIndex ?? -1]?.name, 'stage1.block0.conv2');
  });
});
