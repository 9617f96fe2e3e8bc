import { test } from 'node:test';
import assert from 'node:assert/strict';
import { solveMultipleChoiceKnapsack, type KnapsackOption, type KnapsackProblem } from '../src/solvers/knapsack.js';
import { Rng } from '../src/util/rng.js';

/** Exhaustive enumeration: the reference the solver must equal. Costs summed in group order. */
function bruteForce(problem: KnapsackProblem): { value: number; choice: number[] } | null {
  const n = problem.groups.length;
  const m = problem.budgets.length;
  const pick = new Array<number>(n).fill(0);
  let best: { value: number; choice: number[] } | null = null;
  for (;;) {
    const totals = new Array<number>(m).fill(0);
    let value = 0;
    for (let l = 0; l < n; l++) {
      const o = (problem.groups[l] as KnapsackOption[])[pick[l]];
      value += o.value;
      o.cost.forEach((c, j) => (totals[j] = totals[j] + c));
    }
    if (totals.every((t, j) => t <= problem.budgets[j]) && (best === null || value < best.value)) {
      best = { value, choice: [...pick] };
    }
    let l = 0;
    while (l < n && (pick[l] = pick[l] + 1) === (problem.groups[l] as KnapsackOption[]).length) pick[l++] = 0;
    if (l === n) return best;
  }
}

/** Bit-allocation-shaped instance: more bits cost more and lower the sensitivity, plus noise. */
function randomProblem(rng: Rng, layers: number, options: number, budgets: number, tightness: number): KnapsackProblem {
  const groups: KnapsackOption[][] = [];
  for (let l = 0; l < layers; l++) {
    const size = 1 + rng.next() * 9;
    const g: KnapsackOption[] = [];
    for (let k = 0; k < options; k++) {
      const cost: number[] = [];
      for (let j = 0; j < budgets; j++) cost.push(size * (k + 1) * (0.5 + rng.next()) + rng.next());
      g.push({ cost, value: (options - k) * (0.2 + rng.next()) * (1 + rng.next() * 3) + rng.next() });
    }
    groups.push(g);
  }
  const minTotals = new Array<number>(budgets).fill(0);
  const maxTotals = new Array<number>(budgets).fill(0);
  for (const g of groups) {
    for (let j = 0; j < budgets; j++) {
      minTotals[j] = minTotals[j] + Math.min(...g.map((o) => o.cost[j]));
      maxTotals[j] = maxTotals[j] + Math.max(...g.map((o) => o.cost[j]));
    }
  }
  const b = minTotals.map((lo, j) => lo + tightness * (maxTotals[j] - lo));
  return { groups, budgets: b };
}

function checkAgainstBruteForce(
  seed: number,
  budgets: number,
  method: 'branch-and-bound' | 'frontier',
): { cases: number; infeasible: number } {
  const rng = new Rng(seed);
  let infeasible = 0;
  const cases = 300;
  for (let i = 0; i < cases; i++) {
    // Tightness below 0 makes some cases infeasible on purpose.
    const problem = randomProblem(rng, 6, 4, budgets, -0.05 + rng.next() * 0.9);
    const expected = bruteForce(problem);
    const got = solveMultipleChoiceKnapsack(problem, { method });
    if (expected === null) {
      infeasible++;
      assert.equal(got.status, 'infeasible', `case ${i}: expected infeasible`);
      continue;
    }
    assert.equal(got.status, 'optimal', `case ${i}: expected a solution`);
    if (got.status !== 'optimal') continue;
    assert.ok(
      Math.abs(got.value - expected.value) <= 1e-9 * Math.max(1, expected.value),
      `case ${i}: value ${got.value} vs ${expected.value}`,
    );
    // The returned choice is what it claims and meets every budget.
    let value = 0;
    got.totals.forEach((t, j) => assert.ok(t <= problem.budgets[j], `case ${i}: budget ${j} exceeded`));
    got.choice.forEach((k, l) => (value += (problem.groups[l] as KnapsackOption[])[k].value));
    assert.ok(Math.abs(value - got.value) < 1e-12 * Math.max(1, value));
  }
  return { cases, infeasible };
}

for (const method of ['branch-and-bound', 'frontier'] as const) {
  test(`knapsack (${method}) equals brute force on 300 random 6x4 cases with one budget`, (t) => {
    const r = checkAgainstBruteForce(11, 1, method);
    t.diagnostic(`${r.cases} cases, ${r.infeasible} infeasible`);
    assert.ok(r.infeasible > 0 && r.infeasible < r.cases, 'the case mix covers both outcomes');
  });

  test(`knapsack (${method}) equals brute force on 300 random 6x4 cases with two budgets`, (t) => {
    const r = checkAgainstBruteForce(12, 2, method);
    t.diagnostic(`${r.cases} cases, ${r.infeasible} infeasible`);
    assert.ok(r.infeasible > 0 && r.infeasible < r.cases);
  });

  test(`knapsack (${method}) equals brute force when many groups are identical (symmetry handling)`, () => {
    const rng = new Rng(14);
    for (let i = 0; i < 150; i++) {
      const templates = randomProblem(rng, 2, 4, 2, 0).groups;
      const groups = Array.from({ length: 6 }, () => rng.pick(templates));
      const lo = [0, 1].map((j) => groups.reduce((s, g) => s + Math.min(...g.map((o) => o.cost[j])), 0));
      const hi = [0, 1].map((j) => groups.reduce((s, g) => s + Math.max(...g.map((o) => o.cost[j])), 0));
      const problem = { groups, budgets: lo.map((v, j) => v + rng.next() * 0.8 * (hi[j] - v)) };
      const expected = bruteForce(problem);
      const got = solveMultipleChoiceKnapsack(problem, { method });
      if (expected === null) assert.equal(got.status, 'infeasible', `case ${i}`);
      else {
        assert.equal(got.status, 'optimal', `case ${i}`);
        if (got.status === 'optimal')
          assert.ok(Math.abs(got.value - expected.value) <= 1e-9 * Math.max(1, Math.abs(expected.value)), `case ${i}`);
      }
    }
  });
}

test('knapsack equals brute force on unstructured cases with three budgets and unrelated costs and values', () => {
  // Values and costs unrelated to each other (no monotone structure), 5 groups x 5 options.
  const rng = new Rng(13);
  for (let i = 0; i < 200; i++) {
    const groups: KnapsackOption[][] = [];
    for (let l = 0; l < 5; l++) {
      groups.push(
        Array.from({ length: 5 }, () => ({
          cost: [rng.int(10), rng.int(10), rng.next() * 10],
          value: rng.int(20) - 5,
        })),
      );
    }
    const problem = { groups, budgets: [10 + rng.int(25), 10 + rng.int(25), 10 + rng.next() * 25] };
    const expected = bruteForce(problem);
    for (const method of ['branch-and-bound', 'frontier'] as const) {
      const got = solveMultipleChoiceKnapsack(problem, { method });
      if (expected === null) assert.equal(got.status, 'infeasible', `${method} case ${i}`);
      else {
        assert.equal(got.status, 'optimal', `${method} case ${i}`);
        if (got.status === 'optimal') assert.ok(Math.abs(got.value - expected.value) < 1e-9, `${method} case ${i}`);
      }
    }
  }
});

test('knapsack reports infeasible when one budget cannot be met even at the cheapest options', () => {
  const groups = [
    [
      { cost: [3], value: 1 },
      { cost: [5], value: 0 },
    ],
    [
      { cost: [4], value: 2 },
      { cost: [6], value: 1 },
    ],
  ];
  const r = solveMultipleChoiceKnapsack({ groups, budgets: [6.5] });
  assert.equal(r.status, 'infeasible');
  if (r.status === 'infeasible') assert.match(r.reason, /budget 0/);
});

test('knapsack reports infeasible when budgets can be met only one at a time', () => {
  // Option A is cheap in budget 0, option B in budget 1: each budget alone is satisfiable, both together not.
  const groups = [
    [
      { cost: [1, 10], value: 0 },
      { cost: [10, 1], value: 0 },
    ],
    [
      { cost: [1, 10], value: 0 },
      { cost: [10, 1], value: 0 },
    ],
  ];
  for (const method of ['branch-and-bound', 'frontier'] as const) {
    const r = solveMultipleChoiceKnapsack({ groups, budgets: [5, 5] }, { method });
    assert.equal(r.status, 'infeasible', method);
    if (r.status === 'infeasible') assert.match(r.reason, /every budget at once/);
  }
});

test('knapsack accepts a total exactly equal to the budget', () => {
  const groups = [
    [
      { cost: [0.1], value: 5 },
      { cost: [0.2], value: 1 },
    ],
    [
      { cost: [0.1], value: 5 },
      { cost: [0.2], value: 1 },
    ],
  ];
  // 0.2 + 0.2 === 0.4 in double precision, the budget is met with equality.
  const r = solveMultipleChoiceKnapsack({ groups, budgets: [0.4] });
  assert.equal(r.status, 'optimal');
  if (r.status === 'optimal') assert.deepEqual(r.choice, [1, 1]);
});

test('knapsack ignores an infinite budget and reports totals for every budget', () => {
  const groups = [
    [
      { cost: [1, 100], value: 3 },
      { cost: [2, 200], value: 1 },
    ],
    [
      { cost: [1, 100], value: 3 },
      { cost: [2, 200], value: 2 },
    ],
  ];
  const r = solveMultipleChoiceKnapsack({ groups, budgets: [3, Infinity] });
  assert.equal(r.status, 'optimal');
  if (r.status === 'optimal') {
    assert.deepEqual(r.choice, [1, 0]);
    assert.deepEqual(r.totals, [3, 300]);
  }
  const none = solveMultipleChoiceKnapsack({ groups: [[{ cost: [5, 1], value: 0 }]], budgets: [Infinity, 0.5] });
  assert.equal(none.status, 'infeasible');
  if (none.status === 'infeasible') assert.match(none.reason, /budget 1/);
});

test('knapsack solves a 50-layer x 7-option two-budget instance and returns a choice within budget', (t) => {
  const rng = new Rng(21);
  const problem = randomProblem(rng, 50, 7, 2, 0.4);
  const start = performance.now();
  const r = solveMultipleChoiceKnapsack(problem);
  t.diagnostic(`status ${r.status}, ${r.nodes} nodes, ${(performance.now() - start).toFixed(0)} ms`);
  assert.equal(r.status, 'optimal');
  if (r.status === 'optimal') r.totals.forEach((v, j) => assert.ok(v <= problem.budgets[j]));
  // Both methods prove the same optimum.
  const other = solveMultipleChoiceKnapsack(problem, { method: 'branch-and-bound' });
  assert.equal(other.status, 'optimal');
  if (r.status === 'optimal' && other.status === 'optimal')
    assert.ok(Math.abs(r.value - other.value) <= 1e-9 * Math.abs(r.value));
});

test('knapsack says when the node limit stopped it', () => {
  const rng = new Rng(22);
  const problem = randomProblem(rng, 30, 6, 2, 0.5);
  for (const method of ['branch-and-bound', 'frontier'] as const) {
    const r = solveMultipleChoiceKnapsack(problem, { maxNodes: 40, method });
    assert.ok(r.status === 'nodeLimit' || r.status === 'unsolved', `${method}: status ${r.status}`);
  }
});
