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
static inline void st_f(BkTensor *t, int64_t i, float v) {
  if (t->dt == BK_F32) ((float *)t->data)[i] = v;
  else ((uint16_t *)t->data)[i] = bk_f32_to_bf16(v);
}

/* Round v as a store into dtype dt would. */
static inline float round_to(BkDType dt, float v) {
  return dt == BK_BF16 ? bk_round_bf16(v) : v;
}

static inline bool is_float_dt(BkDType dt) {
  return dt == BK_F32 || dt == BK_BF16 || dt == BK_F16;
}

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
void cpu_cfg_euler(BkBackend *be, BkTensor *x, const BkTensor *c, const BkTensor *ut,
                   const BkTensor *ui, const BkCfgStep *p, BkTensor *v_out);

#endif
