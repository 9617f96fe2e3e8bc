/**
 * Costs are monotonic in bits on every built-in profile: lowering any layer's wBits or aBits never
 * raises latency, energy, size or peak memory.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildCostTable,
  DEFAULT_BIT_CHOICES,
  listBuiltinProfiles,
  loadProfile,
  parseProfile,
  type CostTable,
} from '../src/hardware/index.js';
import type { BitConfig, LayerInfo } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';
import { LENET5, mobilenetTinyLayers, randomLayers, resnet20Layers } from './hardware-fixtures.js';

const METRICS = ['latencyMs', 'energyUj', 'weightBytes', 'activationBytes'] as const;

/** Every (layer, w, a) against (layer, lower w, a) and (layer, w, lower a); returns the violations. */
function layerViolations(table: CostTable): string[] {
  const bad: string[] = [];
  const bits = table.bitChoices;
  table.layers.forEach((layer, i) => {
    for (let wi = 0; wi < bits.length; wi++) {
      for (let ai = 0; ai < bits.length; ai++) {
        const w = bits[wi];
        const a = bits[ai];
        const here = table.layerCost(i, w, a);
        const lower: [number, number][] = [];
        if (wi > 0) lower.push([bits[wi - 1], a]);
        if (ai > 0) lower.push([w, bits[ai - 1]]);
        for (const [lw, la] of lower) {
          const c = table.layerCost(i, lw, la);
          for (const m of METRICS) {
            if (c[m] > here[m] * (1 + 1e-12))
              bad.push(`${layer.name} (${layer.kind}) ${m}: W${lw}A${la} ${c[m]} > W${w}A${a} ${here[m]}`);
          }
        }
      }
    }
  });
  return bad;
}

function lowerOne(bits: BitConfig, i: number, which: 'wBits' | 'aBits', choices: readonly number[]): BitConfig | null {
  const b = bits[i];
  const idx = choices.indexOf(b[which]);
  if (idx <= 0) return null;
  return bits.map((x, j) => (j === i ? { ...x, [which]: choices[idx - 1] } : x));
}

describe('monotonic in bits on every built-in profile', () => {
  const layers: LayerInfo[] = [...randomLayers(7, 60), ...LENET5, ...resnet20Layers(), ...mobilenetTinyLayers()].map(
    (l, i) => ({ ...l, index: i }),
  );
  for (const info of listBuiltinProfiles()) {
    it(`${info.id}: every layer, every pair of ${DEFAULT_BIT_CHOICES.join(',')}`, () => {
      const table = buildCostTable(loadProfile(info.id), layers, DEFAULT_BIT_CHOICES);
      const bad = layerViolations(table);
      assert.deepEqual(bad.slice(0, 5), [], `${bad.length} violations`);
    });

    it(`${info.id}: lowering one layer's bits in random allocations never raises the totals`, () => {
      const model = resnet20Layers();
      const choices = [1, 2, 3, 4, 5, 6, 8, 16];
      const table = buildCostTable(loadProfile(info.id), model, choices);
      const rng = new Rng(11);
      for (let trial = 0; trial < 200; trial++) {
        const bits: BitConfig = model.map(() => ({ wBits: rng.pick(choices), aBits: rng.pick(choices) }));
        const before = table.costAllocation(bits);
        const i = rng.int(model.length);
        for (const which of ['wBits', 'aBits'] as const) {
          const lowered = lowerOne(bits, i, which, choices);
          if (!lowered) continue;
          const after = table.costAllocation(lowered);
          for (const m of ['latencyMs', 'energyUj', 'sizeBytes', 'peakMemoryBytes'] as const) {
            assert.ok(after[m] <= before[m] * (1 + 1e-12), `${m} rose when layer ${i} ${which} was lowered`);
          }
        }
      }
    });
  }
});

describe('user-supplied costs (expression, lookup)', () => {
  it('are made monotonic by the envelope: a width that costs more than a wider one is costed as the wider one', () => {
    const profile = parseProfile(
      {
        id: 'odd-4bit',
        description: 'a device whose 4-bit kernels are slow',
        sources: [{ what: 'all', source: 'test', estimate: true }],
        clockMHz: 100,
        batchSize: 1,
        compute: { model: 'expression', cycles: 'macs * (wBits == 4 ? 10 : wBits / 8)', energyPJ: 'macs' },
        memory: { offChip: { bandwidthGBps: 1000, pJPerBit: 0 } },
      },
      'odd-4bit.json',
    );
    const table = buildCostTable(profile, LENET5, [2, 4, 8]);
    assert.deepEqual(layerViolations(table), []);
    // 4-bit is costed as the cheapest wider setting of the default widths (5 bits: 5/8 of the 8-bit
    // cycles), whatever widths the table was asked for; 2-bit keeps its own lower cost
    assert.equal(table.layerCost(1, 4, 8).computeCycles, LENET5[1].macs * (5 / 8));
    assert.equal(table.layerCost(1, 2, 8).computeCycles, LENET5[1].macs * (2 / 8));
  });
});
