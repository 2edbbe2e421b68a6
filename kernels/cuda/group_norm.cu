/* kernels/cuda/group_norm.cu — GroupNorm over x[C, H, W] (fp32), affine, optional swish,
 * as the FLUX VAE uses it (32 groups, eps 1e-6).
 *
 * 32 groups are far too few blocks for a GPU (a group at 1024² is 16 channels × 1 M
 * pixels), so each group is split into chunks and the statistics are reduced in three
 * launches, deterministically (no atomics: every block sums the chunk partials of its
 * group in the same fixed order):
 *   1. partial sums of x per (group, chunk)                       -> part[g][k]
 *   2. mean from the partials; partial sums of (x − mean)²        -> part2[g][k]
 *   3. mean, var from the partials; y = (x − mean)·(rstd·w) + b, then swish
 * Two passes over the data like the reference (kernels/cpu/cpu_conv.c), everything in
 * double with one rounding to fp32 per element, so the result matches the reference's
 * to the last bit but for exact ties; the swish is x·(1/(1 + e^−x)) in fp32. */
#include "cuda_internal.cuh"

#define GN_THREADS 256
#define GN_CHUNK 16384   /* elements per (group, chunk) block */

__device__ double block_sum_d(double v, double *red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum_d(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  double t = 0.0;
  for (int w = 0; w < GN_THREADS / 32; w++) t += red[w];
  __syncthreads();
  return t;
}

/* The group's value from its chunk partials, summed in order. */
__device__ __forceinline__ double sum_parts(const double *part, int g, int nchunks) {
  double s = 0.0;
  for (int k = 0; k < nchunks; k++) s += part[g * nchunks + k];
  return s;
}

/* pass 0: part[g][k] = Σ x; pass 1: part2[g][k] = Σ (x − mean)² */
__global__ void gn_stats(const float *x, double *part, double *part2, int64_t n, int nchunks, int pass) {
  SHARED(double, red, [GN_THREADS / 32]);
  const int g = blockIdx.y, k = blockIdx.x;
  const float *xs = x + g * n;
  const int64_t i0 = (int64_t)k * GN_CHUNK, i1 = i0 + GN_CHUNK < n ? i0 + GN_CHUNK : n;
  double mean = 0.0;
  if (pass) mean = sum_parts(part, g, nchunks) / (double)n;
  double s = 0.0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += GN_THREADS) {
    double v = xs[i];
    if (pass) {
      v -= mean;
      v *= v;
    }
    s += v;
  }
  s = block_sum_d(s, red);
  if (threadIdx.x == 0) (pass ? part2 : part)[g * nchunks + k] = s;
}

__global__ void gn_apply(float *y, const float *x, const void *w, int wdt, const void *b, int bdt, const double *part,
                         const double *part2, int64_t n, int64_t hw, int cpg, int nchunks, float eps, int swish) {
  const int g = blockIdx.y, k = blockIdx.x;
  const double mean = sum_parts(part, g, nchunks) / (double)n;
  const double var = sum_parts(part2, g, nchunks) / (double)n;
  const double rstd = 1.0 / sqrt(var + (double)eps);
  const int64_t i0 = (int64_t)k * GN_CHUNK, i1 = i0 + GN_CHUNK < n ? i0 + GN_CHUNK : n;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += GN_THREADS) {
    const int64_t ch = g * (int64_t)cpg + i / hw, e = g * n + i;
    const double scale = rstd * (double)ld_any(w, wdt, ch), shift = (double)ld_any(b, bdt, ch);
    float v = (float)(((double)x[e] - mean) * scale + shift);
    if (swish) v = __fmul_rn(v, __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-v))));
    y[e] = v;
  }
}

extern "C" void cuda_group_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b,
                                int groups, float eps, bool swish) {
  CudaImpl *impl = cuda_impl(be);
  if (!w || !b) {
    bk_fail(be, "cuda group_norm: the affine weight and bias are required");
    return;
  }
  if (x->dt != BK_F32 || y->dt != BK_F32 || !cuda_float_dt(w->dt) || !cuda_float_dt(b->dt)) {
    bk_fail(be, "cuda group_norm: x and y must be F32 (x %s, y %s, w %s, b %s)", bk_dtype_name(x->dt),
            bk_dtype_name(y->dt), bk_dtype_name(w->dt), bk_dtype_name(b->dt));
    return;
  }
  const int64_t c = x->nd ? x->ne[0] : 0;
  if (x->nd < 1 || !bk_same_shape(x, y) || groups < 1 || c % groups || bk_numel(w) != c || bk_numel(b) != c) {
    bk_fail(be, "cuda group_norm: %lld channels, %d groups, w[%lld], b[%lld], or y's shape differs from x's",
            (long long)c, groups, (long long)bk_numel(w), (long long)bk_numel(b));
    return;
  }
  const int64_t hw = c ? bk_numel(x) / c : 0, cpg = c / groups, n = cpg * hw;
  if (!n) return;
  const int64_t nchunks = (n + GN_CHUNK - 1) / GN_CHUNK;
  if (nchunks > 65535 || groups > 65535) {
    bk_fail(be, "cuda group_norm: %lld elements per group is too large", (long long)n);
    return;
  }
  double *part = (double *)cuda_pool_alloc(be, (size_t)(2 * groups * nchunks) * sizeof(double));
  if (!part) return;
  double *part2 = part + groups * nchunks;
  const dim3 grid((unsigned)nchunks, (unsigned)groups), block(GN_THREADS);
  const float *xd = (const float *)x->data;
  if (CUDA_OK(be, LAUNCH(gn_stats, grid, block, 0, impl->stream, xd, part, part2, n, (int)nchunks, 0)) &&
      CUDA_OK(be, LAUNCH(gn_stats, grid, block, 0, impl->stream, xd, part, part2, n, (int)nchunks, 1)))
    CUDA_OK(be, LAUNCH(gn_apply, grid, block, 0, impl->stream, (float *)y->data, xd, w->data, (int)w->dt, b->data,
                       (int)b->dt, (const double *)part, (const double *)part2, n, hw, (int)cpg, (int)nchunks, eps,
                       (int)swish));
  cuda_pool_free(be, part);
}
