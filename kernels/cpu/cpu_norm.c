/* kernels/cpu/cpu_norm.c — RMSNorm (Qwen2) and LayerNorm (SigLIP) of the CPU reference
 * backend.  Statistics are accumulated in double and rounded to fp32, which is within
 * an ulp of torch's fp32 cascade sums; the per-element arithmetic is fp32 in torch's
 * order.  Rounding recipes: kernels/ops.h. */
#include "cpu_internal.h"

#include <stdlib.h>

void cpu_rms_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, float eps) {
  const int64_t D = bk_cols(x), R = bk_rows(x);
  if (!bk_same_shape(y, x) || bk_numel(w) != D) {
    bk_fail(be, "cpu rms_norm: x has rows of %lld, weight %lld", (long long)D,
            (long long)bk_numel(w));
    return;
  }
  const bool bf = x->dt == BK_BF16;
#pragma omp parallel for schedule(static) if (R * D > 32768)
  for (int64_t r = 0; r < R; r++) {
    const int64_t base = r * D;
    double ss = 0;
    for (int64_t i = 0; i < D; i++) {
      float v = ld_f(x, base + i);
      ss += (double)(v * v);
    }
    float var = (float)(ss / (double)D);
    float rstd = 1.0f / sqrtf(var + eps);
    for (int64_t i = 0; i < D; i++) {
      float n = ld_f(x, base + i) * rstd;
      if (bf) n = bk_round_bf16(n);   /* hidden_states.to(input_dtype) */
      st_f(y, base + i, ld_f(w, i) * n);
    }
  }
}

void cpu_layer_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                    const BkTensor *b, float eps) {
  const int64_t D = bk_cols(x), R = bk_rows(x);
  if (!bk_same_shape(y, x) || bk_numel(w) != D || bk_numel(b) != D) {
    bk_fail(be, "cpu layer_norm: x has rows of %lld, weight %lld, bias %lld", (long long)D,
            (long long)bk_numel(w), (long long)bk_numel(b));
    return;
  }
#pragma omp parallel for schedule(static) if (R * D > 32768)
  for (int64_t r = 0; r < R; r++) {
    const int64_t base = r * D;
    double s = 0, ss = 0;
    for (int64_t i = 0; i < D; i++) s += ld_f(x, base + i);
    double mean = s / (double)D;
    for (int64_t i = 0; i < D; i++) {
      double d = ld_f(x, base + i) - mean;
      ss += d * d;
    }
    float meanf = (float)mean;
    float rstd = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
    for (int64_t i = 0; i < D; i++)
      st_f(y, base + i, (ld_f(x, base + i) - meanf) * rstd * ld_f(w, i) + ld_f(b, i));
  }
}
