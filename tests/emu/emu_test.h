/* tests/emu/emu_test.h — helpers of the CUDA tests.  Each test .cu builds twice: with nvcc
 * for the GPU (it then skips, exit 77, when there is none) and as host C++ on the CUDA
 * emulation (-Dcuda-emu=true, BAGEL_CUDA_EMU), where the kernels run on the CPU. */
#ifndef BAGEL_TESTS_EMU_TEST_H
#define BAGEL_TESTS_EMU_TEST_H

#include "cuda_common.cuh"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#define CHECK(cond, ...)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);            \
      fprintf(stderr, __VA_ARGS__);                                                        \
      fprintf(stderr, "\n");                                                               \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

#define CK(expr)                                                                           \
  do {                                                                                     \
    cudaError_t e_ = (expr);                                                               \
    if (e_ != cudaSuccess) {                                                               \
      fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_), \
              cudaGetErrorName(e_));                                                       \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

/* Exit 77 (meson: skipped) when there is no device to run on. */
static inline void require_device(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    printf("SKIP: no CUDA device\n");
    exit(77);
  }
}

/* Deterministic test data. */
struct TestRng {
  uint64_t s;
  explicit TestRng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (uint32_t)(s >> 16);
  }
  float uniform() { return (float)(next() & 0xffffff) / 16777216.0f * 2.0f - 1.0f; } /* [-1, 1) */
  int small_int(int n) { return (int)(next() % (unsigned)n); }
};

template <typename T>
T *to_device(const std::vector<T> &h) {
  T *d = nullptr;
  CK(cudaMalloc((void **)&d, h.size() * sizeof(T)));
  CK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <typename T>
std::vector<T> to_host(const T *d, size_t n) {
  std::vector<T> h(n);
  CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

static inline float bf16_round(float f) { return __bfloat162float(__float2bfloat16_rn(f)); }

/* Largest |a-b| / (1 + |b|) over two arrays; prints it with the given label. */
static inline double max_rel_err(const char *label, const float *a, const float *b, size_t n) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
    if (e != e) e = INFINITY; /* a NaN is the worst error */
    if (e > worst) {
      worst = e;
      at = i;
    }
  }
  printf("%s: max rel err %.3g (at %zu: %g vs %g)\n", label, worst, at, n ? a[at] : 0.0, n ? b[at] : 0.0);
  return worst;
}

#endif
