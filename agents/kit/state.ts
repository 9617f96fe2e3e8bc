/**
 * The tag of an agent's checkpoint state: `name`, the agent's registry name (as an experiment's `agents[i].name`
 * spells it), beside the format's `version` where the agent has one. States written before the tag was shared
 * carry `kind` instead (ppo, ddpg, amed) or no tag (random, uniform, reinforce); `stateName` reads both spellings.
 */

/** The registry name a state is tagged with: `name`, else the older `kind`; undefined when it has neither. */
export function stateName(state: unknown): string | undefined {
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return undefined;
  const s = state as Record<string, unknown>;
  const tag = s['name'] ?? s['kind'];
  return typeof tag === 'string' ? tag : undefined;
}

/**
 * True when `state` is an object tagged as agent `name`'s (by `name` or the older `kind`); with `untagged`,
 * an object with no tag at all (the agent's older files) also counts.
 */
export function isStateOf(state: unknown, name: string, untagged = false): boolean {
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return false;
  const tag = stateName(state);
  return tag === name || (untagged && tag === undefined && !('name' in state) && !('kind' in state));
}
