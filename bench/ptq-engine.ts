/**
 * `npm run bench -- ptq-engine [--json] [--crops N] [--rounds R] [--method M]`: wall time of post-training
 * calibration (postTrainingQuantize: activation ranges by M, default mse, and bias correction) of nsfwjs's
 * MobileNetV2 (224x224, tests/pretrained-fixture.ts) over N training photo crops (default 200, batches of
 * 16), with the layer statistics from tfjs forward passes and from onnxruntime (src/onnx/calibration.ts),
 * in the same process, rounds interleaved (default 3; medians). Also the largest relative difference
 * between the two engines' clips and bias-correction means.
 */
import { initBackend } from '../src/backend/index.js';
import { disposeDataset, loadDataset } from '../src/data/index.js';
import { readModelPreprocess } from '../src/data/preprocess.js';
import { setLogLevel } from '../src/log.js';
import { uniformBits } from '../src/models/layer-info.js';
import { loadUserModel } from '../src/models/user-model.js';
import { lastOrtStatsTiming, ortStatsCollector } from '../src/onnx/calibration.js';
import { loadOrt } from '../src/onnx/runtime.js';
import { collectLayerStats, postTrainingQuantize, type CalibrationMethod, type PtqResult } from '../src/quant/ptq.js';
import { photoCrops, pretrainedModel } from '../tests/pretrained-fixture.js';
import { flag } from './kit.js';

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const crops = Number(flag(argv, '--crops') ?? 200);
  const rounds = Number(flag(argv, '--rounds') ?? 3);
  const method = (flag(argv, '--method') ?? 'mse') as CalibrationMethod;
  setLogLevel('warn');
  await initBackend('wasm');
  const file = pretrainedModel('mobilenet_v2');
  // train = 80% of the crops: make `crops` of them training crops
  const total = Math.ceil(crops / 0.8);
  const dir = await photoCrops(total, 17, 256);
  if (!file || !dir || !(await loadOrt())) {
    process.stdout.write(
      'ptq-engine needs the devDependency nsfwjs, Debian python3-skimage photos and onnxruntime-node\n',
    );
    return;
  }
  const pre = readModelPreprocess(file) ?? undefined;
  const net = await loadUserModel(file);
  const shape = net.model.inputs[0]?.shape as number[];
  const ds = await loadDataset('folder', {
    dataDir: dir,
    seed: 1,
    imageSize: [shape[1], shape[2]],
    ...(pre ? { preprocess: pre } : {}),
    valFraction: 0.1,
    testFraction: 0.1,
  });
  const n = ds.train.labels.length;
  const batchSize = 16;
  const batches = Math.ceil(n / batchSize);
  net.setBits(uniformBits(net.layers, 8, 8));
  const times: Record<'tfjs' | 'onnxruntime', number[]> = { tfjs: [], onnxruntime: [] };
  // of each: the layer statistics (the forward passes), the rest being the clip search and corrections
  const statsTimes: Record<'tfjs' | 'onnxruntime', number[]> = { tfjs: [], onnxruntime: [] };
  const ortCollect = ortStatsCollector({ threads: 2 });
  const ortBuild: number[] = [];
  let last: Record<string, PtqResult> = {};
  let means: Record<string, (Float32Array | null)[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const engine of ['tfjs', 'onnxruntime'] as const) {
      const t0 = performance.now();
      const res = await postTrainingQuantize(net, ds.train, {
        method,
        batches,
        batchSize,
        collect: async (nw, split, o) => {
          const ts = performance.now();
          const stats = engine === 'onnxruntime' ? await ortCollect(nw, split, o) : collectLayerStats(nw, split, o);
          statsTimes[engine].push((performance.now() - ts) / 1000);
          return stats;
        },
      });
      times[engine].push((performance.now() - t0) / 1000);
      if (engine === 'onnxruntime') ortBuild.push(lastOrtStatsTiming.buildSeconds);
      last = { ...last, [engine]: res };
      means = {
        ...means,
        [engine]: net.qlayers.map((q) => (q.inputMean ? Float32Array.from(q.inputMean.dataSync()) : null)),
      };
    }
  }
  let clipDiff = 0;
  (last['tfjs']?.clips ?? []).forEach((c, i) => {
    const d = last['onnxruntime']?.clips[i];
    if (c !== null && d !== null && d !== undefined)
      clipDiff = Math.max(clipDiff, Math.abs(c - d) / Math.max(1e-12, c));
  });
  let meanDiff = 0;
  (means['tfjs'] ?? []).forEach((m, i) => {
    const o = means['onnxruntime']?.[i];
    const range = last['tfjs']?.stats[i]?.max ?? 1;
    if (m && o) m.forEach((v, c) => (meanDiff = Math.max(meanDiff, Math.abs(v - o[c]) / Math.max(1e-12, range))));
  });
  const tf = median(times.tfjs);
  const ort = median(times.onnxruntime);
  const result = {
    bench: 'ptq-engine',
    model: 'nsfwjs mobilenet_v2 224x224',
    method,
    calibrationImages: Math.min(n, batches * batchSize),
    batches,
    rounds,
    tfjsSeconds: times.tfjs,
    ortSeconds: times.onnxruntime,
    ortSessionBuildSeconds: ortBuild,
    tfjsMedianSeconds: tf,
    ortMedianSeconds: ort,
    speedup: tf / ort,
    tfjsStatsSeconds: statsTimes.tfjs,
    ortStatsSeconds: statsTimes.onnxruntime,
    statsSpeedup: median(statsTimes.tfjs) / median(statsTimes.onnxruntime),
    maxRelativeClipDifference: clipDiff,
    maxBiasMeanDifferenceOfRange: meanDiff,
  };
  disposeDataset(ds);
  net.model.dispose();
  if (json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    `post-training calibration (${method} + bias correction), MobileNetV2 224x224, ${result.calibrationImages} photo crops, ${rounds} interleaved rounds\n` +
      `| engine | median s | rounds s | of which layer statistics (median s) |\n|---|---|---|---|\n` +
      `| tfjs wasm | ${tf.toFixed(2)} | ${times.tfjs.map((t) => t.toFixed(2)).join(', ')} | ${median(statsTimes.tfjs).toFixed(2)} |\n` +
      `| onnxruntime (2 threads) | ${ort.toFixed(2)} | ${times.onnxruntime.map((t) => t.toFixed(2)).join(', ')} (session build ${ortBuild.map((t) => t.toFixed(2)).join(', ')}) | ${median(statsTimes.onnxruntime).toFixed(2)} |\n` +
      `tfjs / onnxruntime: ${(tf / ort).toFixed(2)}x in all, ${result.statsSpeedup.toFixed(2)}x on the statistics; clips differ by at most ${clipDiff.toExponential(2)} (relative), bias-correction means by ${meanDiff.toExponential(2)} of the layer's range\n`,
  );
}
