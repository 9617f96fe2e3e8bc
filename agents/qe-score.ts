/**
 * EMQ's training-free QE-Score (Sun et al., NeurIPS 2022): the entropy of a quantized network at a
 * calibrated Gaussian initialisation, computed from the layer inventory and a bit allocation alone
 * (no data, no training, no forward pass).
 *
 *   sd(sigma, b) = std of round(clip(z, -2^(b-1), 2^(b-1))), z ~ N(0, sigma^2)  (quantization step 1)
 *   h_l          = log sqrt(C k^2) + log(sd(sigma_a, a_l) * sd(sigma_w, w_l)) - log sigma_a
 *                  (C = input channels; depthwise: C = 1; sigma_w = 4, sigma_a = 5)
 *   stage s      = sum of h_l over every scored layer up to the end of stage s  +  log(C_out of stage s)
 *   QE-Score     = sum_s stageWeight_s * stage_s              (EMQ's default weights [0, 0, 1, 1, 6])
 *
 * sd(sigma, b) is computed exactly from the normal distribution (sum over the integer levels of
 * level^2 * P(level), with P from the normal CDF), not by Monte Carlo.
 *
 * Choices made where the paper and its code leave things open:
 * - Float layers (32 bits, and 16 bits, whose clip range 2^15 is never reached): the std of the rounded,
 *   unclipped Gaussian, sqrt(sigma^2 + ~1/12). The plain sigma would score a float layer *below* an
 *   8-bit one (rounding to step 1 adds ~1/12 of variance), so more bits would lower the score; with this
 *   choice sd(sigma, b) never decreases as b grows, and neither does the QE-Score.
 * - Stages: the inventory has no stage markers. A stage is a maximal run of consecutive scored layers
 *   with the same output resolution (h x w), so a stage begins at each layer that downsamples. When all
 *   scored layers share one resolution (e.g. an MLP), a stage is a maximal run with the same output
 *   channel count. This gives EMQ's 5 stages on ImageNet MobileNet/ResNet layouts (one per stride-2 step)
 *   and 3 on CIFAR ResNet-20 (stem + 32x32, 16x16, 8x8).
 * - Stage weights for networks with a number of stages other than 5: stage i of n takes EMQ's weight of
 *   stage ceil((i+1) * 5 / n) - 1, i.e. the 5-vector resampled onto n stages (n = 3 -> [0, 1, 6],
 *   n = 4 -> [0, 1, 1, 6]). Users can pass their own weights (non-negative, one per stage).
 * - Dense layers: EMQ scores the feature extractor up to global pooling, so dense layers are left out
 *   when the network has any convolution. In a network without convolutions (an MLP) dense layers are
 *   scored as 1x1 convolutions (C = input features).
 * - Branch convolutions (residual projections) are scored like main-path layers: the inventory does
 *   not tell branches apart.
 */
import { UserError } from '../src/errors.js';
import type { BitConfig, LayerInfo } from '../src/models/layer-info.js';

/** EMQ's initialisation std of weights. */
export const QE_SIGMA_W = 4;
/** EMQ's initialisation std of activations. */
export const QE_SIGMA_A = 5;
/** EMQ's stage weights for 5-stage networks. */
export const EMQ_STAGE_WEIGHTS: readonly number[] = [0, 0, 1, 1, 6];

const MAX_BITS_INDEX = 32;
/** Beyond this many standard deviations the normal mass (< e^-800) is zero in double precision. */
const TAIL_SIGMAS = 40;

const SQRT_PI = Math.sqrt(Math.PI);

/** Complementary error function to near double precision (series below 2, continued fraction above). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2) {
    // erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n (2x^2)^n x / (1*3*...*(2n+1)): all terms positive.
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    return 1 - (2 / SQRT_PI) * Math.exp(-x2) * sum;
  }
  if (x > 27) return 0;
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated backward.
  let f = x;
  for (let n = 120; n >= 1; n--) f = x + n / 2 / f;
  return Math.exp(-x * x) / SQRT_PI / f;
}

/** P(Z > x) for Z ~ N(0, 1). */
export function normalUpperTail(x: number): number {
  return 0.5 * erfc(x / Math.SQRT2);
}

/**
 * Exact std of round(clip(z, -2^(b-1), 2^(b-1))) with z ~ N(0, sigma^2) (EMQ's quantizer at step 1).
 * bits >= 16 (including 32 = float) give the unclipped rounded std (see the module comment).
 */
export function quantizedStd(sigma: number, bits: number): number {
  if (!(sigma > 0) || !Number.isFinite(sigma))
    throw new RangeError(`quantizedStd: sigma must be > 0 and finite, got ${sigma}`);
  if (!Number.isInteger(bits) || bits < 1)
    throw new RangeError(`quantizedStd: bits must be a positive integer, got ${bits}`);
  const lastLevel = Math.ceil(TAIL_SIGMAS * sigma) + 2;
  const clipLevel = bits >= 16 ? Infinity : 2 ** (bits - 1);
  // E[q^2] = 2 * sum_{k>=1} k^2 P(q = k); the mean is 0 by symmetry.
  let second = 0;
  const innerLast = Math.min(clipLevel - 1, lastLevel);
  for (let k = 1; k <= innerLast; k++) {
    const p = normalUpperTail((k - 0.5) / sigma) - normalUpperTail((k + 0.5) / sigma);
    second += k * k * p;
  }
  if (Number.isFinite(clipLevel)) second += clipLevel * clipLevel * normalUpperTail((clipLevel - 0.5) / sigma);
  return Math.sqrt(2 * second);
}

/** log sd(sigma, b) for b = 0..32 (index = bits; 0 unused), computed once per sigma. */
const logStdCache = new Map<number, Float64Array>();
function logStdTable(sigma: number): Float64Array {
  let table = logStdCache.get(sigma);
  if (!table) {
    table = new Float64Array(MAX_BITS_INDEX + 1);
    table[0] = NaN;
    // From 16 bits on the clip range is never reached: every width has the unclipped value.
    for (let b = 1; b <= MAX_BITS_INDEX; b++) table[b] = b > 16 ? table[16] : Math.log(quantizedStd(sigma, b));
    logStdCache.set(sigma, table);
  }
  return table;
}

export interface QeScoreOptions {
  /** Weight initialisation std (default 4). */
  sigmaW?: number;
  /** Activation initialisation std (default 5). */
  sigmaA?: number;
  /** One non-negative weight per stage (default: EMQ's [0,0,1,1,6] resampled to the stage count). */
  stageWeights?: readonly number[];
  /** Score dense layers (default: only when the network has no convolution). */
  includeDense?: boolean;
  /** Where the options came from, for error messages. */
  source?: { file?: string; field?: string };
}

export interface QeStage {
  /** Inventory indices of the layers in this stage, in order. */
  layers: number[];
  /** Output channels of the stage's last layer. */
  outChannels: number;
  /** Output resolution [h, w] of the stage. */
  outSize: [number, number];
  weight: number;
}

export interface QeScoreBreakdown {
  /** h_l per inventory layer (NaN for layers the score leaves out). */
  layerEntropy: number[];
  /** Stage scores before weighting. */
  stageScores: number[];
  total: number;
}

/** Which layers the score reads (see the module comment on dense layers). */
export function scoredLayers(layers: readonly LayerInfo[], includeDense?: boolean): number[] {
  const hasConv = layers.some((l) => l.kind !== 'dense');
  const dense = includeDense ?? !hasConv;
  return layers.filter((l) => l.kind !== 'dense' || dense).map((l) => l.index);
}

/** Splits the scored layers into stages (see the module comment). Returns inventory indices per stage. */
export function splitStages(layers: readonly LayerInfo[], scored: readonly number[]): number[][] {
  const list = scored.map((i) => layers[i]);
  if (list.length === 0) return [];
  const area = (l: LayerInfo): string => `${l.outSize[0]}x${l.outSize[1]}`;
  const oneResolution = list.every((l) => area(l) === area(list[0]));
  const key = oneResolution ? (l: LayerInfo): string => String(l.outChannels) : area;
  const stages: number[][] = [];
  let prev: string | null = null;
  for (let j = 0; j < list.length; j++) {
    const l = list[j];
    const k = key(l);
    if (k !== prev) stages.push([]);
    stages[stages.length - 1].push(scored[j]);
    prev = k;
  }
  return stages;
}

/** EMQ's [0,0,1,1,6] resampled onto `numStages` stages: stage i takes weight ceil((i+1)*5/n)-1. */
export function defaultStageWeights(numStages: number): number[] {
  const n = EMQ_STAGE_WEIGHTS.length;
  const out: number[] = [];
  for (let i = 0; i < numStages; i++) {
    const j = Math.min(n - 1, Math.max(0, Math.ceil(((i + 1) * n) / numStages) - 1));
    out.push(EMQ_STAGE_WEIGHTS[j]);
  }
  return out;
}

/**
 * QE-Score of allocations of one network. The score is additive over layers, so construction
 * precomputes each layer's weight (the sum of the weights of its stage and every later stage) and
 * scoring an allocation is a few table lookups per layer.
 */
export class QeScorer {
  readonly sigmaW: number;
  readonly sigmaA: number;
  readonly stages: readonly QeStage[];
  /** Inventory indices the score reads. */
  readonly scored: readonly number[];
  private readonly layers: readonly LayerInfo[];
  /** Per inventory layer: sum of the weights of its stage and all later stages (0 if not scored). */
  private readonly layerWeight: Float64Array;
  /** Per inventory layer: log sqrt(C k^2) - log sigma_a. */
  private readonly layerConst: Float64Array;
  private readonly logSdW: Float64Array;
  private readonly logSdA: Float64Array;
  /** Bit-independent part of the total. */
  private readonly constant: number;

  constructor(layers: readonly LayerInfo[], options: QeScoreOptions = {}) {
    const src = options.source ?? {};
    const field = (name: string): string => (src.field ? `${src.field}.${name}` : name);
    this.sigmaW = options.sigmaW ?? QE_SIGMA_W;
    this.sigmaA = options.sigmaA ?? QE_SIGMA_A;
    for (const [name, v] of [
      ['sigmaW', this.sigmaW],
      ['sigmaA', this.sigmaA],
    ] as const) {
      if (!(v > 0) || !Number.isFinite(v)) {
        throw new UserError(`invalid ${name} ${String(v)}`, {
          file: src.file,
          field: field(name),
          expected: 'a finite number > 0',
        });
      }
    }
    this.layers = layers;
    this.scored = scoredLayers(layers, options.includeDense);
    const groups = splitStages(layers, this.scored);
    const weights = options.stageWeights ? [...options.stageWeights] : defaultStageWeights(groups.length);
    if (weights.length !== groups.length || weights.some((w) => !(w >= 0) || !Number.isFinite(w))) {
      const desc = groups.map((g) => {
        const last = layers[g[g.length - 1]];
        return `${last.outSize[0]}x${last.outSize[1]}x${last.outChannels} (${g.length} layers)`;
      });
      throw new UserError(
        `stageWeights must hold one non-negative number per stage; this network has ${groups.length} stages`,
        {
          file: src.file,
          field: field('stageWeights'),
          expected: `${groups.length} finite numbers >= 0`,
          problems: [`got ${JSON.stringify(options.stageWeights)}`, `stages: ${desc.join(', ')}`],
        },
      );
    }
    this.stages = groups.map((g, s) => {
      const last = layers[g[g.length - 1]];
      return {
        layers: g,
        outChannels: last.outChannels,
        outSize: [last.outSize[0], last.outSize[1]],
        weight: weights[s],
      };
    });
    this.layerWeight = new Float64Array(layers.length);
    this.layerConst = new Float64Array(layers.length);
    let suffix = 0;
    let constant = 0;
    for (let s = this.stages.length - 1; s >= 0; s--) {
      const stage = this.stages[s];
      suffix += stage.weight;
      constant += stage.weight * Math.log(stage.outChannels);
      for (const i of stage.layers) this.layerWeight[i] = suffix;
    }
    for (const i of this.scored) {
      const l = layers[i];
      const c = l.kind === 'depthwise' ? 1 : l.inChannels;
      this.layerConst[i] = 0.5 * Math.log(c * l.kernel[0] * l.kernel[1]) - Math.log(this.sigmaA);
      constant += this.layerWeight[i] * this.layerConst[i];
    }
    this.constant = constant;
    this.logSdW = logStdTable(this.sigmaW);
    this.logSdA = logStdTable(this.sigmaA);
  }

  /** h_l of one layer at (wBits, aBits). */
  layerEntropy(layerIndex: number, wBits: number, aBits: number): number {
    return this.layerConst[layerIndex] + this.logSd(this.logSdA, aBits) + this.logSd(this.logSdW, wBits);
  }

  /** The QE-Score of an allocation (higher is better). */
  score(bits: BitConfig): number {
    this.checkLength(bits);
    let total = this.constant;
    for (const i of this.scored) {
      const wgt = this.layerWeight[i];
      if (wgt === 0) continue;
      const b = bits[i];
      total += wgt * (this.logSd(this.logSdA, b.aBits) + this.logSd(this.logSdW, b.wBits));
    }
    return total;
  }

  /** Per-layer entropies, stage scores and total (slower than score(); for reports and tests). */
  breakdown(bits: BitConfig): QeScoreBreakdown {
    this.checkLength(bits);
    const layerEntropy = this.layers.map(() => NaN);
    for (const i of this.scored) {
      const b = bits[i];
      layerEntropy[i] = this.layerEntropy(i, b.wBits, b.aBits);
    }
    const stageScores: number[] = [];
    let cumulative = 0;
    let total = 0;
    for (const stage of this.stages) {
      for (const i of stage.layers) cumulative += layerEntropy[i];
      const s = cumulative + Math.log(stage.outChannels);
      stageScores.push(s);
      total += stage.weight * s;
    }
    return { layerEntropy, stageScores, total };
  }

  private logSd(table: Float64Array, bits: number): number {
    const v = table[bits];
    if (v === undefined || !Number.isInteger(bits) || Number.isNaN(v)) {
      throw new RangeError(`QE-Score: bit-width ${bits} is not an integer in 1..32`);
    }
    return v;
  }

  private checkLength(bits: BitConfig): void {
    if (bits.length !== this.layers.length) {
      throw new RangeError(`QE-Score: allocation has ${bits.length} layers, the network ${this.layers.length}`);
    }
  }
}
