/**
 * The cost model and its table. For every (layer, wBits, aBits) of the table's bit choices:
 *
 *   compute   = the profile's compute model (cycles, energy, the bits data runs at)
 *   traffic   = weights at their bits (with scales and bias) + input and output activations at the
 *               layer's aBits, times the re-fetch counts of the compute model; the off-chip part of it
 *               / bandwidth is the memory term. Output activations are counted at the layer's own
 *               aBits: the layer writes its output at the precision it computes in (the next layer's
 *               quantizer may narrow it further). This keeps every layer's cost a function of its own
 *               bits, which is what makes a per-layer table (and a lookup-and-sum) exact.
 *   latency   = max(compute, memory) + per-layer overhead            (roofline, the default)
 *               with memory.model "scalesim" (systolic arrays): max(compute, each read port's
 *               cycles) + the ofmap's drain stalls + per-layer overhead, with SCALE-Sim's traffic
 *               (im2col ifmap re-reads, per-fold partial sums; memory-scalesim.ts)
 *   energy    = compute energy + traffic x pJ/bit per level + static power x latency
 *   size      = weight bytes at wBits (+ per-channel scales, + bias/BN at 32 bits)
 *   peak      = (input + output + live residual elements) x aBits / 8, per layer; the largest
 *               over the layers is the peak memory, checked against SRAM; size against flash.
 *
 * Every analytic compute model is monotonic in bits, and so are traffic, the roofline and the sums.
 * Numbers a user supplies (expression and lookup profiles) may not be: the table then takes the
 * monotone envelope over its bit grid, cost(w, a) = min over w' >= w, a' >= a of cost(w', a'),
 * because data quantized to w bits can always run as w' >= w bits. A warning says how many entries
 * this changed.
 *
 * costAllocation is a lookup and a sum over typed arrays; it allocates only its result.
 */
import { isUserError, UserError } from '../errors.js';
import { log } from '../log.js';
import type { BitConfig, LayerInfo } from '../models/layer-info.js';
import type { AllocationCost, CostTable, FitViolation, LayerCost } from './api.js';
import { layerGeometry, newComputeResult, type LayerGeometry } from './compute/types.js';
import { scalesimLayerMemory } from './memory-scalesim.js';
import type { SystolicSpec } from './profile-types.js';
import type { Profile } from './profiles.js';
import { activationBytes, weightStorageBytes } from './storage.js';

/** Bit-widths a table covers unless told otherwise: 1..8, 16 and 32 (float). */
export const DEFAULT_BIT_CHOICES: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 16, 32];

const NO_VIOLATIONS: readonly FitViolation[] = Object.freeze([]);
const MAX_BITS = 32;

/** The bit choices to use for a profile: a lookup profile's measured widths, else the defaults. */
export function profileBitChoices(profile: Profile): number[] {
  return profile.compute.supportedBits() ?? [...DEFAULT_BIT_CHOICES];
}

function checkBitChoices(bitChoices: readonly number[]): number[] {
  const sorted = [...new Set(bitChoices)].sort((a, b) => a - b);
  const bad = sorted.filter((b) => !Number.isInteger(b) || b < 1 || b > MAX_BITS);
  if (sorted.length === 0 || bad.length > 0) {
    throw new UserError(`invalid bit choices ${JSON.stringify(bitChoices)}`, {
      field: 'bitChoices',
      expected: 'integers from 1 to 32',
    });
  }
  return sorted;
}

class Table implements CostTable {
  readonly profileId: string;
  readonly layers: readonly LayerInfo[];
  readonly bitChoices: readonly number[];
  private readonly nb: number;
  /** bits -> index in bitChoices, -1 when not covered. */
  private readonly bitIndex: Int8Array;
  private readonly latencyMs: Float64Array;
  private readonly energyUj: Float64Array;
  private readonly actBytes: Float64Array;
  /** Per (layer, wBits index). */
  private readonly weightBytes: Float64Array;
  private readonly costs: LayerCost[];
  private readonly flashBytes: number;
  private readonly sramBytes: number;

  constructor(
    readonly profile: Profile,
    layers: readonly LayerInfo[],
    bitChoices: number[],
    data: {
      latencyMs: Float64Array;
      energyUj: Float64Array;
      actBytes: Float64Array;
      weightBytes: Float64Array;
      costs: LayerCost[];
    },
  ) {
    this.profileId = profile.id;
    this.layers = layers;
    this.bitChoices = Object.freeze(bitChoices);
    this.nb = bitChoices.length;
    this.bitIndex = new Int8Array(MAX_BITS + 1).fill(-1);
    bitChoices.forEach((b, i) => (this.bitIndex[b] = i));
    this.latencyMs = data.latencyMs;
    this.energyUj = data.energyUj;
    this.actBytes = data.actBytes;
    this.weightBytes = data.weightBytes;
    this.costs = data.costs;
    this.flashBytes = profile.spec.limits?.flashBytes ?? Infinity;
    this.sramBytes = profile.spec.limits?.sramBytes ?? Infinity;
  }

  private index(bits: number, what: string, layer: number): number {
    const i = bits >= 0 && bits <= MAX_BITS ? (this.bitIndex[bits] ?? -1) : -1;
    if (i < 0) {
      throw new UserError(
        `${what} ${bits} of layer ${layer} (${this.layers[layer]?.name ?? '?'}) is not covered by the cost table`,
        {
          field: what,
          expected: `one of ${this.bitChoices.join(', ')}`,
        },
      );
    }
    return i;
  }

  layerCost(layerIndex: number, wBits: number, aBits: number): LayerCost {
    if (!(layerIndex >= 0 && layerIndex < this.layers.length) || !Number.isInteger(layerIndex)) {
      throw new UserError(`layer index ${layerIndex} is out of range`, { expected: `0..${this.layers.length - 1}` });
    }
    const k =
      (layerIndex * this.nb + this.index(wBits, 'wBits', layerIndex)) * this.nb +
      this.index(aBits, 'aBits', layerIndex);
    return this.costs[k];
  }

  costAllocation(bits: BitConfig): AllocationCost {
    const L = this.layers.length;
    if (bits.length !== L) {
      throw new UserError(`a bit allocation for this model needs ${L} layers, got ${bits.length}`, { field: 'bits' });
    }
    const nb = this.nb;
    const idx = this.bitIndex;
    let latency = 0;
    let energy = 0;
    let size = 0;
    let peak = -1;
    let peakLayer = 0;
    const layers = new Array<LayerCost>(L);
    for (let i = 0; i < L; i++) {
      const b = bits[i];
      const wi = idx[b.wBits] ?? -1;
      const ai = idx[b.aBits] ?? -1;
      if (wi < 0 || ai < 0) {
        this.index(b.wBits, 'wBits', i);
        this.index(b.aBits, 'aBits', i);
      }
      const k = (i * nb + wi) * nb + ai;
      latency += this.latencyMs[k];
      energy += this.energyUj[k];
      size += this.weightBytes[i * nb + wi];
      const act = this.actBytes[k];
      if (act > peak) {
        peak = act;
        peakLayer = i;
      }
      layers[i] = this.costs[k];
    }
    const fits = size <= this.flashBytes && peak <= this.sramBytes;
    return {
      latencyMs: latency,
      energyUj: energy,
      sizeBytes: size,
      peakMemoryBytes: Math.max(peak, 0),
      peakLayerIndex: peakLayer,
      fits,
      violations: fits ? NO_VIOLATIONS : this.violations(bits, size),
      layers,
    };
  }

  private violations(bits: BitConfig, size: number): FitViolation[] {
    const out: FitViolation[] = [];
    const nb = this.nb;
    if (size > this.flashBytes) {
      let worst = 0;
      let worstBytes = -1;
      bits.forEach((b, i) => {
        const wb = this.weightBytes[i * nb + this.bitIndex[b.wBits]];
        if (wb > worstBytes) {
          worstBytes = wb;
          worst = i;
        }
      });
      out.push({
        limit: 'flash',
        layerIndex: worst,
        layerName: this.layers[worst].name,
        bytes: size,
        limitBytes: this.flashBytes,
      });
    }
    bits.forEach((b, i) => {
      const k = (i * nb + this.bitIndex[b.wBits]) * nb + this.bitIndex[b.aBits];
      const act = this.actBytes[k];
      if (act > this.sramBytes) {
        out.push({
          limit: 'sram',
          layerIndex: i,
          layerName: this.layers[i].name,
          bytes: act,
          limitBytes: this.sramBytes,
        });
      }
    });
    return out;
  }
}

/**
 * Precomputes the cost of every (layer, wBits, aBits) over `bitChoices` for `layers` on `profile`.
 * Throws a UserError when the profile cannot cost some pair (a lookup table without the entry, a mode
 * table without a wide enough mode).
 */
export function buildCostTable(
  profile: Profile,
  layers: readonly LayerInfo[],
  bitChoices: readonly number[] = profileBitChoices(profile),
  opts: { quiet?: boolean } = {},
): CostTable {
  const choices = checkBitChoices(bitChoices);
  const nb = choices.length;
  const L = layers.length;
  const n = L * nb * nb;
  const spec = profile.spec;
  const compute = profile.compute;
  const mem = profile.memory;
  const batch = spec.batchSize;
  const clockKHz = spec.clockMHz * 1000;
  const overheadCycles = spec.perLayerOverheadCycles ?? 0;
  const overheadMs = (spec.perLayerOverheadUs ?? 0) / 1000;
  const staticMw = spec.staticPowerMw ?? 0;
  const ports = mem?.ports ?? null;
  const systolicSpec = ports ? (spec.compute as SystolicSpec) : null;

  // Numbers a user supplies are made monotonic over a grid that does not depend on the bits asked
  // for (the requested widths plus a lookup table's measured widths, or the default widths), so that
  // `simulate` (the widths an allocation uses) and `table` (all widths) cost a pair the same way.
  const grid = compute.userSupplied
    ? checkBitChoices([...choices, ...(compute.supportedBits() ?? DEFAULT_BIT_CHOICES)])
    : choices;
  const ng = grid.length;
  const requested = new Set(choices);
  const gridIndex = new Int8Array(MAX_BITS + 1).fill(-1);
  grid.forEach((b, i) => (gridIndex[b] = i));
  const gn = L * ng * ng;
  const cCycles = new Float64Array(gn);
  const cEnergy = new Float64Array(gn);
  const execW = new Uint8Array(gn);
  const execA = new Uint8Array(gn);
  const trafficW = new Float64Array(gn);
  const trafficI = new Float64Array(gn);
  const trafficO = new Float64Array(gn);
  const boundOverride = new Uint8Array(gn);
  const geoms: LayerGeometry[] = layers.map((l) => layerGeometry(l, batch));
  const r = newComputeResult();
  for (let i = 0; i < L; i++) {
    const g = geoms[i];
    for (let wi = 0; wi < ng; wi++) {
      for (let ai = 0; ai < ng; ai++) {
        const k = (i * ng + wi) * ng + ai;
        const w = grid[wi];
        const a = grid[ai];
        if (requested.has(w) && requested.has(a)) compute.evaluate(g, w, a, r);
        else {
          // a pair only on the grid: one a lookup table lacks can only be replaced by a wider one
          try {
            compute.evaluate(g, w, a, r);
          } catch (e) {
            if (!isUserError(e)) throw e;
            r.cycles = Infinity;
            r.energyPJ = Infinity;
            r.execWBits = w;
            r.execABits = a;
          }
        }
        cCycles[k] = r.cycles;
        cEnergy[k] = r.energyPJ;
        execW[k] = r.execWBits;
        execA[k] = r.execABits;
        trafficW[k] = r.weightTraffic;
        trafficI[k] = r.inputTraffic;
        trafficO[k] = r.outputTraffic;
        boundOverride[k] = r.boundOverride;
      }
    }
  }
  if (compute.userSupplied) {
    const rose = new Map<number, string[]>();
    const note = (what: string) => (k: number) => rose.set(k, [...(rose.get(k) ?? []), what]);
    monotoneEnvelope(cCycles, L, ng, note('latency'));
    monotoneEnvelope(cEnergy, L, ng, note('energy'));
    if (rose.size > 0 && !opts.quiet) {
      const named = [...rose.entries()]
        .sort((x, y) => x[0] - y[0])
        .map(([k, what]) => {
          const l = Math.floor(k / (ng * ng));
          const w = grid[Math.floor(k / ng) % ng];
          const a = grid[k % ng];
          return `layer '${layers[l].name}' at W${w}A${a} (${what.join(', ')})`;
        });
      log.warn(
        `profile ${profile.id}: ${rose.size} cost${rose.size === 1 ? '' : 's'} rose when bits were lowered: ${named.slice(0, 5).join('; ')}` +
          `${named.length > 5 ? `; and ${named.length - 5} more` : ''}; costed as the cheaper wider setting (costs stay monotonic in bits)`,
      );
    }
  }

  const latencyMs = new Float64Array(n);
  const energyUj = new Float64Array(n);
  const actBytes = new Float64Array(n);
  const weightBytes = new Float64Array(L * nb);
  const costs = new Array<LayerCost>(n);
  for (let i = 0; i < L; i++) {
    const g = geoms[i];
    const layer = layers[i];
    const wAt = g.weightBytesAt;
    for (let wi = 0; wi < nb; wi++) weightBytes[i * nb + wi] = wAt[choices[wi]];
    for (let wi = 0; wi < nb; wi++) {
      for (let ai = 0; ai < nb; ai++) {
        const k = (i * nb + wi) * nb + ai;
        const kg = (i * ng + gridIndex[choices[wi]]) * ng + gridIndex[choices[ai]];
        const ew = execW[kg];
        const ea = execA[kg];
        const inAct = activationBytes(g.inElements, ea);
        const outAct = activationBytes(g.outElements, ea);
        const wBytes = (wAt[ew] ?? weightStorageBytes(layer, ew)) * trafficW[kg];
        const iBytes = inAct * trafficI[kg];
        const oBytes = outAct * trafficO[kg];
        let offChip = 0;
        let memCycles = 0;
        let memPJ = 0;
        let totalCycles = -1;
        const compCycles = cCycles[kg];
        if (mem && ports && systolicSpec) {
          const m = scalesimLayerMemory(systolicSpec, g, ew, ea, compCycles, ports);
          offChip = m.ifmapReadBytes + m.filterReadBytes + m.ofmapWriteBytes;
          memCycles = Math.max(m.ifmapReadCycles, m.filterReadCycles) + m.ofmapStallCycles;
          totalCycles = m.totalCycles;
          memPJ =
            offChip * 8 * mem.offChipPJPerBit +
            8 *
              (m.filterReadBytes * mem.onChipPJPerBit.weights +
                m.ifmapReadBytes * mem.onChipPJPerBit.inputs +
                m.ofmapWriteBytes * mem.onChipPJPerBit.outputs);
        } else if (mem) {
          offChip = mem.offChipWeights * wBytes + mem.offChipInputs * iBytes + mem.offChipOutputs * oBytes;
          memCycles = offChip / mem.bytesPerCycle;
          memPJ =
            offChip * 8 * mem.offChipPJPerBit +
            8 *
              (wBytes * mem.onChipPJPerBit.weights +
                iBytes * mem.onChipPJPerBit.inputs +
                oBytes * mem.onChipPJPerBit.outputs);
        }
        const lat =
          ((totalCycles >= 0 ? totalCycles : Math.max(compCycles, memCycles)) + overheadCycles) / clockKHz + overheadMs;
        const energy = (cEnergy[kg] + memPJ) / 1e6 + staticMw * lat; // mW x ms = uJ
        const act = inAct + outAct + activationBytes(g.liveElements, ea);
        const override = boundOverride[kg];
        latencyMs[k] = lat;
        energyUj[k] = energy;
        actBytes[k] = act;
        costs[k] = {
          latencyMs: lat,
          energyUj: energy,
          computeCycles: compCycles,
          memoryCycles: memCycles,
          bound: override === 2 || (override === 0 && memCycles > compCycles) ? 'memory' : 'compute',
          weightBytes: weightBytes[i * nb + wi],
          activationBytes: act,
          offChipBytes: offChip,
        };
      }
    }
  }
  return new Table(profile, layers, choices, { latencyMs, energyUj, actBytes, weightBytes, costs });
}

/**
 * In place: v[l][w][a] = min over w' >= w, a' >= a of v[l][w'][a'] (indices into the sorted bit grid).
 * Returns how many entries it lowered.
 */
export function monotoneEnvelope(
  v: Float64Array,
  layers: number,
  nb: number,
  onLowered?: (index: number) => void,
): number {
  let changed = 0;
  for (let l = 0; l < layers; l++) {
    const base = l * nb * nb;
    for (let wi = nb - 1; wi >= 0; wi--) {
      for (let ai = nb - 1; ai >= 0; ai--) {
        const k = base + wi * nb + ai;
        let best = v[k];
        if (wi + 1 < nb) best = Math.min(best, v[k + nb]);
        if (ai + 1 < nb) best = Math.min(best, v[k + 1]);
        if (best < v[k] * (1 - 1e-12)) {
          changed++;
          if (onLowered && Number.isFinite(v[k])) onLowered(k);
        }
        v[k] = best;
      }
    }
  }
  return changed;
}
