/* kernels/cpu/cpu_norm.c — RMSNorm (Qwen2) and LayerNorm (SigLIP) of the CPU reference
 * backend.  The per-element arithmetic is fp32 in torch's order; rounding recipes:
 * kernels/ops.h.
 *
 * RMSNorm's mean(x²) is torch's: x² rounded to fp32, summed by ATen's cascade sum, then
 * divided by D (docs/numerics.md, "Reductions").  The sum kernel runs with 8-lane
 * vectors even on AVX512 machines (ATen registers no AVX512 variant of it), so
 * cpu_sum8_cascade() below reproduces vectorized_inner_sum → row_sum → multi_row_sum for
 * 8-wide vectors.  Evidence: single-layer replay of the 192 golden LLM calls gives 0
 * mismatches with it (as with an fp64 sum); a plain sequential fp32 sum, or the 16-lane
 * variant, gives 40 (the 16-wide head-dim QK-norms of the und rows).
 * LayerNorm's statistics are still accumulated in double (within an ulp of torch's
 * Welford moments; its output feeds a Linear that rounds it to bf16 first). */
#include "cpu_internal.h"

#include <stdlib.h>

/* ATen's multi_row_sum over `rows` rows of 4 vectors of 8 lanes (v[(r·4 + k)·8 + l]):
 * accumulates into acc[k] with up to 4 cascade levels of 2^level_power rows each. */
static void multi_row_sum8(const float *v, int64_t rows, float out[4][8]) {
  enum { LEVELS = 4 };
  int64_t ceil_log2 = 1;
  if (rows > 2) {
    ceil_log2 = 0;
    while (((int64_t)1 << ceil_log2) < rows) ceil_log2++;
  }
  const int64_t level_power = ceil_log2 / LEVELS > 4 ? ceil_log2 / LEVELS : 4;
  const int64_t level_step = (int64_t)1 << level_power, level_mask = level_step - 1;
  float acc[LEVELS][4][8];
  memset(acc, 0, sizeof acc);
  int64_t i = 0;
  while (i + level_step <= rows) {
    for (int64_t j = 0; j < level_step; j++, i++)
      for (int k = 0; k < 4; k++)
        for (int l = 0; l < 8; l++) acc[0][k][l] += v[(i * 4 + k) * 8 + l];
    for (int j = 1; j < LEVELS; j++) {
      for (int k = 0; k < 4; k++)
        for (int l = 0; l < 8; l++) {
          acc[j][k][l] += acc[j - 1][k][l];
          acc[j - 1][k][l] = 0;
        }
      if ((i & (level_mask << (j * level_power))) != 0) break;
    }
  }
  for (; i < rows; i++)
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 8; l++) acc[0][k][l] += v[(i * 4 + k) * 8 + l];
  for (int j = 1; j < LEVELS; j++)
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 8; l++) acc[0][k][l] += acc[j][k][l];
  memcpy(out, acc[0], sizeof acc[0]);
}

/* Σ v[0..n) as ATen's cascade sum does for a contiguous fp32 row with 8-lane vectors:
 * the n/8 whole vectors are summed lane-wise by row_sum (4 interleaved accumulators of
 * whole vectors, folded 0+1, +2, +3), then the scalar tail and the 8 lanes are added to
 * 0 in that order. */
float cpu_sum8_cascade(const float *v, int64_t n) {
  if (n < 8) { /* rows shorter than a vector: ATen's scalar row_sum (4 accumulators) */
    float a[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int k = 0; k < 4; k++) a[k] += v[i + k];
    for (; i < n; i++) a[0] += v[i];
    return ((a[0] + a[1]) + a[2]) + a[3];
  }
  const int64_t nvec = n / 8, rows = nvec / 4;
  float part[4][8];
  multi_row_sum8(v, rows, part);
  for (int64_t i = rows * 4; i < nvec; i++)
    for (int l = 0; l < 8; l++) part[0][l] += v[i * 8 + l];
  for (int k = 1; k < 4; k++)
    for (int l = 0; l < 8; l++) part[0][l] += part[k][l];
  float s = 0;
  for (int64_t i = nvec * 8; i < n; i++) s += v[i];
  for (int l = 0; l < 8; l++) s += part[0][l];
  return s;
}

void cpu_rms_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, float eps) {
  const int64_t D = bk_cols(x), R = bk_rows(x);
  if (!bk_same_shape(y, x) || bk_numel(w) != D) {
    bk_fail(be, "cpu rms_norm: x has rows of %lld, weight %lld", (long long)D,
            (long long)bk_numel(w));
    return;
  }
  const bool bf = x->dt == BK_BF16;
#pragma omp parallel if (R * D > 32768)
  {
    float *sq = malloc(sizeof(float) * (size_t)D);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; r++) {
      const int64_t base = r * D;
      for (int64_t i = 0; i < D; i++) {
        float v = ld_f(x, base + i);
        sq[i] = v * v;                              /* x.pow(2), fp32 */
      }
      float var = cpu_sum8_cascade(sq, D) / (float)D;   /* .mean(-1): sum, then ÷ D */
      float rstd = 1.0f / sqrtf(var + eps);         /* torch.rsqrt(var + eps) */
      for (int64_t i = 0; i < D; i++) {
        float n = ld_f(x, base + i) * rstd;
        if (bf) n = bk_round_bf16(n);   /* hidden_states.to(input_dtype) */
        st_f(y, base + i, ld_f(w, i) * n);
      }
    }
    free(sq);
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
