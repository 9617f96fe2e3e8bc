/**
 * Sensitivity allocator: data-free (after Lee et al., arXiv 2103.10051) or on real validation data
 * (HAWQ-style), solved exactly with the multiple-choice knapsack.
 *
 *   inputs      data 'free': labelled inputs generated from the float network itself (src/quant/datafree.ts:
 *               noise optimised toward chosen labels, no BatchNorm statistics, no user data);
 *               data 'real': the first `realSamples` samples of the validation split
 *   round 1     base allocation A = every layer at baseBits (8) for weights and activations
 *   per round   L0 = loss(A) on the inputs (mean cross-entropy, inference mode)
 *               for every layer l and every option o of l (a (wBits, aBits) pair from the env's bit choices):
 *                 s(l, o) = loss(A with layer l at o) - L0     (the others sit at A: interactions count)
 *               measure 'separate' measures weights and activations apart and adds them,
 *                 s(l, (w, a)) = [loss(A, l at (w, A_l.a)) - L0] + [loss(A, l at (A_l.w, a)) - L0];
 *               'joint' measures every pair; 'auto' measures pairs when layers x pairs <= 256
 *               s is then made non-negative and non-increasing in each width (monotoneEnvelope)
 *               A' = argmin_{allocation} sum_l s(l, o_l) under the budgets (exact knapsack)
 *   rounds      round r + 1 re-measures with the others at round r's allocation (`rounds`, default 2;
 *               stops early when the allocation repeats)
 *   proposals   the last round's allocation first, then the distinct allocations of earlier rounds,
 *               newest first (at most `alternatives` of them, default 1): the search evaluates each and keeps the
 *               best; then the agent is exhausted
 *
 * Budgets (solveUnderBudgets): latency, energy and size are additive over layers (the simulator's table:
 * latencyMs, energyUj, weightBytes per layer and option), peak memory is a max (options whose activation bytes
 * exceed it are removed per layer). When the limits are known (a `constraints` list of resolved limits on the
 * agent context or its training access) they go to the knapsack directly. The standard context only offers
 * isFeasible(bits), so otherwise the limits are found by probing: for each metric alone (and for all together),
 * a bisection on the budget B between the cheapest and the dearest total keeps the largest B whose knapsack
 * solution the env judges feasible; the best feasible solution over these probes wins. This is exact when a
 * single budget binds (the optimum is the knapsack optimum at that metric's limit); with several binding budgets
 * it is a feasible allocation, not always the optimum. Every proposed allocation passes ctx.isFeasible, unless none
 * exists (then the cheapest is proposed with a warning).
 *
 * The analysis runs in setup() (it needs ctx.training: a real network); it runs inference passes only (nothing is
 * trained), on the search's forward-pass engine (ctx.training.evaluate: onnxruntime when it is the engine, else
 * tfjs), and restores the network's bits afterwards. Data-free input generation needs gradients: tfjs. A resumed search re-runs it in setup() and then
 * setState() restores the saved analysis, so the proposals stay those of the original run.
 * Pinned layers (the env's pinFirstLast) sit at W8A8 and are not measured. Activation ranges: the network's
 * own (an uncalibrated STE layer uses the batch max of the inputs, all inputs form one batch).
 */
import type { AgentContext, AllocationAgent, EpisodeSummary, TrainingAccess } from '../envs/types.js';
import { COST_METRICS, type CostMetric } from '../envs/constraints.js';
import { REFERENCE_BITS } from '../envs/bit-allocation-env.js';
import { tf } from '../src/backend/index.js';
import type { Split } from '../src/data/api.js';
import { splitInputs } from '../src/data/inputs.js';
import { UserError } from '../src/errors.js';
import type { CostTable } from '../src/hardware/api.js';
import { log } from '../src/log.js';
import { Progress } from '../src/util/progress.js';
import { VALID_BITS, type BitConfig, type LayerBits } from '../src/models/layer-info.js';
import { DATA_FREE_DEFAULTS, generateInputs } from './kit/datafree.js';
import { solveMultipleChoiceKnapsack } from '../src/solvers/knapsack.js';
import { evaluateModel } from '../src/train/trainer.js';
import type { AgentEntry } from './index.js';
import { optionChecks } from './kit/option-checks.js';

// ---------------------------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------------------------
export type SensitivityData = 'free' | 'real';
export type SensitivityMeasure = 'auto' | 'joint' | 'separate';

export interface SensitivityOptions {
  /** 'free': generated inputs (no user data); 'real': the validation split. */
  data: SensitivityData;
  /** Data-free: inputs generated per class. */
  perClass: number;
  /** Data-free: Adam steps at most, learning rate, priors, early stop (see src/quant/datafree.ts). */
  genSteps: number;
  genLr: number;
  tvWeight: number;
  l2Weight: number;
  stopLoss: number;
  /** Real data: validation samples used; null = as many as the data-free set (perClass x classes). */
  realSamples: number | null;
  /** Bits of every layer (weights and activations) while the first round measures. */
  baseBits: number;
  /** Measurement rounds; round r + 1 measures around round r's allocation. */
  rounds: number;
  measure: SensitivityMeasure;
  /** Allocations of earlier rounds proposed after the final one (if different). */
  alternatives: number;
}

export const SENSITIVITY_DEFAULTS: SensitivityOptions = {
  data: 'free',
  perClass: DATA_FREE_DEFAULTS.perClass,
  genSteps: DATA_FREE_DEFAULTS.steps,
  genLr: DATA_FREE_DEFAULTS.lr,
  tvWeight: DATA_FREE_DEFAULTS.tvWeight,
  l2Weight: DATA_FREE_DEFAULTS.l2Weight,
  stopLoss: DATA_FREE_DEFAULTS.stopLoss,
  realSamples: null,
  baseBits: 8,
  rounds: 2,
  measure: 'auto',
  alternatives: 1,
};

const DATA_CHOICES: readonly SensitivityData[] = ['free', 'real'];
const MEASURE_CHOICES: readonly SensitivityMeasure[] = ['auto', 'joint', 'separate'];
/** 'auto' measures every (wBits, aBits) pair up to this many measurements per round. */
const AUTO_JOINT_LIMIT = 256;

export function validateSensitivityOptions(o: SensitivityOptions, field = 'agentOptions'): SensitivityOptions {
  const { bad, int } = optionChecks('sensitivity', o, field);
  if (!DATA_CHOICES.includes(o.data)) throw bad('data', DATA_CHOICES.join('|'), o.data);
  if (!MEASURE_CHOICES.includes(o.measure)) throw bad('measure', MEASURE_CHOICES.join('|'), o.measure);
  int('perClass', 1);
  int('genSteps', 0);
  int('rounds', 1);
  int('alternatives', 0);
  if (o.realSamples !== null) int('realSamples', 1);
  if (!(o.genLr > 0 && Number.isFinite(o.genLr))) throw bad('genLr', 'a finite number > 0', o.genLr);
  for (const name of ['tvWeight', 'l2Weight', 'stopLoss'] as const) {
    if (!(o[name] >= 0 && Number.isFinite(o[name]))) throw bad(name, 'a finite number >= 0', o[name]);
  }
  if (!VALID_BITS.includes(o.baseBits)) throw bad('baseBits', `one of ${VALID_BITS.join(',')}`, o.baseBits);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Allocation problems and budgets (shared with ssps)
// ---------------------------------------------------------------------------------------------
/** Which layers the env pins at W8A8 (pinFirstLast): told by the steps per episode. */
export function pinnedLayers(ctx: AgentContext): boolean[] {
  const n = ctx.layers.length;
  const perLayer = ctx.stepMode === 'two-step' ? 2 : 1;
  const free = Math.round(ctx.stepsPerEpisode / perLayer);
  const pinEnds = free < n && n > 1;
  return ctx.layers.map((_, i) => pinEnds && (i === 0 || i === n - 1));
}

/** Per layer, the (wBits, aBits) options an allocation may use: pairs of the env's choices, tied pairs in tied mode. */
export function layerOptions(ctx: AgentContext, tied = ctx.stepMode === 'tied'): LayerBits[][] {
  const pinned = pinnedLayers(ctx);
  const choices = [...ctx.bitChoices].sort((a, b) => a - b);
  const all = tied
    ? choices.map((b) => ({ wBits: b, aBits: b }))
    : choices.flatMap((w) => choices.map((a) => ({ wBits: w, aBits: a })));
  return ctx.layers.map((_, i) =>
    pinned[i] ? [{ wBits: REFERENCE_BITS, aBits: REFERENCE_BITS }] : all.map((o) => ({ ...o })),
  );
}

/** A resolved budget: a metric and its limit in base units (ms, uJ, bytes, bytes). */
export interface BudgetLimit {
  metric: CostMetric;
  limit: number;
}

function asLimits(v: unknown): BudgetLimit[] | null {
  if (!Array.isArray(v)) return null;
  const out: BudgetLimit[] = [];
  for (const c of v) {
    const m = (c as { metric?: unknown } | null)?.metric;
    const limit = (c as { limit?: unknown } | null)?.limit;
    if (
      typeof m !== 'string' ||
      !(COST_METRICS as readonly string[]).includes(m) ||
      typeof limit !== 'number' ||
      !(limit >= 0)
    )
      return null;
    out.push({ metric: m as CostMetric, limit });
  }
  return out;
}

/**
 * The resolved budgets when the context carries them (`constraints` with `{metric, limit}` entries, set by
 * BitAllocationEnv), else null (then only isFeasible knows them).
 */
export function declaredLimits(ctx: AgentContext): BudgetLimit[] | null {
  return asLimits(ctx.constraints);
}

/** One option's cost per metric, in COST_METRICS order (latency, energy, size, peak memory). */
function optionCosts(table: CostTable, layer: number, o: LayerBits): [number, number, number, number] {
  const c = table.layerCost(layer, o.wBits, o.aBits);
  return [c.latencyMs, c.energyUj, c.weightBytes, c.activationBytes];
}

export interface BudgetSolution {
  bits: BitConfig;
  /** Index of the chosen option per layer. */
  choice: number[];
  /** Sum of the chosen values. */
  value: number;
  /** True when ctx.isFeasible accepts it. */
  feasible: boolean;
  /**
   * How the budgets were known: from the context ('declared'), found by probing isFeasible ('probed'), or none
   * binds ('unconstrained'); 'none' when no allocation is feasible.
   */
  source: 'declared' | 'probed' | 'unconstrained' | 'none';
  /** The metric whose budget binds (declared: the first additive one; probed: the probe that won; null: all together or none). */
  metric: CostMetric | null;
  /** The limit on `metric` (probed: the solution's cost there, a lower bound on the true limit), else Infinity. */
  limit: number;
  /**
   * Per metric (COST_METRICS order), the largest cost among the allocations the env judged feasible while solving:
   * a lower bound of each budget's limit (for the binding one, close to it). Any allocation within all of them meets
   * every additive budget.
   */
  feasibleMax: [number, number, number, number];
  /** Knapsack solves used. */
  solves: number;
}

const PROBE_ITERATIONS = 48;

/**
 * argmin over allocations of sum_l values[l][o_l] subject to the budgets (see the module comment).
 * `options[l]` and `values[l]` are parallel lists; the returned allocation uses one option per layer.
 */
export function solveUnderBudgets(
  ctx: AgentContext,
  table: CostTable,
  options: readonly LayerBits[][],
  values: readonly number[][],
): BudgetSolution {
  const n = options.length;
  const costs = options.map((opts, l) => opts.map((o) => optionCosts(table, l, o)));
  let solves = 0;
  const toBits = (choice: number[]): BitConfig => choice.map((k, l) => ({ ...options[l][k] }));
  const valueOf = (choice: number[]): number => choice.reduce((s, k, l) => s + values[l][k], 0);

  /** Exact solve under additive budgets [latency, energy, size] and a per-layer activation cap; null if none fits. */
  const solveAt = (budgets: [number, number, number], peakCap: number): number[] | null => {
    solves++;
    const allowed = costs.map((cs) => cs.map((_, k) => k).filter((k) => (cs[k] as number[])[3] <= peakCap));
    if (allowed.some((a) => a.length === 0)) return null;
    if (budgets.every((b) => b === Infinity)) {
      return allowed.map((ks, l) => ks.reduce((best, k) => (values[l][k] < values[l][best] ? k : best), ks[0]));
    }
    const r = solveMultipleChoiceKnapsack({
      groups: allowed.map((ks, l) =>
        ks.map((k) => ({ cost: (costs[l] as number[][])[k].slice(0, 3), value: values[l][k] })),
      ),
      budgets,
    });
    if (r.status !== 'optimal' && r.status !== 'nodeLimit') return null;
    return r.choice.map((i, l) => allowed[l][i]);
  };
  const metricCost = (choice: number[], m: number): number =>
    m === 3
      ? Math.max(...choice.map((k, l) => (costs[l] as number[][])[k][3]))
      : choice.reduce((s, k, l) => s + (costs[l] as number[][])[k][m], 0);
  const feasibleMax: [number, number, number, number] = [0, 0, 0, 0];
  const feasible = (choice: number[] | null): choice is number[] => {
    if (choice === null || !ctx.isFeasible(toBits(choice))) return false;
    for (let m = 0; m < 4; m++) feasibleMax[m] = Math.max(feasibleMax[m], metricCost(choice, m));
    return true;
  };
  const result = (
    choice: number[],
    source: BudgetSolution['source'],
    metric: CostMetric | null,
    limit: number,
  ): BudgetSolution => ({
    bits: toBits(choice),
    choice,
    value: valueOf(choice),
    feasible: source !== 'none',
    source,
    metric,
    limit,
    feasibleMax: [...feasibleMax],
    solves,
  });
  const declared = declaredLimits(ctx);
  if (declared !== null) {
    const budgets: [number, number, number] = [Infinity, Infinity, Infinity];
    let peakCap = Infinity;
    for (const d of declared) {
      const m = COST_METRICS.indexOf(d.metric);
      if (m === 3) peakCap = Math.min(peakCap, d.limit);
      else budgets[m as 0 | 1 | 2] = Math.min(budgets[m as 0 | 1 | 2], d.limit);
    }
    const choice = solveAt(budgets, peakCap);
    if (feasible(choice)) {
      const first = declared.find((d) => d.metric !== 'peakMemory') ?? declared[0];
      return result(
        choice,
        declared.length > 0 ? 'declared' : 'unconstrained',
        first?.metric ?? null,
        first?.limit ?? Infinity,
      );
    }
    // The device's own limits (flash, SRAM) are not declared: probe.
  }

  const free = solveAt([Infinity, Infinity, Infinity], Infinity);
  if (feasible(free)) return result(free, 'unconstrained', null, Infinity);

  const lo = [0, 0, 0, 0];
  const hi = [0, 0, 0, 0];
  for (let m = 0; m < 4; m++) {
    for (let l = 0; l < n; l++) {
      const vals = (costs[l] as number[][]).map((c) => c[m]);
      const mn = Math.min(...vals);
      const mx = Math.max(...vals);
      if (m === 3) {
        lo[m] = Math.max(lo[m], mn);
        hi[m] = Math.max(hi[m], mx);
      } else {
        lo[m] = lo[m] + mn;
        hi[m] = hi[m] + mx;
      }
    }
  }
  const families: number[][] = [[0], [1], [2], [3], [0, 1, 2, 3]];
  let best: { choice: number[]; value: number; family: number[] } | null = null;
  for (const family of families) {
    const at = (t: number): number[] | null => {
      const budgets: [number, number, number] = [Infinity, Infinity, Infinity];
      let cap = Infinity;
      for (const m of family) {
        // A hair above the exact total, so that rounding in the solver's sums never rejects the end points.
        const b = (lo[m] + t * (hi[m] - lo[m])) * (1 + 1e-12);
        if (m === 3) cap = b;
        else budgets[m as 0 | 1 | 2] = b;
      }
      return solveAt(budgets, cap);
    };
    const start = at(0);
    if (!feasible(start)) continue;
    let famBest = { choice: start, value: valueOf(start) };
    let a = 0;
    let b = 1;
    for (let it = 0; it < PROBE_ITERATIONS && b - a > 1e-13; it++) {
      const mid = (a + b) / 2;
      const c = at(mid);
      if (feasible(c)) {
        a = mid;
        const v = valueOf(c);
        if (v < famBest.value) famBest = { choice: c, value: v };
      } else b = mid;
    }
    if (best === null || famBest.value < best.value) best = { ...famBest, family };
  }
  if (best !== null) {
    const single = best.family.length === 1 ? best.family[0] : null;
    const metric = single === null ? null : COST_METRICS[single];
    return result(best.choice, 'probed', metric, single === null ? Infinity : metricCost(best.choice, single));
  }
  // Nothing is feasible: the cheapest allocation in every metric at once.
  const cheapest = costs.map((cs) => {
    let k0 = 0;
    let s0 = Infinity;
    cs.forEach((c, k) => {
      const s = COST_METRICS.reduce((acc, _, m) => acc + (hi[m] > 0 ? c[m] / hi[m] : 0), 0);
      if (s < s0) {
        s0 = s;
        k0 = k;
      }
    });
    return k0;
  });
  return result(cheapest, 'none', null, Infinity);
}

/**
 * Sensitivities made non-negative and non-increasing in each width: s(w, a) = max(0, max over options with
 * w' >= w and a' >= a of raw(w', a')). Fewer bits never count as helping, so flukes where a narrower width
 * lowers the loss on the inputs do not steer the knapsack; options whose envelope is equal then differ only in
 * cost, and the knapsack keeps the cheaper.
 */
export function monotoneEnvelope(options: readonly LayerBits[], raw: readonly number[]): number[] {
  return options.map((o) => {
    let v = 0;
    options.forEach((p, k) => {
      if (p.wBits >= o.wBits && p.aBits >= o.aBits) v = Math.max(v, raw[k]);
    });
    return v;
  });
}

// ---------------------------------------------------------------------------------------------
// Report and state
// ---------------------------------------------------------------------------------------------
export interface SensitivityRound {
  /** The allocation the others sat at. */
  base: BitConfig;
  /** Loss on the inputs at the base allocation. */
  baseLoss: number;
  /** Per layer, per option (see `options`): the loss increase as the knapsack uses it (monotone envelope of `raw`). */
  sensitivity: number[][];
  /** The measured loss increases. */
  raw: number[][];
  /** The knapsack's allocation and its total sensitivity. */
  allocation: BitConfig;
  value: number;
  budgetSource: BudgetSolution['source'];
  feasible: boolean;
  measurements: number;
}

export interface SensitivityReport {
  data: SensitivityData;
  /** Inputs used for the measurements. */
  inputs: number;
  /** Share of the inputs the float network classifies as their label (generated inputs: their target). */
  inputAccuracy: number;
  /** Float network's mean cross-entropy on the inputs. */
  inputLoss: number;
  /** Data-free: Adam steps run and seconds spent generating. */
  generationSteps: number;
  generationSeconds: number;
  /** Per layer, the (wBits, aBits) options sensitivities refer to. */
  options: LayerBits[][];
  layerNames: string[];
  measure: 'joint' | 'separate';
  rounds: SensitivityRound[];
  /** The allocations proposed, in order (final round first). */
  proposals: BitConfig[];
  seconds: number;
}

export interface SensitivityState {
  name: 'sensitivity';
  version: 1;
  options: SensitivityOptions;
  report: SensitivityReport | null;
  proposed: number;
}

/** The network's accuracy and loss on a split at its current bits: the search's engine when it offers one, else tfjs. */
async function inference(t: TrainingAccess, split: Split): Promise<{ accuracy: number; loss: number }> {
  if (t.evaluate) return t.evaluate(split);
  return evaluateModel(t.net.model, split, { batchSize: split.labels.length });
}

// ---------------------------------------------------------------------------------------------
// Agent
// ---------------------------------------------------------------------------------------------
export class SensitivityAgent implements AllocationAgent {
  readonly name = 'sensitivity';
  readonly kind = 'allocation' as const;
  readonly options: SensitivityOptions;
  private ctx: AgentContext | null = null;
  private analysis: SensitivityReport | null = null;
  private proposed = 0;

  constructor(
    options: Partial<SensitivityOptions> = {},
    private readonly field = 'agentOptions',
  ) {
    this.options = validateSensitivityOptions({ ...SENSITIVITY_DEFAULTS, ...options }, field);
  }

  async setup(ctx: AgentContext): Promise<void> {
    if (!ctx.training) {
      throw new UserError(
        "agent 'sensitivity' needs a real network: it measures each layer's loss on (generated or validation) inputs",
        {
          field: 'agent',
          expected:
            "a search on a model and dataset (bitalloc search / run), not a synthetic evaluator; use e.g. 'evolution' or 'uniform' there",
        },
      );
    }
    this.ctx = ctx;
    this.proposed = 0;
    this.analysis = null;
    this.analysis = await this.analyse(ctx, ctx.training);
  }

  /** What the analysis found (inputs' accuracy, per-layer sensitivities, allocations); null before setup. */
  report(): SensitivityReport | null {
    return this.analysis;
  }

  exhausted(): boolean {
    return this.analysis !== null && this.proposed >= this.analysis.proposals.length;
  }

  propose(): BitConfig {
    const a = this.analysis;
    if (!a || !this.ctx) throw new Error('sensitivity agent: setup() must be called first');
    const k = Math.min(this.proposed, a.proposals.length - 1);
    this.proposed++;
    return a.proposals[k].map((b) => ({ ...b }));
  }

  endEpisode(_summary: EpisodeSummary): void {
    // The allocation is fixed by the analysis; outcomes do not change it.
  }

  getState(): SensitivityState {
    return {
      name: 'sensitivity',
      version: 1,
      options: { ...this.options },
      report: this.analysis,
      proposed: this.proposed,
    };
  }

  setState(state: unknown): void {
    const s = state as Partial<SensitivityState> | null;
    if (
      s?.name !== 'sensitivity' ||
      s.version !== 1 ||
      typeof s.proposed !== 'number' ||
      (s.report !== null && typeof s.report !== 'object')
    ) {
      throw new Error('sensitivity agent: bad state');
    }
    if (s.report && this.ctx && s.report.options.length !== this.ctx.layers.length) {
      throw new Error(
        `sensitivity agent: state is for a network of ${s.report.options.length} layers, not ${this.ctx.layers.length}`,
      );
    }
    this.analysis = s.report ?? null;
    this.proposed = s.proposed;
  }

  // -------------------------------------------------------------------------------------------
  private async inputs(
    ctx: AgentContext,
    t: TrainingAccess,
  ): Promise<{ split: Split; owned: boolean; accuracy: number; loss: number; steps: number; seconds: number }> {
    const o = this.options;
    if (o.data === 'free') {
      const g = await generateInputs(t.net, {
        perClass: o.perClass,
        steps: o.genSteps,
        lr: o.genLr,
        tvWeight: o.tvWeight,
        l2Weight: o.l2Weight,
        stopLoss: o.stopLoss,
        seed: ctx.seed,
      });
      log.info(
        `sensitivity: generated ${g.split.labels.length} inputs in ${g.steps} steps (${g.seconds.toFixed(1)} s), float accuracy on them ${(100 * g.accuracy).toFixed(1)}%`,
      );
      return { split: g.split, owned: true, accuracy: g.accuracy, loss: g.loss, steps: g.steps, seconds: g.seconds };
    }
    const val = t.dataset.val;
    const want = o.realSamples ?? o.perClass * t.dataset.numClasses;
    const count = Math.min(want, val.labels.length);
    if (count === 0)
      throw new UserError(`dataset '${t.dataset.name}' has an empty validation split`, {
        field: `${this.field}.data`,
        expected: "'free', or a dataset with validation samples",
      });
    const split: Split = {
      x: splitInputs(val).slice(0, count),
      y: tf.slice(val.y, [0, 0], [count, -1]),
      labels: val.labels.slice(0, count),
    };
    const saved = t.net.getBits();
    t.net.setBits(saved.map(() => ({ wBits: 32, aBits: 32 })));
    const r = await inference(t, split);
    t.net.setBits(saved);
    return { split, owned: true, accuracy: r.accuracy, loss: r.loss, steps: 0, seconds: 0 };
  }

  private async analyse(ctx: AgentContext, t: TrainingAccess): Promise<SensitivityReport> {
    const o = this.options;
    const t0 = performance.now();
    const options = layerOptions(ctx);
    const pinned = pinnedLayers(ctx);
    const nFree = pinned.filter((p) => !p).length;
    const pairs = (options.find((_, i) => !pinned[i]) ?? []).length;
    const tied = ctx.stepMode === 'tied';
    const measure: 'joint' | 'separate' =
      tied || o.measure === 'joint' || (o.measure === 'auto' && nFree * pairs <= AUTO_JOINT_LIMIT)
        ? 'joint'
        : 'separate';
    const inputs = await this.inputs(ctx, t);
    const saved = t.net.getBits();
    const rounds: SensitivityRound[] = [];
    try {
      const lossAt = async (bits: BitConfig): Promise<number> => {
        t.net.setBits(bits);
        return (await inference(t, inputs.split)).loss;
      };
      let base: BitConfig = ctx.layers.map((_, i) =>
        pinned[i] ? { wBits: REFERENCE_BITS, aBits: REFERENCE_BITS } : { wBits: o.baseBits, aBits: o.baseBits },
      );
      const seen = new Set<string>();
      for (let r = 0; r < o.rounds; r++) {
        const baseLoss = await lossAt(base);
        let measurements = 1;
        const sensitivity: number[][] = [];
        const roundProgress = new Progress({
          label: `sensitivity round ${r + 1}/${o.rounds}: layers measured`,
          total: options.length,
        });
        for (let l = 0; l < options.length; l++) {
          roundProgress.update(l, `${measurements} measurements`);
          const opts = options[l];
          if (pinned[l]) {
            sensitivity.push(opts.map(() => 0));
            continue;
          }
          const cur = base[l];
          const with_ = (lb: LayerBits): BitConfig => base.map((b, i) => (i === l ? { ...lb } : { ...b }));
          if (measure === 'joint') {
            const row: number[] = [];
            for (const opt of opts) {
              if (opt.wBits === cur.wBits && opt.aBits === cur.aBits) row.push(0);
              else {
                row.push((await lossAt(with_(opt))) - baseLoss);
                measurements++;
              }
            }
            sensitivity.push(row);
          } else {
            const wDelta = new Map<number, number>();
            const aDelta = new Map<number, number>();
            for (const opt of opts) {
              if (!wDelta.has(opt.wBits)) {
                wDelta.set(
                  opt.wBits,
                  opt.wBits === cur.wBits
                    ? 0
                    : (await lossAt(with_({ wBits: opt.wBits, aBits: cur.aBits }))) - baseLoss,
                );
                if (opt.wBits !== cur.wBits) measurements++;
              }
              if (!aDelta.has(opt.aBits)) {
                aDelta.set(
                  opt.aBits,
                  opt.aBits === cur.aBits
                    ? 0
                    : (await lossAt(with_({ wBits: cur.wBits, aBits: opt.aBits }))) - baseLoss,
                );
                if (opt.aBits !== cur.aBits) measurements++;
              }
            }
            sensitivity.push(opts.map((opt) => (wDelta.get(opt.wBits) as number) + (aDelta.get(opt.aBits) as number)));
          }
        }
        roundProgress.finish(`${measurements} measurements`);
        const smoothed = sensitivity.map((row, l) => monotoneEnvelope(options[l], row));
        const sol = solveUnderBudgets(ctx, t.costTable, options, smoothed);
        if (!sol.feasible)
          log.warn('sensitivity: no allocation meets every budget; proposing the cheapest one (it is over budget)');
        rounds.push({
          base,
          baseLoss,
          sensitivity: smoothed,
          raw: sensitivity,
          allocation: sol.bits,
          value: sol.value,
          budgetSource: sol.source,
          feasible: sol.feasible,
          measurements,
        });
        log.info(
          `sensitivity: round ${r + 1}: ${measurements} measurements, allocation ${sol.bits.map((b) => `${b.wBits}/${b.aBits}`).join(',')} (budgets ${sol.source})`,
        );
        const key = JSON.stringify(sol.bits);
        if (seen.has(key)) break;
        seen.add(key);
        base = sol.bits;
      }
    } finally {
      t.net.setBits(saved);
      if (inputs.owned) {
        inputs.split.x.dispose();
        inputs.split.y.dispose();
      }
    }
    const proposals: BitConfig[] = [];
    const keys = new Set<string>();
    for (let r = rounds.length - 1; r >= 0 && proposals.length < 1 + o.alternatives; r--) {
      const bits = rounds[r].allocation;
      const key = JSON.stringify(bits);
      if (keys.has(key)) continue;
      keys.add(key);
      proposals.push(bits);
    }
    return {
      data: o.data,
      inputs: inputs.split.labels.length,
      inputAccuracy: inputs.accuracy,
      inputLoss: inputs.loss,
      generationSteps: inputs.steps,
      generationSeconds: inputs.seconds,
      options,
      layerNames: ctx.layers.map((l) => l.name),
      measure,
      rounds,
      proposals,
      seconds: (performance.now() - t0) / 1000,
    };
  }
}

export const sensitivityAgentEntry: AgentEntry = {
  describe:
    "Per-layer loss increase on data-free generated inputs ('data': 'free', default) or validation data ('real'), then the exact knapsack optimum under the budgets",
  defaults: { ...SENSITIVITY_DEFAULTS },
  validate: (opts, field) => void validateSensitivityOptions(opts as unknown as SensitivityOptions, field),
  create: (opts) => new SensitivityAgent(opts),
};
