/* kernels/cuda/cuda_backend.h — what the CUDA backend tells about itself beyond the op
 * table (kernels/ops.h, where bk_cuda_new is declared): its memory counters, read by the
 * tests (no device allocation after the first denoising step) and the benchmarks. */
#ifndef BAGEL_CUDA_BACKEND_H
#define BAGEL_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint64_t device_mallocs;    /* cudaMalloc calls of the caching pool */
  uint64_t pool_hits;         /* allocations served from the pool's cache */
  size_t live_bytes;          /* pool memory handed out now */
  size_t cached_bytes;        /* pool memory kept for reuse */
  size_t weight_bytes;        /* weights resident on the device */
  uint64_t gemm_plans;        /* cuBLASLt heuristic queries (plan cache misses) */
  uint64_t linear_fallbacks;  /* linear calls cuBLASLt could not take (simple kernel) */
} BkCudaStats;

/* The counters of a backend made by bk_cuda_new (false for any other backend). */
bool bk_cuda_stats(const BkBackend *be, BkCudaStats *out);

#ifdef __cplusplus
}
#endif
#endif
