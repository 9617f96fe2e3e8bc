/**
 * ONNX: reading ONNX CNNs as quantizable networks, writing quantized networks as ONNX (QDQ and
 * QONNX), and the fake-quantized evaluation graph that runs the search's forward passes in
 * onnxruntime-node.
 */
import './layers.js';

export { SUPPORTED_OPS, importOnnx, importOnnxFile, type OnnxImport } from './import.js';
export { decodeModel, encodeModel, type ModelProto } from './proto.js';

/** Whether a model spec names an ONNX file. */
export function isOnnxPath(spec: string): boolean {
  return /\.onnx$/i.test(spec);
}
