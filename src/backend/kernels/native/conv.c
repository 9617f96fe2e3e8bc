/*
 * Direct NHWC convolution for the wasm backend (see ../conv-forward.ts), register-blocked like a
 * GEMM: a tile of 4 neighbouring output pixels of one row x 8 output channels sits in eight f32x4
 * registers while the reduction runs over every filter tap and input channel; the filter, laid out
 * [kh][kw][ci][co] (tfjs's HWIO), is the GEMM's right operand as it is (no packing), and each input
 * value is broadcast with one load32_splat. The input is already padded (the caller makes a
 * zero-bordered copy when the convolution pads), so there are no bounds checks in the loops.
 *
 * x: [n][hp][wp][ci] (padded input), w: [kh][kw][ci][wco] (wco >= co, a multiple of 4; the caller
 * pads the filter's channels with zeros when co is not), bias: [wco] or 0 for none,
 * y: [n][ho][wo][co]. relu != 0 clamps the results below at 0.
 * Pointers are byte addresses on the backend's heap; nothing else is written and the C stack is
 * not used.
 */
#include <wasm_simd128.h>

#define LOAD(p) wasm_v128_load(p)
#define SPLAT(p) wasm_v128_load32_splat(p)
#define MAC(acc, a, b) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(a, b))

static inline v128_t finish(v128_t v, int relu) {
  return relu ? wasm_f32x4_pmax(v, wasm_f32x4_splat(0.0f)) : v;
}

/* Stores the first `lanes` (1..4) lanes of v at p. */
static inline void store_lanes(float *p, v128_t v, int lanes) {
  if (lanes == 4) {
    wasm_v128_store(p, v);
    return;
  }
  p[0] = wasm_f32x4_extract_lane(v, 0);
  if (lanes > 1) p[1] = wasm_f32x4_extract_lane(v, 1);
  if (lanes > 2) p[2] = wasm_f32x4_extract_lane(v, 2);
}

struct geom {
  int hp, wp, ci, ho, wo, co, wco, kh, kw, sh, sw, dh, dw;
};

/* 4 pixels x 8 channels. */
static void tile4x8(const float *x, const float *w, const float *bias, float *y, const struct geom *g, int relu) {
  v128_t b0 = bias ? LOAD(bias) : wasm_f32x4_splat(0.0f), b1 = bias ? LOAD(bias + 4) : wasm_f32x4_splat(0.0f);
  v128_t c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
  const int ci = g->ci, wco = g->wco, px = g->sw * ci;
  for (int i = 0; i < g->kh; i++) {
    for (int j = 0; j < g->kw; j++) {
      const float *a0 = x + (i * g->dh * g->wp + j * g->dw) * ci;
      const float *a1 = a0 + px, *a2 = a1 + px, *a3 = a2 + px;
      const float *bp = w + (i * g->kw + j) * ci * wco;
      for (int c = 0; c < ci; c++) {
        v128_t w0 = LOAD(bp), w1 = LOAD(bp + 4);
        bp += wco;
        v128_t s = SPLAT(a0 + c);
        MAC(c00, s, w0);
        MAC(c01, s, w1);
        s = SPLAT(a1 + c);
        MAC(c10, s, w0);
        MAC(c11, s, w1);
        s = SPLAT(a2 + c);
        MAC(c20, s, w0);
        MAC(c21, s, w1);
        s = SPLAT(a3 + c);
        MAC(c30, s, w0);
        MAC(c31, s, w1);
      }
    }
  }
  const int co = g->co;
  wasm_v128_store(y, finish(c00, relu));
  wasm_v128_store(y + 4, finish(c01, relu));
  wasm_v128_store(y + co, finish(c10, relu));
  wasm_v128_store(y + co + 4, finish(c11, relu));
  wasm_v128_store(y + 2 * co, finish(c20, relu));
  wasm_v128_store(y + 2 * co + 4, finish(c21, relu));
  wasm_v128_store(y + 3 * co, finish(c30, relu));
  wasm_v128_store(y + 3 * co + 4, finish(c31, relu));
}

/* `pixels` (1..4) pixels x 4 channels, of which `lanes` (1..4) are stored. */
static void tile4x4(const float *x, const float *w, const float *bias, float *y, const struct geom *g, int relu,
                    int pixels, int lanes) {
  v128_t b0 = bias ? LOAD(bias) : wasm_f32x4_splat(0.0f);
  v128_t c0 = b0, c1 = b0, c2 = b0, c3 = b0;
  const int ci = g->ci, wco = g->wco, px = g->sw * ci;
  /* Pixels past `pixels` read pixel 0 again (valid memory) and are not stored. */
  const int p1 = pixels > 1 ? px : 0, p2 = pixels > 2 ? 2 * px : 0, p3 = pixels > 3 ? 3 * px : 0;
  for (int i = 0; i < g->kh; i++) {
    for (int j = 0; j < g->kw; j++) {
      const float *a0 = x + (i * g->dh * g->wp + j * g->dw) * ci;
      const float *a1 = a0 + p1, *a2 = a0 + p2, *a3 = a0 + p3;
      const float *bp = w + (i * g->kw + j) * ci * wco;
      for (int c = 0; c < ci; c++) {
        v128_t w0 = LOAD(bp);
        bp += wco;
        MAC(c0, SPLAT(a0 + c), w0);
        MAC(c1, SPLAT(a1 + c), w0);
        MAC(c2, SPLAT(a2 + c), w0);
        MAC(c3, SPLAT(a3 + c), w0);
      }
    }
  }
  const int co = g->co;
  store_lanes(y, finish(c0, relu), lanes);
  if (pixels > 1) store_lanes(y + co, finish(c1, relu), lanes);
  if (pixels > 2) store_lanes(y + 2 * co, finish(c2, relu), lanes);
  if (pixels > 3) store_lanes(y + 3 * co, finish(c3, relu), lanes);
}

/* 1 pixel x 8 channels. */
static void tile1x8(const float *x, const float *w, const float *bias, float *y, const struct geom *g, int relu) {
  v128_t c0 = bias ? LOAD(bias) : wasm_f32x4_splat(0.0f), c1 = bias ? LOAD(bias + 4) : wasm_f32x4_splat(0.0f);
  const int ci = g->ci, wco = g->wco;
  for (int i = 0; i < g->kh; i++) {
    for (int j = 0; j < g->kw; j++) {
      const float *a0 = x + (i * g->dh * g->wp + j * g->dw) * ci;
      const float *bp = w + (i * g->kw + j) * ci * wco;
      for (int c = 0; c < ci; c++) {
        v128_t s = SPLAT(a0 + c);
        MAC(c0, s, LOAD(bp));
        MAC(c1, s, LOAD(bp + 4));
        bp += wco;
      }
    }
  }
  wasm_v128_store(y, finish(c0, relu));
  wasm_v128_store(y + 4, finish(c1, relu));
}

void conv2d_nhwc(const float *x, const float *w, const float *bias, float *y, int n, int hp, int wp, int ci, int ho,
                 int wo, int co, int wco, int kh, int kw, int sh, int sw, int dh, int dw, int relu) {
  const struct geom g = {hp, wp, ci, ho, wo, co, wco, kh, kw, sh, sw, dh, dw};
  const int full8 = co & ~7;
  for (int b = 0; b < n; b++) {
    for (int oy = 0; oy < ho; oy++) {
      const float *xrow = x + ((b * hp + oy * sh) * wp) * ci;
      float *yrow = y + ((b * ho + oy) * wo) * co;
      for (int cb = 0; cb < full8; cb += 8) {
        const float *wb = w + cb;
        const float *bb = bias ? bias + cb : 0;
        int ox = 0;
        for (; ox + 4 <= wo; ox += 4) tile4x8(xrow + ox * sw * ci, wb, bb, yrow + ox * co + cb, &g, relu);
        for (; ox < wo; ox++) tile1x8(xrow + ox * sw * ci, wb, bb, yrow + ox * co + cb, &g, relu);
      }
      for (int cb = full8; cb < co; cb += 4) {
        const int lanes = co - cb < 4 ? co - cb : 4;
        const float *wb = w + cb;
        const float *bb = bias ? bias + cb : 0;
        for (int ox = 0; ox < wo; ox += 4) {
          const int pixels = wo - ox < 4 ? wo - ox : 4;
          tile4x4(xrow + ox * sw * ci, wb, bb, yrow + ox * co + cb, &g, relu, pixels, lanes);
        }
      }
    }
  }
}
