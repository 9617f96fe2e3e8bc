/*
 * Conv2D filter gradient for the wasm backend (see ../backprop-filter.ts), as a GEMM over the
 * pixels: dW[i][j][c][o] = sum over b, oy, ox of x[b][oy*sh + i*dh - top][ox*sw + j*dw - left][c]
 * * dy[b][oy][ox][o].
 *
 * Like a GEMM's packed panels, x and dy are first copied into channel blocks so that the
 * reduction streams through contiguous memory:
 * - xp: [n][cb][hp][wp][4], x zero-padded and its channels in blocks of 4 (the last one completed
 *   with zeros); with one input channel and no column dilation ("shared" taps), lane r of column
 *   c holds x at column c + r instead, so 4 neighbouring column taps share one block;
 * - dyp: [n][ob][ho][wo][8], dy's channels in blocks of 8 (the last one completed with zeros).
 * A tile of 4 rows (the 4 channels of a block, or 4 column taps) x 8 output channels sits in
 * eight f32x4 registers while the reduction runs over the pixels of a batch chunk, reading 16
 * bytes of xp and 32 of dyp per pixel, one after the other. dW: [kh][kws][cb][4][ob*8]
 * (kws = kw, or ceil(kw / 4) with shared taps), accumulated into, so the caller zeroes it and
 * may call once per cache-sized batch chunk.
 * Pointers are byte addresses on the backend's heap; nothing else is written and the C stack is
 * not used.
 */
#include <wasm_simd128.h>

#define LOAD(p) wasm_v128_load(p)
#define SPLAT(p) wasm_v128_load32_splat(p)
#define MAC(acc, a, b) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(a, b))

/* x [n][h][w][ci] -> xp [n][cb][hp][wp][4] (see above); every value of xp is written. */
void filter_grad_pack_x(const float *x, float *xp, int n, int h, int w, int ci, int hp, int wp, int top, int left,
                        int cb, int shared) {
  for (int b = 0; b < n; b++) {
    for (int k = 0; k < cb; k++) {
      for (int r = 0; r < hp; r++) {
        float *out = xp + (((b * cb + k) * hp + r) * wp) * 4;
        const int sr = r - top;
        if (sr < 0 || sr >= h) {
          for (int q = 0; q < wp * 4; q++) out[q] = 0.0f;
          continue;
        }
        const float *row = x + ((b * h + sr) * w) * ci;
        for (int c = 0; c < wp; c++) {
          for (int lane = 0; lane < 4; lane++) {
            const int sc = shared ? c + lane - left : c - left;
            const int ch = shared ? 0 : 4 * k + lane;
            out[c * 4 + lane] = sc >= 0 && sc < w && ch < ci ? row[sc * ci + ch] : 0.0f;
          }
        }
      }
    }
  }
}

/* dy [n][pixels][co] -> dyp [n][ob][pixels][8]; every value of dyp is written. */
void filter_grad_pack_dy(const float *dy, float *dyp, int n, int pixels, int co, int ob) {
  for (int b = 0; b < n; b++) {
    for (int k = 0; k < ob; k++) {
      float *out = dyp + ((b * ob + k) * pixels) * 8;
      const float *src = dy + (b * pixels) * co + 8 * k;
      const int lanes = co - 8 * k < 8 ? co - 8 * k : 8;
      if (lanes == 8) {
        for (int p = 0; p < pixels; p++) {
          wasm_v128_store(out + p * 8, LOAD(src + p * co));
          wasm_v128_store(out + p * 8 + 4, LOAD(src + p * co + 4));
        }
        continue;
      }
      for (int p = 0; p < pixels; p++) {
        for (int lane = 0; lane < 8; lane++) out[p * 8 + lane] = lane < lanes ? src[p * co + lane] : 0.0f;
      }
    }
  }
}

void conv2d_filter_grad(const float *xp, const float *dyp, float *dw, int n, int hp, int wp, int cb, int ho, int wo,
                        int ob, int kh, int kws, int sh, int sw, int dh, int jstep) {
  const int pixels = ho * wo, cop = ob * 8;
  const int xbatch = cb * hp * wp * 4, xrow = sh * wp * 4, xpx = sw * 4, dybatch = ob * pixels * 8;
  for (int i = 0; i < kh; i++) {
    for (int j = 0; j < kws; j++) {
      for (int k = 0; k < cb; k++) {
        const float *x0 = xp + ((k * hp + i * dh) * wp + j * jstep) * 4;
        for (int o = 0; o < ob; o++) {
          float *d = dw + (((i * kws + j) * cb + k) * 4) * cop + o * 8;
          v128_t c00 = LOAD(d), c01 = LOAD(d + 4), c10 = LOAD(d + cop), c11 = LOAD(d + cop + 4);
          v128_t c20 = LOAD(d + 2 * cop), c21 = LOAD(d + 2 * cop + 4);
          v128_t c30 = LOAD(d + 3 * cop), c31 = LOAD(d + 3 * cop + 4);
          for (int b = 0; b < n; b++) {
            const float *g = dyp + b * dybatch + o * pixels * 8;
            for (int oy = 0; oy < ho; oy++) {
              const float *a = x0 + b * xbatch + oy * xrow;
              for (int ox = 0; ox < wo; ox++) {
                const v128_t d0 = LOAD(g), d1 = LOAD(g + 4);
                v128_t s = SPLAT(a);
                MAC(c00, s, d0);
                MAC(c01, s, d1);
                s = SPLAT(a + 1);
                MAC(c10, s, d0);
                MAC(c11, s, d1);
                s = SPLAT(a + 2);
                MAC(c20, s, d0);
                MAC(c21, s, d1);
                s = SPLAT(a + 3);
                MAC(c30, s, d0);
                MAC(c31, s, d1);
                a += xpx;
                g += 8;
              }
            }
          }
          wasm_v128_store(d, c00);
          wasm_v128_store(d + 4, c01);
          wasm_v128_store(d + cop, c10);
          wasm_v128_store(d + cop + 4, c11);
          wasm_v128_store(d + 2 * cop, c20);
          wasm_v128_store(d + 2 * cop + 4, c21);
          wasm_v128_store(d + 3 * cop, c30);
          wasm_v128_store(d + 3 * cop + 4, c31);
        }
      }
    }
  }
}
