/**
 * Small WebAssembly SIMD routines for convolution gradients, assembled here byte by byte and
 * instantiated on the wasm backend's own memory, so they read and write tensors in place.
 *
 * Why: as forward convolutions, filter gradients use dy as the convolution's weights, and
 * XNNPACK repacks its weights on every call (tens of ns per float: for Conv2D this costs more
 * than the multiply-adds; for depthwise, such a large kernel also takes a slow path). A plain JS
 * loop runs at a fraction of a GMAC/s. These routines need no repacking:
 * - dwFilterGrad: acc[tap, c] += sum over pixels of x[pixel + tap, c] * dy[pixel, c], per tap
 *   and group of 16 channels with the sum in f32x4 registers (depthwise filter gradient).
 * - dwInputGrad: the same sweep scattering dx[pixel + tap, c] += w[tap, c] * dy[pixel, c]
 *   (depthwise input gradient, every stride and dilation in one pass, no phases).
 * - convFilterGrad{ci}x{4*cv}: one register-blocked tile of dW[tap] = X_tap^T dy for `ci` input
 *   channels and 4*cv output channels, reduced over all pixels (Conv2D filter gradient).
 * - copyPixels: strided copies of pixel vectors, to interleave stride phases.
 *
 * `wasmSimdRoutines` returns null when they cannot run (no SIMD, or the backend's memory is not
 * reachable, or `simdOptions.enabled` is false); callers then use XNNPACK formulations.
 */
import type { ConvSpec } from './conv-attrs.js';

const I32 = 0x7f;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
}

/** Emits the instructions of one function body. */
class Body {
  readonly code: number[] = [];
  get(i: number): this {
    this.code.push(0x20, ...uleb(i));
    return this;
  }
  set(i: number): this {
    this.code.push(0x21, ...uleb(i));
    return this;
  }
  tee(i: number): this {
    this.code.push(0x22, ...uleb(i));
    return this;
  }
  const(v: number): this {
    this.code.push(0x41, ...sleb(v));
    return this;
  }
  add(): this {
    this.code.push(0x6a);
    return this;
  }
  /** local[dst] = local[dst] + local[step] */
  bump(dst: number, step: number): this {
    return this.get(dst).get(step).add().set(dst);
  }
  /** local[dst] = local[dst] + constant */
  bumpBy(dst: number, v: number): this {
    return this.get(dst).const(v).add().set(dst);
  }
  /** Runs `body` local[count] times, counting down in local[counter]. */
  repeat(count: number, counter: number, body: () => void): this {
    this.get(count).set(counter);
    this.code.push(0x02, 0x40); // block
    this.get(counter).code.push(0x45, 0x0d, 0x00); // i32.eqz; br_if 0
    this.code.push(0x03, 0x40); // loop
    body();
    this.get(counter).const(1).code.push(0x6b); // i32.sub
    this.tee(counter).code.push(0x0d, 0x00, 0x0b, 0x0b); // br_if 0; end loop; end block
    return this;
  }
}

interface FunctionDef {
  name: string;
  params: number;
  /** Local declarations: [count, type] groups. */
  locals: Array<[number, number]>;
  code: number[];
}

const F32 = 0x7d;
const V128 = 0x7b;

// dwFilterGrad / dwInputGrad parameters (all i32; pointers and strides in bytes).
const P = {
  x: 0,
  dy: 1,
  acc: 2,
  batch: 3,
  outH: 4,
  outW: 5,
  kH: 6,
  kW: 7,
  xBatch: 8,
  xOutRow: 9,
  xOutCol: 10,
  xTapRow: 11,
  xTapCol: 12,
  channelBytes: 13,
  groups16: 14,
  groups4: 15,
  singles: 16,
} as const;
const DW_PARAMS = 17;
// i32 locals, then four v128 registers, then one f32.
const L = {
  n: 17,
  oh: 18,
  i: 19,
  j: 20,
  g: 21,
  ow: 22,
  xN: 23,
  xRow: 24,
  xI: 25,
  xJ: 26,
  dyN: 27,
  dyBatchBytes: 28,
  accP: 29,
  pa: 30,
  pxc: 31,
  pdc: 32,
  px: 33,
  pd: 34,
} as const;
const DW_I32_LOCALS = 18;
const REG = 35; // v128 registers REG..REG+3
const SCALAR = 39; // f32

/**
 * dwFilterGrad(x, dy, acc, N, Ho, Wo, kH, kW, xBatch, xOutRow, xOutCol, xTapRow, xTapCol,
 *              channelBytes, groups16, groups4, singles):
 * acc[(i*kW + j)*C + c] += sum over n, oh, ow of
 *   x[n*xBatch + oh*xOutRow + ow*xOutCol + i*xTapRow + j*xTapCol + c] * dy[((n*Ho + oh)*Wo + ow)*C + c]
 * (x already padded). For each batch element, tap and group of 16 (then 4, then 1) channels the
 * sum over the image runs in registers: two loads per four multiply-adds, on data that stays in
 * cache (one image of x and dy).
 *
 * dwInputGrad (same parameters, `x` being the padded dx and `acc` the filter [kH, kW, C]) is the
 * same loop scattering the other way, the filter values held in registers:
 * dx[pixel + tap, c] += filter[tap, c] * dy[pixel, c].
 */
function depthwiseFunction(inputGrad: boolean): FunctionDef {
  const b = new Body();
  const vload = (ptr: number, off: number): void => {
    b.get(ptr).code.push(0xfd, 0x00, 0x00, ...uleb(off));
  };
  const vstore = (off: number): void => {
    b.code.push(0xfd, 0x0b, 0x00, ...uleb(off));
  };
  const fmul = (): void => {
    b.code.push(0xfd, ...uleb(0xe6));
  };
  const fadd = (): void => {
    b.code.push(0xfd, ...uleb(0xe4));
  };
  /** One channel group of `vectors` f32x4 lanes (0 = a single f32), all taps' row loop. */
  const group = (vectors: number, bytes: number): void => {
    const scalar = vectors === 0;
    if (inputGrad) {
      // Registers <- filter values of this tap and group.
      if (scalar) {
        b.get(L.pa).code.push(0x2a, 0x02, 0x00); // f32.load
        b.set(SCALAR);
      }
      for (let v = 0; v < vectors; v++) {
        vload(L.pa, 16 * v);
        b.set(REG + v);
      }
    } else if (scalar) {
      b.code.push(0x43, 0, 0, 0, 0); // f32.const 0
      b.set(SCALAR);
    } else {
      for (let v = 0; v < vectors; v++) {
        b.code.push(0xfd, 0x0c, ...new Array<number>(16).fill(0)); // v128.const 0
        b.set(REG + v);
      }
    }
    // One dy pixel: mem/registers updated for the 4*vectors (or 1) channels of this group.
    const pixel = (): void => {
      if (scalar) {
        if (inputGrad) {
          b.get(L.px);
          b.get(L.px).code.push(0x2a, 0x02, 0x00);
          b.get(SCALAR).get(L.pd).code.push(0x2a, 0x02, 0x00, 0x94, 0x92, 0x38, 0x02, 0x00);
        } else {
          b.get(SCALAR).get(L.px).code.push(0x2a, 0x02, 0x00);
          b.get(L.pd).code.push(0x2a, 0x02, 0x00, 0x94, 0x92);
          b.set(SCALAR);
        }
      }
      for (let v = 0; v < vectors; v++) {
        if (inputGrad) {
          b.get(L.px);
          vload(L.px, 16 * v);
          b.get(REG + v);
          vload(L.pd, 16 * v);
          fmul();
          fadd();
          vstore(16 * v);
        } else {
          b.get(REG + v);
          vload(L.px, 16 * v);
          vload(L.pd, 16 * v);
          fmul();
          fadd();
          b.set(REG + v);
        }
      }
      b.bump(L.px, P.xOutCol).bump(L.pd, P.channelBytes);
    };
    b.get(L.pxc).set(L.xRow).get(L.pdc).set(L.pd);
    b.repeat(P.outH, L.oh, () => {
      b.get(L.xRow).set(L.px);
      b.repeat(P.outW, L.ow, pixel);
      b.bump(L.xRow, P.xOutRow);
    });
    if (!inputGrad) {
      if (scalar) {
        b.get(L.pa);
        b.get(L.pa).code.push(0x2a, 0x02, 0x00);
        b.get(SCALAR).code.push(0x92, 0x38, 0x02, 0x00);
      }
      for (let v = 0; v < vectors; v++) {
        b.get(L.pa);
        vload(L.pa, 16 * v);
        b.get(REG + v);
        fadd();
        vstore(16 * v);
      }
    }
    b.bumpBy(L.pa, bytes).bumpBy(L.pxc, bytes).bumpBy(L.pdc, bytes);
  };
  b.get(P.outW).get(P.channelBytes).code.push(0x6c); // i32.mul
  b.get(P.outH).code.push(0x6c);
  b.set(L.dyBatchBytes);
  b.get(P.dy).set(L.dyN);
  b.get(P.x).set(L.xN);
  b.repeat(P.batch, L.n, () => {
    b.get(P.acc).set(L.accP);
    b.get(L.xN).set(L.xI);
    b.repeat(P.kH, L.i, () => {
      b.get(L.xI).set(L.xJ);
      b.repeat(P.kW, L.j, () => {
        b.get(L.accP).set(L.pa).get(L.xJ).set(L.pxc).get(L.dyN).set(L.pdc);
        b.repeat(P.groups16, L.g, () => group(4, 64));
        b.repeat(P.groups4, L.g, () => group(1, 16));
        b.repeat(P.singles, L.g, () => group(0, 4));
        b.bump(L.accP, P.channelBytes).bump(L.xJ, P.xTapCol);
      });
      b.bump(L.xI, P.xTapRow);
    });
    b.bump(L.xN, P.xBatch).bump(L.dyN, L.dyBatchBytes);
  });
  return {
    name: inputGrad ? 'dwInputGrad' : 'dwFilterGrad',
    params: DW_PARAMS,
    locals: [
      [DW_I32_LOCALS, I32],
      [4, V128],
      [1, F32],
    ],
    code: b.code,
  };
}

/**
 * copyPixels(dst, dstPixel, dstRow, src, srcPixel, srcRow, rows, count, groups4, singles):
 * for r < rows, p < count: copy 4*groups4 + singles floats from src + r*srcRow + p*srcPixel
 * to dst + r*dstRow + p*dstPixel (strides in bytes).
 */
function copyPixelsFunction(): FunctionDef {
  const b = new Body();
  const [dst, dstPixel, dstRow, src, srcPixel, srcRow, rows, count, groups4, singles] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  // Locals: counters, then pointers (pixel start, row start, walking channel pointers).
  const [r, p, g, d, sp, dr, sr, wd, ws] = [10, 11, 12, 13, 14, 15, 16, 17, 18];
  b.get(dst).set(dr).get(src).set(sr);
  b.repeat(rows, r, () => {
    b.get(dr).set(d).get(sr).set(sp);
    b.repeat(count, p, () => {
      b.get(d).set(wd).get(sp).set(ws);
      b.repeat(groups4, g, () => {
        b.get(wd).get(ws).code.push(0xfd, 0x00, 0x00, 0x00, 0xfd, 0x0b, 0x00, 0x00); // v128.store(v128.load)
        b.bumpBy(wd, 16).bumpBy(ws, 16);
      });
      b.repeat(singles, g, () => {
        b.get(wd).get(ws).code.push(0x2a, 0x02, 0x00, 0x38, 0x02, 0x00); // f32.store(f32.load)
        b.bumpBy(wd, 4).bumpBy(ws, 4);
      });
      b.bump(d, dstPixel).bump(sp, srcPixel);
    });
    b.bump(dr, dstRow).bump(sr, srcRow);
  });
  return { name: 'copyPixels', params: 10, locals: [[9, I32]], code: b.code };
}

// convFilterGrad parameters, then i32 locals, then v128 locals.
const G = {
  x: 0,
  dy: 1,
  out: 2,
  batch: 3,
  outH: 4,
  outW: 5,
  xBatch: 6,
  xOutRow: 7,
  xOutCol: 8,
  dyPixel: 9,
  outRow: 10,
} as const;
const GEMM_PARAMS = 11;
const GL = { n: 11, oh: 12, ow: 13, xN: 14, xOH: 15, px: 16, pd: 17, po: 18 } as const;
const GEMM_I32_LOCALS = 8;

/**
 * convFilterGrad{ci}x{4*cv}(x, dy, out, N, Ho, Wo, xBatch, xOutRow, xOutCol, dyPixel, outRow):
 * out[r*outRow + 4v + lane] += sum over n, oh, ow of
 *   x[n*xBatch + oh*xOutRow + ow*xOutCol + 4r] * dy[(pixel index)*dyPixel + 16v + 4*lane]
 * for r < ci, v < cv: a ci x 4cv tile of X^T dy held in registers, dy read pixel after pixel.
 * The 4 values x[.. + 4r] are 4 input channels, or 4 neighbouring taps when x has one channel.
 */
function convFilterGradFunction(ci: number, cv: number): FunctionDef {
  const b = new Body();
  const vBase = GEMM_PARAMS + GEMM_I32_LOCALS;
  const acc = (r: number, v: number): number => vBase + r * cv + v;
  const dv = (v: number): number => vBase + ci * cv + v;
  const splat = vBase + ci * cv + cv;
  b.get(G.dy).set(GL.pd);
  b.get(G.x).set(GL.xN);
  b.repeat(G.batch, GL.n, () => {
    b.get(GL.xN).set(GL.xOH);
    b.repeat(G.outH, GL.oh, () => {
      b.get(GL.xOH).set(GL.px);
      b.repeat(G.outW, GL.ow, () => {
        for (let v = 0; v < cv; v++) {
          b.get(GL.pd).code.push(0xfd, 0x00, 0x00, ...uleb(16 * v)); // v128.load
          b.set(dv(v));
        }
        for (let r = 0; r < ci; r++) {
          b.get(GL.px).code.push(0xfd, 0x09, 0x02, ...uleb(4 * r)); // v128.load32_splat
          b.set(splat);
          for (let v = 0; v < cv; v++) {
            b.get(acc(r, v)).get(splat).get(dv(v));
            b.code.push(0xfd, ...uleb(0xe6), 0xfd, ...uleb(0xe4)); // f32x4.mul; f32x4.add
            b.set(acc(r, v));
          }
        }
        b.bump(GL.px, G.xOutCol).bump(GL.pd, G.dyPixel);
      });
      b.bump(GL.xOH, G.xOutRow);
    });
    b.bump(GL.xN, G.xBatch);
  });
  b.get(G.out).set(GL.po);
  for (let r = 0; r < ci; r++) {
    for (let v = 0; v < cv; v++) {
      b.get(GL.po);
      b.get(GL.po).code.push(0xfd, 0x00, 0x00, ...uleb(16 * v)); // v128.load
      b.get(acc(r, v)).code.push(0xfd, ...uleb(0xe4)); // f32x4.add
      b.code.push(0xfd, 0x0b, 0x00, ...uleb(16 * v)); // v128.store
    }
    b.bump(GL.po, G.outRow);
  }
  return {
    name: `convFilterGrad${ci}x${4 * cv}`,
    params: GEMM_PARAMS,
    locals: [
      [GEMM_I32_LOCALS, I32],
      [ci * cv + cv + 1, V128],
    ],
    code: b.code,
  };
}

/** Tile shapes of convFilterGrad: input channels x output-channel vectors. */
export const CONV_TILES: ReadonlyArray<{ ci: number; cv: number }> = [
  { ci: 4, cv: 2 },
  { ci: 4, cv: 1 },
  { ci: 1, cv: 2 },
  { ci: 1, cv: 1 },
];

function moduleBytes(): Uint8Array {
  const defs = [
    depthwiseFunction(false),
    depthwiseFunction(true),
    copyPixelsFunction(),
    ...CONV_TILES.map((t) => convFilterGradFunction(t.ci, t.cv)),
  ];
  const funcType = (params: number): number[] => [0x60, ...uleb(params), ...new Array<number>(params).fill(I32), 0x00];
  const types = [...uleb(defs.length), ...defs.flatMap((d) => funcType(d.params))];
  const imports = [0x01, ...name('env'), ...name('memory'), 0x02, 0x00, 0x01];
  const funcs = [...uleb(defs.length), ...defs.flatMap((_, i) => uleb(i))];
  const exports = [...uleb(defs.length), ...defs.flatMap((d, i) => [...name(d.name), 0x00, ...uleb(i)])];
  const bodies = defs.map((d) => {
    const locals = [...uleb(d.locals.length), ...d.locals.flatMap(([count, type]) => [...uleb(count), type])];
    const code = [...locals, ...d.code, 0x0b];
    return [...uleb(code.length), ...code];
  });
  const code = [...uleb(defs.length), ...bodies.flat()];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, types),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, code),
  ]);
}

export type SimdFn = (...args: number[]) => void;

export interface SimdRoutines {
  /** See depthwiseFunction. */
  dwFilterGrad: SimdFn;
  /** See depthwiseFunction. */
  dwInputGrad: SimdFn;
  /** See copyPixelsFunction. */
  copyPixels: SimdFn;
  /** convFilterGrad tiles, keyed `${ci}x${4*cv}`. */
  convFilterGrad: Map<string, SimdFn>;
}

/** The parts of the global WebAssembly API used here (its types are not in this project's libs). */
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => object;
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (
    module: object,
    imports: Record<string, Record<string, unknown>>,
  ) => { exports: Record<string, unknown> };
}
export const wasmApi = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;

const instances = new WeakMap<object, SimdRoutines | null>();

/**
 * `enabled: false` makes every kernel use its fallback (XNNPACK formulations and plain JS), as
 * on a runtime without WebAssembly SIMD; for tests and benchmarks.
 */
export const simdOptions: { enabled: boolean } = { enabled: true };

/** The backend's WebAssembly.Memory, when the emscripten module exposes it. */
export function backendMemory(backend: unknown): object | null {
  if (wasmApi == null) return null;
  const wasm = (backend as { wasm?: { asm?: { memory?: unknown }; wasmMemory?: unknown } }).wasm;
  const candidates = [wasm?.asm?.memory, wasm?.wasmMemory];
  for (const m of candidates) if (m instanceof wasmApi.Memory) return m;
  return null;
}

/** Bytes of x (or dx) and dy one call of dwFilterGrad / dwInputGrad should work on (cache-sized). */
export const DEPTHWISE_BAND_BYTES = 16 * 1024;

/** Arguments of dwFilterGrad / dwInputGrad (addresses and strides in bytes). */
export interface DepthwiseSimdArgs {
  x: number;
  dy: number;
  acc: number;
  batch: number;
  outH: number;
  outW: number;
  kH: number;
  kW: number;
  xBatch: number;
  xOutRow: number;
  xOutCol: number;
  xTapRow: number;
  xTapCol: number;
  channels: number;
}

/**
 * Runs dwFilterGrad or dwInputGrad over bands of output rows small enough that each call's x and
 * dy stay in cache while the routine sweeps them once per tap and channel group.
 */
export function runDepthwiseBanded(fn: SimdFn, a: DepthwiseSimdArgs): void {
  const channelBytes = a.channels * 4;
  const dyRowBytes = a.outW * channelBytes;
  const band = Math.max(1, Math.floor(DEPTHWISE_BAND_BYTES / (a.xOutRow + dyRowBytes)));
  const groups16 = Math.floor(a.channels / 16);
  const groups4 = Math.floor((a.channels % 16) / 4);
  const singles = a.channels % 4;
  for (let n = 0; n < a.batch; n++) {
    for (let oh = 0; oh < a.outH; oh += band) {
      fn(
        a.x + n * a.xBatch + oh * a.xOutRow,
        a.dy + (n * a.outH + oh) * dyRowBytes,
        a.acc,
        1,
        Math.min(band, a.outH - oh),
        a.outW,
        a.kH,
        a.kW,
        a.xBatch,
        a.xOutRow,
        a.xOutCol,
        a.xTapRow,
        a.xTapCol,
        channelBytes,
        groups16,
        groups4,
        singles,
      );
    }
  }
}

/**
 * Runs dwFilterGrad or dwInputGrad (banded) for the depthwise convolution `spec`, with x (or dx)
 * at address `x` a dense NHWC buffer of `xRows` x `xCols` pixels of C*M channels (the input
 * itself, or a padded copy), dy at `dy` and the filter (or its gradient) at `acc`.
 */
export function runDepthwiseOnBuffer(
  fn: SimdFn,
  spec: ConvSpec,
  x: number,
  dy: number,
  acc: number,
  xRows: number,
  xCols: number,
): void {
  const [kh, kw, c, m] = spec.filterShape;
  const [n] = spec.inShape;
  const [, ho, wo] = spec.outShape;
  const { rows, cols } = spec;
  const cm = c * m;
  const channelBytes = cm * 4;
  const rowBytes = xCols * channelBytes;
  runDepthwiseBanded(fn, {
    x,
    dy,
    acc,
    batch: n,
    outH: ho,
    outW: wo,
    kH: kh,
    kW: kw,
    xBatch: xRows * rowBytes,
    xOutRow: rows.stride * rowBytes,
    xOutCol: cols.stride * channelBytes,
    xTapRow: rows.dilation * rowBytes,
    xTapCol: cols.dilation * channelBytes,
    channels: cm,
  });
}

/** The SIMD routines bound to the backend's memory, or null when they cannot be used. */
export function wasmSimdRoutines(backend: unknown): SimdRoutines | null {
  if (!simdOptions.enabled) return null;
  const memory = backendMemory(backend);
  if (memory == null || wasmApi == null) return null;
  if (instances.has(memory)) return instances.get(memory) ?? null;
  let routines: SimdRoutines | null = null;
  try {
    const bytes = moduleBytes();
    if (wasmApi.validate(bytes)) {
      const { exports } = new wasmApi.Instance(new wasmApi.Module(bytes), { env: { memory } });
      const fn = (key: string): SimdFn => {
        const f = exports[key];
        if (typeof f !== 'function') throw new Error(`missing export ${key}`);
        return f as SimdFn;
      };
      routines = {
        dwFilterGrad: fn('dwFilterGrad'),
        dwInputGrad: fn('dwInputGrad'),
        copyPixels: fn('copyPixels'),
        convFilterGrad: new Map(
          CONV_TILES.map((t) => [`${t.ci}x${4 * t.cv}`, fn(`convFilterGrad${t.ci}x${4 * t.cv}`)]),
        ),
      };
    }
  } catch {
    routines = null;
  }
  instances.set(memory, routines);
  return routines;
}
