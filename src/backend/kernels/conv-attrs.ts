/**
 * Reads the attributes of the convolution-gradient kernels into one NHWC description
 * (shapes, strides, dilations, the padding tfjs resolves from 'same'/'valid'/number/explicit).
 */
import * as tf from '@tensorflow/tfjs';
import type { ConvDim } from './geometry.js';

export type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
export type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
type Shape4 = [number, number, number, number];

/** A 2-D convolution (regular or depthwise) described in NHWC terms. */
export interface ConvSpec {
  batch: number;
  inChannels: number;
  /** Output channels (inChannels * multiplier for depthwise). */
  outChannels: number;
  /** Filter shape: [kh, kw, inChannels, outChannels] or, depthwise, [kh, kw, inChannels, multiplier]. */
  filterShape: Shape4;
  /** Input shape, NHWC. */
  inShape: Shape4;
  /** Output (dy) shape, NHWC. */
  outShape: Shape4;
  rows: ConvDim;
  cols: ConvDim;
}

function pair(v: unknown, name: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'number') return [v[0], v[1]];
  if (v == null && name === 'dilations') return [1, 1];
  throw new Error(`invalid ${name} attribute: ${JSON.stringify(v)}`);
}

/** Explicit NCHW padding rewritten for NHWC; other paddings are layout-free. */
function padToNHWC(pad: Pad, channelsFirst: boolean): Pad {
  if (!channelsFirst || !Array.isArray(pad)) return pad;
  return [[0, 0], pad[2], pad[3], [0, 0]];
}

/** NCHW shape -> NHWC shape. */
export function shapeToNHWC(shape: readonly number[]): Shape4 {
  return [shape[0], shape[2], shape[3], shape[1]];
}

/**
 * Builds the NHWC description. `inShapeNHWC` and `filterShape` are the shapes of x and the filter;
 * `outShapeNHWC` is dy's shape, which must match what tfjs computes for the forward op.
 */
export function convSpec(opts: {
  kernelName: string;
  inShapeNHWC: Shape4;
  filterShape: Shape4;
  outShapeNHWC: Shape4;
  strides: unknown;
  dilations: unknown;
  pad: Pad;
  channelsFirst: boolean;
  dimRoundingMode: RoundingMode;
  depthwise: boolean;
}): ConvSpec {
  const strides = pair(opts.strides, 'strides');
  const dilations = pair(opts.dilations, 'dilations');
  const info = tf.backend_util.computeConv2DInfo(
    opts.inShapeNHWC,
    opts.filterShape,
    strides,
    dilations,
    padToNHWC(opts.pad, opts.channelsFirst),
    opts.dimRoundingMode,
    opts.depthwise,
    'channelsLast',
  );
  const [n, oh, ow, oc] = opts.outShapeNHWC;
  if (n !== info.batchSize || oh !== info.outHeight || ow !== info.outWidth || oc !== info.outChannels) {
    throw new Error(
      `${opts.kernelName}: dy has shape [${opts.outShapeNHWC.join(',')}] (NHWC) but the convolution ` +
        `produces [${info.batchSize},${info.outHeight},${info.outWidth},${info.outChannels}]`,
    );
  }
  return {
    batch: info.batchSize,
    inChannels: info.inChannels,
    outChannels: info.outChannels,
    filterShape: opts.filterShape,
    inShape: opts.inShapeNHWC,
    outShape: opts.outShapeNHWC,
    rows: {
      inSize: info.inHeight,
      outSize: info.outHeight,
      kernel: info.filterHeight,
      stride: info.strideHeight,
      dilation: info.dilationHeight,
      padBefore: info.padInfo.top,
    },
    cols: {
      inSize: info.inWidth,
      outSize: info.outWidth,
      kernel: info.filterWidth,
      stride: info.strideWidth,
      dilation: info.dilationWidth,
      padBefore: info.padInfo.left,
    },
  };
}

/** Attributes shared by Conv2DBackpropFilter and Conv2DBackpropInput. */
export type Conv2DGradAttrs = {
  strides: unknown;
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: RoundingMode;
};

/** Attributes shared by DepthwiseConv2dNativeBackpropFilter and DepthwiseConv2dNativeBackpropInput. */
export type DepthwiseGradAttrs = {
  strides: unknown;
  dilations: unknown;
  pad: Pad;
  dimRoundingMode?: RoundingMode;
};

/**
 * The spec of a Conv2D gradient kernel (no dilation). `inShape` (x's) and `outShape` (dy's) are in
 * the kernel's data format (NCHW when `a.dataFormat` says so); `filterShape` is [kh, kw, Ci, Co].
 */
export function conv2DGradSpec(
  kernelName: string,
  a: Conv2DGradAttrs,
  inShape: readonly number[],
  filterShape: Shape4,
  outShape: readonly number[],
): ConvSpec {
  const channelsFirst = a.dataFormat === 'NCHW';
  return convSpec({
    kernelName,
    inShapeNHWC: channelsFirst ? shapeToNHWC(inShape) : (inShape as Shape4),
    filterShape,
    outShapeNHWC: channelsFirst ? shapeToNHWC(outShape) : (outShape as Shape4),
    strides: a.strides,
    dilations: 1,
    pad: a.pad,
    channelsFirst,
    dimRoundingMode: a.dimRoundingMode,
    depthwise: false,
  });
}

/** The spec of a depthwise gradient kernel (NHWC shapes; `filterShape` is [kh, kw, C, M]). */
export function depthwiseGradSpec(
  kernelName: string,
  a: DepthwiseGradAttrs,
  inShape: Shape4,
  filterShape: Shape4,
  outShape: Shape4,
): ConvSpec {
  return convSpec({
    kernelName,
    inShapeNHWC: inShape,
    filterShape,
    outShapeNHWC: outShape,
    strides: a.strides,
    dilations: a.dilations,
    pad: a.pad,
    channelsFirst: false,
    dimRoundingMode: a.dimRoundingMode,
    depthwise: true,
  });
}

/** The explicit-padding attribute for a helper NHWC convolution. */
export function explicitPad(top: number, bottom: number, left: number, right: number): number[][] {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}
