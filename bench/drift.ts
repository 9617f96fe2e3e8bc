/**
 * `npm run bench -- drift [--json] [--episodes N] [--qat-steps K] [--batch B] [--crops N] [--eval N]
 * [--agent NAME] [--variants carry@1e-5,restore@1e-5,...]`: how far a search's episodes move the shared
 * weights of a real pretrained network. Each variant runs the real search (`runSearch`, label-free, on
 * nsfwjs's MobileNetV2 and seeded photo crops, latency<=0.5x on bitfusion-45nm, so the episodes train
 * mixed low-bit allocations) and prints uniform W8A8 agreement with the float network on the shared
 * weights before the first episode and after the last, on the same `--eval` validation crops
 * (the search's own evaluation, onnxruntime when it loads). A variant is `<sharedWeights>@<QAT lr>`.
 */
import { initBackend } from '../src/backend/index.js';
import { formatTable, printJson, printText } from '../src/cli/output.js';
import { setLogLevel } from '../src/log.js';
import { runSearch, searchSpec, type SharedWeights } from '../src/search/search.js';
import { photoCrops, pretrainedModel } from '../tests/pretrained-fixture.js';
import { flag } from './kit.js';

interface Row {
  variant: string;
  sharedWeights: SharedWeights;
  qatLr: number;
  start: number;
  end: number;
  best: number | null;
  evalSamples: number;
  evalBackend: string;
  seconds: number;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  setLogLevel(json ? 'error' : 'warn');
  await initBackend('wasm');
  const episodes = Number(flag(argv, '--episodes') ?? 10);
  const qatSteps = Number(flag(argv, '--qat-steps') ?? 4);
  const batch = Number(flag(argv, '--batch') ?? 8);
  const crops = Number(flag(argv, '--crops') ?? 400);
  const evalSamples = Number(flag(argv, '--eval') ?? 240);
  const agent = flag(argv, '--agent') ?? 'random';
  const variants = (flag(argv, '--variants') ?? 'carry@1e-5,carry@1e-6,restore@1e-5').split(',');
  const file = pretrainedModel('mobilenet_v2');
  const dir = await photoCrops(crops, 11, 256);
  if (!file || !dir) throw new Error('needs the nsfwjs devDependency and python3-skimage photos');
  // validation gets the share --eval needs, the rest trains (test: 10%)
  const valFraction = Math.min(0.8, Math.max(0.1, (evalSamples + 1) / crops));
  const rows: Row[] = [];
  for (const v of variants) {
    const [mode, lrText] = v.split('@');
    if (mode !== 'carry' && mode !== 'restore') throw new Error(`variant ${v}: expected carry@LR or restore@LR`);
    const qatLr = Number(lrText ?? 1e-5);
    const t0 = performance.now();
    const r = await runSearch(
      searchSpec({
        model: file,
        dataset: 'folder',
        dataDir: dir,
        agent,
        episodes,
        qatSteps,
        batchSize: batch,
        evalSamples,
        finetuneEpochs: 0,
        // the search's QAT runs at lr / 4
        lr: 4 * qatLr,
        sharedWeights: mode,
        valFraction,
        seed: 1,
      }),
      { plainProgress: true, label: `drift ${v}` },
    );
    const row: Row = {
      variant: v,
      sharedWeights: mode,
      qatLr,
      start: r.reference.w8a8ValAccuracyStart ?? NaN,
      end: r.reference.w8a8ValAccuracyEnd ?? NaN,
      best: r.best?.accuracy ?? null,
      evalSamples,
      evalBackend: r.evalBackend,
      seconds: (performance.now() - t0) / 1000,
    };
    rows.push(row);
    if (!json)
      process.stderr.write(
        `${v}: W8A8 agreement ${(row.start * 100).toFixed(2)}% -> ${(row.end * 100).toFixed(2)}% over ${episodes} episodes (${row.seconds.toFixed(0)} s)\n`,
      );
  }
  if (json) {
    printJson({ model: 'nsfwjs mobilenet_v2', agent, episodes, qatSteps, batch, rows });
    return;
  }
  printText(
    formatTable(
      ['variant', 'episodes x steps', 'W8A8 start', 'end', 'change', 'best episode', 'eval crops', 'engine', 'seconds'],
      rows.map((r) => [
        r.variant,
        `${episodes} x ${qatSteps} @ batch ${batch}`,
        `${(r.start * 100).toFixed(2)}%`,
        `${(r.end * 100).toFixed(2)}%`,
        `${((r.end - r.start) * 100).toFixed(2)}`,
        r.best === null ? '-' : `${(r.best * 100).toFixed(2)}%`,
        r.evalSamples,
        r.evalBackend,
        r.seconds.toFixed(0),
      ]),
    ),
  );
}
