/**
 * A cache of evaluated allocations, for searches in which nothing trains the shared weights between
 * evaluations (qatSteps 0): evaluating an allocation twice then measures the same thing twice, so the second
 * time the recorded result is returned instead.
 *
 * The key holds everything that decides the result within a cell:
 *   - the allocation (every layer's wBits/aBits, after constraint handling);
 *   - the weights version: a fingerprint of every weight of the network at evaluation time (kernels, biases,
 *     BatchNorm statistics, activation clips and steps), taken after the bits are set, so an agent that trains
 *     the shared weights itself (e.g. ssps) or a quantizer whose state follows the bits never meets a stale entry;
 *   - the evaluation subset: the split, the number of samples, the dataset and its split seed;
 *   - the engine of the forward passes (onnxruntime or tfjs).
 * The cache lives in the cell and travels in its checkpoints, so a resumed cell hits exactly where the
 * uninterrupted one did.
 */
import type * as tf from '@tensorflow/tfjs';
import type { AccuracyResult } from '../../envs/types.js';
import type { BitConfig } from '../models/layer-info.js';

/** One cached evaluation, as a checkpoint stores it: [key, accuracy, loss]. */
export type EvalCacheEntry = [key: string, accuracy: number, loss: number];

/** The part of the key that does not change within a cell. */
export interface EvalSubset {
  dataset: string;
  seed: number;
  split: 'val';
  samples: number;
  engine: string;
}

/** `w/a` per layer, comma-separated. */
export function allocationKey(bits: BitConfig): string {
  return bits.map((b) => `${b.wBits}/${b.aBits}`).join(',');
}

/**
 * A 64-bit fingerprint (two FNV-1a-style 32-bit hashes with different primes, hex) of every weight of the
 * model: names, shapes and the bit patterns of the values.
 */
export function weightsFingerprint(model: tf.LayersModel): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  const mix = (x: number): void => {
    h1 = Math.imul(h1 ^ x, 0x01000193);
    h2 = Math.imul(h2 ^ x, 0x5bd1e995) ^ (h2 >>> 15);
  };
  for (const w of model.weights) {
    for (let i = 0; i < w.originalName.length; i++) mix(w.originalName.charCodeAt(i));
    for (const d of w.shape) mix(d ?? -1);
    const values = w.read().dataSync();
    const u32 =
      values instanceof Float32Array || values instanceof Int32Array
        ? new Uint32Array(values.buffer, values.byteOffset, values.length)
        : Uint32Array.from(values as ArrayLike<number>);
    for (let i = 0; i < u32.length; i++) mix(u32[i]);
  }
  return `${(h1 >>> 0).toString(16).padStart(8, '0')}${(h2 >>> 0).toString(16).padStart(8, '0')}`;
}

export class EvalCache {
  private readonly entries = new Map<string, AccuracyResult>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly subset: EvalSubset,
    saved: readonly EvalCacheEntry[] = [],
  ) {
    for (const [key, accuracy, loss] of saved) this.entries.set(key, { accuracy, loss });
  }

  /** The full key of an allocation at a weights version. */
  key(bits: BitConfig, weightsVersion: string): string {
    const s = this.subset;
    return `${allocationKey(bits)}|w${weightsVersion}|${s.dataset}:${s.seed}:${s.split}:${s.samples}|${s.engine}`;
  }

  get(key: string): AccuracyResult | null {
    const r = this.entries.get(key);
    if (r) this.hits++;
    else this.misses++;
    return r ? { accuracy: r.accuracy, loss: r.loss } : null;
  }

  /** Non-finite results are not kept (a checkpoint could not carry them): they are evaluated again. */
  set(key: string, r: AccuracyResult): void {
    if (!Number.isFinite(r.accuracy) || !Number.isFinite(r.loss)) return;
    this.entries.set(key, { accuracy: r.accuracy, loss: r.loss });
  }

  get size(): number {
    return this.entries.size;
  }

  /** For checkpoints, in insertion order. */
  save(): EvalCacheEntry[] {
    return [...this.entries].map(([key, r]) => [key, r.accuracy, r.loss]);
  }
}
