/**
 * `npm run bench -- ptq [--json] [--models mobilenet_v2,inception_v3] [--crops N] [--calibration M] [--corrections a,b]`:
 * post-training quantization of real pretrained networks (the nsfwjs package's Keras models) on
 * seeded random crops of real photographs (Debian's skimage samples), label-free: top-1 agreement
 * of W8A8 / W6A6 / W4A4 (and W8A32, W32A8) with the float network on the test crops, activation
 * ranges calibrated on the training crops. Each row is one PTQ recipe; `baseline` is the trainer's
 * EMA-of-batch-max calibration without corrections, measured in the same process. A recipe is
 * `<calibration>[+bias][+cle|+cle6]`: `cle` applies cross-layer equalisation to the float weights first
 * (pairs joined by ReLU or nothing), `cle6` also through ReLU6, turned into ReLU (AIMET's way; the float
 * function then changes where ReLU6 clipped: the W32A32 point shows by how much).
 */
import { initBackend, tf } from '../src/backend/index.js';
import { loadDataset, disposeDataset } from '../src/data/index.js';
import { readModelPreprocess } from '../src/data/preprocess.js';
import { setLogLevel } from '../src/log.js';
import { loadUserModel } from '../src/models/user-model.js';
import { uniformBits } from '../src/models/layer-info.js';
import { formatTable, printJson, printText } from '../src/cli/output.js';
import { applyTargets } from '../src/train/distill.js';
import { calibrateNetwork, evaluateModel } from '../src/train/trainer.js';
import {
  equalizeCrossLayer,
  postTrainingQuantize,
  type CalibrationMethod,
  CALIBRATION_METHODS,
} from '../src/quant/ptq.js';
import { photoCrops, pretrainedModel, PRETRAINED, type PretrainedName } from '../tests/pretrained-fixture.js';
import { flag } from './kit.js';

const POINTS: [number, number][] = [
  [32, 32],
  [8, 8],
  [6, 6],
  [4, 4],
  [8, 32],
  [32, 8],
];

interface Row {
  model: string;
  recipe: string;
  point: string;
  agreement: number;
  samples: number;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  setLogLevel(json ? 'error' : 'warn');
  await initBackend('wasm');
  const models = (flag(argv, '--models') ?? 'mobilenet_v2').split(',') as PretrainedName[];
  const crops = Number(flag(argv, '--crops') ?? 400);
  const recipes = (flag(argv, '--recipes') ?? 'baseline,minmax,percentile,mse,mse+bias').split(',');
  const points = flag(argv, '--points')
    ? POINTS.filter((p) => (flag(argv, '--points') as string).split(',').includes(`W${p[0]}A${p[1]}`))
    : POINTS;
  const rows: Row[] = [];
  for (const name of models) {
    if (!PRETRAINED.includes(name)) throw new Error(`unknown model ${name}; one of ${PRETRAINED.join(', ')}`);
    const file = pretrainedModel(name);
    const dir = await photoCrops(crops, 7, 320);
    if (!file || !dir) throw new Error('needs the nsfwjs devDependency and python3-skimage photos');
    const probe = await loadUserModel(file);
    const shape = probe.model.inputs[0]?.shape as number[];
    probe.model.dispose();
    const pre = readModelPreprocess(file) ?? undefined;
    const ds = await loadDataset('folder', {
      dataDir: dir,
      seed: 1,
      imageSize: [shape[1], shape[2]],
      ...(pre ? { preprocess: pre } : {}),
      testFraction: 0.5,
      valFraction: 0.1,
    });
    for (const recipe of recipes) {
      const net = await loadUserModel(file);
      net.setBits(uniformBits(net.layers, 32, 32));
      if (recipe === recipes[0]) applyTargets(net, ds, { target: 'fidelity', batchSize: 16 });
      const cle = recipe.split('+').find((p) => p === 'cle' || p === 'cle6');
      if (cle) {
        const pairs = equalizeCrossLayer(net, { relu6: cle === 'cle6' ? 'relu' : 'skip' });
        if (!json) process.stderr.write(`${name} ${recipe}: cross-layer equalisation of ${pairs.length} layer pairs\n`);
      }
      for (const [w, a] of points) {
        net.setBits(uniformBits(net.layers, w, a));
        const t0 = performance.now();
        if (w === 32 && a === 32) {
          // float: nothing to calibrate
        } else if (recipe === 'baseline') {
          for (const q of net.qlayers) q.resetActivationRange();
          calibrateNetwork(net, ds.train, { batches: 8, batchSize: 16 });
        } else {
          const parts = recipe.split('+');
          const method = parts[0] as CalibrationMethod;
          if (!CALIBRATION_METHODS.includes(method)) throw new Error(`unknown calibration ${method}`);
          await postTrainingQuantize(net, ds.train, {
            method,
            biasCorrection: parts.includes('bias'),
            batches: 8,
            batchSize: 16,
          });
        }
        const cal = (performance.now() - t0) / 1000;
        const r = await evaluateModel(net.model, ds.test, { batchSize: 32 });
        const row: Row = { model: name, recipe, point: `W${w}A${a}`, agreement: r.accuracy, samples: r.samples };
        rows.push(row);
        if (!json)
          process.stderr.write(
            `${name} ${recipe} W${w}A${a}: agreement ${(r.accuracy * 100).toFixed(2)}% on ${r.samples} crops (calibration ${cal.toFixed(1)} s, eval ${(r.samples / r.samplesPerSec).toFixed(1)} s)\n`,
          );
      }
      net.model.dispose();
    }
    disposeDataset(ds);
  }
  if (json) {
    printJson({ crops, rows, memory: tf.memory().numBytes });
    return;
  }
  printText(
    formatTable(
      ['model', 'recipe', 'point', 'agreement', 'crops'],
      rows.map((r) => [r.model, r.recipe, r.point, `${(r.agreement * 100).toFixed(2)}%`, r.samples]),
    ),
  );
}
