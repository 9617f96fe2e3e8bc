/** The tolerance unit of the ONNX comparisons (tests/onnx-export.test.ts, bench/int-eval.ts). */
import type { QuantNetwork } from '../src/quant/network.js';

/** One quantization step of the classifier's input, carried to the logits: scale * max_j sum_i |W_ij|. */
export function logitStep(net: QuantNetwork): number {
  const last = net.qlayers[net.qlayers.length - 1];
  const g = last.inferenceGrid();
  const p = last.exportParams();
  const k = p.codes
    ? Float32Array.from(p.codes, (c, e) => c * p.scales![e % p.scales!.length])
    : (p.kernel as Float32Array);
  const out = last.outChannels;
  let worst = 0;
  for (let j = 0; j < out; j++) {
    let s = 0;
    for (let e = j; e < k.length; e += out) s += Math.abs(k[e]);
    worst = Math.max(worst, s);
  }
  return (g ? g.scale : 0) * worst;
}
