/**
 * `npm run bench -- finetune [--json] [--steps N] [--batch B] [--crops N]`: QAT of a real pretrained
 * network (nsfwjs's MobileNetV2) at W8A8 on photo crops, label-free, from the same post-training
 * quantized start, in two regimes: `pretrained` (the fine-tune regime: lr 1e-5, BatchNorm frozen and
 * folded, calibrated ranges kept, distillation at T = 2) and `from-scratch` (lr 2e-3, BatchNorm on batch
 * statistics, running-max ranges, hard targets). Prints top-1 agreement with the float network on
 * the test crops before and after.
 */
import { initBackend } from '../src/backend/index.js';
import { disposeDataset, loadDataset } from '../src/data/index.js';
import { readModelPreprocess } from '../src/data/preprocess.js';
import { setLogLevel } from '../src/log.js';
import { loadUserModel } from '../src/models/user-model.js';
import { uniformBits } from '../src/models/layer-info.js';
import { formatTable, printJson, printText } from '../src/cli/output.js';
import { applyTargets } from '../src/train/distill.js';
import { applyFineTuneRegime, PRETRAINED_FINETUNE } from '../src/train/finetune.js';
import { createTrainer, evaluateModel } from '../src/train/trainer.js';
import { postTrainingQuantize } from '../src/quant/ptq.js';
import { photoCrops, pretrainedModel } from '../tests/pretrained-fixture.js';
import { flag } from './kit.js';

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  setLogLevel(json ? 'error' : 'warn');
  await initBackend('wasm');
  const steps = Number(flag(argv, '--steps') ?? 200);
  const batch = Number(flag(argv, '--batch') ?? 8);
  const crops = Number(flag(argv, '--crops') ?? 300);
  const regimes = (flag(argv, '--regimes') ?? 'pretrained,from-scratch').split(',');
  const file = pretrainedModel('mobilenet_v2');
  const dir = await photoCrops(crops, 9, 256);
  if (!file || !dir) throw new Error('needs the nsfwjs devDependency and python3-skimage photos');
  const rows: { regime: string; steps: number; batch: number; before: number; after: number; seconds: number }[] = [];
  for (const regime of regimes) {
    const ds = await loadDataset('folder', {
      dataDir: dir,
      seed: 1,
      imageSize: [224, 224],
      preprocess: readModelPreprocess(file) ?? undefined,
      testFraction: 0.3,
    });
    const net = await loadUserModel(file);
    const fine = regime === 'pretrained';
    applyTargets(net, ds, fine ? { batchSize: 16, temperature: 2 } : { batchSize: 16, target: 'fidelity' });
    if (!fine) {
      // hard targets on the training split too
      const { tf } = await import('../src/backend/index.js');
      const hard = tf.tidy(() => tf.oneHot(tf.argMax(ds.train.y, -1), 5).toFloat()) as typeof ds.train.y;
      ds.train.y.dispose();
      ds.train.y = hard;
    }
    net.setBits(uniformBits(net.layers, 8, 8));
    await postTrainingQuantize(net, ds.train, { batchSize: 16 });
    if (fine) applyFineTuneRegime(net);
    const before = (await evaluateModel(net.model, ds.test, { batchSize: 32 })).accuracy;
    const trainer = createTrainer(net, ds, {
      lr: fine ? PRETRAINED_FINETUNE.lr : 2e-3,
      batchSize: batch,
      optimizer: 'adam',
      seed: 1,
      ...(fine ? { temperature: 2 } : {}),
    });
    const t0 = performance.now();
    await trainer.trainSteps(steps);
    const seconds = (performance.now() - t0) / 1000;
    trainer.dispose();
    const after = (await evaluateModel(net.model, ds.test, { batchSize: 32 })).accuracy;
    rows.push({ regime, steps, batch, before, after, seconds });
    if (!json)
      process.stderr.write(
        `${regime}: agreement ${(before * 100).toFixed(2)}% -> ${(after * 100).toFixed(2)}% on ${ds.test.labels.length} test crops after ${steps} steps at batch ${batch} (${seconds.toFixed(0)} s)\n`,
      );
    net.model.dispose();
    disposeDataset(ds);
  }
  if (json) {
    printJson({ model: 'nsfwjs mobilenet_v2', bits: 'W8A8', rows });
    return;
  }
  printText(
    formatTable(
      ['regime', 'steps', 'batch', 'agreement before', 'after'],
      rows.map((r) => [
        r.regime,
        r.steps,
        r.batch,
        `${(r.before * 100).toFixed(2)}%`,
        `${(r.after * 100).toFixed(2)}%`,
      ]),
    ),
  );
}
