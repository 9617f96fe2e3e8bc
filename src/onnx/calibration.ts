/**
 * Post-training calibration statistics (src/quant/ptq.ts, collectLayerStats) from onnxruntime: one
 * session over the float evaluation graph (graph.ts, mode `eval` with every quantizer off, zero pads
 * written: WriteOptions.tapInputs) to which, per quantized layer, the statistics of its input are added
 * as graph ops: max (|x| when signed), per-channel sums, and the values at the seeded subsample's
 * positions (a Gather at an index input). Only those small tensors leave the session, so a calibration
 * batch (16 at 224x224) costs about one forward pass and its activations are never held in JS.
 * The subsample draws the same flat NHWC indices from the same per-layer streams as the tfjs path, so
 * the statistics equal it within float tolerance.
 */
import type { Split } from '../data/api.js';
import { splitInputs } from '../data/inputs.js';
import type { QuantNetwork } from '../quant/network.js';
import { log } from '../log.js';
import {
  collectLayerStats,
  LayerStatsAccumulator,
  SAMPLES_PER_BATCH,
  layerRng,
  type LayerStats,
  type StatsCollector,
  type StatsOptions,
} from '../quant/ptq.js';
import { FLOAT_BITS } from '../quant/quantizers.js';
import { ortFallbackReason, type EvalBackendChoice } from './eval-backend.js';
import { writeGraph } from './graph.js';
import {
  DataType,
  attrInt,
  encodeModel,
  intTensor,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';
import { createSession, loadOrt, type OrtModule } from './runtime.js';

export interface OrtStatsOptions {
  /** Intra-op threads (default 2). */
  threads?: number;
}

/** Seconds the last collection spent building its session and running it (for benchmarks). */
export interface OrtStatsTiming {
  buildSeconds: number;
  /** Everything after the build: forward passes and reductions. */
  runSeconds: number;
  /** Of runSeconds: in onnxruntime's runs. */
  forwardSeconds: number;
}

export const lastOrtStatsTiming: OrtStatsTiming = { buildSeconds: 0, runSeconds: 0, forwardSeconds: 0 };

/** Per quantized layer: the names of its reduction outputs and index input, and its input's per-sample shape (tfjs layout). */
interface LayerTap {
  max: string;
  sum: string;
  picked: string;
  index: string;
  /** [H, W, C] or [F]. */
  shape: number[];
}

/**
 * Appends to the tapped float graph, per quantized layer, the statistics of its input x: max (|x| when
 * signed), per-channel sums over the batch and positions, and the values (|x| when signed) at an index
 * input (flat NCHW offsets), and keeps only those as outputs (besides the logits), so that onnxruntime
 * reuses its buffers and hands back kilobytes, not the activations.
 */
function addReductions(model: ModelProto, taps: string[], net: QuantNetwork): LayerTap[] {
  const graph = model.graph as NonNullable<ModelProto['graph']>;
  const nodes = graph.node as NodeProto[];
  const inits = graph.initializer as TensorProto[];
  const outputs: ValueInfoProto[] = (graph.output ?? []).filter((o) => o.name === 'logits');
  const inputs = graph.input as ValueInfoProto[];
  const floatOut = (name: string): ValueInfoProto => ({ name, type: { tensorType: { elemType: DataType.FLOAT } } });
  const node = (opType: string, input: string[], output: string, attribute: NodeProto['attribute'] = []): string => {
    nodes.push({ opType, input, output: [output], name: output, attribute });
    return output;
  };
  inits.push(intTensor('calib_flat', [1], [-1], DataType.INT64));
  inits.push(intTensor('calib_axes4', [3], [0, 2, 3], DataType.INT64));
  inits.push(intTensor('calib_axes2', [1], [0], DataType.INT64));
  const out = net.qlayers.map((q, li) => {
    const x = taps[li];
    const input = q.getInputAt(0);
    const inShape = (Array.isArray(input) ? input[0] : input).shape;
    const shape = inShape.slice(1) as number[];
    // max |x| as max(max x, -min x) and |.| after the Gather: no full-size |x| tensor
    const hi = node('ReduceMax', [x], `calib_hi_${li}`, [attrInt('keepdims', 0)]);
    const max = q.signed
      ? node(
          'Max',
          [hi, node('Neg', [node('ReduceMin', [x], `calib_lo_${li}`, [attrInt('keepdims', 0)])], `calib_nlo_${li}`)],
          `calib_max_${li}`,
        )
      : hi;
    // channel sums: GlobalAveragePool (onnxruntime's fast path) then a sum over the batch; accumulates() scales by H*W
    const pooled = shape.length === 3 ? node('GlobalAveragePool', [x], `calib_gap_${li}`) : x;
    const sum = node('ReduceSum', [pooled, shape.length === 3 ? 'calib_axes4' : 'calib_axes2'], `calib_sum_${li}`, [
      attrInt('keepdims', 0),
    ]);
    const index = `calib_index_${li}`;
    inputs.push({
      name: index,
      type: { tensorType: { elemType: DataType.INT32, shape: { dim: [{ dimParam: `k${li}` }] } } },
    });
    const flat = node('Reshape', [x, 'calib_flat'], `calib_flat_${li}`);
    const gathered = node('Gather', [flat, index], `calib_gather_${li}`, [attrInt('axis', 0)]);
    const picked = q.signed ? node('Abs', [gathered], `calib_picked_${li}`) : gathered;
    outputs.push(floatOut(max), floatOut(sum), floatOut(picked));
    return { max, sum, picked, index, shape };
  });
  graph.output = outputs;
  return out;
}

/**
 * collectLayerStats through onnxruntime. Throws when onnxruntime-node does not load or the network has
 * no ONNX translation (callers choose the engine first: resolveEvalBackend).
 */
export async function collectLayerStatsOrt(
  net: QuantNetwork,
  split: Split,
  opts: StatsOptions & OrtStatsOptions = {},
): Promise<LayerStats[]> {
  const loaded = await loadOrt();
  if (!loaded) throw new Error('onnxruntime-node does not load');
  const ort: OrtModule = loaded;
  const batches = opts.batches ?? 8;
  const size = opts.batchSize ?? 16;
  const n = split.labels.length;
  const seed = opts.seed ?? 1;
  const inputs = splitInputs(split);
  const shape = inputs.shape.slice(1);
  const saved = net.getBits();
  const t0 = performance.now();
  let session: Awaited<ReturnType<typeof createSession>> | null = null;
  const accs = net.qlayers.map(() => new LayerStatsAccumulator());
  const rngs = net.qlayers.map((_, li) => layerRng(seed, li));
  let runSeconds = 0;
  let forwardSeconds = 0;
  try {
    net.setBits(saved.map(() => ({ wBits: FLOAT_BITS, aBits: FLOAT_BITS })));
    const g = writeGraph(net, 'eval', {}, { tapInputs: true });
    if (g.feeds.length > 0) throw new Error('the float evaluation graph has parameter inputs');
    const taps = addReductions(g.model, g.taps as string[], net);
    session = await createSession(ort, encodeModel(g.model), opts.threads ?? 2, { fakeQuant: true });
    const t1 = performance.now();
    for (let b = 0; b < batches && b * size < n; b++) {
      const count = Math.min(size, n - b * size);
      const data = inputs.read(b * size, count);
      const feeds: Record<string, InstanceType<OrtModule['Tensor']>> = {
        [g.inputName]: new ort.Tensor('float32', data, [count, ...shape]),
      };
      // the subsample: flat NHWC indices (the tfjs layout, the same streams as collectLayerStats) as NCHW offsets
      taps.forEach((t, li) => {
        const per = t.shape.reduce((a, c) => a * c, 1);
        const flat = count * per;
        const k = Math.min(SAMPLES_PER_BATCH, flat);
        const idx = new Int32Array(k);
        const channels = t.shape[t.shape.length - 1];
        const spatial = per / channels;
        for (let i = 0; i < k; i++) {
          const f = rngs[li].int(flat);
          if (t.shape.length !== 3) {
            idx[i] = f;
            continue;
          }
          const sample = Math.floor(f / per);
          const within = f - sample * per;
          const c = within % channels;
          idx[i] = sample * per + c * spatial + (within - c) / channels;
        }
        feeds[t.index] = new ort.Tensor('int32', idx, [k]);
      });
      const tr = performance.now();
      const r = await session.run(feeds);
      forwardSeconds += (performance.now() - tr) / 1000;
      taps.forEach((t, li) => {
        const get = (name: string): Float32Array => (r[name] as { data: Float32Array }).data;
        const channels = t.shape[t.shape.length - 1];
        const rows = (count * t.shape.reduce((a, c) => a * c, 1)) / channels;
        const spatial = t.shape.length === 3 ? t.shape[0] * t.shape[1] : 1; // the sums are of per-sample means
        accs[li].add(
          get(t.max)[0],
          Float64Array.from(get(t.sum), (v) => v * spatial),
          rows,
          Float32Array.from(get(t.picked)),
        );
      });
      for (const t of Object.values(r)) (t as { dispose?: () => void }).dispose?.();
    }
    runSeconds = (performance.now() - t1) / 1000;
    lastOrtStatsTiming.buildSeconds = (t1 - t0) / 1000;
    lastOrtStatsTiming.runSeconds = runSeconds;
    lastOrtStatsTiming.forwardSeconds = forwardSeconds;
  } finally {
    net.setBits(saved);
    await session?.release();
  }
  return accs.map((a) => a.result());
}

/** A StatsCollector (PtqOptions.collect) on onnxruntime. */
export function ortStatsCollector(opts: OrtStatsOptions = {}): StatsCollector {
  return (net, split, statsOpts) => collectLayerStatsOrt(net, split, { ...statsOpts, ...opts });
}

/**
 * The calibration statistics' engine for an --eval-backend choice: onnxruntime for `onnxruntime`, and for
 * `auto` when onnxruntime-node loads (falling back to tfjs, with a warning, when the network has no ONNX
 * translation); undefined (tfjs) for `tfjs` or when onnxruntime-node does not load.
 */
export async function calibrationCollector(
  choice: EvalBackendChoice,
  opts: OrtStatsOptions = {},
): Promise<StatsCollector | undefined> {
  if (choice === 'tfjs' || !(await loadOrt())) return undefined;
  const ort = ortStatsCollector(opts);
  return async (net, split, statsOpts) => {
    try {
      return await ort(net, split, statsOpts);
    } catch (e) {
      log.warn(`calibration on tfjs: ${ortFallbackReason(choice, e)}`);
      return collectLayerStats(net, split, statsOpts);
    }
  };
}
