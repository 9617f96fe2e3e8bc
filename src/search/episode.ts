/**
 * One episode of any agent on a BitAllocationEnv. Step agents walk the MDP (reset, then act /
 * step / observe with the env's masks until the episode ends); allocation agents propose a whole
 * allocation that the env evaluates with the same constraint handling and reward. Either way the
 * agent then gets endEpisode(summary), and the summary is returned.
 */
import type { BitAllocationEnv } from '../../envs/bit-allocation-env.js';
import type { Agent, EpisodeSummary } from '../../envs/types.js';

export interface EpisodeOptions {
  /** Exploring (training) episode, or a greedy evaluation of the current policy. Default true. */
  explore?: boolean;
}

export async function runEpisode(
  env: BitAllocationEnv,
  agent: Agent,
  opts: EpisodeOptions = {},
): Promise<EpisodeSummary> {
  const explore = opts.explore ?? true;
  let summary: EpisodeSummary;
  if (agent.kind === 'step') {
    let { observation } = env.reset();
    for (;;) {
      const mask = env.actionMask();
      const action = await agent.act(observation, mask, explore);
      const r = await env.step(action);
      const done = r.terminated || r.truncated;
      agent.observe({ observation, action, reward: r.reward, nextObservation: r.observation, done, mask });
      observation = r.observation;
      if (done) {
        if (!r.info.summary) throw new Error('the env ended an episode without a summary');
        summary = r.info.summary;
        break;
      }
    }
  } else {
    summary = await env.evaluateAllocation(await agent.propose());
  }
  await agent.endEpisode(summary);
  return summary;
}

export interface RunEpisodesOptions extends EpisodeOptions {
  /** Called after every episode. */
  onEpisode?: (summary: EpisodeSummary) => void | Promise<void>;
}

/**
 * Sets the agent up on the env (seeded) and runs up to `episodes` episodes, stopping early when an
 * allocation agent is exhausted. Returns every episode's summary.
 */
export async function runEpisodes(
  env: BitAllocationEnv,
  agent: Agent,
  episodes: number,
  seed: number,
  opts: RunEpisodesOptions = {},
): Promise<EpisodeSummary[]> {
  await agent.setup(env.agentContext(seed));
  const out: EpisodeSummary[] = [];
  for (let e = 0; e < episodes; e++) {
    if (agent.kind === 'allocation' && agent.exhausted?.()) break;
    const s = await runEpisode(env, agent, opts);
    out.push(s);
    await opts.onEpisode?.(s);
  }
  return out;
}
