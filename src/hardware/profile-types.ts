/**
 * The hardware profile as written in JSON (hardware-profiles/schema.json is the authority; these
 * types mirror it). Units are in the field names.
 */

export type DataKind = 'weights' | 'inputs' | 'outputs';
export const DATA_KINDS: readonly DataKind[] = ['weights', 'inputs', 'outputs'];

export interface ProfileSource {
  /** Which numbers of the profile this source gives. */
  what: string;
  /** Paper, datasheet or measurement. */
  source: string;
  /** True when the numbers are estimates. */
  estimate: boolean;
}

export interface BitSerialSpec {
  model: 'bit-serial';
  /** Which operands are processed one bit per step: both (BISMO, Loom) or activations only (Stripes). */
  operands?: 'both' | 'activations';
  /** MACs per cycle when every serial operand has 1 bit. */
  serialMacsPerCycle: number;
  /** 'activations' only: width of the bit-parallel weight path (default 16). */
  parallelBits?: number;
  efficiency?: number;
  /** Energy per MAC at 1 serial bit (scales with the serial bit product). */
  pJPerSerialMac: number;
}

export interface BitFusionSpec {
  model: 'bit-fusion';
  macsPerCycleAt8x8: number;
  efficiency?: number;
  /** Energy of the whole array per busy cycle. */
  pJPerCycle: number;
}

export interface ModeSpec {
  name?: string;
  wBits: number;
  aBits: number;
  macsPerCycle: number;
  efficiency?: number;
  pJPerMac: number;
}

export interface ModesSpec {
  model: 'modes';
  efficiency?: number;
  modes: ModeSpec[];
}

export type BitScalingKind = 'fixed' | 'bit-fusion' | 'bit-serial' | 'bit-serial-activations';

export interface SystolicSpec {
  model: 'systolic';
  rows: number;
  cols: number;
  dataflow: 'ws' | 'os' | 'is';
  bitScaling: { kind: BitScalingKind; nativeBits?: number };
  /** Energy of one MAC at native bits. */
  pJPerMac: number;
}

export interface ExpressionSpec {
  model: 'expression';
  /** Compute cycles of one layer (mathjs expression). */
  cycles: string;
  /** Compute energy of one layer in pJ (mathjs expression). */
  energyPJ: string;
  constants?: Record<string, number>;
}

export interface LookupEntry {
  layer: string;
  wBits: number;
  aBits: number;
  latencyMs: number;
  energyUj: number;
  bound?: 'compute' | 'memory';
}

export interface LookupSpec {
  model: 'lookup';
  /** The model the measurements are for. */
  network?: string;
  /** Table file (.json or .csv), relative to the profile file. */
  table?: string;
  entries?: LookupEntry[];
}

export type ComputeSpec = BitSerialSpec | BitFusionSpec | ModesSpec | SystolicSpec | ExpressionSpec | LookupSpec;
export type ComputeModelName = ComputeSpec['model'];
export const COMPUTE_MODEL_NAMES: readonly ComputeModelName[] = [
  'bit-serial',
  'bit-fusion',
  'modes',
  'systolic',
  'expression',
  'lookup',
];

export interface OffChipSpec {
  name?: string;
  bandwidthGBps: number;
  pJPerBit: number;
  /** Data that lives off-chip (default all three kinds). */
  holds?: DataKind[];
}

export interface OnChipBufferSpec {
  name: string;
  sizeBytes: number;
  holds: DataKind[];
  readPJPerBit: number;
  writePJPerBit: number;
  /** memory.model "scalesim": bandwidth of this buffer's own port to off-chip memory. */
  bandwidthGBps?: number;
}

/**
 * How off-chip traffic turns into time: "roofline" (default): all traffic through one port,
 * latency = max(compute, memory); "scalesim" (systolic compute only): SCALE-Sim v2's memory system,
 * one port per on-chip buffer (ifmap, filter, ofmap), see memory-scalesim.ts.
 */
export type MemoryModelName = 'roofline' | 'scalesim';

export interface MemorySpec {
  model?: MemoryModelName;
  offChip: OffChipSpec;
  onChip?: OnChipBufferSpec[];
}

export interface LimitsSpec {
  /** Room for the weights (model size is checked against it). */
  flashBytes?: number;
  /** Room for the activations (peak memory is checked against it). */
  sramBytes?: number;
}

export interface ProfileSpec {
  $schema?: string;
  id: string;
  description: string;
  sources: ProfileSource[];
  clockMHz: number;
  batchSize: number;
  compute: ComputeSpec;
  /** Required except for lookup profiles. */
  memory?: MemorySpec;
  staticPowerMw?: number;
  perLayerOverheadCycles?: number;
  perLayerOverheadUs?: number;
  limits?: LimitsSpec;
}
