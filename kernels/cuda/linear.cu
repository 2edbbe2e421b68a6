/* kernels/cuda/linear.cu — y[M,N] = x[M,K]·w[N,K]ᵀ + b[N] through cuBLASLt.
 *
 * Layout: row-major y = x·wᵀ is, read column-major, yᵀ[N,M] = w·xᵀ — one cuBLASLt
 * call with A = w (K×N column-major, ld K, TRANSA = T), B = x (K×M, ld K, TRANSB = N),
 * D = y (N×M, ld N).  No copies, no transposes: weights stay as the checkpoint stores
 * them.  Compute type 32F (fp32 accumulation, as the contract in kernels/ops.h asks),
 * scale type fp32, bias through EPILOGUE_BIAS (one value per row of D = per output
 * feature).
 *
 * Precision (kernels/ops.h):
 *  - bf16 weights: x is rounded to bf16 (autocast); a non-bf16 x goes through a bf16
 *    copy in a pool temporary.  D is bf16 or fp32 as y is; the bias is added in fp32
 *    before the one rounding (the epilogue's bias must have D's type: a bf16 bias for an
 *    fp32 output is widened, exactly, into a temporary).
 *  - fp32 weights: A, B, D all fp32 (x widened if bf16); a bf16 y gets its one rounding
 *    from an fp32 temporary.
 *  - a bias that cannot be given to the epilogue without rounding it (fp32 bias, bf16 y)
 *    is added by our own kernel to an fp32 result, then rounded once.
 *  - what cuBLASLt cannot take at all — fp16 weights (there is no f16×bf16 GEMM; BAGEL's
 *    checkpoints have none) and K = 0 — goes to a simple tiled kernel (linear_naive),
 *    counted in BkCudaStats.linear_fallbacks.
 *
 * Plans: the descriptors, layouts and the heuristic's algorithm are cached per shape
 * (M, N, K, types, bias, pointer alignments), 64 plans, least recently used replaced.
 * The heuristic is told the real alignment of each pointer (MIN_ALIGNMENT_*_BYTES): row
 * views of activations are not always 256-byte aligned, which the default assumes. */
#include "cuda_internal.cuh"

#include <stdlib.h>
#include <string.h>

#define MAX_PLANS 64

struct GemmPlan {
  int64_t m, n, k;
  cudaDataType ab, cd;
  int bias;
  uint32_t align[4];
  uint64_t used;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
  size_t ws;
};

static cudaDataType lt_type(BkDType dt) {
  return dt == BK_F32 ? CUDA_R_32F : dt == BK_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

static uint32_t ptr_align(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uint32_t al = 256;
  while (al > 1 && a % al) al >>= 1;
  return al;
}

static void plan_destroy(GemmPlan *p) {
  if (p->desc) cublasLtMatmulDescDestroy(p->desc);
  if (p->la) cublasLtMatrixLayoutDestroy(p->la);
  if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
  if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
  memset(p, 0, sizeof *p);
}

extern "C" void cuda_linear_destroy(BkBackend *be) {
  CudaImpl *impl = cuda_impl(be);
  for (int i = 0; i < impl->n_plans; i++) plan_destroy(&impl->plans[i]);
  free(impl->plans);
  impl->plans = NULL;
  impl->n_plans = 0;
}

/* Build (or find) the plan of D[N,M] = op(A)·op(B) with the given types and alignments. */
static GemmPlan *get_plan(BkBackend *be, int64_t M, int64_t N, int64_t K, cudaDataType ab, cudaDataType cd,
                          bool bias, const uint32_t align[4]) {
  CudaImpl *impl = cuda_impl(be);
  if (!impl->plans) {
    impl->plans = (GemmPlan *)calloc(MAX_PLANS, sizeof(GemmPlan));
    if (!impl->plans) {
      bk_fail(be, "cuda linear: out of host memory");
      return NULL;
    }
  }
  GemmPlan *victim = NULL;
  for (int i = 0; i < impl->n_plans; i++) {
    GemmPlan *p = &impl->plans[i];
    if (p->m == M && p->n == N && p->k == K && p->ab == ab && p->cd == cd && p->bias == (int)bias &&
        !memcmp(p->align, align, sizeof p->align)) {
      p->used = ++impl->plan_clock;
      return p;
    }
    if (!victim || p->used < victim->used) victim = p;
  }
  GemmPlan *p = impl->n_plans < MAX_PLANS ? &impl->plans[impl->n_plans++] : victim;
  plan_destroy(p);
  impl->stats.gemm_plans++;
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  cublasLtMatmulPreference_t pref = NULL;
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  bool ok = CUBLAS_OK(be, cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F)) &&
            CUBLAS_OK(be, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) &&
            CUBLAS_OK(be, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) &&
            CUBLAS_OK(be, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)) &&
            CUBLAS_OK(be, cublasLtMatrixLayoutCreate(&p->la, ab, (uint64_t)K, (uint64_t)N, K)) &&
            CUBLAS_OK(be, cublasLtMatrixLayoutCreate(&p->lb, ab, (uint64_t)K, (uint64_t)M, K)) &&
            CUBLAS_OK(be, cublasLtMatrixLayoutCreate(&p->lc, cd, (uint64_t)N, (uint64_t)M, N)) &&
            CUBLAS_OK(be, cublasLtMatmulPreferenceCreate(&pref));
  static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  uint64_t ws = impl->lt_ws_size;
  ok = ok && CUBLAS_OK(be, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                                 sizeof ws));
  for (int i = 0; i < 4 && ok; i++)
    ok = CUBLAS_OK(be, cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &align[i], sizeof align[i]));
  ok = ok && CUBLAS_OK(be, cublasLtMatmulAlgoGetHeuristic(impl->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1,
                                                          &res, &found));
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (ok && found < 1) {
    bk_fail(be, "cuda linear: cuBLASLt has no algorithm for [%lld,%lld]·[%lld,%lld]ᵀ", (long long)M, (long long)K,
            (long long)N, (long long)K);
    ok = false;
  }
  if (!ok) {
    plan_destroy(p);
    impl->n_plans--;
    if (p != &impl->plans[impl->n_plans]) *p = impl->plans[impl->n_plans];
    memset(&impl->plans[impl->n_plans], 0, sizeof(GemmPlan));
    return NULL;
  }
  p->m = M;
  p->n = N;
  p->k = K;
  p->ab = ab;
  p->cd = cd;
  p->bias = bias;
  memcpy(p->align, align, sizeof p->align);
  p->algo = res.algo;
  p->ws = res.workspaceSize;
  p->used = ++impl->plan_clock;
  return p;
}

/* D = A·B (+ bias) with the layouts above; bias has D's type (or NULL). */
static bool lt_gemm(BkBackend *be, void *d, BkDType ddt, const void *w, const void *x, BkDType abdt, int64_t M,
                    int64_t N, int64_t K, const void *bias) {
  CudaImpl *impl = cuda_impl(be);
  const uint32_t align[4] = {ptr_align(w), ptr_align(x), ptr_align(d), ptr_align(d)};
  GemmPlan *p = get_plan(be, M, N, K, lt_type(abdt), lt_type(ddt), bias != NULL, align);
  if (!p) return false;
  if (bias && !CUBLAS_OK(be, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                            sizeof bias)))
    return false;
  const float alpha = 1.0f, beta = 0.0f;
  return CUBLAS_OK(be, cublasLtMatmul(impl->lt, p->desc, &alpha, w, p->la, x, p->lb, &beta, d, p->lc, d, p->lc,
                                      &p->algo, p->ws ? impl->lt_ws : NULL, p->ws, impl->stream));
}

/* y[m,n] = round(acc[m,n] + b[n]) : the bias cuBLASLt could not take, then one rounding. */
__global__ void bias_add_round(void *y, int ydt, const float *acc, const void *b, int bdt, int64_t M, int64_t N) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    float v = acc[i];
    if (b) v = v + ld_any(b, bdt, i % N);
    st_any(y, ydt, i, v);
  }
}

/* The fallback: one output per thread, k in order (as the reference), x rounded to bf16
 * under autocast, bias added in fp32, one rounding. */
__global__ void linear_naive(void *y, int ydt, const void *x, int xdt, const void *w, int wdt, const void *b, int bdt,
                             int64_t M, int64_t N, int64_t K, int autocast) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = i / N, n = i % N;
    float acc = 0.0f;
    for (int64_t k = 0; k < K; k++) {
      float xv = ld_any(x, xdt, m * K + k);
      if (autocast) xv = round_bf16(xv);
      acc = acc + xv * ld_any(w, wdt, n * K + k);
    }
    if (b) acc = acc + ld_any(b, bdt, n);
    st_any(y, ydt, i, acc);
  }
}

extern "C" void cuda_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t K = bk_cols(x), M = bk_rows(x);
  const int64_t N = w->nd == 2 ? w->ne[0] : -1;
  if (w->nd != 2 || w->ne[1] != K || bk_rows(y) != M || bk_cols(y) != N || (b && bk_numel(b) != N) ||
      !cuda_float_dt(w->dt) || !cuda_float_dt(x->dt) || !cuda_float_dt(y->dt) || (b && !cuda_float_dt(b->dt))) {
    bk_fail(be, "cuda linear: x[%lld,%lld] · w[%lld,%lld]ᵀ -> y[%lld,%lld]%s", (long long)M, (long long)K,
            (long long)(w->nd == 2 ? w->ne[0] : -1), (long long)(w->nd == 2 ? w->ne[1] : -1), (long long)bk_rows(y),
            (long long)bk_cols(y), b && bk_numel(b) != N ? " (bias size)" : "");
    return;
  }
  if (M == 0 || N == 0 || !bk_ok(be)) return;
  if (impl->exact) {  /* BAGEL_CUDA_NUMERICS=exact: the reference's order, exact.cu */
    cuda_linear_exact(be, y, x, w, b);
    return;
  }
  const bool autocast = w->dt != BK_F32;
  if (w->dt == BK_F16 || K == 0) {
    impl->stats.linear_fallbacks++;
    CUDA_OK(be, LAUNCH(linear_naive, dim3(cuda_grid(impl, M * N, 128)), dim3(128), 0, impl->stream, y->data,
                       (int)y->dt, x->data, (int)x->dt, w->data, (int)w->dt, b ? b->data : NULL,
                       b ? (int)b->dt : 0, M, N, K, (int)autocast));
    return;
  }
  const BkDType abdt = w->dt;  /* BF16 or F32: x must match it */
  void *tmp_x = NULL, *tmp_b = NULL, *tmp_y = NULL;
  const void *xin = x->data;
  if (x->dt != abdt) {
    tmp_x = cuda_pool_alloc(be, (size_t)(M * K) * bk_dtype_size(abdt));
    if (!tmp_x || !cuda_convert_raw(be, tmp_x, abdt, x->data, x->dt, M * K)) goto out;
    xin = tmp_x;
  }
  {
    /* D: y itself when cuBLASLt can write y's type and take the bias, else fp32 */
    BkDType ddt = y->dt;
    if (ddt == BK_F16 || (abdt == BK_F32 && ddt != BK_F32)) ddt = BK_F32;
    const void *bias = b ? b->data : NULL;
    bool own_bias = false;
    if (b && b->dt != ddt) {
      if (ddt == BK_F32) {  /* widen the bias, exactly */
        tmp_b = cuda_pool_alloc(be, (size_t)N * sizeof(float));
        if (!tmp_b || !cuda_convert_raw(be, tmp_b, BK_F32, b->data, b->dt, N)) goto out;
        bias = tmp_b;
      } else {  /* an fp32 bias for a bf16 y: fp32 result, our epilogue */
        ddt = BK_F32;
        own_bias = true;
        bias = NULL;
      }
    }
    void *d = y->data;
    if (ddt != y->dt) {
      tmp_y = cuda_pool_alloc(be, (size_t)(M * N) * sizeof(float));
      if (!tmp_y) goto out;
      d = tmp_y;
    }
    if (!lt_gemm(be, d, ddt, w->data, xin, abdt, M, N, K, bias)) goto out;
    if (tmp_y) {
      if (own_bias)
        CUDA_OK(be, LAUNCH(bias_add_round, dim3(cuda_grid(impl, M * N, 256)), dim3(256), 0, impl->stream, y->data,
                           (int)y->dt, (const float *)tmp_y, b->data, (int)b->dt, M, N));
      else
        cuda_convert_raw(be, y->data, y->dt, tmp_y, BK_F32, M * N);
    }
  }
out:
  cuda_pool_free(be, tmp_x);
  cuda_pool_free(be, tmp_b);
  cuda_pool_free(be, tmp_y);
}
