/**
 * The compiled elementwise kernels of native/elementwise.c (built by native/build.sh into
 * native-module.ts), instantiated on the wasm backend's own memory like simd.ts's routines, so
 * they read and write tensors in place (no copies between module memories).
 *
 * `nativeKernels` returns null when they cannot run (no WebAssembly SIMD, the backend's memory is
 * not reachable, or `simdOptions.enabled` is false); the callers then run their JS loops.
 */
import { NATIVE_WASM_BASE64 } from './native/native-module.js';
import { backendMemory, simdOptions, wasmApi } from './simd.js';

/** Addresses are byte offsets into the backend's heap; n counts floats. */
export interface NativeKernels {
  fakeQuantize: (src: number, dst: number, n: number, inv: number, scale: number, qmin: number, qmax: number) => void;
  fakeQuantizeBinary: (
    src: number,
    dst: number,
    n: number,
    inv: number,
    scale: number,
    qmin: number,
    qmax: number,
  ) => void;
  fakeQuantizeGrad: (x: number, dy: number, dst: number, n: number, inv: number, qmin: number, qmax: number) => void;
  clipGrad: (x: number, dy: number, dst: number, n: number, lo: number, hi: number) => void;
  /** See native/conv.c: (x, w, bias, y, n, hp, wp, ci, ho, wo, co, wco, kh, kw, sh, sw, dh, dw, relu). */
  conv2d: (...args: number[]) => void;
  /** See native/elementwise.c: (x, mean, k, offset, y, pixels, c). */
  batchNorm: (x: number, mean: number, k: number, offset: number, y: number, pixels: number, c: number) => void;
  /** See native/filter-grad.c: (xp, dyp, dw, n, hp, wp, cb, ho, wo, ob, kh, kws, sh, sw, dh, jstep). */
  conv2dFilterGrad: (...args: number[]) => void;
  /** (x, xp, n, h, w, ci, hp, wp, top, left, cb, shared). */
  filterGradPackX: (...args: number[]) => void;
  /** See native/elementwise.c: (x, dy, mean, s1, s2, pixels, c). */
  batchNormGradSums: (...args: number[]) => void;
  /** See native/elementwise.c: (x, dy, mean, k, c1, c0, dx, pixels, c). */
  batchNormGradDx: (...args: number[]) => void;
  /** See native/elementwise.c: (w, m, v, g, wOut, mOut, vOut, n, b1, omb1, b2, omb2, c1, c2, eps, neglr). */
  adamUpdate: (...args: number[]) => void;
  /** See native/elementwise.c: (x, mean, variance, acc, rows, c). */
  batchNormMoments: (x: number, mean: number, variance: number, acc: number, rows: number, c: number) => void;
  /** (dy, dyp, n, pixels, co, ob). */
  filterGradPackDy: (dy: number, dyp: number, n: number, pixels: number, co: number, ob: number) => void;
}

/** The module's bytes (decoded once). */
export function nativeModuleBytes(): Uint8Array {
  return new Uint8Array(Buffer.from(NATIVE_WASM_BASE64, 'base64'));
}

/** Ids of the sections of a WebAssembly binary, in order. */
export function wasmSectionIds(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let i = 8;
  while (i < bytes.length) {
    const id = bytes[i++];
    let size = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[i++];
      size += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    ids.push(id);
    i += size;
  }
  return ids;
}

/**
 * `enabled: false` makes every caller of nativeKernels use its previous path (XNNPACK, the JS
 * loops, the backend's FusedBatchNorm), to measure what the compiled module brings.
 */
export const nativeOptions: { enabled: boolean } = { enabled: true };

const DATA_SECTION = 11;
const instances = new WeakMap<object, NativeKernels | null>();

/** The compiled kernels bound to the backend's memory, or null when they cannot be used. */
export function nativeKernels(backend: unknown): NativeKernels | null {
  if (!simdOptions.enabled || !nativeOptions.enabled || wasmApi == null) return null;
  const memory = backendMemory(backend);
  if (memory == null) return null;
  if (instances.has(memory)) return instances.get(memory) ?? null;
  let kernels: NativeKernels | null = null;
  try {
    const bytes = nativeModuleBytes();
    // A data segment would be written into the backend's heap at instantiation: refuse it.
    if (wasmApi.validate(bytes) && !wasmSectionIds(bytes).includes(DATA_SECTION)) {
      const { exports } = new wasmApi.Instance(new wasmApi.Module(bytes), { env: { memory } });
      const fn = <T>(key: string): T => {
        const f = exports[key];
        if (typeof f !== 'function') throw new Error(`missing export ${key}`);
        return f as T;
      };
      kernels = {
        fakeQuantize: fn('fake_quantize'),
        fakeQuantizeBinary: fn('fake_quantize_binary'),
        fakeQuantizeGrad: fn('fake_quantize_grad'),
        clipGrad: fn('clip_grad'),
        conv2d: fn('conv2d_nhwc'),
        batchNorm: fn('batch_norm'),
        conv2dFilterGrad: fn('conv2d_filter_grad'),
        filterGradPackX: fn('filter_grad_pack_x'),
        filterGradPackDy: fn('filter_grad_pack_dy'),
        batchNormGradSums: fn('batch_norm_grad_sums'),
        batchNormGradDx: fn('batch_norm_grad_dx'),
        adamUpdate: fn('adam_update'),
        batchNormMoments: fn('batch_norm_moments'),
      };
    }
  } catch {
    kernels = null;
  }
  instances.set(memory, kernels);
  return kernels;
}
