/**
 * Gymnasium-style spaces: `Discrete(n)` for the bit choices, `Box(low, high)` for observations.
 * Both sample with a caller-supplied seeded Rng and check membership.
 */
import type { Rng } from '../src/util/rng.js';
import type { Space } from './types.js';

/** The integers 0..n-1. */
export class Discrete implements Space<number> {
  readonly n: number;
  constructor(n: number) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Discrete space needs a positive integer size, got ${n}`);
    this.n = n;
  }

  sample(rng: Rng): number {
    return rng.int(this.n);
  }

  /** Uniform over the indices where `mask[i] = 1`; over all of them when the mask is null or all zero. */
  sampleMasked(rng: Rng, mask: Uint8Array | null): number {
    if (!mask) return this.sample(rng);
    const allowed: number[] = [];
    for (let i = 0; i < this.n; i++) if (mask[i]) allowed.push(i);
    return allowed.length > 0 ? rng.pick(allowed) : this.sample(rng);
  }

  contains(x: number): boolean {
    return Number.isInteger(x) && x >= 0 && x < this.n;
  }
}

/** A box of `low.length` float32 values, each in [low[i], high[i]]. */
export class Box implements Space<Float32Array> {
  readonly low: Float32Array;
  readonly high: Float32Array;
  readonly shape: readonly [number];

  constructor(low: ArrayLike<number>, high: ArrayLike<number>) {
    if (low.length !== high.length)
      throw new RangeError(`Box bounds differ in length: ${low.length} vs ${high.length}`);
    this.low = Float32Array.from(low);
    this.high = Float32Array.from(high);
    for (let i = 0; i < this.low.length; i++) {
      const lo = this.low[i];
      const hi = this.high[i];
      if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi) {
        throw new RangeError(`Box bound ${i} is not a finite interval: [${lo}, ${hi}]`);
      }
    }
    this.shape = [this.low.length];
  }

  sample(rng: Rng): Float32Array {
    const out = new Float32Array(this.low.length);
    for (let i = 0; i < out.length; i++) {
      const lo = this.low[i];
      const hi = this.high[i];
      out[i] = Math.min(hi, lo + rng.next() * (hi - lo));
    }
    return out;
  }

  contains(x: Float32Array): boolean {
    if (!(x instanceof Float32Array) || x.length !== this.low.length) return false;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (!(v >= this.low[i] && v <= this.high[i])) return false;
    }
    return true;
  }
}
