/* tests/emu/test_gemm.cu — the tiled and the tensor-core bf16 GEMM (gemm_kernels.cuh)
 * against a naive CPU product, on shapes that are not multiples of the tiles. */
#include "emu_test.h"
#include "gemm_kernels.cuh"

static void check_gemm(const char *name, int M, int N, int K, bool use_mma) {
  TestRng rng((uint64_t)M * 1000 + N * 10 + K);
  std::vector<__nv_bfloat16> x((size_t)M * K), w((size_t)N * K);
  std::vector<float> xf(x.size()), wf(w.size()), ref((size_t)M * N);
  for (size_t i = 0; i < x.size(); i++) xf[i] = __bfloat162float(x[i] = __float2bfloat16(rng.uniform()));
  for (size_t i = 0; i < w.size(); i++) wf[i] = __bfloat162float(w[i] = __float2bfloat16(rng.uniform()));
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += (double)xf[(size_t)m * K + k] * wf[(size_t)n * K + k];
      ref[(size_t)m * N + n] = (float)s;
    }
  __nv_bfloat16 *dx = to_device(x), *dw = to_device(w);
  float *dy;
  CK(cudaMalloc((void **)&dy, ref.size() * sizeof(float)));
  CK(use_mma ? launch_gemm_mma(dx, dw, dy, M, N, K, 0) : launch_gemm_tiled(dx, dw, dy, M, N, K, 0));
  std::vector<float> y = to_host(dy, ref.size());
  char label[96];
  snprintf(label, sizeof label, "%s %dx%dx%d", name, M, N, K);
  /* Exact bf16 products, fp32 sums of K terms of size <= 1: |error| <= K * 2^-24 * sum|terms|. */
  double err = max_rel_err(label, y.data(), ref.data(), ref.size());
  CHECK(err < 1e-5, "%s: error %g", label, err);
  CK(cudaFree(dx));
  CK(cudaFree(dw));
  CK(cudaFree(dy));
}

int main(void) {
  require_device();
  check_gemm("gemm_tiled", 70, 45, 100, false);
  check_gemm("gemm_tiled", 32, 32, 32, false);
  check_gemm("gemm_mma", 80, 72, 96, true);
  check_gemm("gemm_mma", 64, 64, 32, true);
  return 0;
}
