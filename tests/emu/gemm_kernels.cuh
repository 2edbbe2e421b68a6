/* tests/emu/gemm_kernels.cuh — two bf16 GEMM kernels of the backend's shape, used by the
 * GEMM test and the emulation benchmark: y[M,N] = x[M,K] · w[N,K]ᵀ, x and w row-major
 * bf16, fp32 accumulation and output.
 *  - gemm_tiled: 32x32 tiles through shared memory, plain FMAs (256 threads);
 *  - gemm_mma: 64x64 block tiles, 2x2 warps of 32x32, tensor cores through mma.cuh
 *    (ldmatrix + mma.m16n8k16), tiles brought in by a two-stage cp.async pipeline. */
#ifndef BAGEL_TESTS_GEMM_KERNELS_CUH
#define BAGEL_TESTS_GEMM_KERNELS_CUH

#include "cuda_common.cuh"
#include "mma.cuh"

#define TILE 32

__global__ void gemm_tiled(const __nv_bfloat16 *x, const __nv_bfloat16 *w, float *y, int M, int N, int K) {
  SHARED(float, xs, [TILE][TILE + 1]);
  SHARED(float, ws, [TILE][TILE + 1]);
  int tx = threadIdx.x, ty = threadIdx.y;  // block (32, 8): each thread 4 outputs
  int m0 = blockIdx.y * TILE, n0 = blockIdx.x * TILE;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < K; k0 += TILE) {
    for (int r = ty; r < TILE; r += 8) {
      int k = k0 + tx;
      xs[r][tx] = m0 + r < M && k < K ? __bfloat162float(x[(size_t)(m0 + r) * K + k]) : 0.0f;
      ws[r][tx] = n0 + r < N && k < K ? __bfloat162float(w[(size_t)(n0 + r) * K + k]) : 0.0f;
    }
    __syncthreads();
    for (int k = 0; k < TILE; k++)
      for (int i = 0; i < 4; i++) acc[i] += xs[ty + 8 * i][k] * ws[tx][k];
    __syncthreads();
  }
  for (int i = 0; i < 4; i++) {
    int m = m0 + ty + 8 * i, n = n0 + tx;
    if (m < M && n < N) y[(size_t)m * N + n] = acc[i];
  }
}

#define BM 64
#define BN 64
#define BK 32
#define SROW (BK + 8)  /* padded row: 80 bytes, a multiple of 16 as ldmatrix wants */

/* Rows r0.. of a [rows, K] bf16 matrix, columns k0..k0+BK, into a [64][SROW] stage. */
__device__ void load_tile(__nv_bfloat16 (*dst)[SROW], const __nv_bfloat16 *src, int r0, int rows, int k0, int K) {
  for (int c = threadIdx.x; c < 64 * (BK / 8); c += blockDim.x) {
    int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
    if (r0 + r < rows) {
      cp_async_16(&dst[r][kc], &src[(size_t)(r0 + r) * K + k0 + kc]);
    } else {
      for (int j = 0; j < 8; j++) dst[r][kc + j] = __float2bfloat16(0.0f);
    }
  }
}

/* K must be a multiple of BK (32) and x, w 16-byte aligned. */
__global__ void gemm_mma(const __nv_bfloat16 *x, const __nv_bfloat16 *w, float *y, int M, int N, int K) {
  SHARED(__nv_bfloat16, xs, [2][BM][SROW]);
  SHARED(__nv_bfloat16, ws, [2][BN][SROW]);
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int wm = (warp / 2) * 32, wn = (warp % 2) * 32;  // this warp's 32x32 within the block tile
  int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  float acc[2][4][4];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++)
      for (int v = 0; v < 4; v++) acc[i][j][v] = 0.0f;
  int kt_count = K / BK;
  load_tile(xs[0], x, m0, M, 0, K);
  load_tile(ws[0], w, n0, N, 0, K);
  cp_async_commit();
  for (int kt = 0; kt < kt_count; kt++) {
    int s = kt % 2;
    if (kt + 1 < kt_count) {
      load_tile(xs[s ^ 1], x, m0, M, (kt + 1) * BK, K);
      load_tile(ws[s ^ 1], w, n0, N, (kt + 1) * BK, K);
    }
    cp_async_commit();
    cp_async_wait<1>();  // stage s has landed (for this thread)...
    __syncthreads();     // ...and for every thread
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[2][4], bf[4][2];
      for (int i = 0; i < 2; i++) ldmatrix_x4(af[i], &xs[s][wm + 16 * i + lane % 16][kk + (lane / 16) * 8]);
      for (int j = 0; j < 4; j++) ldmatrix_x2(bf[j], &ws[s][wn + 8 * j + lane % 8][kk + ((lane / 8) % 2) * 8]);
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) mma_m16n8k16_bf16(acc[i][j], af[i], bf[j], acc[i][j]);
    }
    __syncthreads();  // everyone is done with stage s before it is refilled
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++)
      for (int v = 0; v < 4; v++) {
        MmaCoord o = mma_c_coord(lane, v);
        int m = m0 + wm + 16 * i + o.row, n = n0 + wn + 8 * j + o.col;
        if (m < M && n < N) y[(size_t)m * N + n] = acc[i][j][v];
      }
}

static inline cudaError_t launch_gemm_tiled(const __nv_bfloat16 *x, const __nv_bfloat16 *w, float *y, int M, int N,
                                            int K, cudaStream_t s) {
  return LAUNCH(gemm_tiled, dim3((N + TILE - 1) / TILE, (M + TILE - 1) / TILE), dim3(32, 8), 0, s, x, w, y, M, N, K);
}

static inline cudaError_t launch_gemm_mma(const __nv_bfloat16 *x, const __nv_bfloat16 *w, float *y, int M, int N,
                                          int K, cudaStream_t s) {
  if (K % BK) return cudaErrorInvalidValue;
  return LAUNCH(gemm_mma, dim3((N + BN - 1) / BN, (M + BM - 1) / BM), dim3(128), 0, s, x, w, y, M, N, K);
}

#endif
