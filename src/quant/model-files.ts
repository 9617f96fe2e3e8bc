/**
 * Reading and writing tfjs layers models (model.json + weight shards) with node:fs, without
 * tfjs-node. Every missing or corrupt file is a UserError naming the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Resolves a model spec to its model.json path (a directory means dir/model.json). */
export function modelJsonPath(p: string): string {
  try {
    if (fs.statSync(p).isDirectory()) return path.join(p, MODEL_JSON);
  } catch {
    // reported by readModelArtifacts
  }
  return p;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${what} not found` : `cannot read ${what}: ${(e as Error).message}`, {
      file,
      expected: 'a tfjs layers model.json (as written by model.save)',
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UserError(`${what} is not valid JSON: ${(e as Error).message}`, { file });
  }
}

function specBytes(spec: tf.io.WeightsManifestEntry): number {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const b = DTYPE_BYTES[dtype];
  if (b === undefined) throw new Error(`unsupported weight dtype ${dtype}`);
  return n * b;
}

/** Reads model.json and its weight shards into ModelArtifacts, validating everything. */
export function readModelArtifacts(spec: string): {
  artifacts: tf.io.ModelArtifacts;
  file: string;
  json: Record<string, unknown>;
} {
  const file = modelJsonPath(spec);
  const json = readJson(file, 'model file');
  if (!isObject(json)) throw new UserError('model file must hold a JSON object', { file, field: '$' });
  const topology = json['modelTopology'];
  if (!isObject(topology))
    throw new UserError('missing or invalid modelTopology', {
      file,
      field: '$.modelTopology',
      expected: 'an object (tfjs layers model format)',
    });
  const manifest = json['weightsManifest'] ?? [];
  if (!Array.isArray(manifest))
    throw new UserError('weightsManifest must be an array', { file, field: '$.weightsManifest' });
  const dir = path.dirname(file);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  manifest.forEach((group: unknown, g) => {
    const field = `$.weightsManifest[${g}]`;
    if (!isObject(group) || !Array.isArray(group['paths']) || !Array.isArray(group['weights'])) {
      throw new UserError('each weights group needs `paths` and `weights` arrays', { file, field });
    }
    const weights = group['weights'] as unknown[];
    let expected = 0;
    weights.forEach((w, i) => {
      if (
        !isObject(w) ||
        typeof w['name'] !== 'string' ||
        !Array.isArray(w['shape']) ||
        typeof w['dtype'] !== 'string'
      ) {
        throw new UserError('weight entry needs name, shape and dtype', { file, field: `${field}.weights[${i}]` });
      }
      const entry = w as unknown as tf.io.WeightsManifestEntry;
      try {
        expected += specBytes(entry);
      } catch (e) {
        throw new UserError((e as Error).message, {
          file,
          field: `${field}.weights[${i}].dtype`,
          expected: Object.keys(DTYPE_BYTES).join('|'),
        });
      }
      specs.push(entry);
    });
    let got = 0;
    const shardFiles: string[] = [];
    for (const [i, p] of (group['paths'] as unknown[]).entries()) {
      if (typeof p !== 'string')
        throw new UserError('shard path must be a string', { file, field: `${field}.paths[${i}]` });
      const shard = path.resolve(dir, p);
      const rel = path.relative(dir, shard);
      if (path.isAbsolute(p) || rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
        throw new UserError(`shard path '${p}' leaves the model folder ${dir}`, {
          file,
          field: `${field}.paths[${i}]`,
          expected: 'a file name inside the folder of model.json, e.g. weights.bin',
        });
      }
      shardFiles.push(shard);
      let buf: Buffer;
      try {
        buf = fs.readFileSync(shard);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new UserError(
          code === 'ENOENT' ? 'weight shard not found' : `cannot read weight shard: ${(e as Error).message}`,
          { file: shard, field: `${file} ${field}.paths[${i}]` },
        );
      }
      buffers.push(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
      got += buf.byteLength;
    }
    if (got !== expected) {
      throw new UserError(
        `weight shard size mismatch: the manifest needs ${expected} bytes, the shard(s) hold ${got} (truncated or corrupt)`,
        {
          file: shardFiles.join(', '),
          field: `${file} ${field}`,
        },
      );
    }
  });
  const total = buffers.reduce((a, b) => a + b.byteLength, 0);
  const data = new Uint8Array(total);
  let off = 0;
  for (const b of buffers) {
    data.set(b, off);
    off += b.byteLength;
  }
  return {
    file,
    json,
    artifacts: {
      modelTopology: topology,
      weightSpecs: specs,
      weightData: data.buffer,
      format: typeof json['format'] === 'string' ? json['format'] : undefined,
    },
  };
}

/**
 * tfjs's message for a model that does not fit its weights ("Shape mismatch: [400,120] vs. [120,400]"), with the
 * weight of the manifest that has the offending shape named (e.g. fc1/kernel), so the user knows which layer.
 */
export function explainBuildError(e: unknown, artifacts: tf.io.ModelArtifacts): string {
  const msg = e instanceof Error ? e.message : String(e);
  const m = /Shape mismatch: \[([\d,\s]*)\] vs\. \[([\d,\s]*)\]/.exec(msg);
  if (!m) return msg;
  const norm = (t: string) => t.replace(/\s+/g, '');
  const [expected, got] = [norm(m[1]), norm(m[2])];
  const hit = (artifacts.weightSpecs ?? []).filter((w) => w.shape.join(',') === got);
  if (hit.length === 0) return msg;
  const names = hit.map((w) => w.name);
  const layer = names[0].split('/')[0];
  return `weight ${names.join(' or ')} (layer '${layer}') has shape [${got}] in the weights manifest, but the layer needs [${expected}]`;
}

function joinWeightData(d: tf.io.WeightData | undefined): ArrayBuffer {
  if (!d) return new ArrayBuffer(0);
  return tf.io.CompositeArrayBuffer.join(d);
}

/** Writes a tfjs layers model as dir/model.json + dir/weights.bin (one shard). */
export async function writeModelFiles(
  model: tf.LayersModel,
  dir: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a: tf.io.ModelArtifacts) => {
      const data = joinWeightData(a.weightData);
      fs.writeFileSync(path.join(dir, WEIGHTS_BIN), new Uint8Array(data));
      const json = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: null,
        modelTopology: a.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: a.weightSpecs ?? [] }],
        ...extra,
      };
      fs.writeFileSync(path.join(dir, MODEL_JSON), JSON.stringify(json));
      return {
        modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: data.byteLength },
      };
    }),
  );
}
