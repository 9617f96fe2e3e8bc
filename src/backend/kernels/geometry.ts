/**
 * Index arithmetic that turns convolution gradients into forward convolutions (pure functions).
 *
 * One spatial dimension of a forward convolution, in the padded coordinate t = h + padBefore:
 *   y[o] = sum_i xpad[o*stride + i*dilation] * w[i],   o in [0, outSize), i in [0, kernel)
 *
 * Filter gradient: dW[i] = sum_o xpad[i*dilation + o*stride] * dy[o] is itself a forward
 * correlation of x with dy as the filter, with stride and dilation swapped (`filterGradPads`).
 *
 * Input gradient: dx[t] = sum_{o*stride + i*dilation = t} dy[o] * w[i]. Split t by its phase
 * r = t mod stride: t = q*stride + r. The taps that reach phase r are the i with
 * i*dilation = r (mod stride); for those, o = q - e_i with e_i = (i*dilation - r) / stride, an
 * arithmetic progression. So each phase is a stride-1 correlation of dy with the flipped
 * sub-filter w[taps reversed], dilation dilation/gcd(stride, dilation) (`inputGradPhases`).
 * Stride 1 gives a single phase: the usual "full correlation with the flipped filter".
 */

/** One spatial dimension of a forward convolution. */
export interface ConvDim {
  /** Input size (unpadded). */
  inSize: number;
  /** Output size. */
  outSize: number;
  kernel: number;
  stride: number;
  dilation: number;
  /** Padding before the first input element (top or left). */
  padBefore: number;
}

/** Padding (>= 0) and cropping (>= 0) of one dimension of the input of a helper convolution. */
export interface PadCrop {
  padBefore: number;
  padAfter: number;
  cropBefore: number;
  cropAfter: number;
  /** Input length left after cropping (<= 0 means the result is all zeros). */
  keptLength: number;
}

function padCrop(length: number, padBefore: number, padAfter: number): PadCrop {
  const cropBefore = Math.max(0, -padBefore);
  const cropAfter = Math.max(0, -padAfter);
  return {
    padBefore: Math.max(0, padBefore),
    padAfter: Math.max(0, padAfter),
    cropBefore,
    cropAfter,
    keptLength: length - cropBefore - cropAfter,
  };
}

/**
 * Filter gradient as a correlation over x (one dimension): run a convolution on x with the
 * returned padding, stride = `d.dilation`, dilation = `d.stride` and a filter of `d.outSize`
 * taps (dy); its output has exactly `d.kernel` elements.
 */
export function filterGradPads(d: ConvDim): PadCrop {
  const extent = readExtent(d);
  return padCrop(d.inSize, d.padBefore, extent - d.inSize - d.padBefore);
}

/** Length of the padded input (from t = 0) that the convolution reads: (outSize-1)*stride + (kernel-1)*dilation + 1. */
export function readExtent(d: ConvDim): number {
  return (d.outSize - 1) * d.stride + (d.kernel - 1) * d.dilation + 1;
}

/** True when the convolution reads only unpadded input: no padding before, and its read extent fits in the input. */
export function readsUnpadded(d: ConvDim): boolean {
  return d.padBefore === 0 && readExtent(d) <= d.inSize;
}

/** One phase of the input gradient along one dimension. */
export interface Phase1D {
  /** Phase r in [0, stride). */
  phase: number;
  /** Original filter taps reaching this phase, ascending (may be empty). */
  taps: number[];
  /** Dilation of the helper correlation over dy. */
  dilation: number;
  /** Padding/cropping of dy for the helper correlation (meaningless when taps is empty). */
  pads: PadCrop;
}

export interface InputGradPlan1D {
  phases: Phase1D[];
  /** First q (in t = q*stride + r) computed by every phase. */
  qFirst: number;
  /** Number of q computed by every phase (output length of each helper correlation). */
  qCount: number;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Plans the per-phase helper correlations of the input gradient along one dimension. */
export function inputGradPhases(d: ConvDim): InputGradPlan1D {
  const s = d.stride;
  const qFirst = Math.floor(d.padBefore / s);
  const qCount = Math.floor((d.padBefore + d.inSize - 1) / s) + 1 - qFirst;
  const subDilation = d.dilation / gcd(s, d.dilation);
  const phases: Phase1D[] = [];
  for (let r = 0; r < s; r++) {
    const taps: number[] = [];
    for (let i = 0; i < d.kernel; i++) if ((i * d.dilation) % s === r) taps.push(i);
    let pads: PadCrop = { padBefore: 0, padAfter: 0, cropBefore: 0, cropAfter: 0, keptLength: 0 };
    if (taps.length > 0) {
      const lastTap = taps[taps.length - 1];
      const eMax = (lastTap * d.dilation - r) / s;
      const padBefore = eMax - qFirst;
      const paddedLength = qCount + (taps.length - 1) * subDilation;
      pads = padCrop(d.outSize, padBefore, paddedLength - d.outSize - padBefore);
    }
    phases.push({ phase: r, taps, dilation: subDilation, pads });
  }
  return { phases, qFirst, qCount };
}
