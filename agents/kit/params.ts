/**
 * Named trainable parameters of an agent's networks (`actor.w1`, `critic.2.b`, ...), in insertion order, and
 * their serialisation to plain arrays for the agent's checkpoint state.
 */
import { tf } from '../../src/backend/index.js';

/** A parameter as it is stored in a checkpoint. */
export interface StoredParam {
  shape: number[];
  values: number[];
}

export class ParamStore {
  private readonly vars = new Map<string, tf.Variable>();

  constructor(private readonly owner: string) {}

  /** Adds a trainable variable initialised from `init` (which is disposed). */
  add(name: string, init: tf.Tensor): tf.Variable {
    const v = tf.variable(init, true);
    init.dispose();
    this.vars.set(name, v);
    return v;
  }

  get(name: string): tf.Variable {
    const found = this.vars.get(name);
    if (!found) throw new Error(`${this.owner}: no parameter ${name}`);
    return found;
  }

  /** Every parameter, or those whose name starts with `<prefix>.`, in insertion order. */
  variables(prefix?: string): tf.Variable[] {
    return [...this.vars].filter(([n]) => prefix === undefined || n.split('.')[0] === prefix).map(([, v]) => v);
  }

  entries(): [string, tf.Variable][] {
    return [...this.vars];
  }

  /** The values as plain arrays (every parameter, by name). */
  toState(): Record<string, StoredParam> {
    const out: Record<string, StoredParam> = {};
    for (const [name, v] of this.vars) out[name] = { shape: v.shape.slice(), values: Array.from(v.dataSync()) };
    return out;
  }

  /**
   * Assigns stored values to every parameter; a missing or mis-sized one calls `bad` (which throws) before any
   * parameter is changed.
   */
  loadState(
    stored: Record<string, StoredParam>,
    bad: (field: string, expected: string) => never,
    field = 'params',
  ): void {
    for (const [name, v] of this.vars) {
      const p = stored[name];
      if (!p || !Array.isArray(p.values) || p.values.length !== v.size) bad(`${field}.${name}`, `${v.size} numbers`);
    }
    for (const [name, v] of this.vars) tf.tidy(() => v.assign(tf.tensor(stored[name].values, v.shape)));
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}
