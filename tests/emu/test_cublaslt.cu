/* tests/emu/test_cublaslt.cu — the GEMM spellings the backend uses, through cuBLASLt and
 * cuBLAS, against a naive GEMM; and the layout mistakes that must be rejected or fail the
 * comparison.
 *
 * The backend's GEMM: y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N]), x and w row-major bf16
 * (w as stored in the checkpoint, [out, in]), fp32 accumulation, y bf16 or fp32:
 *  - column-major spelling  yᵀ = w·xᵀ: A = w (K×N, ld K, op T), B = x (K×M, ld K, op N),
 *    D = yᵀ (N×M, ld N); the bias epilogue adds bias[row of D] = bias[n];
 *  - row-order spelling: all layouts CUBLASLT_ORDER_ROW, A = x (M×K, ld K, op N),
 *    B = w (N×K, ld K, op T), D = y (M×N, ld N); a bias would be per row of D = per m;
 *  - attention-style strided batches: S = Q·Kᵀ (TN) and O = P·V (NN), per head.
 * Emulation-only assertions (the exact status of a refusal) are under BAGEL_CUDA_EMU; on a
 * GPU the mistakes that would read out of bounds are not run. */
#include "emu_test.h"

#include <string>

struct Mat {
  const void *p;
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t order;
  int32_t batch;
  int64_t stride;
};
static Mat mat(const void *p, cudaDataType t, uint64_t rows, uint64_t cols, int64_t ld, bool row_order = false,
               int32_t batch = 1, int64_t stride = 0) {
  return Mat{p, t, rows, cols, ld, row_order ? CUBLASLT_ORDER_ROW : CUBLASLT_ORDER_COL, batch, stride};
}

static cublasLtHandle_t lt;

static cublasLtMatrixLayout_t make_layout(const Mat &m) {
  cublasLtMatrixLayout_t l;
  if (cublasLtMatrixLayoutCreate(&l, m.type, m.rows, m.cols, m.ld) != CUBLAS_STATUS_SUCCESS) return nullptr;
  cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &m.order, sizeof m.order);
  if (m.batch > 1) {
    cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &m.batch, sizeof m.batch);
    cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &m.stride, sizeof m.stride);
  }
  return l;
}

/* D = op(A)·op(B) (+ bias): one cublasLtMatmul through the heuristic, as the backend would. */
static cublasStatus_t lt_matmul(cublasOperation_t ta, cublasOperation_t tb, const Mat &A, const Mat &B, const Mat &D,
                                const void *bias = nullptr, int32_t bias_type = -1) {
  cublasLtMatmulDesc_t desc;
  cublasStatus_t st = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (st) return st;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  if (bias) {
    uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (bias_type != -1)
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type);
  }
  cublasLtMatrixLayout_t la = make_layout(A), lb = make_layout(B), ld = make_layout(D);
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  uint64_t ws = 0;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  cublasLtMatmulHeuristicResult_t h;
  int found = 0;
  st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &h, &found);
  if (st == CUBLAS_STATUS_SUCCESS && found == 0) st = CUBLAS_STATUS_NOT_SUPPORTED;
  if (st == CUBLAS_STATUS_SUCCESS) {
    float alpha = 1.0f, beta = 0.0f;
    st = cublasLtMatmul(lt, desc, &alpha, A.p, la, B.p, lb, &beta, D.p, ld, (void *)D.p, ld, &h.algo, nullptr, 0, 0);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
  return st;
}

/* Test data: x[M,K], w[N,K], bias[N] as bf16 (and their float values). */
struct Linear {
  int M, N, K;
  std::vector<__nv_bfloat16> x, w, b;
  std::vector<float> ref, ref_bias;  // y = x·wᵀ (double sums), and + bias
  __nv_bfloat16 *dx, *dw, *db;
  float *dbf;  // the bias in fp32, for an fp32 output
  Linear(int m, int n, int k) : M(m), N(n), K(k), x((size_t)m * k), w((size_t)n * k), b(n) {
    TestRng rng((uint64_t)m * 7 + n * 3 + k);
    for (auto &v : x) v = __float2bfloat16(rng.uniform());
    for (auto &v : w) v = __float2bfloat16(rng.uniform());
    for (auto &v : b) v = __float2bfloat16(rng.uniform());
    ref.resize((size_t)m * n);
    ref_bias.resize((size_t)m * n);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double s = 0;
        for (int kk = 0; kk < k; kk++)
          s += (double)__bfloat162float(x[(size_t)i * k + kk]) * __bfloat162float(w[(size_t)j * k + kk]);
        ref[(size_t)i * n + j] = (float)s;
        ref_bias[(size_t)i * n + j] = (float)(s + __bfloat162float(b[j]));
      }
    dx = to_device(x);
    dw = to_device(w);
    db = to_device(b);
    std::vector<float> bf(n);
    for (int j = 0; j < n; j++) bf[j] = __bfloat162float(b[j]);
    dbf = to_device(bf);
  }
  ~Linear() {
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(db);
    cudaFree(dbf);
  }
};

/* The output, as float, against a reference: bf16 outputs within one bf16 rounding. */
static double compare(const char *label, const void *dy, bool bf16, const std::vector<float> &ref) {
  std::vector<float> y(ref.size());
  if (bf16) {
    std::vector<__nv_bfloat16> h = to_host((const __nv_bfloat16 *)dy, ref.size());
    for (size_t i = 0; i < y.size(); i++) y[i] = __bfloat162float(h[i]);
  } else {
    y = to_host((const float *)dy, ref.size());
  }
  return max_rel_err(label, y.data(), ref.data(), ref.size());
}
static double tol(bool bf16) { return bf16 ? 1.0 / 256 : 1e-5; }

static void *dev_out(size_t n, bool bf16) {
  void *p;
  CK(cudaMalloc(&p, n * (bf16 ? 2 : 4)));
  return p;
}

static void test_linear_spellings(void) {
  Linear L(24, 40, 64);
  const int M = L.M, N = L.N, K = L.K;
  for (int out_bf16 = 0; out_bf16 < 2; out_bf16++) {
    cudaDataType yt = out_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    void *dy = dev_out((size_t)M * N, out_bf16);
    char label[128];
    /* column-major: yᵀ = w·xᵀ */
    CHECK(lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(L.dw, CUDA_R_16BF, K, N, K), mat(L.dx, CUDA_R_16BF, K, M, K),
                    mat(dy, yt, N, M, N)) == CUBLAS_STATUS_SUCCESS, "column-major spelling");
    snprintf(label, sizeof label, "Lt column-major TN, y %s", out_bf16 ? "bf16" : "f32");
    CHECK(compare(label, dy, out_bf16, L.ref) < tol(out_bf16), "%s", label);
    /* ... with the bias epilogue (bias in D's type) */
    CHECK(lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(L.dw, CUDA_R_16BF, K, N, K), mat(L.dx, CUDA_R_16BF, K, M, K),
                    mat(dy, yt, N, M, N), out_bf16 ? (const void *)L.db : (const void *)L.dbf) == CUBLAS_STATUS_SUCCESS,
          "column-major spelling with bias");
    snprintf(label, sizeof label, "Lt column-major TN + bias, y %s", out_bf16 ? "bf16" : "f32");
    CHECK(compare(label, dy, out_bf16, L.ref_bias) < tol(out_bf16), "%s", label);
    /* row-order: y = x·wᵀ */
    CHECK(lt_matmul(CUBLAS_OP_N, CUBLAS_OP_T, mat(L.dx, CUDA_R_16BF, M, K, K, true),
                    mat(L.dw, CUDA_R_16BF, N, K, K, true), mat(dy, yt, M, N, N, true)) == CUBLAS_STATUS_SUCCESS,
          "row-order spelling");
    snprintf(label, sizeof label, "Lt ORDER_ROW NT, y %s", out_bf16 ? "bf16" : "f32");
    CHECK(compare(label, dy, out_bf16, L.ref) < tol(out_bf16), "%s", label);
    CK(cudaFree(dy));
  }
  /* cuBLAS (classic): the column-major spelling through cublasGemmEx. */
  cublasHandle_t h;
  CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
  float *dy = (float *)dev_out((size_t)M * N, false), one = 1.0f, zero = 0.0f;
  CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, L.dw, CUDA_R_16BF, K, L.dx, CUDA_R_16BF, K, &zero, dy,
                     CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
        "cublasGemmEx");
  CHECK(compare("cublasGemmEx TN, y f32", dy, false, L.ref) < tol(false), "cublasGemmEx");
  cublasDestroy(h);
  CK(cudaFree(dy));
}

/* Per head h: S[h] = Q[h]·K[h]ᵀ, then O[h] = P[h]·V[h] (P = S here). */
static void test_attention_batches(void) {
  const int H = 3, Lq = 8, Lk = 12, D = 16;
  TestRng rng(9);
  std::vector<__nv_bfloat16> q((size_t)H * Lq * D), k((size_t)H * Lk * D), v((size_t)H * Lk * D);
  for (auto *t : {&q, &k, &v})
    for (auto &e : *t) e = __float2bfloat16(rng.uniform());
  std::vector<float> s_ref((size_t)H * Lq * Lk), o_ref((size_t)H * Lq * D);
  std::vector<__nv_bfloat16> p((size_t)H * Lq * Lk);
  for (int h = 0; h < H; h++)
    for (int i = 0; i < Lq; i++)
      for (int j = 0; j < Lk; j++) {
        double s = 0;
        for (int d = 0; d < D; d++)
          s += (double)__bfloat162float(q[((size_t)h * Lq + i) * D + d]) * __bfloat162float(k[((size_t)h * Lk + j) * D + d]);
        s_ref[((size_t)h * Lq + i) * Lk + j] = (float)s;
        p[((size_t)h * Lq + i) * Lk + j] = __float2bfloat16((float)s);
      }
  for (int h = 0; h < H; h++)
    for (int i = 0; i < Lq; i++)
      for (int d = 0; d < D; d++) {
        double s = 0;
        for (int j = 0; j < Lk; j++)
          s += (double)__bfloat162float(p[((size_t)h * Lq + i) * Lk + j]) * __bfloat162float(v[((size_t)h * Lk + j) * D + d]);
        o_ref[((size_t)h * Lq + i) * D + d] = (float)s;
      }
  __nv_bfloat16 *dq = to_device(q), *dk = to_device(k), *dv = to_device(v), *dp = to_device(p);
  float *ds = (float *)dev_out(s_ref.size(), false), *dout = (float *)dev_out(o_ref.size(), false);
  /* Sᵀ = K·Qᵀ per head: A = K (D×Lk, T), B = Q (D×Lq, N), D = Sᵀ (Lk×Lq). */
  CHECK(lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(dk, CUDA_R_16BF, D, Lk, D, false, H, (int64_t)Lk * D),
                  mat(dq, CUDA_R_16BF, D, Lq, D, false, H, (int64_t)Lq * D),
                  mat(ds, CUDA_R_32F, Lk, Lq, Lk, false, H, (int64_t)Lq * Lk)) == CUBLAS_STATUS_SUCCESS,
        "batched QKᵀ");
  CHECK(compare("Lt strided batch S = Q·Kᵀ", ds, false, s_ref) < 1e-5, "QKᵀ");
  /* Oᵀ = Vᵀ·Pᵀ per head: A = V (D×Lk, N), B = P (Lk×Lq, N), D = Oᵀ (D×Lq). */
  CHECK(lt_matmul(CUBLAS_OP_N, CUBLAS_OP_N, mat(dv, CUDA_R_16BF, D, Lk, D, false, H, (int64_t)Lk * D),
                  mat(dp, CUDA_R_16BF, Lk, Lq, Lk, false, H, (int64_t)Lq * Lk),
                  mat(dout, CUDA_R_32F, D, Lq, D, false, H, (int64_t)Lq * D)) == CUBLAS_STATUS_SUCCESS,
        "batched PV");
  CHECK(compare("Lt strided batch O = P·V", dout, false, o_ref) < 1e-5, "PV");
  /* The same QKᵀ through cublasGemmStridedBatchedEx. */
  cublasHandle_t hd;
  cublasCreate(&hd);
  float one = 1.0f, zero = 0.0f;
  CK(cudaMemset(ds, 0, s_ref.size() * sizeof(float)));
  CHECK(cublasGemmStridedBatchedEx(hd, CUBLAS_OP_T, CUBLAS_OP_N, Lk, Lq, D, &one, dk, CUDA_R_16BF, D, (long long)Lk * D,
                                   dq, CUDA_R_16BF, D, (long long)Lq * D, &zero, ds, CUDA_R_32F, Lk,
                                   (long long)Lq * Lk, H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
        "cublasGemmStridedBatchedEx");
  CHECK(compare("cublasGemmStridedBatchedEx S = Q·Kᵀ", ds, false, s_ref) < 1e-5, "strided batched");
  cublasDestroy(hd);
  for (void *ptr : {(void *)dq, (void *)dk, (void *)dv, (void *)dp, (void *)ds, (void *)dout}) CK(cudaFree(ptr));
}

/* A mistake passes this check when the library refuses it or its result is wrong. */
static void expect_caught(const char *what, cublasStatus_t st, const void *dy, bool bf16, const std::vector<float> *ref,
                          cublasStatus_t emu_status) {
  (void)emu_status;  // the emulation's exact answer; a GPU's may differ
  if (st != CUBLAS_STATUS_SUCCESS) {
    printf("mistake \"%s\": refused with %s\n", what, cublasGetStatusName(st));
#ifdef BAGEL_CUDA_EMU
    CHECK(st == emu_status, "%s: %s, want %s", what, cublasGetStatusName(st), cublasGetStatusName(emu_status));
#endif
    return;
  }
#ifdef BAGEL_CUDA_EMU
  CHECK(emu_status == CUBLAS_STATUS_SUCCESS, "%s: the emulation accepted it (want %s)", what,
        cublasGetStatusName(emu_status));
#endif
  CHECK(ref, "%s: accepted, with nothing to compare", what);
  double e = compare(what, dy, bf16, *ref);
  CHECK(e > 10 * tol(bf16), "mistake \"%s\" went unnoticed (error %g)", what, e);
  printf("mistake \"%s\": wrong result, as it must be\n", what);
}

static void test_mistakes(void) {
  const cublasStatus_t OK = CUBLAS_STATUS_SUCCESS, INVALID = CUBLAS_STATUS_INVALID_VALUE,
                       UNSUPPORTED = CUBLAS_STATUS_NOT_SUPPORTED;
  {
    Linear L(24, 40, 64);  // K != N
    const int M = L.M, N = L.N, K = L.K;
    float *dy = (float *)dev_out((size_t)M * N, false);
    expect_caught("missing transpose on w (K != N)",
                  lt_matmul(CUBLAS_OP_N, CUBLAS_OP_N, mat(L.dw, CUDA_R_16BF, K, N, K), mat(L.dx, CUDA_R_16BF, K, M, K),
                            mat(dy, CUDA_R_32F, N, M, N)),
                  dy, false, &L.ref, INVALID);
    expect_caught("bias[N] with the row-order spelling (bias is per row of D: M)",
                  lt_matmul(CUBLAS_OP_N, CUBLAS_OP_T, mat(L.dx, CUDA_R_16BF, M, K, K, true),
                            mat(L.dw, CUDA_R_16BF, N, K, K, true), mat(dy, CUDA_R_32F, M, N, N, true), L.dbf),
                  dy, false, &L.ref_bias, M > N ? INVALID : OK);
    expect_caught("bf16 bias with an fp32 output",
                  lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(L.dw, CUDA_R_16BF, K, N, K), mat(L.dx, CUDA_R_16BF, K, M, K),
                            mat(dy, CUDA_R_32F, N, M, N), L.db, CUDA_R_16BF),
                  dy, false, &L.ref_bias, UNSUPPORTED);
    expect_caught("row-major D declared column-major",
                  lt_matmul(CUBLAS_OP_N, CUBLAS_OP_T, mat(L.dx, CUDA_R_16BF, M, K, K, true),
                            mat(L.dw, CUDA_R_16BF, N, K, K, true), mat(dy, CUDA_R_32F, M, N, M)),
                  dy, false, &L.ref, OK);
#ifdef BAGEL_CUDA_EMU  // on a GPU these read or write outside the allocations
    expect_caught("ld below the rows of a column-major w",
                  lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(L.dw, CUDA_R_16BF, K, N, K - 1), mat(L.dx, CUDA_R_16BF, K, M, K),
                            mat(dy, CUDA_R_32F, N, M, N)),
                  dy, false, &L.ref, INVALID);
    expect_caught("ld too large: w's extent leaves its allocation",
                  lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(L.dw, CUDA_R_16BF, K, N, K + 8), mat(L.dx, CUDA_R_16BF, K, M, K),
                            mat(dy, CUDA_R_32F, N, M, N)),
                  dy, false, &L.ref, INVALID);
    expect_caught("x and w swapped (D too small for the product)",
                  lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(L.dx, CUDA_R_16BF, K, N, K), mat(L.dw, CUDA_R_16BF, K, M, K),
                            mat(dy, CUDA_R_32F, N, M, N)),
                  dy, false, &L.ref, INVALID);
    std::vector<__nv_bfloat16> host_w(L.w);
    expect_caught("w in host memory",
                  lt_matmul(CUBLAS_OP_T, CUBLAS_OP_N, mat(host_w.data(), CUDA_R_16BF, K, N, K),
                            mat(L.dx, CUDA_R_16BF, K, M, K), mat(dy, CUDA_R_32F, N, M, N)),
                  dy, false, &L.ref, INVALID);
#endif
    CK(cudaFree(dy));
  }
  {
    Linear L(16, 32, 32);  // K == N: a missing transpose keeps the shapes consistent
    float *dy = (float *)dev_out((size_t)L.M * L.N, false);
    expect_caught("missing transpose on w (K == N)",
                  lt_matmul(CUBLAS_OP_N, CUBLAS_OP_N, mat(L.dw, CUDA_R_16BF, L.K, L.N, L.K),
                            mat(L.dx, CUDA_R_16BF, L.K, L.M, L.K), mat(dy, CUDA_R_32F, L.N, L.M, L.N)),
                  dy, false, &L.ref, OK);
    CK(cudaFree(dy));
  }
#ifdef BAGEL_CUDA_EMU
  /* What the emulation does not emulate is refused, not approximated. */
  cublasLtMatmulDesc_t desc;
  cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  uint32_t gelu = CUBLASLT_EPILOGUE_GELU_BIAS;
  int8_t fast = 1;
  CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast) == UNSUPPORTED,
        "FAST_ACCUM must be NOT_SUPPORTED");
  CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &gelu, sizeof gelu) == OK, "set epilogue");
  Linear L(8, 8, 8);
  float *dy = (float *)dev_out(64, false);
  cublasLtMatrixLayout_t l8;
  cublasLtMatrixLayoutCreate(&l8, CUDA_R_16BF, 8, 8, 8);
  cublasLtMatrixLayout_t l8f;
  cublasLtMatrixLayoutCreate(&l8f, CUDA_R_32F, 8, 8, 8);
  float one = 1, zero = 0;
  CHECK(cublasLtMatmul(lt, desc, &one, L.dw, l8, L.dx, l8, &zero, dy, l8f, dy, l8f, nullptr, nullptr, 0, 0) == UNSUPPORTED,
        "GELU_BIAS epilogue must be NOT_SUPPORTED");
  printf("unemulated attribute and epilogue refused: ok\n");
  cublasLtMatrixLayoutDestroy(l8);
  cublasLtMatrixLayoutDestroy(l8f);
  cublasLtMatmulDescDestroy(desc);
  CK(cudaFree(dy));
#endif
}

int main(void) {
  require_device();
  CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
  test_linear_spellings();
  test_attention_batches();
  test_mistakes();
  cublasLtDestroy(lt);
  return 0;
}
