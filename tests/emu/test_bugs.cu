/* tests/emu/test_bugs.cu — kernels with the bugs the CUDA emulation exists to catch.
 * `test_bugs CASE` runs one; each case says how it must end:
 *  - caught by the emulation itself: the case checks the error code and the report and
 *    exits 0 when both are right (divergent-barrier, early-exit, shfl-exit, partial-mask,
 *    deadlock, host-pointer, block-size, dyn-smem, orders, refill-orders);
 *  - caught by a sanitizer: the case just runs the buggy kernel and the sanitizer must
 *    stop the process with its report, which tests/emu/expect-report checks (race,
 *    warp-race, refill-race under TSan; oob-write and dyn-smem-overrun under ASan).
 * Emulation-only: on a GPU these kernels would misbehave silently or hang. */
#include "emu_test.h"
#include "mma.cuh"

#include <string>

/* Each thread publishes its index and reads its neighbour's — without the barrier. */
__global__ void neighbour_no_sync(int *out) {
  SHARED(int, buf, [64]);
  int t = threadIdx.x;
  buf[t] = t + 1;
  out[t] = buf[(t + 1) % 64];  // BUG: __syncthreads() missing before this read
}

/* The same inside one warp: lanes exchange through shared memory without __syncwarp. */
__global__ void lanes_no_syncwarp(int *out) {
  SHARED(int, buf, [32]);
  int l = threadIdx.x;
  buf[l] = l + 1;
  out[l] = buf[l ^ 1];  // BUG: __syncwarp() missing before this read
}

/* Double-buffered tiles brought in by cp.async; each thread sums another thread's
 * elements.  The barrier before a buffer is refilled is missing, so a fast thread's next
 * copy can overwrite what a slow one has not read yet. */
__global__ void refill_no_sync(const float4 *in, float *out, int tiles) {
  SHARED(float4, buf, [2][64]);
  int t = threadIdx.x;
  float acc = 0.0f;
  cp_async_16(&buf[0][t], &in[t]);
  cp_async_commit();
  for (int k = 0; k < tiles; k++) {
    if (k + 1 < tiles) cp_async_16(&buf[(k + 1) % 2][t], &in[(k + 1) * 64 + t]);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    acc += buf[k % 2][63 - t].x;
    // BUG: __syncthreads() missing here, before the next iteration refills buf[k % 2]
  }
  out[t] = acc;
}

__global__ void oob_write(float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) y[i] = 1.0f;  // BUG: <= writes one element past the end
}

__global__ void dyn_smem_overrun(int *out) {
  DYN_SHARED(int, buf);
  buf[threadIdx.x + 1] = (int)threadIdx.x;  // BUG: the launch gave blockDim.x ints
  __syncthreads();
  out[threadIdx.x] = buf[threadIdx.x];
}

__global__ void divergent_barrier(int *out) {
  if (threadIdx.x < 32) {
    __syncthreads();  // lint-kernels: allow(barrier-in-divergent-code): the bug under test
  } else {
    __syncthreads();  // BUG: a different barrier than the first warp's  lint-kernels: allow(barrier-in-divergent-code)
  }
  out[threadIdx.x] = 1;
}

__global__ void early_exit(const int *in, int *out, int n) {
  int i = threadIdx.x;
  if (i >= n) return;  // BUG: the threads that leave never reach the barrier
  SHARED(int, buf, [64]);
  buf[i] = in[i];
  __syncthreads();  // lint-kernels: allow(early-exit-before-barrier): the bug under test
  out[i] = buf[n - 1 - i];
}

__global__ void shfl_exit(int *out) {
  if (threadIdx.x == 31) return;  // BUG: lane 31 leaves before the shuffle
  out[threadIdx.x] = __shfl_down_sync(FULL_MASK, (int)threadIdx.x, 1);
}

__global__ void partial_mask(int *out) {
  // lint-kernels: allow(partial-mask): the rule under test
  out[threadIdx.x] = __shfl_sync(0x0000ffffu, (int)threadIdx.x, 0);
}

/* Half of warp 0 waits at the block barrier, the other half at a shuffle: nobody moves. */
__global__ void deadlock(int *out) {
  int v = threadIdx.x;
  if (threadIdx.x >= 16 && threadIdx.x < 32) v = __shfl_xor_sync(FULL_MASK, v, 1);
  else __syncthreads();  // lint-kernels: allow(barrier-in-divergent-code): the bug under test
  out[threadIdx.x] = v;
}

__global__ void fill(int *out, int v) { out[threadIdx.x] = v; }

__global__ void big_dyn_smem(int *out) {
  DYN_SHARED(int, buf);
  buf[threadIdx.x * 512] = (int)threadIdx.x;  // 32 threads x 2 KiB apart: the whole 64 KiB
  __syncthreads();
  out[threadIdx.x] = buf[(31 - threadIdx.x) * 512];
}

static int *dev_ints(int n) {
  int *p;
  CK(cudaMalloc((void **)&p, n * sizeof(int)));
  CK(cudaMemset(p, 0, n * sizeof(int)));
  return p;
}

/* The launch (or the synchronisation after it) must fail with want, and the report must
 * contain text. */
static int expect_error(cudaError_t got, cudaError_t want, const char *text) {
  if (got == cudaSuccess) got = cudaDeviceSynchronize();
  std::string msg = cuemu_error_message();
  if (got != want || msg.find(text) == std::string::npos) {
    fprintf(stderr, "expected %s with \"%s\"; got %s with \"%s\"\n", cudaGetErrorName(want), text,
            cudaGetErrorName(got), msg.c_str());
    return 1;
  }
  printf("caught as expected: %s\n", msg.c_str());
  cudaDeviceReset();
  return 0;
}

/* Run the racy kernel in each order: at least one must give a wrong answer. */
static int orders(void) {
  int *d = dev_ints(64), wrong = 0;
  for (const char *o : {"forward", "reverse"}) {
    cuemu_set_order(o);
    CK(LAUNCH(neighbour_no_sync, dim3(1), dim3(64), 0, 0, d));
    std::vector<int> h = to_host(d, 64);
    int bad = 0;
    for (int t = 0; t < 64; t++) bad += h[t] != (t + 1) % 64 + 1;
    printf("order %s: %d of 64 threads read a stale neighbour\n", o, bad);
    wrong += bad > 0;
  }
  CK(cudaFree(d));
  return wrong > 0 ? 0 : 1;
}

static void run_refill(float4 **din, float **dout) {
  const int tiles = 4;
  std::vector<float4> in(tiles * 64);
  for (int i = 0; i < tiles * 64; i++) in[i] = make_float4((float)i, 0, 0, 0);
  *din = to_device(in);
  CK(cudaMalloc((void **)dout, 64 * sizeof(float)));
  CK(LAUNCH(refill_no_sync, dim3(1), dim3(64), 0, 0, *din, *dout, tiles));
  CK(cudaDeviceSynchronize());
}

/* The missing refill barrier: the copy landing at its issue (reverse order) shows it. */
static int refill_orders(void) {
  int wrong = 0;
  for (const char *o : {"forward", "reverse"}) {
    cuemu_set_order(o);
    float4 *din;
    float *dout;
    run_refill(&din, &dout);
    std::vector<float> h = to_host(dout, 64);
    int bad = 0;
    for (int t = 0; t < 64; t++) {
      float want = 0;
      for (int k = 0; k < 4; k++) want += (float)(k * 64 + 63 - t);
      bad += h[t] != want;
    }
    printf("order %s: %d of 64 threads summed an overwritten element\n", o, bad);
    wrong += bad > 0;
    CK(cudaFree(din));
    CK(cudaFree(dout));
  }
  return wrong > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_bugs CASE\n");
    return 2;
  }
  std::string c = argv[1];
  int *d = dev_ints(64);
  if (c == "race") {
    CK(LAUNCH(neighbour_no_sync, dim3(1), dim3(64), 0, 0, d));
    CK(cudaDeviceSynchronize());
    return 0;
  }
  if (c == "warp-race") {
    CK(LAUNCH(lanes_no_syncwarp, dim3(1), dim3(32), 0, 0, d));
    CK(cudaDeviceSynchronize());
    return 0;
  }
  if (c == "oob-write") {
    float *y;
    CK(cudaMalloc((void **)&y, 100 * sizeof(float)));
    CK(LAUNCH(oob_write, dim3(4), dim3(32), 0, 0, y, 100));
    CK(cudaDeviceSynchronize());
    return 0;
  }
  if (c == "dyn-smem-overrun") {
    CK(LAUNCH(dyn_smem_overrun, dim3(1), dim3(32), 32 * sizeof(int), 0, d));
    CK(cudaDeviceSynchronize());
    return 0;
  }
  if (c == "orders") {
    CK(cudaFree(d));
    return orders();
  }
  if (c == "refill-orders") {
    CK(cudaFree(d));
    return refill_orders();
  }
  if (c == "refill-race") {
    float4 *din;
    float *dout;
    run_refill(&din, &dout);
    return 0;
  }
  if (c == "divergent-barrier")
    return expect_error(LAUNCH(divergent_barrier, dim3(1), dim3(64), 0, 0, d), cudaErrorLaunchFailure,
                        "divergent barrier");
  if (c == "early-exit")
    return expect_error(LAUNCH(early_exit, dim3(1), dim3(64), 0, 0, d, d, 40), cudaErrorLaunchFailure,
                        "non-uniform control flow");
  if (c == "shfl-exit")
    return expect_error(LAUNCH(shfl_exit, dim3(1), dim3(32), 0, 0, d), cudaErrorLaunchFailure,
                        "exited while 31 lanes wait at __shfl_down_sync");
  if (c == "partial-mask")
    return expect_error(LAUNCH(partial_mask, dim3(1), dim3(32), 0, 0, d), cudaErrorLaunchFailure,
                        "full mask");
  if (c == "deadlock")
    return expect_error(LAUNCH(deadlock, dim3(1), dim3(64), 0, 0, d), cudaErrorLaunchFailure,
                        "threads 16-31: waiting at __shfl_xor_sync");
  if (c == "host-pointer") {
    std::vector<int> host(64);
    return expect_error(LAUNCH(fill, dim3(1), dim3(64), 0, 0, host.data(), 1), cudaErrorInvalidValue,
                        "not device memory");
  }
  if (c == "block-size")
    return expect_error(LAUNCH(fill, dim3(1), dim3(48), 0, 0, d, 1),  // lint-kernels: allow(block-size)
                        cudaErrorInvalidConfiguration,
                        "not a multiple of 32");
  if (c == "dyn-smem") {
    if (expect_error(LAUNCH(big_dyn_smem, dim3(1), dim3(32), 64 * 1024, 0, d), cudaErrorInvalidValue,
                     "cudaFuncSetAttribute"))
      return 1;
    d = dev_ints(64);
    CK(cudaFuncSetAttribute(big_dyn_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    CK(LAUNCH(big_dyn_smem, dim3(1), dim3(32), 64 * 1024, 0, d));
    std::vector<int> h = to_host(d, 32);
    for (int t = 0; t < 32; t++) CHECK(h[t] == 31 - t, "thread %d read %d", t, h[t]);
    printf("64 KiB of dynamic shared memory after cudaFuncSetAttribute: ok\n");
    CK(cudaFree(d));
    return 0;
  }
  fprintf(stderr, "test_bugs: unknown case %s\n", c.c_str());
  return 2;
}
