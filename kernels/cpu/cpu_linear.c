/* kernels/cpu/cpu_linear.c — y = x·wᵀ + b on the CPU reference backend.
 * bf16 weights: x rounded to bf16 (autocast), products accumulated in fp32, bias added
 * in fp32 after the whole dot product, one rounding to y's dtype.  fp32 weights: all
 * fp32, k = 0 … K−1 sequentially.  The reference keeps the weights in their stored dtype
 * (never a converted copy) and converts one row at a time.
 *
 * Summation order of the bf16 GEMM (docs/numerics.md, "GEMM"): one fp32 accumulator per
 * output, walking k in pairs (k, k+1) = (0,1), (2,3), …, each pair adding the ODD term
 * first:  acc += x[k+1]·w[k+1];  acc += x[k]·w[k];  an odd K ends with the last term
 * alone.  This is the AVX512_BF16 VDPBF16PS instruction's order (oneDNN's bf16 matmul on
 * the CPU that produced the golden files).  A product of two bf16 values is exact in
 * fp32, so only the order of the additions matters.  Measured on every golden lm_head
 * call (4,866,048 bf16 logits): pair order 0 mismatches; plain k-sequential 46; ATen's
 * 4-way ILP sum 181; 8/16-lane partial sums 200/202; fp64 209.  On the 192 golden LLM
 * layer calls the pair order removes the last exact-tie flips (MLP up-projection). */
#include "cpu_internal.h"

#include <stdlib.h>

/* Σ a[k]·b[k] in fp32, k = 0 … K−1 in order (the fp32-weight path). */
static float dot_seq(const float *a, const float *b, int64_t K) {
  float s = 0;
  for (int64_t k = 0; k < K; k++) s += a[k] * b[k];
  return s;
}

/* Σ a[k]·b[k] in fp32 in VDPBF16PS pair order (odd term of each pair first).
 * GCC 12.2 (Debian 12) at -O2 miscompiles this loop when it vectorises it: the pair is
 * loaded as one 2-lane vector and summed as lane 0, lane 1, lane 0 (x[k]·w[k] counted
 * twice, x[k+1]·w[k+1] added first).  Clang and GCC ≥ 12.4 are fine; keep GCC scalar
 * here.  /ops-cpu/linear-order pins the result. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
static float dot_bf16_pairs(const float *a, const float *b, int64_t K) {
  float s = 0;
  int64_t k = 0;
  for (; k + 1 < K; k += 2) {
    s += a[k + 1] * b[k + 1];
    s += a[k] * b[k];
  }
  if (k < K) s += a[k] * b[k];
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
  float (*dot)(const float *, const float *, int64_t) = autocast ? dot_bf16_pairs : dot_seq;
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
      for (int64_t m = 0; m < M; m++) st_f(y, m * N + n, dot(xf + m * K, wr, K) + bias);
    }
    free(wr);
  }
  free(xf);
}
