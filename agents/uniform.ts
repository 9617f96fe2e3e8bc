/**
 * Uniform precision: every layer at the same width (wBits = aBits = b), one width per episode,
 * then exhausted. Orders:
 *   feasible-first  widths that meet the budget, widest first, then the others, widest first (default)
 *   descending      widest to narrowest
 *   ascending       narrowest to widest
 * The baseline of "all 8, all 4, ..." at the same budget.
 */
import type { AgentContext, AllocationAgent, EpisodeSummary } from '../envs/types.js';
import { UserError } from '../src/errors.js';
import { uniformBits, type BitConfig, type LayerInfo } from '../src/models/layer-info.js';
import type { AgentEntry } from './index.js';
import { isStateOf } from './kit/state.js';

export type UniformOrder = 'feasible-first' | 'descending' | 'ascending';
export const UNIFORM_ORDERS: readonly UniformOrder[] = ['feasible-first', 'descending', 'ascending'];

export interface UniformAgentState {
  /** The tag (absent in older files). */
  name?: 'uniform';
  order: UniformOrder;
  widths: number[];
  next: number;
}

export class UniformAgent implements AllocationAgent {
  readonly name = 'uniform';
  readonly kind = 'allocation' as const;
  private widths: number[] = [];
  private next = 0;
  private layers: readonly LayerInfo[] = [];

  constructor(readonly order: UniformOrder = 'feasible-first') {
    if (!UNIFORM_ORDERS.includes(order)) {
      throw new UserError(`unknown order '${String(order)}' for agent 'uniform'`, {
        field: 'agentOptions.order',
        expected: UNIFORM_ORDERS.join('|'),
      });
    }
  }

  /** The widths in the order they will be proposed. */
  get schedule(): readonly number[] {
    return this.widths;
  }

  setup(ctx: AgentContext): void {
    this.layers = ctx.layers;
    const desc = [...ctx.bitChoices].sort((a, b) => b - a);
    if (this.order === 'ascending') this.widths = desc.reverse();
    else if (this.order === 'descending') this.widths = desc;
    else {
      const feasible = desc.filter((b) => ctx.isFeasible(uniformBits(ctx.layers, b, b)));
      this.widths = [...feasible, ...desc.filter((b) => !feasible.includes(b))];
    }
    this.next = 0;
  }

  exhausted(): boolean {
    return this.next >= this.widths.length;
  }

  propose(): BitConfig {
    if (this.exhausted()) throw new Error('uniform agent: every width has been proposed (check exhausted())');
    const b = this.widths[this.next];
    return uniformBits(this.layers, b, b);
  }

  endEpisode(_summary: EpisodeSummary): void {
    this.next++;
  }

  getState(): UniformAgentState {
    return { name: 'uniform', order: this.order, widths: [...this.widths], next: this.next };
  }

  setState(state: unknown): void {
    const s = state as UniformAgentState;
    if (!isStateOf(state, 'uniform', true) || !Array.isArray(s.widths) || typeof s.next !== 'number')
      throw new Error('uniform agent: bad state');
    this.widths = [...s.widths];
    this.next = s.next;
  }
}

export const uniformAgentEntry: AgentEntry = {
  describe: 'uniform precision: each bit-width for every layer in turn (feasible widest first), then stops',
  defaults: { order: 'feasible-first' },
  validate: (opts, field) => {
    if (!UNIFORM_ORDERS.includes(opts.order as UniformOrder)) {
      throw new UserError(`unknown order '${String(opts.order)}' for agent 'uniform'`, {
        field: `${field}.order`,
        expected: UNIFORM_ORDERS.join('|'),
      });
    }
  },
  create: (opts) => new UniformAgent(opts.order as UniformOrder),
};
