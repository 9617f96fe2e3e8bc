/**
 * DDPG agent with HAQ's settings (Wang et al., CVPR 2019; mit-han-lab/haq).
 *
 * Per step the actor outputs a continuous a in [0,1] (sigmoid). It is mapped to the env's ordered
 * discrete choices with HAQ's rounding formula, written over choice indices 0..n-1:
 *   bits = round(a * (max + 0.5 - (min - 0.5)) + min - 0.5)   ->   index = round(a * n - 0.5), clamped.
 * Masks: the index is snapped to the nearest unmasked choice (ties to the lower, cheaper one) and the
 * stored action becomes the centre of that choice's interval, (index + 0.5) / n.
 *
 * Episodes 1..warmup act uniformly at random in [0,1] and do not learn. Afterwards actions are
 * sampled from a normal around the actor's output truncated to [0,1], sigma = 0.5 * 0.99^(episode -
 * warmup). The reward arrives at the end of the episode: it is copied to every transition of the
 * episode, which all then enter the replay buffer (128 x steps per episode), and one update per
 * transition follows. Each update samples a batch of 64, subtracts a moving-average baseline
 * (alpha 0.5, over batch means, as HAQ's code does) from the rewards, and with discount 1 regresses
 *   Q(s,a) -> r - baseline + (1 - done) * Q'(s', mu'(s'))
 * (critic lr 1e-3), then ascends Q(s, mu(s)) (actor lr 1e-4), then soft-updates both targets with
 * tau 0.01. Actor and critic have two hidden layers of 300 (the critic joins state and action after
 * its first layer); last layers start in +-3e-3, others in +-1/sqrt(fan-in) as in HAQ.
 *
 * Choice of ours: the episode's reward is EpisodeSummary.reward (the env's episode outcome).
 */
import { tf } from '../src/backend/index.js';
import { UserError } from '../src/errors.js';
import { Rng } from '../src/util/rng.js';
import type { AgentContext, EpisodeSummary, StepAgent, Transition } from '../envs/types.js';
import { isStateOf } from './kit/state.js';
import { Adam, type AdamState } from './kit/adam.js';
import type { AgentEntry } from './index.js';
import { optionChecks } from './kit/option-checks.js';
import { ParamStore } from './kit/params.js';

// ---------------------------------------------------------------------------------------------
// Hyperparameters (HAQ's defaults)
// ---------------------------------------------------------------------------------------------
export interface DdpgOptions {
  /** Width of both hidden layers of the actor and of the critic. */
  hiddenSize: number;
  /** Actor's Adam step size. */
  learningRate: number;
  /** Critic's Adam step size. */
  criticLearningRate: number;
  batchSize: number;
  /** Replay capacity in episodes (x steps per episode transitions). */
  replayEpisodes: number;
  tau: number;
  gamma: number;
  warmupEpisodes: number;
  initialSigma: number;
  sigmaDecay: number;
  /** Moving-average rate of the reward baseline. */
  baselineAlpha: number;
  /** Gradient updates per stored transition after warm-up. */
  updatesPerTransition: number;
  /** Range of the last layers' initial weights. */
  initW: number;
}

export const DDPG_DEFAULTS: Readonly<DdpgOptions> = {
  hiddenSize: 300,
  learningRate: 1e-4,
  criticLearningRate: 1e-3,
  batchSize: 64,
  replayEpisodes: 128,
  tau: 0.01,
  gamma: 1,
  warmupEpisodes: 20,
  initialSigma: 0.5,
  sigmaDecay: 0.99,
  baselineAlpha: 0.5,
  updatesPerTransition: 1,
  initW: 3e-3,
};

/** Checks a full option set (defaults merged); errors name `${field}.<option>`. */
export function validateDdpgOptions(o: DdpgOptions, field = 'agentOptions'): DdpgOptions {
  const { int } = optionChecks('ddpg', o, field);
  for (const key of ['hiddenSize', 'batchSize', 'replayEpisodes', 'updatesPerTransition'] as const) int(key, 1);
  int('warmupEpisodes', 0);
  return o;
}

const STATE_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Helpers: parameters, exploration noise, action rounding
// ---------------------------------------------------------------------------------------------
function uniformTensor(rng: Rng, shape: number[], bound: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rng.next() * 2 - 1) * bound;
  return tf.tensor(data, shape);
}

/** A normal sample around mu truncated to [lo, hi] (rejection; clamps after 1000 tries). */
function truncatedNormal(rng: Rng, mu: number, sigma: number, lo: number, hi: number): number {
  if (sigma <= 0) return Math.min(hi, Math.max(lo, mu));
  for (let i = 0; i < 1000; i++) {
    const x = mu + sigma * rng.normal();
    if (x >= lo && x <= hi) return x;
  }
  return Math.min(hi, Math.max(lo, mu));
}

/** HAQ's rounding of a in [0,1] onto n ordered choices. */
export function actionToIndex(a: number, n: number): number {
  return Math.min(n - 1, Math.max(0, Math.round(a * n - 0.5)));
}

/** Nearest unmasked index to `index` (ties to the lower one). */
function snapToMask(index: number, mask: Uint8Array | null): number {
  if (!mask || mask[index] !== 0) return index;
  for (let d = 1; d < mask.length; d++) {
    if (index - d >= 0 && mask[index - d] !== 0) return index - d;
    if (index + d < mask.length && mask[index + d] !== 0) return index + d;
  }
  throw new Error('ddpg: every action is masked');
}

interface Experience {
  obs: number[];
  action: number;
  reward: number;
  nextObs: number[];
  done: boolean;
}

interface Layer {
  w: tf.Variable;
  b: tf.Variable;
}

/** The JSON checkpoint of a DDPG agent. */
export interface DdpgState {
  /** The tag (files written before it was shared say `kind`). */
  name: 'ddpg';
  version: number;
  options: DdpgOptions;
  observationSize: number;
  numActions: number;
  rng: number;
  /** Episodes finished (the noise schedule and warm-up follow it). */
  episodes: number;
  baseline: number | null;
  params: Record<string, { shape: number[]; values: number[] }>;
  actorAdam: AdamState;
  criticAdam: AdamState;
  replay: Experience[];
  replayNext: number;
  episode: Experience[];
}

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------
export class DdpgAgent implements StepAgent {
  readonly kind = 'step' as const;
  readonly name = 'ddpg';
  readonly options: DdpgOptions;

  private ctx: AgentContext | null = null;
  private rng = new Rng(0);
  /** name -> variable, for the four networks ('actor.0.w', 'criticTarget.2.b', ...). */
  private readonly vars = new ParamStore('ddpg');
  private actorAdam: Adam | null = null;
  private criticAdam: Adam | null = null;
  private replay: Experience[] = [];
  private replayNext = 0;
  private episode: Experience[] = [];
  private episodes = 0;
  private baseline: number | null = null;
  private pendingAction: { index: number; a: number; explore: boolean } | null = null;
  /** Diagnostics of the last update. */
  lastLoss: { critic: number; actor: number } | null = null;

  constructor(options: Partial<DdpgOptions> = {}) {
    this.options = validateDdpgOptions({ ...DDPG_DEFAULTS, ...options });
  }

  setup(ctx: AgentContext): void {
    this.disposeNetworks();
    this.ctx = ctx;
    this.rng = new Rng(ctx.seed);
    const D = ctx.observationSize;
    const { hiddenSize, initW } = this.options;
    const H1 = hiddenSize;
    const H2 = hiddenSize;
    const add = (name: string, t: tf.Tensor): void => void this.vars.add(name, t);
    const layer = (net: string, i: number, fanIn: number, fanOut: number, bound: number): void => {
      add(`${net}.${i}.w`, uniformTensor(this.rng, [fanIn, fanOut], bound));
      add(`${net}.${i}.b`, uniformTensor(this.rng, [fanOut], 1 / Math.sqrt(fanIn)));
    };
    layer('actor', 0, D, H1, 1 / Math.sqrt(D));
    layer('actor', 1, H1, H2, 1 / Math.sqrt(H1));
    layer('actor', 2, H2, 1, initW);
    layer('critic', 0, D, H1, 1 / Math.sqrt(D));
    add('critic.a.w', uniformTensor(this.rng, [1, H1], 1)); // action branch of the first layer (fan-in 1)
    layer('critic', 1, H1, H2, 1 / Math.sqrt(H1));
    layer('critic', 2, H2, 1, initW);
    // Targets start as copies.
    for (const [name, v] of this.vars.entries())
      add(name.replace(/^actor/, 'actorTarget').replace(/^critic/, 'criticTarget'), v.clone());
    this.actorAdam = new Adam(this.netVars('actor'), { lr: this.options.learningRate });
    this.criticAdam = new Adam(this.netVars('critic'), { lr: this.options.criticLearningRate });
    this.replay = [];
    this.replayNext = 0;
    this.episode = [];
    this.episodes = 0;
    this.baseline = null;
    this.pendingAction = null;
  }

  private netVars(prefix: 'actor' | 'critic' | 'actorTarget' | 'criticTarget'): tf.Variable[] {
    return this.vars.variables(prefix);
  }

  private v(name: string): tf.Variable {
    return this.vars.get(name);
  }

  private layer(net: string, i: number): Layer {
    return { w: this.v(`${net}.${i}.w`), b: this.v(`${net}.${i}.b`) };
  }

  // --- networks -------------------------------------------------------------------------------
  /** mu(s) in [0,1]: relu(300) -> relu(300) -> sigmoid. Returns [B, 1]. */
  private actor(x: tf.Tensor2D, target = false): tf.Tensor2D {
    const n = target ? 'actorTarget' : 'actor';
    const [l0, l1, l2] = [0, 1, 2].map((i) => this.layer(n, i)) as [Layer, Layer, Layer];
    const h1 = tf.relu(x.matMul(l0.w).add(l0.b));
    const h2 = tf.relu(h1.matMul(l1.w).add(l1.b));
    return tf.sigmoid(h2.matMul(l2.w).add(l2.b)) as tf.Tensor2D;
  }

  /** Q(s, a): relu(W_s s + W_a a + b) -> relu(300) -> linear. Returns [B, 1]. */
  private critic(x: tf.Tensor2D, a: tf.Tensor2D, target = false): tf.Tensor2D {
    const n = target ? 'criticTarget' : 'critic';
    const [l0, l1, l2] = [0, 1, 2].map((i) => this.layer(n, i)) as [Layer, Layer, Layer];
    const h1 = tf.relu(
      x
        .matMul(l0.w)
        .add(a.matMul(this.v(`${n}.a.w`)))
        .add(l0.b),
    );
    const h2 = tf.relu(h1.matMul(l1.w).add(l1.b));
    return h2.matMul(l2.w).add<tf.Tensor2D>(l2.b);
  }

  /** Current exploration sigma (0.5 * 0.99^(episode - warmup) after the warm-up). */
  get sigma(): number {
    const { initialSigma, sigmaDecay, warmupEpisodes } = this.options;
    return initialSigma * Math.pow(sigmaDecay, Math.max(0, this.episodes + 1 - warmupEpisodes));
  }

  // --- acting ---------------------------------------------------------------------------------
  act(observation: Float32Array, mask: Uint8Array | null, explore: boolean): number {
    const ctx = this.requireSetup();
    const n = ctx.numActions;
    let a: number;
    if (explore && this.episodes < this.options.warmupEpisodes) {
      a = this.rng.next();
    } else {
      const out = tf.tidy(() => this.actor(tf.tensor2d(observation, [1, observation.length])));
      const mu = out.dataSync()[0];
      out.dispose();
      a = explore ? truncatedNormal(this.rng, mu, this.sigma, 0, 1) : mu;
    }
    const raw = actionToIndex(a, n);
    const index = snapToMask(raw, mask);
    if (index !== raw) a = (index + 0.5) / n;
    this.pendingAction = { index, a, explore };
    return index;
  }

  observe(t: Transition): void {
    const p = this.pendingAction;
    this.pendingAction = null;
    if (!p || !p.explore || p.index !== t.action) return;
    this.episode.push({
      obs: Array.from(t.observation),
      action: p.a,
      reward: 0,
      nextObs: Array.from(t.nextObservation),
      done: t.done,
    });
  }

  async endEpisode(summary: EpisodeSummary): Promise<void> {
    const ctx = this.requireSetup();
    const episode = this.episode;
    this.episode = [];
    if (episode.length === 0) return; // a greedy (explore = false) episode: nothing to learn from
    this.episodes += 1;
    const capacity = this.options.replayEpisodes * ctx.stepsPerEpisode;
    for (const e of episode) {
      e.reward = summary.reward; // the final reward, copied to every transition
      if (this.replay.length < capacity) this.replay.push(e);
      else this.replay[this.replayNext] = e;
      this.replayNext = (this.replayNext + 1) % capacity;
    }
    if (this.episodes > this.options.warmupEpisodes) {
      for (let i = 0; i < episode.length * this.options.updatesPerTransition; i++) this.update();
    }
  }

  // --- learning -------------------------------------------------------------------------------
  private sampleBatch(): Experience[] {
    const n = this.replay.length;
    const B = this.options.batchSize;
    if (n >= B) {
      // Without replacement: partial Fisher-Yates over indices.
      const idx = Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < B; i++) {
        const j = i + this.rng.int(n - i);
        [idx[i], idx[j]] = [idx[j], idx[i]];
      }
      return idx.slice(0, B).map((i) => this.replay[i]);
    }
    return Array.from({ length: B }, () => this.replay[this.rng.int(n)]);
  }

  private update(): void {
    const ctx = this.requireSetup();
    const D = ctx.observationSize;
    const { gamma, tau, baselineAlpha } = this.options;
    const batch = this.sampleBatch();
    const B = batch.length;
    const meanReward = batch.reduce((s, e) => s + e.reward, 0) / B;
    this.baseline = this.baseline === null ? meanReward : this.baseline + baselineAlpha * (meanReward - this.baseline);
    const baseline = this.baseline;
    const obs = new Float32Array(B * D);
    const next = new Float32Array(B * D);
    const act = new Float32Array(B);
    const rew = new Float32Array(B);
    const notDone = new Float32Array(B);
    batch.forEach((e, i) => {
      obs.set(e.obs, i * D);
      next.set(e.nextObs, i * D);
      act[i] = e.action;
      rew[i] = e.reward - baseline;
      notDone[i] = e.done ? 0 : 1;
    });
    const losses = tf.tidy(() => {
      const s = tf.tensor2d(obs, [B, D]);
      const s2 = tf.tensor2d(next, [B, D]);
      const a = tf.tensor2d(act, [B, 1]);
      const y = tf.tidy(() => {
        const q2 = this.critic(s2, this.actor(s2, true), true);
        return tf.tensor2d(rew, [B, 1]).add(tf.tensor2d(notDone, [B, 1]).mul(q2).mul(gamma));
      });
      const criticVars = this.netVars('critic');
      const c = tf.variableGrads(() => this.critic(s, a).sub(y).square().mean<tf.Scalar>(), criticVars);
      (this.criticAdam as Adam).step(criticVars.map((v) => c.grads[v.name]));
      const actorVars = this.netVars('actor');
      const p = tf.variableGrads(() => this.critic(s, this.actor(s)).mean().neg() as tf.Scalar, actorVars);
      (this.actorAdam as Adam).step(actorVars.map((v) => p.grads[v.name]));
      // Soft target updates: theta' <- tau * theta + (1 - tau) * theta'.
      for (const [name, v] of this.vars.entries()) {
        const head = name.split('.')[0];
        if (head !== 'actor' && head !== 'critic') continue;
        const tgt = this.v(name.replace(/^actor/, 'actorTarget').replace(/^critic/, 'criticTarget'));
        tgt.assign(v.mul(tau).add(tgt.mul(1 - tau)));
      }
      return tf.stack([c.value, p.value]);
    });
    const [critic, actor] = Array.from(losses.dataSync());
    losses.dispose();
    this.lastLoss = { critic: critic, actor: actor };
  }

  // --- checkpoints ----------------------------------------------------------------------------
  getState(): DdpgState {
    const ctx = this.requireSetup();
    const params: DdpgState['params'] = this.vars.toState();
    const copy = (e: Experience): Experience => ({ ...e, obs: e.obs.slice(), nextObs: e.nextObs.slice() });
    return {
      name: 'ddpg',
      version: STATE_VERSION,
      options: { ...this.options },
      observationSize: ctx.observationSize,
      numActions: ctx.numActions,
      rng: this.rng.getState(),
      episodes: this.episodes,
      baseline: this.baseline,
      params,
      actorAdam: (this.actorAdam as Adam).getState(),
      criticAdam: (this.criticAdam as Adam).getState(),
      replay: this.replay.map(copy),
      replayNext: this.replayNext,
      episode: this.episode.map(copy),
    };
  }

  setState(state: unknown): void {
    const ctx = this.requireSetup();
    const bad = (field: string, expected: string): never => {
      throw new UserError('agent state does not match this ddpg agent', { field: `agentState.${field}`, expected });
    };
    const s = state as Partial<DdpgState> | null;
    if (!isStateOf(s, 'ddpg')) bad('name', "'ddpg'");
    const st = s as DdpgState;
    if (st.version !== STATE_VERSION) bad('version', String(STATE_VERSION));
    if (st.observationSize !== ctx.observationSize) bad('observationSize', String(ctx.observationSize));
    if (st.numActions !== ctx.numActions) bad('numActions', String(ctx.numActions));
    this.vars.loadState(st.params, bad);
    (this.actorAdam as Adam).setState(st.actorAdam, bad, 'actorAdam');
    (this.criticAdam as Adam).setState(st.criticAdam, bad, 'criticAdam');
    if (!Number.isInteger(st.rng)) bad('rng', 'an integer (the generator state)');
    this.rng.setState(st.rng);
    this.episodes = st.episodes;
    this.baseline = st.baseline;
    this.replay = st.replay.map((e) => ({ ...e, obs: e.obs.slice(), nextObs: e.nextObs.slice() }));
    this.replayNext = st.replayNext;
    this.episode = st.episode.map((e) => ({ ...e, obs: e.obs.slice(), nextObs: e.nextObs.slice() }));
    this.pendingAction = null;
  }

  private requireSetup(): AgentContext {
    if (!this.ctx || !this.actorAdam) throw new Error('ddpg: setup(ctx) must be called first');
    return this.ctx;
  }

  private disposeNetworks(): void {
    this.vars.dispose();
    this.actorAdam?.dispose();
    this.criticAdam?.dispose();
    this.actorAdam = null;
    this.criticAdam = null;
  }

  dispose(): void {
    this.disposeNetworks();
    this.ctx = null;
  }
}

export const ddpgAgentEntry: AgentEntry = {
  describe: "HAQ's DDPG: continuous action per step rounded onto the bit choices, end-of-episode reward, replay",
  defaults: { ...DDPG_DEFAULTS },
  validate: (opts, field) => void validateDdpgOptions(opts as unknown as DdpgOptions, field),
  create: (opts) => new DdpgAgent(opts),
};
