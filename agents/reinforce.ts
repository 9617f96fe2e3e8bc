/**
 * REINFORCE (Williams 1992) with a moving-average baseline and an entropy bonus.
 *
 *   policy      pi(a|s) = softmax(masked MLP(s)), MLP: obs -> hidden (tanh) -> hidden (tanh) -> actions
 *   act         sample from pi (explore) or take its argmax (explore = false); masked actions get 0
 *   returns     G_t = sum_{k>=t} gamma^(k-t) r_k     (the env rewards the last step only)
 *   baseline    b <- d b + (1-d) G_0 per episode; advantage A_t = (G_t - b) / sigma, where
 *               sigma^2 <- d sigma^2 + (1-d) (G_0 - b)^2 (a running scale; our choice, so that the
 *               learning rate and entropy coefficient do not depend on the reward's units)
 *   loss        -mean_t [A_t log pi(a_t|s_t)] - entropyCoef x mean_t H(pi(.|s_t))
 *   update      Adam, once every `episodesPerUpdate` exploring episodes, on all their steps in one batch
 *
 * Episodes run with explore = false (greedy evaluation) are not learned from. Deterministic for a
 * seed: weights are initialised from the seed, and episode e samples from a stream derived from
 * (seed, e). getState/setState carry the weights, the Adam moments, the baseline and the episode count.
 */
import { tf } from '../src/backend/index.js';
import type { AgentContext, EpisodeSummary, StepAgent, Transition } from '../envs/types.js';
import { Rng } from '../src/util/rng.js';
import { denseForward } from './kit/dense.js';
import { MaskedCategorical } from './kit/sampling.js';
import { Adam } from './kit/adam.js';
import type { AgentEntry } from './index.js';
import { optionChecks } from './kit/option-checks.js';
import { bestUniformAction, combineMasks, dominanceMasks } from './kit/dominance.js';
import { episodeRng } from './random.js';

/** Hyperparameters (the registry's defaults). */
export const REINFORCE_DEFAULTS = {
  /** Units in each of the two hidden layers. */
  hiddenSize: 64,
  /** Adam step size. */
  learningRate: 0.005,
  /** Weight of the entropy bonus. */
  entropyCoef: 0.1,
  /** d: decay of the moving-average baseline and of the advantage scale. */
  baselineDecay: 0.9,
  /** Discount of returns (1: the terminal reward counts fully at every step, as in HAQ). */
  gamma: 1,
  /** Exploring episodes per policy update. */
  episodesPerUpdate: 2,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  /** Remove each layer's dominated choices (more bits elsewhere at no more cost; agents/kit/dominance.ts). */
  maskDominated: false,
  /** Added to the initial logit of the widest uniform choice that fits the budget (0 = no warm start). */
  warmStartLogit: 0,
};
export type ReinforceOptions = typeof REINFORCE_DEFAULTS;

/** Checks a full option set (defaults merged); errors name `${field}.<option>`. */
export function validateReinforceOptions(o: ReinforceOptions, field = 'agentOptions'): ReinforceOptions {
  const { bad, int } = optionChecks('reinforce', o, field);
  int('hiddenSize', 1);
  int('episodesPerUpdate', 1);
  if (!(o.learningRate > 0)) throw bad('learningRate', 'a number > 0', o.learningRate);
  return o;
}

const PARAM_NAMES = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3'] as const;

/** A variable initialised from `init`, which is then disposed. */
function ownedVariable(init: tf.Tensor, trainable: boolean): tf.Variable {
  const v = tf.variable(init, trainable);
  init.dispose();
  return v;
}

export interface ReinforceState {
  options: ReinforceOptions;
  seed: number;
  episodes: number;
  updates: number;
  baseline: number | null;
  scale2: number;
  observationSize: number;
  numActions: number;
  params: Record<string, number[]>;
  adamM: Record<string, number[]>;
  adamV: Record<string, number[]>;
  /** Episodes collected since the last update (episodesPerUpdate > 1); absent in older states. */
  pending?: {
    steps: { observation: number[]; action: number; reward: number; mask: number[] | null }[];
    advantages: number[];
  }[];
}

interface Step {
  observation: Float32Array;
  action: number;
  reward: number;
  mask: Uint8Array | null;
}

export class ReinforceAgent implements StepAgent {
  readonly name = 'reinforce';
  readonly kind = 'step' as const;
  readonly options: ReinforceOptions;

  private seed = 0;
  private obsSize = 0;
  private numActions = 0;
  private episodes = 0;
  private baseline: number | null = null;
  private scale2 = 0;
  private rng: Rng = episodeRng(0, 0);
  private params: tf.Variable[] = [];
  /** Plain copies of the weights for acting; cleared whenever the weights change. */
  private weightCache: Float32Array[] | null = null;
  /** The policy's optimizer (its step count is the number of updates). */
  private adam: Adam | null = null;
  private episode: Step[] = [];
  /** Per step: the choices left after removing dominated ones (maskDominated), else null. */
  private dominance: Uint8Array[] | null = null;
  /** The mask the last action was drawn under (the env's and the dominance mask together). */
  private actMask: Uint8Array | null = null;
  private explored = true;
  /** Finished exploring episodes waiting for the next update: their steps and advantages. */
  private pending: { steps: Step[]; advantages: number[] }[] = [];

  constructor(options: Partial<ReinforceOptions> = {}) {
    this.options = validateReinforceOptions({ ...REINFORCE_DEFAULTS, ...options });
  }

  setup(ctx: AgentContext): void {
    this.dispose();
    this.seed = ctx.seed;
    this.dominance = this.options.maskDominated ? dominanceMasks(ctx) : null;
    this.obsSize = ctx.observationSize;
    this.numActions = ctx.numActions;
    this.episodes = 0;
    this.baseline = null;
    this.scale2 = 0;
    this.rng = episodeRng(this.seed, 0);
    this.episode = [];
    this.pending = [];
    this.explored = true;
    const init = new Rng(this.seed ^ 0x5eed);
    const h = this.options.hiddenSize;
    const shapes: [number, number][] = [
      [this.obsSize, h],
      [1, h],
      [h, h],
      [1, h],
      [h, this.numActions],
      [1, this.numActions],
    ];
    this.weightCache = null;
    this.params = shapes.map((shape, i) => {
      const [fanIn, fanOut] = shape;
      const values = new Float32Array(fanIn * fanOut);
      if (i % 2 === 0) {
        // Glorot uniform; the output layer 100x smaller so the first policy is near uniform.
        const limit = Math.sqrt(6 / (fanIn + fanOut)) * (i === 4 ? 0.01 : 1);
        for (let k = 0; k < values.length; k++) values[k] = (2 * init.next() - 1) * limit;
      }
      return ownedVariable(tf.tensor2d(values, shape), true);
    });
    const { learningRate: lr, adamBeta1: beta1, adamBeta2: beta2, adamEpsilon: eps } = this.options;
    const warm = this.options.warmStartLogit !== 0 ? bestUniformAction(ctx) : null;
    if (warm !== null) {
      const b3 = new Float32Array(this.numActions);
      b3[warm] = this.options.warmStartLogit;
      const t = tf.tensor2d(b3, [1, this.numActions]);
      this.params[5].assign(t);
      t.dispose();
    }
    this.adam = new Adam(this.params, { lr, eps, beta1, beta2 });
  }

  /** pi(. | s): the policy MLP's logits at an observation, masked. */
  private policy(observation: Float32Array, mask: Uint8Array | null): MaskedCategorical {
    this.weightCache ??= this.params.map((v) => v.dataSync() as Float32Array);
    const [w1, b1, w2, b2, w3, b3] = this.weightCache as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    const logits = denseForward(denseForward(denseForward(observation, w1, b1, true), w2, b2, true), w3, b3, false);
    return new MaskedCategorical(logits, mask);
  }

  /** Action probabilities at an observation (masked choices at 0). */
  probabilities(observation: Float32Array, mask: Uint8Array | null): Float64Array {
    return this.policy(observation, mask).probs;
  }

  act(observation: Float32Array, envMask: Uint8Array | null, explore: boolean): number {
    const mask = combineMasks(envMask, this.dominance?.[this.episode.length]);
    this.actMask = mask;
    const usable = mask && mask.some((m) => m === 1) ? mask : null;
    const pi = this.policy(observation, usable);
    if (!explore) {
      this.explored = false;
      return pi.mode();
    }
    return pi.sample(this.rng);
  }

  observe(t: Transition): void {
    this.episode.push({
      observation: t.observation,
      action: t.action,
      reward: t.reward,
      mask: this.dominance ? this.actMask : t.mask,
    });
  }

  endEpisode(_summary: EpisodeSummary): void {
    const steps = this.episode;
    this.episode = [];
    const learn = this.explored && steps.length > 0;
    this.explored = true;
    this.episodes++;
    this.rng = episodeRng(this.seed, this.episodes);
    if (!learn) return;

    const { gamma, baselineDecay: d } = this.options;
    const returns = new Array<number>(steps.length);
    let g = 0;
    for (let t = steps.length - 1; t >= 0; t--) {
      g = steps[t].reward + gamma * g;
      returns[t] = g;
    }
    const episodeReturn = returns[0];
    if (this.baseline === null) this.baseline = episodeReturn;
    const dev = episodeReturn - this.baseline;
    this.scale2 = d * this.scale2 + (1 - d) * dev * dev;
    const scale = Math.sqrt(this.scale2) + 1e-8;
    const advantages = returns.map((r) => (r - (this.baseline as number)) / scale);
    this.baseline = d * this.baseline + (1 - d) * episodeReturn;

    this.pending.push({ steps, advantages });
    if (this.pending.length >= this.options.episodesPerUpdate) this.update();
  }

  private forward(x: tf.Tensor2D): tf.Tensor2D {
    const [w1, b1, w2, b2, w3, b3] = this.params as [
      tf.Variable,
      tf.Variable,
      tf.Variable,
      tf.Variable,
      tf.Variable,
      tf.Variable,
    ];
    const h1 = tf.tanh(tf.add(tf.matMul(x, w1), b1));
    const h2 = tf.tanh(tf.add(tf.matMul(h1, w2), b2));
    return tf.add(tf.matMul(h2, w3), b3) as tf.Tensor2D;
  }

  /** One policy-gradient step on every pending episode's steps, in one batch. */
  private update(): void {
    this.weightCache = null;
    const steps = this.pending.flatMap((e) => e.steps);
    const adv = this.pending.flatMap((e) => e.advantages);
    this.pending = [];
    const n = steps.length;
    const A = this.numActions;
    const obs = new Float32Array(n * this.obsSize);
    const onehot = new Float32Array(n * A);
    const maskAdd = new Float32Array(n * A);
    steps.forEach((s, t) => {
      obs.set(s.observation, t * this.obsSize);
      onehot[t * A + s.action] = 1;
      const usable = s.mask && s.mask.some((m) => m === 1) ? s.mask : null;
      if (usable) for (let a = 0; a < A; a++) if (!usable[a]) maskAdd[t * A + a] = -1e9;
    });
    const { entropyCoef } = this.options;
    const adam = this.adam as Adam;
    tf.tidy(() => {
      const x = tf.tensor2d(obs, [n, this.obsSize]);
      const actions = tf.tensor2d(onehot, [n, A]);
      const maskT = tf.tensor2d(maskAdd, [n, A]);
      const advT = tf.tensor1d(Float32Array.from(adv));
      const lossFn = (): tf.Scalar => {
        const logp = tf.logSoftmax(tf.add(this.forward(x), maskT));
        const chosen = tf.sum(tf.mul(logp, actions), 1);
        const pg = tf.neg(tf.mean(tf.mul(chosen, advT)));
        const p = tf.exp(logp);
        const entropy = tf.mean(tf.neg(tf.sum(tf.mul(p, tf.maximum(logp, -1e4)), 1)));
        return tf.sub(pg, tf.mul(entropyCoef, entropy)) as tf.Scalar;
      };
      const { grads } = tf.variableGrads(lossFn, this.params);
      adam.step(this.params.map((p) => grads[p.name]));
    });
  }

  getState(): ReinforceState {
    const named = (arrays: number[][]): Record<string, number[]> =>
      Object.fromEntries(arrays.map((a, i) => [PARAM_NAMES[i] as string, a]));
    const adam = this.adam?.getState() ?? { t: 0, m: [], v: [] };
    return {
      options: { ...this.options },
      seed: this.seed,
      episodes: this.episodes,
      updates: adam.t,
      baseline: this.baseline,
      scale2: this.scale2,
      observationSize: this.obsSize,
      numActions: this.numActions,
      params: named(this.params.map((v) => Array.from(v.dataSync()))),
      adamM: named(adam.m),
      adamV: named(adam.v),
      pending: this.pending.map((e) => ({
        steps: e.steps.map((st) => ({
          observation: Array.from(st.observation),
          action: st.action,
          reward: st.reward,
          mask: st.mask ? Array.from(st.mask) : null,
        })),
        advantages: [...e.advantages],
      })),
    };
  }

  setState(state: unknown): void {
    const s = state as ReinforceState;
    if (
      !this.adam ||
      !s ||
      typeof s !== 'object' ||
      !s.params ||
      s.observationSize !== this.obsSize ||
      s.numActions !== this.numActions
    ) {
      throw new Error(
        `reinforce: state does not fit this problem (observation ${s?.observationSize}/${this.obsSize}, actions ${s?.numActions}/${this.numActions}); call setup() first`,
      );
    }
    /** One array per parameter, in order, each checked against its parameter's size. */
    const arrays = (values: Record<string, number[]> | undefined): number[][] =>
      this.params.map((v, i) => {
        const data = values?.[PARAM_NAMES[i] as string];
        if (!data || data.length !== v.size)
          throw new Error(`reinforce: state tensor ${PARAM_NAMES[i]} has the wrong size`);
        return data;
      });
    if (!Number.isInteger(s.updates) || s.updates < 0)
      throw new Error('reinforce: state field updates must be an integer >= 0');
    const params = arrays(s.params);
    const adam = { t: s.updates, m: arrays(s.adamM), v: arrays(s.adamV) };
    this.params.forEach((v, i) => {
      const t = tf.tensor(params[i], v.shape);
      v.assign(t);
      t.dispose();
    });
    this.adam.setState(adam);
    this.weightCache = null;
    this.seed = s.seed;
    this.episodes = s.episodes;
    this.baseline = s.baseline;
    this.scale2 = s.scale2;
    this.pending = (s.pending ?? []).map((e) => ({
      steps: e.steps.map((st) => ({
        observation: Float32Array.from(st.observation),
        action: st.action,
        reward: st.reward,
        mask: st.mask ? Uint8Array.from(st.mask) : null,
      })),
      advantages: [...e.advantages],
    }));
    this.episode = [];
    this.rng = episodeRng(this.seed, this.episodes);
  }

  dispose(): void {
    for (const v of this.params) v.dispose();
    this.params = [];
    this.adam?.dispose();
    this.adam = null;
  }
}

export const reinforceAgentEntry: AgentEntry = {
  describe: 'REINFORCE policy gradient: MLP policy over the observation, moving-average baseline, entropy bonus, masks',
  defaults: { ...REINFORCE_DEFAULTS },
  validate: (opts, field) => void validateReinforceOptions(opts as unknown as ReinforceOptions, field),
  create: (opts) => new ReinforceAgent(opts),
};
