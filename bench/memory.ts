/**
 * `npm run bench -- memory [--json] [--episodes N] [--images N] [--data-only] [--in-memory]`: memory of a real pretrained
 * 224x224 MobileNetV2 (nsfwjs's, see tests/pretrained-fixture.ts) on real photo crops, label-free:
 * peak resident memory (RSS) and the wasm heap after training at batch 8 and 32 (the trainer splits
 * a batch into chunks of 8 at this input size and sums their gradients) and evaluating at batch 64,
 * then resident memory, wasm heap and live tensor bytes over N search-like episodes (random
 * per-layer bits, one QAT step at batch 8, evaluation of 16 validation images). Figures only, no
 * thresholds: growth = last sample - the sample at episode 1, and - the sample at episode 10.
 *
 * First, the data alone: resident memory before the image folder is loaded, after, and after one pass
 * over every split one batch of 32 at a time (as the float targets, training and evaluation read it),
 * beside the bytes the splits would take as floats. The splits stream from the uint8 image cache;
 * `--in-memory` loads them as float tensors instead (the older way), for comparison in a separate run.
 * `--data-only` stops after this part.
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { initBackend, tf } from '../src/backend/index.js';
import { disposeDataset, loadDataset, splitInputs, type Dataset } from '../src/data/index.js';
import { readModelPreprocess } from '../src/data/preprocess.js';
import { setLogLevel } from '../src/log.js';
import { loadUserModel } from '../src/models/user-model.js';
import { uniformBits } from '../src/models/layer-info.js';
import { formatTable, printJson, printText } from '../src/cli/output.js';
import { applyTargets } from '../src/train/distill.js';
import { applyFineTuneRegime } from '../src/train/finetune.js';
import { createTrainer, evaluateModel } from '../src/train/trainer.js';
import { postTrainingQuantize } from '../src/quant/ptq.js';
import { Rng } from '../src/util/rng.js';
import { photoCrops, pretrainedModel } from '../tests/pretrained-fixture.js';
import { flag } from './kit.js';

const MB = 1024 * 1024;

function wasmHeapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength ?? 0;
}

interface Sample {
  episode: number;
  rssMB: number;
  wasmHeapMB: number;
  tensorMB: number;
  tensors: number;
  /** After a full garbage collection: resident memory, the JS heap in use, and ArrayBuffers outside it. */
  rssAfterGcMB: number;
  jsHeapMB: number;
  arrayBuffersMB: number;
  /** Linux: anonymous and file-backed resident memory (/proc/self/status RssAnon, RssFile), else null. */
  rssAnonMB: number | null;
  rssFileMB: number | null;
}

function procStatusMB(field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

let collect: (() => void) | null = null;

/** A full garbage collection (node's --expose-gc, set at run time). */
function gc(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

function sample(episode: number): Sample {
  const m = tf.memory();
  const rssMB = process.memoryUsage().rss / MB;
  gc();
  const after = process.memoryUsage();
  return {
    episode,
    rssMB,
    wasmHeapMB: wasmHeapBytes() / MB,
    tensorMB: m.numBytes / MB,
    tensors: m.numTensors,
    rssAfterGcMB: after.rss / MB,
    jsHeapMB: after.heapUsed / MB,
    arrayBuffersMB: after.arrayBuffers / MB,
    rssAnonMB: procStatusMB('RssAnon'),
    rssFileMB: procStatusMB('RssFile'),
  };
}

interface DataMemory {
  ds: Dataset;
  images: number;
  rssBeforeMB: number;
  rssLoadedMB: number;
  rssAfterPassMB: number;
  wasmHeapBeforeMB: number;
  wasmHeapAfterMB: number;
  /** What the three splits take as float32. */
  floatMB: number;
}

/** Resident memory around loading a folder dataset and reading every split once, a batch of 32 at a time. */
async function measureData(load: () => Promise<Dataset>): Promise<DataMemory> {
  const rss = (): number => {
    gc(); // JS garbage (freed batches) is not counted as data
    return process.memoryUsage().rss / MB;
  };
  const rssBeforeMB = rss();
  const wasmBeforeMB = wasmHeapBytes() / MB;
  const ds = await load();
  const rssLoadedMB = rss();
  let floats = 0;
  for (const split of [ds.train, ds.val, ds.test]) {
    const inputs = splitInputs(split);
    const n = inputs.shape[0];
    for (let s = 0; s < n; s += 32) {
      const xb = inputs.slice(s, Math.min(32, n - s));
      floats += xb.size;
      xb.dispose();
    }
  }
  return {
    ds,
    images: ds.train.labels.length + ds.val.labels.length + ds.test.labels.length,
    rssBeforeMB,
    rssLoadedMB,
    rssAfterPassMB: rss(),
    wasmHeapBeforeMB: wasmBeforeMB,
    wasmHeapAfterMB: wasmHeapBytes() / MB,
    floatMB: (floats * 4) / MB,
  };
}

function peakRssMB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  setLogLevel(json ? 'error' : 'warn');
  await initBackend('wasm');
  const episodes = Number(flag(argv, '--episodes') ?? 100);
  const images = Number(flag(argv, '--images') ?? 120);
  const inMemory = argv.includes('--in-memory');
  const file = pretrainedModel('mobilenet_v2');
  const dir = await photoCrops(images, 21, 256);
  if (!file || !dir) throw new Error('needs the nsfwjs devDependency and python3-skimage photos');
  const folderOptions = {
    dataDir: dir,
    seed: 1,
    imageSize: [224, 224] as [number, number],
    preprocess: readModelPreprocess(file) ?? undefined,
    valFraction: 0.15,
    testFraction: 0.15,
  };
  // the image cache is built (decoded) before measuring, so the figures are those of a later run
  disposeDataset(await loadDataset('folder', { ...folderOptions, limit: 1 }));
  const data = await measureData(() => loadDataset('folder', { ...folderOptions, ...(inMemory ? { inMemory } : {}) }));
  const ds = data.ds;
  if (!json) {
    printText(
      formatTable(
        [
          'data',
          'images',
          'RSS before MB',
          'RSS loaded MB',
          'RSS after a pass MB',
          'RSS growth MB',
          'wasm heap before -> after MB',
          'as floats MB',
        ],
        [
          [
            inMemory ? 'in memory (float tensors)' : 'streamed from the uint8 cache',
            data.images,
            data.rssBeforeMB.toFixed(0),
            data.rssLoadedMB.toFixed(0),
            data.rssAfterPassMB.toFixed(0),
            (data.rssAfterPassMB - data.rssBeforeMB).toFixed(0),
            `${data.wasmHeapBeforeMB.toFixed(0)} -> ${data.wasmHeapAfterMB.toFixed(0)}`,
            data.floatMB.toFixed(0),
          ],
        ],
      ),
    );
  }
  if (argv.includes('--data-only')) {
    disposeDataset(ds);
    if (json) printJson({ images, data: { ...data, ds: undefined, mode: inMemory ? 'in-memory' : 'streamed' } });
    return;
  }
  const net = await loadUserModel(file);
  const phases: { phase: string; peakRssMB: number; wasmHeapMB: number; seconds: number }[] = [];
  const phase = async (name: string, f: () => Promise<void>): Promise<void> => {
    const t0 = performance.now();
    await f();
    phases.push({
      phase: name,
      peakRssMB: peakRssMB(),
      wasmHeapMB: wasmHeapBytes() / MB,
      seconds: (performance.now() - t0) / 1000,
    });
    if (!json)
      process.stderr.write(
        `${name}: peak RSS ${peakRssMB().toFixed(0)} MB, wasm heap ${(wasmHeapBytes() / MB).toFixed(0)} MB\n`,
      );
  };
  await phase('load + float targets', async () => {
    applyTargets(net, ds, { batchSize: 16 });
  });
  net.setBits(uniformBits(net.layers, 8, 8));
  await postTrainingQuantize(net, ds.train, { batchSize: 16 });
  applyFineTuneRegime(net);
  for (const batchSize of [8, 32]) {
    const trainer = createTrainer(net, ds, { lr: 1e-5, batchSize, optimizer: 'adam', seed: 1, temperature: 2 });
    await phase(`train W8A8 batch ${batchSize} (2 steps)`, async () => {
      await trainer.trainSteps(2);
    });
    trainer.dispose();
  }
  await phase('evaluate W8A8 batch 64', async () => {
    await evaluateModel(net.model, ds.train, { batchSize: 64, limit: 64 });
  });
  const rng = new Rng(5);
  const trainer = createTrainer(net, ds, {
    lr: 1e-5,
    batchSize: 8,
    optimizer: 'adam',
    seed: 2,
    temperature: 2,
    evalBatchSize: 64,
  });
  const samples: Sample[] = [sample(0)];
  const t0 = performance.now();
  for (let e = 1; e <= episodes; e++) {
    net.setBits(
      net.layers.map(() => {
        const b = 4 + rng.int(5);
        return { wBits: b, aBits: b };
      }),
    );
    await trainer.trainSteps(1);
    await trainer.evaluate('val', { limit: 16 });
    if (e % 10 === 0 || e === 1) {
      samples.push(sample(e));
      if (!json)
        process.stderr.write(
          `episode ${e}: RSS ${samples[samples.length - 1]?.rssMB.toFixed(0)} MB (anon ${samples[samples.length - 1]?.rssAnonMB?.toFixed(0)}, file ${samples[samples.length - 1]?.rssFileMB?.toFixed(0)}), wasm heap ${samples[samples.length - 1]?.wasmHeapMB.toFixed(0)} MB, tensors ${samples[samples.length - 1]?.tensorMB.toFixed(1)} MB\n`,
        );
    }
  }
  const episodeSeconds = (performance.now() - t0) / 1000 / Math.max(1, episodes);
  trainer.dispose();
  const last = samples[samples.length - 1];
  const since = (base: Sample | undefined) =>
    base && base !== last
      ? {
          rssMB: last.rssMB - base.rssMB,
          rssAfterGcMB: last.rssAfterGcMB - base.rssAfterGcMB,
          jsHeapMB: last.jsHeapMB - base.jsHeapMB,
          wasmHeapMB: last.wasmHeapMB - base.wasmHeapMB,
          tensorMB: last.tensorMB - base.tensorMB,
          fromEpisode: base.episode,
          toEpisode: last.episode,
        }
      : null;
  const growths = [since(samples.find((s) => s.episode === 1)), since(samples.find((s) => s.episode === 10))].filter(
    (g) => g !== null,
  );
  const growth = growths[growths.length - 1] ?? null;
  net.model.dispose();
  disposeDataset(ds);
  if (json) {
    printJson({
      model: 'nsfwjs mobilenet_v2 (224x224x3)',
      images,
      episodes,
      data: { ...data, ds: undefined, mode: inMemory ? 'in-memory' : 'streamed' },
      phases,
      samples,
      growth,
      growths,
      episodeSeconds,
    });
    return;
  }
  printText(
    formatTable(
      ['phase', 'peak RSS MB', 'wasm heap MB', 'seconds'],
      phases.map((p) => [p.phase, p.peakRssMB.toFixed(0), p.wasmHeapMB.toFixed(0), p.seconds.toFixed(1)]),
    ),
  );
  printText(
    formatTable(
      ['episode', 'RSS MB', 'RSS after GC MB', 'JS heap MB', 'ArrayBuffers MB', 'wasm heap MB', 'tensor MB', 'tensors'],
      samples.map((s) => [
        s.episode,
        s.rssMB.toFixed(0),
        s.rssAfterGcMB.toFixed(0),
        s.jsHeapMB.toFixed(0),
        s.arrayBuffersMB.toFixed(0),
        s.wasmHeapMB.toFixed(0),
        s.tensorMB.toFixed(1),
        s.tensors,
      ]),
    ),
  );
  for (const g of growths)
    printText(
      `growth episodes ${g.fromEpisode}..${g.toEpisode}: RSS ${g.rssMB.toFixed(0)} MB (after GC ${g.rssAfterGcMB.toFixed(0)} MB), JS heap ${g.jsHeapMB.toFixed(0)} MB, wasm heap ${g.wasmHeapMB.toFixed(0)} MB, tensors ${g.tensorMB.toFixed(1)} MB`,
    );
  printText(`${episodeSeconds.toFixed(1)} s per episode`);
}
