#!/usr/bin/python3
"""PyTorch CPU anchor of `npm run bench -- qat`: training samples/s of the zoo architectures, float and
QAT W4A4 with straight-through fake quantizers (symmetric per-output-channel weights, activations clipped
to an EMA of the batch maximum, like bitalloc's 'ste' quantizer), Adam, random data, on 1 thread and on
--threads threads. Float and QAT rounds alternate, like the bitalloc bench. Prints one JSON object.

usage: /usr/bin/python3 bench/torch_qat.py [--models a,b] [--batch 64] [--steps 5] [--rounds 3] [--threads N]
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

QAT_BITS = 4
EMA = 0.9


def fake_quant_weight(w, bits):
    qmax = 2 ** (bits - 1) - 1
    dims = tuple(range(1, w.dim()))
    scale = w.detach().abs().amax(dim=dims, keepdim=True).clamp_min(1e-8) / qmax
    q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return w + (q - w).detach()


class QuantWrap(nn.Module):
    """Fake-quantizes the input activation and the weight of a Conv2d / Linear (STE)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.bits = 32
        self.register_buffer('clip', torch.zeros(()))

    def forward(self, x):
        m = self.inner
        if self.bits < 32:
            if self.training:
                with torch.no_grad():
                    bmax = x.detach().abs().max()
                    self.clip.copy_(torch.where(self.clip > 0, EMA * self.clip + (1 - EMA) * bmax, bmax))
            qmax = 2 ** self.bits - 1
            scale = self.clip.clamp_min(1e-8) / qmax
            xc = torch.minimum(torch.relu(x), self.clip)
            x = xc + (torch.round(xc / scale) * scale - xc).detach()
            w = fake_quant_weight(m.weight, self.bits)
        else:
            w = m.weight
        if isinstance(m, nn.Conv2d):
            return F.conv2d(x, w, m.bias, m.stride, m.padding, m.dilation, m.groups)
        return F.linear(x, w, m.bias)


def wrap_all(module):
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(module, name, QuantWrap(child))
        else:
            wrap_all(child)
    return module


def set_bits(model, bits):
    for m in model.modules():
        if isinstance(m, QuantWrap):
            m.bits = bits


def conv_bn_relu(cin, cout, k, stride, relu6=False, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1),
            nn.ReLU6() if relu6 else nn.ReLU()]


def lenet5(c, classes):
    return nn.Sequential(nn.Conv2d(c, 6, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))


def cnn_small(c, classes):
    return nn.Sequential(*conv_bn_relu(c, 16, 3, 1), *conv_bn_relu(16, 32, 3, 2), *conv_bn_relu(32, 32, 3, 1), *conv_bn_relu(32, 64, 3, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(*conv_bn_relu(cin, cout, 3, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-3))

    def forward(self, x):
        return F.relu(self.body(x) + (self.proj(x) if self.proj is not None else x))


def resnet(c, classes, blocks):
    layers = conv_bn_relu(c, 16, 3, 1)
    cin = 16
    for s, f in enumerate([16, 32, 64]):
        for i in range(blocks):
            layers.append(Block(cin, f, 2 if s > 0 and i == 0 else 1))
            cin = f
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))


def mobilenet_tiny(c, classes):
    layers = conv_bn_relu(c, 16, 3, 1, relu6=True)
    cin = 16
    for f, s in [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]:
        layers += conv_bn_relu(cin, cin, 3, s, relu6=True, groups=cin)
        layers += conv_bn_relu(cin, f, 1, 1, relu6=True)
        cin = f
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes))


def mobilenet_v2(c, classes):
    import torchvision
    return torchvision.models.mobilenet_v2(num_classes=classes)


# name: (builder, input [c, h, w], default batch)
MODELS = {
    'lenet5': (lenet5, (1, 28, 28), None),
    'cnn-small': (cnn_small, (1, 28, 28), None),
    'resnet8': (lambda c, k: resnet(c, k, 1), (3, 32, 32), None),
    'resnet20': (lambda c, k: resnet(c, k, 3), (3, 32, 32), None),
    'mobilenet-tiny': (mobilenet_tiny, (3, 32, 32), None),
    'mobilenetv2-224': (mobilenet_v2, (3, 224, 224), 8),
}


def measure(name, batch, steps, rounds, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    build, shape, default_batch = MODELS[name]
    b = default_batch or batch
    model = wrap_all(build(shape[0], 10))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(b * 4, *shape)
    y = torch.randint(0, 10, (b * 4,))
    cursor = [0]

    def step():
        i = cursor[0] % 4
        cursor[0] += 1
        xb, yb = x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    for bits in (32, QAT_BITS):  # warm-up
        set_bits(model, bits)
        step()
        step()
    t = {32: 0.0, QAT_BITS: 0.0}
    n = {32: 0, QAT_BITS: 0}
    for _ in range(rounds):
        for bits in (32, QAT_BITS):
            set_bits(model, bits)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            t[bits] += time.perf_counter() - t0
            n[bits] += steps * b
    return {'batchSize': b, 'floatSamplesPerSec': n[32] / t[32], 'qatSamplesPerSec': n[QAT_BITS] / t[QAT_BITS]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--models', default='lenet5,cnn-small,resnet20,mobilenet-tiny')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    rows = []
    for name in a.models.split(','):
        if name not in MODELS:
            raise SystemExit(f'unknown model {name!r} ({", ".join(MODELS)})')
        # one thread and all threads back to back, so load hits both alike
        one = measure(name, a.batch, a.steps, a.rounds, 1)
        many = measure(name, a.batch, a.steps, a.rounds, a.threads) if a.threads > 1 else one
        rows.append({'model': name, 'batchSize': one['batchSize'], 'threads': a.threads,
                     'floatSamplesPerSec1': one['floatSamplesPerSec'], 'qatSamplesPerSec1': one['qatSamplesPerSec'],
                     'floatSamplesPerSec': many['floatSamplesPerSec'], 'qatSamplesPerSec': many['qatSamplesPerSec']})
    print(json.dumps({'torch': torch.__version__, 'qatBits': f'W{QAT_BITS}A{QAT_BITS}', 'results': rows}))


if __name__ == '__main__':
    main()
