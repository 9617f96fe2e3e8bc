/**
 * Quantized Conv2D, DepthwiseConv2D and Dense layers.
 *
 * Each layer fake-quantizes its kernel (per output channel) and the activation that feeds it,
 * at `wBits` / `aBits` read from plain fields in call(): bits change at run time without
 * rebuilding or recompiling (tfjs layers run eagerly, so model.fit, optimizer.minimize and
 * tf.grad paths all see the new value at the next forward pass). 32 bits = no op.
 *
 * Activation ranges:
 * - `ste`: the clip value is a running estimate of the input's max (max|x| when signed): an
 *   exponential moving average (momentum 0.9) of the per-batch max, updated on every training
 *   forward pass, stored in the non-trainable weight `act_clip` (0 = not calibrated yet; an
 *   uncalibrated layer at inference uses the batch max).
 * - `lsq`: learned step `act_step` (and `w_step` for weights, one step per layer as in the
 *   paper), initialised from the data at the first forward pass and again whenever the layer's
 *   bits change.
 * - `pact`: learned clip `act_alpha`, initialised to the first batch max; L2 decay (1e-4) is
 *   added inside its gradient so every training path applies it. Weights use the symmetric STE.
 *
 * Input signedness (`signed`): unsigned after ReLU/ReLU6 and for the network input (datasets
 * are scaled to 0..1), signed otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import type { QuantizerKind } from './api.js';
import {
  FLOAT_BITS,
  activationRange,
  channelReduceAxes,
  customOp,
  fakeQuantize,
  lsqGradScale,
  lsqQuantize,
  lsqRange,
  pactQuantize,
  positiveLevels,
  quantizeWeightsSte,
  symmetricRange,
  weightCodes,
  type IntRange,
} from './quantizers.js';

export type QuantLayerKind = 'conv' | 'depthwise' | 'dense';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Kwargs = Parameters<tf.layers.Layer['call']>[1];
type Shape = (number | null)[];

/** A fixed activation grid (exported networks): scale * clamp(round(x/scale), qmin, qmax). */
export interface FixedActGrid {
  scale: number;
  qmin: number;
  qmax: number;
  /** Signed 1-bit: two levels ±scale. */
  binary: boolean;
}

export interface QuantArgs {
  wBits?: number;
  aBits?: number;
  quantizer?: QuantizerKind;
  /** Whether the input activation can be negative. */
  signed?: boolean;
  activation?: string;
  useBias?: boolean;
  /** Seed of the kernel initializer. */
  seed?: number;
  /** Exported network: the kernel already holds dequantized integers (no weight quantizer). */
  frozenWeights?: boolean;
  /** Exported network: the fixed input grid. */
  fixedAct?: FixedActGrid | null;
}

export const ACTIVATIONS: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  linear: (x) => x,
  relu: (x) => tf.relu(x),
  relu6: (x) => tf.relu6(x),
  sigmoid: (x) => tf.sigmoid(x),
  tanh: (x) => tf.tanh(x),
  softmax: (x) => tf.softmax(x),
  elu: (x) => tf.elu(x),
  selu: (x) => tf.selu(x),
  softplus: (x) => tf.softplus(x),
  softsign: (x) => tf.div(x, tf.add(tf.abs(x), 1)),
  swish: (x) => tf.mul(x, tf.sigmoid(x)),
};

const EMA_MOMENTUM = 0.9;
const PACT_DECAY = 1e-4;
const MIN_STEP = 1e-8;

/** Runs f, disposing every tensor it created; f returns plain data. */
function tidyValue<T>(f: () => T): T {
  tf.engine().startScope();
  try {
    return f();
  } finally {
    tf.engine().endScope();
  }
}

function readScalar(v: tf.LayerVariable): number {
  return tf.tidy(() => v.read().dataSync()[0]);
}

function writeScalar(v: tf.LayerVariable, value: number): void {
  tf.tidy(() => {
    v.write(tf.scalar(value).reshape(v.shape as number[]));
  });
}

/** What the quantizer of a layer's input uses at inference, for export. */
export interface ActExport {
  bits: number;
  signed: boolean;
  grid: FixedActGrid | null;
}

/** Behaviour shared by the three quantized layers. */
export abstract class QuantLayer extends tf.layers.Layer {
  wBits: number;
  aBits: number;
  readonly quantizer: QuantizerKind;
  readonly signed: boolean;
  readonly activation: string;
  readonly useBias: boolean;
  readonly seed: number;
  readonly frozenWeights: boolean;
  readonly fixedAct: FixedActGrid | null;
  /** When true the activation statistics update on inference passes too (calibration). */
  calibrating = false;
  /**
   * An inference-mode BatchNormalization that directly follows this layer and is folded into it
   * at inference (set by QuantNetwork, which turns that BatchNorm into an identity at inference).
   */
  foldedBn: tf.layers.Layer | null = null;
  /** Post-training calibration (quant/ptq.ts): called with the layer's float input on every forward pass while set. */
  statsHook: ((x: tf.Tensor) => void) | null = null;
  /**
   * Bias correction (quant/ptq.ts): the mean of each input channel over calibration data. While set,
   * the layer subtracts the mean output shift its quantized weights cause, (W_q - W) . mean, from its bias.
   */
  inputMean: tf.Tensor | null = null;
  /** When true, training passes leave the activation range as calibrated (fine-tune regime). */
  rangesFrozen = false;
  /**
   * When true (fine-tune regime, BatchNorm frozen), the training pass also folds the following
   * BatchNorm's moving statistics into the quantized kernel and bias, as inference does, and that
   * BatchNorm passes its input through.
   */
  foldBnInTraining = false;
  /** Optional: the kernel the training forward pass uses instead of quantizedKernel() (differentiable search's weight mix). */
  weightMix: ((layer: QuantLayer) => tf.Tensor) | null = null;
  abstract readonly kind: QuantLayerKind;

  protected kernel: tf.LayerVariable | null = null;
  protected bias: tf.LayerVariable | null = null;
  protected actClip: tf.LayerVariable | null = null;
  protected actStep: tf.LayerVariable | null = null;
  protected wStep: tf.LayerVariable | null = null;
  protected actAlpha: tf.LayerVariable | null = null;
  private actInitPending = false;
  private wInitPending = false;
  /** Elements per sample of the input (LSQ's N for activations). */
  protected inFeatures = 1;

  constructor(args: LayerArgs & QuantArgs) {
    super(args);
    this.wBits = args.wBits ?? FLOAT_BITS;
    this.aBits = args.aBits ?? FLOAT_BITS;
    this.quantizer = args.quantizer ?? 'ste';
    this.signed = args.signed ?? false;
    this.activation = args.activation ?? 'linear';
    if (!(this.activation in ACTIVATIONS)) throw new Error(`unsupported activation '${this.activation}'`);
    this.useBias = args.useBias ?? true;
    this.seed = args.seed ?? 1;
    this.frozenWeights = args.frozenWeights ?? false;
    this.fixedAct = args.fixedAct ?? null;
  }

  /** Sets the bits; LSQ steps re-initialise at the next forward pass when their bits change. */
  setLayerBits(wBits: number, aBits: number): void {
    if (wBits !== this.wBits) this.wInitPending = true;
    if (aBits !== this.aBits && this.quantizer === 'lsq' && this.actStep) {
      // keep the learned clip range (step * Qp) when both widths are quantized; else re-initialise from data
      const s = readScalar(this.actStep);
      if (s > 0 && aBits < FLOAT_BITS && this.aBits < FLOAT_BITS) {
        const before = lsqRange(this.aBits, this.signed).qmax || 1;
        const after = lsqRange(aBits, this.signed).qmax || 1;
        writeScalar(this.actStep, (s * before) / after);
      } else this.actInitPending = true;
    }
    this.wBits = wBits;
    this.aBits = aBits;
  }

  /** The float kernel variable (for inventory, export and tests). */
  getKernel(): tf.LayerVariable {
    if (!this.kernel) throw new Error(`layer ${this.name} is not built`);
    return this.kernel;
  }

  getBias(): tf.LayerVariable | null {
    return this.bias;
  }

  protected addQuantWeights(kernelShape: number[], outChannels: number, init: tf.serialization.Serializable): void {
    this.kernel = this.addWeight('kernel', kernelShape, 'float32', init as Parameters<tf.layers.Layer['addWeight']>[3]);
    if (this.useBias) this.bias = this.addWeight('bias', [outChannels], 'float32', tf.initializers.zeros());
    const zero = tf.initializers.zeros();
    if (this.quantizer === 'ste') this.actClip = this.addWeight('act_clip', [], 'float32', zero, undefined, false);
    if (this.quantizer === 'lsq') {
      this.actStep = this.addWeight('act_step', [], 'float32', zero, undefined, true);
      this.wStep = this.addWeight('w_step', [], 'float32', zero, undefined, true);
    }
    if (this.quantizer === 'pact') this.actAlpha = this.addWeight('act_alpha', [], 'float32', zero, undefined, true);
  }

  protected get reduceAxes(): number[] {
    return channelReduceAxes(this.kind, this.kind === 'dense' ? 2 : 4);
  }

  /** Weight integer range for the current wBits and quantizer. */
  weightRange(bits = this.wBits): IntRange {
    if (this.quantizer === 'lsq' && bits > 1) return lsqRange(bits, true);
    return symmetricRange(bits);
  }

  /** Shape of one-scale-per-output-channel that broadcasts against the kernel. */
  channelShape(): number[] {
    const ks = this.getKernel().shape as number[];
    if (this.kind === 'depthwise') return [1, 1, ks[2], ks[3]];
    if (this.kind === 'dense') return [1, ks[1]];
    return [1, 1, 1, ks[3]];
  }

  get outChannels(): number {
    return this.channelShape().reduce((a, b) => a * b, 1);
  }

  private initWeightStep(k: tf.Tensor): tf.Tensor {
    const step = this.wStep as tf.LayerVariable;
    if (this.wInitPending || readScalar(step) <= 0) {
      const range = this.weightRange();
      const m = tf.tidy(() => tf.mean(tf.abs(k)).dataSync()[0]);
      const init = this.wBits <= 1 ? m : (2 * m) / Math.sqrt(Math.max(1, range.qmax));
      writeScalar(step, Math.max(init, MIN_STEP));
      this.wInitPending = false;
    }
    return tf.maximum(step.read(), MIN_STEP);
  }

  /** The kernel as the training forward pass uses it (fake-quantized with its custom gradient). */
  quantizedKernel(): tf.Tensor {
    const k = this.getKernel().read();
    if (this.frozenWeights || this.wBits >= FLOAT_BITS) return k;
    if (this.quantizer !== 'lsq') return quantizeWeightsSte(k, this.wBits, this.reduceAxes);
    const range = this.weightRange();
    return lsqQuantize(k, this.initWeightStep(k), range, lsqGradScale(k.size, range), this.wBits <= 1);
  }

  /** Integer codes of the kernel and per-channel scales (shape channelShape()), wBits < 32. */
  weightCodeTensors(): { codes: tf.Tensor; scales: tf.Tensor } {
    const k = this.getKernel().read();
    if (this.quantizer !== 'lsq') return weightCodes(k, this.wBits, this.reduceAxes);
    const s = this.initWeightStep(k);
    const range = this.weightRange();
    const c = tf.clipByValue(tf.div(k, s), range.qmin, range.qmax);
    const codes = this.wBits <= 1 ? tf.step(c, -1) : tf.round(c);
    return {
      codes,
      scales: tf.broadcastTo(
        tf.reshape(
          s,
          this.channelShape().map(() => 1),
        ),
        this.channelShape(),
      ),
    };
  }

  /**
   * What inference runs: kernel = codes * (scale * k) and bias k * (bias - mean) + beta when an
   * inference-mode BatchNorm is folded in (k = gamma / sqrt(var + eps)), the same numbers the
   * exported integer network holds.
   */
  inferenceParams(): { kernel: tf.Tensor; bias: tf.Tensor | null; codes: tf.Tensor | null; scales: tf.Tensor | null } {
    const kv = this.getKernel().read();
    const bias = this.bias ? this.bias.read() : null;
    if (this.frozenWeights) return { kernel: kv, bias, codes: null, scales: null };
    const bn = this.foldedBn ? batchNormFactors(this.foldedBn) : null;
    const kShaped = bn ? tf.reshape(bn.k, this.channelShape()) : null;
    let kernel: tf.Tensor;
    let codes: tf.Tensor | null = null;
    let scales: tf.Tensor | null = null;
    if (this.wBits >= FLOAT_BITS) {
      kernel = kShaped ? tf.mul(kv, kShaped) : kv;
    } else {
      const c = this.weightCodeTensors();
      codes = c.codes;
      scales = kShaped ? tf.mul(c.scales, kShaped) : c.scales;
      kernel = tf.mul(codes, scales);
    }
    let b = bias;
    if (bn) b = tf.add(tf.mul(bn.k, bias ? tf.sub(bias, bn.mean) : tf.neg(bn.mean)), bn.beta);
    if (codes) b = this.correctBias(kernel, kShaped ? tf.mul(kv, kShaped) : kv, b);
    return { kernel, bias: b, codes, scales };
  }

  /** Training-pass kernel and bias with the following BatchNorm folded in (its moving statistics). */
  foldedTrainingParams(): { kernel: tf.Tensor; bias: tf.Tensor } {
    const kv = this.getKernel().read();
    const bn = batchNormFactors(this.foldedBn as tf.layers.Layer);
    const kShaped = tf.reshape(bn.k, this.channelShape());
    const q = this.quantizedKernel();
    const kernel = tf.mul(q, kShaped);
    const bias = this.bias ? this.bias.read() : null;
    const b = tf.add(tf.mul(bn.k, bias ? tf.sub(bias, bn.mean) : tf.neg(bn.mean)), bn.beta);
    return { kernel, bias: this.wBits < FLOAT_BITS ? (this.correctBias(kernel, tf.mul(kv, kShaped), b) ?? b) : b };
  }

  /** bias - (kernelQ - kernelF) . inputMean per output channel (the bias itself without inputMean). */
  protected correctBias(kernelQ: tf.Tensor, kernelF: tf.Tensor, bias: tf.Tensor | null): tf.Tensor | null {
    if (!this.inputMean) return bias;
    const delta = tf.sub(kernelQ, kernelF);
    const m = this.inputMean;
    let shift: tf.Tensor;
    if (this.kind === 'dense') shift = tf.sum(tf.mul(delta, tf.reshape(m, [-1, 1])), 0);
    else if (this.kind === 'conv') shift = tf.sum(tf.mul(delta, tf.reshape(m, [1, 1, -1, 1])), [0, 1, 2]);
    else shift = tf.reshape(tf.sum(tf.mul(delta, tf.reshape(m, [1, 1, -1, 1])), [0, 1]), [-1]);
    return bias ? tf.sub(bias, shift) : tf.neg(shift);
  }

  /** Forgets the activation range (recalibrated at the next calibration or training pass). */
  resetActivationRange(): void {
    const v = this.quantizer === 'ste' ? this.actClip : this.quantizer === 'pact' ? this.actAlpha : this.actStep;
    if (v) writeScalar(v, 0);
    if (this.quantizer === 'lsq') this.actInitPending = true;
  }

  /** Sets the activation clip range (max |x| for signed inputs) at the current aBits. */
  setActivationClip(clip: number): void {
    const c = Math.max(clip, MIN_STEP);
    if (this.quantizer === 'ste' && this.actClip) writeScalar(this.actClip, c);
    else if (this.quantizer === 'pact' && this.actAlpha) writeScalar(this.actAlpha, c);
    else if (this.quantizer === 'lsq' && this.actStep && this.aBits < FLOAT_BITS) {
      writeScalar(this.actStep, c / Math.max(1, lsqRange(this.aBits, this.signed).qmax));
      this.actInitPending = false;
    }
  }

  /** The fixed grid the input uses at inference (null at 32 bits). Uncalibrated STE: batch max of x. */
  inferenceGrid(x?: tf.Tensor): FixedActGrid | null {
    const bits = this.aBits;
    if (bits >= FLOAT_BITS) return null;
    if (this.fixedAct) return this.fixedAct;
    const binary = this.signed && bits <= 1;
    let range: IntRange;
    let scale: number;
    if (this.quantizer === 'lsq') {
      range = lsqRange(bits, this.signed);
      let s = readScalar(this.actStep as tf.LayerVariable);
      if (this.actInitPending || !(s > 0)) {
        if (!x) throw new Error(`layer ${this.name}: activation step not initialised (train or calibrate first)`);
        s = this.lsqActInit(x);
      }
      scale = Math.max(s, MIN_STEP);
    } else {
      range = activationRange(bits, this.signed);
      let c = readScalar((this.quantizer === 'ste' ? this.actClip : this.actAlpha) as tf.LayerVariable);
      if (!(c > 0)) {
        if (!x) throw new Error(`layer ${this.name}: activation range not calibrated (train or calibrate first)`);
        c = this.batchMax(x);
      }
      scale = Math.max(c, MIN_STEP) / positiveLevels(bits, this.signed);
    }
    return { scale, qmin: range.qmin, qmax: range.qmax, binary };
  }

  /** LSQ's step initialisation 2 * mean|x| / sqrt(Qp) (signed 1-bit: mean|x|). */
  private lsqActInit(x: tf.Tensor): number {
    const range = lsqRange(this.aBits, this.signed);
    const m = tf.tidy(() => tf.mean(tf.abs(x)).dataSync()[0]);
    const init = this.signed && this.aBits <= 1 ? m : (2 * m) / Math.sqrt(Math.max(1, range.qmax));
    return Math.max(init, MIN_STEP);
  }

  private batchMax(x: tf.Tensor): number {
    return tf.tidy(() => (this.signed ? tf.max(tf.abs(x)) : tf.max(x)).dataSync()[0]);
  }

  /** Updates the activation statistics from a batch (STE clip EMA; LSQ / PACT first-batch init). */
  updateActStats(x: tf.Tensor): void {
    const bits = this.aBits;
    if (bits >= FLOAT_BITS || this.fixedAct) return;
    if (this.quantizer === 'ste') {
      const v = this.actClip as tf.LayerVariable;
      const clip = readScalar(v);
      const m = this.batchMax(x);
      writeScalar(v, clip > 0 ? EMA_MOMENTUM * clip + (1 - EMA_MOMENTUM) * m : m);
    } else if (this.quantizer === 'lsq') {
      const step = this.actStep as tf.LayerVariable;
      if (this.actInitPending || readScalar(step) <= 0) {
        writeScalar(step, this.lsqActInit(x));
        this.actInitPending = false;
      }
    } else {
      const alpha = this.actAlpha as tf.LayerVariable;
      if (readScalar(alpha) <= 0) writeScalar(alpha, Math.max(this.batchMax(x), MIN_STEP));
    }
  }

  /** The input activation as the training forward pass sees it. */
  quantizeInput(x: tf.Tensor, training: boolean): tf.Tensor {
    if (this.statsHook) this.statsHook(x);
    const bits = this.aBits;
    if (bits >= FLOAT_BITS) return x;
    if ((training && !this.rangesFrozen) || this.calibrating) this.updateActStats(x);
    if (!training || this.quantizer === 'ste' || this.fixedAct) {
      const g = this.inferenceGrid(x) as FixedActGrid;
      return fakeQuantize(x, g.scale, g, g.binary);
    }
    if (this.quantizer === 'lsq') {
      const range = lsqRange(bits, this.signed);
      const step = tf.maximum((this.actStep as tf.LayerVariable).read(), MIN_STEP);
      return lsqQuantize(x, step, range, lsqGradScale(this.inFeatures, range), this.signed && bits <= 1);
    }
    return pactWithDecay(x, (this.actAlpha as tf.LayerVariable).read(), bits, this.signed);
  }

  /** The input grid at inference, for export (grid null at 32 bits). Throws if never calibrated. */
  exportActivation(): ActExport {
    return { bits: this.aBits, signed: this.signed, grid: this.inferenceGrid() };
  }

  /**
   * Integer codes and per-output-channel scales (BatchNorm folded in) at the current wBits,
   * the folded bias, and the float kernel at 32 bits. A channel whose folded scale is negative
   * on a symmetric grid has its codes and scale negated (same product, positive scale).
   */
  exportParams(): {
    codes: Float32Array | null;
    scales: Float32Array | null;
    kernel: Float32Array | null;
    bias: Float32Array | null;
    range: IntRange | null;
  } {
    return tidyValue(() => {
      const p = this.inferenceParams();
      const bias = p.bias ? Float32Array.from(p.bias.dataSync()) : null;
      if (!p.codes || !p.scales)
        return { codes: null, scales: null, kernel: Float32Array.from(p.kernel.dataSync()), bias, range: null };
      const codes = Float32Array.from(p.codes.dataSync());
      const scales = Float32Array.from(p.scales.dataSync());
      const range = this.weightRange();
      if (range.qmin === -range.qmax) {
        const C = scales.length;
        for (let c = 0; c < C; c++) {
          if (scales[c] >= 0) continue;
          scales[c] = -scales[c];
          for (let e = c; e < codes.length; e += C) codes[e] = -codes[e] + 0;
        }
      }
      return { codes, scales, kernel: null, bias, range };
    });
  }

  protected applyActivation(y: tf.Tensor): tf.Tensor {
    return ACTIVATIONS[this.activation](y);
  }

  protected fusedActivation(): 'linear' | 'relu' | null {
    return this.activation === 'linear' || this.activation === 'relu' ? this.activation : null;
  }

  /** Runs a fused op with the layer's activation fused in when the op can fuse it ('linear' otherwise, applied after). */
  protected withActivation(op: (activation: 'linear' | 'relu') => tf.Tensor): tf.Tensor {
    const fa = this.fusedActivation();
    const y = op(fa ?? 'linear');
    return fa ? y : this.applyActivation(y);
  }

  protected abstract forward(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | null): tf.Tensor;

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x0 = Array.isArray(inputs) ? inputs[0] : inputs;
      const training = kwargs['training'] === true;
      const x = this.quantizeInput(x0, training);
      if (training && this.foldBnInTraining && this.foldedBn && !this.weightMix) {
        const f = this.foldedTrainingParams();
        return this.forward(x, f.kernel, f.bias);
      }
      if (training) {
        const kernel = this.weightMix ? this.weightMix(this) : this.quantizedKernel();
        const bias = this.bias ? this.bias.read() : null;
        // bias correction (quant/ptq.ts) applies in training as at inference, so QAT trains the function it evaluates
        const corrected =
          this.inputMean && !this.weightMix && !this.frozenWeights && this.wBits < FLOAT_BITS
            ? this.correctBias(kernel, this.getKernel().read(), bias)
            : bias;
        return this.forward(x, kernel, corrected);
      }
      const p = this.inferenceParams();
      return this.forward(x, p.kernel, p.bias);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const base = super.getConfig();
    return {
      ...base,
      wBits: this.wBits,
      aBits: this.aBits,
      quantizer: this.quantizer,
      signed: this.signed,
      activation: this.activation,
      useBias: this.useBias,
      seed: this.seed,
      frozenWeights: this.frozenWeights,
      fixedAct: this.fixedAct ? { ...this.fixedAct } : null,
    };
  }
}

/** Inference-mode BatchNorm as y = k * x + (beta - k * mean), from the layer's weights. */
export function batchNormFactors(bn: tf.layers.Layer): { k: tf.Tensor; mean: tf.Tensor; beta: tf.Tensor } {
  const cfg = bn.getConfig();
  const w = bn.getWeights();
  let i = 0;
  const gamma = cfg['scale'] !== false ? w[i++] : null;
  const beta = cfg['center'] !== false ? w[i++] : null;
  const mean = w[i++];
  const variance = w[i++];
  const eps = typeof cfg['epsilon'] === 'number' ? cfg['epsilon'] : 1e-3;
  const inv = tf.div(1, tf.sqrt(tf.add(variance, eps)));
  return { k: gamma ? tf.mul(gamma, inv) : inv, mean, beta: beta ?? tf.zerosLike(mean) };
}

/** PACT with the L2 decay of alpha folded into alpha's gradient. */
function pactWithDecay(x: tf.Tensor, alpha: tf.Tensor, bits: number, signed: boolean): tf.Tensor {
  const decay = customOp(1, ([a], save) => {
    save([a]);
    return {
      value: tf.add(a, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.add(dy, tf.mul(saved[0], PACT_DECAY))],
    };
  });
  return pactQuantize(x, decay(alpha), bits, signed);
}

export type Padding = 'same' | 'valid';

function pair(v: number | number[] | undefined, d: number): [number, number] {
  if (v === undefined) return [d, d];
  if (typeof v === 'number') return [v, v];
  return [v[0] ?? d, v[1] ?? v[0] ?? d];
}

/** Output size of a convolution along one axis. */
export function convOutSize(inSize: number, k: number, stride: number, padding: Padding, dilation = 1): number {
  const ek = (k - 1) * dilation + 1;
  return padding === 'same' ? Math.ceil(inSize / stride) : Math.floor((inSize - ek) / stride) + 1;
}

/** The first input's shape (a layer called on a list of inputs uses the first). */
function firstShape(inputShape: tf.Shape | tf.Shape[]): Shape {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
}

/** Window geometry shared by QConv2D and QDepthwiseConv2D. */
interface SpatialGeometry {
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly padding: Padding;
  readonly dilationRate: [number, number];
}

type FusedSpatialOp = (args: {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  strides: [number, number];
  pad: Padding;
  dataFormat: 'NHWC';
  dilations: [number, number];
  bias?: tf.Tensor;
  activation: 'linear' | 'relu';
}) => tf.Tensor;

/** Output height and width of an NHWC input shape (null where the input's is unknown). */
function spatialOutSize(s: Shape, g: SpatialGeometry): [number | null, number | null] {
  const h = s[1] == null ? null : convOutSize(s[1], g.kernelSize[0], g.strides[0], g.padding, g.dilationRate[0]);
  const w = s[2] == null ? null : convOutSize(s[2], g.kernelSize[1], g.strides[1], g.padding, g.dilationRate[1]);
  return [h, w];
}

/** A fused NHWC convolution op called with the layer's geometry. */
function spatialForward(
  op: FusedSpatialOp,
  g: SpatialGeometry,
  x: tf.Tensor,
  w: tf.Tensor,
  bias: tf.Tensor | null,
  activation: 'linear' | 'relu',
): tf.Tensor {
  return op({
    x: x as tf.Tensor4D,
    filter: w as tf.Tensor4D,
    strides: g.strides,
    pad: g.padding,
    dataFormat: 'NHWC',
    dilations: g.dilationRate,
    bias: bias ?? undefined,
    activation,
  });
}

export interface QConv2DArgs extends QuantArgs {
  filters: number;
  kernelSize: number | number[];
  strides?: number | number[];
  padding?: Padding;
  dilationRate?: number | number[];
}

export class QConv2D extends QuantLayer {
  static className = 'QConv2D';
  readonly kind = 'conv' as const;
  readonly filters: number;
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly padding: Padding;
  readonly dilationRate: [number, number];

  constructor(args: LayerArgs & QConv2DArgs) {
    super(args);
    this.filters = args.filters;
    this.kernelSize = pair(args.kernelSize, 1);
    this.strides = pair(args.strides, 1);
    this.padding = args.padding ?? 'valid';
    this.dilationRate = pair(args.dilationRate, 1);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const s = firstShape(inputShape);
    const cin = s[3] as number;
    this.inFeatures = (s[1] ?? 1) * (s[2] ?? 1) * cin;
    const init = tf.initializers.heNormal({ seed: this.seed });
    this.addQuantWeights([this.kernelSize[0], this.kernelSize[1], cin, this.filters], this.filters, init);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = firstShape(inputShape);
    const [h, w] = spatialOutSize(s, this);
    return [s[0] ?? null, h, w, this.filters];
  }

  protected forward(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
    return this.withActivation((activation) => spatialForward(tf.fused.conv2d, this, x, w, bias, activation));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: this.kernelSize,
      strides: this.strides,
      padding: this.padding,
      dilationRate: this.dilationRate,
    };
  }
}

export interface QDepthwiseConv2DArgs extends QuantArgs {
  kernelSize: number | number[];
  depthMultiplier?: number;
  strides?: number | number[];
  padding?: Padding;
  dilationRate?: number | number[];
}

export class QDepthwiseConv2D extends QuantLayer {
  static className = 'QDepthwiseConv2D';
  readonly kind = 'depthwise' as const;
  readonly kernelSize: [number, number];
  readonly depthMultiplier: number;
  readonly strides: [number, number];
  readonly padding: Padding;
  readonly dilationRate: [number, number];

  constructor(args: LayerArgs & QDepthwiseConv2DArgs) {
    super(args);
    this.kernelSize = pair(args.kernelSize, 1);
    this.depthMultiplier = args.depthMultiplier ?? 1;
    this.strides = pair(args.strides, 1);
    this.padding = args.padding ?? 'valid';
    this.dilationRate = pair(args.dilationRate, 1);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const s = firstShape(inputShape);
    const cin = s[3] as number;
    this.inFeatures = (s[1] ?? 1) * (s[2] ?? 1) * cin;
    const [kh, kw] = this.kernelSize;
    // He normal on the per-channel fan-in kh*kw*mult (tfjs's fan computation would use kh*kw*cin)
    const init = tf.initializers.randomNormal({ mean: 0, stddev: Math.sqrt(2 / (kh * kw)), seed: this.seed });
    this.addQuantWeights([kh, kw, cin, this.depthMultiplier], cin * this.depthMultiplier, init);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = firstShape(inputShape);
    const [h, w] = spatialOutSize(s, this);
    return [s[0] ?? null, h, w, (s[3] as number) * this.depthMultiplier];
  }

  protected forward(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
    return this.withActivation((activation) => spatialForward(tf.fused.depthwiseConv2d, this, x, w, bias, activation));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      kernelSize: this.kernelSize,
      depthMultiplier: this.depthMultiplier,
      strides: this.strides,
      padding: this.padding,
      dilationRate: this.dilationRate,
    };
  }
}

export interface QDenseArgs extends QuantArgs {
  units: number;
}

export class QDense extends QuantLayer {
  static className = 'QDense';
  readonly kind = 'dense' as const;
  readonly units: number;

  constructor(args: LayerArgs & QDenseArgs) {
    super(args);
    this.units = args.units;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const s = firstShape(inputShape);
    const inDim = s[s.length - 1] as number;
    this.inFeatures = s.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
    const init = tf.initializers.heNormal({ seed: this.seed });
    this.addQuantWeights([inDim, this.units], this.units, init);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = firstShape(inputShape);
    return [...s.slice(0, -1), this.units];
  }

  protected forward(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
    const inDim = w.shape[0];
    const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inDim]);
    return this.withActivation((activation) => {
      const y = tf.fused.matMul({ a: x2, b: w, bias: bias ?? undefined, activation });
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.units]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units };
  }
}

tf.serialization.registerClass(QConv2D);
tf.serialization.registerClass(QDepthwiseConv2D);
tf.serialization.registerClass(QDense);

export function isQuantLayer(l: unknown): l is QuantLayer {
  return l instanceof QuantLayer;
}
