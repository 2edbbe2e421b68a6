/* kernels/cuda/norm.cu — RMSNorm (Qwen2: the LLM's input/post-attention/final norms and
 * the per-head QK-norm) and LayerNorm (SigLIP), one warp per row.
 *
 * A warp per row fits both extremes the model has: head_dim 128 (QK-norm over L·heads
 * rows) and hidden 3584 (112 values per lane).  The row is read twice (statistics, then
 * the normalised store), which also makes the in-place call (y == x, the QK-norm) safe:
 * each lane reads its elements before it writes them.
 *
 * Statistics are accumulated in double, like the reference (kernels/cpu/cpu_norm.c):
 * with fp32 terms summed in double the order of the sum no longer matters to the fp32
 * result except at exact rounding ties, so the GPU agrees with the CPU to the bit on
 * almost every row.  The per-element arithmetic is fp32 in the reference's order:
 *   RMSNorm, x bf16:  n = bf16(x·rstd), y = round(w·n)      rstd = 1/sqrtf(var + eps)
 *   RMSNorm, x fp32:  y = w·(x·rstd) in fp32 (gen-mode QK-norm)
 *   LayerNorm:        y = round((x − mean)·rstd·w + b), mean and rstd from double sums */
#include "cuda_internal.cuh"

#define NORM_THREADS 256
#define NORM_ROWS_PER_BLOCK (NORM_THREADS / 32)

__global__ void rms_norm_kernel(void *y, int ydt, const void *x, int xdt, const void *w, int wdt, int64_t rows,
                                int64_t D, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * NORM_ROWS_PER_BLOCK;
  for (int64_t r = blockIdx.x * (int64_t)NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5); r < rows; r += warps) {
    const int64_t base = r * D;
    double ss = 0.0;
    for (int64_t i = lane; i < D; i += 32) {
      float v = ld_any(x, xdt, base + i);
      ss += (double)__fmul_rn(v, v);
    }
    ss = warp_sum_d(ss);
    const float var = (float)(ss / (double)D);
    const float rstd = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(var, eps)));
    const bool bf = xdt == BK_BF16;
    for (int64_t i = lane; i < D; i += 32) {
      float n = __fmul_rn(ld_any(x, xdt, base + i), rstd);
      if (bf) n = round_bf16(n);  /* hidden_states.to(input_dtype) */
      st_any(y, ydt, base + i, __fmul_rn(ld_any(w, wdt, i), n));
    }
  }
}

__global__ void layer_norm_kernel(void *y, int ydt, const void *x, int xdt, const void *w, int wdt, const void *b,
                                  int bdt, int64_t rows, int64_t D, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * NORM_ROWS_PER_BLOCK;
  for (int64_t r = blockIdx.x * (int64_t)NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5); r < rows; r += warps) {
    const int64_t base = r * D;
    double s = 0.0;
    for (int64_t i = lane; i < D; i += 32) s += (double)ld_any(x, xdt, base + i);
    const double mean = warp_sum_d(s) / (double)D;
    double ss = 0.0;
    for (int64_t i = lane; i < D; i += 32) {
      double d = (double)ld_any(x, xdt, base + i) - mean;
      ss += d * d;
    }
    ss = warp_sum_d(ss);
    const float meanf = (float)mean;
    const float rstd = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
    for (int64_t i = lane; i < D; i += 32) {
      float v = __fmul_rn(__fmul_rn(__fsub_rn(ld_any(x, xdt, base + i), meanf), rstd), ld_any(w, wdt, i));
      st_any(y, ydt, base + i, __fadd_rn(v, ld_any(b, bdt, i)));
    }
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
  CUDA_OK(be, LAUNCH(rms_norm_kernel, dim3(cuda_grid(impl, R, NORM_ROWS_PER_BLOCK)), dim3(NORM_THREADS), 0,
                     impl->stream, y->data, (int)y->dt, x->data, (int)x->dt, w->data, (int)w->dt, R, D, eps));
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
  CUDA_OK(be, LAUNCH(layer_norm_kernel, dim3(cuda_grid(impl, R, NORM_ROWS_PER_BLOCK)), dim3(NORM_THREADS), 0,
                     impl->stream, y->data, (int)y->dt, x->data, (int)x->dt, w->data, (int)w->dt, b->data,
                     (int)b->dt, R, D, eps));
}
