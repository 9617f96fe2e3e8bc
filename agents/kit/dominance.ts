/**
 * Masks that remove dominated choices: at a layer, a (wBits, aBits) choice is dominated when another choice
 * has at least as many bits on both sides (one strictly more) and costs no more on every budgeted metric. More
 * bits are assumed never to lose accuracy, so a dominated choice can only be worse; removing it shrinks the
 * space an agent explores (on devices whose cost moves in steps, e.g. Bit Fusion's 2/4/8-bit bricks, most of
 * it) without removing any allocation that could be best.
 *
 * Per-layer costs are read from the context's whole-allocation cost (every other layer at W8A8), so only metrics
 * that add up over layers (latency, energy, size) are used; a peak-memory budget is ignored here. Our choice:
 * a tolerance of 1e-9 (relative) counts equal costs as equal.
 */
import type { AgentContext } from '../../envs/types.js';
import type { BitConfig } from '../../src/models/layer-info.js';

const ADDITIVE = { latency: 'latencyMs', energy: 'energyUj', size: 'sizeBytes' } as const;

/**
 * One mask per step (1 = allowed), or null when it does not apply: `two-step` step mode (one side per step), no
 * action choices, no additive budget, or steps that do not map onto layers.
 */
export function dominanceMasks(ctx: AgentContext): Uint8Array[] | null {
  const choices = ctx.actionChoices;
  if (!choices || ctx.stepMode === 'two-step') return null;
  const metrics = [...new Set((ctx.constraints ?? []).map((c) => c.metric))]
    .filter((m): m is keyof typeof ADDITIVE => m in ADDITIVE)
    .map((m) => ADDITIVE[m]);
  if (metrics.length === 0) return null;
  const n = ctx.layers.length;
  // steps walk the free layers: all of them, or all but the first and last (pinFirstLast)
  const layers =
    ctx.stepsPerEpisode === n
      ? [...Array(n).keys()]
      : ctx.stepsPerEpisode === n - 2
        ? [...Array(n - 2).keys()].map((i) => i + 1)
        : null;
  if (!layers) return null;
  const base: BitConfig = ctx.layers.map(() => ({ wBits: 8, aBits: 8 }));
  return layers.map((l) => {
    const costs = choices.map((c) => {
      const bits = base.slice();
      bits[l] = { wBits: c.wBits, aBits: c.aBits };
      const cost = ctx.costOf(bits);
      return metrics.map((m) => cost[m]);
    });
    const mask = new Uint8Array(choices.length).fill(1);
    choices.forEach((c, i) => {
      const dominated = choices.some(
        (d, j) =>
          j !== i &&
          d.wBits >= c.wBits &&
          d.aBits >= c.aBits &&
          (d.wBits > c.wBits || d.aBits > c.aBits) &&
          costs[j].every((v, k) => v <= costs[i][k] * (1 + 1e-9)),
      );
      if (dominated) mask[i] = 0;
    });
    return mask;
  });
}

/** The env's mask and the dominance mask together; the env's alone when they would leave nothing. */
export function combineMasks(envMask: Uint8Array | null, dominance: Uint8Array | undefined): Uint8Array | null {
  if (!dominance) return envMask;
  const out = envMask ? dominance.map((d, i) => (d === 1 && envMask[i] === 1 ? 1 : 0)) : dominance.slice();
  return out.some((m) => m === 1) ? out : envMask;
}

/**
 * A warm start (our choice): the action index of the widest uniform allocation that meets every budget on its
 * own (every layer at b/b, or b on the step's side in `haq` mode), or null when none does. Agents add a logit to
 * it in their initial policy, so the first episodes explore around the best uniform point that fits instead of
 * uniformly over choices that are mostly over budget (and lowered) or worse at the same cost.
 */
export function bestUniformAction(ctx: AgentContext): number | null {
  const choices = ctx.actionChoices;
  if (!choices) return null;
  for (const b of [...ctx.bitChoices].sort((x, y) => y - x)) {
    if (!ctx.isFeasible(ctx.layers.map(() => ({ wBits: b, aBits: b })))) continue;
    const i = choices.findIndex((c) => c.wBits === b && c.aBits === b);
    if (i >= 0) return i;
  }
  return null;
}
