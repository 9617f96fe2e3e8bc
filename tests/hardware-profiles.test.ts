/**
 * Profiles: the built-ins, the schema and its validator, expression and lookup profiles.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isUserError } from '../src/errors.js';
import {
  buildCostTable,
  COMPUTE_MODEL_NAMES,
  listBuiltinProfiles,
  loadProfile,
  parseProfile,
  profileProblems,
  profileSchema,
  profilesDir,
  weightStorageBytes,
  activationBytes,
} from '../src/hardware/index.js';
import { unsupportedKeywords, validateJson } from '../src/hardware/json-schema.js';
import { LENET5 } from './hardware-fixtures.js';

const BUILTIN = [
  'bismo-pynq-z1',
  'bismo-ultra96',
  'bitfusion-45nm',
  'cpu-arm-sdot',
  'eyeriss-systolic',
  'gpu-h100',
  'gpu-t4',
  'mcu-stm32f746',
];

/** A valid expression profile to mutate in the tests. */
function expressionProfile(): Record<string, unknown> {
  return {
    id: 'expr-test',
    description: 'expression test device',
    sources: [{ what: 'everything', source: 'hand-made for a test', estimate: true }],
    clockMHz: 100,
    batchSize: 2,
    compute: {
      model: 'expression',
      cycles: 'ceil(macs * wBits * aBits / 64 / k)',
      energyPJ: 'macs * 0.5 + weightBytes * 2',
      constants: { k: 16 },
    },
    memory: {
      offChip: { bandwidthGBps: 0.4, pJPerBit: 10 },
      onChip: [{ name: 'buf', sizeBytes: 65536, holds: ['inputs', 'outputs'], readPJPerBit: 0.25, writePJPerBit: 0.5 }],
    },
    staticPowerMw: 50,
    perLayerOverheadCycles: 10,
    perLayerOverheadUs: 1,
  };
}

function problemsOf(data: unknown): string[] {
  return profileProblems(data, 'test.json', tmpdir());
}

describe('built-in profiles', () => {
  it('are the eight the product ships, each loading without problems', () => {
    assert.deepEqual(
      listBuiltinProfiles().map((p) => p.id),
      BUILTIN,
    );
    for (const id of BUILTIN) assert.equal(loadProfile(id).id, id);
  });

  it('each say where their numbers come from, with estimates marked', () => {
    for (const id of BUILTIN) {
      const p = loadProfile(id);
      assert.ok(p.spec.sources.length >= 2, `${id} sources`);
      assert.ok(
        p.spec.sources.some((s) => s.estimate),
        `${id} marks its estimates`,
      );
      assert.ok(
        p.spec.sources.some((s) => !s.estimate),
        `${id} has published figures`,
      );
    }
  });

  it('carry the figures of the hardware notes', () => {
    const bf = loadProfile('bitfusion-45nm').spec;
    assert.deepEqual([bf.clockMHz, bf.memory?.offChip.bandwidthGBps, bf.memory?.offChip.pJPerBit], [500, 12, 15]);
    const ey = loadProfile('eyeriss-systolic').spec;
    assert.equal(ey.compute.model, 'systolic');
    if (ey.compute.model === 'systolic')
      assert.deepEqual([ey.compute.rows, ey.compute.cols, ey.compute.dataflow, ey.clockMHz], [12, 14, 'ws', 200]);
    // SCALE-Sim's configs/eyeriss.cfg: IfmapSramSzkB, FilterSramSzkB, OfmapSramSzkB 36; Bandwidth 10 words/cycle per port (2 GB/s at 200 MHz)
    assert.equal(ey.memory?.model, 'scalesim');
    assert.deepEqual(
      ey.memory?.onChip?.map((b) => [b.sizeBytes, b.bandwidthGBps]),
      [
        [36 * 1024, 2],
        [36 * 1024, 2],
        [36 * 1024, 2],
      ],
    );
    const mcu = loadProfile('mcu-stm32f746').spec;
    assert.deepEqual(mcu.limits, { flashBytes: 1024 * 1024, sramBytes: 320 * 1024 });
    const h100 = loadProfile('gpu-h100').spec;
    assert.ok(h100.compute.model === 'modes' && h100.compute.modes.every((m) => m.wBits >= 8));
  });

  it('an unknown name is an error listing the built-ins', () => {
    assert.throws(
      () => loadProfile('tpu-v9'),
      (e: unknown) => isUserError(e) && /tpu-v9/.test(e.message) && /gpu-t4/.test(e.message),
    );
  });
});

describe('schema', () => {
  it('is published as hardware-profiles/schema.json and uses only keywords the validator implements', () => {
    const schema = JSON.parse(readFileSync(join(profilesDir(), 'schema.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(unsupportedKeywords(profileSchema()), []);
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    const models = (schema.$defs as Record<string, { properties: { model: { enum: string[] } } }>).compute.properties
      .model.enum;
    assert.deepEqual(models, [...COMPUTE_MODEL_NAMES]);
  });

  it('reports a negative bandwidth with its JSON path', () => {
    const p = expressionProfile();
    (p.memory as { offChip: { bandwidthGBps: number } }).offChip.bandwidthGBps = -3;
    assert.deepEqual(problemsOf(p), ['$.memory.offChip.bandwidthGBps: must be > 0, got -3']);
  });

  it('reports a missing field, a wrong type and an unknown field', () => {
    const p = expressionProfile();
    delete p.clockMHz;
    p.batchSize = '2';
    p.staticPowerMW = 3;
    assert.deepEqual(problemsOf(p).sort(), [
      '$.batchSize: must be an integer, got string "2"',
      '$.clockMHz: required field is missing',
      '$.staticPowerMW: unknown field (allowed: $schema, id, description, sources, clockMHz, batchSize, compute, memory, staticPowerMw, perLayerOverheadCycles, perLayerOverheadUs, limits)',
    ]);
  });

  it('reports an unknown compute model by listing the valid ones', () => {
    const p = expressionProfile();
    p.compute = { model: 'quantum' };
    assert.deepEqual(problemsOf(p), [
      '$.compute.model: must be one of "bit-serial", "bit-fusion", "modes", "systolic", "expression", "lookup", got string "quantum"',
    ]);
  });

  it('checks the fields of the chosen compute model', () => {
    const p = expressionProfile();
    p.compute = { model: 'systolic', rows: 0, cols: 14, dataflow: 'rs', pJPerMac: 0.3 };
    assert.deepEqual(problemsOf(p).sort(), [
      '$.compute.bitScaling: required field is missing',
      '$.compute.dataflow: must be one of "ws", "os", "is", got string "rs"',
      '$.compute.rows: must be >= 1, got 0',
    ]);
  });

  it('requires a memory section except for lookup profiles, and a source list with estimates marked', () => {
    const p = expressionProfile();
    delete p.memory;
    p.sources = [{ what: 'x', source: 'y' }];
    assert.deepEqual(problemsOf(p).sort(), [
      '$.memory: required field is missing',
      '$.sources[0].estimate: required field is missing',
    ]);
  });

  it('the validator handles nested arrays, enums and if/then/else generically', () => {
    const schema = {
      type: 'object',
      properties: { xs: { type: 'array', items: { enum: [1, 2] }, uniqueItems: true } },
      if: { required: ['a'] },
      then: { required: ['b'] },
      else: { required: ['c'] },
    } as const;
    assert.deepEqual(validateJson({ xs: [1, 3, 1], a: 1 }, schema as never), [
      '$.xs[1]: must be one of 1, 2, got 3',
      '$.xs[2]: repeats $.xs[0]',
      '$.b: required field is missing',
    ]);
    assert.deepEqual(validateJson({}, schema as never), ['$.c: required field is missing']);
  });
});

describe('expression profiles', () => {
  it('cost a layer exactly as a hand computation', () => {
    const profile = parseProfile(expressionProfile(), 'expr-test.json');
    const table = buildCostTable(profile, LENET5, [4, 8]);
    const conv2 = LENET5[1];
    const c = table.layerCost(1, 4, 8);
    // batch 2: macs = 2 * 153,600; cycles = ceil(macs * 4 * 8 / 64 / 16) = 9,600
    const macs = 2 * 153600;
    assert.equal(c.computeCycles, Math.ceil((macs * 32) / 64 / 16));
    assert.equal(c.computeCycles, 9600);
    // traffic: weights at 4 bits (2,400 / 2 + 16 scales * 4 + 16 bias * 4) + 2 x 864 in + 2 x 1,024 out at 8 bits
    const wBytes = 1200 + 64 + 64;
    assert.equal(weightStorageBytes(conv2, 4), wBytes);
    const inBytes = activationBytes(2 * 864, 8);
    const outBytes = activationBytes(2 * 1024, 8);
    const traffic = wBytes + inBytes + outBytes;
    assert.equal(c.offChipBytes, traffic);
    const bytesPerCycle = 0.4e9 / 100e6; // 4
    assert.equal(c.memoryCycles, traffic / bytesPerCycle);
    assert.equal(c.bound, 'compute');
    const latencyMs = (Math.max(9600, traffic / bytesPerCycle) + 10) / (100 * 1000) + 1 / 1000;
    assert.equal(c.latencyMs, latencyMs);
    const computePJ = macs * 0.5 + wBytes * 2;
    const memoryPJ = traffic * 8 * 10 + (inBytes + outBytes) * 8 * (0.25 + 0.5);
    assert.ok(Math.abs(c.energyUj - ((computePJ + memoryPJ) / 1e6 + 50 * latencyMs)) < 1e-9);
    assert.equal(c.weightBytes, wBytes);
    assert.equal(c.activationBytes, inBytes + outBytes);
  });

  it('a typo in a formula is a load error naming the field', () => {
    const p = expressionProfile();
    (p.compute as Record<string, unknown>).cycles = 'macs * (wBits + ';
    const problems = problemsOf(p);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^\$\.compute\.cycles: cannot parse "macs \* \(wBits \+ ": /);
  });

  it('an unknown variable or function is a load error naming the field and listing the variables', () => {
    const p = expressionProfile();
    (p.compute as Record<string, unknown>).energyPJ = 'macz * 2';
    (p.compute as Record<string, unknown>).cycles = 'evaluate(macs)';
    const problems = problemsOf(p);
    assert.equal(problems.length, 2);
    assert.match(problems[0], /^\$\.compute\.cycles: unknown function 'evaluate'/);
    assert.match(problems[1], /^\$\.compute\.energyPJ: unknown variable 'macz' \(known: macs, params, /);
  });

  it('a value that is negative or not finite for some layer is an error naming the layer and field', () => {
    const p = expressionProfile();
    (p.compute as Record<string, unknown>).cycles = 'macs / (wBits - 4)';
    const profile = parseProfile(p, 'expr-test.json');
    assert.throws(
      () => buildCostTable(profile, LENET5, [4, 8]),
      (e: unknown) =>
        isUserError(e) &&
        /expr-test\.json \$\.compute\.cycles: evaluates to Infinity for layer 'conv1' at W4A4/.test(e.message),
    );
  });
});

describe('lookup profiles', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bitalloc-lookup-'));
  const measured = (layer: string, i: number, w: number, a: number) => ({
    layer,
    wBits: w,
    aBits: a,
    latencyMs: (i + 1) * w * a * 0.001,
    energyUj: (i + 1) * (w + a),
  });
  const entries = LENET5.flatMap((l, i) => [4, 8].flatMap((w) => [4, 8].map((a) => measured(l.name, i, w, a))));
  const profileFor = (table: string) => ({
    id: 'lenet5-measured',
    description: 'measured LeNet-5 latencies',
    sources: [{ what: 'per-layer latency and energy', source: 'measured for this test', estimate: false }],
    clockMHz: 1000,
    batchSize: 1,
    compute: { model: 'lookup', network: 'lenet5', table },
  });

  function writeProfile(name: string, tableFile: string): string {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(profileFor(tableFile)));
    return file;
  }

  it('read from a JSON table: the measured values are the layer costs', () => {
    writeFileSync(join(dir, 'lenet5.json'), JSON.stringify({ entries }));
    const profile = loadProfile(writeProfile('from-json.json', 'lenet5.json'));
    const table = buildCostTable(profile, LENET5);
    assert.deepEqual(table.bitChoices, [4, 8]);
    const c = table.layerCost(2, 8, 4);
    assert.equal(c.latencyMs, 3 * 32 * 0.001);
    assert.equal(c.energyUj, 3 * 12);
    assert.equal(c.computeCycles, 3 * 32 * 0.001 * 1000 * 1000);
  });

  it('read from a CSV table gives the same costs as from JSON', () => {
    const csv = [
      'layer,wBits,aBits,latencyMs,energyUj',
      ...entries.map((e) => `${e.layer},${e.wBits},${e.aBits},${e.latencyMs},${e.energyUj}`),
    ].join('\n');
    writeFileSync(join(dir, 'lenet5.csv'), csv + '\n');
    const fromCsv = buildCostTable(loadProfile(writeProfile('from-csv.json', 'lenet5.csv')), LENET5);
    const fromJson = buildCostTable(loadProfile(writeProfile('from-json2.json', 'lenet5.json')), LENET5);
    const bits = LENET5.map((_, i) => ({ wBits: i % 2 ? 4 : 8, aBits: 4 }));
    assert.deepEqual(fromCsv.costAllocation(bits), fromJson.costAllocation(bits));
  });

  it('a layer missing from the table is an error naming the layer and the table file', () => {
    writeFileSync(join(dir, 'no-fc3.json'), JSON.stringify(entries.filter((e) => e.layer !== 'fc3')));
    const profile = loadProfile(writeProfile('no-fc3-profile.json', 'no-fc3.json'));
    assert.throws(
      () => buildCostTable(profile, LENET5),
      (e: unknown) => isUserError(e) && /no-fc3\.json/.test(e.message) && /no layer 'fc3'/.test(e.message),
    );
  });

  it('a missing bit pair is an error, not a guess', () => {
    const csv = [
      'layer,wBits,aBits,latencyMs,energyUj',
      ...entries
        .filter((e) => !(e.layer === 'conv2' && e.wBits === 4 && e.aBits === 8))
        .map((e) => `${e.layer},${e.wBits},${e.aBits},${e.latencyMs},${e.energyUj}`),
    ];
    writeFileSync(join(dir, 'gap.csv'), csv.join('\n'));
    const profile = loadProfile(writeProfile('gap-profile.json', 'gap.csv'));
    assert.throws(
      () => buildCostTable(profile, LENET5),
      (e: unknown) =>
        isUserError(e) && /gap\.csv/.test(e.message) && /no entry for layer 'conv2' at W4A8/.test(e.message),
    );
  });

  it('a malformed CSV row is a load error naming the line and column', () => {
    writeFileSync(join(dir, 'bad.csv'), 'layer,wBits,aBits,latencyMs,energyUj\nconv1,8,8,fast,1\nconv1,4,99,1,1\n');
    const file = writeProfile('bad-csv-profile.json', 'bad.csv');
    assert.throws(
      () => loadProfile(file),
      (e: unknown) =>
        isUserError(e) &&
        /line 2, column latencyMs: not a number: "fast"/.test(e.message) &&
        /line 3, column aBits: must be <= 32, got 99/.test(e.message),
    );
  });
});
