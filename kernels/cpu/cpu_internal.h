/* kernels/cpu/cpu_internal.h — shared helpers of the CPU reference backend.
 * Loads/stores of any float dtype as fp32, with bf16 rounding on store. */
#ifndef BAGEL_CPU_INTERNAL_H
#define BAGEL_CPU_INTERNAL_H

#include "ops.h"

#include <math.h>
#include <string.h>

typedef struct {
  int n_threads;
} CpuImpl;

static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else { /* subnormal */
      int e = -1;
      do { man <<= 1; e++; } while (!(man & 0x400));
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  union { uint32_t u; float f; } v = { u };
  return v.f;
}

/* Element i of a float tensor as fp32. */
static inline float ld_f(const BkTensor *t, int64_t i) {
  switch (t->dt) {
  case BK_F32: return ((const float *)t->data)[i];
  case BK_BF16: return bk_bf16_to_f32(((const uint16_t *)t->data)[i]);
  case BK_F16: return f16_to_f32(((const uint16_t *)t->data)[i]);
  default: return NAN;
  }
}

/* Store v into element i, rounding to the tensor's dtype. */
/* fp32 -> IEEE binary16, round to nearest even (as torch's .half()); overflow to ±inf,
 * subnormals kept, NaN -> quiet NaN.  Plain C: Debian's clang 14 has no x86 _Float16. */
static inline uint16_t f32_to_f16(float v) {
  uint32_t x;
  memcpy(&x, &v, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);            /* NaN */
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);           /* >= 65520: inf */
  if (ax < 0x38800000u) {                                              /* < 2^-14 */
    if (ax < 0x33000000u) return (uint16_t)sign;                       /* <= 2^-25: 0 */
    const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e, q = m >> shift, r = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    return (uint16_t)(sign | (q + (r > half || (r == half && (q & 1)))));
  }
  uint32_t h = ((ax >> 23) - 112) << 10 | (ax & 0x7fffffu) >> 13;
  const uint32_t r = ax & 0x1fffu;
  h += r > 0x1000u || (r == 0x1000u && (h & 1));
  return (uint16_t)(sign | h);
}

static inline void st_f(BkTensor *t, int64_t i, float v) {
  if (t->dt == BK_F32) ((float *)t->data)[i] = v;
  else if (t->dt == BK_F16) ((uint16_t *)t->data)[i] = f32_to_f16(v);
  else ((uint16_t *)t->data)[i] = bk_f32_to_bf16(v);
}

/* Round v as a store into dtype dt would. */
static inline float round_to(BkDType dt, float v) {
  return dt == BK_BF16 ? bk_round_bf16(v) : dt == BK_F16 ? f16_to_f32(f32_to_f16(v)) : v;
}

static inline bool is_float_dt(BkDType dt) {
  return dt == BK_F32 || dt == BK_BF16 || dt == BK_F16;
}

/* ---- torch's CPU arithmetic, reproduced (docs/numerics.md) ---------------------------
 * The golden files come from torch 2.6 on an x86 CPU with AVX512: its vectorised
 * kernels use SLEEF's transcendental functions and fixed lane orders for reductions.
 * These helpers reproduce the ones the model's ops hit, bit for bit. */

/* SLEEF's expf_u10 (Sleef_expf16_u10 / Sleef_expf8_u10, what Vectorized<float>::exp()
 * calls), reimplemented: q = rint(x·log2 e); s = x − q·ln2 in two fused steps (hi, lo
 * parts of ln2); degree-6 polynomial in Horner form with fused multiply-adds;
 * u = 1 + (s²·P(s) + s); result u·2^⌊q/2⌋·2^(q−⌊q/2⌋); 0 below −104, +∞ above 100.
 * Checked bit-exact against libsleef's AVX512 and AVX2 builds on every float with
 * |x| ≤ 110 (2.2e9 values); glibc's expf differs from it on 0.8 % of them (1 ulp). */
static inline float cpu_pow2i(int q) {
  union { uint32_t u; float f; } v = { (uint32_t)(q + 0x7f) << 23 };
  return v.f;
}
static inline float cpu_expf(float x) {
  if (isnan(x)) return x;
  if (x < -104.0f) return 0.0f;
  if (x > 100.0f) return INFINITY;
  const int q = (int)rintf(x * 1.442695040888963407359924681001892137426645954152985934135449406931f);
  const float qf = (float)q;
  float s = fmaf(qf, -0.693145751953125f, x);
  s = fmaf(qf, -1.428606765330187045e-06f, s);
  float u = 0.000198527617612853646278381f;
  u = fmaf(u, s, 0.00139304355252534151077271f);
  u = fmaf(u, s, 0.00833336077630519866943359f);
  u = fmaf(u, s, 0.0416664853692054748535156f);
  u = fmaf(u, s, 0.166666671633720397949219f);
  u = fmaf(u, s, 0.5f);
  u = 1.0f + fmaf(s * s, u, s);
  return u * cpu_pow2i(q >> 1) * cpu_pow2i(q - (q >> 1));
}

/* Σ x[0..n) the way torch's vec::reduce_all sums a row with 16-lane vectors (AVX512
 * softmax): n < 16: plain left-to-right sum; else lane l accumulates x[l], x[16+l], …
 * (the partial last vector adds into lanes 0 …), then the lanes are folded pairwise
 * (l with l+8, then l+4, l+2, l+1). */
static inline float cpu_sum16(const float *x, int64_t n) {
  if (n < 16) {
    float s = n ? x[0] : 0.0f;
    for (int64_t i = 1; i < n; i++) s += x[i];
    return s;
  }
  float acc[16];
  for (int l = 0; l < 16; l++) acc[l] = x[l];
  for (int64_t i = 16; i < n; i++) acc[i % 16] += x[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) acc[l] += acc[l + w];
  return acc[0];
}

/* Σ v[0..n) in the order of ATen's cascade sum of a contiguous fp32 row with 8-lane
 * vectors (torch.sum / mean over the last dim; cpu_norm.c). */
float cpu_sum8_cascade(const float *v, int64_t n);

/* Copy n elements of row r of t into dst as fp32. */
void cpu_load_row(const BkTensor *t, int64_t r, int64_t n, float *dst);

/* op entry points (one file per family) */
void cpu_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b);
void cpu_rms_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, float eps);
void cpu_layer_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                    const BkTensor *b, float eps);
void cpu_group_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                    const BkTensor *b, int groups, float eps, bool swish);
void cpu_rope(BkBackend *be, BkTensor *y, const BkTensor *x, int64_t pos0, int pos_step, float theta);
void cpu_convert(BkBackend *be, BkTensor *y, const BkTensor *x);
void cpu_add(BkBackend *be, BkTensor *y, const BkTensor *a, const BkTensor *b);
void cpu_scale_shift(BkBackend *be, BkTensor *y, const BkTensor *x, float s, float t);
void cpu_silu_mul(BkBackend *be, BkTensor *y, const BkTensor *gate, const BkTensor *up);
void cpu_gelu_tanh(BkBackend *be, BkTensor *y, const BkTensor *x);
void cpu_gather_rows(BkBackend *be, BkTensor *y, const BkTensor *table, const int32_t *ids);
void cpu_transpose(BkBackend *be, BkTensor *y, const BkTensor *x);
void cpu_upsample2x(BkBackend *be, BkTensor *y, const BkTensor *x);
void cpu_latent_pack(BkBackend *be, BkTensor *tokens, const BkTensor *z);
void cpu_latent_unpack(BkBackend *be, BkTensor *z, const BkTensor *tokens);
void cpu_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc,
                   const BkTensor *vc, const BkTensor *kn, const BkTensor *vn, BkCausal causal,
                   float scale);
void cpu_conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                const BkTensor *b, int stride, const int pad[4]);
/* The same with FMA on AVX-512 (the fast backend; the exact kernels elsewhere), its
 * scratch kept in cw between calls (NULL: allocated per call). */
typedef struct CpuConvWork CpuConvWork;
CpuConvWork *cpu_conv_work_new(int n_threads);
void cpu_conv_work_free(CpuConvWork *cw);
void cpu_conv2d_fma(BkBackend *be, CpuConvWork *cw, BkTensor *y, const BkTensor *x,
                    const BkTensor *w, const BkTensor *b, int stride, const int pad[4]);
void cpu_cfg_euler(BkBackend *be, BkTensor *x, const BkTensor *c, const BkTensor *ut,
                   const BkTensor *ui, const BkCfgStep *p, BkTensor *v_out);

#endif
