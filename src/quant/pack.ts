/**
 * Dense bit packing of integer weight codes.
 * - b in 2..8 and 16: b-bit two's complement fields, packed back to back, least significant bit
 *   first (bit i of the stream is bit i%8 of byte floor(i/8)); 8 bits = int8, 16 = int16 LE.
 * - b = 1: one bit per weight, 1 = +1, 0 = -1.
 * The packed size of n codes is ceil(n * b / 8) bytes.
 */

export function packedBytes(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}

export function packCodes(codes: ArrayLike<number>, bits: number): Uint8Array {
  const out = new Uint8Array(packedBytes(codes.length, bits));
  const mask = bits >= 32 ? 0xffffffff : 2 ** bits - 1;
  let bitPos = 0;
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    let u: number;
    if (bits === 1) u = c > 0 ? 1 : 0;
    else {
      const lo = -(2 ** (bits - 1));
      const hi = 2 ** (bits - 1) - 1;
      if (!Number.isInteger(c) || c < lo || c > hi) throw new Error(`code ${c} at ${i} does not fit ${bits} bits`);
      u = (c < 0 ? c + 2 ** bits : c) & mask;
    }
    for (let b = 0; b < bits;) {
      const byte = bitPos >> 3;
      const off = bitPos & 7;
      const take = Math.min(8 - off, bits - b);
      const part = (u >>> b) & ((1 << take) - 1);
      out[byte] = out[byte] | (part << off);
      b += take;
      bitPos += take;
    }
  }
  return out;
}

export function unpackCodes(bytes: Uint8Array, count: number, bits: number): Int32Array {
  if (bytes.length < packedBytes(count, bits))
    throw new Error(`need ${packedBytes(count, bits)} bytes, got ${bytes.length}`);
  const out = new Int32Array(count);
  let bitPos = 0;
  for (let i = 0; i < count; i++) {
    let u = 0;
    for (let b = 0; b < bits;) {
      const byte = bitPos >> 3;
      const off = bitPos & 7;
      const take = Math.min(8 - off, bits - b);
      u |= ((bytes[byte] >> off) & ((1 << take) - 1)) << b;
      b += take;
      bitPos += take;
    }
    if (bits === 1) out[i] = u ? 1 : -1;
    else out[i] = u >= 2 ** (bits - 1) ? u - 2 ** bits : u;
  }
  return out;
}
