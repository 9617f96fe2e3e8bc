/**
 * `npm run bench -- search-wall [--json] [--engines tfjs,onnxruntime] [--episodes N] [--tfjs-episodes N]
 * [--eval-samples N] [--crops N] [--project N]`: the wall time of a `--qat-steps 0` search (ppo, bitfusion-45nm,
 * latency<=0.5x, no fine-tune) on a real 224x224 MobileNetV2 (nsfwjs's, see tests/pretrained-fixture.ts)
 * over label-free photo crops (Debian's skimage samples), with its forward passes on each engine.
 * The crops are split half validation (so that --eval-samples 500 has 500 images with --crops 1000),
 * 10% test, the rest train (calibration). Default 30 episodes; --tfjs-episodes runs fewer on the
 * slow engine; the wall time of --project N (default 30) episodes is projected as setup + N x the
 * measured seconds per episode (marked "projected" when fewer episodes ran).
 */
import { initBackend } from '../src/backend/index.js';
import { setLogLevel } from '../src/log.js';
import { runSearch, searchSpec } from '../src/search/search.js';
import { photoCrops, pretrainedModel } from '../tests/pretrained-fixture.js';
import { flag } from './kit.js';

interface Row {
  engine: string;
  episodes: number;
  wallSeconds: number;
  /** Everything before the first episode and after the last (data, PTQ calibration, reference points, final evaluation). */
  setupSeconds: number;
  secondsPerEpisode: number;
  evalSecondsPerEpisode: number;
  /** setup + 30 (or --episodes) x per-episode: the full search's wall time. */
  projectedSeconds: number;
  bestAccuracy: number | null;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const engines = (flag(argv, '--engines') ?? 'onnxruntime,tfjs').split(',') as ('tfjs' | 'onnxruntime')[];
  const episodes = Number(flag(argv, '--episodes') ?? 30);
  const tfjsEpisodes = Number(flag(argv, '--tfjs-episodes') ?? episodes);
  // the wall time projected for this many episodes: setup + N x seconds per episode
  const project = Number(flag(argv, '--project') ?? 30);
  const evalSamples = Number(flag(argv, '--eval-samples') ?? 500);
  const crops = Number(flag(argv, '--crops') ?? 1000);
  setLogLevel('warn');
  await initBackend('wasm');
  const model = pretrainedModel('mobilenet_v2');
  const dir = await photoCrops(crops, 13, 256);
  if (!model || !dir) {
    process.stdout.write('search-wall needs the devDependency nsfwjs and Debian python3-skimage photos\n');
    return;
  }
  const rows: Row[] = [];
  for (const engine of engines) {
    const n = engine === 'tfjs' ? tfjsEpisodes : episodes;
    const spec = searchSpec({
      model,
      dataset: 'folder',
      dataDir: dir,
      valFraction: 0.5,
      testFraction: 0.1,
      episodes: n,
      qatSteps: 0,
      finetuneEpochs: 0,
      evalSamples,
      batchSize: 8,
      threads: 2,
      checkpointEvery: 1000,
      evalBackend: engine,
    });
    const t0 = performance.now();
    const r = await runSearch(spec, { plainProgress: true });
    const wall = (performance.now() - t0) / 1000;
    const inEpisodes = r.timing.qatSeconds + r.timing.evalSeconds + r.timing.otherSeconds;
    const per = inEpisodes / Math.max(1, r.episodes);
    rows.push({
      engine: r.evalBackend,
      episodes: r.episodes,
      wallSeconds: wall,
      setupSeconds: wall - inEpisodes,
      secondsPerEpisode: per,
      evalSecondsPerEpisode: r.timing.evalSeconds / Math.max(1, r.episodes),
      projectedSeconds: wall - inEpisodes + project * per,
      bestAccuracy: r.best?.accuracy ?? null,
    });
  }
  const t = rows.find((r) => r.engine === 'tfjs');
  const o = rows.find((r) => r.engine === 'onnxruntime');
  const result = {
    bench: 'search-wall',
    model: 'nsfwjs mobilenet_v2 224x224',
    evalSamples,
    crops,
    episodes,
    project,
    rows,
    speedup: t && o ? t.projectedSeconds / o.projectedSeconds : null,
    episodeSpeedup: t && o ? t.secondsPerEpisode / o.secondsPerEpisode : null,
  };
  if (json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    `--qat-steps 0 search, MobileNetV2 224x224, ${evalSamples} evaluation images\n| engine | episodes run | wall s | setup s | s/episode | eval s/episode | ${project}-episode wall s |\n|---|---|---|---|---|---|---|\n`,
  );
  for (const r of rows)
    process.stdout.write(
      `| ${r.engine} | ${r.episodes} | ${r.wallSeconds.toFixed(1)} | ${r.setupSeconds.toFixed(1)} | ${r.secondsPerEpisode.toFixed(2)} | ${r.evalSecondsPerEpisode.toFixed(2)} | ${r.projectedSeconds.toFixed(1)}${r.episodes === project ? '' : ' (projected)'} |\n`,
    );
  if (result.speedup !== null)
    process.stdout.write(
      `tfjs / onnxruntime: ${result.speedup.toFixed(2)}x on the ${project}-episode wall time, ${(result.episodeSpeedup ?? 0).toFixed(2)}x per episode\n`,
    );
}
