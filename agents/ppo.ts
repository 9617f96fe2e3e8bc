/**
 * PPO agent (Schulman et al. 2017, clipped surrogate) acting layer by layer through the env.
 *
 * Algorithm (one rollout = `episodesPerRollout` whole episodes):
 *   1. act: sample a ~ softmax(masked logits) with our own seeded Rng; remember log pi(a|s) and V(s).
 *   2. after the rollout: GAE(lambda) advantages A_t and returns R_t = A_t + V(s_t), per episode
 *      (the value after the last step of an episode is 0).
 *   3. `epochs` passes over the rollout in `minibatches` shuffled minibatches, each minimising
 *        L = -mean(min(r A, clip(r, 1-eps, 1+eps) A)) + c_v * 0.5 * mean((V - R)^2) - c_e * H[pi]
 *      with r = exp(log pi_new(a|s) - log pi_old(a|s)), advantages normalised per minibatch,
 *      gradients clipped to a global norm, then one Adam step (agents/adam.ts, whose moments
 *      are part of the JSON checkpoint).
 *
 * Policies: `mlp` (CleanRL's layout: separate actor and critic, two tanh layers each) or `lstm`
 * (ReLeQ's: an LSTM over the layer sequence, carrying its state across the steps of an episode,
 * with a policy head and a value head on its output). For the update the LSTM is unrolled again
 * from a zero state over whole episodes, so minibatches are sets of episodes and the recomputed
 * log-probabilities are exactly those of the acting pass before the first gradient step.
 *
 * Choices of ours: discount 1 by default (an episode is one allocation, its reward arrives at the
 * end); rewards divided by the running standard deviation of episode returns (SB3's VecNormalize
 * reward scaling: HAQ's reward differences are ~1e-3, far below the value head's initial error, which
 * would otherwise drown the advantages); weights drawn from our Rng (scaled normal; policy head x0.01, value head x1 as in CleanRL's
 * orthogonal scheme), masked logits via a large negative constant so masked choices get zero
 * probability and contribute nothing to the entropy. Episodes acted with explore=false (greedy)
 * are not used for training.
 */
import { tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { Rng } from '../src/util/rng.js';
import type { AgentContext, EpisodeSummary, StepAgent, Transition } from '../envs/types.js';
import { isStateOf } from './kit/state.js';
import { denseForward } from './kit/dense.js';
import { MaskedCategorical, allowedCount } from './kit/sampling.js';
import { ParamStore } from './kit/params.js';
import { packPerStep, packRollout } from './kit/rollout.js';
import { Adam, type AdamState } from './kit/adam.js';
import type { AgentEntry } from './index.js';
import { optionChecks } from './kit/option-checks.js';
import { bestUniformAction, combineMasks, dominanceMasks } from './kit/dominance.js';

// ---------------------------------------------------------------------------------------------
// Hyperparameters (SB3 / CleanRL defaults, rollout sized for short allocation episodes)
// ---------------------------------------------------------------------------------------------
export interface PpoOptions {
  /** `mlp` over the observation, or `lstm` over the layer sequence. */
  policy: 'mlp' | 'lstm';
  /** Width of each hidden layer (mlp) or of the LSTM state. */
  hiddenSize: number;
  learningRate: number;
  /** Whole episodes collected before each update. */
  episodesPerRollout: number;
  /** Passes over each rollout. */
  epochs: number;
  /** Minibatches per pass (mlp: over steps; lstm: over episodes). */
  minibatches: number;
  gamma: number;
  gaeLambda: number;
  clipCoef: number;
  entropyCoef: number;
  valueCoef: number;
  maxGradNorm: number;
  normalizeAdvantages: boolean;
  /** Divide rewards by the running standard deviation of episode returns (SB3's VecNormalize). */
  normalizeRewards: boolean;
  adamEpsilon: number;
  /** Remove each layer's dominated choices (more bits elsewhere at no more cost; agents/kit/dominance.ts). */
  maskDominated: boolean;
  /** Added to the initial logit of the widest uniform choice that fits the budget (0 = no warm start). */
  warmStartLogit: number;
}

export const PPO_DEFAULTS: Readonly<PpoOptions> = {
  policy: 'mlp',
  hiddenSize: 64,
  learningRate: 6e-3,
  episodesPerRollout: 16,
  epochs: 2,
  minibatches: 1,
  gamma: 1,
  gaeLambda: 0.95,
  clipCoef: 0.2,
  entropyCoef: 0.01,
  valueCoef: 0.5,
  maxGradNorm: 0.5,
  normalizeAdvantages: true,
  normalizeRewards: true,
  adamEpsilon: 1e-5,
  maskDominated: false,
  warmStartLogit: 0,
};

/** Checks a full option set (defaults merged); errors name `${field}.<option>`. */
export function validatePpoOptions(o: PpoOptions, field = 'agentOptions'): PpoOptions {
  const { bad, int } = optionChecks('ppo', o, field);
  if (o.policy !== 'mlp' && o.policy !== 'lstm') throw bad('policy', 'mlp|lstm', o.policy);
  for (const key of ['hiddenSize', 'episodesPerRollout', 'epochs', 'minibatches'] as const) int(key, 1);
  if (!(o.learningRate > 0)) throw bad('learningRate', 'a number > 0', o.learningRate);
  return o;
}

const MASKED_LOGIT = -1e9;

/** The policy head's initial bias: zeros, plus `logit` on the widest uniform choice that fits (warm start). */
function warmStartBias(ctx: AgentContext, K: number, logit: number): tf.Tensor1D {
  const b = new Float32Array(K);
  const i = logit !== 0 ? bestUniformAction(ctx) : null;
  if (i !== null) b[i] = logit;
  return tf.tensor1d(b);
}
const STATE_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Parameters and gradient clipping
// ---------------------------------------------------------------------------------------------
/** Scaled-normal initialisation from our Rng (std = gain / sqrt(fanIn)), so a seed fixes the weights. */
function initWeight(rng: Rng, shape: [number, number], gain: number): tf.Tensor {
  const [fanIn] = shape;
  const data = new Float32Array(shape[0] * shape[1]);
  const std = gain / Math.sqrt(fanIn);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
  return tf.tensor2d(data, shape);
}

/** Scales gradients so their global L2 norm is at most `maxNorm` (inside tf.tidy). */
function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): tf.Tensor[] {
  const norm = tf.sqrt(tf.addN(grads.map((g) => g.square().sum())));
  const scale = tf.minimum(tf.scalar(1), tf.scalar(maxNorm).div(norm.add(1e-6)));
  return grads.map((g) => g.mul(scale));
}

/** A rollout (or a minibatch of it) as tensors, rows aligned. */
interface PpoBatch {
  obs: tf.Tensor2D;
  mask: tf.Tensor2D;
  action: tf.Tensor1D;
  oldLogp: tf.Tensor1D;
  adv: tf.Tensor1D;
  ret: tf.Tensor1D;
  valid: tf.Tensor1D;
}

// ---------------------------------------------------------------------------------------------
// Rollout storage
// ---------------------------------------------------------------------------------------------
/** One acted step as stored in the rollout (and in the JSON state). */
export interface StepRecord {
  obs: number[];
  /** 1 = allowed; null = all allowed. */
  mask: number[] | null;
  action: number;
  logp: number;
  value: number;
  reward: number;
  done: boolean;
}

interface PendingAct {
  obs: number[];
  mask: number[] | null;
  action: number;
  logp: number;
  value: number;
  explore: boolean;
}

/** The JSON checkpoint of a PPO agent. */
export interface PpoState {
  /** The tag (files written before it was shared say `kind`). */
  name: 'ppo';
  version: number;
  options: PpoOptions;
  observationSize: number;
  numActions: number;
  rng: number;
  updates: number;
  /** Running statistics of episode returns (reward normalisation). */
  returnStats: { count: number; mean: number; var: number };
  params: Record<string, { shape: number[]; values: number[] }>;
  adam: AdamState;
  rollout: StepRecord[][];
  episode: StepRecord[];
  episodeExplored: boolean;
  /** LSTM state mid-episode (null at an episode boundary or for the MLP). */
  recurrent: { h: number[]; c: number[] } | null;
}

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------
export class PpoAgent implements StepAgent {
  readonly kind = 'step' as const;
  readonly name: string;
  readonly options: PpoOptions;

  private ctx: AgentContext | null = null;
  private rng = new Rng(0);
  private readonly params = new ParamStore('ppo');
  private adam: Adam | null = null;
  private rollout: StepRecord[][] = [];
  private episode: StepRecord[] = [];
  /** Per step: the choices left after removing dominated ones (maskDominated), else null. */
  private dominance: Uint8Array[] | null = null;
  private episodeExplored = false;
  private pending: PendingAct | null = null;
  /** LSTM state carried across the steps of the current episode (null = episode start). */
  private h: tf.Tensor | null = null;
  private c: tf.Tensor | null = null;
  private updates = 0;
  /** Plain copies of the weights for acting; cleared whenever the weights change. */
  private weightCache: Map<string, Float32Array> | null = null;
  private returnStats = { count: 0, mean: 0, var: 1 };
  /** Diagnostics of the last update. */
  lastLoss: { policy: number; value: number; entropy: number } | null = null;

  constructor(options: Partial<PpoOptions> = {}) {
    this.options = validatePpoOptions({ ...PPO_DEFAULTS, ...options });
    this.name = this.options.policy === 'lstm' ? 'ppo-lstm' : 'ppo';
  }

  setup(ctx: AgentContext): void {
    this.disposeNetworks();
    this.weightCache = null;
    this.ctx = ctx;
    this.dominance = this.options.maskDominated ? dominanceMasks(ctx) : null;
    this.rng = new Rng(ctx.seed);
    const D = ctx.observationSize;
    const H = this.options.hiddenSize;
    const K = ctx.numActions;
    const p = (name: string, t: tf.Tensor): void => void this.params.add(name, t);
    if (this.options.policy === 'mlp') {
      const g = Math.SQRT2;
      p('actor.w1', initWeight(this.rng, [D, H], g));
      p('actor.b1', tf.zeros([H]));
      p('actor.w2', initWeight(this.rng, [H, H], g));
      p('actor.b2', tf.zeros([H]));
      p('actor.w3', initWeight(this.rng, [H, K], 0.01));
      p('actor.b3', warmStartBias(ctx, K, this.options.warmStartLogit));
      p('critic.w1', initWeight(this.rng, [D, H], g));
      p('critic.b1', tf.zeros([H]));
      p('critic.w2', initWeight(this.rng, [H, H], g));
      p('critic.b2', tf.zeros([H]));
      p('critic.w3', initWeight(this.rng, [H, 1], 1));
      p('critic.b3', tf.zeros([1]));
    } else {
      // Gates ordered [input, forget, cell, output]; forget bias 1.
      const bias = new Float32Array(4 * H);
      bias.fill(1, H, 2 * H);
      p('lstm.wx', initWeight(this.rng, [D, 4 * H], 1));
      p('lstm.wh', initWeight(this.rng, [H, 4 * H], 1));
      p('lstm.b', tf.tensor1d(bias));
      p('pi.w', initWeight(this.rng, [H, K], 0.01));
      p('pi.b', warmStartBias(ctx, K, this.options.warmStartLogit));
      p('v.w', initWeight(this.rng, [H, 1], 1));
      p('v.b', tf.zeros([1]));
    }
    this.adam = new Adam(this.params.variables(), { lr: this.options.learningRate, eps: this.options.adamEpsilon });
    this.rollout = [];
    this.episode = [];
    this.episodeExplored = false;
    this.pending = null;
    this.updates = 0;
    this.returnStats = { count: 0, mean: 0, var: 1 };
  }

  private w(name: string): tf.Variable {
    return this.params.get(name);
  }

  // --- networks -------------------------------------------------------------------------------
  private mlpForward(x: tf.Tensor2D): { logits: tf.Tensor2D; values: tf.Tensor1D } {
    const a1 = tf.tanh(x.matMul(this.w('actor.w1')).add(this.w('actor.b1')));
    const a2 = tf.tanh(a1.matMul(this.w('actor.w2')).add(this.w('actor.b2')));
    const logits = a2.matMul(this.w('actor.w3')).add<tf.Tensor2D>(this.w('actor.b3'));
    const c1 = tf.tanh(x.matMul(this.w('critic.w1')).add(this.w('critic.b1')));
    const c2 = tf.tanh(c1.matMul(this.w('critic.w2')).add(this.w('critic.b2')));
    const values = c2.matMul(this.w('critic.w3')).add(this.w('critic.b3')).reshape<tf.Tensor1D>([-1]);
    return { logits, values };
  }

  /** One LSTM step: x [B,D], h/c [B,H] -> new h, c. */
  private lstmCell(x: tf.Tensor2D, h: tf.Tensor2D, c: tf.Tensor2D): { h: tf.Tensor2D; c: tf.Tensor2D } {
    const H = this.options.hiddenSize;
    const z = x
      .matMul(this.w('lstm.wx'))
      .add(h.matMul(this.w('lstm.wh')))
      .add(this.w('lstm.b'));
    const [zi, zf, zg, zo] = tf.split(z, [H, H, H, H], 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const cNew = tf
      .sigmoid(zf)
      .mul(c)
      .add<tf.Tensor2D>(tf.sigmoid(zi).mul(tf.tanh(zg)));
    const hNew = tf.sigmoid(zo).mul<tf.Tensor2D>(tf.tanh(cNew));
    return { h: hNew, c: cNew };
  }

  private lstmHeads(h: tf.Tensor2D): { logits: tf.Tensor2D; values: tf.Tensor1D } {
    const logits = h.matMul(this.w('pi.w')).add<tf.Tensor2D>(this.w('pi.b'));
    const values = h.matMul(this.w('v.w')).add(this.w('v.b')).reshape<tf.Tensor1D>([-1]);
    return { logits, values };
  }

  /** The MLP's forward pass for one observation on a cached copy of the weights. */
  private mlpForwardJs(x: Float32Array): { logits: Float32Array; value: number } {
    if (!this.weightCache) {
      this.weightCache = new Map(this.params.entries().map(([name, v]) => [name, v.dataSync() as Float32Array]));
    }
    const wc = this.weightCache;
    const get = (name: string): Float32Array => {
      const v = wc.get(name);
      if (!v) throw new Error(`ppo: no parameter ${name}`);
      return v;
    };
    const a1 = denseForward(x, get('actor.w1'), get('actor.b1'), true);
    const a2 = denseForward(a1, get('actor.w2'), get('actor.b2'), true);
    const logits = denseForward(a2, get('actor.w3'), get('actor.b3'), false);
    const c1 = denseForward(x, get('critic.w1'), get('critic.b1'), true);
    const c2 = denseForward(c1, get('critic.w2'), get('critic.b2'), true);
    const value = denseForward(c2, get('critic.w3'), get('critic.b3'), false)[0];
    return { logits, value };
  }

  // --- acting ---------------------------------------------------------------------------------
  act(observation: Float32Array, envMask: Uint8Array | null, explore: boolean): number {
    const ctx = this.requireSetup();
    const mask = combineMasks(envMask, this.dominance?.[this.episode.length]);
    const K = ctx.numActions;
    const H = this.options.hiddenSize;
    let logitsArr: Float32Array;
    let value: number;
    if (this.options.policy === 'mlp') {
      // Acting reads a plain-array copy of the weights (refreshed after every update): one step costs
      // microseconds instead of a dozen tfjs kernel launches; the update below stays in tfjs.
      const out = this.mlpForwardJs(observation);
      logitsArr = out.logits;
      value = out.value;
    } else {
      const hPrev = this.h ?? tf.zeros([1, H]);
      const cPrev = this.c ?? tf.zeros([1, H]);
      const [hN, cN, l, v] = tf.tidy(() => {
        const s = this.lstmCell(
          tf.tensor2d(observation, [1, observation.length]),
          hPrev as tf.Tensor2D,
          cPrev as tf.Tensor2D,
        );
        const out = this.lstmHeads(s.h);
        return [s.h, s.c, out.logits, out.values];
      });
      tf.dispose([hPrev, cPrev]);
      this.h = hN;
      this.c = cN;
      logitsArr = (l as tf.Tensor).dataSync() as Float32Array;
      value = ((v as tf.Tensor).dataSync() as Float32Array)[0];
      tf.dispose([l, v]);
    }
    if (allowedCount(mask, K) === 0) throw new Error('ppo: every action is masked');
    const pi = new MaskedCategorical(logitsArr, mask);
    const action = explore ? pi.sample(this.rng) : pi.mode();
    const logp = pi.logProb(action);
    this.pending = {
      obs: Array.from(observation),
      mask: mask ? Array.from(mask) : null,
      action,
      logp,
      value,
      explore,
    };
    return action;
  }

  observe(t: Transition): void {
    const p = this.pending;
    this.pending = null;
    if (p && p.action === t.action) {
      this.episode.push({
        obs: p.obs,
        mask: p.mask,
        action: p.action,
        logp: p.logp,
        value: p.value,
        reward: t.reward,
        done: t.done,
      });
      if (p.explore) this.episodeExplored = true;
    }
    if (t.done) this.resetRecurrentState();
  }

  async endEpisode(_summary: EpisodeSummary): Promise<void> {
    this.resetRecurrentState();
    if (this.episode.length > 0 && this.episodeExplored) this.rollout.push(this.episode);
    this.episode = [];
    this.episodeExplored = false;
    if (this.rollout.length >= this.options.episodesPerRollout) {
      this.update();
      this.rollout = [];
    }
  }

  private resetRecurrentState(): void {
    if (this.h) this.h.dispose();
    if (this.c) this.c.dispose();
    this.h = null;
    this.c = null;
  }

  // --- learning -------------------------------------------------------------------------------
  /** Folds this rollout's episode returns into the running mean / variance (parallel Welford). */
  private updateReturnStats(episodes: StepRecord[][]): void {
    const returns = episodes.map((ep) => ep.reduce((s, x) => s + x.reward, 0));
    const n = returns.length;
    if (n === 0) return;
    const mean = returns.reduce((a, b) => a + b, 0) / n;
    const variance = returns.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    const s = this.returnStats;
    const total = s.count + n;
    const delta = mean - s.mean;
    const m2 = s.var * s.count + variance * n + (delta * delta * s.count * n) / total;
    this.returnStats = { count: total, mean: s.mean + (delta * n) / total, var: m2 / total };
  }

  /** GAE(lambda) per episode; the value after an episode's last step is 0. */
  private advantages(ep: StepRecord[]): { adv: number[]; ret: number[] } {
    const { gamma, gaeLambda } = this.options;
    const scale = this.options.normalizeRewards ? 1 / Math.sqrt(this.returnStats.var + 1e-8) : 1;
    const adv = new Array<number>(ep.length).fill(0);
    let last = 0;
    for (let t = ep.length - 1; t >= 0; t--) {
      const s = ep[t];
      const nextValue = t + 1 < ep.length && !s.done ? ep[t + 1].value : 0;
      const nonTerminal = t + 1 < ep.length && !s.done ? 1 : 0;
      const delta = s.reward * scale + gamma * nextValue * nonTerminal - s.value;
      last = delta + gamma * gaeLambda * nonTerminal * last;
      adv[t] = last;
    }
    return { adv, ret: adv.map((a, t) => a + ep[t].value) };
  }

  /**
   * The PPO update (Schulman et al. 2017, Algorithm 1): GAE advantages for the rollout, then `epochs` passes of
   * minibatch Adam steps on the clipped surrogate plus value loss minus entropy bonus, gradients clipped by
   * their global norm. Minibatches are whole episodes for the LSTM (the recurrence needs them), steps for the MLP.
   */
  private update(): void {
    this.weightCache = null;
    const ctx = this.requireSetup();
    const { epochs, minibatches, maxGradNorm } = this.options;
    const episodes = this.rollout;
    if (this.options.normalizeRewards) this.updateReturnStats(episodes);
    const gae = episodes.map((ep) => this.advantages(ep));
    const lstm = this.options.policy === 'lstm';
    const buf = packRollout(episodes, ctx.observationSize, ctx.numActions);
    const { E, N, T } = buf;
    const rollout: PpoBatch = {
      obs: tf.tensor2d(buf.obs, [N, ctx.observationSize]),
      mask: tf.tensor2d(buf.masks, [N, ctx.numActions]),
      action: tf.tensor1d(buf.actions, 'int32'),
      oldLogp: tf.tensor1d(
        packPerStep(
          episodes.map((ep) => ep.map((s) => s.logp)),
          T,
        ),
      ),
      adv: tf.tensor1d(
        packPerStep(
          gae.map((g) => g.adv),
          T,
        ),
      ),
      ret: tf.tensor1d(
        packPerStep(
          gae.map((g) => g.ret),
          T,
        ),
      ),
      valid: tf.tensor1d(buf.valid),
    };
    const vars = this.params.variables();
    const losses = { policy: 0, value: 0, entropy: 0, n: 0 };

    for (let epoch = 0; epoch < epochs; epoch++) {
      const units = lstm
        ? this.rng.shuffle(Array.from({ length: E }, (_, e) => e))
        : this.rng.shuffle(Array.from({ length: N }, (_, i) => i).filter((i) => buf.valid[i] === 1));
      const nMb = Math.max(1, Math.min(minibatches, units.length));
      const mbSize = Math.ceil(units.length / nMb);
      for (let start = 0; start < units.length; start += mbSize) {
        const chunk = units.slice(start, start + mbSize);
        const idx = lstm ? chunk.flatMap((e) => Array.from({ length: T }, (_, t) => e * T + t)) : chunk;
        tf.tidy(() => {
          const ix = tf.tensor1d(Int32Array.from(idx), 'int32');
          const mb = Object.fromEntries(
            Object.entries(rollout).map(([k, t]) => [k, tf.gather(t, ix)]),
          ) as unknown as PpoBatch;
          const lossFn = (): tf.Scalar => {
            const l = this.loss(mb, lstm ? chunk.length : 0, T);
            losses.policy += l.policy.dataSync()[0];
            losses.value += l.value.dataSync()[0];
            losses.entropy += l.entropy.dataSync()[0];
            losses.n += 1;
            return l.total;
          };
          const { grads } = tf.variableGrads(lossFn, vars);
          this.adam?.step(
            clipByGlobalNorm(
              vars.map((v) => grads[v.name]),
              maxGradNorm,
            ),
          );
        });
      }
    }
    tf.dispose(Object.values(rollout));
    this.updates += 1;
    const n = Math.max(1, losses.n);
    this.lastLoss = { policy: losses.policy / n, value: losses.value / n, entropy: losses.entropy / n };
  }

  /**
   * The loss of one minibatch: -E[min(r A, clip(r, 1-eps, 1+eps) A)] + c1 * 0.5 E[(V - R)^2] - c2 * E[H(pi)],
   * r = pi(a|s) / pi_old(a|s), padding weighted out; advantages normalised per minibatch. `episodes` > 0 unrolls
   * the LSTM over that many whole episodes of T steps.
   */
  private loss(
    mb: PpoBatch,
    episodes: number,
    T: number,
  ): { total: tf.Scalar; policy: tf.Scalar; value: tf.Scalar; entropy: tf.Scalar } {
    const { clipCoef, entropyCoef, valueCoef, normalizeAdvantages } = this.options;
    const K = this.requireSetup().numActions;
    const w = mb.valid;
    const wSum = w.sum().maximum(1);
    let adv = mb.adv;
    if (normalizeAdvantages) {
      const mean = adv.mul(w).sum().div(wSum);
      const std = adv.sub(mean).square().mul(w).sum().div(wSum).sqrt();
      adv = adv.sub(mean).div(std.add(1e-8));
    }
    const { logits, values } = episodes > 0 ? this.lstmUnroll(mb.obs, episodes, T) : this.mlpForward(mb.obs);
    const logpAll = tf.logSoftmax(logits.add(tf.scalar(1).sub(mb.mask).mul(MASKED_LOGIT)));
    const logp = logpAll.mul(tf.oneHot(mb.action, K)).sum(1);
    const ratio = tf.exp(logp.sub(mb.oldLogp));
    const surrogate = tf.minimum(adv.mul(ratio), adv.mul(tf.clipByValue(ratio, 1 - clipCoef, 1 + clipCoef)));
    const policy = surrogate.mul(w).sum().div(wSum).neg() as tf.Scalar;
    const value = values.sub(mb.ret).square().mul(w).sum().div(wSum).mul<tf.Scalar>(0.5);
    const entropy = tf.exp(logpAll).mul(logpAll).mul(mb.mask).sum(1).neg().mul(w).sum().div<tf.Scalar>(wSum);
    const total = policy.add(value.mul(valueCoef)).sub<tf.Scalar>(entropy.mul(entropyCoef));
    return { total, policy, value, entropy };
  }

  /**
   * log pi(a|s) of recorded steps under the current policy, computed as the update computes them
   * (LSTM: unrolled over each whole episode from a zero state). Episodes acted since the last update
   * give back the log-probabilities recorded while acting.
   */
  recomputeLogProbs(episodes: readonly (readonly Pick<StepRecord, 'obs' | 'mask' | 'action'>[])[]): number[][] {
    const ctx = this.requireSetup();
    const K = ctx.numActions;
    const D = ctx.observationSize;
    const { E, T, obs, masks, actions } = packRollout(episodes, D, K);
    if (E === 0 || T === 0) return episodes.map(() => []);
    const flat = tf.tidy(() => {
      const x = tf.tensor2d(obs, [E * T, D]);
      const { logits } = this.options.policy === 'lstm' ? this.lstmUnroll(x, E, T) : this.mlpForward(x);
      const masked = logits.add(
        tf
          .scalar(1)
          .sub(tf.tensor2d(masks, [E * T, K]))
          .mul(MASKED_LOGIT),
      );
      return tf
        .logSoftmax(masked)
        .mul(tf.oneHot(tf.tensor1d(actions, 'int32'), K))
        .sum(1);
    });
    const values = flat.dataSync();
    flat.dispose();
    return episodes.map((ep, e) => ep.map((_, t) => values[e * T + t]));
  }

  /** Unrolls the LSTM over B whole episodes; obs rows are episode-major [B*T, D]. */
  private lstmUnroll(obs: tf.Tensor2D, B: number, T: number): { logits: tf.Tensor2D; values: tf.Tensor1D } {
    const H = this.options.hiddenSize;
    const D = obs.shape[1];
    const seq = obs.reshape([B, T, D]);
    let h = tf.zeros<tf.Rank.R2>([B, H]);
    let c = tf.zeros<tf.Rank.R2>([B, H]);
    const outs: tf.Tensor2D[] = [];
    for (let t = 0; t < T; t++) {
      const x = seq.slice([0, t, 0], [B, 1, D]).reshape<tf.Tensor2D>([B, D]);
      ({ h, c } = this.lstmCell(x, h, c));
      outs.push(h);
    }
    // [T, B, H] -> [B, T, H] -> [B*T, H] so rows line up with obs.
    const hs = tf.stack(outs, 1).reshape<tf.Tensor2D>([B * T, H]);
    return this.lstmHeads(hs);
  }

  // --- checkpoints ----------------------------------------------------------------------------
  getState(): PpoState {
    const ctx = this.requireSetup();
    const params: PpoState['params'] = this.params.toState();
    return {
      name: 'ppo',
      version: STATE_VERSION,
      options: { ...this.options },
      observationSize: ctx.observationSize,
      numActions: ctx.numActions,
      rng: this.rng.getState(),
      updates: this.updates,
      returnStats: { ...this.returnStats },
      params,
      adam: (this.adam as Adam).getState(),
      rollout: this.rollout.map((ep) => ep.map((s) => ({ ...s }))),
      episode: this.episode.map((s) => ({ ...s })),
      episodeExplored: this.episodeExplored,
      recurrent: this.h && this.c ? { h: Array.from(this.h.dataSync()), c: Array.from(this.c.dataSync()) } : null,
    };
  }

  setState(state: unknown): void {
    const ctx = this.requireSetup();
    const s = state as Partial<PpoState> | null;
    const bad = (field: string, expected: string): never => {
      throw new UserError('agent state does not match this ppo agent', { field: `agentState.${field}`, expected });
    };
    if (!isStateOf(s, 'ppo')) bad('name', "'ppo'");
    const st = s as PpoState;
    if (st.version !== STATE_VERSION) bad('version', String(STATE_VERSION));
    if (st.options.policy !== this.options.policy) bad('options.policy', this.options.policy);
    if (st.options.hiddenSize !== this.options.hiddenSize) bad('options.hiddenSize', String(this.options.hiddenSize));
    if (st.observationSize !== ctx.observationSize) bad('observationSize', String(ctx.observationSize));
    if (st.numActions !== ctx.numActions) bad('numActions', String(ctx.numActions));
    this.params.loadState(st.params, bad);
    this.weightCache = null;
    (this.adam as Adam).setState(st.adam, bad, 'adam');
    if (!Number.isInteger(st.rng)) bad('rng', 'an integer (the generator state)');
    this.rng.setState(st.rng);
    this.updates = st.updates;
    this.returnStats = { ...st.returnStats };
    this.rollout = st.rollout.map((ep) => ep.map((x) => ({ ...x })));
    this.episode = st.episode.map((x) => ({ ...x }));
    this.episodeExplored = st.episodeExplored;
    this.pending = null;
    this.resetRecurrentState();
    if (st.recurrent) {
      const H = this.options.hiddenSize;
      this.h = tf.tensor2d(st.recurrent.h, [1, H]);
      this.c = tf.tensor2d(st.recurrent.c, [1, H]);
    }
  }

  /** Number of PPO updates done so far. */
  get updateCount(): number {
    return this.updates;
  }

  private requireSetup(): AgentContext {
    if (!this.ctx || !this.adam) throw new Error('ppo: setup(ctx) must be called first');
    return this.ctx;
  }

  private disposeNetworks(): void {
    this.resetRecurrentState();
    this.params.dispose();
    if (this.adam) this.adam.dispose();
    this.adam = null;
  }

  dispose(): void {
    this.disposeNetworks();
    this.ctx = null;
  }
}

export const ppoAgentEntry: AgentEntry = {
  describe: 'PPO (clipped surrogate, GAE) with an MLP or an LSTM (ReLeQ) policy over the layers; masks supported',
  defaults: { ...PPO_DEFAULTS },
  validate: (opts, field) => void validatePpoOptions(opts as unknown as PpoOptions, field),
  create: (opts) => new PpoAgent(opts),
};
