/* tests/emu/test_smem.cu — dynamic shared memory (DYN_SHARED): one buffer carved into
 * two arrays of different types, sized by the launch; static and dynamic shared memory
 * together; and, under the emulation, that shared memory starts as NaN bytes so a read
 * of something never written shows. */
#include "emu_test.h"

/* Per block: keys (int) and values (float) side by side in the dynamic buffer; each
 * thread writes its pair, then reads its mirror's pair across a barrier. */
__global__ void mirror_pairs(const int *keys, const float *vals, int *okeys, float *ovals) {
  DYN_SHARED(unsigned char, raw);
  int n = blockDim.x, t = threadIdx.x, i = blockIdx.x * n + t;
  int *ks = reinterpret_cast<int *>(raw);
  float *vs = reinterpret_cast<float *>(raw + n * sizeof(int));
  ks[t] = keys[i];
  vs[t] = vals[i] * 2.0f;
  __syncthreads();
  okeys[i] = ks[n - 1 - t];
  ovals[i] = vs[n - 1 - t];
}

/* Static and dynamic shared memory in the same kernel, plus what is there before any
 * write (only meaningful under the emulation). */
__global__ void mixed(float *out, float *unwritten) {
  SHARED(float, s, [64]);
  DYN_SHARED(float, d);
  unwritten[threadIdx.x] = threadIdx.x < 32 ? s[threadIdx.x] : d[threadIdx.x];
  __syncthreads();
  s[threadIdx.x] = (float)threadIdx.x;
  d[threadIdx.x] = 100.0f + threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[63 - threadIdx.x] + d[63 - threadIdx.x];
}

static void test_mirror(int threads) {
  const int blocks = 3, n = blocks * threads;
  std::vector<int> keys(n);
  std::vector<float> vals(n);
  for (int i = 0; i < n; i++) {
    keys[i] = i * 3 + 1;
    vals[i] = 0.5f * i;
  }
  int *dk = to_device(keys), *dok;
  float *dv = to_device(vals), *dov;
  CK(cudaMalloc((void **)&dok, n * sizeof(int)));
  CK(cudaMalloc((void **)&dov, n * sizeof(float)));
  size_t smem = threads * (sizeof(int) + sizeof(float));
  CK(LAUNCH(mirror_pairs, dim3(blocks), dim3(threads), smem, 0, dk, dv, dok, dov));
  std::vector<int> ok = to_host(dok, n);
  std::vector<float> ov = to_host(dov, n);
  for (int b = 0; b < blocks; b++)
    for (int t = 0; t < threads; t++) {
      int i = b * threads + t, j = b * threads + threads - 1 - t;
      CHECK(ok[i] == keys[j] && ov[i] == 2.0f * vals[j], "block %d thread %d: %d %g", b, t, ok[i], ov[i]);
    }
  CK(cudaFree(dk));
  CK(cudaFree(dv));
  CK(cudaFree(dok));
  CK(cudaFree(dov));
  printf("dynamic shared memory, %d threads (%zu bytes): ok\n", threads, smem);
}

static void test_mixed(void) {
  float *dout, *dun;
  CK(cudaMalloc((void **)&dout, 64 * sizeof(float)));
  CK(cudaMalloc((void **)&dun, 64 * sizeof(float)));
  CK(LAUNCH(mixed, dim3(1), dim3(64), 64 * sizeof(float), 0, dout, dun));
  std::vector<float> out = to_host(dout, 64), un = to_host(dun, 64);
  for (int t = 0; t < 64; t++) {
    CHECK(out[t] == 100.0f + 2 * (63 - t), "thread %d: %g", t, out[t]);
#ifdef BAGEL_CUDA_EMU
    CHECK(isnan(un[t]), "thread %d read %g from shared memory never written (want NaN)", t, un[t]);
#endif
  }
  CK(cudaFree(dout));
  CK(cudaFree(dun));
  printf("static + dynamic shared memory: ok\n");
}

int main(void) {
  require_device();
  test_mirror(32);
  test_mirror(256);
  test_mixed();
  return 0;
}
