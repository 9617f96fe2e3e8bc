/**
 * BitAllocationEnv: the bit-allocation MDP, Gymnasium-style.
 *
 *   const { observation } = env.reset(seed);
 *   const { observation, reward, terminated, truncated, info } = await env.step(action);
 *
 * One step per chosen layer (`joint`: a (wBits, aBits) pair from bitChoices^2; `tied`: one width for
 * both) or two (`two-step`: weights, then activations). With pinFirstLast the first and last layers sit at
 * W8A8 and get no step. At the last step the env applies the constraint mode (lower / penalty /
 * reject, see constraints.ts), asks the AccuracyEvaluator once, and returns the reward (rewards.ts);
 * every earlier step has reward 0. The episode's EpisodeSummary is in the last step's `info.summary`.
 * The env never trains.
 *
 * Action masks: a choice is masked when, even with every remaining layer at the minimum bits, the
 * budgets could no longer be met. The cost of that cheapest completion comes from the cost function
 * itself (it is monotonic in every layer's bits), which is exact for additive metrics (latency,
 * energy, size) and for the max-over-layers peak memory alike. If no choice can meet the budgets (they
 * are infeasible even at the minimum bits), only the cheapest choice (index 0) stays allowed. Masks
 * cover the user's budgets, not the device's own limits (`cost.fits`), which count in feasibility.
 * Taking a masked action is allowed (agents without mask support rely on the constraint mode) and
 * is reported as `info.maskViolated`; with `strictMasks: true` it throws instead.
 */
import { UserError } from '../src/errors.js';
import type { AllocationCost } from '../src/hardware/api.js';
import { VALID_BITS, type BitConfig, type LayerBits, type LayerInfo } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';
import {
  COST_METRICS,
  meetsAll,
  metricValue,
  parseConstraintMode,
  parseConstraints,
  relativeExcess,
  resolveConstraints,
  type Constraint,
  type ConstraintMode,
  type ResolvedConstraint,
} from './constraints.js';
import {
  LAYER_FEATURES,
  LEFT_OFFSET,
  OBSERVATION_SIZE,
  USED_MAX,
  USED_OFFSET,
  clip,
  layerFeatureTable,
  observationSpace,
} from './observation.js';
import {
  computeReward,
  defaultRejectReward,
  resolveReward,
  type RelativeCost,
  type RewardParams,
  type RewardSpec,
} from './rewards.js';
import { Box, Discrete } from './spaces.js';
import type { AccuracyEvaluator, AccuracyResult, AgentContext, EpisodeSummary, StepMode } from './types.js';

export type { StepMode } from './types.js';
export const STEP_MODES: readonly StepMode[] = ['joint', 'tied', 'two-step'];
/**
 * Older spellings of step modes that experiment files and flags still accept (with a warning): `haq` was the
 * two-step mode's name, which also named a reward (rewards.ts) and the budget walk (constraint mode `lower`).
 */
export const DEPRECATED_STEP_MODES: Readonly<Record<string, StepMode>> = { haq: 'two-step' };
export const DEFAULT_BIT_CHOICES: readonly number[] = [2, 3, 4, 5, 6, 7, 8];
/** Bits of pinned layers (pinFirstLast) and of the reference network. */
export const REFERENCE_BITS = 8;

export interface BitAllocationEnvOptions {
  layers: readonly LayerInfo[];
  /** Bit-widths to choose from, for weights and activations. Default 2..8. */
  bitChoices?: readonly number[];
  /** Cost of a whole allocation (the simulator's CostTable.costAllocation). Must cover W8A8. */
  cost: (bits: BitConfig) => AllocationCost;
  evaluator: AccuracyEvaluator;
  /** Budget strings (see constraints.ts) or parsed constraints. Default: none. */
  constraints?: readonly (string | Constraint)[];
  constraintMode?: ConstraintMode;
  /** Reward kind or kind with parameters (see rewards.ts). Default 'haq'. */
  reward?: RewardSpec;
  stepMode?: StepMode;
  /** First and last layer at W8A8, no steps for them. Default false. */
  pinFirstLast?: boolean;
  seed?: number;
  /** Penalty mode: reward -= penaltyScale x relative excess (+ penaltyScale when the device limits fail). Default 1. */
  penaltyScale?: number;
  /** Reject mode: reward of an infeasible allocation. Default: defaultRejectReward(reward). */
  rejectReward?: number;
  /** When false, actionMask() returns null. Default true. */
  masks?: boolean;
  /** When true, stepping with a masked action throws. Default false. */
  strictMasks?: boolean;
}

export interface StepInfo {
  /** 0-based step within the episode. */
  step: number;
  layerIndex: number;
  side: 'weights' | 'activations' | 'both';
  /** The bits this step set. */
  bits: LayerBits;
  /** The action was masked when taken. */
  maskViolated: boolean;
  /** On the last step: the episode's outcome. */
  summary?: EpisodeSummary;
}

export interface StepResult {
  observation: Float32Array;
  reward: number;
  terminated: boolean;
  truncated: boolean;
  info: StepInfo;
}

export interface ResetResult {
  observation: Float32Array;
  info: { episode: number; stepsPerEpisode: number };
}

const STEP_AFTER_DONE = 'step() called after the episode ended: call reset() first';

export class BitAllocationEnv {
  readonly layers: readonly LayerInfo[];
  readonly bitChoices: readonly number[];
  readonly stepMode: StepMode;
  readonly constraintMode: ConstraintMode;
  readonly constraints: readonly ResolvedConstraint[];
  readonly reward: RewardParams;
  readonly pinFirstLast: boolean;
  readonly referenceCost: AllocationCost;
  /** What each action index means. two-step mode: the step's side (weights or activations) takes `wBits` (= `aBits`). */
  readonly actionChoices: readonly LayerBits[];
  readonly actionSpace: Discrete;
  readonly observationSpace: Box;
  readonly stepsPerEpisode: number;
  /** Layers that get steps, in order. */
  readonly freeLayers: readonly number[];
  /** Seeded by reset(seed); for `env.actionSpace.sample(env.rng)`. */
  rng: Rng;

  private readonly costFn: (bits: BitConfig) => AllocationCost;
  private readonly evaluator: AccuracyEvaluator;
  private readonly penaltyScale: number;
  private readonly rejectReward: number;
  private readonly masksOn: boolean;
  private readonly strictMasks: boolean;
  private readonly minBits: number;
  private readonly maxBits: number;
  private readonly pinned: readonly boolean[];
  private readonly features: Float32Array[];
  private readonly stepsPerLayer: number;
  private referenceAcc: Promise<AccuracyResult> | null = null;

  private episodes = 0;
  private t = 0;
  private started = false;
  private done = false;
  /** The cheapest completion of the choices so far: undecided values sit at minBits. */
  private current: LayerBits[] = [];
  private prevBits = 0;
  private maskCache: Uint8Array | null = null;

  constructor(opts: BitAllocationEnvOptions) {
    if (!opts.layers || opts.layers.length === 0)
      throw new UserError('the network has no quantizable layers', { field: 'layers' });
    this.layers = opts.layers;
    this.bitChoices = validateBitChoices(opts.bitChoices ?? DEFAULT_BIT_CHOICES);
    this.minBits = this.bitChoices[0];
    this.maxBits = this.bitChoices[this.bitChoices.length - 1];
    this.stepMode = opts.stepMode ?? 'joint';
    if (!STEP_MODES.includes(this.stepMode)) {
      throw new UserError(`unknown step mode '${String(this.stepMode)}'`, {
        field: 'stepMode',
        expected: STEP_MODES.join('|'),
      });
    }
    this.constraintMode = parseConstraintMode(opts.constraintMode ?? 'lower', { field: 'constraintMode' });
    this.reward = resolveReward(opts.reward ?? 'haq');
    this.pinFirstLast = opts.pinFirstLast ?? false;
    this.penaltyScale = opts.penaltyScale ?? 1;
    this.rejectReward = opts.rejectReward ?? defaultRejectReward(this.reward);
    this.masksOn = opts.masks ?? true;
    this.strictMasks = opts.strictMasks ?? false;
    this.costFn = opts.cost;
    this.evaluator = opts.evaluator;
    this.rng = new Rng(opts.seed ?? 0);

    const n = this.layers.length;
    this.pinned = this.layers.map((_, i) => this.pinFirstLast && (i === 0 || i === n - 1));
    this.freeLayers = this.layers.map((_, i) => i).filter((i) => !this.pinned[i]);
    if (this.freeLayers.length === 0) {
      throw new UserError('pinFirstLast leaves no layer to choose bits for', {
        field: 'pinFirstLast',
        expected: 'false for networks of 1-2 layers',
      });
    }
    this.stepsPerLayer = this.stepMode === 'two-step' ? 2 : 1;
    this.stepsPerEpisode = this.freeLayers.length * this.stepsPerLayer;

    if (this.stepMode === 'joint') {
      this.actionChoices = this.bitChoices.flatMap((w) => this.bitChoices.map((a) => ({ wBits: w, aBits: a })));
    } else {
      this.actionChoices = this.bitChoices.map((b) => ({ wBits: b, aBits: b }));
    }
    this.actionSpace = new Discrete(this.actionChoices.length);
    this.observationSpace = observationSpace();
    this.features = layerFeatureTable(this.layers);

    this.referenceCost = this.costFn(this.layers.map(() => ({ wBits: REFERENCE_BITS, aBits: REFERENCE_BITS })));
    const parsed = parseConstraints(opts.constraints ?? [], { field: 'constraints' });
    this.constraints = resolveConstraints(parsed, this.referenceCost);
  }

  get observationSize(): number {
    return OBSERVATION_SIZE;
  }

  /** Episodes finished so far (step episodes and evaluateAllocation calls). */
  get episodeCount(): number {
    return this.episodes;
  }

  /** For resuming a search: the next episode is numbered n + 1. */
  setEpisodeCount(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`episode count must be a non-negative integer, got ${n}`);
    this.episodes = n;
  }

  /** The problem as agents see it (see AgentContext). */
  agentContext(seed = 0): AgentContext {
    return {
      layers: this.layers,
      numActions: this.actionChoices.length,
      observationSize: OBSERVATION_SIZE,
      stepsPerEpisode: this.stepsPerEpisode,
      bitChoices: this.bitChoices,
      costOf: (bits) => this.costOf(bits),
      isFeasible: (bits) => this.isFeasible(bits),
      seed,
      constraints: this.constraints.map((c) => ({ metric: c.metric, limit: c.limit })),
      stepMode: this.stepMode,
      actionChoices: this.actionChoices,
    };
  }

  /** Cost of an allocation as this env evaluates it (pinned layers at W8A8). */
  costOf(bits: BitConfig): AllocationCost {
    return this.costFn(this.applyPins(bits));
  }

  /** Every budget met and within the device's limits (pinned layers at W8A8). */
  isFeasible(bits: BitConfig): boolean {
    return this.feasibleCost(this.costOf(bits));
  }

  reset(seed?: number): ResetResult {
    if (seed !== undefined) this.rng = new Rng(seed);
    this.t = 0;
    this.started = true;
    this.done = false;
    this.prevBits = 0;
    this.current = this.layers.map((_, i) =>
      this.pinned[i] ? { wBits: REFERENCE_BITS, aBits: REFERENCE_BITS } : { wBits: this.minBits, aBits: this.minBits },
    );
    this.maskCache = null;
    return { observation: this.observe(), info: { episode: this.episodes + 1, stepsPerEpisode: this.stepsPerEpisode } };
  }

  /** Allowed actions at the current step (1 = allowed), or null when masks are off. */
  actionMask(): Uint8Array | null {
    if (!this.masksOn) return null;
    if (!this.started || this.done) return null;
    if (!this.maskCache) this.maskCache = this.computeMask();
    return this.maskCache.slice();
  }

  async step(action: number): Promise<StepResult> {
    if (!this.started) throw new Error('step() called before reset()');
    if (this.done) throw new Error(STEP_AFTER_DONE);
    if (!this.actionSpace.contains(action)) {
      throw new RangeError(`action ${action} is outside the action space (integers 0..${this.actionSpace.n - 1})`);
    }
    let maskViolated = false;
    if (this.masksOn) {
      if (!this.maskCache) this.maskCache = this.computeMask();
      maskViolated = this.maskCache[action] === 0;
      if (maskViolated && this.strictMasks) {
        throw new Error(`action ${action} is masked at step ${this.t} (strictMasks is on)`);
      }
    }
    const { layer, side } = this.position(this.t);
    const choice = this.actionChoices[action];
    const lb = this.current[layer];
    if (side === 'weights') lb.wBits = choice.wBits;
    else if (side === 'activations') lb.aBits = choice.aBits;
    else {
      lb.wBits = choice.wBits;
      lb.aBits = choice.aBits;
    }
    this.prevBits = side === 'activations' ? choice.aBits : choice.wBits;
    const info: StepInfo = { step: this.t, layerIndex: layer, side, bits: { ...lb }, maskViolated };
    this.t++;
    this.maskCache = null;
    if (this.t < this.stepsPerEpisode) {
      return { observation: this.observe(), reward: 0, terminated: false, truncated: false, info };
    }
    this.done = true;
    const summary = await this.finishEpisode(this.current.map((b) => ({ ...b })));
    info.summary = summary;
    return { observation: this.observe(), reward: summary.reward, terminated: true, truncated: false, info };
  }

  /**
   * For allocation agents: the same constraint handling, evaluation and reward as a full episode,
   * for a whole allocation (pinned layers are set to W8A8). Counts as one episode.
   */
  async evaluateAllocation(bits: BitConfig): Promise<EpisodeSummary> {
    if (!Array.isArray(bits) || bits.length !== this.layers.length) {
      throw new RangeError(
        `an allocation needs ${this.layers.length} entries, got ${Array.isArray(bits) ? bits.length : typeof bits}`,
      );
    }
    bits.forEach((b, i) => {
      if (this.pinned[i]) return;
      if (!this.bitChoices.includes(b.wBits) || !this.bitChoices.includes(b.aBits)) {
        throw new RangeError(
          `layer ${i} bits ${b.wBits}/${b.aBits} are not among the choices ${this.bitChoices.join(',')}`,
        );
      }
      if (this.stepMode === 'tied' && b.wBits !== b.aBits) {
        throw new RangeError(`layer ${i}: tied step mode needs wBits = aBits, got ${b.wBits}/${b.aBits}`);
      }
    });
    return this.finishEpisode(bits.map((b) => ({ wBits: b.wBits, aBits: b.aBits })));
  }

  /** HAQ's budget walk (see constraints.ts); returns a new allocation. Pinned layers are not lowered. */
  lowerToBudget(bits: BitConfig): BitConfig {
    const b = this.applyPins(bits);
    const ok = (): boolean => this.feasibleCost(this.costFn(b));
    const tied = this.stepMode === 'tied';
    while (!ok()) {
      let changed = false;
      for (let k = this.freeLayers.length - 1; k >= 0; k--) {
        const lb = b[this.freeLayers[k]];
        if (tied) {
          const lower = this.lowerChoice(lb.wBits);
          if (lower !== null) {
            lb.wBits = lower;
            lb.aBits = lower;
            changed = true;
            if (ok()) return b;
          }
          continue;
        }
        const a = this.lowerChoice(lb.aBits);
        if (a !== null) {
          lb.aBits = a;
          changed = true;
          if (ok()) return b;
        }
        const w = this.lowerChoice(lb.wBits);
        if (w !== null) {
          lb.wBits = w;
          changed = true;
          if (ok()) return b;
        }
      }
      if (!changed) break;
    }
    return b;
  }

  private lowerChoice(bits: number): number | null {
    let best: number | null = null;
    for (const c of this.bitChoices) if (c < bits) best = c;
    return best;
  }

  private applyPins(bits: BitConfig): BitConfig {
    return bits.map((b, i) =>
      this.pinned[i] ? { wBits: REFERENCE_BITS, aBits: REFERENCE_BITS } : { wBits: b.wBits, aBits: b.aBits },
    );
  }

  private feasibleCost(cost: AllocationCost): boolean {
    return cost.fits && meetsAll(cost, this.constraints);
  }

  private reference(): Promise<AccuracyResult> {
    if (!this.referenceAcc) this.referenceAcc = this.evaluator.reference();
    return this.referenceAcc;
  }

  private relativeCost(cost: AllocationCost): RelativeCost {
    const ratio = (m: (typeof COST_METRICS)[number]): number => {
      const ref = metricValue(this.referenceCost, m);
      return ref > 0 ? metricValue(cost, m) / ref : 0;
    };
    return { latency: ratio('latency'), energy: ratio('energy'), size: ratio('size'), peakMemory: ratio('peakMemory') };
  }

  private quantState(bits: BitConfig): number {
    let num = 0;
    let den = 0;
    this.layers.forEach((l, i) => {
      num += l.params * bits[i].wBits;
      den += l.params * this.maxBits;
    });
    return den > 0 ? num / den : 0;
  }

  private async finishEpisode(proposed: BitConfig): Promise<EpisodeSummary> {
    let bits = this.applyPins(proposed);
    let cost = this.costFn(bits);
    if (this.constraintMode === 'lower' && !this.feasibleCost(cost)) {
      bits = this.lowerToBudget(bits);
      cost = this.costFn(bits);
    }
    const feasible = this.feasibleCost(cost);
    const relativeCost = this.relativeCost(cost);
    const ref = await this.reference();
    let accuracy = Number.NaN;
    let loss = Number.NaN;
    let reward: number;
    let penalty = 0;
    let evaluated = false;
    if (this.constraintMode === 'reject' && !feasible) {
      reward = this.rejectReward;
    } else {
      const r = await this.evaluator.evaluate(bits);
      accuracy = r.accuracy;
      loss = r.loss;
      evaluated = true;
      reward = computeReward(
        {
          accuracy,
          loss,
          accFloat: ref.accuracy,
          lossFloat: ref.loss,
          relativeCost,
          quantState: this.quantState(bits),
          quantStateMin: this.minBits / this.maxBits,
        },
        this.reward,
      );
      if (this.constraintMode === 'penalty') {
        penalty = this.penaltyScale * (relativeExcess(cost, this.constraints) + (cost.fits ? 0 : 1));
        reward -= penalty;
      }
    }
    this.episodes++;
    return {
      episode: this.episodes,
      proposedBits: proposed.map((b) => ({ ...b })),
      bits,
      accuracy,
      loss,
      cost,
      relativeCost,
      feasible,
      reward,
      evaluated,
      penalty,
    };
  }

  private position(t: number): { layer: number; side: StepInfo['side'] } {
    const k = Math.min(Math.floor(t / this.stepsPerLayer), this.freeLayers.length - 1);
    const layer = this.freeLayers[k];
    if (this.stepMode !== 'two-step') return { layer, side: 'both' };
    return { layer, side: t % 2 === 0 ? 'weights' : 'activations' };
  }

  private computeMask(): Uint8Array {
    const mask = new Uint8Array(this.actionChoices.length);
    const { layer, side } = this.position(this.t);
    const lb = this.current[layer];
    const saved = { ...lb };
    let any = false;
    for (let i = 0; i < this.actionChoices.length; i++) {
      const c = this.actionChoices[i];
      if (side !== 'activations') lb.wBits = c.wBits;
      if (side !== 'weights') lb.aBits = c.aBits;
      const ok = meetsAll(this.costFn(this.current), this.constraints);
      mask[i] = ok ? 1 : 0;
      any ||= ok;
    }
    lb.wBits = saved.wBits;
    lb.aBits = saved.aBits;
    if (!any) mask[0] = 1;
    return mask;
  }

  private observe(): Float32Array {
    const obs = new Float32Array(OBSERVATION_SIZE);
    const { layer, side } = this.position(this.t);
    obs.set(this.features[layer], 0);
    obs[LAYER_FEATURES] = this.prevBits / this.maxBits;
    obs[LAYER_FEATURES + 1] = side === 'weights' ? 1 : side === 'activations' ? 0 : 0.5;
    obs[10] = this.t / this.stepsPerEpisode;
    // layers whose weights (resp. activations) are decided
    let wSum = 0;
    let wCount = 0;
    let aSum = 0;
    let aCount = 0;
    for (let s = 0; s < this.t; s++) {
      const p = this.position(s);
      const lb = this.current[p.layer];
      if (p.side !== 'activations') {
        wSum += lb.wBits;
        wCount++;
      }
      if (p.side !== 'weights') {
        aSum += lb.aBits;
        aCount++;
      }
    }
    obs[11] = wCount > 0 ? wSum / wCount / this.maxBits : 0;
    obs[12] = aCount > 0 ? aSum / aCount / this.maxBits : 0;
    const used = this.costFn(this.current);
    COST_METRICS.forEach((m, i) => {
      const ref = metricValue(this.referenceCost, m);
      const v = metricValue(used, m);
      obs[USED_OFFSET + i] = clip(ref > 0 ? v / ref : 0, 0, USED_MAX);
      let left = 1;
      for (const c of this.constraints) {
        if (c.metric !== m) continue;
        left = Math.min(left, ref > 0 ? (c.limit - v) / ref : c.limit >= v ? 1 : -1);
      }
      obs[LEFT_OFFSET + i] = clip(left, -1, 1);
    });
    return obs;
  }
}

function validateBitChoices(choices: readonly number[]): number[] {
  const valid = VALID_BITS.filter((b) => b <= 16);
  const bad = choices.filter((b) => !valid.includes(b));
  if (choices.length === 0 || bad.length > 0) {
    throw new UserError(`bad bit choices ${bad.length > 0 ? bad.join(',') : '(empty)'}`, {
      field: 'bitChoices',
      expected: `a non-empty list from ${valid.join(',')}`,
    });
  }
  return [...new Set(choices)].sort((a, b) => a - b);
}
