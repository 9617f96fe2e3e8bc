/**
 * The layer inventory types (LayerInfo, LayerBits, BitConfig) live with the quantized layers in src/quant, which
 * sits below models; this file re-exports them for the folders above that speak of a model's layers.
 */
export * from '../quant/layer-info.js';
