/**
 * Layer inventories for the simulator's tests and benchmark, built by hand (independent of the
 * model zoo): LeNet-5 with every number written out, plus builders for ResNet-20- and
 * MobileNet-shaped inventories and random layers.
 */
import type { LayerInfo, LayerKind } from '../src/models/layer-info.js';
import { Rng } from '../src/util/rng.js';

/**
 * LeNet-5 on 28x28x1, computed by hand:
 * conv1 6@5x5 valid: 28x28x1 -> 24x24x6, params 5*5*1*6 = 150, MACs 24*24*150 = 86,400; pool -> 12x12x6
 * conv2 16@5x5 valid: 12x12x6 -> 8x8x16, params 5*5*6*16 = 2,400, MACs 8*8*2,400 = 153,600; pool -> 4x4x16
 * fc1 256 -> 120 (30,720), fc2 120 -> 84 (10,080), fc3 84 -> 10 (840).
 */
export const LENET5: readonly LayerInfo[] = [
  {
    index: 0,
    name: 'conv1',
    kind: 'conv',
    inChannels: 1,
    outChannels: 6,
    kernel: [5, 5],
    stride: [1, 1],
    inSize: [28, 28],
    outSize: [24, 24],
    params: 150,
    biasParams: 6,
    macs: 86400,
    inElements: 784,
    outElements: 3456,
    liveElements: 0,
  },
  {
    index: 1,
    name: 'conv2',
    kind: 'conv',
    inChannels: 6,
    outChannels: 16,
    kernel: [5, 5],
    stride: [1, 1],
    inSize: [12, 12],
    outSize: [8, 8],
    params: 2400,
    biasParams: 16,
    macs: 153600,
    inElements: 864,
    outElements: 1024,
    liveElements: 0,
  },
  {
    index: 2,
    name: 'fc1',
    kind: 'dense',
    inChannels: 256,
    outChannels: 120,
    kernel: [1, 1],
    stride: [0, 0],
    inSize: [1, 1],
    outSize: [1, 1],
    params: 30720,
    biasParams: 120,
    macs: 30720,
    inElements: 256,
    outElements: 120,
    liveElements: 0,
  },
  {
    index: 3,
    name: 'fc2',
    kind: 'dense',
    inChannels: 120,
    outChannels: 84,
    kernel: [1, 1],
    stride: [0, 0],
    inSize: [1, 1],
    outSize: [1, 1],
    params: 10080,
    biasParams: 84,
    macs: 10080,
    inElements: 120,
    outElements: 84,
    liveElements: 0,
  },
  {
    index: 4,
    name: 'fc3',
    kind: 'dense',
    inChannels: 84,
    outChannels: 10,
    kernel: [1, 1],
    stride: [0, 0],
    inSize: [1, 1],
    outSize: [1, 1],
    params: 840,
    biasParams: 10,
    macs: 840,
    inElements: 84,
    outElements: 10,
    liveElements: 0,
  },
];

/** A convolution ('same' padding unless told) or depthwise convolution on an h x w x cin input. */
export function convLayer(
  index: number,
  name: string,
  inSize: [number, number],
  inChannels: number,
  outChannels: number,
  k: number,
  stride: number,
  opts: { kind?: Exclude<LayerKind, 'dense'>; padding?: 'same' | 'valid'; liveElements?: number } = {},
): LayerInfo {
  const kind = opts.kind ?? 'conv';
  const out = (n: number) =>
    (opts.padding ?? 'same') === 'same' ? Math.ceil(n / stride) : Math.floor((n - k) / stride) + 1;
  const outSize: [number, number] = [out(inSize[0]), out(inSize[1])];
  const params = kind === 'depthwise' ? k * k * inChannels : k * k * inChannels * outChannels;
  return {
    index,
    name,
    kind,
    inChannels,
    outChannels,
    kernel: [k, k],
    stride: [stride, stride],
    inSize,
    outSize,
    params,
    biasParams: outChannels,
    macs: outSize[0] * outSize[1] * params,
    inElements: inSize[0] * inSize[1] * inChannels,
    outElements: outSize[0] * outSize[1] * outChannels,
    liveElements: opts.liveElements ?? 0,
  };
}

export function denseLayer(index: number, name: string, inFeatures: number, outFeatures: number): LayerInfo {
  return {
    index,
    name,
    kind: 'dense',
    inChannels: inFeatures,
    outChannels: outFeatures,
    kernel: [1, 1],
    stride: [0, 0],
    inSize: [1, 1],
    outSize: [1, 1],
    params: inFeatures * outFeatures,
    biasParams: outFeatures,
    macs: inFeatures * outFeatures,
    inElements: inFeatures,
    outElements: outFeatures,
    liveElements: 0,
  };
}

/** ResNet-20 for 32x32x3 (He et al., identity shortcuts): 19 convolutions + the classifier = 20 layers. */
export function resnet20Layers(): LayerInfo[] {
  const layers: LayerInfo[] = [];
  const add = (l: Omit<LayerInfo, 'index'> & { index?: number }) => layers.push({ ...l, index: layers.length });
  add(convLayer(0, 'conv1', [32, 32], 3, 16, 3, 1));
  let size = 32;
  let ch = 16;
  for (const [stage, width] of [
    [1, 16],
    [2, 32],
    [3, 64],
  ] as const) {
    for (let b = 0; b < 3; b++) {
      const stride = stage > 1 && b === 0 ? 2 : 1;
      const blockIn = size * size * ch;
      const a = convLayer(0, `stage${stage}.block${b}.conv1`, [size, size], ch, width, 3, stride);
      add(a);
      size = a.outSize[0];
      add(convLayer(0, `stage${stage}.block${b}.conv2`, [size, size], width, width, 3, 1, { liveElements: blockIn }));
      ch = width;
    }
  }
  add(denseLayer(0, 'fc', 64, 10));
  return layers;
}

/** A small MobileNet-v1-shaped network for 32x32x3: stem, six depthwise/pointwise pairs, classifier (14 layers). */
export function mobilenetTinyLayers(): LayerInfo[] {
  const layers: LayerInfo[] = [];
  const add = (l: LayerInfo) => layers.push({ ...l, index: layers.length });
  add(convLayer(0, 'stem', [32, 32], 3, 8, 3, 2));
  let size = 16;
  let ch = 8;
  const plan: [number, number][] = [
    [16, 1],
    [32, 2],
    [32, 1],
    [64, 2],
    [64, 1],
    [128, 2],
  ];
  plan.forEach(([out, stride], i) => {
    const dw = convLayer(0, `dw${i + 1}`, [size, size], ch, ch, 3, stride, { kind: 'depthwise' });
    add(dw);
    size = dw.outSize[0];
    add(convLayer(0, `pw${i + 1}`, [size, size], ch, out, 1, 1));
    ch = out;
  });
  add(denseLayer(0, 'fc', ch, 10));
  return layers;
}

/** Random layers of every kind, with sizes from tiny to large, for property tests. */
export function randomLayers(seed: number, count: number): LayerInfo[] {
  const rng = new Rng(seed);
  const pick = <T>(xs: readonly T[]) => rng.pick(xs);
  const layers: LayerInfo[] = [];
  for (let i = 0; i < count; i++) {
    const kind = pick(['conv', 'depthwise', 'dense'] as const);
    if (kind === 'dense') {
      layers.push(denseLayer(i, `dense${i}`, pick([1, 10, 84, 256, 1024, 4096]), pick([1, 10, 120, 1000])));
      continue;
    }
    const size = pick([1, 2, 7, 14, 32, 56, 112]);
    const cin = pick([1, 3, 16, 64, 256]);
    const cout = kind === 'depthwise' ? cin : pick([1, 8, 32, 128, 512]);
    const k = pick([1, 3, 5, 7]);
    const layer = convLayer(i, `${kind}${i}`, [size, size], cin, cout, Math.min(k, size), pick([1, 2]), {
      kind,
      liveElements: rng.next() < 0.3 ? size * size * cin : 0,
    });
    layers.push(layer);
  }
  return layers;
}
