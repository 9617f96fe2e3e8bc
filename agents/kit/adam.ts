/**
 * Adam (Kingma & Ba) over a fixed list of tfjs variables, for the agents' own networks (PPO, DDPG,
 * REINFORCE). Its moments are variables too, and getState/setState carry them as plain JSON arrays,
 * so an agent's checkpoint resumes bit-identically.
 *
 *   m <- beta1 m + (1 - beta1) g        v <- beta2 v + (1 - beta2) g^2
 *   p <- p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 */
import { tf } from '../../src/backend/index.js';

export interface AdamOptions {
  /** Step size. */
  lr: number;
  /** Added to sqrt(v) (default 1e-8). */
  eps?: number;
  /** Decay of the first moment (default 0.9). */
  beta1?: number;
  /** Decay of the second moment (default 0.999). */
  beta2?: number;
}

/** An optimizer's checkpoint: the step count and both moments, one array per variable (in order). */
export interface AdamState {
  t: number;
  m: number[][];
  v: number[][];
}

/** Called on a state that does not fit, with the field's path (e.g. `adam.m[2]`) and what it should be. */
export type AdamStateError = (field: string, expected: string) => never;

const throwError: AdamStateError = (field, expected) => {
  throw new Error(`optimizer state field ${field} does not fit: expected ${expected}`);
};

export class Adam {
  private t = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private readonly lr: number;
  private readonly eps: number;
  private readonly beta1: number;
  private readonly beta2: number;

  constructor(
    private readonly params: readonly tf.Variable[],
    options: AdamOptions,
  ) {
    this.lr = options.lr;
    this.eps = options.eps ?? 1e-8;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    const zeros = (p: tf.Variable): tf.Variable => tf.tidy(() => tf.variable(tf.zerosLike(p), false));
    this.m = params.map(zeros);
    this.v = params.map(zeros);
  }

  /** Steps taken so far (t). */
  get steps(): number {
    return this.t;
  }

  /** One step with `grads[i]` for `params[i]`; call inside tf.tidy. */
  step(grads: readonly tf.Tensor[]): void {
    this.t += 1;
    const c1 = 1 - Math.pow(this.beta1, this.t);
    const c2 = 1 - Math.pow(this.beta2, this.t);
    this.params.forEach((p, i) => {
      const g = grads[i];
      const m = this.m[i];
      const v = this.v[i];
      m.assign(m.mul(this.beta1).add(g.mul(1 - this.beta1)));
      v.assign(v.mul(this.beta2).add(g.square().mul(1 - this.beta2)));
      p.assign(p.sub(m.div(c1).div(v.div(c2).sqrt().add(this.eps)).mul(this.lr)));
    });
  }

  getState(): AdamState {
    return {
      t: this.t,
      m: this.m.map((x) => Array.from(x.dataSync())),
      v: this.v.map((x) => Array.from(x.dataSync())),
    };
  }

  /**
   * Restores a getState() result. Checks it all first and calls `bad` (default: throws an Error) on a
   * misfit, naming the field as `${field}.t`, `${field}.m[i]`, ...
   */
  setState(s: AdamState, bad: AdamStateError = throwError, field = 'adam'): void {
    if (!s || typeof s !== 'object') bad(field, 'an object {t, m, v}');
    if (!Number.isInteger(s.t) || s.t < 0) bad(`${field}.t`, 'an integer >= 0');
    for (const key of ['m', 'v'] as const) {
      const arrays = s[key];
      if (!Array.isArray(arrays) || arrays.length !== this.params.length)
        bad(`${field}.${key}`, `${this.params.length} arrays`);
      this.params.forEach((p, i) => {
        const a = arrays[i];
        if (!Array.isArray(a) || a.length !== p.size) bad(`${field}.${key}[${i}]`, `${p.size} numbers`);
      });
    }
    this.t = s.t;
    tf.tidy(() => {
      this.m.forEach((x, i) => x.assign(tf.tensor(s.m[i], x.shape)));
      this.v.forEach((x, i) => x.assign(tf.tensor(s.v[i], x.shape)));
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}
