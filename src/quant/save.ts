/**
 * Checkpoints of a quantized network on disk: dir/model.json (tfjs layers format, quantized
 * layers with their bits and quantizer in their config), dir/weights.bin (float weights,
 * quantizer state included) and dir/bits.json (the bit allocation, in the bits-file format
 * `{"layers":[{"name","wBits","aBits"}]}`). `meta` is stored in model.json under `bitalloc`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { MODEL_JSON, explainBuildError, readModelArtifacts, writeModelFiles } from './model-files.js';
import { checkTopology } from './topology-check.js';
import type { QuantizedNetwork } from './api.js';
import { QuantNetwork } from './network.js';
import { bitsFileContent, readBitsFile } from './bits-file.js';

export const BITS_JSON = 'bits.json';

export async function saveNetwork(net: QuantizedNetwork, dir: string, meta: object = {}): Promise<void> {
  await writeModelFiles(net.model, dir, { bitalloc: meta });
  fs.writeFileSync(
    path.join(dir, BITS_JSON),
    JSON.stringify(bitsFileContent(net.layers, net.getBits()), null, 2) + '\n',
  );
}

/** Loads a checkpoint written by saveNetwork. */
export async function loadNetwork(dir: string): Promise<{ net: QuantNetwork; meta: Record<string, unknown> }> {
  if (!fs.existsSync(dir))
    throw new UserError('checkpoint directory not found', { file: dir, expected: `a directory holding ${MODEL_JSON}` });
  if (!fs.statSync(dir).isDirectory())
    throw new UserError('is a file, not a checkpoint folder', {
      file: dir,
      field: '--checkpoint',
      expected: `the folder holding ${MODEL_JSON}, weights.bin and bits.json (written by \`bitalloc train --out\`)`,
    });
  const { artifacts, file, json } = readModelArtifacts(dir);
  checkTopology(artifacts.modelTopology as Record<string, unknown>, file);
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (e) {
    throw new UserError(`cannot rebuild the network: ${explainBuildError(e, artifacts)}`, { file });
  }
  const net = new QuantNetwork(model);
  const bitsFile = path.join(path.dirname(file), BITS_JSON);
  if (fs.existsSync(bitsFile)) net.setBits(readBitsFile(bitsFile, net.layers));
  const meta = json['bitalloc'];
  return { net, meta: typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {} };
}
