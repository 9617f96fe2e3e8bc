/**
 * How the time of one MAC follows the operand bits, as a factor relative to the device's native
 * width. Every factor is non-decreasing in both bit-widths, which is what makes compute costs
 * monotonic in bits by construction.
 */
import type { BitScalingKind } from './profile-types.js';

/**
 * Bit Fusion (Sharma et al., ISCA 2018), per operand: 1-2 bits take 1/4 of the 8-bit time, 3-4 bits
 * 1/2, 5-8 bits 1 (3 runs as 4, 5-7 as 8, 1 as 2); above 8 bits each wide operand takes ceil(bits/8)
 * passes (16 bits = 2x, so 16x16 = 4x the 8x8 cycles).
 */
export function fusionOperandFactor(bits: number): number {
  if (bits <= 2) return 0.25;
  if (bits <= 4) return 0.5;
  if (bits <= 8) return 1;
  return Math.ceil(bits / 8);
}

/** Bit Fusion time relative to 8x8: the inverse of floor(8/max(a,2)) x floor(8/max(w,2)) up to 8 bits. */
export function fusionFactor(wBits: number, aBits: number): number {
  return fusionOperandFactor(wBits) * fusionOperandFactor(aBits);
}

/** A fixed-width datapath: narrower operands run at native width; wider ones take ceil(bits/native) passes. */
export function fixedOperandFactor(bits: number, nativeBits: number): number {
  return bits <= nativeBits ? 1 : Math.ceil(bits / nativeBits);
}

/** Time per MAC relative to a native-width MAC, for a systolic PE with the given scaling. */
export function timeFactor(kind: BitScalingKind, nativeBits: number, wBits: number, aBits: number): number {
  switch (kind) {
    case 'fixed':
      return fixedOperandFactor(wBits, nativeBits) * fixedOperandFactor(aBits, nativeBits);
    case 'bit-fusion':
      return fusionFactor(wBits, aBits);
    case 'bit-serial':
      return (wBits * aBits) / (nativeBits * nativeBits);
    case 'bit-serial-activations':
      return (aBits / nativeBits) * fixedOperandFactor(wBits, nativeBits);
  }
}
