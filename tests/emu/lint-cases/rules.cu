/* tests/emu/lint-cases/rules.cu — fixture of tools/lint-kernels --self-test: every line
 * marked `expect:` must be reported with those rules, and nothing else.  Never built. */
#include "cuda_common.cuh"

__managed__ float managed_value;  // expect: managed-memory

__global__ void raw_things(float *y, int n) {
  __shared__ float s[32];  // expect: raw-shared
#if __CUDA_ARCH__ >= 800  // expect: cuda-arch-ifdef
  asm volatile("nanosleep.u32 1;");  // expect: raw-asm
#endif
  float v = __shfl_down(y[0], 1);  // expect: legacy-warp-intrinsic
  v += __shfl_xor_sync(0xffff, v, 1);  // expect: partial-mask
  v += __shfl_xor_sync(FULL_MASK, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  unsigned act = __activemask();  // expect: legacy-warp-intrinsic
  __syncwarp();
  __syncwarp(0x0f);  // expect: partial-mask
  y[threadIdx.x] = v + s[0] + act + n;
}

__global__ void __launch_bounds__(100) odd_bounds(float *y) { y[0] = 0; }  // expect: block-size

__global__ void __launch_bounds__(256) fine_bounds(float *y) { y[0] = 0; }

__device__ float helper(float x) { return x * 2.0f; }

__global__ void divergent(float *y) {
  SHARED(float, part, [32]);
  int tid = threadIdx.x;
  int warp = tid / 32;
  if (warp == 0) {
    __syncthreads();  // expect: barrier-in-divergent-code
  }
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (tid < s) part[tid] += part[tid + s];
    __syncthreads();
  }
  for (int i = tid; i < 64; i += blockDim.x) __syncthreads();  // expect: barrier-in-divergent-code
  if (blockIdx.x == 0) __syncthreads();
  if (tid == 0)
    y[0] = helper(part[0]);
  else
    __syncthreads();  // expect: barrier-in-divergent-code
  do {
    __syncthreads();  // expect: barrier-in-divergent-code
  } while (tid < 3);
}

__global__ void early(float *y, int n) {
  if (threadIdx.x >= n) return;
  y[threadIdx.x] = 1;
  __syncthreads();  // expect: early-exit-before-barrier
}

__global__ void forbidden(float *y, cudaTextureObject_t tex) {  // expect: texture
  float *p = (float *)malloc(16);  // expect: device-malloc
  long long t0 = clock64();  // expect: timing
  volatile float *flag = y;  // expect: inter-block-communication
  LAUNCH(odd_bounds, dim3(1), dim3(32), 0, 0, y);  // expect: dynamic-parallelism
  y[0] = p[0] + (float)t0 + flag[0];
  free(p);  // expect: device-malloc
}

__global__ void bad_args(float &x, float **pp) { x = **pp; }  // expect: kernel-args

__global__ void good_args(const __nv_bfloat16 *x, float *y, int n, float scale, dim3 shape) {
  if (threadIdx.x < n) y[threadIdx.x] = __bfloat162float(x[threadIdx.x]) * scale + shape.x;
}

void host_side(float *y) {
  raw_things<<<1, 32>>>(y, 1);  // expect: raw-launch
  LAUNCH(odd_bounds, dim3(1), dim3(16, 3), 0, 0, y);  // expect: block-size
  LAUNCH(odd_bounds, dim3(1), dim3(32, 3), 0, 0, y);
  LAUNCH(odd_bounds, 1, 48, 0, 0, y);  // expect: block-size
  // lint-kernels: allow(block-size): a waiver on the line before
  LAUNCH(odd_bounds, 1, 40, 0, 0, y);
}
