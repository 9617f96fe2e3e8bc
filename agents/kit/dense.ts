/**
 * A dense layer's forward pass on plain arrays, for acting: a policy's weights are read once after each
 * update (tfjs variables stay the source of truth and do the training), and each step of an episode then
 * costs microseconds instead of a dozen tfjs kernel launches.
 */
export function denseForward(input: Float32Array, w: Float32Array, b: Float32Array, tanh: boolean): Float32Array {
  const n = b.length;
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = b[j];
  for (let i = 0; i < input.length; i++) {
    const xi = input[i];
    if (xi === 0) continue;
    const row = i * n;
    for (let j = 0; j < n; j++) out[j] = out[j] + xi * w[row + j];
  }
  if (tanh) for (let j = 0; j < n; j++) out[j] = Math.tanh(out[j]);
  return out;
}
