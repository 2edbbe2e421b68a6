/* kernels/cuda/cuda_common.cuh — the one include of every CUDA backend source.
 *
 * The same .cu file builds two ways: with nvcc for the GPU, or (-Dcuda-emu=true, which
 * defines BAGEL_CUDA_EMU) with the host C++ compiler on top of the CUDA emulation in
 * kernels/cuda/emu/.  This header picks the world and gives both the same spellings:
 *   SHARED(T, name, dims)   static shared memory   (never a raw __shared__)
 *   DYN_SHARED(T, name)     the launch's dynamic shared memory as T *
 *   LAUNCH(kernel, grid, block, smem, stream, args...)  -> cudaError_t of the launch
 *   FULL_MASK               the mask of every warp intrinsic
 *   CUDA_CHECK / CUBLAS_CHECK  error checks that return instead of aborting
 * Tensor-core and async-copy instructions go through kernels/cuda/mma.cuh.  The rules a
 * kernel follows are in docs/architecture.md ("CUDA kernel rules"), checked by
 * tools/lint-kernels.
 */
#ifndef BAGEL_CUDA_COMMON_CUH
#define BAGEL_CUDA_COMMON_CUH

#ifdef BAGEL_CUDA_EMU
#include "emu/cuda_emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define SHARED(T, name, dims) __shared__ T name dims
#define DYN_SHARED(T, name)                                                                \
  extern __shared__ __align__(16) unsigned char bagel_dyn_smem_[];                         \
  T *name = reinterpret_cast<T *>(bagel_dyn_smem_)
#define LAUNCH(kernel, grid, block, smem, stream, ...)                                     \
  ((kernel)<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__), cudaGetLastError())
#endif

#include <cublasLt.h>
#include <cublas_v2.h>

#include "ops.h"

#define FULL_MASK 0xffffffffu

/* Check a CUDA runtime call; on failure record "file:line: call: name (text)" in the
 * backend (first failure wins, see bk_fail) and return false / the value given. */
static inline bool bk_cuda_ok(BkBackend *be, cudaError_t e, const char *expr, const char *file, int line) {
  if (e == cudaSuccess) return true;
  bk_fail(be, "%s:%d: %s: %s (%s)", file, line, expr, cudaGetErrorString(e), cudaGetErrorName(e));
  return false;
}
static inline bool bk_cublas_ok(BkBackend *be, cublasStatus_t s, const char *expr, const char *file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  bk_fail(be, "%s:%d: %s: %s (%s)", file, line, expr, cublasGetStatusString(s), cublasGetStatusName(s));
  return false;
}
#define CUDA_OK(be, expr) bk_cuda_ok((be), (expr), #expr, __FILE__, __LINE__)
#define CUBLAS_OK(be, expr) bk_cublas_ok((be), (expr), #expr, __FILE__, __LINE__)
/* In a function returning bool. */
#define CUDA_CHECK(be, expr)                                                               \
  do {                                                                                     \
    if (!CUDA_OK(be, expr)) return false;                                                  \
  } while (0)
#define CUBLAS_CHECK(be, expr)                                                             \
  do {                                                                                     \
    if (!CUBLAS_OK(be, expr)) return false;                                                \
  } while (0)

#endif
