/**
 * A synthetic problem with a known optimum, for testing the env and the agents without training:
 *
 * - syntheticLayers(): a 12-layer MobileNet-like inventory for 32x32x3 inputs.
 * - analyticCostTable(): a CostTable with a simple roofline model (not a device): per layer,
 *   latency = max(compute, memory) + overhead, compute = MACs x (w x a / 64) / MACsPerMs,
 *   memory = (params x w + inElements x a) / 8 / bytesPerMs. Latency, energy and size are sums over
 *   layers; peak memory is the max over layers of input + output (+ live) activation bytes at the
 *   layer's aBits.
 * - SyntheticEvaluator: separable accuracy loss,
 *   acc = accFloat - sum_l s_l x (g(w_l) + g(a_l)), g(b) = 2^-(b-2) (1 at 2 bits, 1/64 at 8 bits,
 *   0 at 32), with sensitivities s_l drawn log-normally from a seed; loss = lossFloat + 2 x (accFloat - acc).
 * - optimalUnderBudget(): the exact most accurate allocation under one additive budget (latency,
 *   energy or size), by a Pareto-frontier dynamic program over the layers.
 * - syntheticProblem(): all of the above plus a BitAllocationEnv on them.
 */
import type { AllocationCost, CostTable, LayerCost } from '../src/hardware/api.js';
import type { BitConfig, LayerBits, LayerInfo, LayerKind } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';
import { BitAllocationEnv, DEFAULT_BIT_CHOICES, type BitAllocationEnvOptions } from './bit-allocation-env.js';
import type { AccuracyEvaluator, AccuracyResult } from './types.js';

interface LayerSpec {
  kind: LayerKind;
  cIn: number;
  cOut: number;
  k: number;
  s: number;
}

const MOBILE_12: readonly LayerSpec[] = [
  { kind: 'conv', cIn: 3, cOut: 16, k: 3, s: 1 },
  { kind: 'depthwise', cIn: 16, cOut: 16, k: 3, s: 1 },
  { kind: 'conv', cIn: 16, cOut: 32, k: 1, s: 1 },
  { kind: 'depthwise', cIn: 32, cOut: 32, k: 3, s: 2 },
  { kind: 'conv', cIn: 32, cOut: 64, k: 1, s: 1 },
  { kind: 'depthwise', cIn: 64, cOut: 64, k: 3, s: 1 },
  { kind: 'conv', cIn: 64, cOut: 64, k: 1, s: 1 },
  { kind: 'depthwise', cIn: 64, cOut: 64, k: 3, s: 2 },
  { kind: 'conv', cIn: 64, cOut: 128, k: 1, s: 1 },
  { kind: 'conv', cIn: 128, cOut: 128, k: 3, s: 1 },
  { kind: 'conv', cIn: 128, cOut: 128, k: 1, s: 1 },
  { kind: 'dense', cIn: 128, cOut: 10, k: 1, s: 0 },
];

/** A 12-layer MobileNet-like inventory (input 32x32x3, 'same' padding; global pooling before the dense layer). */
export function syntheticLayers(): LayerInfo[] {
  let h = 32;
  return MOBILE_12.map((spec, index) => {
    const dense = spec.kind === 'dense';
    if (dense) h = 1;
    const inH = h;
    const outH = dense ? 1 : Math.ceil(inH / spec.s);
    h = outH;
    const params = spec.kind === 'depthwise' ? spec.cIn * spec.k * spec.k : spec.cIn * spec.cOut * spec.k * spec.k;
    const macs = params * outH * outH;
    return {
      index,
      name: `${spec.kind}_${index}`,
      kind: spec.kind,
      inChannels: spec.cIn,
      outChannels: spec.cOut,
      kernel: [spec.k, spec.k],
      stride: dense ? [0, 0] : [spec.s, spec.s],
      inSize: [inH, inH],
      outSize: [outH, outH],
      params,
      biasParams: spec.kind === 'dense' ? spec.cOut : 2 * spec.cOut,
      macs,
      inElements: inH * inH * spec.cIn,
      outElements: outH * outH * spec.cOut,
      liveElements: 0,
    } satisfies LayerInfo;
  });
}

export interface AnalyticCostOptions {
  /** MACs per millisecond at 8x8 bits. Default 2.56e8 (512 MAC/cycle at 500 MHz). */
  macsPerMs?: number;
  /** Off-chip bytes per millisecond. Default 1.2e7 (12 GB/s). */
  bytesPerMs?: number;
  /** Fixed latency per layer, ms. Default 0.0001. */
  overheadMs?: number;
  /** Energy per MAC at 8x8 bits, pJ (scales as (w x a / 64)^0.8). Default 0.46. */
  pjPerMac8?: number;
  /** Energy per off-chip bit, pJ. Default 15. */
  pjPerBit?: number;
}

/** A CostTable from the analytic model above, precomputed for every (layer, w, a) in bitChoices (plus 8). */
export function analyticCostTable(
  layers: readonly LayerInfo[],
  bitChoices: readonly number[],
  opts: AnalyticCostOptions = {},
): CostTable {
  const macsPerMs = opts.macsPerMs ?? 2.56e8;
  const bytesPerMs = opts.bytesPerMs ?? 1.2e7;
  const overheadMs = opts.overheadMs ?? 0.0001;
  const pjPerMac8 = opts.pjPerMac8 ?? 0.46;
  const pjPerBit = opts.pjPerBit ?? 15;
  const bits = [...new Set([...bitChoices, 8])].sort((a, b) => a - b);

  const compute = (l: LayerInfo, w: number, a: number): LayerCost => {
    const computeMs = (l.macs * ((w * a) / 64)) / macsPerMs;
    const memBits = l.params * w + l.inElements * a;
    const memoryMs = memBits / 8 / bytesPerMs;
    const weightBytes = (l.params * w) / 8 + (l.biasParams + l.outChannels) * 4;
    return {
      activationBytes: ((l.inElements + l.outElements + l.liveElements) * a) / 8,
      offChipBytes: memBits / 8,
      latencyMs: Math.max(computeMs, memoryMs) + overheadMs,
      energyUj: (l.macs * pjPerMac8 * Math.pow((w * a) / 64, 0.8) + memBits * pjPerBit) * 1e-6,
      computeCycles: computeMs * 5e5,
      memoryCycles: memoryMs * 5e5,
      bound: computeMs >= memoryMs ? 'compute' : 'memory',
      weightBytes,
    };
  };
  const table = new Map<string, LayerCost>();
  layers.forEach((l, i) => {
    for (const w of bits) for (const a of bits) table.set(`${i}:${w}:${a}`, compute(l, w, a));
  });

  const layerCost = (i: number, w: number, a: number): LayerCost => {
    const c = table.get(`${i}:${w}:${a}`);
    if (!c) throw new RangeError(`no cost for layer ${i} at W${w}A${a} (table covers ${bits.join(',')})`);
    return c;
  };

  return {
    profileId: 'synthetic-analytic',
    layers,
    bitChoices: bits,
    layerCost,
    costAllocation(alloc: BitConfig): AllocationCost {
      let latencyMs = 0;
      let energyUj = 0;
      let sizeBytes = 0;
      let peakMemoryBytes = 0;
      let peakLayerIndex = 0;
      const perLayer: LayerCost[] = [];
      for (let i = 0; i < layers.length; i++) {
        const b = alloc[i];
        const c = layerCost(i, b.wBits, b.aBits);
        perLayer.push(c);
        latencyMs += c.latencyMs;
        energyUj += c.energyUj;
        sizeBytes += c.weightBytes;
        if (c.activationBytes > peakMemoryBytes) {
          peakMemoryBytes = c.activationBytes;
          peakLayerIndex = i;
        }
      }
      return {
        latencyMs,
        energyUj,
        sizeBytes,
        peakMemoryBytes,
        peakLayerIndex,
        fits: true,
        violations: [],
        layers: perLayer,
      };
    },
  };
}

export interface SyntheticEvaluatorOptions {
  layers: readonly LayerInfo[];
  seed: number;
  accFloat?: number;
  lossFloat?: number;
  /** Median per-layer sensitivity s_l. Default 0.01. */
  sensitivity?: number;
  /** Spread of log(s_l). Default 0.8. */
  spread?: number;
  /** Standard deviation of Gaussian noise added to each evaluation's accuracy. Default 0 (exact). */
  noise?: number;
}

/** g(b): the accuracy cost of one quantizer at b bits, relative to its layer's sensitivity. */
export function bitPenalty(bits: number): number {
  return bits >= 32 ? 0 : Math.pow(2, -(bits - 2));
}

/** An AccuracyEvaluator whose accuracy loss is a known separable function of the bits. */
export class SyntheticEvaluator implements AccuracyEvaluator {
  readonly sensitivities: readonly number[];
  readonly accFloat: number;
  readonly lossFloat: number;
  /** Number of evaluate() calls so far. */
  evaluations = 0;
  private readonly noise: number;
  private readonly noiseRng: Rng;

  constructor(opts: SyntheticEvaluatorOptions) {
    const rng = new Rng(opts.seed);
    const median = opts.sensitivity ?? 0.01;
    const spread = opts.spread ?? 0.8;
    this.sensitivities = opts.layers.map(() => median * Math.exp(spread * rng.normal()));
    this.accFloat = opts.accFloat ?? 0.92;
    this.lossFloat = opts.lossFloat ?? 0.3;
    this.noise = opts.noise ?? 0;
    this.noiseRng = new Rng(rng.seed());
  }

  /** Accuracy drop of one layer at (w, a). */
  layerDrop(layer: number, wBits: number, aBits: number): number {
    return this.sensitivities[layer] * (bitPenalty(wBits) + bitPenalty(aBits));
  }

  /** Exact (noise-free) accuracy of an allocation, floored at 0. */
  accuracyOf(bits: BitConfig): number {
    let drop = 0;
    bits.forEach((b, i) => (drop += this.layerDrop(i, b.wBits, b.aBits)));
    return Math.max(0, this.accFloat - drop);
  }

  async reference(): Promise<AccuracyResult> {
    return { accuracy: this.accFloat, loss: this.lossFloat };
  }

  async evaluate(bits: BitConfig): Promise<AccuracyResult> {
    this.evaluations++;
    let accuracy = this.accuracyOf(bits);
    if (this.noise > 0) accuracy = Math.min(1, Math.max(0, accuracy + this.noise * this.noiseRng.normal()));
    return { accuracy, loss: this.lossFloat + 2 * (this.accFloat - accuracy) };
  }
}

export type AdditiveMetric = 'latency' | 'energy' | 'size';

export interface OptimumQuery {
  table: CostTable;
  evaluator: SyntheticEvaluator;
  metric: AdditiveMetric;
  /** Budget in ms / uJ / bytes on the whole allocation's cost. */
  limit: number;
  /** The (wBits, aBits) pairs a layer may take (e.g. env.actionChoices for joint/tied mode). */
  choices: readonly LayerBits[];
  /** Layers fixed at the given bits (e.g. pinned first/last layers at W8A8). */
  fixed?: ReadonlyMap<number, LayerBits>;
}

export interface Optimum {
  bits: BitConfig;
  accuracy: number;
  cost: AllocationCost;
}

function layerMetric(c: LayerCost, metric: AdditiveMetric): number {
  return metric === 'latency' ? c.latencyMs : metric === 'energy' ? c.energyUj : c.weightBytes;
}

function allocationMetric(c: AllocationCost, metric: AdditiveMetric): number {
  return metric === 'latency' ? c.latencyMs : metric === 'energy' ? c.energyUj : c.sizeBytes;
}

interface Node {
  cost: number;
  drop: number;
  layer: number;
  choice: LayerBits | null;
  prev: Node | null;
}

/**
 * The exact most accurate allocation whose metric stays within `limit`, or null when none does.
 * Assumes the allocation's metric is the sum of the per-layer costs (true of the analytic table;
 * a constant per-network term is accounted for), and that the accuracy is not floored at 0.
 * Pareto DP: after each layer keep only the (cost, drop) states no other state beats on both.
 */
export function optimalUnderBudget(q: OptimumQuery): Optimum | null {
  const layers = q.table.layers;
  const fixed = q.fixed ?? new Map<number, LayerBits>();
  const options = layers.map((_, i) => {
    const f = fixed.get(i);
    const pairs = f ? [f] : q.choices;
    return pairs.map((p) => ({
      choice: p,
      cost: layerMetric(q.table.layerCost(i, p.wBits, p.aBits), q.metric),
      drop: q.evaluator.layerDrop(i, p.wBits, p.aBits),
    }));
  });
  // A constant part of the total (if the table adds one) is measured at the reference.
  const ref = layers.map(() => ({ wBits: 8, aBits: 8 }));
  const refSum = ref.reduce((s, b, i) => s + layerMetric(q.table.layerCost(i, b.wBits, b.aBits), q.metric), 0);
  const offset = allocationMetric(q.table.costAllocation(ref), q.metric) - refSum;
  const limit = q.limit - offset;
  // Cheapest possible cost of layers i.. (for pruning).
  const minRest = new Array<number>(layers.length + 1).fill(0);
  for (let i = layers.length - 1; i >= 0; i--) {
    minRest[i] = minRest[i + 1] + Math.min(...(options[i] as { cost: number }[]).map((o) => o.cost));
  }
  const slack = limit * 1e-9;
  let frontier: Node[] = [{ cost: 0, drop: 0, layer: -1, choice: null, prev: null }];
  for (let i = 0; i < layers.length; i++) {
    const next: Node[] = [];
    for (const s of frontier) {
      for (const o of options[i] as { choice: LayerBits; cost: number; drop: number }[]) {
        const cost = s.cost + o.cost;
        if (cost + minRest[i + 1] > limit + slack) continue;
        next.push({ cost, drop: s.drop + o.drop, layer: i, choice: o.choice, prev: s });
      }
    }
    next.sort((a, b) => a.cost - b.cost || a.drop - b.drop);
    frontier = [];
    let best = Infinity;
    for (const n of next) {
      if (n.drop < best) {
        frontier.push(n);
        best = n.drop;
      }
    }
    if (frontier.length === 0) return null;
  }
  const bestNode = frontier[frontier.length - 1];
  const bits: BitConfig = new Array<LayerBits>(layers.length);
  for (let n: Node | null = bestNode; n && n.choice; n = n.prev) bits[n.layer] = { ...n.choice };
  return { bits, accuracy: q.evaluator.accuracyOf(bits), cost: q.table.costAllocation(bits) };
}

export interface SyntheticProblem {
  layers: LayerInfo[];
  table: CostTable;
  evaluator: SyntheticEvaluator;
  env: BitAllocationEnv;
}

/**
 * The synthetic problem in one call: 12 layers, the analytic cost table over bitChoices, a
 * SyntheticEvaluator drawn from `evaluatorSeed`, and an env on them (constraints default to
 * `latency<=0.5x`; every other env option passes through).
 */
export function syntheticProblem(
  opts: Partial<Omit<BitAllocationEnvOptions, 'cost' | 'evaluator'>> & {
    evaluatorSeed?: number;
    evaluatorOptions?: Partial<SyntheticEvaluatorOptions>;
  } = {},
): SyntheticProblem {
  const { evaluatorSeed, evaluatorOptions, ...envOpts } = opts;
  const layers = envOpts.layers ? [...envOpts.layers] : syntheticLayers();
  const table = analyticCostTable(layers, envOpts.bitChoices ?? DEFAULT_BIT_CHOICES);
  const evaluator = new SyntheticEvaluator({ layers, seed: evaluatorSeed ?? 1, ...evaluatorOptions });
  const env = new BitAllocationEnv({
    constraints: ['latency<=0.5x'],
    ...envOpts,
    layers,
    cost: (b) => table.costAllocation(b),
    evaluator,
  });
  return { layers, table, evaluator, env };
}

/**
 * The exact optimum of an env whose only budget is one additive metric (latency, energy or size):
 * the choices per layer follow its step mode (pairs for joint/two-step, w = a for tied) and pinned layers
 * stay at W8A8. Returns null when no allocation meets the budget.
 */
export function optimumForEnv(env: BitAllocationEnv, table: CostTable, evaluator: SyntheticEvaluator): Optimum | null {
  const [c, ...rest] = env.constraints;
  if (!c || rest.length > 0 || c.metric === 'peakMemory') {
    throw new RangeError('optimumForEnv needs exactly one latency, energy or size constraint');
  }
  const choices =
    env.stepMode === 'tied'
      ? env.actionChoices
      : env.bitChoices.flatMap((w) => env.bitChoices.map((a) => ({ wBits: w, aBits: a })));
  const fixed = new Map<number, LayerBits>();
  env.layers.forEach((_, i) => {
    if (!env.freeLayers.includes(i)) fixed.set(i, { wBits: 8, aBits: 8 });
  });
  return optimalUnderBudget({ table, evaluator, metric: c.metric, limit: c.limit, choices, fixed });
}
