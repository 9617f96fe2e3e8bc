/**
 * onnxruntime-node, loaded on demand: it is an optional dependency, so every caller asks
 * loadOrt() and falls back (or reports why) when it is absent.
 */
import type * as Ort from 'onnxruntime-node';

export type OrtModule = typeof Ort;
export type OrtSession = Ort.InferenceSession;
export type OrtTensor = Ort.Tensor;

let state: { ort: OrtModule | null; error: string | null } | null = null;

/** onnxruntime-node, or null when it is not installed or its binary does not load. */
export async function loadOrt(): Promise<OrtModule | null> {
  if (state) return state.ort;
  try {
    const mod = (await import('onnxruntime-node')) as OrtModule & { default?: OrtModule };
    const ort = mod.InferenceSession ? mod : mod.default;
    if (!ort?.InferenceSession) throw new Error('onnxruntime-node has no InferenceSession');
    state = { ort, error: null };
  } catch (e) {
    state = { ort: null, error: e instanceof Error ? (e.message.split('\n')[0] ?? e.message) : String(e) };
  }
  return state.ort;
}

/** Why onnxruntime-node did not load (null when it did or was not tried). */
export function ortLoadError(): string | null {
  return state?.error ?? null;
}

/** The installed onnxruntime-node version, or null. */
export async function ortVersion(): Promise<string | null> {
  const ort = await loadOrt();
  if (!ort) return null;
  return (
    (ort.env as { versions?: { node?: string; common?: string } }).versions?.node ??
    (ort.env as { versions?: { common?: string } }).versions?.common ??
    'unknown'
  );
}

/**
 * A CPU session over ONNX bytes with `threads` intra-op threads. `fakeQuant`: the search's
 * evaluation graph, whose float arithmetic must stay float: onnxruntime's QDQ fusions (integer
 * kernels in place of DequantizeLinear -> op -> QuantizeLinear, float weights quantized to int8)
 * are turned off (session config session.disable_quant_qdq).
 */
export async function createSession(
  ort: OrtModule,
  bytes: Uint8Array,
  threads = 2,
  opts: { fakeQuant?: boolean } = {},
): Promise<OrtSession> {
  return ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    ...(opts.fakeQuant ? { extra: { session: { disable_quant_qdq: '1' } } } : {}),
  });
}
