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
 * LayerNorm: see rowwise_moments() below. */
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

/* ---- LayerNorm: ATen's RowwiseMoments (Welford + cascade), 8 lanes ------------------
 * torch's CPU layer_norm runs its AVX2 kernel on AVX512 machines too (8-lane vectors),
 * and GCC builds those kernels with FMA contraction (-ffp-contract=fast, -mfma): every
 * `a + b·c` of the source becomes fma(b, c, a).  Reproduced below with fmaf() at exactly
 * those places.  Evidence: the ViT's fp32 post-LayerNorm output (42 × 32 values):
 * 0 differing with this; without the contraction 230; 16 lanes ≥ 603; fp64 two-pass
 * statistics (the previous code) 487. */
enum { LN_LANES = 8, LN_CHUNK = 16 };

typedef struct {
  int64_t n;
  float m1[LN_LANES], m2[LN_LANES];
} Moments8;

/* AddMomentsVec: fold (n_add, m1_add, m2_add) into *acc. */
static void moments_add_vec(int64_t n_add, const float *m1_add, const float *m2_add,
                            Moments8 *acc) {
  const int64_t n = acc->n + n_add;
  const float c = n == 0 ? 0.0f : (float)n_add / (float)n;
  for (int l = 0; l < LN_LANES; l++) {
    const float delta = m1_add[l] - acc->m1[l];
    acc->m1[l] = fmaf(c, delta, acc->m1[l]);
    acc->m2[l] = acc->m2[l] + fmaf(delta * delta * c, (float)acc->n, m2_add[l]);
  }
  acc->n = n;
}

/* (mean, biased variance) of x[0..N) in the order of ATen's RowwiseMoments<float>. */
static void rowwise_moments(const float *x, int64_t N, float *mean, float *var) {
  const int64_t nvec = N / LN_LANES, nchunk = (nvec + LN_CHUNK - 1) / LN_CHUNK;
  int depth = 1;   /* utils::CeilLog2(nchunk), which is 1 for nchunk ≤ 2 */
  while (nchunk > 2 && ((int64_t)1 << depth) < nchunk) depth++;
  Moments8 stk[64];
  memset(stk, 0, sizeof(Moments8) * (size_t)depth);
  for (int64_t i = 0; i < nchunk; i++) {
    /* UpdateMomentsVec over up to 16 vectors of this chunk */
    const float *xc = x + i * LN_CHUNK * LN_LANES;
    const int64_t m0 = nvec - i * LN_CHUNK < LN_CHUNK ? nvec - i * LN_CHUNK : LN_CHUNK;
    float m1[LN_LANES] = {0}, m2[LN_LANES] = {0};
    for (int64_t j = 0; j < m0; j++) {
      const float c = 1.0f / (float)(j + 1);
      for (int l = 0; l < LN_LANES; l++) {
        const float xv = xc[j * LN_LANES + l], delta = xv - m1[l];
        m1[l] = fmaf(delta, c, m1[l]);
        m2[l] = fmaf(delta, xv - m1[l], m2[l]);
      }
    }
    moments_add_vec(m0, m1, m2, &stk[0]);
    int64_t mask = i + 1;
    for (int j = 1; j < depth && (mask & 1) == 0; j++) {
      moments_add_vec(stk[j - 1].n, stk[j - 1].m1, stk[j - 1].m2, &stk[j]);
      memset(&stk[j - 1], 0, sizeof stk[j - 1]);
      mask >>= 1;
    }
  }
  for (int j = 1; j < depth; j++) moments_add_vec(stk[j].n, stk[j].m1, stk[j].m2, &stk[0]);
  /* scalar Welford over the tail, then the 8 lanes folded in (AddMoments) */
  int64_t n = 0;
  float m1 = 0, m2 = 0;
  for (int64_t i = nvec * LN_LANES; i < N; i++) {
    const float delta = x[i] - m1;
    n++;
    m1 += delta / (float)n;
    m2 = fmaf(delta, x[i] - m1, m2);
  }
  const int64_t n_add = nvec;   /* nvec·LN_LANES values spread over LN_LANES lanes */
  for (int l = 0; l < LN_LANES; l++) {
    const int64_t nn = n + n_add;
    const float c = nn == 0 ? 0.0f : (float)n_add / (float)nn;
    const float delta = stk[0].m1[l] - m1;
    m1 = fmaf(c, delta, m1);
    m2 = m2 + fmaf(delta * delta * c, (float)n, stk[0].m2[l]);
    n = nn;
  }
  *mean = m1;
  *var = m2 / (float)N;
}

void cpu_layer_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                    const BkTensor *b, float eps) {
  const int64_t D = bk_cols(x), R = bk_rows(x);
  if (!bk_same_shape(y, x) || bk_numel(w) != D || bk_numel(b) != D) {
    bk_fail(be, "cpu layer_norm: x has rows of %lld, weight %lld, bias %lld", (long long)D,
            (long long)bk_numel(w), (long long)bk_numel(b));
    return;
  }
#pragma omp parallel if (R * D > 32768)
  {
    float *xr = malloc(sizeof(float) * (size_t)D);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; r++) {
      cpu_load_row(x, r, D, xr);
      float mean, var;
      rowwise_moments(xr, D, &mean, &var);
      const float rstd = 1.0f / sqrtf(var + eps), bias = -mean;
      /* (x + (−mean))·rstd·γ + β, the last multiply-add fused */
      for (int64_t i = 0; i < D; i++)
        st_f(y, r * D + i, fmaf((xr[i] + bias) * rstd, ld_f(w, i), ld_f(b, i)));
    }
    free(xr);
  }
}
