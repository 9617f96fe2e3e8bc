/**
 * `npm run bench -- finetune [--json] [--steps N] [--batch B] [--crops N] [--lrs 1e-5,1e-6] [--bits 8,6]
 * [--split test|train]`: QAT of a real pretrained network (nsfwjs's MobileNetV2) on photo crops,
 * label-free, from the same post-training quantized start, in two regimes: `pretrained` (the fine-tune
 * regime: lr 1e-6 unless --lrs, BatchNorm frozen and folded, calibrated ranges kept, dropout off,
 * distillation at T = 2) and `from-scratch` (lr 2e-3, BatchNorm on batch statistics, running-max ranges,
 * hard targets). Prints top-1 agreement with the float network on the test crops (or the training crops
 * QAT saw) before and after, at each uniform bit-width of --bits (default 8).
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
  const lrs = flag(argv, '--lrs')?.split(',').map(Number) ?? [PRETRAINED_FINETUNE.lr];
  const bitsList = (flag(argv, '--bits') ?? '8').split(',').map(Number);
  const splitName = flag(argv, '--split') === 'train' ? 'train' : 'test';
  const file = pretrainedModel('mobilenet_v2');
  const dir = await photoCrops(crops, 9, 256);
  if (!file || !dir) throw new Error('needs the nsfwjs devDependency and python3-skimage photos');
  const rows: {
    regime: string;
    lr: number;
    bits: number;
    steps: number;
    batch: number;
    before: number;
    after: number;
    seconds: number;
  }[] = [];
  const cases = regimes.flatMap((regime) =>
    bitsList.flatMap((bits) => (regime === 'pretrained' ? lrs : [2e-3]).map((lr) => ({ regime, bits, lr }))),
  );
  for (const { regime, bits, lr } of cases) {
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
    net.setBits(uniformBits(net.layers, bits, bits));
    await postTrainingQuantize(net, ds.train, { batchSize: 16 });
    if (fine) applyFineTuneRegime(net);
    const split = ds[splitName];
    const before = (await evaluateModel(net.model, split, { batchSize: 32 })).accuracy;
    const trainer = createTrainer(net, ds, {
      lr,
      batchSize: batch,
      optimizer: 'adam',
      seed: 1,
      ...(fine ? { temperature: 2 } : {}),
    });
    const t0 = performance.now();
    await trainer.trainSteps(steps);
    const seconds = (performance.now() - t0) / 1000;
    trainer.dispose();
    const after = (await evaluateModel(net.model, split, { batchSize: 32 })).accuracy;
    rows.push({ regime, lr, bits, steps, batch, before, after, seconds });
    if (!json)
      process.stderr.write(
        `${regime} lr ${lr} W${bits}A${bits}: agreement ${(before * 100).toFixed(2)}% -> ${(after * 100).toFixed(2)}% on ${split.labels.length} ${splitName} crops after ${steps} steps at batch ${batch} (${seconds.toFixed(0)} s)\n`,
      );
    net.model.dispose();
    disposeDataset(ds);
  }
  if (json) {
    printJson({ model: 'nsfwjs mobilenet_v2', split: splitName, rows });
    return;
  }
  printText(
    formatTable(
      ['regime', 'lr', 'bits', 'steps', 'batch', 'agreement before', 'after'],
      rows.map((r) => [
        r.regime,
        r.lr,
        `W${r.bits}A${r.bits}`,
        r.steps,
        r.batch,
        `${(r.before * 100).toFixed(2)}%`,
        `${(r.after * 100).toFixed(2)}%`,
      ]),
    ),
  );
}
