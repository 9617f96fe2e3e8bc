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
 * (seed, e). getState/setState carry the weights, the Adam moments, the baseline and the episode count
 * (format version 2: the kit's parameter store and Adam state; version 1 files, arrays by name, still load).
 */
import { tf } from '../src/backend/index.js';
import type { AgentContext, EpisodeSummary, StepAgent, Transition } from '../envs/types.js';
import { Rng } from '../src/util/rng.js';
import { denseForward } from './kit/dense.js';
import { MaskedCategorical } from './kit/sampling.js';
import { Adam, type AdamState } from './kit/adam.js';
import { ParamStore, type StoredParam } from './kit/params.js';
import { isStateOf } from './kit/state.js';
import { UserError } from '../src/errors.js';
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

/** The policy MLP's parameters, in the order the optimizer and the forward pass take them. */
const PARAM_NAMES = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3'] as const;

/** The checkpoint format written now. */
const STATE_VERSION = 2;

/** Episodes collected since the last update (episodesPerUpdate > 1). */
type PendingState = {
  steps: { observation: number[]; action: number; reward: number; mask: number[] | null }[];
  advantages: number[];
}[];

/** The JSON checkpoint of a REINFORCE agent. */
export interface ReinforceState {
  name: 'reinforce';
  version: typeof STATE_VERSION;
  options: ReinforceOptions;
  seed: number;
  episodes: number;
  baseline: number | null;
  scale2: number;
  observationSize: number;
  numActions: number;
  /** The parameter store's values (w1, b1, w2, b2, w3, b3). */
  params: Record<string, StoredParam>;
  /** The optimizer's step count (= updates) and moments, in PARAM_NAMES order. */
  adam: AdamState;
  pending: PendingState;
}

/** The format before version 2 (no tag, no version): plain arrays by parameter name, Adam moments beside them. */
export interface ReinforceStateV1 {
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
  /** Absent in the oldest states. */
  pending?: PendingState;
}

/** A version 1 state in the version 2 form (shapes from the parameters it is loaded into). */
function upgradeStateV1(s: ReinforceStateV1, shapes: Record<string, number[]>): ReinforceState {
  const arrays = (values: Record<string, number[]> | undefined): number[][] =>
    PARAM_NAMES.map((n) => values?.[n] ?? []);
  return {
    name: 'reinforce',
    version: STATE_VERSION,
    options: s.options,
    seed: s.seed,
    episodes: s.episodes,
    baseline: s.baseline,
    scale2: s.scale2,
    observationSize: s.observationSize,
    numActions: s.numActions,
    params: Object.fromEntries(PARAM_NAMES.map((n) => [n, { shape: shapes[n] ?? [], values: s.params?.[n] ?? [] }])),
    adam: { t: s.updates, m: arrays(s.adamM), v: arrays(s.adamV) },
    pending: s.pending ?? [],
  };
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
  private readonly store = new ParamStore('reinforce');
  /** The store's variables in PARAM_NAMES order. */
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
      return this.store.add(PARAM_NAMES[i], tf.tensor2d(values, shape));
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
    return tf.add<tf.Tensor2D>(tf.matMul(h2, w3), b3);
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
        return tf.sub<tf.Scalar>(pg, tf.mul(entropyCoef, entropy));
      };
      const { grads } = tf.variableGrads(lossFn, this.params);
      adam.step(this.params.map((p) => grads[p.name]));
    });
  }

  getState(): ReinforceState {
    return {
      name: 'reinforce',
      version: STATE_VERSION,
      options: { ...this.options },
      seed: this.seed,
      episodes: this.episodes,
      baseline: this.baseline,
      scale2: this.scale2,
      observationSize: this.obsSize,
      numActions: this.numActions,
      params: this.store.toState(),
      adam: this.adam?.getState() ?? { t: 0, m: [], v: [] },
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

  /** Restores a getState() result of this version or a version 1 state (call after setup() with the same problem). */
  setState(state: unknown): void {
    const bad = (field: string, expected: string): never => {
      throw new UserError('agent state does not match this reinforce agent', {
        field: `agentState.${field}`,
        expected,
      });
    };
    if (!this.adam) throw new Error('reinforce: setup(ctx) must be called first');
    if (!isStateOf(state, 'reinforce', true)) bad('name', "'reinforce'");
    const tagged = state as Partial<ReinforceState>;
    const shapes = Object.fromEntries(this.store.entries().map(([n, v]) => [n, v.shape.slice()]));
    const s = tagged.version === undefined ? upgradeStateV1(state as ReinforceStateV1, shapes) : tagged;
    if (s.version !== STATE_VERSION) bad('version', `${STATE_VERSION} (or a version 1 state without a version)`);
    const st = s as ReinforceState;
    if (st.observationSize !== this.obsSize) bad('observationSize', String(this.obsSize));
    if (st.numActions !== this.numActions) bad('numActions', String(this.numActions));
    if (!st.params || typeof st.params !== 'object') bad('params', 'an object of parameters by name');
    this.store.loadState(st.params, bad);
    this.adam.setState(st.adam, bad, 'adam');
    this.weightCache = null;
    this.seed = st.seed;
    this.episodes = st.episodes;
    this.baseline = st.baseline;
    this.scale2 = st.scale2;
    this.pending = st.pending.map((e) => ({
      steps: e.steps.map((x) => ({
        observation: Float32Array.from(x.observation),
        action: x.action,
        reward: x.reward,
        mask: x.mask ? Uint8Array.from(x.mask) : null,
      })),
      advantages: [...e.advantages],
    }));
    this.episode = [];
    this.rng = episodeRng(this.seed, this.episodes);
  }

  dispose(): void {
    this.store.dispose();
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
