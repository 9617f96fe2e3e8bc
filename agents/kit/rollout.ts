/**
 * The rollout buffer of on-policy agents: whole episodes of acted steps, packed into flat episode-major arrays
 * padded to the longest episode (T), with `valid` = 0 on the padding so losses can weight it out.
 */

/** What a rollout step must hold to be packed. */
export interface RolloutStep {
  obs: readonly number[];
  /** 1 = allowed; null allows every action. */
  mask: readonly number[] | null;
  action: number;
}

export interface PackedRollout {
  /** Episodes, steps per (padded) episode, E * T. */
  E: number;
  T: number;
  N: number;
  /** [N, observationSize]. */
  obs: Float32Array;
  /** [N, numActions]; padding and unmasked steps allow everything. */
  masks: Float32Array;
  actions: Int32Array;
  /** 1 for a real step, 0 for padding. */
  valid: Float32Array;
}

export function packRollout(
  episodes: readonly (readonly RolloutStep[])[],
  observationSize: number,
  numActions: number,
): PackedRollout {
  const E = episodes.length;
  const T = Math.max(0, ...episodes.map((ep) => ep.length));
  const N = E * T;
  const obs = new Float32Array(N * observationSize);
  const masks = new Float32Array(N * numActions).fill(1);
  const actions = new Int32Array(N);
  const valid = new Float32Array(N);
  episodes.forEach((ep, e) =>
    ep.forEach((s, t) => {
      const i = e * T + t;
      obs.set(s.obs, i * observationSize);
      if (s.mask) masks.set(s.mask, i * numActions);
      actions[i] = s.action;
      valid[i] = 1;
    }),
  );
  return { E, T, N, obs, masks, actions, valid };
}

/** One number per step (per episode), laid out like `packRollout`'s arrays for the same episodes. */
export function packPerStep(perEpisode: readonly (readonly number[])[], T: number): Float32Array {
  const out = new Float32Array(perEpisode.length * T);
  perEpisode.forEach((xs, e) => xs.forEach((x, t) => (out[e * T + t] = x)));
  return out;
}
