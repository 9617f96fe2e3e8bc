/**
 * `npm run bench -- measure-cpu [--model resnet20] [--out FILE.csv] [--runs 200] [--rounds 10] [--warmup 30] [--threads 1]`
 *
 * Measures this machine's CPU per layer with onnxruntime-node, at float32 (W32A32) and int8 (W8A8):
 * the model's layer inventory goes to bench/cpu_layers.py (/usr/bin/python3 with the onnx package),
 * which builds one single-layer ONNX model per layer and precision (int8: QuantizeLinear ->
 * QLinearConv / QLinearMatMul -> DequantizeLinear). Each model runs in its own session (sequential
 * execution, `--threads` intra-op threads, all graph optimisations), `--warmup` untimed runs, then
 * `--runs` timed runs spread over `--rounds` rounds that visit every model in turn; the latency is the
 * median. It includes the runtime's call overhead and, for
 * int8, quantizing the input and dequantizing the output — what a layer costs in a QDQ model
 * (a per-layer overhead term in a fitted profile absorbs the call overhead).
 *
 * Writes a measurements CSV (layer,wBits,aBits,latencyMs; see docs/hardware-profiles.md) to --out
 * (default stdout), with # comment lines saying how, where and when it was measured.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory } from '../src/models/index.js';

type Ort = typeof import('onnxruntime-node');

function flag(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface IndexEntry {
  name: string;
  inputShape: number[];
  f32: string;
  int8: string;
}

export async function run(argv: string[]): Promise<void> {
  const model = flag(argv, 'model', 'resnet20');
  const out = flag(argv, 'out', '');
  const runs = Number(flag(argv, 'runs', '200'));
  const warmup = Number(flag(argv, 'warmup', '30'));
  const threads = Number(flag(argv, 'threads', '1'));
  const ort = createRequire(import.meta.url)('onnxruntime-node') as Ort;

  const work = mkdtempSync(join(tmpdir(), 'bitalloc-cpu-'));
  const layers = await loadInventory(model);
  const inventory = join(work, 'inventory.json');
  writeFileSync(inventory, JSON.stringify({ layers }));
  // the script sits next to this file in the source tree (dist/bench/.. -> bench/)
  const here = dirname(fileURLToPath(import.meta.url));
  const script = [join(here, 'cpu_layers.py'), resolve(here, '../../bench/cpu_layers.py')].find((f) => {
    try {
      readFileSync(f);
      return true;
    } catch {
      return false;
    }
  });
  if (!script) throw new Error('bench/cpu_layers.py not found');
  execFileSync('/usr/bin/python3', [script, inventory, work], { stdio: ['ignore', 'ignore', 'inherit'] });
  const index = (JSON.parse(readFileSync(join(work, 'index.json'), 'utf8')) as { layers: IndexEntry[] }).layers;

  // every session first, then rounds that time each model a few runs in turn: load from other
  // processes on the machine then falls on all layers alike instead of on whichever ran at the time
  const models: {
    name: string;
    bits: number;
    session: Awaited<ReturnType<Ort['InferenceSession']['create']>>;
    feeds: Record<string, InstanceType<Ort['Tensor']>>;
    times: number[];
  }[] = [];
  for (const entry of index) {
    for (const [file, bits] of [
      [entry.f32, 32],
      [entry.int8, 8],
    ] as const) {
      const session = await ort.InferenceSession.create(join(work, file), {
        executionMode: 'sequential',
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      const size = entry.inputShape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: size }, (_, i) => Math.sin(i) * 2);
      const feeds = { x: new ort.Tensor('float32', data, entry.inputShape) };
      for (let i = 0; i < warmup; i++) await session.run(feeds);
      models.push({ name: entry.name, bits, session, feeds, times: [] });
    }
  }
  const rounds = Math.max(1, Number(flag(argv, 'rounds', '10')));
  const perRound = Math.max(1, Math.ceil(runs / rounds));
  for (let r = 0; r < rounds; r++) {
    for (const m of models) {
      for (let i = 0; i < perRound; i++) {
        const t0 = process.hrtime.bigint();
        await m.session.run(m.feeds);
        m.times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
  }
  const rows: string[] = [];
  for (const m of models) {
    await m.session.release();
    const ms = median(m.times);
    rows.push(`${m.name},${m.bits},${m.bits},${ms.toPrecision(5)}`);
    process.stderr.write(
      `${m.name} W${m.bits}A${m.bits}: median ${ms.toPrecision(4)} ms over ${m.times.length} runs\n`,
    );
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const text = [
    `# ${model} per layer on ${cpu} (${cpus().length} logical cores), onnxruntime-node ${ort.env.versions?.common ?? ''}, ${threads} intra-op thread(s)`,
    `# median of ${rounds * perRound} timed runs (${rounds} interleaved rounds) after ${warmup} warm-up runs of each single-layer model; measured ${new Date().toISOString()}`,
    `# command: npm run bench -- measure-cpu --model ${model} --runs ${runs} --warmup ${warmup} --threads ${threads} --rounds ${rounds}${out ? ` --out ${out}` : ''}`,
    'layer,wBits,aBits,latencyMs',
    ...rows,
  ].join('\n');
  if (out) writeFileSync(out, text + '\n');
  else process.stdout.write(text + '\n');
}
