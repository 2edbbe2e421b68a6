/* kernels/cuda/cuda_pool.cu — device memory of the CUDA backend: the caching pool behind
 * BkOps.alloc/free and every op temporary, and the weight slabs behind BkOps.weight.
 *
 * Why a pool: cudaMalloc/cudaFree synchronise the device and cost tens of microseconds;
 * the engine's arena and KV caches already allocate up front, but ops need temporaries
 * (a bf16 copy of a linear's input, GroupNorm's partial sums) and the engine frees and
 * reallocates KV caches between jobs.  Freed blocks stay cached and are reused best-fit
 * (a block is taken when it is at most twice the request, or 4 MiB larger), which is
 * safe without events because the backend has one stream: whoever gets a block next
 * issues its work after the work of the previous owner.
 *
 * Out of memory: the cache is released and the allocation retried once; if the device
 * still refuses, the failure is recorded with the bytes needed and free, the CUDA error
 * is cleared (an allocation failure is not sticky) and the backend stays usable.
 *
 * Weights are bump-allocated in 256 MiB slabs (one slab per tensor that is larger),
 * 256-byte aligned; a slab is freed when its last weight is. */
#include "cuda_internal.cuh"

#include <stdlib.h>
#include <string.h>

#define POOL_ALIGN 512
#define POOL_TOMB ((void *)1)
#define SLAB_SIZE ((size_t)256 << 20)
#define SLAB_ALIGN 256

static size_t hash_ptr(const void *p, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)p;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (size_t)h & (cap - 1);
}

static bool live_grow(Pool *pl) {
  size_t cap = pl->live_cap ? pl->live_cap * 2 : 256;
  PoolBlock *t = (PoolBlock *)calloc(cap, sizeof *t);
  if (!t) return false;
  for (size_t i = 0; i < pl->live_cap; i++) {
    PoolBlock b = pl->live[i];
    if (!b.p || b.p == POOL_TOMB) continue;
    size_t j = hash_ptr(b.p, cap);
    while (t[j].p) j = (j + 1) & (cap - 1);
    t[j] = b;
  }
  free(pl->live);
  pl->live = t;
  pl->live_cap = cap;
  pl->live_used = pl->live_n;
  return true;
}

static bool live_add(Pool *pl, void *p, size_t size) {
  if ((pl->live_used + 1) * 2 > pl->live_cap && !live_grow(pl)) return false;
  size_t j = hash_ptr(p, pl->live_cap);
  while (pl->live[j].p && pl->live[j].p != POOL_TOMB) j = (j + 1) & (pl->live_cap - 1);
  if (!pl->live[j].p) pl->live_used++;
  pl->live[j] = PoolBlock{p, size};
  pl->live_n++;
  pl->live_bytes += size;
  return true;
}

/* Remove p from the live table; its size, or 0 when p is not a live block. */
static size_t live_take(Pool *pl, void *p) {
  if (!pl->live_cap) return 0;
  size_t j = hash_ptr(p, pl->live_cap);
  while (pl->live[j].p) {
    if (pl->live[j].p == p) {
      size_t s = pl->live[j].size;
      pl->live[j].p = POOL_TOMB;
      pl->live_n--;
      pl->live_bytes -= s;
      return s;
    }
    j = (j + 1) & (pl->live_cap - 1);
  }
  return 0;
}

static bool cached_push(Pool *pl, PoolBlock b) {
  if (pl->cached_n == pl->cached_cap) {
    size_t cap = pl->cached_cap ? pl->cached_cap * 2 : 64;
    PoolBlock *c = (PoolBlock *)realloc(pl->cached, cap * sizeof *c);
    if (!c) return false;
    pl->cached = c;
    pl->cached_cap = cap;
  }
  pl->cached[pl->cached_n++] = b;
  pl->cached_bytes += b.size;
  return true;
}

/* A device allocation; on failure after releasing the cache, a clear error (or, when
 * report is false, just NULL). */
static void *device_malloc(BkBackend *be, size_t n, const char *what, bool report) {
  CudaImpl *impl = cuda_impl(be);
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, n);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    cuda_pool_release(be);
    e = cudaMalloc(&p, n);
  }
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  /* not sticky: the backend stays usable */
    if (!report) return NULL;
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    (void)cudaGetLastError();
    bk_fail(be, "CUDA out of memory allocating %s: needed %zu bytes (%.2f GiB), %zu bytes (%.2f GiB) "
            "free of %.2f GiB", what, n, n / 1073741824.0, free_b, free_b / 1073741824.0,
            total / 1073741824.0);
    return NULL;
  }
  if (!CUDA_OK(be, e)) return NULL;
  impl->stats.device_mallocs++;
  return p;
}

void *cuda_pool_alloc(BkBackend *be, size_t n) {
  CudaImpl *impl = cuda_impl(be);
  Pool *pl = &impl->pool;
  size_t sz = (n + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
  if (!sz) sz = POOL_ALIGN;
  /* best fit among the cached blocks that are not too large */
  size_t best = (size_t)-1;
  for (size_t i = 0; i < pl->cached_n; i++) {
    size_t s = pl->cached[i].size;
    if (s >= sz && (s <= 2 * sz || s <= sz + ((size_t)4 << 20)) &&
        (best == (size_t)-1 || s < pl->cached[best].size))
      best = i;
  }
  PoolBlock b;
  if (best != (size_t)-1) {
    b = pl->cached[best];
    pl->cached[best] = pl->cached[--pl->cached_n];
    pl->cached_bytes -= b.size;
    impl->stats.pool_hits++;
  } else {
    b.p = device_malloc(be, sz, "device memory", true);
    b.size = sz;
    if (!b.p) return NULL;
  }
  if (!live_add(pl, b.p, b.size)) {
    cudaFree(b.p);
    bk_fail(be, "cuda: out of host memory for the allocation table");
    return NULL;
  }
  return b.p;
}

void cuda_pool_free(BkBackend *be, void *p) {
  if (!p) return;
  Pool *pl = &cuda_impl(be)->pool;
  size_t s = live_take(pl, p);
  if (!s) {
    bk_fail(be, "cuda free: %p is not a live allocation of this backend", p);
    return;
  }
  if (!cached_push(pl, PoolBlock{p, s})) CUDA_OK(be, cudaFree(p));
}

void cuda_pool_release(BkBackend *be) {
  Pool *pl = &cuda_impl(be)->pool;
  if (pl->cached_n) CUDA_OK(be, cudaStreamSynchronize(cuda_impl(be)->stream));
  for (size_t i = 0; i < pl->cached_n; i++) CUDA_OK(be, cudaFree(pl->cached[i].p));
  pl->cached_n = 0;
  pl->cached_bytes = 0;
}

void cuda_pool_destroy(BkBackend *be) {
  Pool *pl = &cuda_impl(be)->pool;
  cuda_pool_release(be);
  for (size_t i = 0; i < pl->live_cap; i++)
    if (pl->live[i].p && pl->live[i].p != POOL_TOMB) cudaFree(pl->live[i].p);
  free(pl->live);
  free(pl->cached);
  memset(pl, 0, sizeof *pl);
}

/* ---- weight slabs ------------------------------------------------------------------------ */

void *cuda_weight_alloc(BkBackend *be, size_t n) {
  CudaImpl *impl = cuda_impl(be);
  size_t sz = (n + SLAB_ALIGN - 1) / SLAB_ALIGN * SLAB_ALIGN;
  if (!sz) sz = SLAB_ALIGN;
  for (int i = impl->n_slabs - 1; i >= 0 && i >= impl->n_slabs - 2; i--) {
    WeightSlab *s = &impl->slabs[i];
    if (s->base && s->size - s->used >= sz) {
      void *p = s->base + s->used;
      s->used += sz;
      s->n_live++;
      impl->stats.weight_bytes += sz;
      return p;
    }
  }
  if (impl->n_slabs == impl->cap_slabs) {
    int cap = impl->cap_slabs ? impl->cap_slabs * 2 : 64;
    WeightSlab *t = (WeightSlab *)realloc(impl->slabs, (size_t)cap * sizeof *t);
    if (!t) {
      bk_fail(be, "cuda: out of host memory for the weight slabs");
      return NULL;
    }
    impl->slabs = t;
    impl->cap_slabs = cap;
  }
  size_t slab = sz > SLAB_SIZE ? sz : SLAB_SIZE;
  char *base = (char *)device_malloc(be, slab, "weights", slab == sz);
  if (!base && slab > sz && bk_ok(be)) {  /* the last weights may still fit in an exact slab */
    slab = sz;
    base = (char *)device_malloc(be, slab, "weights", true);
  }
  if (!base) return NULL;
  impl->slabs[impl->n_slabs++] = WeightSlab{base, slab, sz, 1};
  impl->stats.weight_bytes += sz;
  return base;
}

void cuda_weight_release(BkBackend *be, void *p) {
  CudaImpl *impl = cuda_impl(be);
  for (int i = 0; i < impl->n_slabs; i++) {
    WeightSlab *s = &impl->slabs[i];
    if (s->base && (char *)p >= s->base && (char *)p < s->base + s->size) {
      if (--s->n_live == 0) {
        CUDA_OK(be, cudaStreamSynchronize(impl->stream));
        CUDA_OK(be, cudaFree(s->base));
        impl->stats.weight_bytes -= s->used;
        *s = impl->slabs[--impl->n_slabs];
      }
      return;
    }
  }
  bk_fail(be, "cuda weight_free: %p is not a weight of this backend", p);
}
