/**
 * `bitalloc export --format onnx|qonnx`: the quantized network at its allocation as one ONNX file.
 * onnx = QDQ (QuantizeLinear / DequantizeLinear, runs in onnxruntime and most ONNX runtimes);
 * qonnx = QONNX Quant nodes with bit widths (FINN, Brevitas). See graph.ts for how bits map.
 * The allocation and the grids are in the model's metadata_props:
 *   bitalloc.format       onnx-qdq | qonnx
 *   bitalloc.allocation   JSON [{name, wBits, aBits}] in inventory order
 *   bitalloc.input        JSON {layout: "NCHW", shape: [C, H, W]}
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BitConfig } from '../quant/layer-info.js';
import type { QuantNetwork } from '../quant/network.js';
import { writeGraph } from './graph.js';
import { encodeModel } from './proto.js';

export type OnnxExportFormat = 'onnx' | 'qonnx';

export interface OnnxExportSummary {
  file: string;
  format: OnnxExportFormat;
  bytes: number;
  nodes: number;
  layers: { name: string; wBits: number; aBits: number }[];
}

export const ONNX_FILE = 'model.onnx';
export const QONNX_FILE = 'model.qonnx.onnx';

/** Writes the network (at `bits`, or its current bits) into outDir; activation ranges must be calibrated. */
export function exportOnnx(
  net: QuantNetwork,
  outDir: string,
  format: OnnxExportFormat,
  opts: { bits?: BitConfig } = {},
): OnnxExportSummary {
  if (opts.bits) net.setBits(opts.bits);
  const layers = net.qlayers.map((q) => ({ name: q.name, wBits: q.wBits, aBits: q.aBits }));
  const [h, w, c] = net.model.inputs[0].shape.slice(1) as number[];
  const meta = {
    'bitalloc.format': format === 'onnx' ? 'onnx-qdq' : 'qonnx',
    'bitalloc.allocation': JSON.stringify(layers),
    'bitalloc.input': JSON.stringify({ layout: 'NCHW', shape: [c, h, w] }),
  };
  const g = writeGraph(net, format === 'onnx' ? 'qdq' : 'qonnx', meta);
  const bytes = encodeModel(g.model);
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, format === 'onnx' ? ONNX_FILE : QONNX_FILE);
  fs.writeFileSync(file, bytes);
  return { file, format, bytes: bytes.byteLength, nodes: g.model.graph?.node?.length ?? 0, layers };
}
