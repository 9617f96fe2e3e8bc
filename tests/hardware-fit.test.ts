/**
 * Fitting a profile to measurements (`bitalloc profile fit`) and its error (`validate --against`):
 * recovery of known parameters from synthetic measurements, refusals of under-determined fits, the
 * measurements CSV and its errors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../src/cli/main.js';
import { isUserError } from '../src/errors.js';
import { errorSummary, fitProfile, predict } from '../src/hardware/fit.js';
import { loadProfile } from '../src/hardware/index.js';
import { parseMeasurements, type Measurement } from '../src/hardware/measurements.js';
import type { ModesSpec, ProfileSpec } from '../src/hardware/profile-types.js';
import type { LayerInfo } from '../src/models/layer-info.js';
import { convLayer, denseLayer, resnet20Layers } from './hardware-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bitalloc-fit-'));

/** ResNet-20's layers plus a memory-bound depthwise layer: compute- and memory-bound layers on cpu-arm-sdot. */
const LAYERS: LayerInfo[] = [
  ...resnet20Layers(),
  convLayer(21, 'dw', [32, 32], 64, 64, 3, 1, { kind: 'depthwise' }),
  denseLayer(22, 'fc2', 512, 256),
];

/** The device "as measured": cpu-arm-sdot with known parameters changed. */
function truth(): ProfileSpec {
  const s = structuredClone(loadProfile('cpu-arm-sdot').spec);
  (s.compute as ModesSpec).modes.forEach((m) => (m.macsPerCycle *= 1.7)); // throughput x1.7
  if (s.memory) s.memory.offChip.bandwidthGBps *= 0.6; // bandwidth x0.6 (15 -> 9 GB/s)
  s.perLayerOverheadUs = 5; // 2 -> 5 us
  s.staticPowerMw = 350; // 200 -> 350 mW
  (s.compute as ModesSpec).modes.forEach((m) => (m.pJPerMac *= 0.8)); // compute energy x0.8
  return s;
}

function synthetic(withEnergy: boolean): Measurement[] {
  const rows: Measurement[] = LAYERS.flatMap((layer, i) =>
    [8, 32].map((b) => ({ line: 2 + 2 * i + (b === 8 ? 0 : 1), layer, wBits: b, aBits: b, latencyMs: 0 })),
  );
  const p = predict(truth(), rows, 'truth.json');
  return rows.map((r, i) => ({ ...r, latencyMs: p.latencyMs[i], ...(withEnergy ? { energyUj: p.energyUj[i] } : {}) }));
}

const within = (actual: number, expected: number, rel = 0.01) =>
  assert.ok(Math.abs(actual / expected - 1) <= rel, `${actual} is not within ${rel * 100}% of ${expected}`);

describe('profile fit: recovery from synthetic measurements', () => {
  it('recovers throughput, bandwidth and overhead from latencies within 1%', () => {
    const base = loadProfile('cpu-arm-sdot').spec;
    const m = synthetic(false);
    const res = fitProfile(base, m, { label: 'cpu-arm-sdot.json' });
    const got = Object.fromEntries(res.free.map((f) => [f.name, f.after]));
    assert.deepEqual(Object.keys(got), ['throughput', 'bandwidth', 'overheadUs']);
    within(got.throughput, 1.7);
    within(got.bandwidth, 0.6);
    within(got.overheadUs, 5);
    const before = errorSummary(
      m.map((x) => x.latencyMs),
      res.before.latencyMs,
    );
    const after = errorSummary(
      m.map((x) => x.latencyMs),
      res.after.latencyMs,
    );
    assert.ok(before.mapePct > 10, `the unfitted profile is off (MAPE ${before.mapePct})`);
    assert.ok(after.maxPct < 0.1, `the fitted profile predicts every layer (max ${after.maxPct}%)`);
  });

  it('recovers compute energy and static power from energies within 1%', () => {
    const res = fitProfile(loadProfile('cpu-arm-sdot').spec, synthetic(true), { label: 'cpu-arm-sdot.json' });
    const got = Object.fromEntries(res.free.map((f) => [f.name, f.after]));
    assert.deepEqual(Object.keys(got), ['throughput', 'bandwidth', 'overheadUs', 'computeEnergy', 'staticPowerMw']);
    within(got.computeEnergy, 0.8);
    within(got.staticPowerMw, 350);
    within(got.throughput, 1.7);
  });
});

describe('profile fit: refuses what the measurements cannot determine', () => {
  const base = loadProfile('cpu-arm-sdot').spec;

  it('fewer measured figures than free parameters', () => {
    const m = synthetic(false).slice(0, 2);
    assert.throws(
      () => fitProfile(base, m, { label: 'p.json', free: ['throughput', 'overheadUs', 'clockMHz'] }),
      (e: unknown) =>
        isUserError(e) && /under-determined fit: 2 measured figures for 3 free parameters/.test(e.message),
    );
  });

  it('a parameter with no influence (static power without energies)', () => {
    assert.throws(
      () => fitProfile(base, synthetic(false), { label: 'p.json', free: ['throughput', 'staticPowerMw'] }),
      (e: unknown) => isUserError(e) && /cannot fit staticPowerMw/.test(e.message) && /--free/.test(e.message),
    );
  });

  it('two parameters the measurements cannot tell apart (clock and throughput)', () => {
    assert.throws(
      () => fitProfile(base, synthetic(false), { label: 'p.json', free: ['throughput', 'clockMHz'] }),
      (e: unknown) => isUserError(e) && /cannot tell clockMHz apart from throughput/.test(e.message),
    );
  });

  it('a lookup profile', () => {
    const lookup = { ...base, compute: { model: 'lookup' as const, entries: [] } };
    assert.throws(
      () => fitProfile(lookup, synthetic(false), { label: 'p.json' }),
      (e: unknown) => isUserError(e) && /no parameters to fit/.test(e.message),
    );
  });
});

describe('measurements CSV', () => {
  const LENET_LIKE = [convLayer(0, 'conv1', [28, 28], 1, 6, 5, 1), denseLayer(1, 'fc1', 256, 120)];

  it('reads rows by layer name and by geometry', () => {
    const byName = parseMeasurements(
      '# measured\nlayer,wBits,aBits,latencyMs,energyUj\nconv1,8,8,0.5,2\nfc1,8,8,0.25,\n',
      'm.csv',
      LENET_LIKE,
    );
    assert.deepEqual(
      byName.map((m) => [m.layer.name, m.line, m.latencyMs, m.energyUj]),
      [
        ['conv1', 3, 0.5, 2],
        ['fc1', 4, 0.25, undefined],
      ],
    );
    const byGeom = parseMeasurements(
      'kind,inChannels,outChannels,kernel,stride,inSize,outSize,wBits,aBits,latencyMs\nconv,16,32,3x3,1x1,32x32,32x32,8,8,1.5\n',
      'g.csv',
      null,
    );
    assert.equal(byGeom[0]?.layer.macs, 32 * 32 * 3 * 3 * 16 * 32);
  });

  it('names the file, line and column of a bad value', () => {
    assert.throws(
      () => parseMeasurements('layer,wBits,aBits,latencyMs\nconv1,8,8,fast\n', 'm.csv', LENET_LIKE),
      (e: unknown) =>
        isUserError(e) &&
        /m\.csv/.test(e.message) &&
        /line 2, column 4 \(latencyMs\): "fast" is not a latency/.test(e.message),
    );
    assert.throws(
      () => parseMeasurements('layer,wBits,aBits,latencyMs,speed\nconv1,8,8,1,2\n', 'm.csv', LENET_LIKE),
      (e: unknown) => isUserError(e) && /line 1, column 5: unknown column 'speed'/.test(e.message),
    );
  });

  it('names an unknown layer with its line and column', () => {
    assert.throws(
      () => parseMeasurements('layer,wBits,aBits,latencyMs\nconv1,8,8,1\nconv9,8,8,1\n', 'm.csv', LENET_LIKE),
      (e: unknown) =>
        isUserError(e) &&
        /line 3, column 1 \(layer\): unknown layer 'conv9'/.test(e.message) &&
        /conv1, fc1/.test(e.message),
    );
  });
});

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = (c: string | Uint8Array) => ((stdout += String(c)), true);
  process.stderr.write = (c: string | Uint8Array) => ((stderr += String(c)), true);
  try {
    const code = await main([...args, '--log-level', 'warn', '--backend', 'cpu']);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

describe('bitalloc profile fit / validate --against', () => {
  it('fits from a CSV, writes the fitted profile, and validate --against shows its error', async () => {
    const m = synthetic(false);
    const csv = join(dir, 'm.csv');
    const rows = m.map((x) => {
      const l = x.layer;
      return [
        l.kind,
        l.inChannels,
        l.outChannels,
        l.kernel.join('x'),
        l.stride.join('x'),
        l.inSize.join('x'),
        l.outSize.join('x'),
        x.wBits,
        x.aBits,
        x.latencyMs,
      ].join(',');
    });
    writeFileSync(
      csv,
      ['kind,inChannels,outChannels,kernel,stride,inSize,outSize,wBits,aBits,latencyMs', ...rows].join('\n'),
    );
    const out = join(dir, 'fitted.json');
    const r = await cli('profile', 'fit', '--profile', 'cpu-arm-sdot', '--measurements', csv, '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      after: { latency: { mapePct: number } };
      before: { latency: { mapePct: number } };
    };
    assert.ok(j.after.latency.mapePct < 0.1 && j.before.latency.mapePct > 10);
    const fitted = JSON.parse(readFileSync(out, 'utf8')) as ProfileSpec;
    within((fitted.compute as ModesSpec).modes[0]?.macsPerCycle, 32 * 1.7);
    const v = await cli('profile', 'validate', out, '--against', csv);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /latency: MAPE [0-9.e-]+%/);
  });

  it('refuses an under-determined fit with exit 1 and a message', async () => {
    const csv = join(dir, 'one.csv');
    writeFileSync(
      csv,
      'kind,inChannels,outChannels,kernel,stride,inSize,outSize,wBits,aBits,latencyMs\nconv,16,16,3x3,1x1,8x8,8x8,8,8,0.1\n',
    );
    const r = await cli(
      'profile',
      'fit',
      '--profile',
      'cpu-arm-sdot',
      '--measurements',
      csv,
      '--free',
      'throughput,overheadUs',
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /under-determined fit: 1 measured figure for 2 free parameters/);
  });
});
