/**
 * Small tfjs layers for ONNX operators that tfjs-layers has no layer for. Each serialises its
 * settings (getConfig) and is registered, so checkpoints of imported networks save and load.
 *
 * - OnnxPad2D: constant padding of H and W by [top, bottom, left, right] with any value (MaxPool's
 *   implicit padding uses a very negative value).
 * - OnnxClip: clamp(x, min, max).
 * - OnnxHardSigmoid: clamp(alpha * x + beta, 0, 1).
 * - OnnxHardSwish: x * clamp(x / 6 + 0.5, 0, 1).
 * - ChannelSlice: channels [start, start + size) of an NHWC tensor (one group of a grouped conv).
 */
import * as tf from '@tensorflow/tfjs';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Kwargs = Parameters<tf.layers.Layer['call']>[1];

function one(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}

function shapeOf(s: tf.Shape | tf.Shape[]): (number | null)[] {
  return (Array.isArray(s[0]) ? s[0] : s) as (number | null)[];
}

/** The most negative float32 (MaxPool's padding value; -Infinity does not survive JSON). */
export const MAX_POOL_PAD = -3.4028234663852886e38;

export class OnnxPad2D extends tf.layers.Layer {
  static className = 'OnnxPad2D';
  readonly pads: [number, number, number, number];
  readonly value: number;

  constructor(args: LayerArgs & { pads: number[]; value?: number }) {
    super(args);
    this.pads = [args.pads[0] ?? 0, args.pads[1] ?? 0, args.pads[2] ?? 0, args.pads[3] ?? 0];
    this.value = args.value ?? 0;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = shapeOf(inputShape);
    const [t, b, l, r] = this.pads;
    return [s[0] ?? null, s[1] == null ? null : s[1] + t + b, s[2] == null ? null : s[2] + l + r, s[3] ?? null];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    const [t, b, l, r] = this.pads;
    return tf.tidy(() =>
      tf.pad(
        one(inputs),
        [
          [0, 0],
          [t, b],
          [l, r],
          [0, 0],
        ],
        this.value,
      ),
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), pads: [...this.pads], value: this.value };
  }
}

export class OnnxClip extends tf.layers.Layer {
  static className = 'OnnxClip';
  readonly min: number;
  readonly max: number;

  constructor(args: LayerArgs & { min: number; max: number }) {
    super(args);
    this.min = args.min;
    this.max = args.max;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => tf.clipByValue(one(inputs), this.min, this.max));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), min: this.min, max: this.max };
  }
}

export class OnnxHardSigmoid extends tf.layers.Layer {
  static className = 'OnnxHardSigmoid';
  readonly alpha: number;
  readonly beta: number;

  constructor(args: LayerArgs & { alpha?: number; beta?: number }) {
    super(args);
    this.alpha = args.alpha ?? 0.2;
    this.beta = args.beta ?? 0.5;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => tf.clipByValue(tf.add(tf.mul(one(inputs), this.alpha), this.beta), 0, 1));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), alpha: this.alpha, beta: this.beta };
  }
}

export class OnnxHardSwish extends tf.layers.Layer {
  static className = 'OnnxHardSwish';

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs);
      return tf.mul(x, tf.clipByValue(tf.add(tf.mul(x, 1 / 6), 0.5), 0, 1));
    });
  }
}

export class ChannelSlice extends tf.layers.Layer {
  static className = 'ChannelSlice';
  readonly start: number;
  readonly size: number;

  constructor(args: LayerArgs & { start: number; size: number }) {
    super(args);
    this.start = args.start;
    this.size = args.size;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = shapeOf(inputShape);
    return [...s.slice(0, -1), this.size];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs);
      const begin = x.shape.map((_, i) => (i === x.rank - 1 ? this.start : 0));
      const size = x.shape.map((d, i) => (i === x.rank - 1 ? this.size : d));
      return tf.slice(x, begin, size);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), start: this.start, size: this.size };
  }
}

tf.serialization.registerClass(OnnxPad2D);
tf.serialization.registerClass(OnnxClip);
tf.serialization.registerClass(OnnxHardSigmoid);
tf.serialization.registerClass(OnnxHardSwish);
tf.serialization.registerClass(ChannelSlice);
