/**
 * `npm run bench -- int-eval [--json] [--crops N] [--runs N] [--rounds R] [--allocs W8A8,W4A4,...] [--dump DIR]
 * [--no-speed] [--no-agreement]`:
 * onnxruntime's integer kernels against the fake-quantized (simulated) evaluation graph on nsfwjs's
 * real MobileNetV2 (224x224, tests/pretrained-fixture.ts) and label-free photo crops.
 * - Which nodes onnxruntime's optimized model holds for the integer graph (src/onnx/int-graph.ts):
 *   QLinearConv etc. against float Conv (--dump DIR keeps the optimized files).
 * - images/s at batch 8, 1 and 2 threads: float eval graph, simulated eval graph and integer graph at
 *   W8A8 and W4A4, and TF.js wasm W4A4, interleaved over R rounds (medians).
 * - Agreement with the simulated graph on the validation crops (default 1000 crops, 60% validation):
 *   top-1 agreement and max |logit diff| (before the softmax) in quantization steps of the logits
 *   (the classifier's input step carried through its weights, scale * max_j sum_i |W_ij|), at
 *   W8A8, W6A6, W4A4 and a mixed allocation; split into the int32 bias rounding (the integer graph
 *   with onnxruntime's QDQ fusions off: float convolutions on the same codes) and the integer kernels'
 *   requantization (fused against unfused).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { loadFolder } from '../src/data/folder.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import { writeGraph } from '../src/onnx/graph.js';
import { writeIntegerGraph } from '../src/onnx/int-graph.js';
import { decodeModel, encodeModel, type ModelProto } from '../src/onnx/proto.js';
import { createSession, loadOrt, type OrtModule, type OrtSession } from '../src/onnx/runtime.js';
import type { BitConfig } from '../src/quant/layer-info.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { feedTensor } from '../src/search/ort-evaluator.js';
import { calibrateNetwork } from '../src/train/trainer.js';
import { logitStep } from '../tests/logit-step.js';
import { photoCrops, pretrainedModel } from '../tests/pretrained-fixture.js';
import { flag, median, timeRuns } from './kit.js';

type Tensor = InstanceType<OrtModule['Tensor']>;

/** The graph without a final Softmax (its output renamed), so that outputs are logits. */
function withoutSoftmax(m: ModelProto): ModelProto {
  const g = m.graph ?? {};
  const nodes = [...(g.node ?? [])];
  const out = (g.output ?? [])[0]?.name;
  const i = nodes.findIndex((n) => (n.output ?? [])[0] === out);
  if (i < 0 || nodes[i].opType !== 'Softmax') return m;
  const src = (nodes[i].input ?? [])[0];
  nodes.splice(i, 1);
  for (const n of nodes) n.output = (n.output ?? []).map((o) => (o === src ? out : o));
  for (const n of nodes) n.input = (n.input ?? []).map((o) => (o === src ? out : o));
  return { ...m, graph: { ...g, node: nodes } };
}

interface Runner {
  session: OrtSession;
  feeds: Record<string, Tensor>;
  inputName: string;
  outputName: string;
}

async function simulated(ort: OrtModule, net: QuantNetwork, threads: number, logits = false): Promise<Runner> {
  const g = writeGraph(net, 'eval');
  const session = await createSession(ort, encodeModel(logits ? withoutSoftmax(g.model) : g.model), threads, {
    fakeQuant: true,
  });
  const feeds: Record<string, Tensor> = {};
  for (const f of g.feeds) feeds[f.name] = feedTensor(ort, f);
  return { session, feeds, inputName: g.inputName, outputName: g.outputName };
}

async function integer(
  ort: OrtModule,
  net: QuantNetwork,
  threads: number,
  logits = false,
  optimized?: string,
  fusions = true,
): Promise<Runner & { integerLayers: number }> {
  const g = writeIntegerGraph(net);
  const bytes = encodeModel(logits ? withoutSoftmax(g.model) : g.model);
  const session = !fusions
    ? await createSession(ort, bytes, threads, { fakeQuant: true })
    : optimized
      ? await ort.InferenceSession.create(bytes, {
          executionProviders: ['cpu'],
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          graphOptimizationLevel: 'all',
          optimizedModelFilePath: optimized,
        })
      : await createSession(ort, bytes, threads);
  return { session, feeds: {}, inputName: g.inputName, outputName: g.outputName, integerLayers: g.integerLayers };
}

async function run1(ort: OrtModule, r: Runner, x: Float32Array, n: number): Promise<Float32Array> {
  const out = await r.session.run({ ...r.feeds, [r.inputName]: new ort.Tensor('float32', x, [n, 224, 224, 3]) });
  return (out[r.outputName] as unknown as { data: Float32Array }).data;
}

async function outputs(ort: OrtModule, r: Runner, x: Float32Array, n: number, batch = 16): Promise<Float32Array> {
  const size = 224 * 224 * 3;
  const parts: Float32Array[] = [];
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    parts.push(await run1(ort, r, x.subarray(s * size, (s + m) * size), m));
  }
  const k = parts[0].length / Math.min(batch, n);
  const all = new Float32Array(n * k);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

function opCounts(file: string): Record<string, number> {
  const m = decodeModel(fs.readFileSync(file));
  const c: Record<string, number> = {};
  for (const n of m.graph?.node ?? []) c[n.opType] = (c[n.opType] ?? 0) + 1;
  return c;
}

function allocation(net: QuantNetwork, label: string): BitConfig {
  const m = /^W(\d+)A(\d+)$/.exec(label);
  if (m) return net.layers.map(() => ({ wBits: Number(m[1]), aBits: Number(m[2]) }));
  // mixed: a cycle of weight / activation widths from 2 to 8 bits
  return net.layers.map((_, i) => ({ wBits: [8, 4, 6, 3][i % 4], aBits: [6, 8, 4, 5][i % 4] }));
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  setLogLevel('warn');
  await initBackend('wasm');
  const ort = await loadOrt();
  const file = pretrainedModel('mobilenet_v2');
  const crops = Number(flag(argv, '--crops') ?? 1000);
  const dir = await photoCrops(crops, 17, 256);
  if (!ort || !file || !dir) {
    process.stdout.write('int-eval needs onnxruntime-node, the devDependency nsfwjs and python3-skimage photos\n');
    return;
  }
  const runs = Number(flag(argv, '--runs') ?? 3);
  const rounds = Number(flag(argv, '--rounds') ?? 3);
  const allocs = (flag(argv, '--allocs') ?? 'W8A8,W6A6,W4A4,mixed').split(',');
  const dump = flag(argv, '--dump');
  const skipSpeed = argv.includes('--no-speed');
  const net = await loadModel(file);
  const ds = await loadFolder({
    dataDir: dir,
    seed: 1,
    imageSize: [224, 224],
    preprocess: { resize: 'stretch', channels: 'rgb', range: '0-1', mean: null, std: null },
    valFraction: 0.6,
    testFraction: 0.1,
  });
  const val = ds.val;
  const n = val.labels.length;
  const xs = Float32Array.from(val.x.dataSync());
  const x8 = xs.slice(0, 8 * 224 * 224 * 3);
  const tmp = dump ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bitalloc-int-eval-'));
  fs.mkdirSync(tmp, { recursive: true });
  const result: Record<string, unknown> = { bench: 'int-eval', crops: n, loadAverage: os.loadavg()[0] };
  const lines: string[] = [];
  const say = (s: string): void => {
    lines.push(s);
    if (!json) process.stdout.write(s + '\n');
  };

  // ---- which nodes became integer kernels
  const structure: Record<string, unknown> = {};
  for (const label of ['W8A8', 'W4A4']) {
    net.setBits(allocation(net, label));
    calibrateNetwork(net, ds.train, { batches: 4 });
    const f = path.join(tmp, `int-${label}.optimized.onnx`);
    const r = await integer(ort, net, 1, false, f);
    await r.session.release();
    const ops = opCounts(f);
    structure[label] = { integerCandidates: r.integerLayers, quantizedLayers: net.qlayers.length, ops };
    say(
      `${label}: ${r.integerLayers} of ${net.qlayers.length} quantized layers have integer input and weights; optimized graph ops: ${Object.entries(
        ops,
      )
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
  }
  result['structure'] = structure;

  // ---- speed, batch 8
  if (!skipSpeed) {
    const times: Record<string, number[]> = {};
    const put = (k: string, v: number): void => void (times[k] ??= []).push(v);
    const time = async (f: () => Promise<unknown>): Promise<number> => 8 / (await timeRuns(runs, f));
    const xt = tf.tensor4d(x8, [8, 224, 224, 3]);
    for (let round = 0; round < rounds; round++) {
      for (const label of ['float', 'W8A8', 'W4A4']) {
        net.setBits(allocation(net, label === 'float' ? 'W32A32' : label));
        if (label !== 'float') calibrateNetwork(net, ds.train, { batches: 4 });
        if (label === 'W4A4') {
          put(
            'TF.js wasm W4A4 1 thr',
            await time(async () => {
              const y = net.model.predict(xt) as tf.Tensor;
              await y.data();
              y.dispose();
            }),
          );
        }
        for (const threads of [1, 2]) {
          const s = await simulated(ort, net, threads);
          put(`ort simulated ${label} ${threads} thr`, await time(() => run1(ort, s, x8, 8)));
          await s.session.release();
          if (label === 'float') continue;
          const i = await integer(ort, net, threads);
          put(`ort integer ${label} ${threads} thr`, await time(() => run1(ort, i, x8, 8)));
          await i.session.release();
        }
      }
    }
    xt.dispose();
    const speed: Record<string, number> = {};
    say(`images/s, batch 8, medians of ${rounds} interleaved rounds (each the median of ${runs} runs):`);
    for (const [k, v] of Object.entries(times)) {
      speed[k] = median(v);
      say(`  ${k}: ${median(v).toFixed(1)}  (rounds: ${v.map((t) => t.toFixed(1)).join(', ')})`);
    }
    const wasm = speed['TF.js wasm W4A4 1 thr'];
    for (const label of ['W8A8', 'W4A4'])
      for (const threads of [1, 2]) {
        const i = speed[`ort integer ${label} ${threads} thr`];
        const s = speed[`ort simulated ${label} ${threads} thr`];
        say(
          `  ${label} ${threads} thr: integer / simulated ${(i / s).toFixed(2)}x, integer / TF.js wasm W4A4 ${(i / wasm).toFixed(2)}x`,
        );
      }
    result['imagesPerSec'] = speed;
    result['rounds'] = times;
  }

  // ---- agreement with the simulated graph
  const agreement: Record<string, unknown> = {};
  for (const label of argv.includes('--no-agreement') ? [] : allocs) {
    net.setBits(allocation(net, label));
    calibrateNetwork(net, ds.train, { batches: 4 });
    const s = await simulated(ort, net, 2, true);
    const i = await integer(ort, net, 2, true);
    // the same integer graph with onnxruntime's QDQ fusions off: float convolutions on the same codes, so
    // the difference to the simulated graph is the int32 bias rounding alone
    const u = await integer(ort, net, 2, true, undefined, false);
    const a = await outputs(ort, s, xs, n);
    const b = await outputs(ort, i, xs, n);
    const v = await outputs(ort, u, xs, n);
    await s.session.release();
    await i.session.release();
    await u.session.release();
    const step = logitStep(net);
    const cmp = (p: Float32Array, q: Float32Array): { agree: number; maxDiff: number } => {
      const k = p.length / n;
      let agree = 0;
      let maxDiff = 0;
      for (let r = 0; r < n; r++) {
        let ba = 0;
        let bb = 0;
        for (let c = 0; c < k; c++) {
          if (p[r * k + c] > p[r * k + ba]) ba = c;
          if (q[r * k + c] > q[r * k + bb]) bb = c;
          maxDiff = Math.max(maxDiff, Math.abs(p[r * k + c] - q[r * k + c]));
        }
        if (ba === bb) agree++;
      }
      return { agree, maxDiff };
    };
    const fused = cmp(a, b);
    const biasOnly = cmp(a, v);
    const kernels = cmp(v, b);
    agreement[label] = {
      samples: n,
      logitStep: step,
      integer: { agree: fused.agree / n, maxLogitDiff: fused.maxDiff, steps: fused.maxDiff / step },
      int32BiasOnly: { agree: biasOnly.agree / n, maxLogitDiff: biasOnly.maxDiff, steps: biasOnly.maxDiff / step },
      kernelsVsInt32Bias: { agree: kernels.agree / n, maxLogitDiff: kernels.maxDiff, steps: kernels.maxDiff / step },
    };
    const text = (c: { agree: number; maxDiff: number }): string =>
      `top-1 agreement ${c.agree}/${n} (${((100 * c.agree) / n).toFixed(2)}%), max |logit diff| ${c.maxDiff.toExponential(3)} = ${(c.maxDiff / step).toFixed(3)} steps`;
    say(`${label} (one logit step ${step.toExponential(3)}):`);
    say(`  integer kernels vs simulated: ${text(fused)}`);
    say(`  int32 biases alone (fusions off) vs simulated: ${text(biasOnly)}`);
    say(`  integer kernels vs the same graph with fusions off (requantization alone): ${text(kernels)}`);
  }
  result['agreement'] = agreement;
  if (!dump) fs.rmSync(tmp, { recursive: true, force: true });
  net.model.dispose();
  if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
