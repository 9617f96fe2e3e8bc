/**
 * `npm run bench -- eval [--json] [--runs N]`: images/s of inference on torchvision's MobileNetV2 at
 * 224x224 (self-initialised weights, exported by Debian's PyTorch into a temporary folder, imported
 * by bitalloc), at batch 8 and 64, float and fake-quantized W4A4:
 * - TF.js wasm (bitalloc's network; batch 64 does not fit the wasm heap and is reported as such),
 * - onnxruntime-node at 1 and 2 threads on bitalloc's evaluation graph as the search builds it
 *   (fake-quantized weights as constants, quantizer parameters as inputs; the session build time is
 *   printed, paid once per weight state), the same graph with weights as inputs (batch 8, 2 threads,
 *   for comparison), and the float file PyTorch wrote,
 * - PyTorch CPU (bench/torch_eval.py, float, 1 and 2 threads) when /usr/bin/python3 has torch.
 * Medians of N timed runs after one warm-up run. The three headline figures (--json: wasmImagesPerSec,
 * W4A4 batch 8; ortImagesPerSec, W4A4, 2 threads, batch 8; torchImagesPerSec, float, 2 threads,
 * batch 8, or null) are measured first, interleaved over --rounds R (default 3) rounds, and are the
 * medians of the rounds, so that their ratios hold when the machine's load changes; then every row.
 * Targets: fake-quantized onnxruntime >= 10x TF.js wasm and >= 1.5x PyTorch CPU.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import { writeGraph } from '../src/onnx/graph.js';
import { encodeModel } from '../src/onnx/proto.js';
import { createSession, loadOrt, ortVersion, type OrtModule } from '../src/onnx/runtime.js';
import { feedTensor } from '../src/search/ort-evaluator.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { median, timeRuns } from './kit.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(process.cwd(), 'bench', 'torch_eval.py');

interface Row {
  engine: string;
  precision: 'float' | 'W4A4';
  batch: number;
  threads: number;
  imagesPerSec: number | null;
  note?: string;
  /** onnxruntime eval graph: seconds to write the graph and build its session (once per weight state in a search). */
  buildSeconds?: number;
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

function hasTorch(): boolean {
  try {
    execFileSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function images(n: number): Float32Array {
  const x = new Float32Array(n * 224 * 224 * 3);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) >>> 0) / 4294967296;
  return x;
}

async function ortRow(
  ort: OrtModule,
  net: QuantNetwork,
  precision: 'float' | 'W4A4',
  batch: number,
  threads: number,
  runs: number,
  weightInputs = false,
): Promise<Row> {
  // as the search's evaluator builds it: fake-quantized weights as constants, quantizer parameters as inputs
  const t0 = performance.now();
  const g = writeGraph(net, 'eval', {}, { weightInputs });
  const session = await createSession(ort, encodeModel(g.model), threads, { fakeQuant: true });
  const buildSeconds = (performance.now() - t0) / 1000;
  const feeds: Record<string, InstanceType<OrtModule['Tensor']>> = {};
  for (const f of g.feeds) feeds[f.name] = feedTensor(ort, f);
  feeds[g.inputName] = new ort.Tensor('float32', images(batch), [batch, 224, 224, 3]);
  const sec = await timeRuns(runs, async () => {
    await session.run(feeds);
  });
  await session.release();
  return {
    engine: weightInputs ? 'onnxruntime (eval graph, weights as inputs)' : 'onnxruntime (bitalloc eval graph)',
    precision,
    batch,
    threads,
    imagesPerSec: batch / sec,
    buildSeconds,
  };
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const runs = Number(flag(argv, 'runs') ?? 3);
  setLogLevel('warn');
  await initBackend('wasm');
  const ort = await loadOrt();
  const torch = hasTorch();
  const rows: Row[] = [];
  const headline = { wasm: [] as number[], ort: [] as number[], torch: [] as number[] };
  if (!torch) {
    const msg = `bench eval needs ${PYTHON} with torch and torchvision to build MobileNetV2 (apt-get install python3-torch python3-torchvision)`;
    if (json)
      process.stdout.write(
        JSON.stringify({
          bench: 'eval',
          error: msg,
          wasmImagesPerSec: null,
          ortImagesPerSec: null,
          torchImagesPerSec: null,
        }) + '\n',
      );
    else process.stdout.write(msg + '\n');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bitalloc-bench-eval-'));
  try {
    const file = path.join(dir, 'mobilenet_v2.onnx');
    execFileSync(PYTHON, [SCRIPT, 'export', file], { stdio: ['ignore', 'ignore', 'ignore'] });
    const net = await loadModel(file);
    const calib = tf.tensor4d(images(8), [8, 224, 224, 3]);
    net.setBits(net.layers.map(() => ({ wBits: 4, aBits: 4 })));
    net.calibrate(calib);
    calib.dispose();
    // the headline figures, interleaved round by round so that their ratios hold on a loaded machine
    const rounds = Number(flag(argv, 'rounds') ?? 3);
    net.setBits(net.layers.map(() => ({ wBits: 4, aBits: 4 })));
    const x8 = tf.tensor4d(images(8), [8, 224, 224, 3]);
    const g = writeGraph(net, 'eval');
    const hs = ort ? await createSession(ort, encodeModel(g.model), 2, { fakeQuant: true }) : null;
    const hf: Record<string, InstanceType<OrtModule['Tensor']>> = {};
    if (ort) {
      for (const f of g.feeds) hf[f.name] = feedTensor(ort, f);
      hf[g.inputName] = new ort.Tensor('float32', images(8), [8, 224, 224, 3]);
    }
    for (let r = 0; r < rounds; r++) {
      const w = await timeRuns(1, async () => {
        const y = net.model.predict(x8) as tf.Tensor;
        await y.data();
        y.dispose();
      });
      headline.wasm.push(8 / w);
      if (hs) headline.ort.push(8 / (await timeRuns(runs, async () => void (await hs.run(hf)))));
      const out = execFileSync(PYTHON, [SCRIPT, 'time', '8', '2', '3'], { encoding: 'utf8' });
      headline.torch.push(
        (JSON.parse(out.trim().split('\n').pop() as string) as { imagesPerSec: number }).imagesPerSec,
      );
    }
    x8.dispose();
    if (hs) await hs.release();
    for (const precision of ['float', 'W4A4'] as const) {
      const bits = precision === 'float' ? 32 : 4;
      net.setBits(net.layers.map(() => ({ wBits: bits, aBits: bits })));
      // TF.js wasm: one thread; batch 64 at 224x224 exceeds the wasm heap
      const x = tf.tensor4d(images(8), [8, 224, 224, 3]);
      const sec = await timeRuns(runs, async () => {
        const y = net.model.predict(x) as tf.Tensor;
        await y.data();
        y.dispose();
      });
      x.dispose();
      rows.push({ engine: 'TF.js wasm (bitalloc)', precision, batch: 8, threads: 1, imagesPerSec: 8 / sec });
      rows.push({
        engine: 'TF.js wasm (bitalloc)',
        precision,
        batch: 64,
        threads: 1,
        imagesPerSec: null,
        note: 'exceeds the 4 GB wasm heap',
      });
      if (ort) {
        for (const batch of [8, 64])
          for (const threads of [1, 2]) rows.push(await ortRow(ort, net, precision, batch, threads, runs));
        // the previous design, for comparison: weights as graph inputs (no pre-packing)
        rows.push(await ortRow(ort, net, precision, 8, 2, runs, true));
      }
    }
    if (ort) {
      // the float file as PyTorch wrote it (constant weights: onnxruntime's best case for float)
      for (const batch of [8, 64])
        for (const threads of [1, 2]) {
          const session = await createSession(ort, fs.readFileSync(file), threads);
          const input = new ort.Tensor('float32', images(batch), [batch, 3, 224, 224]);
          const sec = await timeRuns(runs, async () => {
            await session.run({ input });
          });
          await session.release();
          rows.push({
            engine: 'onnxruntime (PyTorch float file)',
            precision: 'float',
            batch,
            threads,
            imagesPerSec: batch / sec,
          });
        }
    }
    for (const batch of [8, 64])
      for (const threads of [1, 2]) {
        const out = execFileSync(
          PYTHON,
          [SCRIPT, 'time', String(batch), String(threads), String(batch === 8 ? 4 : 8)],
          { encoding: 'utf8' },
        );
        const r = JSON.parse(out.trim().split('\n').pop() as string) as { imagesPerSec: number };
        rows.push({ engine: 'PyTorch CPU', precision: 'float', batch, threads, imagesPerSec: r.imagesPerSec });
      }
    net.model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const med = (xs: number[]): number | null => (xs.length ? median(xs) : null);
  const wasm = med(headline.wasm);
  const ortQ = med(headline.ort);
  const torchF = med(headline.torch);
  const result = {
    bench: 'eval',
    model: 'torchvision mobilenet_v2 224x224 (self-initialised weights)',
    onnxruntime: await ortVersion(),
    cpus: os.cpus().length,
    loadAverage: os.loadavg()[0],
    wasmImagesPerSec: wasm,
    ortImagesPerSec: ortQ,
    torchImagesPerSec: torchF,
    ortOverWasm: wasm && ortQ ? ortQ / wasm : null,
    ortOverTorch: torchF && ortQ ? ortQ / torchF : null,
    targets: 'ortImagesPerSec >= 10x wasmImagesPerSec and >= 1.5x torchImagesPerSec',
    /** Per round (interleaved): TF.js wasm W4A4 b8, onnxruntime W4A4 b8 2 threads, PyTorch float b8 2 threads. */
    headline,
    rows,
  };
  if (json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    `MobileNetV2 224x224, images/s (median of ${runs} runs; load average ${result.loadAverage.toFixed(1)} on ${result.cpus} cores)\n`,
  );
  process.stdout.write(
    '| engine | precision | batch | threads | images/s | session build s |\n|---|---|---|---|---|---|\n',
  );
  for (const r of rows)
    process.stdout.write(
      `| ${r.engine} | ${r.precision} | ${r.batch} | ${r.threads} | ${r.imagesPerSec === null ? (r.note ?? 'n/a') : r.imagesPerSec.toFixed(1)} | ${r.buildSeconds === undefined ? '' : r.buildSeconds.toFixed(2)} |\n`,
    );
  const ratio = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
  const f1 = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(1));
  process.stdout.write(
    `headline (batch 8, medians of ${headline.wasm.length} interleaved rounds): TF.js wasm W4A4 ${f1(wasm)}, onnxruntime W4A4 2 threads ${f1(ortQ)}, PyTorch float 2 threads ${f1(torchF)} images/s\n`,
  );
  process.stdout.write(
    `fake-quantized W4A4 batch 8, onnxruntime 2 threads vs TF.js wasm: ${ratio(result.ortOverWasm)} (target 10x); vs PyTorch float 2 threads: ${ratio(result.ortOverTorch)} (target 1.5x)\n`,
  );
}
