/**
 * Random search: at every step, a uniformly random choice among the allowed (unmasked) actions.
 * The floor every other agent must beat at the same episode count. Seeded: episode e draws from a
 * stream derived from (seed, e), so its state for checkpoints is just the episode count.
 */
import type { AgentContext, EpisodeSummary, StepAgent, Transition } from '../envs/types.js';
import { Rng } from '../src/util/rng.js';
import type { AgentEntry } from './index.js';
import { isStateOf } from './kit/state.js';

export interface RandomAgentState {
  /** The tag (absent in older files). */
  name?: 'random';
  seed: number;
  episodes: number;
}

/** A stream for one episode, derived from the agent's seed and the episode number. */
export function episodeRng(seed: number, episode: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(episode + 1, 0x85ebca6b)) >>> 0);
}

export class RandomAgent implements StepAgent {
  readonly name = 'random';
  readonly kind = 'step' as const;
  private numActions = 0;
  private seed = 0;
  private episodes = 0;
  private rng: Rng = episodeRng(0, 0);

  setup(ctx: AgentContext): void {
    this.numActions = ctx.numActions;
    this.seed = ctx.seed;
    this.episodes = 0;
    this.rng = episodeRng(this.seed, 0);
  }

  act(_observation: Float32Array, mask: Uint8Array | null): number {
    const allowed: number[] = [];
    for (let i = 0; i < this.numActions; i++) if (!mask || mask[i]) allowed.push(i);
    if (allowed.length === 0) return this.rng.int(this.numActions);
    return this.rng.pick(allowed);
  }

  observe(_t: Transition): void {}

  endEpisode(_summary: EpisodeSummary): void {
    this.episodes++;
    this.rng = episodeRng(this.seed, this.episodes);
  }

  getState(): RandomAgentState {
    return { name: 'random', seed: this.seed, episodes: this.episodes };
  }

  setState(state: unknown): void {
    const s = state as RandomAgentState;
    if (!isStateOf(state, 'random', true) || typeof s.seed !== 'number' || typeof s.episodes !== 'number')
      throw new Error('random agent: bad state');
    this.seed = s.seed;
    this.episodes = s.episodes;
    this.rng = episodeRng(this.seed, this.episodes);
  }
}

export const randomAgentEntry: AgentEntry = {
  describe: 'uniformly random choice among the allowed bit-widths at every step (random search)',
  defaults: {},
  validate: () => undefined,
  create: () => new RandomAgent(),
};
