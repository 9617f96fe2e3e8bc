/**
 * Numbers a profile cannot mean: non-finite or implausible figures, expressions that blow up on real
 * layers (found by `profile validate`), and measured rows that rise when bits drop (one behaviour and
 * one warning in `simulate` and `table`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../src/cli/main.js';
import { expressionRangeProblems } from '../src/hardware/checks.js';
import { loadProfile, parseProfile, profileProblems } from '../src/hardware/index.js';
import { LENET5 } from './hardware-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bitalloc-checks-'));

function base(): Record<string, unknown> {
  return {
    id: 'checks',
    description: 'a device for the checks',
    sources: [{ what: 'all', source: 'test', estimate: true }],
    clockMHz: 100,
    batchSize: 1,
    compute: { model: 'bit-fusion', macsPerCycleAt8x8: 64, pJPerCycle: 10 },
    memory: { offChip: { bandwidthGBps: 1, pJPerBit: 10 } },
  };
}

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

describe('profile numbers are finite and plausible', () => {
  it('"clockMHz": 1e999 (Infinity once parsed) is an error naming the field', () => {
    const text = JSON.stringify(base()).replace('"clockMHz":100', '"clockMHz":1e999');
    const problems = profileProblems(JSON.parse(text), 'p.json');
    assert.deepEqual(problems, [
      '$.clockMHz: must be a finite number, got Infinity (a number too large for a double, such as 1e999)',
    ]);
  });

  it('macsPerCycleAt8x8: 1e-300 is outside the plausible range', () => {
    const p = base();
    (p.compute as Record<string, unknown>).macsPerCycleAt8x8 = 1e-300;
    assert.deepEqual(profileProblems(p, 'p.json'), ['$.compute.macsPerCycleAt8x8: must be >= 0.000001, got 1e-300']);
  });

  it('an expression constant of 1e999 is an error naming the constant', () => {
    const p = {
      ...base(),
      compute: { model: 'expression', cycles: 'macs / lanes', energyPJ: 'macs', constants: { lanes: Infinity } },
    };
    assert.ok(
      profileProblems(p, 'p.json').some((x) => /^\$\.compute\.constants\.lanes: must be a finite number/.test(x)),
    );
  });
});

describe('profile validate evaluates expressions over real layers', () => {
  const withExpr = (cycles: string, energyPJ = 'macs') =>
    parseProfile({ ...base(), compute: { model: 'expression', cycles, energyPJ } }, 'e.json');
  const sets = [{ name: 'lenet5', layers: LENET5 }];

  it('refuses macs / 0 (Infinity), naming the field, the layer and the bits', () => {
    assert.deepEqual(expressionRangeProblems(withExpr('macs / 0'), sets), [
      `$.compute.cycles: "macs / 0" evaluates to Infinity for layer 'conv1' at W1A1 of model lenet5; it must give a finite number >= 0 for every layer and bit-width`,
    ]);
  });

  it('refuses macs - 1e9 (negative) in the energy expression', () => {
    const problems = expressionRangeProblems(withExpr('macs', 'macs - 1e9'), sets);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^\$\.compute\.energyPJ: "macs - 1e9" evaluates to -999913600 for layer 'conv1'/);
  });

  it('refuses macs ^ 1000 (overflow)', () => {
    assert.match(expressionRangeProblems(withExpr('macs ^ 1000'), sets)[0], /"macs \^ 1000" evaluates to Infinity/);
  });

  it('accepts a sound expression, and the CLI exits 1 on a bad one over the zoo models', async () => {
    assert.deepEqual(expressionRangeProblems(withExpr('macs * wBits * aBits / 64 + 10'), sets), []);
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({ ...base(), compute: { model: 'expression', cycles: 'macs / 0', energyPJ: 'macs' } }),
    );
    const r = await cli('profile', 'validate', file);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /\$\.compute\.cycles: "macs \/ 0" evaluates to Infinity .* of model lenet5 \(also in cnn-small/,
    );
  });
});

describe('a measured row that rises when bits drop', () => {
  // conv1 at W4A4 is slower than at W8A8 (the rest scales down with the bits)
  const rows = LENET5.flatMap((l) =>
    [4, 8].flatMap((w) =>
      [4, 8].map((a) => ({
        layer: l.name,
        wBits: w,
        aBits: a,
        latencyMs: l.name === 'conv1' && w === 4 && a === 4 ? 2 : (w * a) / 64,
        energyUj: w * a,
      })),
    ),
  );
  const profileFile = join(dir, 'rising.json');
  writeFileSync(
    join(dir, 'rising.csv'),
    [
      'layer,wBits,aBits,latencyMs,energyUj',
      ...rows.map((r) => `${r.layer},${r.wBits},${r.aBits},${r.latencyMs},${r.energyUj}`),
    ].join('\n'),
  );
  writeFileSync(
    profileFile,
    JSON.stringify({
      id: 'rising',
      description: 'd',
      sources: [{ what: 'a', source: 'b', estimate: false }],
      clockMHz: 100,
      batchSize: 1,
      compute: { model: 'lookup', table: 'rising.csv' },
    }),
  );

  it('simulate and table give the same cost for it, the wider setting, with one warning naming the row', async () => {
    assert.equal(loadProfile(profileFile).id, 'rising');
    const sim = await cli(
      'profile',
      'simulate',
      '--profile',
      profileFile,
      '--model',
      'lenet5',
      '--wbits',
      '4',
      '--abits',
      '4',
      '--json',
    );
    assert.equal(sim.code, 0, sim.stderr);
    const simConv1 = (JSON.parse(sim.stdout) as { layers: { name: string; latencyMs: number }[] }).layers.find(
      (l) => l.name === 'conv1',
    )?.latencyMs;
    const tab = await cli('profile', 'table', '--profile', profileFile, '--model', 'lenet5', '--bits', '4,8', '--json');
    assert.equal(tab.code, 0, tab.stderr);
    const tabConv1 = (
      JSON.parse(tab.stdout) as { rows: { layer: string; wBits: number; aBits: number; latencyMs: number }[] }
    ).rows.find((r) => r.layer === 'conv1' && r.wBits === 4 && r.aBits === 4)?.latencyMs;
    assert.equal(simConv1, 0.5); // the cheapest wider measurement (W4A8 and W8A4: 4 * 8 / 64 ms)
    assert.equal(tabConv1, simConv1);
    for (const r of [sim, tab]) {
      const warnings = r.stderr.split('\n').filter((l) => /rose when bits were lowered/.test(l));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0], /1 cost rose when bits were lowered: layer 'conv1' at W4A4 \(latency\)/);
    }
  });
});
