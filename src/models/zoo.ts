/**
 * The model zoo: small networks that train on a CPU, each buildable for any input shape and
 * class count, with seeded initializers (the same seed builds the same weights).
 * Every Conv2D / DepthwiseConv2D / Dense is a quantized layer; BatchNorm follows convs directly
 * (foldable into the per-channel scale and bias at export).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { Rng } from '../util/rng.js';
import type { QuantizerKind } from '../quant/api.js';
import { QConv2D, QDense, QDepthwiseConv2D, type Padding } from '../quant/layers.js';

export interface ZooEntry {
  name: string;
  description: string;
  /** Default input shape [h, w, c]. */
  inputShape: [number, number, number];
  numClasses: number;
  /** The dataset it is meant for (a name `loadDataset` knows). */
  dataset: string;
  /** Smallest input height/width it can be built for. */
  minInputSize: number;
}

export const ZOO: Readonly<Record<string, ZooEntry>> = {
  lenet5: {
    name: 'lenet5',
    description: 'LeNet-5: conv 6@5x5 (same) - pool - conv 16@5x5 - pool - dense 120 - 84 - classes, ReLU',
    inputShape: [28, 28, 1],
    numClasses: 10,
    dataset: 'mnist',
    minInputSize: 12,
  },
  'cnn-small': {
    name: 'cnn-small',
    description: 'Four 3x3 convs (16, 32/2, 32, 64/2) with BatchNorm and ReLU, global average pool, dense',
    inputShape: [28, 28, 1],
    numClasses: 10,
    dataset: 'fashion-mnist',
    minInputSize: 4,
  },
  resnet8: {
    name: 'resnet8',
    description:
      'CIFAR-style ResNet-8: 16-32-64 channels, one basic block per stage, BN, residual Add, 1x1 projections',
    inputShape: [32, 32, 3],
    numClasses: 10,
    dataset: 'cifar10',
    minInputSize: 4,
  },
  resnet20: {
    name: 'resnet20',
    description:
      'CIFAR-style ResNet-20: 16-32-64 channels, three basic blocks per stage, BN, residual Add, 1x1 projections',
    inputShape: [32, 32, 3],
    numClasses: 10,
    dataset: 'cifar10',
    minInputSize: 4,
  },
  'mobilenet-tiny': {
    name: 'mobilenet-tiny',
    description:
      'MobileNet-style: 3x3 stem, five depthwise-separable blocks (3x3 depthwise + 1x1 pointwise), BN, ReLU6',
    inputShape: [32, 32, 3],
    numClasses: 10,
    dataset: 'cifar10',
    minInputSize: 4,
  },
};

export const ZOO_NAMES: readonly string[] = Object.keys(ZOO);

export interface ZooBuildOptions {
  inputShape: [number, number, number];
  numClasses: number;
  seed: number;
  quantizer?: QuantizerKind;
}

type Sym = tf.SymbolicTensor;

/** Builds layers with seeded initializers and unique, stable names. */
class Builder {
  private readonly rng: Rng;
  constructor(
    seed: number,
    private readonly quantizer: QuantizerKind,
  ) {
    this.rng = new Rng(seed);
  }

  conv(
    x: Sym,
    name: string,
    filters: number,
    k: number,
    stride = 1,
    padding: Padding = 'same',
    useBias = false,
    activation = 'linear',
  ): Sym {
    return new QConv2D({
      name,
      filters,
      kernelSize: k,
      strides: stride,
      padding,
      useBias,
      activation,
      seed: this.rng.seed(),
      quantizer: this.quantizer,
    }).apply(x) as Sym;
  }

  depthwise(x: Sym, name: string, k: number, stride = 1): Sym {
    return new QDepthwiseConv2D({
      name,
      kernelSize: k,
      strides: stride,
      padding: 'same',
      useBias: false,
      seed: this.rng.seed(),
      quantizer: this.quantizer,
    }).apply(x) as Sym;
  }

  dense(x: Sym, name: string, units: number, activation = 'linear'): Sym {
    return new QDense({
      name,
      units,
      activation,
      useBias: true,
      seed: this.rng.seed(),
      quantizer: this.quantizer,
    }).apply(x) as Sym;
  }

  bn(x: Sym, name: string): Sym {
    return tf.layers.batchNormalization({ name, axis: -1, momentum: 0.9, epsilon: 1e-3 }).apply(x) as Sym;
  }

  relu(x: Sym, name: string): Sym {
    return tf.layers.reLU({ name }).apply(x) as Sym;
  }

  relu6(x: Sym, name: string): Sym {
    return tf.layers.reLU({ name, maxValue: 6 }).apply(x) as Sym;
  }

  convBnRelu(x: Sym, name: string, filters: number, k: number, stride = 1): Sym {
    return this.relu(this.bn(this.conv(x, name, filters, k, stride), `${name}_bn`), `${name}_relu`);
  }
}

function lenet5(b: Builder, x: Sym, classes: number): Sym {
  let y = b.conv(x, 'conv1', 6, 5, 1, 'same', true, 'relu');
  y = tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2, strides: 2 }).apply(y) as Sym;
  y = b.conv(y, 'conv2', 16, 5, 1, 'valid', true, 'relu');
  y = tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2, strides: 2 }).apply(y) as Sym;
  y = tf.layers.flatten({ name: 'flatten' }).apply(y) as Sym;
  y = b.dense(y, 'fc1', 120, 'relu');
  y = b.dense(y, 'fc2', 84, 'relu');
  return b.dense(y, 'fc3', classes);
}

function cnnSmall(b: Builder, x: Sym, classes: number): Sym {
  let y = b.convBnRelu(x, 'conv1', 16, 3, 1);
  y = b.convBnRelu(y, 'conv2', 32, 3, 2);
  y = b.convBnRelu(y, 'conv3', 32, 3, 1);
  y = b.convBnRelu(y, 'conv4', 64, 3, 2);
  y = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(y) as Sym;
  return b.dense(y, 'fc', classes);
}

function resnet(b: Builder, x: Sym, classes: number, blocksPerStage: number): Sym {
  let y = b.convBnRelu(x, 'conv1', 16, 3, 1);
  let channels = 16;
  [16, 32, 64].forEach((filters, s) => {
    for (let i = 0; i < blocksPerStage; i++) {
      const stride = s > 0 && i === 0 ? 2 : 1;
      const p = `s${s + 1}b${i + 1}`;
      let r = b.convBnRelu(y, `${p}_conv1`, filters, 3, stride);
      r = b.bn(b.conv(r, `${p}_conv2`, filters, 3, 1), `${p}_conv2_bn`);
      let shortcut = y;
      if (stride !== 1 || channels !== filters)
        shortcut = b.bn(b.conv(y, `${p}_proj`, filters, 1, stride), `${p}_proj_bn`);
      y = tf.layers.add({ name: `${p}_add` }).apply([r, shortcut]) as Sym;
      y = b.relu(y, `${p}_relu`);
      channels = filters;
    }
  });
  y = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(y) as Sym;
  return b.dense(y, 'fc', classes);
}

function mobilenetTiny(b: Builder, x: Sym, classes: number): Sym {
  let y = b.relu6(b.bn(b.conv(x, 'conv1', 16, 3, 1), 'conv1_bn'), 'conv1_relu');
  const blocks: [number, number][] = [
    [32, 1],
    [64, 2],
    [64, 1],
    [128, 2],
    [128, 1],
  ];
  blocks.forEach(([filters, stride], i) => {
    const n = i + 1;
    y = b.relu6(b.bn(b.depthwise(y, `dw${n}`, 3, stride), `dw${n}_bn`), `dw${n}_relu`);
    y = b.relu6(b.bn(b.conv(y, `pw${n}`, filters, 1, 1), `pw${n}_bn`), `pw${n}_relu`);
  });
  y = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(y) as Sym;
  return b.dense(y, 'fc', classes);
}

/** Builds a zoo model (all quantized layers at 32 bits until setBits). */
export function buildZooModel(name: string, opts: ZooBuildOptions): tf.LayersModel {
  const entry = ZOO[name];
  if (!entry)
    throw new UserError(`unknown model '${name}'`, {
      field: '--model',
      expected: `one of ${ZOO_NAMES.join(', ')} or a path to a model.json`,
    });
  const [h, w, c] = opts.inputShape;
  for (const [i, v] of opts.inputShape.entries()) {
    if (!Number.isInteger(v) || v < 1)
      throw new UserError(`input shape [${opts.inputShape.join(', ')}] has an invalid dimension ${i}`, {
        field: 'inputShape',
        expected: 'positive integers [h, w, c]',
      });
  }
  if (h < entry.minInputSize || w < entry.minInputSize) {
    throw new UserError(`${name} needs inputs of at least ${entry.minInputSize}x${entry.minInputSize}, got ${h}x${w}`, {
      field: 'inputShape',
    });
  }
  if (!Number.isInteger(opts.numClasses) || opts.numClasses < 2)
    throw new UserError(`numClasses must be an integer >= 2, got ${opts.numClasses}`, { field: 'numClasses' });
  const b = new Builder(opts.seed, opts.quantizer ?? 'ste');
  const x = tf.input({ shape: [h, w, c], name: 'input' });
  let y: Sym;
  switch (name) {
    case 'lenet5':
      y = lenet5(b, x, opts.numClasses);
      break;
    case 'cnn-small':
      y = cnnSmall(b, x, opts.numClasses);
      break;
    case 'resnet8':
      y = resnet(b, x, opts.numClasses, 1);
      break;
    case 'resnet20':
      y = resnet(b, x, opts.numClasses, 3);
      break;
    default:
      y = mobilenetTiny(b, x, opts.numClasses);
  }
  return tf.model({ inputs: x, outputs: y, name });
}
