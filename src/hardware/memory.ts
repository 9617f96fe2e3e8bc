/**
 * The memory hierarchy of a profile, reduced to what the cost model needs per layer.
 *
 * - Off-chip (DRAM, or flash on a microcontroller): the kinds of data it `holds` (default weights,
 *   inputs and outputs) cross its interface once per layer (more when a systolic array re-fetches);
 *   their bytes / bandwidth is the roofline's memory term, and every bit costs `pJPerBit`.
 * - On-chip buffers: each bit of the kinds a buffer holds is written into it once and read once
 *   (readPJPerBit + writePJPerBit). Reuse inside the array is in the compute energy.
 *
 * `memory.model` says how traffic turns into time: "roofline" (the default) as above, or "scalesim"
 * for systolic arrays: one port per on-chip buffer, im2col re-reads, preload and stalls of
 * SCALE-Sim v2's double-buffered memory (memory-scalesim.ts).
 */
import type { ScalesimPorts } from './memory-scalesim.js';
import { DATA_KINDS, type DataKind, type MemoryModelName, type MemorySpec, type ProfileSpec } from './profile-types.js';

export interface MemoryModel {
  readonly model: MemoryModelName;
  /** "scalesim" only: the three buffers and their ports. */
  readonly ports: ScalesimPorts | null;
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

const PORT_NAMES: Readonly<Record<DataKind, string>> = { inputs: 'ifmap', weights: 'filter', outputs: 'ofmap' };

/** The buffers and ports of a "scalesim" memory; problems (JSON path first) when the profile lacks them. */
function scalesimPorts(
  profile: ProfileSpec,
  spec: MemorySpec,
  clockMHz: number,
  problems: string[],
): ScalesimPorts | null {
  if (profile.compute.model !== 'systolic') {
    problems.push(`$.memory.model: "scalesim" needs compute.model "systolic", got "${profile.compute.model}"`);
    return null;
  }
  const buffers = spec.onChip ?? [];
  const size: Partial<Record<DataKind, number>> = {};
  const bw: Partial<Record<DataKind, number>> = {};
  for (const kind of DATA_KINDS) {
    const i = buffers.findIndex((b) => b.holds.includes(kind));
    const b = buffers[i];
    if (!b) continue; // the systolic model reports the missing buffer
    if (b.holds.length > 1) {
      problems.push(
        `$.memory.onChip[${i}].holds: memory.model "scalesim" needs one buffer per kind (ifmap, filter, ofmap), got ${b.holds.join(', ')}`,
      );
    }
    if (b.bandwidthGBps === undefined) {
      problems.push(
        `$.memory.onChip[${i}].bandwidthGBps: required with memory.model "scalesim" (the ${PORT_NAMES[kind]} buffer's port to off-chip memory)`,
      );
    }
    size[kind] = b.sizeBytes;
    bw[kind] = ((b.bandwidthGBps ?? 1) * 1e9) / (clockMHz * 1e6);
  }
  return {
    ifmapBytes: size.inputs ?? 1,
    filterBytes: size.weights ?? 1,
    ofmapBytes: size.outputs ?? 1,
    ifmapBytesPerCycle: bw.inputs ?? 1,
    filterBytesPerCycle: bw.weights ?? 1,
    ofmapBytesPerCycle: bw.outputs ?? 1,
  };
}

export function createMemoryModel(profile: ProfileSpec, problems: string[]): MemoryModel | null {
  const spec = profile.memory;
  if (!spec) return null;
  const clockMHz = profile.clockMHz;
  const model = spec.model ?? 'roofline';
  const ports = model === 'scalesim' ? scalesimPorts(profile, spec, clockMHz, problems) : null;
  const holds = new Set<DataKind>(spec.offChip.holds ?? DATA_KINDS);
  const onChip: Record<DataKind, number> = { weights: 0, inputs: 0, outputs: 0 };
  for (const b of spec.onChip ?? []) {
    for (const k of b.holds) onChip[k] += b.readPJPerBit + b.writePJPerBit;
  }
  return {
    model,
    ports,
    bytesPerCycle: (spec.offChip.bandwidthGBps * 1e9) / (clockMHz * 1e6),
    offChipWeights: holds.has('weights') ? 1 : 0,
    offChipInputs: holds.has('inputs') ? 1 : 0,
    offChipOutputs: holds.has('outputs') ? 1 : 0,
    offChipPJPerBit: spec.offChip.pJPerBit,
    onChipPJPerBit: onChip,
  };
}
