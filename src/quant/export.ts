/**
 * Integer export of a quantized network, and reading it back as a runnable network.
 *
 * Directory layout:
 * - manifest.json: per quantized layer its name, kind, kernel shape, bits, weight encoding,
 *   byte offsets into weights.bin, per-output-channel scales, bias, the BatchNorm folded into it,
 *   and the input activation grid (bits, scale, integer range); plus the network topology
 *   (tfjs layers JSON, folded BatchNorms removed) to run it.
 * - weights.bin: per quantized layer (inventory order) the packed integer codes
 *   (ceil(params * wBits / 8) bytes, see pack.ts) followed by one float32 LE scale per output
 *   channel; a 32-bit layer stores its float32 kernel instead (no scales). Nothing else, so its
 *   size is exactly what the allocation implies.
 * - float-weights.bin (only when needed): float32 weights of other layers that carry weights
 *   (e.g. a BatchNorm that could not be folded).
 *
 * Weight w = code * scale[c] (c = output channel, the kernel's last axis; depthwise: in*mult + m),
 * output = conv(x_q, w) + bias; activations x_q = scale * clamp(round(x / scale), qmin, qmax).
 * A BatchNorm directly after a linear conv/dense is folded (scale *= k, bias = k (b - mean) + beta,
 * k = gamma / sqrt(var + eps)); the simulated network folds it the same way at inference, so the
 * exported network computes the same numbers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { BitConfig, LayerKind } from './layer-info.js';
import type { FixedActGrid, QuantLayer } from './layers.js';
import { QuantLayer as QuantLayerClass } from './layers.js';
import type { QuantNetwork } from './network.js';
import { packCodes, packedBytes, unpackCodes } from './pack.js';
import { FLOAT_BITS } from './quantizers.js';

export const MANIFEST_JSON = 'manifest.json';
export const EXPORT_WEIGHTS = 'weights.bin';
export const EXPORT_FLOAT_WEIGHTS = 'float-weights.bin';
export const EXPORT_FORMAT = 'bitalloc-quantized';

export interface ExportedLayer {
  name: string;
  kind: LayerKind;
  kernelShape: number[];
  outChannels: number;
  params: number;
  wBits: number;
  aBits: number;
  /** twos-complement: b-bit fields; sign-bit: 1 = +1, 0 = -1; float32: raw kernel. */
  encoding: 'twos-complement' | 'sign-bit' | 'float32';
  /** Integer range the codes use. */
  qmin: number | null;
  qmax: number | null;
  weightsOffset: number;
  weightsBytes: number;
  scalesOffset: number | null;
  scalesBytes: number;
  /** Per output channel (BatchNorm folded in); null at 32 bits. */
  scales: number[] | null;
  bias: number[] | null;
  foldedBatchNorm: string | null;
  /** The input activation grid; null = float input (aBits 32). */
  activation: (FixedActGrid & { bits: number; signed: boolean }) | null;
}

export interface ExtraWeight {
  layer: string;
  index: number;
  shape: number[];
  offset: number;
  bytes: number;
}

export interface ExportManifest {
  format: typeof EXPORT_FORMAT;
  version: 1;
  model: string;
  inputShape: number[];
  weightsFile: string;
  weightsBytes: number;
  floatWeightsFile: string | null;
  floatWeights: ExtraWeight[];
  layers: ExportedLayer[];
  topology: Record<string, unknown>;
}

type PyLayer = { name: string; class_name: string; config: Record<string, unknown>; inbound_nodes: unknown[] };

function rewire(v: unknown, from: string, to: string): unknown {
  if (Array.isArray(v)) {
    if (v.length >= 3 && v[0] === from && typeof v[1] === 'number') return [to, 0, ...(v.slice(2) as unknown[])];
    return v.map((x) => rewire(x, from, to));
  }
  return v;
}

/**
 * Writes the network at its current bits (or `bits`) as packed integers + manifest.
 * The activation ranges must be calibrated (a trained checkpoint, or QuantNetwork.calibrate).
 */
export function exportNetwork(net: QuantNetwork, outDir: string, opts: { bits?: BitConfig } = {}): ExportManifest {
  if (opts.bits) net.setBits(opts.bits);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const push = (b: Uint8Array): number => {
    const at = offset;
    chunks.push(b);
    offset += b.byteLength;
    return at;
  };
  const layers: ExportedLayer[] = net.qlayers.map((q: QuantLayer) => {
    let act: ReturnType<QuantLayer['exportActivation']>;
    try {
      act = q.exportActivation();
    } catch (e) {
      throw new UserError((e as Error).message, { field: q.name });
    }
    const p = q.exportParams();
    const kernelShape = q.getKernel().shape as number[];
    const params = kernelShape.reduce((a, b) => a * b, 1);
    const base = {
      name: q.name,
      kind: q.kind,
      kernelShape,
      outChannels: q.outChannels,
      params,
      wBits: q.wBits,
      aBits: q.aBits,
      bias: p.bias ? Array.from(p.bias) : null,
      foldedBatchNorm: q.foldedBn ? q.foldedBn.name : null,
      activation: act.grid ? { bits: act.bits, signed: act.signed, ...act.grid } : null,
    };
    if (p.kernel) {
      const bytes = new Uint8Array(Float32Array.from(p.kernel).buffer);
      const at = push(bytes);
      return {
        ...base,
        encoding: 'float32',
        qmin: null,
        qmax: null,
        weightsOffset: at,
        weightsBytes: bytes.byteLength,
        scalesOffset: null,
        scalesBytes: 0,
        scales: null,
      };
    }
    const codes = p.codes as Float32Array;
    const scales = p.scales as Float32Array;
    const packed = packCodes(codes, q.wBits);
    const at = push(packed);
    const sBytes = new Uint8Array(Float32Array.from(scales).buffer);
    const sAt = push(sBytes);
    return {
      ...base,
      encoding: q.wBits === 1 ? 'sign-bit' : 'twos-complement',
      qmin: p.range?.qmin ?? null,
      qmax: p.range?.qmax ?? null,
      weightsOffset: at,
      weightsBytes: packed.byteLength,
      scalesOffset: sAt,
      scalesBytes: sBytes.byteLength,
      scales: Array.from(scales),
    };
  });

  // topology: quantized layers frozen at their exported grids, folded BatchNorms removed
  const topo = JSON.parse(JSON.stringify(net.model.toJSON(null, false))) as {
    config: { layers: PyLayer[]; output_layers: unknown };
  } & Record<string, unknown>;
  const byName = new Map(layers.map((l) => [l.name, l] as const));
  const folded = new Map(
    layers.filter((l) => l.foldedBatchNorm).map((l) => [l.foldedBatchNorm as string, l.name] as const),
  );
  topo.config.layers = topo.config.layers.filter((l) => !folded.has(l.name));
  for (const [bnName, qName] of folded) {
    for (const l of topo.config.layers) l.inbound_nodes = rewire(l.inbound_nodes, bnName, qName) as unknown[];
    topo.config.output_layers = rewire(topo.config.output_layers, bnName, qName);
  }
  for (const l of topo.config.layers) {
    const e = byName.get(l.name);
    if (!e) continue;
    l.config['frozen_weights'] = true;
    l.config['fixed_act'] = e.activation
      ? { scale: e.activation.scale, qmin: e.activation.qmin, qmax: e.activation.qmax, binary: e.activation.binary }
      : null;
    l.config['use_bias'] = e.bias !== null;
    l.config['w_bits'] = e.wBits;
    l.config['a_bits'] = e.aBits;
  }

  // float weights of other layers (unfolded BatchNorms and the like)
  const extra: ExtraWeight[] = [];
  const extraChunks: Uint8Array[] = [];
  let extraOff = 0;
  for (const l of net.model.layers) {
    if (l instanceof QuantLayerClass || folded.has(l.name)) continue;
    l.getWeights().forEach((w, index) => {
      const bytes = new Uint8Array(Float32Array.from(w.dataSync()).buffer);
      extra.push({ layer: l.name, index, shape: w.shape, offset: extraOff, bytes: bytes.byteLength });
      extraChunks.push(bytes);
      extraOff += bytes.byteLength;
    });
  }

  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, EXPORT_WEIGHTS), Buffer.concat(chunks));
  if (extra.length) fs.writeFileSync(path.join(outDir, EXPORT_FLOAT_WEIGHTS), Buffer.concat(extraChunks));
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    version: 1,
    model: net.model.name,
    inputShape: (net.model.inputs[0]?.shape ?? []).slice(1) as number[],
    weightsFile: EXPORT_WEIGHTS,
    weightsBytes: offset,
    floatWeightsFile: extra.length ? EXPORT_FLOAT_WEIGHTS : null,
    floatWeights: extra,
    layers,
    topology: topo,
  };
  fs.writeFileSync(path.join(outDir, MANIFEST_JSON), JSON.stringify(manifest));
  return manifest;
}

/** Bytes the allocation implies for weights.bin: packed codes + float32 scales (or float kernels). */
export function exportedWeightBytes(
  layers: readonly { params: number; outChannels: number }[],
  bits: BitConfig,
): number {
  return layers.reduce((sum, l, i) => {
    const w = bits[i]?.wBits ?? FLOAT_BITS;
    return sum + (w >= FLOAT_BITS ? 4 * l.params : packedBytes(l.params, w) + 4 * l.outChannels);
  }, 0);
}

export interface ExportedNetwork {
  /** Runs the integer network (weights dequantized from the codes, activations on their grids). */
  model: tf.LayersModel;
  manifest: ExportManifest;
}

function readFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${what} not found` : `cannot read ${what}: ${(e as Error).message}`, {
      file,
    });
  }
}

function slice(buf: Buffer, off: number, bytes: number, file: string, field: string): Uint8Array {
  if (!Number.isInteger(off) || off < 0 || off + bytes > buf.byteLength) {
    throw new UserError(
      `byte range ${off}..${off + bytes} is outside the file (${buf.byteLength} bytes): truncated or corrupt`,
      { file, field },
    );
  }
  return new Uint8Array(buf.buffer, buf.byteOffset + off, bytes);
}

function floats(u8: Uint8Array): Float32Array {
  return new Float32Array(Uint8Array.from(u8).buffer);
}

/** Reads an export directory back into a runnable network. */
export async function loadExport(dir: string): Promise<ExportedNetwork> {
  const mfile = path.join(dir, MANIFEST_JSON);
  let manifest: ExportManifest;
  try {
    manifest = JSON.parse(readFile(mfile, 'export manifest').toString('utf8')) as ExportManifest;
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`not valid JSON: ${(e as Error).message}`, { file: mfile });
  }
  if (manifest.format !== EXPORT_FORMAT || !Array.isArray(manifest.layers) || typeof manifest.topology !== 'object') {
    throw new UserError('not a bitalloc export manifest', { file: mfile, field: '$.format', expected: EXPORT_FORMAT });
  }
  const wfile = path.join(dir, manifest.weightsFile);
  const wbuf = readFile(wfile, 'exported weights');
  if (wbuf.byteLength !== manifest.weightsBytes) {
    throw new UserError(
      `holds ${wbuf.byteLength} bytes, the manifest says ${manifest.weightsBytes} (truncated or corrupt)`,
      { file: wfile },
    );
  }
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON({
      modelTopology: manifest.topology as tf.io.ModelArtifacts['modelTopology'],
    } as Parameters<typeof tf.models.modelFromJSON>[0]);
  } catch (e) {
    throw new UserError(`cannot rebuild the network: ${(e as Error).message}`, { file: mfile, field: '$.topology' });
  }
  manifest.layers.forEach((e, i) => {
    const field = `$.layers[${i}]`;
    const q = model.getLayer(e.name);
    if (!(q instanceof QuantLayerClass))
      throw new UserError(`layer '${e.name}' is not a quantized layer in the topology`, { file: mfile, field });
    const bytes = slice(wbuf, e.weightsOffset, e.weightsBytes, wfile, `${mfile} ${field}.weightsOffset`);
    tf.tidy(() => {
      let kernel: tf.Tensor;
      if (e.encoding === 'float32') {
        kernel = tf.tensor(floats(bytes), e.kernelShape);
      } else {
        const codes = unpackCodes(bytes, e.params, e.wBits);
        const sc = floats(slice(wbuf, e.scalesOffset ?? -1, e.scalesBytes, wfile, `${mfile} ${field}.scalesOffset`));
        kernel = tf.mul(
          tf.tensor(Float32Array.from(codes), e.kernelShape),
          tf.reshape(tf.tensor(sc), q.channelShape()),
        );
      }
      q.getKernel().write(kernel);
      const b = q.getBias();
      if (b && e.bias) b.write(tf.tensor(Float32Array.from(e.bias)));
    });
  });
  if (manifest.floatWeightsFile && manifest.floatWeights.length) {
    const ffile = path.join(dir, manifest.floatWeightsFile);
    const fbuf = readFile(ffile, 'float weights');
    const byLayer = new Map<string, ExtraWeight[]>();
    for (const w of manifest.floatWeights) byLayer.set(w.layer, [...(byLayer.get(w.layer) ?? []), w]);
    for (const [name, ws] of byLayer) {
      const tensors = ws
        .sort((a, b) => a.index - b.index)
        .map((w, j) =>
          tf.tensor(floats(slice(fbuf, w.offset, w.bytes, ffile, `${mfile} $.floatWeights[${j}]`)), w.shape),
        );
      model.getLayer(name).setWeights(tensors);
      tf.dispose(tensors);
    }
  }
  return { model, manifest };
}
