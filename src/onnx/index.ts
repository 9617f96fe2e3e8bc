/**
 * ONNX: reading ONNX CNNs as quantizable networks, writing quantized networks as ONNX (QDQ and
 * QONNX), and the fake-quantized evaluation graph that runs the search's forward passes in
 * onnxruntime-node.
 */
import type { QuantizerKind } from '../quant/api.js';
import { QuantNetwork } from '../quant/network.js';
import { quantizeModel } from '../models/user-model.js';
import { importOnnxFile } from './import.js';
import './layers.js';

export { SUPPORTED_OPS, importOnnx, importOnnxFile, type OnnxImport } from './import.js';
export { decodeModel, encodeModel, type ModelProto } from './proto.js';

/** Whether a model spec names an ONNX file. */
export function isOnnxPath(spec: string): boolean {
  return /\.onnx$/i.test(spec);
}

/** Loads an ONNX file as a quantizable network (every layer at 32 bits until setBits). */
export function loadOnnxModel(file: string, opts: { quantizer?: QuantizerKind; seed?: number; inputShape?: number[] } = {}): QuantNetwork {
  const imp = importOnnxFile(file, { inputShape: opts.inputShape });
  try {
    return new QuantNetwork(quantizeModel(imp.model, { quantizer: opts.quantizer, seed: opts.seed }, file));
  } finally {
    imp.model.dispose();
  }
}
