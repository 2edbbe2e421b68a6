/* kernels/cuda/norm.cu — RMSNorm (Qwen2: the LLM's input/post-attention/final norms and
 * the per-head QK-norm) and LayerNorm (SigLIP), in the reference's exact arithmetic
 * (kernels/cpu/cpu_norm.c, docs/numerics.md "Reductions"), which is torch's on the CPU
 * that made the golden files:
 *   RMSNorm   var = cascade-sum(x²)/D (ATen's 8-lane cascade sum), rstd = 1/sqrtf(var+eps)
 *             x bf16: n = bf16(x·rstd), y = round(w·n);  x fp32: y = w·(x·rstd)
 *   LayerNorm mean, var from ATen's RowwiseMoments (Welford over 8 lanes, chunks of 16
 *             vectors merged on a cascade stack, with GCC's fused multiply-adds),
 *             y = round(fma((x − mean)·rstd, w, b))
 * Both orders are sequential per lane but the lanes are independent, which is what a
 * warp does well:
 *  - RMSNorm: one warp per row; lane (k, l) = (lane / 8, lane % 8) runs accumulator k of
 *    lane l of ATen's row_sum (4 interleaved accumulators of 8-lane vectors, with the
 *    cascade levels of multi_row_sum), then the 4 accumulators and the 8 lanes are
 *    folded through shuffles in ATen's order.  Same bits as the reference.
 *  - LayerNorm: 8 lanes per row (4 rows per warp), each lane the Welford recurrence of
 *    its vector lane; the tail and the final fold of the 8 lanes in one lane.
 * The row is read again for the normalised store.  In place (y == x, the QK-norm) a lane
 * writes elements other lanes read for the statistics (the tail, short rows), so a
 * __syncwarp orders those reads before the writes (TSan on the emulation saw it). */
#include "cuda_internal.cuh"

#define NORM_THREADS 256
#define NORM_WARPS (NORM_THREADS / 32)
#define LN_CHUNK 16
#define LN_MAX_DEPTH 40

/* x² of element i of the row (rounded to fp32, as x.pow(2)) */
__device__ __forceinline__ float sq_at(const void *x, int dt, int64_t base, int64_t i) {
  const float v = ld_any(x, dt, base + i);
  return __fmul_rn(v, v);
}

/* Σ x² over a row of D values in ATen's 8-lane cascade order (cpu_sum8_cascade); every
 * lane of the warp returns the sum. */
__device__ float cascade_sumsq8(const void *x, int dt, int64_t base, int64_t D) {
  const int lane = threadIdx.x & 31, k = lane >> 3, l = lane & 7;
  if (D < 8) {  /* ATen's scalar row_sum: 4 accumulators */
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t i = 0;
    for (; i + 4 <= D; i += 4)
      for (int q = 0; q < 4; q++) a[q] = __fadd_rn(a[q], sq_at(x, dt, base, i + q));
    for (; i < D; i++) a[0] = __fadd_rn(a[0], sq_at(x, dt, base, i));
    return __fadd_rn(__fadd_rn(__fadd_rn(a[0], a[1]), a[2]), a[3]);
  }
  const int64_t nvec = D / 8, rows = nvec / 4;
  /* multi_row_sum: accumulator k, lane l, over rows of 4 vectors, up to 4 cascade levels */
  int64_t ceil_log2 = 1;
  if (rows > 2) {
    ceil_log2 = 0;
    while (((int64_t)1 << ceil_log2) < rows) ceil_log2++;
  }
  const int64_t level_power = ceil_log2 / 4 > 4 ? ceil_log2 / 4 : 4;
  const int64_t level_step = (int64_t)1 << level_power, level_mask = level_step - 1;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int64_t i = 0;
  while (i + level_step <= rows) {
    for (int64_t j = 0; j < level_step; j++, i++) acc[0] = __fadd_rn(acc[0], sq_at(x, dt, base, (i * 4 + k) * 8 + l));
    for (int j = 1; j < 4; j++) {
      acc[j] = __fadd_rn(acc[j], acc[j - 1]);
      acc[j - 1] = 0.0f;
      if ((i & (level_mask << (j * level_power))) != 0) break;
    }
  }
  for (; i < rows; i++) acc[0] = __fadd_rn(acc[0], sq_at(x, dt, base, (i * 4 + k) * 8 + l));
  for (int j = 1; j < 4; j++) acc[0] = __fadd_rn(acc[0], acc[j]);
  float part = acc[0];
  if (k == 0)  /* whole vectors past the last row of 4 go to accumulator 0 */
    for (int64_t v = rows * 4; v < nvec; v++) part = __fadd_rn(part, sq_at(x, dt, base, v * 8 + l));
  /* fold the accumulators: part[0][l] += part[1][l], += part[2][l], += part[3][l] */
  const float p1 = __shfl_sync(FULL_MASK, part, 8 + l), p2 = __shfl_sync(FULL_MASK, part, 16 + l),
              p3 = __shfl_sync(FULL_MASK, part, 24 + l), p0 = __shfl_sync(FULL_MASK, part, l);
  const float lanesum = __fadd_rn(__fadd_rn(__fadd_rn(p0, p1), p2), p3);
  /* the scalar tail from 0, then the 8 lanes in order */
  float s = 0.0f;
  for (int64_t t = nvec * 8; t < D; t++) s = __fadd_rn(s, sq_at(x, dt, base, t));
  for (int q = 0; q < 8; q++) s = __fadd_rn(s, __shfl_sync(FULL_MASK, lanesum, q));
  return s;
}

__global__ void rms_norm_kernel(void *y, int ydt, const void *x, int xdt, const void *w, int wdt, int64_t rows,
                                int64_t D, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * NORM_WARPS;
  for (int64_t r = blockIdx.x * (int64_t)NORM_WARPS + (threadIdx.x >> 5); r < rows; r += warps) {
    const int64_t base = r * D;
    const float var = __fdiv_rn(cascade_sumsq8(x, xdt, base, D), (float)D);
    const float rstd = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(var, eps)));
    const bool bf = xdt == BK_BF16;
    __syncwarp();  /* in place: the sum's reads (other lanes' elements too) before the writes */
    for (int64_t i = lane; i < D; i += 32) {
      float n = __fmul_rn(ld_any(x, xdt, base + i), rstd);
      if (bf) n = round_bf16(n);  /* hidden_states.to(input_dtype) */
      st_any(y, ydt, base + i, __fmul_rn(ld_any(w, wdt, i), n));
    }
  }
}

/* ---- LayerNorm: RowwiseMoments ----------------------------------------------------------- */

struct Moments {
  int64_t n;
  float m1, m2;
};

/* AddMomentsVec for one lane: fold (n_add, m1_add, m2_add) into *acc */
__device__ __forceinline__ void moments_add(int64_t n_add, float m1_add, float m2_add, Moments *acc) {
  const int64_t n = acc->n + n_add;
  const float c = n == 0 ? 0.0f : __fdiv_rn((float)n_add, (float)n);
  const float delta = __fsub_rn(m1_add, acc->m1);
  acc->m1 = fmaf(c, delta, acc->m1);
  acc->m2 = __fadd_rn(acc->m2, fmaf(__fmul_rn(__fmul_rn(delta, delta), c), (float)acc->n, m2_add));
  acc->n = n;
}

/* (mean, var) of the row; lane l (0..7) of a group of 8 runs vector lane l; every lane
 * of the group returns the result. */
__device__ void rowwise_moments8(const void *x, int dt, int64_t base, int64_t N, float *mean, float *var) {
  const int l = threadIdx.x & 7;
  const int64_t nvec = N / 8, nchunk = (nvec + LN_CHUNK - 1) / LN_CHUNK;
  int depth = 1;
  while (nchunk > 2 && ((int64_t)1 << depth) < nchunk) depth++;
  Moments stk[LN_MAX_DEPTH];
  for (int j = 0; j < depth; j++) stk[j] = Moments{0, 0.0f, 0.0f};
  for (int64_t i = 0; i < nchunk; i++) {
    const int64_t m0 = nvec - i * LN_CHUNK < LN_CHUNK ? nvec - i * LN_CHUNK : LN_CHUNK;
    float m1 = 0.0f, m2 = 0.0f;
    for (int64_t j = 0; j < m0; j++) {
      const float c = __fdiv_rn(1.0f, (float)(j + 1));
      const float xv = ld_any(x, dt, base + (i * LN_CHUNK + j) * 8 + l), delta = __fsub_rn(xv, m1);
      m1 = fmaf(delta, c, m1);
      m2 = fmaf(delta, __fsub_rn(xv, m1), m2);
    }
    moments_add(m0, m1, m2, &stk[0]);
    int64_t mask = i + 1;
    for (int j = 1; j < depth && (mask & 1) == 0; j++) {
      moments_add(stk[j - 1].n, stk[j - 1].m1, stk[j - 1].m2, &stk[j]);
      stk[j - 1] = Moments{0, 0.0f, 0.0f};
      mask >>= 1;
    }
  }
  for (int j = 1; j < depth; j++) moments_add(stk[j].n, stk[j].m1, stk[j].m2, &stk[0]);
  /* the 8 lanes' moments to every lane of the group */
  float lm1[8], lm2[8];
  for (int q = 0; q < 8; q++) {
    lm1[q] = __shfl_sync(FULL_MASK, stk[0].m1, q, 8);
    lm2[q] = __shfl_sync(FULL_MASK, stk[0].m2, q, 8);
  }
  /* scalar Welford over the tail, then the lanes folded in (AddMoments) */
  int64_t n = 0;
  float m1 = 0.0f, m2 = 0.0f;
  for (int64_t i = nvec * 8; i < N; i++) {
    const float xi = ld_any(x, dt, base + i), delta = __fsub_rn(xi, m1);
    n++;
    m1 = __fadd_rn(m1, __fdiv_rn(delta, (float)n));
    m2 = fmaf(delta, __fsub_rn(xi, m1), m2);
  }
  for (int q = 0; q < 8; q++) {
    const int64_t nn = n + nvec;
    const float c = nn == 0 ? 0.0f : __fdiv_rn((float)nvec, (float)nn);
    const float delta = __fsub_rn(lm1[q], m1);
    m1 = fmaf(c, delta, m1);
    m2 = __fadd_rn(m2, fmaf(__fmul_rn(__fmul_rn(delta, delta), c), (float)n, lm2[q]));
    n = nn;
  }
  *mean = m1;
  *var = __fdiv_rn(m2, (float)N);
}

__global__ void layer_norm_kernel(void *y, int ydt, const void *x, int xdt, const void *w, int wdt, const void *b,
                                  int bdt, int64_t rows, int64_t D, float eps) {
  const int l = threadIdx.x & 7;
  const int64_t groups = (int64_t)gridDim.x * (NORM_THREADS / 8);
  /* 8 lanes per row; the loop runs while any row of the warp is valid (shuffles) */
  const int64_t g0 = blockIdx.x * (int64_t)(NORM_THREADS / 8) + (threadIdx.x >> 3);
  const int64_t warp_first = g0 - ((threadIdx.x & 31) >> 3);
  for (int64_t off = 0; warp_first + off < rows; off += groups) {
    const int64_t r = g0 + off;
    const bool valid = r < rows;
    const int64_t base = (valid ? r : warp_first + off) * D;
    float mean, var;
    rowwise_moments8(x, xdt, base, D, &mean, &var);
    __syncwarp();  /* in place: the tail's reads by every lane before the writes */
    if (!valid) continue;
    const float rstd = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(var, eps))), bias = -mean;
    for (int64_t i = l; i < D; i += 8)
      st_any(y, ydt, base + i,
             fmaf(__fmul_rn(__fadd_rn(ld_any(x, xdt, base + i), bias), rstd), ld_any(w, wdt, i), ld_any(b, bdt, i)));
  }
}

extern "C" void cuda_rms_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, float eps) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t D = bk_cols(x), R = bk_rows(x);
  if (!bk_same_shape(y, x) || bk_numel(w) != D || !cuda_float_dt(x->dt) || !cuda_float_dt(y->dt) ||
      !cuda_float_dt(w->dt)) {
    bk_fail(be, "cuda rms_norm: x has rows of %lld, weight %lld", (long long)D, (long long)bk_numel(w));
    return;
  }
  if (!R || !D) return;
  CUDA_OK(be, LAUNCH(rms_norm_kernel, dim3(cuda_grid(impl, R, NORM_WARPS)), dim3(NORM_THREADS), 0, impl->stream,
                     y->data, (int)y->dt, x->data, (int)x->dt, w->data, (int)w->dt, R, D, eps));
}

extern "C" void cuda_layer_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b,
                                float eps) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t D = bk_cols(x), R = bk_rows(x);
  if (!bk_same_shape(y, x) || bk_numel(w) != D || !b || bk_numel(b) != D || !cuda_float_dt(x->dt) ||
      !cuda_float_dt(y->dt) || !cuda_float_dt(w->dt) || !cuda_float_dt(b->dt)) {
    bk_fail(be, "cuda layer_norm: x has rows of %lld, weight %lld, bias %lld", (long long)D, (long long)bk_numel(w),
            b ? (long long)bk_numel(b) : -1LL);
    return;
  }
  if (!R || !D) return;
  if (D / 8 / LN_CHUNK > ((int64_t)1 << (LN_MAX_DEPTH - 1))) {
    bk_fail(be, "cuda layer_norm: rows of %lld are too long", (long long)D);
    return;
  }
  CUDA_OK(be, LAUNCH(layer_norm_kernel, dim3(cuda_grid(impl, R, NORM_THREADS / 8)), dim3(NORM_THREADS), 0,
                     impl->stream, y->data, (int)y->dt, x->data, (int)x->dt, w->data, (int)w->dt, b->data,
                     (int)b->dt, R, D, eps));
}
