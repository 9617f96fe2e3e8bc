/**
 * `bitalloc profile ...`: `validate` as a user runs it (a child process: exit code, stdout, stderr);
 * the other subcommands through the CLI's main() in this process (starting the CLI costs a second
 * or more of CPU per process).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../src/cli/main.js';
import { profilesDir } from '../src/hardware/index.js';
import { LENET5 } from './hardware-fixtures.js';

const ROOT = dirname(profilesDir());
const BIN = join(ROOT, 'bin', 'bitalloc.js');
const dir = mkdtempSync(join(tmpdir(), 'bitalloc-cli-'));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bitalloc(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args, '--log-level', 'warn'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the CLI in this process, capturing what it writes. Not concurrent-safe: use in sequential tests. */
async function inProcess(...args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = (chunk: string | Uint8Array) => ((stdout += String(chunk)), true);
  process.stderr.write = (chunk: string | Uint8Array) => ((stderr += String(chunk)), true);
  let code: number | null = null;
  try {
    code = await main([...args, '--log-level', 'warn', '--backend', 'cpu']);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return { code, stdout, stderr };
}

function write(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

function profile(over: (p: Record<string, unknown>) => void): Record<string, unknown> {
  const p: Record<string, unknown> = {
    id: 'cli-test',
    description: 'a device for the CLI tests',
    sources: [{ what: 'all', source: 'test', estimate: true }],
    clockMHz: 100,
    batchSize: 1,
    compute: { model: 'expression', cycles: 'macs * wBits * aBits / 64', energyPJ: 'macs' },
    memory: { offChip: { bandwidthGBps: 1, pJPerBit: 10 } },
  };
  over(p);
  return p;
}

const STACK_LINE = /^\s+at .+(\(|:\d+:\d+)/m;

describe('bitalloc profile validate', { concurrency: true }, () => {
  const cases: [string, string | Record<string, unknown>, RegExp][] = [
    [
      'typo.json',
      profile((p) => ((p.compute as Record<string, string>).cycles = 'macs * * wBits')),
      /\$\.compute\.cycles: cannot parse/,
    ],
    [
      'unknown-var.json',
      profile((p) => ((p.compute as Record<string, string>).energyPJ = 'macs * pJ')),
      /\$\.compute\.energyPJ: unknown variable 'pJ'/,
    ],
    [
      'negative-bw.json',
      profile((p) => ((p.memory as { offChip: { bandwidthGBps: number } }).offChip.bandwidthGBps = -1)),
      /\$\.memory\.offChip\.bandwidthGBps: must be > 0, got -1/,
    ],
    ['missing.json', profile((p) => delete p.batchSize), /\$\.batchSize: required field is missing/],
    ['wrong-type.json', profile((p) => (p.clockMHz = 'fast')), /\$\.clockMHz: must be a number, got string "fast"/],
    [
      'unknown-model.json',
      profile((p) => (p.compute = { model: 'analog' })),
      /\$\.compute\.model: must be one of "bit-serial", .*got string "analog"/,
    ],
    ['not-json.json', '{ "id": "x", ', /\$: not valid JSON/],
  ];
  for (const [name, content, expected] of cases) {
    it(`${name}: exit 1, the file and JSON path on stderr, no stack trace`, async () => {
      const file = write(name, content);
      const r = await bitalloc('profile', 'validate', file);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.startsWith('error: '), r.stderr);
      assert.ok(r.stderr.includes(file), r.stderr);
      assert.match(r.stderr, expected);
      assert.doesNotMatch(r.stderr, STACK_LINE);
      assert.equal(r.stdout, '');
    });
  }

  it('a valid file: exit 0 and says so', async () => {
    const file = write(
      'valid.json',
      profile(() => undefined),
    );
    const r = await inProcess('profile', 'validate', file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid hardware profile 'cli-test'/);
  });
});

describe('bitalloc profile list / show / simulate / table', () => {
  const layersFile = write('lenet5.layers.json', { layers: LENET5 });

  it('list --json names the eight built-in profiles', async () => {
    const r = await inProcess('profile', 'list', '--json');
    assert.equal(r.code, 0, r.stderr);
    const ids = (JSON.parse(r.stdout) as { id: string }[]).map((p) => p.id);
    assert.deepEqual(ids, [
      'bismo-pynq-z1',
      'bismo-ultra96',
      'bitfusion-45nm',
      'cpu-arm-sdot',
      'eyeriss-systolic',
      'gpu-h100',
      'gpu-t4',
      'mcu-stm32f746',
    ]);
  });

  it('show prints the compute model, limits and the sources with estimates marked', async () => {
    const r = await inProcess('profile', 'show', 'mcu-stm32f746');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /compute: modes int8 SMLAD W8A8/);
    assert.match(r.stdout, /limits: flash 1,048,576 B, SRAM 327,680 B/);
    assert.match(r.stdout, /\(estimate\) /);
  });

  it('simulate --json gives per-layer latency, energy, bound and the totals', async () => {
    const r = await inProcess(
      'profile',
      'simulate',
      '--profile',
      'bitfusion-45nm',
      '--layers',
      layersFile,
      '--wbits',
      '4',
      '--abits',
      '4',
      '--json',
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      layers: { name: string; latencyMs: number; energyUj: number; bound: string }[];
      total: { latencyMs: number; energyUj: number; sizeBytes: number; peakMemoryBytes: number; fits: boolean };
    };
    assert.deepEqual(
      out.layers.map((l) => l.name),
      ['conv1', 'conv2', 'fc1', 'fc2', 'fc3'],
    );
    for (const l of out.layers) assert.ok(l.latencyMs > 0 && l.energyUj > 0 && ['compute', 'memory'].includes(l.bound));
    const sum = out.layers.reduce((s, l) => s + l.latencyMs, 0);
    assert.ok(Math.abs(sum - out.total.latencyMs) < 1e-12);
    assert.equal(out.total.peakMemoryBytes, (784 + 3456) / 2);
    assert.equal(out.total.fits, true);
  });

  it('simulate --bits-file reports an MCU model that does not fit, naming the layer', async () => {
    // 200x200x1 in + 196x196x8 out = 347,328 activation bytes at 8 bits > 327,680 of SRAM
    const big = [
      {
        ...LENET5[0],
        name: 'big',
        outChannels: 8,
        params: 200,
        biasParams: 8,
        inSize: [200, 200],
        outSize: [196, 196],
        inElements: 40000,
        outElements: 196 * 196 * 8,
        macs: 196 * 196 * 200,
      },
    ];
    const file = write('big.layers.json', big);
    const bits = write('big.bits.json', { layers: [{ name: 'big', wBits: 4, aBits: 8 }] });
    const r = await inProcess(
      'profile',
      'simulate',
      '--profile',
      'mcu-stm32f746',
      '--layers',
      file,
      '--bits-file',
      bits,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /fits: NO — layer big needs 347,328 B of activations, SRAM has 327,680 B/);
  });

  it('simulate with a bits file that names an unknown layer fails with the file and entry', async () => {
    const bits = write('wrong.bits.json', { layers: [{ name: 'conv7', wBits: 4, aBits: 4 }] });
    const r = await inProcess(
      'profile',
      'simulate',
      '--profile',
      'gpu-t4',
      '--layers',
      layersFile,
      '--bits-file',
      bits,
    );
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(bits));
    assert.match(r.stderr, /\$\.layers\[0\]\.name: the model has no quantizable layer 'conv7'/);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });

  it('table --csv prints one row per layer and bit pair', async () => {
    const r = await inProcess(
      'profile',
      'table',
      '--profile',
      'eyeriss-systolic',
      '--layers',
      layersFile,
      '--bits',
      '2,4,8',
      '--csv',
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(
      lines[0],
      'layer,wBits,aBits,latencyMs,energyUj,computeCycles,memoryCycles,bound,weightBytes,activationBytes,offChipBytes',
    );
    assert.equal(lines.length, 1 + 5 * 9);
    assert.match(lines[1], /^conv1,2,2,/);
  });

  it('simulate --model takes the inventory of a zoo model', async () => {
    const r = await inProcess(
      'profile',
      'simulate',
      '--profile',
      'bitfusion-45nm',
      '--model',
      'lenet5',
      '--wbits',
      '8',
      '--abits',
      '8',
      '--json',
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      layers: { name: string; bound: string }[];
      total: { sizeBytes: number; fits: boolean };
    };
    assert.equal(out.layers.length, 5);
    assert.ok(out.total.sizeBytes > 40000 && out.total.fits);
  });

  it('simulate --model with an unknown model is an error without a stack trace', async () => {
    const r = await inProcess(
      'profile',
      'simulate',
      '--profile',
      'bitfusion-45nm',
      '--model',
      'lenet7',
      '--wbits',
      '8',
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown model 'lenet7'/);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });

  it('a table exported with `table --csv` reads back as a lookup profile with the same costs', async () => {
    const exported = await inProcess(
      'profile',
      'table',
      '--profile',
      'bitfusion-45nm',
      '--model',
      'lenet5',
      '--bits',
      '2,4,8',
      '--csv',
    );
    assert.equal(exported.code, 0, exported.stderr);
    writeFileSync(join(dir, 'exported.csv'), exported.stdout);
    const lookup = write('exported-profile.json', {
      id: 'exported',
      description: 'read back',
      sources: [{ what: 'table', source: 'exported by the test', estimate: true }],
      clockMHz: 500,
      batchSize: 1,
      compute: { model: 'lookup', network: 'lenet5', table: 'exported.csv' },
    });
    const bitsFile = write('mixed.bits.json', {
      layers: [
        { name: 'conv1', wBits: 8, aBits: 8 },
        { name: 'conv2', wBits: 4, aBits: 8 },
        { name: 'fc1', wBits: 2, aBits: 4 },
        { name: 'fc2', wBits: 4, aBits: 4 },
        { name: 'fc3', wBits: 8, aBits: 2 },
      ],
    });
    const viaLookup = await inProcess(
      'profile',
      'simulate',
      '--profile',
      lookup,
      '--model',
      'lenet5',
      '--bits-file',
      bitsFile,
      '--json',
    );
    const direct = await inProcess(
      'profile',
      'simulate',
      '--profile',
      'bitfusion-45nm',
      '--model',
      'lenet5',
      '--bits-file',
      bitsFile,
      '--json',
    );
    assert.equal(viaLookup.code, 0, viaLookup.stderr);
    const a = JSON.parse(viaLookup.stdout) as { total: Record<string, number>; layers: { latencyMs: number }[] };
    const b = JSON.parse(direct.stdout) as { total: Record<string, number>; layers: { latencyMs: number }[] };
    for (const k of ['latencyMs', 'energyUj', 'sizeBytes', 'peakMemoryBytes'])
      assert.ok(Math.abs(a.total[k] - b.total[k]) <= 1e-12 * b.total[k], k);
  });

  it('the example profiles in hardware-profiles/examples validate', async () => {
    for (const f of ['expression-npu.json', 'lookup-lenet5.json']) {
      const r = await inProcess('profile', 'validate', join(ROOT, 'hardware-profiles', 'examples', f));
      assert.equal(r.code, 0, r.stderr);
    }
  });
});
