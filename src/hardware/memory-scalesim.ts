/**
 * A memory model for systolic arrays that follows SCALE-Sim v2's (scalesim/memory/
 * double_buffered_scratchpad_mem.py, read_buffer.py, write_buffer.py, in its USER bandwidth mode),
 * reduced to closed formulas per layer. Chosen by `memory.model: "scalesim"` with `compute.model:
 * "systolic"`.
 *
 * The device has three on-chip buffers, each with its own port to off-chip memory: ifmap (holds
 * inputs), filter (weights) and ofmap (outputs), port bandwidth `bandwidthGBps` per buffer. Words are
 * the layer's elements at its bits (SCALE-Sim: 1-byte words), so bytes = elements x bits / 8.
 *
 * Reads (ifmap, filter). The array asks for operands in the order of its folds (column folds outer,
 * row folds inner). What a read buffer streams is the operand matrix as the array uses it: the ifmap
 * as im2col rows, P x K words (every output pixel's window, duplicates included: a 3x3 stride-1
 * convolution reads its input about 9 times), the filter as K x N words. The buffer is double
 * buffered with an active half (SCALE-Sim's active fraction 0.5):
 *   - an operand that fits in the active half is read once; so is an operand each of whose tiles is
 *     used by one fold only (ws filter, is ifmap);
 *   - an operand matrix used whole by every column fold (ws and os ifmap, is filter) that does not fit
 *     is streamed again for each column fold; an os filter tile (K x cols) that does not fit is
 *     streamed again for each row fold.
 *   - the first active half is loaded before cycle 0 (SCALE-Sim's preload; not counted in the layer's
 *     cycles), the rest streams at the port's bandwidth while the array computes (the other half
 *     prefetches). The array waits when it gets ahead of the port:
 *       read cycles(port) = (streamed bytes - preloaded bytes) / port bytes per cycle
 *     and the layer takes at least as long as its slowest read port.
 * Writes (ofmap). SCALE-Sim writes every fold's outputs: P x N words per row fold for ws and is
 * (partial sums of each reduction fold), P x N once for os. The write buffer drains a full half to
 * off-chip while the array waits (its drains are not overlapped with compute); the last, partly or
 * fully filled half drains after the layer's last counted cycle:
 *       write stall = (ceil(written bytes / half) - 1) x half / port bytes per cycle   (>= 0)
 * Layer cycles = max(compute, read cycles of each port) + write stall.
 *
 * Where it simplifies SCALE-Sim (it replays every address through the buffers): the stream is treated
 * as uniform over the layer (SCALE-Sim stalls line by line, where demand is bursty; with uniform
 * demand the binding point is the end of the layer); bank conflicts, per-line rounding and the -1
 * padding of partial folds are ignored; an os filter tile that does not fit is charged one pass per
 * row fold (SCALE-Sim's circular buffer may re-read more); depthwise layers are one GEMM per channel,
 * run back to back with one preload for the layer; filter traffic is the weights at their bits
 * (no per-channel scales or bias, which SCALE-Sim does not model).
 *
 * Every term is non-decreasing in the bytes moved, and the bytes and the re-read passes (which depend
 * on whether an operand fits, at its bits) are non-decreasing in the bits, so costs stay monotonic.
 */
import type { SystolicSpec } from './profile-types.js';
import { systolicShape } from './compute/systolic.js';
import type { LayerGeometry } from './compute/types.js';

/** Fraction of each read and write buffer that is active (the rest prefetches or drains), as SCALE-Sim's default. */
export const ACTIVE_FRACTION = 0.5;

export interface ScalesimPorts {
  /** Buffer sizes in bytes. */
  ifmapBytes: number;
  filterBytes: number;
  ofmapBytes: number;
  /** Port bandwidths in bytes per cycle. */
  ifmapBytesPerCycle: number;
  filterBytesPerCycle: number;
  ofmapBytesPerCycle: number;
}

export interface ScalesimLayerMemory {
  /** Bytes each port moves over the layer (the ifmap's im2col re-reads included). */
  ifmapReadBytes: number;
  filterReadBytes: number;
  ofmapWriteBytes: number;
  /** Bytes loaded before cycle 0 (not counted in the cycles). */
  preloadBytes: number;
  /** Cycles each read port needs after the preload; the ofmap's blocking drain stall. */
  ifmapReadCycles: number;
  filterReadCycles: number;
  ofmapStallCycles: number;
  /** Layer cycles: max(compute, read cycles) + ofmap stall. */
  totalCycles: number;
}

/** Re-read passes and streamed words of one GEMM (one group) for the dataflow. */
function streams(spec: SystolicSpec, g: LayerGeometry, wBits: number, aBits: number, p: ScalesimPorts) {
  const s = systolicShape(spec, g);
  const ifmapWords = g.gemmP * g.gemmK;
  const filterWords = g.gemmK * g.gemmN;
  const ofmapWords = g.gemmP * g.gemmN;
  const ifmapActive = Math.ceil(p.ifmapBytes * ACTIVE_FRACTION);
  const filterActive = Math.ceil(p.filterBytes * ACTIVE_FRACTION);
  const ifmapFits = (ifmapWords * aBits) / 8 <= ifmapActive;
  const filterFits = (filterWords * wBits) / 8 <= filterActive;
  let ifmapPasses = 1;
  let filterPasses = 1;
  let ofmapPasses = 1;
  switch (spec.dataflow) {
    case 'ws':
      ifmapPasses = ifmapFits ? 1 : s.colFolds;
      ofmapPasses = s.rowFolds;
      break;
    case 'os': {
      ifmapPasses = ifmapFits ? 1 : s.colFolds;
      const tileFits = (g.gemmK * Math.min(spec.cols, g.gemmN) * wBits) / 8 <= filterActive;
      filterPasses = filterFits || tileFits ? 1 : s.rowFolds;
      break;
    }
    case 'is':
      filterPasses = filterFits ? 1 : s.colFolds;
      ofmapPasses = s.rowFolds;
      break;
  }
  return { ifmapWords, filterWords, ofmapWords, ifmapPasses, filterPasses, ofmapPasses, ifmapActive, filterActive };
}

/** The SCALE-Sim-style memory cost of one layer at (wBits, aBits) given its compute cycles. */
export function scalesimLayerMemory(
  spec: SystolicSpec,
  g: LayerGeometry,
  wBits: number,
  aBits: number,
  computeCycles: number,
  p: ScalesimPorts,
): ScalesimLayerMemory {
  const st = streams(spec, g, wBits, aBits, p);
  const G = g.groups;
  const ifmapOnce = (G * st.ifmapWords * aBits) / 8;
  const filterOnce = (G * st.filterWords * wBits) / 8;
  const ifmapReadBytes = ifmapOnce * st.ifmapPasses;
  const filterReadBytes = filterOnce * st.filterPasses;
  const ofmapWriteBytes = (G * st.ofmapWords * st.ofmapPasses * aBits) / 8;
  const ifmapPre = Math.min(ifmapOnce, st.ifmapActive);
  const filterPre = Math.min(filterOnce, st.filterActive);
  const ifmapReadCycles = (ifmapReadBytes - ifmapPre) / p.ifmapBytesPerCycle;
  const filterReadCycles = (filterReadBytes - filterPre) / p.filterBytesPerCycle;
  const half = p.ofmapBytes - Math.ceil(p.ofmapBytes * ACTIVE_FRACTION);
  const drains = half > 0 ? Math.max(0, Math.ceil(ofmapWriteBytes / half) - 1) : 0;
  const ofmapStallCycles = (drains * half) / p.ofmapBytesPerCycle;
  return {
    ifmapReadBytes,
    filterReadBytes,
    ofmapWriteBytes,
    preloadBytes: ifmapPre + filterPre,
    ifmapReadCycles,
    filterReadCycles,
    ofmapStallCycles,
    totalCycles: Math.max(computeCycles, ifmapReadCycles, filterReadCycles) + ofmapStallCycles,
  };
}
