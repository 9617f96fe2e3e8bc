/**
 * AMED agent (Kimhi, Rozen, Mendelson, Baskin; arXiv 2205.15437): bit allocation as a Markov chain
 * sampled with Metropolis-Hastings over a per-layer score table S[layer][choice].
 *
 * One episode:
 *   propose: from the chain's current allocation x, each layer is redrawn with probability
 *            `resampleProbability` from softmax(S[layer] / temperature) (else it keeps x's choice);
 *            a draw that fails ctx.isFeasible (the hard size/budget filter) is redrawn, up to
 *            `maxResamples` times.
 *   evaluate (by the search loop) -> EpisodeSummary of the proposal x'.
 *   score:   zeta = alpha * CE + beta * latency / latency(W8A8)
 *                   (+ accuracyPenalty * max(0, accuracyThreshold - accuracy) when a threshold is set),
 *            CE = summary.loss, latency ratio = summary.relativeCost.latency.
 *   table:   every cell x' used moves by d = log10(ref_zeta / zeta):  additive S += learningRate * d,
 *            or ema S = (1 - emaRate) * S + emaRate * d.  ref_zeta is the zeta of the chain's
 *            current allocation (`reference: 'chain'`) or a running mean of evaluated zetas
 *            (`reference: 'average'`).
 *   accept:  x <- x' with probability min(1, g(x') / g(x)).
 *
 * Choice of g (the papers leave it open): g(x) = zeta(x)^(-1 / acceptTemperature), where zeta(x) is
 * the score of x's most recent evaluation: for x' the summary just received, for the chain's state
 * the summary that made it current (refreshed whenever that allocation is evaluated again). So the
 * ratio is (zeta(x) / zeta(x'))^(1/acceptTemperature): an allocation 10% worse is accepted with
 * probability 0.9^(1/acceptTemperature). An infeasible outcome (summary.feasible false) is never
 * accepted and its cells are scored with zeta + infeasiblePenalty; one the env did not evaluate
 * (summary.evaluated false, loss NaN) moves its cells by -infeasiblePenalty.
 *
 * Same bits for a layer's weights and activations by default (as AMED's code); `tiedBits: false`
 * keeps two tables, one for weights and one for activations.
 *
 * Defaults are ours (the papers give none), chosen on the synthetic problem: the running-mean
 * reference centres the updates (against the chain's own zeta, which is usually the best seen, almost
 * every update is negative and the most-drawn cells sink, flattening the rows); temperature 0.2 suits
 * zeta differences of a few percent (log10 ratios ~0.01-0.05); 80% of the layers redrawn per proposal.
 * If zeta varies much more between allocations (e.g. CE ranging over whole units), raise `temperature`.
 */
import { UserError } from '../src/errors.js';
import { Rng } from '../src/util/rng.js';
import type { BitConfig } from '../src/models/layer-info.js';
import type { AgentContext, AllocationAgent, EpisodeSummary } from '../envs/types.js';
import type { AgentEntry } from './index.js';
import { isStateOf } from './kit/state.js';
import { optionChecks } from './kit/option-checks.js';
import { MaskedCategorical } from './kit/sampling.js';

// ---------------------------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------------------------
export interface AmedOptions {
  /** Softmax temperature of the proposal rows. */
  temperature: number;
  /** Weight of the cross-entropy loss in zeta. */
  alpha: number;
  /** Weight of the relative latency in zeta. */
  beta: number;
  update: 'additive' | 'ema';
  /** Step of the additive update. */
  learningRate: number;
  /** Rate of the EMA update. */
  emaRate: number;
  reference: 'chain' | 'average';
  /** Rate of the running mean used by `reference: 'average'`. */
  averageRate: number;
  /** Temperature of the acceptance test (see g above). */
  acceptTemperature: number;
  /** Probability that a layer is redrawn in a proposal (1 = independence sampler). */
  resampleProbability: number;
  /** Redraws allowed to find a feasible proposal. */
  maxResamples: number;
  /** Same bits for weights and activations. */
  tiedBits: boolean;
  /** Accuracy below which zeta is penalised (null = no penalty). */
  accuracyThreshold: number | null;
  accuracyPenalty: number;
  infeasiblePenalty: number;
}

export const AMED_DEFAULTS: Readonly<AmedOptions> = {
  temperature: 0.2,
  alpha: 1,
  beta: 1,
  update: 'additive',
  learningRate: 1,
  emaRate: 0.3,
  reference: 'average',
  averageRate: 0.1,
  acceptTemperature: 0.02,
  resampleProbability: 0.8,
  maxResamples: 100,
  tiedBits: true,
  accuracyThreshold: null,
  accuracyPenalty: 10,
  infeasiblePenalty: 1,
};

const STATE_VERSION = 1;

/** An allocation as choice indices: w[l], a[l] index ctx.bitChoices (equal when tied). */
interface Choice {
  w: number[];
  a: number[];
}

/** The JSON checkpoint of an AMED agent. */
/** Checks a full option set (defaults merged); errors name `${field}.<option>`. */
export function validateAmedOptions(o: AmedOptions, field = 'agentOptions'): AmedOptions {
  const { bad } = optionChecks('amed', o, field);
  if (o.update !== 'additive' && o.update !== 'ema') throw bad('update', 'additive|ema', o.update);
  if (o.reference !== 'chain' && o.reference !== 'average') throw bad('reference', 'chain|average', o.reference);
  if (o.accuracyThreshold !== null && typeof o.accuracyThreshold !== 'number') {
    throw bad('accuracyThreshold', 'a number in [0,1] or null', o.accuracyThreshold);
  }
  for (const key of ['temperature', 'acceptTemperature'] as const) {
    if (!(o[key] > 0)) throw bad(key, 'a number > 0', o[key]);
  }
  return o;
}

export interface AmedState {
  /** The tag (files written before it was shared say `kind`). */
  name: 'amed';
  version: number;
  options: AmedOptions;
  bitChoices: number[];
  layers: number;
  rng: number;
  /** Score tables [layer][choice]: weights (also activations when tied) and activations. */
  scoresW: number[][];
  scoresA: number[][];
  chain: { choice: Choice; zeta: number } | null;
  average: number | null;
  pending: Choice | null;
  evaluations: number;
  accepted: number;
}

export class AmedAgent implements AllocationAgent {
  readonly kind = 'allocation' as const;
  readonly name = 'amed';
  readonly options: AmedOptions;

  private ctx: AgentContext | null = null;
  private rng = new Rng(0);
  private scoresW: number[][] = [];
  private scoresA: number[][] = [];
  private chain: { choice: Choice; zeta: number } | null = null;
  private average: number | null = null;
  private pending: Choice | null = null;
  private evaluations = 0;
  private accepted = 0;

  constructor(options: Partial<AmedOptions> = {}) {
    this.options = validateAmedOptions({ ...AMED_DEFAULTS, ...options });
  }

  setup(ctx: AgentContext): void {
    this.ctx = ctx;
    this.rng = new Rng(ctx.seed);
    const L = ctx.layers.length;
    const K = ctx.bitChoices.length;
    this.scoresW = Array.from({ length: L }, () => new Array<number>(K).fill(0));
    this.scoresA = Array.from({ length: L }, () => new Array<number>(K).fill(0));
    this.chain = null;
    this.average = null;
    this.pending = null;
    this.evaluations = 0;
    this.accepted = 0;
  }

  // --- proposals ------------------------------------------------------------------------------
  /** Draws one index from softmax(row / temperature). */
  private sampleRow(row: number[]): number {
    return new MaskedCategorical(row, null, this.options.temperature).sample(this.rng);
  }

  private draw(): Choice {
    const L = this.scoresW.length;
    const cur = this.chain?.choice ?? null;
    const redraw = (): boolean => cur === null || this.rng.next() < this.options.resampleProbability;
    const w: number[] = [];
    const a: number[] = [];
    for (let l = 0; l < L; l++) {
      if (redraw()) {
        const wi = this.sampleRow(this.scoresW[l]);
        w.push(wi);
        a.push(this.options.tiedBits ? wi : this.sampleRow(this.scoresA[l]));
      } else {
        w.push((cur as Choice).w[l]);
        a.push((cur as Choice).a[l]);
      }
    }
    return { w, a };
  }

  private toBits(c: Choice): BitConfig {
    const choices = this.requireSetup().bitChoices;
    return c.w.map((wi, l) => ({ wBits: choices[wi], aBits: choices[c.a[l]] }));
  }

  /** Nearest choice index for a bit-width (the env may have changed bits, e.g. HAQ-style lowering). */
  private indexOf(bits: number): number {
    const choices = this.requireSetup().bitChoices;
    let best = 0;
    for (let k = 1; k < choices.length; k++) {
      if (Math.abs(choices[k] - bits) < Math.abs(choices[best] - bits)) best = k;
    }
    return best;
  }

  propose(): BitConfig {
    const ctx = this.requireSetup();
    let proposal: Choice | null = null;
    let last: Choice | null = null;
    for (let i = 0; i < Math.max(1, this.options.maxResamples); i++) {
      const c = this.draw();
      last = c;
      if (ctx.isFeasible(this.toBits(c))) {
        proposal = c;
        break;
      }
    }
    if (!proposal) {
      // No feasible draw: stay at the chain's allocation if it is feasible, else the cheapest one.
      const lowest = this.scoresW.map(() => 0);
      const cheapest: Choice = { w: lowest, a: lowest.slice() };
      if (this.chain && ctx.isFeasible(this.toBits(this.chain.choice))) proposal = this.chain.choice;
      else if (ctx.isFeasible(this.toBits(cheapest))) proposal = cheapest;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- tsc narrows `proposal` to null here without it
      else proposal = last as Choice;
    }
    this.pending = { w: proposal.w.slice(), a: proposal.a.slice() };
    return this.toBits(this.pending);
  }

  // --- learning -------------------------------------------------------------------------------
  /** AMED's quality score of an outcome (lower is better). */
  zeta(summary: EpisodeSummary): number {
    const o = this.options;
    let z = o.alpha * summary.loss + o.beta * summary.relativeCost.latency;
    if (o.accuracyThreshold !== null) z += o.accuracyPenalty * Math.max(0, o.accuracyThreshold - summary.accuracy);
    if (!summary.feasible) z += o.infeasiblePenalty;
    return Math.max(z, 1e-12);
  }

  endEpisode(summary: EpisodeSummary): void {
    const o = this.options;
    const zeta = this.zeta(summary);
    const evaluated: Choice = {
      w: summary.bits.map((b) => this.indexOf(b.wBits)),
      a: summary.bits.map((b) => this.indexOf(o.tiedBits ? b.wBits : b.aBits)),
    };
    this.pending = null;
    this.evaluations += 1;

    // Score-table update of the evaluated cells (an unevaluated allocation moves them by -infeasiblePenalty).
    const wasEvaluated = summary.evaluated !== false && Number.isFinite(zeta);
    const ref = o.reference === 'chain' ? (this.chain?.zeta ?? zeta) : (this.average ?? zeta);
    const d = wasEvaluated ? Math.log10(ref / zeta) : -o.infeasiblePenalty;
    const move = (row: number[], k: number): void => {
      row[k] = o.update === 'additive' ? row[k] + o.learningRate * d : (1 - o.emaRate) * row[k] + o.emaRate * d;
    };
    evaluated.w.forEach((k, l) => move(this.scoresW[l], k));
    if (!o.tiedBits) evaluated.a.forEach((k, l) => move(this.scoresA[l], k));
    if (!wasEvaluated) return;
    this.average = this.average === null ? zeta : this.average + o.averageRate * (zeta - this.average);

    // Metropolis-Hastings acceptance with g(x) = zeta(x)^(-1/acceptTemperature).
    const same = (x: Choice, y: Choice): boolean =>
      x.w.every((v, i) => v === y.w[i]) && x.a.every((v, i) => v === y.a[i]);
    if (this.chain && same(this.chain.choice, evaluated)) {
      this.chain.zeta = zeta; // the chain's allocation re-evaluated: refresh its score
      return;
    }
    if (!summary.feasible) return;
    const ratio = this.chain ? Math.pow(this.chain.zeta / zeta, 1 / o.acceptTemperature) : 1;
    if (this.chain === null || this.rng.next() < Math.min(1, ratio)) {
      this.chain = { choice: evaluated, zeta };
      this.accepted += 1;
    }
  }

  /** The chain's current allocation and its zeta (null before the first accepted evaluation). */
  current(): { bits: BitConfig; zeta: number } | null {
    return this.chain ? { bits: this.toBits(this.chain.choice), zeta: this.chain.zeta } : null;
  }

  /** Fraction of evaluated proposals accepted. */
  get acceptanceRate(): number {
    return this.evaluations === 0 ? 0 : this.accepted / this.evaluations;
  }

  // --- checkpoints ----------------------------------------------------------------------------
  getState(): AmedState {
    const ctx = this.requireSetup();
    const copy = (c: Choice): Choice => ({ w: c.w.slice(), a: c.a.slice() });
    return {
      name: 'amed',
      version: STATE_VERSION,
      options: { ...this.options },
      bitChoices: ctx.bitChoices.slice(),
      layers: ctx.layers.length,
      rng: this.rng.getState(),
      scoresW: this.scoresW.map((r) => r.slice()),
      scoresA: this.scoresA.map((r) => r.slice()),
      chain: this.chain ? { choice: copy(this.chain.choice), zeta: this.chain.zeta } : null,
      average: this.average,
      pending: this.pending ? copy(this.pending) : null,
      evaluations: this.evaluations,
      accepted: this.accepted,
    };
  }

  setState(state: unknown): void {
    const ctx = this.requireSetup();
    const bad = (field: string, expected: string): never => {
      throw new UserError('agent state does not match this amed agent', { field: `agentState.${field}`, expected });
    };
    const s = state as Partial<AmedState> | null;
    if (!isStateOf(s, 'amed')) bad('name', "'amed'");
    const st = s as AmedState;
    if (st.version !== STATE_VERSION) bad('version', String(STATE_VERSION));
    if (st.layers !== ctx.layers.length) bad('layers', String(ctx.layers.length));
    if (st.bitChoices.join(',') !== ctx.bitChoices.join(',')) bad('bitChoices', `[${ctx.bitChoices.join(',')}]`);
    const copy = (c: Choice): Choice => ({ w: c.w.slice(), a: c.a.slice() });
    if (!Number.isInteger(st.rng)) bad('rng', 'an integer (the generator state)');
    this.rng.setState(st.rng);
    this.scoresW = st.scoresW.map((r) => r.slice());
    this.scoresA = st.scoresA.map((r) => r.slice());
    this.chain = st.chain ? { choice: copy(st.chain.choice), zeta: st.chain.zeta } : null;
    this.average = st.average;
    this.pending = st.pending ? copy(st.pending) : null;
    this.evaluations = st.evaluations;
    this.accepted = st.accepted;
  }

  private requireSetup(): AgentContext {
    if (!this.ctx) throw new Error('amed: setup(ctx) must be called first');
    return this.ctx;
  }

  dispose(): void {
    this.ctx = null;
  }
}

export const amedAgentEntry: AgentEntry = {
  describe: 'AMED: Metropolis-Hastings over a per-layer score table, scored by zeta = alpha*CE + beta*latency/latency8',
  defaults: { ...AMED_DEFAULTS },
  validate: (opts, field) => void validateAmedOptions(opts as unknown as AmedOptions, field),
  create: (opts) => new AmedAgent(opts),
};
