/* kernels/cpu/cpu_linear.c — y = x·wᵀ + b on the CPU reference backend.
 * bf16 weights: x rounded to bf16 (autocast), products accumulated in fp32, bias added
 * in fp32, one rounding to y's dtype.  fp32 weights: all fp32.  The reference keeps the
 * weights in their stored dtype (never a converted copy) and converts one row at a time. */
#include "cpu_internal.h"

#include <stdlib.h>

#define LANES 16

/* Σ a[k]·b[k] in fp32 over LANES partial sums (vectorisable without reassociation). */
static float dot_f32(const float *a, const float *b, int64_t K) {
  float acc[LANES] = {0};
  int64_t k = 0;
  for (; k + LANES <= K; k += LANES)
    for (int l = 0; l < LANES; l++) acc[l] += a[k + l] * b[k + l];
  float s = 0;
  for (int l = 0; l < LANES; l++) s += acc[l];
  for (; k < K; k++) s += a[k] * b[k];
  return s;
}

void cpu_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                const BkTensor *b) {
  const int64_t K = bk_cols(x), M = bk_rows(x);
  const int64_t N = w->nd == 2 ? w->ne[0] : -1;
  if (w->nd != 2 || w->ne[1] != K || bk_rows(y) != M || bk_cols(y) != N ||
      (b && bk_numel(b) != N) || !is_float_dt(w->dt) || !is_float_dt(x->dt)) {
    bk_fail(be, "cpu linear: x[%lld,%lld] · w[%lld,%lld]ᵀ -> y[%lld,%lld]%s", (long long)M,
            (long long)K, (long long)(w->nd == 2 ? w->ne[0] : -1),
            (long long)(w->nd == 2 ? w->ne[1] : -1), (long long)bk_rows(y),
            (long long)bk_cols(y), b && bk_numel(b) != N ? " (bias size)" : "");
    return;
  }
  if (M == 0 || N == 0) return;
  const bool autocast = w->dt != BK_F32;
  /* x rows as fp32 (bf16-rounded under autocast) */
  float *xf = malloc(sizeof(float) * (size_t)(M * K));
  for (int64_t m = 0; m < M; m++) {
    cpu_load_row(x, m, K, xf + m * K);
    if (autocast)
      for (int64_t k = 0; k < K; k++) xf[m * K + k] = bk_round_bf16(xf[m * K + k]);
  }
#pragma omp parallel
  {
    float *wr = malloc(sizeof(float) * (size_t)K);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      cpu_load_row(w, n, K, wr);
      float bias = b ? ld_f(b, n) : 0.0f;
      for (int64_t m = 0; m < M; m++) st_f(y, m * N + n, dot_f32(xf + m * K, wr, K) + bias);
    }
    free(wr);
  }
  free(xf);
}
