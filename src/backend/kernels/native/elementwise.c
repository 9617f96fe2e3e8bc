/*
 * Elementwise training kernels for the wasm backend, compiled to a small WebAssembly module that
 * imports the backend's own memory (see ../native.ts): pointers are byte addresses of tensors on
 * the backend's heap. The module has no data segment and these functions never touch the C stack,
 * so running them writes only to the `dst` ranges they are given.
 *
 * Each result is bit-identical to the plain JS loops of ../elementwise.ts (float32 products,
 * round half to even, NaN handling of the comparisons), four lanes at a time.
 *
 * Build: ./build.sh (clang >= 14 with the wasm32 target and wasm-ld).
 */
#include <wasm_simd128.h>

typedef __SIZE_TYPE__ size_t;

/* dst[i] = nearest_even(clamp(src[i] * inv, qmin, qmax)) * scale (NaN passes through the clamp). */
void fake_quantize(const float *src, float *dst, size_t n, float inv, float scale, float qmin, float qmax) {
  const v128_t vi = wasm_f32x4_splat(inv), vs = wasm_f32x4_splat(scale);
  const v128_t lo = wasm_f32x4_splat(qmin), hi = wasm_f32x4_splat(qmax);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t r = wasm_f32x4_mul(wasm_v128_load(src + i), vi);
    r = wasm_f32x4_pmax(r, lo); /* r < qmin ? qmin : r */
    r = wasm_f32x4_pmin(r, hi); /* qmax < r ? qmax : r */
    wasm_v128_store(dst + i, wasm_f32x4_mul(wasm_f32x4_nearest(r), vs));
  }
  for (; i < n; i++) {
    float r = src[i] * inv;
    float c = r < qmin ? qmin : r > qmax ? qmax : r;
    dst[i] = wasm_f32x4_extract_lane(wasm_f32x4_nearest(wasm_f32x4_splat(c)), 0) * scale;
  }
}

/* dst[i] = clamp(src[i] * inv, qmin, qmax) > 0 ? scale : -scale. */
void fake_quantize_binary(const float *src, float *dst, size_t n, float inv, float scale, float qmin, float qmax) {
  const v128_t vi = wasm_f32x4_splat(inv), vs = wasm_f32x4_splat(scale), vn = wasm_f32x4_splat(-scale);
  const v128_t lo = wasm_f32x4_splat(qmin), hi = wasm_f32x4_splat(qmax), zero = wasm_f32x4_splat(0.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t r = wasm_f32x4_mul(wasm_v128_load(src + i), vi);
    r = wasm_f32x4_pmin(wasm_f32x4_pmax(r, lo), hi);
    wasm_v128_store(dst + i, wasm_v128_bitselect(vs, vn, wasm_f32x4_gt(r, zero)));
  }
  for (; i < n; i++) {
    float r = src[i] * inv;
    float c = r < qmin ? qmin : r > qmax ? qmax : r;
    dst[i] = c > 0 ? scale : -scale;
  }
}

/* dst[i] = qmin <= x[i] * inv <= qmax ? dy[i] : 0. */
void fake_quantize_grad(const float *x, const float *dy, float *dst, size_t n, float inv, float qmin, float qmax) {
  const v128_t vi = wasm_f32x4_splat(inv), lo = wasm_f32x4_splat(qmin), hi = wasm_f32x4_splat(qmax);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t r = wasm_f32x4_mul(wasm_v128_load(x + i), vi);
    v128_t keep = wasm_v128_and(wasm_f32x4_ge(r, lo), wasm_f32x4_le(r, hi));
    wasm_v128_store(dst + i, wasm_v128_and(wasm_v128_load(dy + i), keep));
  }
  for (; i < n; i++) {
    float r = x[i] * inv;
    dst[i] = r >= qmin && r <= qmax ? dy[i] : 0.0f;
  }
}

/* dst[i] = lo <= x[i] <= hi ? dy[i] : 0. */
void clip_grad(const float *x, const float *dy, float *dst, size_t n, float lo, float hi) {
  const v128_t vl = wasm_f32x4_splat(lo), vh = wasm_f32x4_splat(hi);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    v128_t keep = wasm_v128_and(wasm_f32x4_ge(v, vl), wasm_f32x4_le(v, vh));
    wasm_v128_store(dst + i, wasm_v128_and(wasm_v128_load(dy + i), keep));
  }
  for (; i < n; i++) {
    float v = x[i];
    dst[i] = v >= lo && v <= hi ? dy[i] : 0.0f;
  }
}

/*
 * Batch normalisation over the last axis: y[p*c + j] = (x[p*c + j] - mean[j]) * k[j] + offset[j]
 * for p < pixels, j < c, with k = scale / sqrt(variance + eps) computed by the caller.
 */
void batch_norm(const float *x, const float *mean, const float *k, const float *offset, float *y, size_t pixels,
                size_t c) {
  const size_t c4 = c & ~(size_t)3;
  for (size_t p = 0; p < pixels; p++) {
    const float *xs = x + p * c;
    float *ys = y + p * c;
    size_t j = 0;
    for (; j < c4; j += 4) {
      v128_t v = wasm_f32x4_sub(wasm_v128_load(xs + j), wasm_v128_load(mean + j));
      wasm_v128_store(ys + j, wasm_f32x4_add(wasm_f32x4_mul(v, wasm_v128_load(k + j)), wasm_v128_load(offset + j)));
    }
    for (; j < c; j++) ys[j] = (xs[j] - mean[j]) * k[j] + offset[j];
  }
}

/*
 * BatchNorm training gradient, pass 1 (per-channel sums over the pixels, channels on the last
 * axis): s1[j] = sum_p dy[p*c + j], s2[j] = sum_p dy[p*c + j] * (x[p*c + j] - mean[j]), each
 * channel's sum taken pixel after pixel in float32. s1 and s2 are written (not accumulated).
 */
void batch_norm_grad_sums(const float *x, const float *dy, const float *mean, float *s1, float *s2, size_t pixels,
                          size_t c) {
  const size_t c4 = c & ~(size_t)3;
  for (size_t j = 0; j < c; j++) {
    s1[j] = 0.0f;
    s2[j] = 0.0f;
  }
  for (size_t p = 0; p < pixels; p++) {
    const float *xs = x + p * c, *ds = dy + p * c;
    size_t j = 0;
    for (; j < c4; j += 4) {
      const v128_t d = wasm_v128_load(ds + j);
      const v128_t xc = wasm_f32x4_sub(wasm_v128_load(xs + j), wasm_v128_load(mean + j));
      wasm_v128_store(s1 + j, wasm_f32x4_add(wasm_v128_load(s1 + j), d));
      wasm_v128_store(s2 + j, wasm_f32x4_add(wasm_v128_load(s2 + j), wasm_f32x4_mul(d, xc)));
    }
    for (; j < c; j++) {
      const float d = ds[j];
      s1[j] += d;
      s2[j] += d * (xs[j] - mean[j]);
    }
  }
}

/*
 * BatchNorm training gradient, pass 2: dx[p*c + j] = dy[p*c + j] * k[j] + (x[p*c + j] - mean[j]) * c1[j] + c0[j]
 * (k, c1, c0 per channel, computed by the caller from the sums of pass 1).
 */
void batch_norm_grad_dx(const float *x, const float *dy, const float *mean, const float *k, const float *c1,
                        const float *c0, float *dx, size_t pixels, size_t c) {
  const size_t c4 = c & ~(size_t)3;
  for (size_t p = 0; p < pixels; p++) {
    const float *xs = x + p * c, *ds = dy + p * c;
    float *out = dx + p * c;
    size_t j = 0;
    for (; j < c4; j += 4) {
      const v128_t xc = wasm_f32x4_sub(wasm_v128_load(xs + j), wasm_v128_load(mean + j));
      v128_t r = wasm_f32x4_mul(wasm_v128_load(ds + j), wasm_v128_load(k + j));
      r = wasm_f32x4_add(r, wasm_f32x4_mul(xc, wasm_v128_load(c1 + j)));
      wasm_v128_store(out + j, wasm_f32x4_add(r, wasm_v128_load(c0 + j)));
    }
    for (; j < c; j++) out[j] = ds[j] * k[j] + (xs[j] - mean[j]) * c1[j] + c0[j];
  }
}

/*
 * One Adam update of n values, each float32 operation in the order of tfjs's AdamOptimizer (so
 * the results are bit-identical to its kernels):
 *   m' = m * b1 + g * omb1,  v' = v * b2 + (g * g) * omb2,
 *   w' = ((m' / c1) / (sqrt(v' / c2) + eps)) * neglr + w
 * with omb = 1 - beta, c = 1 - beta^t and neglr = -learning rate (all float32, from the caller).
 */
void adam_update(const float *w, const float *m, const float *v, const float *g, float *w_out, float *m_out,
                 float *v_out, size_t n, float b1, float omb1, float b2, float omb2, float c1, float c2, float eps,
                 float neglr) {
  const v128_t vb1 = wasm_f32x4_splat(b1), vo1 = wasm_f32x4_splat(omb1), vb2 = wasm_f32x4_splat(b2),
               vo2 = wasm_f32x4_splat(omb2), vc1 = wasm_f32x4_splat(c1), vc2 = wasm_f32x4_splat(c2),
               ve = wasm_f32x4_splat(eps), vl = wasm_f32x4_splat(neglr);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t gi = wasm_v128_load(g + i);
    const v128_t mi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), vb1), wasm_f32x4_mul(gi, vo1));
    const v128_t vi =
        wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), vb2), wasm_f32x4_mul(wasm_f32x4_mul(gi, gi), vo2));
    const v128_t step = wasm_f32x4_div(wasm_f32x4_div(mi, vc1), wasm_f32x4_add(wasm_f32x4_sqrt(wasm_f32x4_div(vi, vc2)), ve));
    wasm_v128_store(m_out + i, mi);
    wasm_v128_store(v_out + i, vi);
    wasm_v128_store(w_out + i, wasm_f32x4_add(wasm_f32x4_mul(step, vl), wasm_v128_load(w + i)));
  }
  for (; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * omb1;
    const float vi = v[i] * b2 + (gi * gi) * omb2;
    const float s = wasm_f32x4_extract_lane(wasm_f32x4_sqrt(wasm_f32x4_splat(vi / c2)), 0);
    m_out[i] = mi;
    v_out[i] = vi;
    w_out[i] = ((mi / c1) / (s + eps)) * neglr + w[i];
  }
}

/*
 * acc[j] = sum over rows of v(x[r*c + j]) in float64, in the order of ../reduce.ts's Sum/Mean
 * kernel (so its results are bit-identical): up to 256 channels, blocks of 4096 / c rows each
 * summed on their own and then added to acc[j]; wider rows added to acc[j] row by row. v is x
 * itself, or with mean given, (x - mean[j])^2 in float32 (tf.moments' Sub and Square).
 */
static inline __attribute__((always_inline)) v128_t moment_value(v128_t v, const float *mean, size_t j) {
  if (!mean) return v;
  const v128_t d = wasm_f32x4_sub(v, wasm_v128_load(mean + j));
  return wasm_f32x4_mul(d, d);
}

static inline __attribute__((always_inline)) float moment_scalar(float v, const float *mean, size_t j) {
  if (!mean) return v;
  const float d = v - mean[j];
  return d * d;
}

static inline __attribute__((always_inline)) void column_sums(const float *x, const float *mean, double *acc,
                                                              size_t rows, size_t c) {
  for (size_t j = 0; j < c; j++) acc[j] = 0.0;
  if (c > 256) {
    for (size_t r = 0; r < rows; r++) {
      for (size_t j = 0; j < c; j++) acc[j] = acc[j] + (double)moment_scalar(x[r * c + j], mean, j);
    }
    return;
  }
  size_t block = 4096 / c;
  if (block < 1) block = 1;
  const size_t c4 = c & ~(size_t)3;
  for (size_t r0 = 0; r0 < rows; r0 += block) {
    const size_t r1 = rows < r0 + block ? rows : r0 + block;
    size_t j = 0;
    for (; j < c4; j += 4) {
      v128_t lo = wasm_f64x2_splat(0.0), hi = wasm_f64x2_splat(0.0);
      for (size_t r = r0; r < r1; r++) {
        const v128_t v = moment_value(wasm_v128_load(x + r * c + j), mean, j);
        lo = wasm_f64x2_add(lo, wasm_f64x2_promote_low_f32x4(v));
        hi = wasm_f64x2_add(hi, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1)));
      }
      wasm_v128_store(acc + j, wasm_f64x2_add(wasm_v128_load(acc + j), lo));
      wasm_v128_store(acc + j + 2, wasm_f64x2_add(wasm_v128_load(acc + j + 2), hi));
    }
    for (; j < c; j++) {
      double s = 0.0;
      for (size_t r = r0; r < r1; r++) s += (double)moment_scalar(x[r * c + j], mean, j);
      acc[j] = acc[j] + s;
    }
  }
}

/*
 * tf.moments over every axis but the last (channels last, `rows` values per channel), bit-identical
 * to its Mean, Sub, Square, Mean on the wasm backend: mean[j] = float(sum / rows), then
 * variance[j] = float(sum of float32 (x - mean)^2 / rows). acc: scratch of c doubles (8-aligned).
 */
void batch_norm_moments(const float *x, float *mean, float *variance, double *acc, size_t rows, size_t c) {
  column_sums(x, 0, acc, rows, c);
  for (size_t j = 0; j < c; j++) mean[j] = (float)(acc[j] / (double)rows);
  column_sums(x, mean, acc, rows, c);
  for (size_t j = 0; j < c; j++) variance[j] = (float)(acc[j] / (double)rows);
}
