import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReportCell, ReportGroup } from '../src/report/load.js';
import type { EpisodeRecord } from '../src/run/run-store.js';
import {
  episodesToFractionOfBest,
  groupStatistics,
  pairedDifference,
  statisticsCells,
  tQuantile975,
} from '../src/report/significance.js';

function episode(n: number, accuracy: number | null, feasible = true): EpisodeRecord {
  return {
    episode: n,
    bits: [{ wBits: 4, aBits: 4 }],
    accuracy,
    loss: null,
    latencyMs: 1,
    energyUj: 1,
    sizeBytes: 1,
    peakMemoryBytes: 1,
    feasible,
    reward: 0,
    wallMs: 10,
  };
}

function cell(
  agentName: string,
  seed: number,
  testAccuracy: number | null,
  extra: Partial<ReportCell> = {},
): ReportCell {
  return {
    run: 'r',
    id: `${agentName}-${seed}`,
    agent: agentName,
    agentName,
    profile: 'p',
    budget: 'b',
    budgetText: 'latency<=0.5x',
    seed,
    status: 'done',
    file: {} as ReportCell['file'],
    episodes: [],
    best: null,
    final:
      testAccuracy === null
        ? null
        : {
            bits: [],
            testAccuracy,
            latencyMs: 1,
            energyUj: 1,
            sizeBytes: 1,
            peakMemoryBytes: 1,
            feasible: true,
            wallSeconds: 1,
            episodesToBest: 1,
          },
    uniform: [],
    ...extra,
  };
}

function group(series: Record<string, ReportCell[]>): ReportGroup {
  const all = Object.values(series).flat();
  return {
    title: 't',
    key: 'k',
    profile: 'p',
    budget: 'b',
    budgetText: 'latency<=0.5x',
    series: Object.entries(series).map(([name, cells]) => ({ name, agentName: name, color: '#000', cells })),
    cells: all,
  };
}

test('the t quantile table gives the textbook values and the normal limit', () => {
  assert.equal(tQuantile975(1), 12.706);
  assert.equal(tQuantile975(4), 2.776);
  assert.equal(tQuantile975(30), 2.042);
  assert.equal(tQuantile975(100), 1.96);
  assert.ok(Number.isNaN(tQuantile975(0)));
});

test('a paired difference pairs by seed, ignores unpaired seeds and gives the t interval', () => {
  const a = new Map([
    [1, 0.9],
    [2, 0.8],
    [3, 0.85],
    [9, 0.1],
  ]);
  const b = new Map([
    [1, 0.88],
    [2, 0.79],
    [3, 0.8],
  ]);
  const d = pairedDifference(a, b);
  assert.ok(d);
  assert.equal(d.n, 3);
  assert.equal(d.wins, 3);
  // differences 0.02, 0.01, 0.05: mean 0.02667, sample std 0.02082, half-width 4.303 * 0.02082 / sqrt(3)
  assert.ok(Math.abs(d.mean - 0.08 / 3) < 1e-12);
  const std = Math.sqrt(((0.02 - 0.08 / 3) ** 2 + (0.01 - 0.08 / 3) ** 2 + (0.05 - 0.08 / 3) ** 2) / 2);
  assert.ok(Math.abs(d.std - std) < 1e-12);
  const half = (4.303 * std) / Math.sqrt(3);
  assert.ok(d.ci);
  assert.ok(Math.abs(d.ci[0] - (d.mean - half)) < 1e-12 && Math.abs(d.ci[1] - (d.mean + half)) < 1e-12);
});

test('one pair has no interval and no pairs give null', () => {
  const one = pairedDifference(new Map([[1, 0.5]]), new Map([[1, 0.6]]));
  assert.ok(one);
  assert.equal(one.ci, null);
  assert.equal(one.wins, 0);
  assert.equal(pairedDifference(new Map([[1, 0.5]]), new Map([[2, 0.6]])), null);
});

test('episodes to 99% of the best counts feasible evaluated episodes only', () => {
  const c = cell('ppo', 1, 0.9, {
    episodes: [
      episode(1, 0.5),
      episode(2, 0.99, false),
      episode(3, 0.8),
      episode(4, null),
      episode(5, 0.797),
      episode(6, 0.805),
    ],
  });
  // best so far: 0.5, 0.5, 0.8, 0.8, 0.8, 0.805 -> 99% of 0.805 = 0.79695, first reached at episode 3
  assert.equal(episodesToFractionOfBest(c), 3);
  assert.equal(episodesToFractionOfBest(cell('ppo', 1, 0.9, { episodes: [episode(1, null)] })), null);
});

test('group statistics compare each agent with random and the uniform agent, and name the best', () => {
  const g = group({
    ppo: [cell('ppo', 1, 0.92), cell('ppo', 2, 0.9), cell('ppo', 3, 0.91)],
    random: [cell('random', 1, 0.9), cell('random', 2, 0.89), cell('random', 3, 0.88)],
    uniform: [cell('uniform', 1, 0.85), cell('uniform', 2, 0.86), cell('uniform', 3, 0.84)],
  });
  const s = groupStatistics(g);
  assert.equal(s.bestAgent, 'ppo');
  assert.equal(s.uniformBaseline, 'uniform-agent');
  const ppo = s.agents.find((a) => a.agent === 'ppo');
  assert.ok(ppo?.vsRandom && ppo.vsUniform);
  assert.ok(Math.abs(ppo.vsRandom.mean - 0.02) < 1e-12);
  assert.ok(Math.abs(ppo.vsUniform.mean - 0.06) < 1e-12);
  assert.equal(ppo.vsRandom.wins, 3);
  const random = s.agents.find((a) => a.agent === 'random');
  assert.equal(random?.vsRandom, null, 'random is not compared with itself');
  const cells = statisticsCells(s, 'ppo');
  assert.match(cells[0] ?? '', /^\+2\.00 \[[-+]\d+\.\d\d, [-+]\d+\.\d\d\] \(3\/3\)$/);
  assert.match(cells[1] ?? '', /^\+6\.00 /);
  assert.deepEqual(statisticsCells(s, 'random').slice(0, 1), ['—']);
});

test('without a uniform agent the best feasible uniform point of each seed is the baseline', () => {
  const uni = (acc: number, feasible: boolean) => ({
    bits: { wBits: 4, aBits: 4 },
    accuracy: acc,
    latencyMs: 1,
    energyUj: 1,
    sizeBytes: 1,
    feasible,
  });
  const g = group({
    ppo: [
      cell('ppo', 1, 0.9, { uniform: [uni(0.95, false), uni(0.8, true), uni(0.7, true)] }),
      cell('ppo', 2, 0.9, { uniform: [uni(0.85, true)] }),
    ],
  });
  const s = groupStatistics(g);
  assert.equal(s.uniformBaseline, 'uniform-points');
  assert.equal(s.randomBaseline, null);
  const ppo = s.agents[0];
  assert.ok(ppo?.vsUniform);
  // seed 1: 0.9 - 0.8 (the 0.95 point does not fit), seed 2: 0.9 - 0.85
  assert.ok(Math.abs(ppo.vsUniform.mean - 0.075) < 1e-12);
  assert.equal(ppo.vsRandom, null);
});

test('a uniform or random series with no outcome yet (pending in a merged run) is no baseline', () => {
  const uni = { bits: { wBits: 4, aBits: 4 }, accuracy: 0.8, latencyMs: 1, energyUj: 1, sizeBytes: 1, feasible: true };
  const g = group({
    ppo: [cell('ppo', 1, 0.9, { uniform: [uni] })],
    uniform: [cell('uniform', 1, null, { status: 'pending' })],
    random: [cell('random', 1, null, { status: 'pending' })],
  });
  const s = groupStatistics(g);
  assert.equal(s.uniformBaseline, 'uniform-points');
  assert.equal(s.randomBaseline, null);
  assert.ok(Math.abs((s.agents[0]?.vsUniform?.mean ?? NaN) - 0.1) < 1e-12);
});
