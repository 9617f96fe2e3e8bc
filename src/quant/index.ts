/**
 * Quantization: fake quantizers (STE, LSQ, PACT), quantized Conv2D / DepthwiseConv2D / Dense
 * layers, the QuantizedNetwork with run-time bits, checkpoints, and the integer export.
 */
export type { QuantizedNetwork, QuantizerKind } from './api.js';
export { QuantNetwork } from './network.js';
export { QConv2D, QDepthwiseConv2D, QDense, QuantLayer, isQuantLayer, type FixedActGrid } from './layers.js';
export * as quantizers from './quantizers.js';
export { saveNetwork, loadNetwork, BITS_JSON } from './save.js';
export {
  exportNetwork,
  loadExport,
  exportedWeightBytes,
  type ExportManifest,
  type ExportedLayer,
  type ExportedNetwork,
} from './export.js';
export { packCodes, unpackCodes, packedBytes } from './pack.js';
export { readBitsFile } from './bits-file.js';
