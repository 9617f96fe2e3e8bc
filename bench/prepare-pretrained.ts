/**
 * Prepares what experiments/quality-mobilenetv2-pretrained.json reads, from packages installed offline:
 *
 *   node dist/bench/prepare-pretrained.js [--out data/pretrained] [--crops 2000] [--seed 11]
 *
 * writes `<out>/mobilenet_v2/` (nsfwjs's Keras MobileNetV2 as TF.js layers model.json + shards +
 * preprocess.json; npm devDependency nsfwjs, MIT) and `<out>/photo-crops/` (seeded 256x256 random crops of
 * Debian python3-skimage's sample photographs, label-free). See tests/pretrained-fixture.ts.
 */
import { existsSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { nsfwjsModels, photoCrops, photoFiles, pretrainedModel, SKIMAGE_DIR } from '../tests/pretrained-fixture.js';

function flag(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
}

export async function run(argv: string[]): Promise<number> {
  const out = resolve(flag(argv, 'out', 'data/pretrained'));
  const crops = Number(flag(argv, 'crops', '2000'));
  const seed = Number(flag(argv, 'seed', '11'));
  if (!Number.isInteger(crops) || crops < 10 || !Number.isInteger(seed) || seed < 0) {
    process.stderr.write('--crops must be an integer >= 10 and --seed an integer >= 0\n');
    return 1;
  }
  const models = nsfwjsModels();
  if (!models.dir) {
    process.stderr.write(`no network: ${models.reason}\n`);
    return 1;
  }
  if (photoFiles().length === 0) {
    process.stderr.write(`no photographs in ${SKIMAGE_DIR}: apt-get install python3-skimage\n`);
    return 1;
  }
  const model = pretrainedModel('mobilenet_v2', join(out, 'mobilenet_v2'));
  const folder = await photoCrops(crops, seed, 256, join(out, 'photo-crops'));
  if (!model || !folder || !existsSync(model)) {
    process.stderr.write('could not write the network or the photographs\n');
    return 1;
  }
  process.stdout.write(`model: ${model}\nimages: ${folder} (${crops} crops, seed ${seed})\n`);
  return 0;
}

if (process.argv[1] && import.meta.filename === resolve(process.argv[1]))
  process.exitCode = await run(process.argv.slice(2));
