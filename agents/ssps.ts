/**
 * SSPS: differentiable single-path bit search (after Sun et al., IEEE TCYB 2022).
 *
 *   per searchable layer l: logits theta_l over the bit set B (the env's choices), p_l = softmax(theta_l / T)
 *   weights:   one shared float kernel W_l, used as  W_mix = sum_b p_lb * Q_b(W_l)   (a single path)
 *              Q_b: uniform symmetric per-channel quantizer with a straight-through gradient
 *   loss:      CE(batch) + lambda * sum_m max(0, E[cost_m] / target_m - 1) + the model's regularisation losses
 *              E[cost_m] = sum_l sum_b p_lb * cost_m,l(b, b)   (frozen and pinned layers: their fixed cost)
 *              m: the priced metrics (below), e.g. latency under a latency budget
 *   update:    Adam on the logits (learningRate) and Adam on the weights (the trainer's learning rate), jointly,
 *              on minibatches of the training split (seeded shuffle)
 *   freezing:  every stepsPerFreeze steps the unfrozen layer whose choice is most certain (largest max p_lb)
 *              is frozen at its argmax bits; at the end every remaining layer is frozen, most certain first
 *   result:    the frozen allocation; propose() returns it once, then the agent is exhausted
 *
 * Choices where the paper leaves room (ours):
 * - Activations use the same bits as the layer's weights (tied): during the search a layer's input is
 *   quantized at the argmax of its current probabilities (a hard choice, not mixed), and cost_l(b, b) prices
 *   both at b. One logit set per layer.
 * - Priced metrics: with declared budgets (a `constraints` list on the context), every additive one (latency,
 *   energy, size) with its limit as target, the first one the primary (the recorded curve). When the context
 *   only offers isFeasible, the budgets are probed as in agents/sensitivity.ts (solveUnderBudgets, maximising the
 *   total bits) and latency, energy and size are all priced, each with the largest cost of that metric among
 *   the allocations the env judged feasible while probing as target (latency the primary): each target is at
 *   most its budget's limit (close to it for the binding one), so any allocation within all three meets every
 *   additive budget, whichever binds (probing cannot always tell which one does). `metric` prices that metric
 *   alone.
 * - A layer is frozen at the most probable width that still leaves a feasible completion (the unfrozen layers at
 *   the narrowest width), so the final allocation meets every budget whenever any allocation does.
 * - The search runs at the first propose() (not in setup) so a resumed search that already proposed does not
 *   repeat it; the network's weights keep what the joint training learned.
 * - The expected-cost curve (`report().curve`) is recorded every `recordEvery` steps.
 */
import type { AgentContext, AllocationAgent, EpisodeSummary, TrainingAccess } from '../envs/types.js';
import { COST_METRICS, metricValue, type CostMetric } from '../envs/constraints.js';
import { REFERENCE_BITS } from '../envs/bit-allocation-env.js';
import { tf } from '../src/backend/index.js';
import { splitInputs } from '../src/data/inputs.js';
import { UserError } from '../src/errors.js';
import type { CostTable, LayerCost } from '../src/hardware/api.js';
import { log } from '../src/log.js';
import { Progress } from '../src/util/progress.js';
import type { BitConfig } from '../src/models/layer-info.js';
import { quantLayers } from '../src/quant/inventory.js';
import { perSampleCrossEntropy } from './kit/datafree.js';
import type { QuantLayer } from '../src/quant/layers.js';
import { channelReduceAxes, quantizeWeightsSte } from '../src/quant/quantizers.js';
import { outputsProbabilities } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import type { AgentEntry } from './index.js';
import { optionChecks } from './kit/option-checks.js';
import { declaredLimits, layerOptions, pinnedLayers, solveUnderBudgets } from './sensitivity.js';

// ---------------------------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------------------------
export interface SspsOptions {
  /** Training steps (minibatches) of the whole search. */
  steps: number;
  /** Steps between freezes; 0 = steps / (searchable layers + 1), so that every layer freezes during training. */
  stepsPerFreeze: number;
  /** Weight of the budget penalty sum_m max(0, E[cost_m] / target_m - 1). */
  lambda: number;
  /** Adam learning rate of the logits. */
  learningRate: number;
  /** Adam learning rate of the weights; 0 = the trainer's. */
  weightLr: number;
  batchSize: number;
  /** Softmax temperature of the logits. */
  temperature: number;
  /** Record the expected cost every this many steps. */
  recordEvery: number;
  /** Price only this metric ('latency' | 'energy' | 'size'); null = as the budgets say (see the module comment). */
  metric: string | null;
}

export const SSPS_DEFAULTS: SspsOptions = {
  steps: 300,
  stepsPerFreeze: 0,
  lambda: 2,
  learningRate: 0.05,
  weightLr: 0,
  batchSize: 64,
  temperature: 1,
  recordEvery: 10,
  metric: null,
};

const ADDITIVE_METRICS: readonly CostMetric[] = ['latency', 'energy', 'size'];

export function validateSspsOptions(o: SspsOptions, field = 'agentOptions'): SspsOptions {
  const { bad, int } = optionChecks('ssps', o, field);
  int('steps', 1);
  int('stepsPerFreeze', 0);
  int('batchSize', 1);
  int('recordEvery', 1);
  if (!(o.lambda >= 0 && Number.isFinite(o.lambda))) throw bad('lambda', 'a finite number >= 0', o.lambda);
  if (!(o.learningRate > 0 && Number.isFinite(o.learningRate)))
    throw bad('learningRate', 'a finite number > 0', o.learningRate);
  if (!(o.weightLr >= 0 && Number.isFinite(o.weightLr)))
    throw bad('weightLr', 'a finite number >= 0 (0 = the trainer’s)', o.weightLr);
  if (!(o.temperature > 0 && Number.isFinite(o.temperature)))
    throw bad('temperature', 'a finite number > 0', o.temperature);
  if (o.metric !== null && !(ADDITIVE_METRICS as readonly string[]).includes(o.metric))
    throw bad('metric', `null or one of ${ADDITIVE_METRICS.join('|')}`, o.metric);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Report and state
// ---------------------------------------------------------------------------------------------
export interface SspsCurvePoint {
  step: number;
  /** E[cost] of the primary metric, in its unit (ms, uJ or bytes). */
  expectedCost: number;
  /** lambda * sum_m max(0, E[cost_m] / target_m - 1), over every priced metric. */
  penalty: number;
  /** Cross-entropy of the step's batch (NaN at step 0). */
  loss: number;
  /** Layers frozen so far. */
  frozen: number;
}

export interface SspsFreeze {
  step: number;
  layer: number;
  name: string;
  bits: number;
  /** Probability of the chosen width when frozen. */
  probability: number;
  /** The argmax width (differs from `bits` when it would have left no feasible completion). */
  argmax: number;
}

export interface SspsTarget {
  metric: CostMetric;
  /** Target of E[cost] in the metric's unit. */
  target: number;
}

export interface SspsReport {
  /** The primary priced metric (the curve's). */
  metric: CostMetric;
  /** Its target (null: no budget binds, nothing priced). */
  target: number | null;
  /** Every priced metric (empty when no budget binds). */
  targets: SspsTarget[];
  targetSource: 'declared' | 'probed' | 'unconstrained' | 'none' | 'option';
  bitChoices: number[];
  curve: SspsCurvePoint[];
  freezes: SspsFreeze[];
  allocation: BitConfig;
  /** Final per-layer probabilities over bitChoices (searchable layers; pinned layers: empty). */
  probabilities: number[][];
  steps: number;
  seconds: number;
}

export interface SspsState {
  name: 'ssps';
  version: 1;
  options: SspsOptions;
  report: SspsReport | null;
  proposed: number;
}

// ---------------------------------------------------------------------------------------------
// Agent
// ---------------------------------------------------------------------------------------------
export class SspsAgent implements AllocationAgent {
  readonly name = 'ssps';
  readonly kind = 'allocation' as const;
  readonly options: SspsOptions;
  private ctx: AgentContext | null = null;
  private result: SspsReport | null = null;
  private proposed = 0;

  constructor(
    options: Partial<SspsOptions> = {},
    private readonly field = 'agentOptions',
  ) {
    this.options = validateSspsOptions({ ...SSPS_DEFAULTS, ...options }, field);
  }

  setup(ctx: AgentContext): void {
    if (!ctx.training) {
      throw new UserError(
        "agent 'ssps' needs a real network: it trains per-layer bit logits jointly with the weights",
        {
          field: 'agent',
          expected:
            "a search on a model and dataset (bitalloc search / run), not a synthetic evaluator; use e.g. 'evolution' or 'uniform' there",
        },
      );
    }
    this.ctx = ctx;
    this.result = null;
    this.proposed = 0;
  }

  exhausted(): boolean {
    return this.result !== null && this.proposed >= 1;
  }

  async propose(): Promise<BitConfig> {
    const ctx = this.ctx;
    if (!ctx || !ctx.training) throw new Error('ssps agent: setup() must be called first');
    if (!this.result) this.result = await this.search(ctx, ctx.training);
    this.proposed++;
    return this.result.allocation.map((b) => ({ ...b }));
  }

  endEpisode(_summary: EpisodeSummary): void {
    // One allocation, found by the search; outcomes do not change it.
  }

  /** The search's record (expected-cost curve, freezes, allocation); null before the first propose(). */
  report(): SspsReport | null {
    return this.result;
  }

  getState(): SspsState {
    return { name: 'ssps', version: 1, options: { ...this.options }, report: this.result, proposed: this.proposed };
  }

  setState(state: unknown): void {
    const s = state as Partial<SspsState> | null;
    if (
      s?.name !== 'ssps' ||
      s.version !== 1 ||
      typeof s.proposed !== 'number' ||
      (s.report !== null && typeof s.report !== 'object')
    ) {
      throw new Error('ssps agent: bad state');
    }
    if (s.report && this.ctx && s.report.allocation.length !== this.ctx.layers.length) {
      throw new Error(
        `ssps agent: state is for a network of ${s.report.allocation.length} layers, not ${this.ctx.layers.length}`,
      );
    }
    this.result = s.report ?? null;
    this.proposed = s.proposed;
  }

  // -------------------------------------------------------------------------------------------
  /** The priced metrics and their targets (see the module comment). */
  private targets(ctx: AgentContext, table: CostTable): { targets: SspsTarget[]; source: SspsReport['targetSource'] } {
    const declared = declaredLimits(ctx);
    const wanted = this.options.metric as CostMetric | null;
    if (declared !== null && declared.length > 0) {
      const additive = declared.filter((d) => ADDITIVE_METRICS.includes(d.metric));
      const chosen = wanted === null ? additive : additive.filter((d) => d.metric === wanted);
      if (chosen.length > 0) {
        // One target per metric: the tightest limit.
        const byMetric = new Map<CostMetric, number>();
        for (const d of chosen) byMetric.set(d.metric, Math.min(byMetric.get(d.metric) ?? Infinity, d.limit));
        return {
          targets: [...byMetric].map(([metric, target]) => ({ metric, target })),
          source: wanted === null ? 'declared' : 'option',
        };
      }
    }
    const tiedOptions = layerOptions(ctx, true);
    // Maximise the total bits under the budgets: tells which budget binds and how far it reaches.
    const values = tiedOptions.map((opts) => opts.map((o) => -(o.wBits + o.aBits)));
    const sol = solveUnderBudgets(ctx, table, tiedOptions, values);
    if (sol.source === 'unconstrained') return { targets: [], source: 'unconstrained' };
    const bound = (m: CostMetric): number => sol.feasibleMax[COST_METRICS.indexOf(m)];
    if (sol.source === 'none') {
      // Nothing is feasible: aim at the cheapest allocation's costs.
      const cost = ctx.costOf(sol.bits);
      return {
        targets: (wanted !== null ? [wanted] : ADDITIVE_METRICS).map((metric) => ({
          metric,
          target: metricValue(cost, metric),
        })),
        source: 'none',
      };
    }
    if (wanted !== null) return { targets: [{ metric: wanted, target: bound(wanted) }], source: 'option' };
    return { targets: ADDITIVE_METRICS.map((metric) => ({ metric, target: bound(metric) })), source: sol.source };
  }

  private async search(ctx: AgentContext, t: TrainingAccess): Promise<SspsReport> {
    const o = this.options;
    const t0 = performance.now();
    const net = t.net;
    const model = net.model;
    const qls = quantLayers(model);
    if (qls.length !== ctx.layers.length)
      throw new Error(`ssps: the network has ${qls.length} quantized layers, the context ${ctx.layers.length}`);
    const bitsSet = [...ctx.bitChoices].sort((a, b) => a - b);
    const nb = bitsSet.length;
    const pinned = pinnedLayers(ctx);
    const searchable = ctx.layers.map((_, i) => i).filter((i) => !pinned[i]);
    const { targets, source } = this.targets(ctx, t.costTable);
    const priced = targets.filter((x) => Number.isFinite(x.target) && x.target > 0);
    const primary = targets[0] ?? { metric: 'latency', target: Infinity };
    const layerMetric = (c: LayerCost, m: CostMetric): number =>
      m === 'latency' ? c.latencyMs : m === 'energy' ? c.energyUj : c.weightBytes;
    const costOf = (l: number, b: number, m: CostMetric): number => layerMetric(t.costTable.layerCost(l, b, b), m);
    const pinnedCost = (m: CostMetric): number =>
      ctx.layers.reduce(
        (acc, _, l) => acc + (pinned[l] ? layerMetric(t.costTable.layerCost(l, REFERENCE_BITS, REFERENCE_BITS), m) : 0),
        0,
      );
    /** Per priced metric, [searchable layers x widths] of cost / target. */
    const relRows = priced.map((p) => searchable.map((l) => bitsSet.map((b) => costOf(l, b, p.metric) / p.target)));
    const relPinned = priced.map((p) => pinnedCost(p.metric) / p.target);
    log.info(
      `ssps: pricing ${priced.length > 0 ? priced.map((p) => `${p.metric} <= ${p.target.toPrecision(4)}`).join(', ') : 'nothing (no budget binds)'} (${source}), ` +
        `${searchable.length} layers, bits ${bitsSet.join(',')}`,
    );

    const spf = o.stepsPerFreeze > 0 ? o.stepsPerFreeze : Math.max(1, Math.floor(o.steps / (searchable.length + 1)));
    const frozenBits = new Map<number, number>(); // row -> bits
    const freezes: SspsFreeze[] = [];
    const curve: SspsCurvePoint[] = [];
    const logits = tf.variable(tf.zeros([searchable.length, nb]), true, `ssps_logits_${Date.now()}`);
    const costTensors = relRows.map((rows) => tf.tensor2d(rows, [searchable.length, nb]));
    const weightOpt = tf.train.adam(o.weightLr > 0 ? o.weightLr : t.trainer.learningRate);
    const logitOpt = tf.train.adam(o.learningRate);
    const probabilities = outputsProbabilities(model);
    const train = t.dataset.train;
    const n = train.labels.length;
    const batch = Math.min(o.batchSize, n);
    const rng = new Rng(ctx.seed ^ 0x55a5);
    const perm = Array.from({ length: n }, (_, i) => i);
    let cursor = n;
    const saved = net.getBits();

    const probs = (): number[][] =>
      tf.tidy(() => {
        const p = tf.softmax(tf.div(logits, o.temperature)).arraySync() as number[][];
        return p;
      });
    /** E[cost_m] over the whole network, from the current probabilities (frozen rows at their bits). */
    const expectedCost = (p: number[][], m: CostMetric): number => {
      let e = pinnedCost(m);
      searchable.forEach((l, r) => {
        const fb = frozenBits.get(r);
        if (fb !== undefined) e += costOf(l, fb, m);
        else e += p[r].reduce((acc, pb, k) => acc + pb * costOf(l, bitsSet[k], m), 0);
      });
      return e;
    };
    const record = (step: number, loss: number): void => {
      const p = probs();
      const penalty = priced.reduce(
        (acc, x) => acc + o.lambda * Math.max(0, expectedCost(p, x.metric) / x.target - 1),
        0,
      );
      curve.push({ step, expectedCost: expectedCost(p, primary.metric), penalty, loss, frozen: frozenBits.size });
    };
    const argmaxBits = (row: number[]): number => bitsSet[row.indexOf(Math.max(...row))];
    const narrowest = bitsSet[0];
    /** The allocation with frozen layers at their bits, `extra` applied, and the rest at the narrowest width. */
    const completion = (extra: Map<number, number>): BitConfig =>
      ctx.layers.map((_, l) => {
        if (pinned[l]) return { wBits: REFERENCE_BITS, aBits: REFERENCE_BITS };
        const r = searchable.indexOf(l);
        const b = extra.get(r) ?? frozenBits.get(r) ?? narrowest;
        return { wBits: b, aBits: b };
      });
    const freezeOne = (step: number, p: number[][]): void => {
      let bestRow = -1;
      let bestP = -1;
      searchable.forEach((_, r) => {
        if (frozenBits.has(r)) return;
        const m = Math.max(...p[r]);
        if (m > bestP) {
          bestP = m;
          bestRow = r;
        }
      });
      if (bestRow < 0) return;
      const row = p[bestRow];
      const order = bitsSet.map((_, k) => k).sort((a, b) => row[b] - row[a] || bitsSet[b] - bitsSet[a]);
      let chosen = narrowest;
      let found = false;
      for (const k of order) {
        const b = bitsSet[k];
        if (ctx.isFeasible(completion(new Map([[bestRow, b]])))) {
          chosen = b;
          found = true;
          break;
        }
      }
      if (!found)
        log.warn(
          `ssps: no width of layer ${ctx.layers[searchable[bestRow]]?.name} leaves a feasible allocation; freezing it at ${narrowest}`,
        );
      frozenBits.set(bestRow, chosen);
      const l = searchable[bestRow];
      const q = qls[l];
      q.weightMix = null;
      q.setLayerBits(chosen, chosen);
      freezes.push({
        step,
        layer: l,
        name: ctx.layers[l]?.name ?? `layer${l}`,
        bits: chosen,
        probability: row[bitsSet.indexOf(chosen)],
        argmax: argmaxBits(row),
      });
    };

    // Weight mix on every searchable layer: sum_b p_lb Q_b(W).
    const mixFor =
      (r: number) =>
      (layer: QuantLayer): tf.Tensor => {
        const k = layer.getKernel().read();
        const axes = channelReduceAxes(layer.kind, k.rank);
        const p = tf.softmax(tf.div(tf.squeeze(tf.slice(logits, [r, 0], [1, nb]), [0]), o.temperature));
        let mix: tf.Tensor | null = null;
        bitsSet.forEach((b, j) => {
          const term = tf.mul(quantizeWeightsSte(k, b, axes), tf.slice(p, [j], [1]));
          mix = mix === null ? term : tf.add(mix, term);
        });
        return mix as unknown as tf.Tensor;
      };

    try {
      const start = ctx.layers.map((_, l) =>
        pinned[l]
          ? { wBits: REFERENCE_BITS, aBits: REFERENCE_BITS }
          : { wBits: bitsSet[nb - 1], aBits: bitsSet[nb - 1] },
      );
      net.setBits(start);
      searchable.forEach((l, r) => (qls[l].weightMix = mixFor(r)));
      const weightVars = () => model.trainableWeights.map((w) => w.read() as tf.Variable);
      record(0, NaN);
      const stepProgress = new Progress({ label: 'ssps: relaxed search steps', total: o.steps });
      for (let step = 1; step <= o.steps; step++) {
        stepProgress.update(step - 1, `${frozenBits.size}/${searchable.length} layers frozen`);
        // Activations at each unfrozen layer's current argmax (tied to its weights).
        const p = probs();
        const bits: BitConfig = ctx.layers.map((_, l) => {
          if (pinned[l]) return { wBits: REFERENCE_BITS, aBits: REFERENCE_BITS };
          const r = searchable.indexOf(l);
          const b = frozenBits.get(r) ?? argmaxBits(p[r]);
          return { wBits: b, aBits: b };
        });
        net.setBits(bits);
        if (cursor + batch > n) {
          rng.shuffle(perm);
          cursor = 0;
        }
        const idx = perm.slice(cursor, cursor + batch);
        cursor += batch;
        const frozenMask = tf.tensor2d(
          searchable.map((_, r) => bitsSet.map(() => (frozenBits.has(r) ? 0 : 1))),
          [searchable.length, nb],
        );
        const frozenConst = priced.map(
          (x, i) =>
            relPinned[i] +
            [...frozenBits.entries()].reduce((acc, [r, b]) => acc + costOf(searchable[r], b, x.metric) / x.target, 0),
        );
        const ce = tf.tidy(() => {
          const it = tf.tensor1d(idx, 'int32');
          const xb = splitInputs(train).gather(Int32Array.from(idx));
          const yb = tf.gather(train.y, it);
          let ceValue: tf.Scalar | null = null;
          const vars = [...weightVars(), logits];
          const { value, grads } = tf.variableGrads(() => {
            const out = model.apply(xb, { training: true }) as tf.Tensor;
            const ceMean = tf.mean<tf.Scalar>(perSampleCrossEntropy(yb, out, probabilities));
            ceValue = tf.keep(ceMean);
            let loss: tf.Scalar = ceMean;
            for (const reg of model.calculateLosses()) loss = tf.add<tf.Scalar>(loss, reg);
            if (priced.length > 0 && o.lambda > 0) {
              const pr = tf.mul(tf.softmax(tf.div(logits, o.temperature)), frozenMask);
              costTensors.forEach((c, i) => {
                const rel = tf.add(tf.sum(tf.mul(pr, c)), frozenConst[i]);
                loss = tf.add<tf.Scalar>(loss, tf.mul(o.lambda, tf.relu(tf.sub(rel, 1))));
              });
            }
            return loss;
          }, vars);
          void value;
          const logitName = logits.name;
          const wGrads = Object.entries(grads)
            .filter(([name]) => name !== logitName)
            .map(([name, tensor]) => ({ name, tensor }));
          weightOpt.applyGradients(wGrads);
          const lg = grads[logitName];
          if (lg) logitOpt.applyGradients([{ name: logitName, tensor: tf.mul(lg, frozenMask) }]);
          return ceValue as unknown as tf.Scalar;
        });
        const ceNum = ce.dataSync()[0];
        ce.dispose();
        frozenMask.dispose();
        if (step % spf === 0 && step < o.steps && frozenBits.size < searchable.length) freezeOne(step, probs());
        if (step % o.recordEvery === 0 || step === o.steps) record(step, ceNum);
        if (step % 25 === 0) await new Promise<void>((r) => setImmediate(r));
      }
      stepProgress.finish(`${frozenBits.size}/${searchable.length} layers frozen`);
      const pEnd = probs();
      while (frozenBits.size < searchable.length) freezeOne(o.steps, pEnd);
      const last = curve[curve.length - 1];
      if (last && last.frozen < searchable.length) record(o.steps, last.loss);
      const allocation = completion(new Map());
      log.info(
        `ssps: ${o.steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s; E[${primary.metric}] ${curve[0]?.expectedCost.toPrecision(4)} -> ${curve[curve.length - 1]?.expectedCost.toPrecision(4)}; allocation ${allocation.map((b) => b.wBits).join(',')}`,
      );
      return {
        metric: primary.metric,
        target: priced.length > 0 ? primary.target : null,
        targets: priced,
        targetSource: source,
        bitChoices: bitsSet,
        curve,
        freezes,
        allocation,
        probabilities: ctx.layers.map((_, l) => (pinned[l] ? [] : pEnd[searchable.indexOf(l)])),
        steps: o.steps,
        seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      for (const q of qls) q.weightMix = null;
      net.setBits(saved);
      weightOpt.dispose();
      logitOpt.dispose();
      logits.dispose();
      for (const c of costTensors) c.dispose();
    }
  }
}

export const sspsAgentEntry: AgentEntry = {
  describe:
    'SSPS: differentiable single-path search; per-layer bit logits trained with the weights under an expected-cost penalty, layers frozen one by one',
  defaults: { ...SSPS_DEFAULTS },
  validate: (opts, field) => void validateSspsOptions(opts as unknown as SspsOptions, field),
  create: (opts) => new SspsAgent(opts),
};
