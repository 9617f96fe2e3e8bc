/**
 * The memory hierarchy of a profile, reduced to what the cost model needs per layer.
 *
 * - Off-chip (DRAM, or flash on a microcontroller): the kinds of data it `holds` (default weights,
 *   inputs and outputs) cross its interface once per layer (more when a systolic array re-fetches);
 *   their bytes / bandwidth is the roofline's memory term, and every bit costs `pJPerBit`.
 * - On-chip buffers: each bit of the kinds a buffer holds is written into it once and read once
 *   (readPJPerBit + writePJPerBit). Reuse inside the array is in the compute energy.
 */
import { DATA_KINDS, type DataKind, type MemorySpec } from './profile-types.js';

export interface MemoryModel {
  /** Off-chip bytes per clock cycle. */
  readonly bytesPerCycle: number;
  /** 1 when the kind lives off-chip, else 0: weights, inputs, outputs. */
  readonly offChipWeights: number;
  readonly offChipInputs: number;
  readonly offChipOutputs: number;
  readonly offChipPJPerBit: number;
  /** On-chip pJ per bit (write + read, summed over the buffers holding the kind). */
  readonly onChipPJPerBit: Readonly<Record<DataKind, number>>;
}

export function createMemoryModel(spec: MemorySpec, clockMHz: number): MemoryModel {
  const holds = new Set<DataKind>(spec.offChip.holds ?? DATA_KINDS);
  const onChip: Record<DataKind, number> = { weights: 0, inputs: 0, outputs: 0 };
  for (const b of spec.onChip ?? []) {
    for (const k of b.holds) onChip[k] += b.readPJPerBit + b.writePJPerBit;
  }
  return {
    bytesPerCycle: (spec.offChip.bandwidthGBps * 1e9) / (clockMHz * 1e6),
    offChipWeights: holds.has('weights') ? 1 : 0,
    offChipInputs: holds.has('inputs') ? 1 : 0,
    offChipOutputs: holds.has('outputs') ? 1 : 0,
    offChipPJPerBit: spec.offChip.pJPerBit,
    onChipPJPerBit: onChip,
  };
}
