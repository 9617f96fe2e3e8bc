/**
 * Reward functions: pure functions of one evaluated allocation. The env gives the reward at the
 * last step of an episode (0 on earlier steps).
 *
 *   haq      HAQ: 0.1 x (acc - accFloat).
 *   amed     AMED: zeta = alpha x CE + beta x latency / latency(W8A8); reward = -zeta - penalty,
 *            penalty = gamma x max(0, threshold - acc), threshold = accThreshold if given, else
 *            accFloat - maxAccDrop. (The paper names the penalty's shape only; linear is our choice.)
 *   releq    ReLeQ: x = quantState - xMin, y = acc / accFloat; -1 if y < margin,
 *            else 2 x ((1 - x^0.8) x y^(1/y) - 0.5). quantState = sum(params x wBits) /
 *            (sum(params) x maxBits) and xMin = minBits / maxBits (the paper leaves the exact
 *            normalisation open; this is ours).
 *   weighted acc - sum_k w_k x relCost_k over latency, energy, size, peak memory.
 *
 * `rejectReward` is what the `reject` constraint mode gives an infeasible allocation (not evaluated).
 */
import { UserError } from '../src/errors.js';

export type RewardKind = 'haq' | 'amed' | 'releq' | 'weighted';
export const REWARD_KINDS: readonly RewardKind[] = ['haq', 'amed', 'releq', 'weighted'];

export interface RelativeCost {
  latency: number;
  energy: number;
  size: number;
  peakMemory: number;
}

/** Everything a reward may depend on. */
export interface RewardInput {
  accuracy: number;
  loss: number;
  /** Accuracy and loss of the float network. */
  accFloat: number;
  lossFloat: number;
  /** Cost / cost of the W8A8 network, per metric. */
  relativeCost: RelativeCost;
  /** sum(params x wBits) / (sum(params) x maxBits), in (0, 1]. */
  quantState: number;
  /** minBits / maxBits of the env's choices. */
  quantStateMin: number;
}

export interface HaqRewardParams {
  kind: 'haq';
  /** Scale of the accuracy difference (0.1 in HAQ). */
  scale: number;
}
export interface AmedRewardParams {
  kind: 'amed';
  alpha: number;
  beta: number;
  gamma: number;
  /** Absolute accuracy below which the penalty starts; null: accFloat - maxAccDrop. */
  accThreshold: number | null;
  maxAccDrop: number;
}
export interface ReleqRewardParams {
  kind: 'releq';
  /** Minimum acc / accFloat before the reward drops to -1. */
  margin: number;
}
export interface WeightedRewardParams {
  kind: 'weighted';
  weights: RelativeCost;
}
export type RewardParams = HaqRewardParams | AmedRewardParams | ReleqRewardParams | WeightedRewardParams;

export const REWARD_DEFAULTS: {
  haq: HaqRewardParams;
  amed: AmedRewardParams;
  releq: ReleqRewardParams;
  weighted: WeightedRewardParams;
} = {
  haq: { kind: 'haq', scale: 0.1 },
  amed: { kind: 'amed', alpha: 1, beta: 1, gamma: 10, accThreshold: null, maxAccDrop: 0.05 },
  releq: { kind: 'releq', margin: 0.9 },
  weighted: { kind: 'weighted', weights: { latency: 0.1, energy: 0, size: 0, peakMemory: 0 } },
};

export function haqReward(accuracy: number, accFloat: number, scale = 0.1): number {
  return scale * (accuracy - accFloat);
}

export function amedQualityScore(loss: number, relLatency: number, alpha: number, beta: number): number {
  return alpha * loss + beta * relLatency;
}

export function amedReward(input: RewardInput, p: Omit<AmedRewardParams, 'kind'>): number {
  const zeta = amedQualityScore(input.loss, input.relativeCost.latency, p.alpha, p.beta);
  const threshold = p.accThreshold ?? input.accFloat - p.maxAccDrop;
  const penalty = p.gamma * Math.max(0, threshold - input.accuracy);
  return -zeta - penalty;
}

export function releqReward(input: RewardInput, margin: number): number {
  const y = input.accFloat > 0 ? input.accuracy / input.accFloat : 0;
  if (y < margin || y <= 0) return -1;
  const x = Math.max(0, input.quantState - input.quantStateMin);
  return 2 * ((1 - Math.pow(x, 0.8)) * Math.pow(y, 1 / y) - 0.5);
}

export function weightedReward(input: RewardInput, weights: RelativeCost): number {
  const c = input.relativeCost;
  return (
    input.accuracy -
    (weights.latency * c.latency +
      weights.energy * c.energy +
      weights.size * c.size +
      weights.peakMemory * c.peakMemory)
  );
}

export function computeReward(input: RewardInput, p: RewardParams): number {
  switch (p.kind) {
    case 'haq':
      return haqReward(input.accuracy, input.accFloat, p.scale);
    case 'amed':
      return amedReward(input, p);
    case 'releq':
      return releqReward(input, p.margin);
    case 'weighted':
      return weightedReward(input, p.weights);
  }
}

/**
 * Default reward for an allocation the `reject` mode refuses: at or below the worst a feasible
 * allocation can score when its accuracy is 0 (haq: -scale; releq: -1; amed: zeta at loss 10 and the
 * reference latency plus the full penalty; weighted: every relative cost at 1).
 */
export function defaultRejectReward(p: RewardParams): number {
  switch (p.kind) {
    case 'haq':
      return -p.scale;
    case 'releq':
      return -1;
    case 'amed': {
      const threshold = p.accThreshold ?? 1 - p.maxAccDrop;
      return -(p.alpha * 10 + p.beta * 1 + p.gamma * Math.max(0, threshold));
    }
    case 'weighted': {
      const w = p.weights;
      return -(w.latency + w.energy + w.size + w.peakMemory);
    }
  }
}

/** A reward spec: a kind name (defaults), or a kind with some parameters overridden. */
export type RewardSpec = RewardKind | ({ kind: RewardKind } & Record<string, unknown>);

/** Fills a reward spec from the defaults; unknown kind or parameter is a UserError. */
export function resolveReward(spec: RewardSpec, field = 'reward'): RewardParams {
  const kind = typeof spec === 'string' ? spec : spec.kind;
  if (!(REWARD_KINDS as readonly string[]).includes(kind)) {
    throw new UserError(`unknown reward '${String(kind)}'`, { field, expected: REWARD_KINDS.join('|') });
  }
  const defaults = REWARD_DEFAULTS[kind] as unknown as Record<string, unknown>;
  if (typeof spec === 'string') return { ...defaults } as unknown as RewardParams;
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'kind') continue;
    if (!(key in defaults)) {
      const valid = Object.keys(defaults).filter((k) => k !== 'kind');
      throw new UserError(`unknown parameter '${key}' for reward '${kind}'`, {
        field: `${field}.${key}`,
        expected: valid.join(', '),
      });
    }
    const d = defaults[key];
    if (key === 'weights') {
      out[key] = resolveWeights(value, `${field}.weights`);
    } else if (key === 'accThreshold') {
      if (value !== null && typeof value !== 'number') {
        throw new UserError(`'${key}' must be a number or null`, {
          field: `${field}.${key}`,
          expected: 'number in [0, 1] or null',
        });
      }
      out[key] = value;
    } else {
      if (typeof value !== typeof d || (typeof value === 'number' && !Number.isFinite(value))) {
        throw new UserError(`'${key}' must be a finite ${typeof d}`, { field: `${field}.${key}`, expected: typeof d });
      }
      out[key] = value;
    }
  }
  return out as unknown as RewardParams;
}

function resolveWeights(value: unknown, field: string): RelativeCost {
  const keys = ['latency', 'energy', 'size', 'peakMemory'] as const;
  if (typeof value !== 'object' || value === null) {
    throw new UserError('weights must be an object', { field, expected: `{${keys.join(', ')}} numbers` });
  }
  const out: RelativeCost = { latency: 0, energy: 0, size: 0, peakMemory: 0 };
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!(keys as readonly string[]).includes(k)) {
      throw new UserError(`unknown weight '${k}'`, { field: `${field}.${k}`, expected: keys.join(', ') });
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new UserError(`weight '${k}' must be a finite number`, { field: `${field}.${k}`, expected: 'number' });
    }
    out[k as keyof RelativeCost] = v;
  }
  return out;
}
