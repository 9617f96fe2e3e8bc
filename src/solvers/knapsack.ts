/**
 * Exact multiple-choice knapsack: every group (layer) picks exactly one option; each option has a cost
 * vector over one or more additive budgets and a value (e.g. a sensitivity) to minimise.
 *
 *   minimise  sum_l value[l][c_l]   subject to   sum_l cost[l][c_l][j] <= budget[j]   for every budget j
 *
 * Exact (no discretisation of costs). Shared by both search methods:
 * - Budgets of Infinity are dropped (they constrain nothing); totals are still reported for them.
 * - Dominance within a group: an option that costs at least as much in every budget as another option
 *   of its group and is not worth less is dropped up front (it is never needed in an optimum).
 * - Feasibility pruning: partial cost + the cheapest completion, per budget, must fit.
 * - Value bound: partial value + the LP relaxation of the remaining groups (lower convex hull per group,
 *   segments taken greedily by efficiency) under each single budget and, with several budgets, under a
 *   surrogate constraint sum_j lambda_j cost_j <= sum_j lambda_j budget_j whose weights are tuned at the
 *   root (golden-section search on each weight) to maximise the bound; it must beat the incumbent.
 * - Incumbent before the search: the LP's greedy walk without its fractional step.
 * Methods (`method`, default 'auto'):
 * - 'branch-and-bound' (auto with one budget): depth first, options best value first, groups in order
 *   of decreasing value spread; along a run of identical groups the chosen option index never
 *   decreases (every choice is a permutation of one that does, with the same value and totals).
 * - 'frontier' (auto with several budgets): group by group, every kept partial choice is extended by
 *   every option; extensions that cannot fit or cannot beat the incumbent are dropped, then every one
 *   another dominates (no more cost in any budget, no more value). Much faster than depth first when
 *   two budgets both bind: it merges the many partial choices that differ only in order.
 * Arithmetic: feasibility pruning allows a relative slack of 1e-9 so that rounding never drops a
 * feasible completion; a complete choice is accepted only if its costs, summed in the caller's group
 * order, are <= each budget. Value pruning drops completions that do not beat the incumbent by a
 * relative 1e-9, so the value found equals exhaustive enumeration's to that precision (ties between
 * choices of equal value may resolve to a different choice).
 */

export interface KnapsackOption {
  /** One additive cost per budget (same length as `budgets`). */
  cost: readonly number[];
  /** What to minimise (e.g. the layer's sensitivity at this option). */
  value: number;
}

export interface KnapsackProblem {
  /** One list of options per group (layer); each group picks exactly one. */
  groups: readonly (readonly KnapsackOption[])[];
  /** Upper limit per cost dimension (Infinity = unconstrained). */
  budgets: readonly number[];
}

export interface KnapsackSolveOptions {
  /**
   * 'branch-and-bound' (depth first) or 'frontier' (breadth first over non-dominated partial choices);
   * 'auto' (default): branch and bound for one finite budget, frontier for several.
   */
  method?: 'auto' | 'branch-and-bound' | 'frontier';
  /** Stop after this many search nodes / partial choices (default 2e7); the result then says it is not proven optimal. */
  maxNodes?: number;
}

export type KnapsackResult =
  | {
      /** 'optimal': proven best; 'nodeLimit': best found before maxNodes ran out. */
      status: 'optimal' | 'nodeLimit';
      /** Index of the chosen option in each group (indices into the caller's lists). */
      choice: number[];
      value: number;
      /** Total cost per budget. */
      totals: number[];
      nodes: number;
    }
  | {
      /** 'infeasible': proven that no choice meets every budget; 'unsolved': maxNodes ran out first. */
      status: 'infeasible' | 'unsolved';
      reason: string;
      nodes: number;
    };

interface Prepared {
  /** Original index of each kept option. */
  orig: number[];
  cost: number[][];
  value: number[];
}

interface Segment {
  group: number;
  /** Option (index into the group's kept options) at the segment's end. */
  to: number;
  dCost: number;
  dValue: number;
  /** dValue / dCost (negative: value falls as cost rises). */
  slope: number;
}

const DEFAULT_MAX_NODES = 2e7;
const REL_SLACK = 1e-9;

function validate(problem: KnapsackProblem): void {
  const m = problem.budgets.length;
  if (m < 1) throw new RangeError('knapsack: at least one budget is required');
  for (const b of problem.budgets) {
    if (Number.isNaN(b) || b === -Infinity)
      throw new RangeError(`knapsack: a budget must be a number or Infinity, got ${b}`);
  }
  problem.groups.forEach((g, l) => {
    if (g.length === 0) throw new RangeError(`knapsack: group ${l} has no options`);
    g.forEach((o, k) => {
      if (o.cost.length !== m)
        throw new RangeError(`knapsack: group ${l} option ${k} has ${o.cost.length} costs, expected ${m}`);
      if (!Number.isFinite(o.value) || o.cost.some((c) => !Number.isFinite(c))) {
        throw new RangeError(`knapsack: group ${l} option ${k} has a non-finite cost or value`);
      }
    });
  });
}

/** Drops dominated options; keeps the first of identical ones. */
function prepareGroup(options: readonly KnapsackOption[]): Prepared {
  const keep: number[] = [];
  for (let k = 0; k < options.length; k++) {
    const a = options[k];
    let dominated = false;
    for (let o = 0; o < options.length && !dominated; o++) {
      if (o === k) continue;
      const b = options[o];
      let noWorse = b.value <= a.value;
      let strictly = b.value < a.value;
      for (let j = 0; j < a.cost.length && noWorse; j++) {
        const bc = b.cost[j];
        const ac = a.cost[j];
        if (bc > ac) noWorse = false;
        else if (bc < ac) strictly = true;
      }
      // b dominates a if no worse everywhere and strictly better somewhere, or identical and earlier.
      if (noWorse && (strictly || o < k)) dominated = true;
    }
    if (!dominated) keep.push(k);
  }
  keep.sort((x, y) => options[x].value - options[y].value || x - y);
  return {
    orig: keep,
    cost: keep.map((k) => [...options[k].cost]),
    value: keep.map((k) => options[k].value),
  };
}

/** Lower convex hull (cost on x, value on y) from the cheapest option down to the best value. */
function hullSegments(
  group: number,
  cost: readonly number[],
  value: readonly number[],
): { base: number; baseCost: number; baseOption: number; segments: Segment[] } {
  const pts = cost.map((c, k) => ({ c, v: value[k], k }));
  pts.sort((a, b) => a.c - b.c || a.v - b.v);
  const hull: { c: number; v: number; k: number }[] = [];
  for (const p of pts) {
    const last = hull[hull.length - 1];
    if (last && p.v >= last.v) continue; // costs more (or the same) and is not better
    while (hull.length >= 2) {
      const a = hull[hull.length - 2];
      const b = hull[hull.length - 1];
      // Remove b if it lies on or above the segment a -> p.
      if ((b.v - a.v) * (p.c - a.c) >= (p.v - a.v) * (b.c - a.c)) hull.pop();
      else break;
    }
    hull.push(p);
  }
  const first = hull[0];
  const segments: Segment[] = [];
  for (let i = 1; i < hull.length; i++) {
    const a = hull[i - 1];
    const b = hull[i];
    segments.push({ group, to: b.k, dCost: b.c - a.c, dValue: b.v - a.v, slope: (b.v - a.v) / (b.c - a.c) });
  }
  return { base: first.v, baseCost: first.c, baseOption: first.k, segments };
}

interface BoundDim {
  /** Weights of the budgets in this (possibly surrogate) constraint. */
  lambda: number[];
  /** Sum over depths d.. of the hull's base (cheapest) value and cost. */
  baseSuffix: number[];
  baseCostSuffix: number[];
  /** The option at each depth's hull base. */
  baseOption: number[];
  /** Every hull segment, most value saved per unit of cost first. */
  segments: Segment[];
  /** segmentsFrom[d]: the segments of groups d.., same order (filled for the dimensions the search uses). */
  segmentsFrom: Segment[][] | null;
}

function suffixSums(values: readonly number[]): number[] {
  const s = new Array<number>(values.length + 1).fill(0);
  for (let d = values.length - 1; d >= 0; d--) s[d] = s[d + 1] + values[d];
  return s;
}

function combine(lambda: readonly number[], c: readonly number[]): number {
  let s = 0;
  for (let j = 0; j < lambda.length; j++) if (lambda[j] !== 0) s += lambda[j] * c[j];
  return s;
}

/** LP relaxation of groups d.. under one constraint with capacity `cap`: greedy along the hull segments. */
function lpBound(dim: BoundDim, d: number, cap: number): number {
  if (!Number.isFinite(cap)) return -Infinity;
  let capLeft = cap - dim.baseCostSuffix[d];
  let v = dim.baseSuffix[d];
  const segments = d === 0 ? dim.segments : (dim.segmentsFrom as Segment[][])[d];
  for (const s of segments) {
    if (capLeft <= 0) break;
    if (s.dCost <= capLeft) {
      v += s.dValue;
      capLeft -= s.dCost;
    } else {
      v += s.dValue * (capLeft / s.dCost);
      capLeft = 0;
    }
  }
  return v;
}

/**
 * Surrogate weights for several budgets: start from lambda_j = 1 / (budget_j - cheapest total_j) and
 * improve the root LP bound by golden-section search on each weight's log-scale factor (two sweeps).
 */
function tuneSurrogate(
  budgets: readonly number[],
  minTotals: readonly number[],
  makeDim: (lambda: readonly number[]) => BoundDim,
  m: number,
): BoundDim {
  const lambda = budgets.map((b, j) => {
    if (!Number.isFinite(b)) return 0;
    const room = b - minTotals[j];
    return 1 / (room > 1e-9 * Math.max(1, Math.abs(b)) ? room : Math.max(1, Math.abs(b)));
  });
  const rootBound = (l: readonly number[]): { bound: number; dim: BoundDim } => {
    const dim = makeDim(l);
    return { bound: lpBound(dim, 0, combine(l, budgets)), dim };
  };
  let best = rootBound(lambda);
  const phi = (Math.sqrt(5) - 1) / 2;
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let j = 0; j < m; j++) {
      if (lambda[j] === 0) continue;
      const at = (logFactor: number): { bound: number; dim: BoundDim; l: number[] } => {
        const l = [...lambda];
        l[j] = lambda[j] * Math.exp(logFactor);
        return { ...rootBound(l), l };
      };
      let lo = -6;
      let hi = 6;
      let x1 = hi - phi * (hi - lo);
      let x2 = lo + phi * (hi - lo);
      let f1 = at(x1);
      let f2 = at(x2);
      for (let it = 0; it < 16; it++) {
        if (f1.bound >= f2.bound) {
          hi = x2;
          x2 = x1;
          f2 = f1;
          x1 = hi - phi * (hi - lo);
          f1 = at(x1);
        } else {
          lo = x1;
          x1 = x2;
          f1 = f2;
          x2 = lo + phi * (hi - lo);
          f2 = at(x2);
        }
      }
      const cand = f1.bound >= f2.bound ? f1 : f2;
      if (cand.bound > best.bound) {
        best = { bound: cand.bound, dim: cand.dim };
        lambda[j] = cand.l[j];
      }
    }
  }
  return best.dim;
}

/**
 * Indices of the entries no other entry dominates (cost <= in every budget and value <=; of identical
 * entries the first stays). costs: m numbers per entry.
 */
function nonDominated(costs: readonly number[], values: readonly number[], m: number): number[] {
  const n = values.length;
  const idx = Array.from({ length: n }, (_, i) => i);
  const c = (i: number, j: number): number => costs[i * m + j];
  idx.sort((a, b) => {
    for (let j = 0; j < m; j++) if (c(a, j) !== c(b, j)) return c(a, j) - c(b, j);
    return values[a] - values[b] || a - b;
  });
  const kept: number[] = [];
  if (m === 1) {
    let minValue = Infinity;
    for (const i of idx) {
      if (values[i] < minValue) {
        kept.push(i);
        minValue = values[i];
      }
    }
  } else if (m === 2) {
    // Sorted by the first cost: an entry is dominated when an earlier one with second cost <= its own
    // has value <= its own. Prefix minima of value over second-cost ranks (Fenwick tree).
    const second = [...new Set(idx.map((i) => c(i, 1)))].sort((a, b) => a - b);
    const rank = new Map<number, number>(second.map((v, r) => [v, r + 1]));
    const tree = new Float64Array(second.length + 1).fill(Infinity);
    for (const i of idx) {
      const r = rank.get(c(i, 1)) as number;
      let q = Infinity;
      for (let x = r; x > 0; x -= x & -x) q = Math.min(q, tree[x]);
      if (q <= values[i]) continue;
      kept.push(i);
      for (let x = r; x < tree.length; x += x & -x) tree[x] = Math.min(tree[x], values[i]);
    }
  } else {
    for (const i of idx) {
      let dominated = false;
      for (const k of kept) {
        if (values[k] > values[i]) continue;
        let le = true;
        for (let j = 1; j < m && le; j++) le = c(k, j) <= c(i, j);
        if (le) {
          dominated = true;
          break;
        }
      }
      if (!dominated) kept.push(i);
    }
  }
  return kept;
}

/** Solves the multiple-choice knapsack exactly (see the module comment). Infinite budgets are ignored. */
export function solveMultipleChoiceKnapsack(
  problem: KnapsackProblem,
  options: KnapsackSolveOptions = {},
): KnapsackResult {
  validate(problem);
  const active = problem.budgets.map((b, j) => (b === Infinity ? -1 : j)).filter((j) => j >= 0);
  if (active.length === problem.budgets.length) return solveFinite(problem, options, active);
  const reduced: KnapsackProblem = {
    groups: problem.groups.map((g) => g.map((o) => ({ cost: active.map((j) => o.cost[j]), value: o.value }))),
    budgets: active.map((j) => problem.budgets[j]),
  };
  const r = solveFinite(reduced, options, active);
  if (r.status !== 'optimal' && r.status !== 'nodeLimit') return r;
  const totals = problem.budgets.map(() => 0);
  problem.groups.forEach((g, l) => g[r.choice[l]].cost.forEach((c, j) => (totals[j] = totals[j] + c)));
  return { ...r, totals };
}

/** The solver proper, for budgets that are all finite; budgetIndex maps them to the caller's indices (messages). */
function solveFinite(
  problem: KnapsackProblem,
  options: KnapsackSolveOptions,
  budgetIndex: readonly number[],
): KnapsackResult {
  const maxNodes = options.maxNodes ?? DEFAULT_MAX_NODES;
  const m = problem.budgets.length;
  const budgets = problem.budgets;
  const nGroups = problem.groups.length;
  const prepared = problem.groups.map((g) => prepareGroup(g));

  // Search order: groups whose choice matters most (largest value spread) first.
  const order = prepared.map((_, l) => l);
  const spread = prepared.map((p) => Math.max(...p.value) - Math.min(...p.value));
  // Identical groups (same options, same order) sit next to each other so that symmetric choices can
  // be skipped: along a run of identical groups the chosen option index never decreases.
  const signature = prepared.map((p) => JSON.stringify([p.cost, p.value]));
  const firstOf = new Map<string, number>();
  signature.forEach((sig, l) => {
    if (!firstOf.has(sig)) firstOf.set(sig, l);
  });
  const classOf = signature.map((sig) => firstOf.get(sig) as number);
  order.sort((a, b) => spread[classOf[b]] - spread[classOf[a]] || classOf[a] - classOf[b] || a - b);
  const P = order.map((l) => prepared[l]);
  const sameAsPrevious = order.map((l, d) => d > 0 && classOf[l] === classOf[order[d - 1]]);

  // Cheapest completion per budget, and minimal value, from search depth d on.
  const minCostSuffix: number[][] = [];
  const minValueSuffix: number[] = new Array<number>(nGroups + 1).fill(0);
  minCostSuffix[nGroups] = new Array<number>(m).fill(0);
  for (let d = nGroups - 1; d >= 0; d--) {
    const p = P[d];
    minCostSuffix[d] = minCostSuffix[d + 1].map((s, j) => s + Math.min(...p.cost.map((c) => c[j])));
    minValueSuffix[d] = minValueSuffix[d + 1] + Math.min(...p.value);
  }

  // Obvious infeasibility: one budget cannot be met even at its cheapest.
  for (let j = 0; j < m; j++) {
    const need = minCostSuffix[0][j];
    if (need > budgets[j]) {
      return {
        status: 'infeasible',
        reason: `budget ${budgetIndex[j]} cannot be met: the cheapest option of every group already totals ${need} > ${budgets[j]}`,
        nodes: 0,
      };
    }
  }

  // Bound dimensions: each budget alone, and (with several budgets) a surrogate constraint
  // sum_j lambda_j cost_j <= sum_j lambda_j budget_j, which every feasible choice meets; lambda is tuned
  // at the root to make the surrogate's LP bound as high as possible.
  const makeDim = (lambda: readonly number[]): BoundDim => {
    const base: number[] = [];
    const baseCost: number[] = [];
    const baseOption: number[] = [];
    const segments: Segment[] = [];
    for (let d = 0; d < nGroups; d++) {
      const p = P[d];
      const h = hullSegments(
        d,
        p.cost.map((c) => combine(lambda, c)),
        p.value,
      );
      base.push(h.base);
      baseCost.push(h.baseCost);
      baseOption.push(h.baseOption);
      segments.push(...h.segments);
    }
    segments.sort((a, b) => a.slope - b.slope);
    return {
      lambda: [...lambda],
      baseSuffix: suffixSums(base),
      baseCostSuffix: suffixSums(baseCost),
      baseOption,
      segments,
      segmentsFrom: null,
    };
  };
  const dimsList: BoundDim[] = [];
  for (let j = 0; j < m; j++) dimsList.push(makeDim(budgets.map((_, i) => (i === j ? 1 : 0))));
  // The surrogate (usually the strongest) first, so that pruning tests can stop early.
  if (m >= 2) dimsList.unshift(tuneSurrogate(budgets, minCostSuffix[0], makeDim, m));
  for (const dim of dimsList) {
    dim.segmentsFrom = [];
    for (let d = 0; d <= nGroups; d++) dim.segmentsFrom.push(dim.segments.filter((sg) => sg.group >= d));
  }
  const scale = budgets.map((b, j) => {
    let sum = Math.abs(b);
    for (const p of P) sum += Math.max(...p.cost.map((c) => Math.abs(c[j])));
    return sum;
  });

  /** True when some bound dimension proves that groups d.. cannot bring the value below `limit`. */
  const cannotBeat = (d: number, remaining: readonly number[], limit: number): boolean => {
    if (minValueSuffix[d] >= limit) return true;
    for (const dim of dimsList) if (lpBound(dim, d, combine(dim.lambda, remaining)) >= limit) return true;
    return false;
  };

  let nodes = 0;
  let bestValue = Infinity;
  let bestChoice: number[] | null = null; // per search depth, index into P[d]
  let limitHit = false;
  const pick = new Array<number>(nGroups).fill(0);
  const partialCost = new Array<number>(m).fill(0);
  const remaining = new Array<number>(m).fill(0);

  /** Exact check of a complete choice, summing in the caller's group order. */
  const acceptLeaf = (): void => {
    const chosen = new Array<number>(nGroups);
    for (let d = 0; d < nGroups; d++) chosen[order[d]] = d;
    const totals = new Array<number>(m).fill(0);
    let value = 0;
    for (let l = 0; l < nGroups; l++) {
      const d = chosen[l];
      const p = P[d];
      const k = pick[d];
      value += p.value[k];
      const c = p.cost[k];
      for (let j = 0; j < m; j++) totals[j] = totals[j] + c[j];
    }
    for (let j = 0; j < m; j++) if (totals[j] > budgets[j]) return;
    if (value < bestValue) {
      bestValue = value;
      bestChoice = [...pick];
    }
  };

  const visit = (d: number, partialValue: number): void => {
    if (nodes >= maxNodes) {
      limitHit = true;
      return;
    }
    nodes++;
    if (d === nGroups) {
      acceptLeaf();
      return;
    }
    const p = P[d];
    for (let k = sameAsPrevious[d] ? pick[d - 1] : 0; k < p.value.length; k++) {
      const c = p.cost[k];
      let fits = true;
      for (let j = 0; j < m; j++) {
        const used = partialCost[j] + c[j] + minCostSuffix[d + 1][j];
        if (used > budgets[j] + REL_SLACK * scale[j]) {
          fits = false;
          break;
        }
      }
      if (!fits) continue;
      const value = partialValue + p.value[k];
      for (let j = 0; j < m; j++) {
        partialCost[j] = partialCost[j] + c[j];
        remaining[j] = budgets[j] - partialCost[j] + REL_SLACK * scale[j];
      }
      const threshold = bestValue === Infinity ? Infinity : bestValue - REL_SLACK * Math.max(1, Math.abs(bestValue));
      if (!cannotBeat(d + 1, remaining, threshold - value)) {
        pick[d] = k;
        visit(d + 1, value);
      }
      for (let j = 0; j < m; j++) partialCost[j] = partialCost[j] - c[j];
      if (limitHit) return;
    }
  };
  // Incumbent before the search: per bound dimension, the LP's greedy walk along the hulls, taking a
  // segment only while the whole choice still meets every budget (no fractional part).
  for (const dim of dimsList) {
    for (let d = 0; d < nGroups; d++) pick[d] = dim.baseOption[d];
    const totals = new Array<number>(m).fill(0);
    for (let d = 0; d < nGroups; d++) {
      const c = P[d].cost[pick[d]];
      for (let i = 0; i < m; i++) totals[i] = totals[i] + c[i];
    }
    const blocked = new Array<boolean>(nGroups).fill(false);
    for (const seg of dim.segments) {
      if (blocked[seg.group]) continue;
      const p = P[seg.group];
      const from = p.cost[pick[seg.group]];
      const to = p.cost[seg.to];
      let fits = true;
      for (let i = 0; i < m && fits; i++) fits = totals[i] - from[i] + to[i] <= budgets[i];
      if (!fits) {
        blocked[seg.group] = true;
        continue;
      }
      for (let i = 0; i < m; i++) totals[i] = totals[i] - from[i] + to[i];
      pick[seg.group] = seg.to;
    }
    acceptLeaf();
  }

  /**
   * Frontier search: group by group, extend every kept partial choice by every option, drop those
   * that cannot fit or cannot beat the incumbent (LP bound), then drop every partial choice that another
   * one dominates (no more cost in any budget and no more value): any completion of the dominated one
   * is matched or beaten by the same completion of the other.
   */
  const frontier = (): void => {
    const parents: Int32Array[] = [];
    const options: Int32Array[] = [];
    let cost = new Float64Array(m);
    let value = new Float64Array(1);
    let count = 1;
    const threshold = bestValue === Infinity ? Infinity : bestValue - REL_SLACK * Math.max(1, Math.abs(bestValue));
    for (let d = 0; d < nGroups; d++) {
      const p = P[d];
      const nextMin = minCostSuffix[d + 1];
      const candCost: number[] = [];
      const candValue: number[] = [];
      const candParent: number[] = [];
      const candOption: number[] = [];
      for (let st = 0; st < count; st++) {
        for (let k = 0; k < p.value.length; k++) {
          const c = p.cost[k];
          let fits = true;
          for (let j = 0; j < m && fits; j++) {
            const used = cost[st * m + j] + c[j];
            remaining[j] = budgets[j] - used + REL_SLACK * scale[j];
            fits = used + nextMin[j] <= budgets[j] + REL_SLACK * scale[j];
          }
          if (!fits) continue;
          const v = value[st] + p.value[k];
          if (v + minValueSuffix[d + 1] >= threshold) continue;
          if (threshold !== Infinity && cannotBeat(d + 1, remaining, threshold - v)) continue;
          for (let j = 0; j < m; j++) candCost.push(cost[st * m + j] + c[j]);
          candValue.push(v);
          candParent.push(st);
          candOption.push(k);
        }
      }
      nodes += candValue.length;
      if (nodes >= maxNodes) {
        limitHit = true;
        return;
      }
      const keep = nonDominated(candCost, candValue, m);
      cost = new Float64Array(keep.length * m);
      value = new Float64Array(keep.length);
      const par = new Int32Array(keep.length);
      const opt = new Int32Array(keep.length);
      keep.forEach((i, n) => {
        for (let j = 0; j < m; j++) cost[n * m + j] = candCost[i * m + j];
        value[n] = candValue[i];
        par[n] = candParent[i];
        opt[n] = candOption[i];
      });
      parents.push(par);
      options.push(opt);
      count = keep.length;
      if (count === 0) return;
    }
    // Complete choices, best value first: the first that passes the exact check and beats the incumbent wins.
    const byValue = Array.from({ length: count }, (_, i) => i).sort((a, b) => value[a] - value[b]);
    for (const i of byValue) {
      if (value[i] >= bestValue) break;
      let st = i;
      for (let d = nGroups - 1; d >= 0; d--) {
        pick[d] = options[d][st];
        st = parents[d][st];
      }
      const before = bestValue;
      acceptLeaf();
      if (bestValue < before) break;
    }
  };

  const method = options.method ?? 'auto';
  if (method === 'frontier' || (method === 'auto' && m >= 2)) frontier();
  else visit(0, 0);

  if (bestChoice === null) {
    if (limitHit)
      return { status: 'unsolved', reason: `no feasible choice found within ${maxNodes} search nodes`, nodes };
    return { status: 'infeasible', reason: 'no combination of options meets every budget at once', nodes };
  }
  const finalPick: number[] = bestChoice;
  const choice = new Array<number>(nGroups);
  for (let d = 0; d < nGroups; d++) choice[order[d]] = P[d].orig[finalPick[d]];
  const totals = new Array<number>(m).fill(0);
  let value = 0;
  problem.groups.forEach((g, l) => {
    const o = g[choice[l]];
    value += o.value;
    o.cost.forEach((c, j) => (totals[j] = totals[j] + c));
  });
  return { status: limitHit ? 'nodeLimit' : 'optimal', choice, value, totals, nodes };
}
