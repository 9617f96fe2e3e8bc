/**
 * The masked categorical distribution every sampling agent draws from: softmax(logits / temperature) in float64
 * over the allowed actions (mask[k] = 0 gives probability 0), sampled with the agent's own seeded Rng so a seed
 * fixes every draw.
 */
import type { Rng } from '../../src/util/rng.js';

export class MaskedCategorical {
  /** Probabilities, summing to 1; masked actions are exactly 0. */
  readonly probs: Float64Array;

  /**
   * `mask` null allows every action. When nothing is allowed (or the logits overflow) the distribution is
   * uniform over all actions, so a caller that must refuse that case checks `allowedCount(mask)` first.
   */
  constructor(logits: ArrayLike<number>, mask: ArrayLike<number> | null = null, temperature = 1) {
    const n = logits.length;
    let max = -Infinity;
    for (let k = 0; k < n; k++) if (!mask || mask[k]) max = Math.max(max, logits[k]);
    const p = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) {
      if (mask && !mask[k]) continue;
      p[k] = Math.exp((logits[k] - max) / temperature);
      sum += p[k];
    }
    if (!(sum > 0)) p.fill(1 / n);
    else for (let k = 0; k < n; k++) p[k] = p[k] / sum;
    this.probs = p;
  }

  /** Inverse-CDF draw with one `rng.next()`; never returns an action of probability 0. */
  sample(rng: Rng): number {
    const p = this.probs;
    let u = rng.next();
    for (let k = 0; k < p.length; k++) {
      u -= p[k];
      if (u < 0 && p[k] > 0) return k;
    }
    for (let k = p.length - 1; k >= 0; k--) if (p[k] > 0) return k;
    return 0;
  }

  /** The most probable action (the first on ties). */
  mode(): number {
    const p = this.probs;
    let best = 0;
    for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
    return best;
  }

  logProb(action: number): number {
    return Math.log(this.probs[action]);
  }
}

/** Number of allowed actions under `mask` (null: all `n`). */
export function allowedCount(mask: ArrayLike<number> | null, n: number): number {
  if (!mask) return n;
  let c = 0;
  for (let k = 0; k < mask.length; k++) if (mask[k]) c++;
  return c;
}
