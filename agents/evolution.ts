/**
 * EMQ-style evolutionary search (Sun et al., NeurIPS 2022) over per-layer bit-widths.
 *
 *   population: the top-P allocations by fitness among those that meet every budget
 *   start:      uniform allocations at each allowed width (widest first), then random ones
 *   each step:  parent <- the best of `tournamentSize` (default 4) uniform draws from the top-P
 *                         (1 = uniform over the top-P)
 *               child  <- parent; for each inner layer of one block (a run of `blockSize` consecutive
 *                         inner layers, default 2; 0 = all inner layers), with probability mutationProb
 *                         (0.9) move wBits to a neighbour in the allowed set ({3,4,5,6}), and
 *                         independently the same for aBits
 *               keep the child if it meets every budget and beats the worst member (or P not reached)
 *   budgets:    ctx.isFeasible (the env's size/flash, peak SRAM, latency, energy limits through the
 *               simulator) and optionally BitOps = sum_l MACs_l x a_l x w_l / 64 <= maxBitOps
 *               (or <= maxBitOpsRelative x BitOps of W8A8, which is the network's MAC count)
 *
 * Fitness:
 *   'qe-score'  EMQ's training-free QE-Score (agents/qe-score.ts). The whole search runs inside the
 *               agent (at the first propose(), so a resumed agent does not repeat it) over `candidates`
 *               allocations; propose() then returns the best, the second best, ... (topK of them) and
 *               exhausted() turns true. Evaluations by the env are not needed.
 *   'accuracy'  every propose() returns one new candidate (initial, then mutated) and endEpisode ranks
 *               the evaluated allocation (summary.bits) by summary.accuracy: an evolution that consumes
 *               the env's episodes. Never exhausted.
 *
 * Never proposes an allocation over budget. If no candidate meets the budgets, it proposes the
 * lowest-cost one seen (cost = sum over latency, energy, size, peak memory (and BitOps when budgeted)
 * of the cost relative to the widest allowed uniform allocation) and logs a warning.
 *
 * Choices where EMQ leaves things open or differs: EMQ mutates the inner layers of one randomly chosen
 * block per step; the inventory has no blocks, so a block is a run of `blockSize` consecutive inner
 * layers (2, a ResNet basic block). Mutating every inner layer at once (blockSize 0) is a near-random
 * jump: on ResNet-20 under tight budgets few children stay within budget and the search stalls far
 * below the optimum. EMQ does not say how parents are drawn from the top-P; a tournament of 4 converged
 * closer to the exact optimum (checked by the knapsack solver) than uniform draws. Ties in fitness go
 * to the lower cost. Duplicates of allocations already seen count
 * as candidates but are not scored twice. First and last layers sit at pinnedBits (W and A) when
 * pinEnds is on. In the env's `tied` step mode (or with `tied: true`) weights and activations share one
 * width and mutate together.
 *
 * Deterministic from ctx.seed: the QE-Score search draws from one stream; in accuracy mode proposal n
 * draws from a stream derived from (seed, n), so the state holds counters, not generator internals.
 */
import type { AgentContext, AllocationAgent, EpisodeSummary } from '../envs/types.js';
import type { AllocationCost } from '../src/hardware/api.js';
import { UserError } from '../src/errors.js';
import { log } from '../src/log.js';
import { VALID_BITS, type BitConfig, type LayerInfo } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';
import type { AgentEntry } from './index.js';
import { optionChecks } from './kit/option-checks.js';
import { QE_SIGMA_A, QE_SIGMA_W, QeScorer } from './qe-score.js';

// ---------------------------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------------------------
export type EvolutionFitness = 'qe-score' | 'accuracy';
export const EVOLUTION_FITNESS: readonly EvolutionFitness[] = ['qe-score', 'accuracy'];
/** EMQ's bit set for inner layers. */
export const EMQ_BIT_CHOICES: readonly number[] = [3, 4, 5, 6];

export interface EvolutionOptions {
  fitness: EvolutionFitness;
  /** P: how many of the best allocations the population keeps (EMQ: 256). */
  population: number;
  /** QE-Score mode: allocations generated in the whole search, initial ones included. */
  candidates: number;
  /** Initial (uniform, then random) allocations before mutation starts. null: P (qe-score) or 16 (accuracy). */
  initialCandidates: number | null;
  /** Probability that a layer's weight (and, separately, activation) bits move to a neighbour (EMQ: 0.9). */
  mutationProb: number;
  /**
   * Layers a mutation touches: a run of this many consecutive inner layers from a random start (EMQ
   * mutates the inner layers of one block per step); 0 = every inner layer.
   */
  blockSize: number;
  /** Widths for inner layers. null: EMQ's {3,4,5,6} within the env's choices (the env's choices if fewer than 2 remain). */
  bitChoices: number[] | null;
  /** First and last layer fixed at pinnedBits for weights and activations. */
  pinEnds: boolean;
  pinnedBits: number;
  /** Parent selection: 1 = uniform over the top-P; k > 1 = best of k uniform draws. */
  tournamentSize: number;
  /** QE-Score mode: how many of the best allocations propose() returns before exhausted(). */
  topK: number;
  /** Budget on BitOps = sum MACs x a x w / 64 (absolute), or null. */
  maxBitOps: number | null;
  /** Budget on BitOps relative to W8A8 (= the MAC count), or null. */
  maxBitOpsRelative: number | null;
  /** Same width for weights and activations. null: as the env's step mode (`tied`). */
  tied: boolean | null;
  /** Accuracy mode: draws per proposal to find a new allocation within budget. */
  maxTries: number;
  /** QE-Score: weight / activation initialisation std, stage weights (null: default), dense layers (null: auto). */
  sigmaW: number;
  sigmaA: number;
  stageWeights: number[] | null;
  includeDense: boolean | null;
}

export const EVOLUTION_DEFAULTS: EvolutionOptions = {
  fitness: 'qe-score',
  population: 256,
  candidates: 10000,
  initialCandidates: null,
  mutationProb: 0.9,
  blockSize: 2,
  bitChoices: null,
  pinEnds: true,
  pinnedBits: 8,
  tournamentSize: 4,
  topK: 1,
  maxBitOps: null,
  maxBitOpsRelative: null,
  tied: null,
  maxTries: 200,
  sigmaW: QE_SIGMA_W,
  sigmaA: QE_SIGMA_A,
  stageWeights: null,
  includeDense: null,
};

/** Accuracy mode's default number of initial candidates. */
const ACCURACY_INITIAL = 16;

/** Checks a full option set (defaults already merged); `field` prefixes the option names in errors. */
export function validateEvolutionOptions(o: EvolutionOptions, field = 'agentOptions'): EvolutionOptions {
  const { bad, int } = optionChecks('evolution', o, field);
  if (!EVOLUTION_FITNESS.includes(o.fitness)) throw bad('fitness', EVOLUTION_FITNESS.join('|'), o.fitness);
  int('population', 1);
  int('candidates', 1);
  if (o.initialCandidates !== null) int('initialCandidates', 1);
  int('tournamentSize', 1);
  int('topK', 1);
  int('maxTries', 1);
  int('blockSize', 0);
  if (!(o.mutationProb > 0 && o.mutationProb <= 1)) throw bad('mutationProb', 'a number in (0, 1]', o.mutationProb);
  if (o.bitChoices !== null) {
    const b = o.bitChoices;
    if (!Array.isArray(b) || b.length === 0 || b.some((x) => !VALID_BITS.includes(x)) || new Set(b).size !== b.length) {
      throw bad('bitChoices', `distinct widths from ${VALID_BITS.join(',')}`, b);
    }
  }
  if (typeof o.pinEnds !== 'boolean') throw bad('pinEnds', 'true or false', o.pinEnds);
  if (!VALID_BITS.includes(o.pinnedBits)) throw bad('pinnedBits', `one of ${VALID_BITS.join(',')}`, o.pinnedBits);
  for (const name of ['maxBitOps', 'maxBitOpsRelative'] as const) {
    const v = o[name];
    if (v !== null && !(typeof v === 'number' && v > 0 && Number.isFinite(v)))
      throw bad(name, 'null or a finite number > 0', v);
  }
  if (o.tied !== null && typeof o.tied !== 'boolean') throw bad('tied', 'null, true or false', o.tied);
  for (const name of ['sigmaW', 'sigmaA'] as const) {
    if (!(o[name] > 0 && Number.isFinite(o[name]))) throw bad(name, 'a finite number > 0', o[name]);
  }
  if (
    o.stageWeights !== null &&
    (!Array.isArray(o.stageWeights) || o.stageWeights.some((w) => !(w >= 0 && Number.isFinite(w))))
  ) {
    throw bad('stageWeights', 'null or one finite number >= 0 per stage', o.stageWeights);
  }
  if (o.includeDense !== null && typeof o.includeDense !== 'boolean')
    throw bad('includeDense', 'null, true or false', o.includeDense);
  return o;
}

/** EMQ's BitOps of an allocation: sum over layers of MACs x aBits x wBits / 64 (W8A8 gives the MAC count). */
export function bitOps(layers: readonly LayerInfo[], bits: BitConfig): number {
  let total = 0;
  for (let i = 0; i < layers.length; i++) {
    const b = bits[i];
    total += (layers[i].macs * b.aBits * b.wBits) / 64;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------
export interface EvolutionMember {
  bits: BitConfig;
  /** QE-Score or accuracy. */
  fitness: number;
  /** Cost relative to the widest uniform allocation, summed over metrics (tie-breaker, fallback). */
  cost: number;
}

export interface EvolutionStats {
  /** Allocations generated (duplicates included). */
  candidates: number;
  /** Distinct allocations scored. */
  unique: number;
  /** Distinct allocations within budget. */
  feasible: number;
  /** Wall time of the QE-Score search, ms (0 in accuracy mode). */
  searchMs: number;
}

type PackedBits = [number, number][];
interface PackedMember {
  bits: PackedBits;
  fitness: number;
  cost: number;
}

export interface EvolutionState {
  name: 'evolution';
  version: 1;
  options: EvolutionOptions;
  seed: number;
  searched: boolean;
  proposed: number;
  population: PackedMember[];
  cheapest: PackedMember | null;
  seen: string[];
  stats: EvolutionStats;
  warned: boolean;
}

const pack = (bits: BitConfig): PackedBits => bits.map((b) => [b.wBits, b.aBits]);
const unpack = (bits: PackedBits): BitConfig => bits.map(([wBits, aBits]) => ({ wBits, aBits }));
const keyOf = (bits: BitConfig): string => {
  let s = '';
  for (const b of bits) s += `${b.wBits}.${b.aBits},`;
  return s;
};
const packMember = (m: EvolutionMember): PackedMember => ({ bits: pack(m.bits), fitness: m.fitness, cost: m.cost });
const unpackMember = (m: PackedMember): EvolutionMember => ({ bits: unpack(m.bits), fitness: m.fitness, cost: m.cost });

/** A stream for proposal n, derived from the seed. */
function streamRng(seed: number, n: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(n + 1, 0x85ebca6b) ^ 0x5bd1e995) >>> 0);
}

// ---------------------------------------------------------------------------------------------
// Agent
// ---------------------------------------------------------------------------------------------
export class EvolutionAgent implements AllocationAgent {
  readonly name = 'evolution';
  readonly kind = 'allocation' as const;
  readonly options: EvolutionOptions;

  private ctx: AgentContext | null = null;
  private layers: readonly LayerInfo[] = [];
  private allowed: number[] = [];
  private pinned: boolean[] = [];
  private mutable: number[] = [];
  private tied = false;
  private pinnedBits = 8;
  private bitOpsLimit = Infinity;
  private costRef = { latencyMs: 0, energyUj: 0, sizeBytes: 0, peakMemoryBytes: 0, bitOps: 0 };
  private scorer: QeScorer | null = null;

  private seed = 0;
  private searched = false;
  private proposed = 0;
  private population: EvolutionMember[] = [];
  private cheapest: EvolutionMember | null = null;
  private seen = new Set<string>();
  private stats: EvolutionStats = { candidates: 0, unique: 0, feasible: 0, searchMs: 0 };
  private warned = false;

  constructor(
    options: Partial<EvolutionOptions> = {},
    private readonly field = 'agentOptions',
  ) {
    this.options = validateEvolutionOptions({ ...EVOLUTION_DEFAULTS, ...options }, field);
  }

  setup(ctx: AgentContext): void {
    const o = this.options;
    this.ctx = ctx;
    this.layers = ctx.layers;
    this.seed = ctx.seed;
    const envChoices = [...ctx.bitChoices].sort((a, b) => a - b);
    if (o.bitChoices === null) {
      const emq = EMQ_BIT_CHOICES.filter((b) => envChoices.includes(b));
      this.allowed = emq.length >= 2 ? emq : envChoices;
    } else {
      const outside = o.bitChoices.filter((b) => !envChoices.includes(b));
      if (outside.length > 0) {
        throw new UserError(
          `bitChoices ${outside.join(',')} of agent 'evolution' are not among the env's bit choices`,
          {
            field: `${this.field}.bitChoices`,
            expected: `a subset of ${envChoices.join(',')}`,
          },
        );
      }
      this.allowed = [...o.bitChoices].sort((a, b) => a - b);
    }
    this.pinnedBits = o.pinnedBits;
    if (o.pinEnds && !envChoices.includes(o.pinnedBits)) {
      const widest = envChoices[envChoices.length - 1];
      log.warn(
        `evolution: pinnedBits ${o.pinnedBits} is not among the env's bit choices (${envChoices.join(',')}); first and last layers use ${widest}`,
      );
      this.pinnedBits = widest;
    }
    const n = this.layers.length;
    this.pinned = this.layers.map((_, i) => o.pinEnds && n > 1 && (i === 0 || i === n - 1));
    this.mutable = this.layers.map((_, i) => i).filter((i) => !this.pinned[i]);
    this.tied = o.tied ?? ctx.stepMode === 'tied';

    const macs = this.layers.reduce((s, l) => s + l.macs, 0);
    this.bitOpsLimit = Math.min(
      o.maxBitOps ?? Infinity,
      o.maxBitOpsRelative === null ? Infinity : o.maxBitOpsRelative * macs,
    );
    const widest = this.allowed[this.allowed.length - 1];
    const ref = this.uniform(widest);
    const refCost = ctx.costOf(ref);
    this.costRef = {
      latencyMs: refCost.latencyMs,
      energyUj: refCost.energyUj,
      sizeBytes: refCost.sizeBytes,
      peakMemoryBytes: refCost.peakMemoryBytes,
      bitOps: bitOps(this.layers, ref),
    };
    this.scorer =
      o.fitness === 'qe-score'
        ? new QeScorer(this.layers, {
            sigmaW: o.sigmaW,
            sigmaA: o.sigmaA,
            stageWeights: o.stageWeights ?? undefined,
            includeDense: o.includeDense ?? undefined,
            source: { field: this.field },
          })
        : null;
    this.searched = false;
    this.proposed = 0;
    this.population = [];
    this.cheapest = null;
    this.seen = new Set();
    this.stats = { candidates: 0, unique: 0, feasible: 0, searchMs: 0 };
    this.warned = false;
  }

  exhausted(): boolean {
    if (this.options.fitness !== 'qe-score' || !this.searched) return false;
    return this.proposed >= Math.max(1, Math.min(this.options.topK, this.population.length));
  }

  propose(): BitConfig {
    const ctx = this.requireSetup();
    if (this.options.fitness === 'qe-score') {
      this.search();
      const k = this.proposed++;
      if (this.population.length === 0) return this.fallback();
      const limit = Math.min(this.options.topK, this.population.length);
      const member = this.population[k < limit ? k : 0];
      return member.bits.map((b) => ({ ...b }));
    }
    // Accuracy mode: a new allocation within budget that has not been proposed or evaluated yet.
    const rng = streamRng(this.seed, this.proposed);
    const n = this.proposed++;
    const initial = this.options.initialCandidates ?? ACCURACY_INITIAL;
    const widths = [...this.allowed].reverse();
    const initialPhase = n < initial || this.population.length === 0;
    for (let t = 0; t < this.options.maxTries; t++) {
      let bits: BitConfig;
      if (!initialPhase) bits = this.mutate(this.selectParent(rng).bits, rng);
      else if (t === 0 && n < widths.length) bits = this.uniform(widths[n]);
      // Past the initial phase with nothing within budget yet: alternate random draws and mutations of the cheapest.
      else if (n >= initial && this.cheapest !== null && t % 2 === 1) bits = this.mutate(this.cheapest.bits, rng);
      else bits = this.randomBits(rng);
      const key = keyOf(bits);
      if (this.seen.has(key)) continue;
      const cost = ctx.costOf(bits);
      const rel = this.relativeCost(cost, bits);
      if (this.cheapest === null || rel < this.cheapest.cost) this.cheapest = { bits, fitness: NaN, cost: rel };
      if (!this.feasible(bits)) continue;
      this.seen.add(key);
      return bits;
    }
    // Nothing new within budget: repeat the best member, or fall back to the cheapest allocation seen.
    const best = this.population[0];
    if (best) return best.bits.map((b) => ({ ...b }));
    const uniformMin = this.uniform(this.allowed[0]);
    if (this.feasible(uniformMin)) return uniformMin;
    return this.fallback();
  }

  endEpisode(summary: EpisodeSummary): void {
    if (this.options.fitness !== 'accuracy') return;
    const bits = summary.bits.map((b) => ({ wBits: b.wBits, aBits: b.aBits }));
    this.seen.add(keyOf(bits));
    this.stats.candidates++;
    this.stats.unique = this.seen.size;
    if (summary.evaluated === false || !Number.isFinite(summary.accuracy)) return;
    if (!summary.feasible || !this.feasible(bits)) return;
    this.stats.feasible++;
    const ctx = this.requireSetup();
    this.insert({ bits, fitness: summary.accuracy, cost: this.relativeCost(ctx.costOf(bits), bits) });
  }

  /** The population, best first (feasible allocations only). */
  ranked(): readonly EvolutionMember[] {
    return this.population;
  }

  /** Runs the QE-Score search now if it has not run (propose() does this on first use). */
  search(): void {
    if (this.searched || this.options.fitness !== 'qe-score') return;
    const ctx = this.requireSetup();
    const scorer = this.scorer as QeScorer;
    const start = performance.now();
    const o = this.options;
    const rng = streamRng(this.seed, -1);
    const seen = new Set<string>();
    let generated = 0;
    const consider = (bits: BitConfig): void => {
      generated++;
      const key = keyOf(bits);
      if (seen.has(key)) return;
      seen.add(key);
      const rel = this.relativeCost(ctx.costOf(bits), bits);
      if (this.cheapest === null || rel < this.cheapest.cost) this.cheapest = { bits, fitness: NaN, cost: rel };
      if (!this.feasible(bits)) return;
      this.stats.feasible++;
      this.insert({ bits, fitness: scorer.score(bits), cost: rel });
    };
    const initial = Math.min(o.candidates, o.initialCandidates ?? o.population);
    const widths = [...this.allowed].reverse();
    for (let i = 0; i < initial; i++) consider(i < widths.length ? this.uniform(widths[i]) : this.randomBits(rng));
    while (generated < o.candidates) {
      const parent = this.population.length > 0 ? this.selectParent(rng) : (this.cheapest as EvolutionMember);
      consider(this.mutate(parent.bits, rng));
    }
    this.stats.candidates = generated;
    this.stats.unique = seen.size;
    this.stats.searchMs = performance.now() - start;
    this.searched = true;
  }

  searchStats(): EvolutionStats {
    return { ...this.stats };
  }

  getState(): EvolutionState {
    return {
      name: 'evolution',
      version: 1,
      options: { ...this.options },
      seed: this.seed,
      searched: this.searched,
      proposed: this.proposed,
      population: this.population.map(packMember),
      cheapest: this.cheapest ? packMember(this.cheapest) : null,
      seen: [...this.seen],
      stats: { ...this.stats },
      warned: this.warned,
    };
  }

  /** Restores a checkpoint (call after setup() with the same problem). */
  setState(state: unknown): void {
    const s = state as Partial<EvolutionState> | null;
    if (
      s?.name !== 'evolution' ||
      s.version !== 1 ||
      typeof s.seed !== 'number' ||
      typeof s.proposed !== 'number' ||
      typeof s.searched !== 'boolean' ||
      !Array.isArray(s.population) ||
      !Array.isArray(s.seen) ||
      typeof s.stats !== 'object' ||
      s.stats === null
    ) {
      throw new Error('evolution agent: bad state');
    }
    if (this.layers.length > 0 && s.population.some((m) => m.bits.length !== this.layers.length)) {
      throw new Error(
        `evolution agent: state is for a network of ${s.population[0]?.bits.length} layers, not ${this.layers.length}`,
      );
    }
    this.seed = s.seed;
    this.searched = s.searched;
    this.proposed = s.proposed;
    this.population = s.population.map(unpackMember);
    this.cheapest = s.cheapest ? unpackMember(s.cheapest) : null;
    this.seen = new Set(s.seen);
    this.stats = { ...s.stats };
    this.warned = s.warned === true;
  }

  // -------------------------------------------------------------------------------------------
  private requireSetup(): AgentContext {
    if (!this.ctx) throw new Error('evolution agent: setup() must be called first');
    return this.ctx;
  }

  private feasible(bits: BitConfig): boolean {
    if (this.bitOpsLimit !== Infinity && bitOps(this.layers, bits) > this.bitOpsLimit) return false;
    return (this.ctx as AgentContext).isFeasible(bits);
  }

  private relativeCost(c: AllocationCost, bits: BitConfig): number {
    const r = this.costRef;
    let s = 0;
    if (r.latencyMs > 0) s += c.latencyMs / r.latencyMs;
    if (r.energyUj > 0) s += c.energyUj / r.energyUj;
    if (r.sizeBytes > 0) s += c.sizeBytes / r.sizeBytes;
    if (r.peakMemoryBytes > 0) s += c.peakMemoryBytes / r.peakMemoryBytes;
    if (this.bitOpsLimit !== Infinity && r.bitOps > 0) s += bitOps(this.layers, bits) / r.bitOps;
    return s;
  }

  /** Inserts a member by fitness (ties: lower cost first, then earlier), keeping the top P. */
  private insert(m: EvolutionMember): void {
    const pop = this.population;
    const P = this.options.population;
    const before = (a: EvolutionMember, b: EvolutionMember): boolean =>
      a.fitness > b.fitness || (a.fitness === b.fitness && a.cost < b.cost);
    if (pop.length >= P && !before(m, pop[pop.length - 1])) return;
    let lo = 0;
    let hi = pop.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(m, pop[mid])) hi = mid;
      else lo = mid + 1;
    }
    pop.splice(lo, 0, m);
    if (pop.length > P) pop.pop();
  }

  private selectParent(rng: Rng): EvolutionMember {
    const pop = this.population;
    let best = rng.int(pop.length);
    for (let i = 1; i < this.options.tournamentSize; i++) best = Math.min(best, rng.int(pop.length));
    return pop[best];
  }

  /** EMQ's bit mutation: a move to the next narrower or wider allowed width (inward at the ends). */
  private neighbour(bits: number, rng: Rng): number {
    const a = this.allowed;
    const idx = a.indexOf(bits);
    if (idx < 0) {
      // Not an allowed width (e.g. a fallback allocation): snap to the nearest allowed one.
      let nearest = a[0];
      for (const b of a) if (Math.abs(b - bits) < Math.abs(nearest - bits)) nearest = b;
      return nearest;
    }
    if (a.length === 1) return bits;
    let j = rng.next() < 0.5 ? idx - 1 : idx + 1;
    if (j < 0) j = idx + 1;
    if (j >= a.length) j = idx - 1;
    return a[j];
  }

  private mutate(parent: BitConfig, rng: Rng): BitConfig {
    const child = parent.map((b) => ({ wBits: b.wBits, aBits: b.aBits }));
    const p = this.options.mutationProb;
    const m = this.mutable.length;
    const size = this.options.blockSize === 0 ? m : Math.min(this.options.blockSize, m);
    const start = size >= m ? 0 : rng.int(m - size + 1);
    for (let k = start; k < start + size; k++) {
      const b = child[this.mutable[k]];
      if (this.tied) {
        if (rng.next() < p) {
          const nb = this.neighbour(b.wBits, rng);
          b.wBits = nb;
          b.aBits = nb;
        }
      } else {
        if (rng.next() < p) b.wBits = this.neighbour(b.wBits, rng);
        if (rng.next() < p) b.aBits = this.neighbour(b.aBits, rng);
      }
    }
    return child;
  }

  private uniform(width: number): BitConfig {
    return this.layers.map((_, i) =>
      this.pinned[i] ? { wBits: this.pinnedBits, aBits: this.pinnedBits } : { wBits: width, aBits: width },
    );
  }

  private randomBits(rng: Rng): BitConfig {
    return this.layers.map((_, i) => {
      if (this.pinned[i]) return { wBits: this.pinnedBits, aBits: this.pinnedBits };
      const w = rng.pick(this.allowed);
      return { wBits: w, aBits: this.tied ? w : rng.pick(this.allowed) };
    });
  }

  /** No allocation met the budgets: the cheapest one seen, with a warning. */
  private fallback(): BitConfig {
    const cheapest = this.cheapest?.bits ?? this.uniform(this.allowed[0]);
    if (!this.warned) {
      log.warn(
        `evolution: no allocation among ${Math.max(this.stats.candidates, this.proposed)} candidates meets every budget; ` +
          'proposing the lowest-cost one seen (it is over budget)',
      );
      this.warned = true;
    }
    return cheapest.map((b) => ({ ...b }));
  }
}

export const evolutionAgentEntry: AgentEntry = {
  describe:
    "EMQ-style evolution: mutate the top-P allocations within budget, ranked by the training-free QE-Score (default) or by accuracy ('fitness')",
  defaults: { ...EVOLUTION_DEFAULTS },
  validate: (opts, field) => void validateEvolutionOptions(opts as unknown as EvolutionOptions, field),
  create: (opts) => new EvolutionAgent(opts),
};
