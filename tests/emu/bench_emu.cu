/* tests/emu/bench_emu.cu — how fast the CUDA emulation runs (meson test --benchmark):
 * fiber switches per second and the cost of one thread passing a __syncthreads (a kernel
 * of nothing but barriers), a warp shuffle per lane, and the two 256³ bf16 GEMM kernels
 * of gemm_kernels.cuh, in CPU time of the one OS thread that runs the kernels.  Emulation
 * only: on a GPU these numbers mean nothing. */
#include "emu_test.h"
#include "gemm_kernels.cuh"

#include <time.h>

/* CPU time of this thread: the machine may be shared, and the emulation runs every
 * kernel on the calling thread. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__global__ void barriers(int *out, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    v += i;
    __syncthreads();
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

__global__ void shuffles(int *out, int n) {
  int v = threadIdx.x;
  for (int i = 0; i < n; i++) v += __shfl_xor_sync(FULL_MASK, v, 1);
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

int main(void) {
  const int threads = 256, nbar = 2000;
  int *d;
  CK(cudaMalloc((void **)&d, 8 * threads * sizeof(int)));

  CuemuStats s0, s1;
  cuemu_get_stats(&s0);
  double t0 = now_s();
  CK(LAUNCH(barriers, dim3(4), dim3(threads), 0, 0, d, nbar));
  CK(cudaDeviceSynchronize());
  double t = now_s() - t0;
  cuemu_get_stats(&s1);
  double sw = (double)(s1.switches - s0.switches);
  printf("barriers: %d blocks x %d threads x %d __syncthreads in %.3f s\n", 4, threads, nbar, t);
  printf("  fiber switches: %.0f in %.3f s = %.1f M switches/s (%.1f ns each)\n", sw, t, sw / t / 1e6, t / sw * 1e9);
  printf("  __syncthreads: %.1f ns per thread per barrier\n", t / (4.0 * threads * nbar) * 1e9);

  t0 = now_s();
  CK(LAUNCH(shuffles, dim3(4), dim3(threads), 0, 0, d, 1000));
  CK(cudaDeviceSynchronize());
  t = now_s() - t0;
  printf("__shfl_xor_sync: %.1f ns per lane per shuffle\n", t / (4.0 * threads * 1000) * 1e9);

  const int n = 256;
  std::vector<__nv_bfloat16> x((size_t)n * n), w((size_t)n * n);
  TestRng rng(5);
  for (auto &v : x) v = __float2bfloat16(rng.uniform());
  for (auto &v : w) v = __float2bfloat16(rng.uniform());
  __nv_bfloat16 *dx = to_device(x), *dw = to_device(w);
  float *dy;
  CK(cudaMalloc((void **)&dy, (size_t)n * n * sizeof(float)));
  for (int k = 0; k < 2; k++) {
    const char *name = k ? "gemm_mma (ldmatrix + mma.m16n8k16 + cp.async)" : "gemm_tiled (shared-memory tiles)";
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
      t0 = now_s();
      CK(k ? launch_gemm_mma(dx, dw, dy, n, n, n, 0) : launch_gemm_tiled(dx, dw, dy, n, n, n, 0));
      CK(cudaDeviceSynchronize());
      t = now_s() - t0;
      if (t < best) best = t;
    }
    printf("256^3 %s: %.1f ms (best of 3)\n", name, best * 1e3);
  }
  CK(cudaFree(dx));
  CK(cudaFree(dw));
  CK(cudaFree(dy));
  CK(cudaFree(d));
  return 0;
}
