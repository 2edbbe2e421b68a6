/* kernels/cuda/cuda_backend.cu — the CUDA backend object: creation (device, stream,
 * cuBLASLt), the memory calls of kernels/ops.h (alloc/free through the caching pool,
 * upload/download/copy/fill_zero, weights), and the op table.
 *
 * Weights are uploaded once, in weight(), from the checkpoint's mmap: each tensor is
 * copied in 32 MiB pieces through two pinned staging buffers, so the host's memcpy out of
 * the (page-faulting) mmap overlaps the DMA of the previous piece; an event per buffer
 * says when it may be refilled.  Everything runs on one stream: ops are asynchronous,
 * download() and sync() wait.  Every CUDA and cuBLAS status goes through CUDA_OK /
 * CUBLAS_OK (file:line, the call, the error string); a kernel fault shows at the next
 * synchronisation, as on the GPU. */
#include "cuda_internal.cuh"

#include <stdlib.h>
#include <string.h>

#define STAGE_SIZE ((size_t)32 << 20)
#define LT_WORKSPACE ((size_t)32 << 20)

static void *cu_alloc(BkBackend *be, size_t n) { return cuda_pool_alloc(be, n); }

static void cu_free(BkBackend *be, void *p) { cuda_pool_free(be, p); }

static void cu_upload(BkBackend *be, BkTensor *dst, const void *host) {
  size_t n = bk_nbytes(dst);
  if (!n) return;
  /* pageable source: the runtime stages it before returning, the caller may reuse it */
  CUDA_OK(be, cudaMemcpyAsync(dst->data, host, n, cudaMemcpyHostToDevice, cuda_impl(be)->stream));
}

static void cu_download(BkBackend *be, void *host, const BkTensor *src) {
  size_t n = bk_nbytes(src);
  cudaStream_t st = cuda_impl(be)->stream;
  if (n && !CUDA_OK(be, cudaMemcpyAsync(host, src->data, n, cudaMemcpyDeviceToHost, st))) return;
  CUDA_OK(be, cudaStreamSynchronize(st));
}

static void cu_copy(BkBackend *be, BkTensor *dst, const BkTensor *src) {
  if (dst->dt != src->dt || bk_numel(dst) != bk_numel(src)) {
    bk_fail(be, "cuda copy: %s[%lld] <- %s[%lld]", bk_dtype_name(dst->dt), (long long)bk_numel(dst),
            bk_dtype_name(src->dt), (long long)bk_numel(src));
    return;
  }
  size_t n = bk_nbytes(src);
  if (!n || dst->data == src->data) return;
  cudaStream_t st = cuda_impl(be)->stream;
  const char *d = (const char *)dst->data, *s = (const char *)src->data;
  if (d < s + n && s < d + n) {  /* overlapping (memmove): through a temporary */
    void *tmp = cuda_pool_alloc(be, n);
    if (!tmp) return;
    CUDA_OK(be, cudaMemcpyAsync(tmp, src->data, n, cudaMemcpyDeviceToDevice, st));
    CUDA_OK(be, cudaMemcpyAsync(dst->data, tmp, n, cudaMemcpyDeviceToDevice, st));
    cuda_pool_free(be, tmp);
    return;
  }
  CUDA_OK(be, cudaMemcpyAsync(dst->data, src->data, n, cudaMemcpyDeviceToDevice, st));
}

static void cu_fill_zero(BkBackend *be, BkTensor *t) {
  size_t n = bk_nbytes(t);
  if (n) CUDA_OK(be, cudaMemsetAsync(t->data, 0, n, cuda_impl(be)->stream));
}

static bool stage_init(BkBackend *be) {
  CudaImpl *impl = cuda_impl(be);
  if (impl->stage[0]) return true;
  for (int i = 0; i < 2; i++) {
    if (!CUDA_OK(be, cudaMallocHost(&impl->stage[i], STAGE_SIZE))) return false;
    if (!CUDA_OK(be, cudaEventCreateWithFlags(&impl->stage_ev[i], cudaEventDisableTiming))) return false;
  }
  impl->stage_size = STAGE_SIZE;
  return true;
}

static bool cu_weight(BkBackend *be, BkTensor *out, const void *host, BkDType dt, int nd, const int64_t *ne) {
  CudaImpl *impl = cuda_impl(be);
  *out = bk_tensor(NULL, dt, nd, ne);
  size_t n = bk_nbytes(out);
  if (!bk_ok(be) || !stage_init(be)) return false;
  char *dst = (char *)cuda_weight_alloc(be, n);
  if (!dst) return false;
  for (size_t off = 0; off < n; off += impl->stage_size) {
    size_t len = n - off < impl->stage_size ? n - off : impl->stage_size;
    int k = impl->stage_next;
    impl->stage_next ^= 1;
    /* the previous copy out of this buffer must be done before it is refilled */
    if (!CUDA_OK(be, cudaEventSynchronize(impl->stage_ev[k]))) return false;
    memcpy(impl->stage[k], (const char *)host + off, len);
    if (!CUDA_OK(be, cudaMemcpyAsync(dst + off, impl->stage[k], len, cudaMemcpyHostToDevice, impl->stream)) ||
        !CUDA_OK(be, cudaEventRecord(impl->stage_ev[k], impl->stream)))
      return false;
  }
  out->data = dst;
  return true;
}

static void cu_weight_free(BkBackend *be, BkTensor *w) {
  if (w->data) cuda_weight_release(be, w->data);
  w->data = NULL;
}

static void cu_sync(BkBackend *be) { CUDA_OK(be, cudaStreamSynchronize(cuda_impl(be)->stream)); }

static void cu_destroy(BkBackend *be) {
  CudaImpl *impl = cuda_impl(be);
  if (impl) {
    if (impl->stream) cudaStreamSynchronize(impl->stream);
    cuda_linear_destroy(be);
    cuda_rope_destroy(be);
    if (impl->lt) cublasLtDestroy(impl->lt);
#ifdef BAGEL_CUDA_EMU
    bk_backend_free(impl->ref);
#endif
    for (int i = 0; i < 2; i++) {
      if (impl->stage[i]) cudaFreeHost(impl->stage[i]);
      if (impl->stage_ev[i]) cudaEventDestroy(impl->stage_ev[i]);
    }
    for (int i = 0; i < impl->n_slabs; i++) cudaFree(impl->slabs[i].base);
    free(impl->slabs);
    if (impl->lt_ws) cuda_pool_free(be, impl->lt_ws);
    cuda_pool_destroy(be);
    if (impl->stream) cudaStreamDestroy(impl->stream);
    free(impl);
  }
  free(be);
}

#ifdef BAGEL_CUDA_EMU
/* Emulation only: CUEMU_REFERENCE_OPS=linear,attention (either or both) runs those ops
 * with the CPU reference instead of cuBLASLt / the flash kernel — the emulated device
 * memory is host memory.  With both, the golden suite isolates every other kernel and the
 * engine's device-side plumbing (caches, contexts, CFG, positions), which must then
 * reproduce the golden run bit for bit; the rest of the CUDA backend's distance from it is
 * the two ops' summation orders (tests/golden/meson.build, model-golden-cuda-refops). */
static void emu_ref_init(BkBackend *be) {
  CudaImpl *impl = cuda_impl(be);
  const char *env = getenv("CUEMU_REFERENCE_OPS");
  if (!env || !*env) return;
  impl->ref_linear = strstr(env, "linear") != NULL;
  impl->ref_attention = strstr(env, "attention") != NULL;
  if (!impl->ref_linear && !impl->ref_attention) {
    bk_fail(be, "CUEMU_REFERENCE_OPS=%s: expected linear and/or attention", env);
    return;
  }
  impl->ref = bk_cpu_new(1);
  if (!impl->ref) bk_fail(be, "CUEMU_REFERENCE_OPS: cannot create the CPU reference backend");
}

static bool emu_ref_sync(BkBackend *be) {
  if (!bk_ok(be)) return false;
  return CUDA_OK(be, cudaStreamSynchronize(cuda_impl(be)->stream));
}

static void emu_ref_done(BkBackend *be) {
  BkBackend *ref = cuda_impl(be)->ref;
  if (!bk_ok(ref)) {
    bk_fail(be, "%s", ref->error);
    bk_clear_error(ref);
  }
}

static void op_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b) {
  CudaImpl *impl = cuda_impl(be);
  if (!impl->ref_linear) return cuda_linear(be, y, x, w, b);
  if (!emu_ref_sync(be)) return;
  impl->ref->ops->linear(impl->ref, y, x, w, b);
  emu_ref_done(be);
}

static void op_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                         const BkTensor *kn, const BkTensor *vn, BkCausal causal, float scale) {
  CudaImpl *impl = cuda_impl(be);
  if (!impl->ref_attention) return cuda_attention(be, o, q, kc, vc, kn, vn, causal, scale);
  if (!emu_ref_sync(be)) return;
  impl->ref->ops->attention(impl->ref, o, q, kc, vc, kn, vn, causal, scale);
  emu_ref_done(be);
}
#else
#define op_linear cuda_linear
#define op_attention cuda_attention
#endif

static const BkOps cuda_ops = {
  .name = "cuda",
  .destroy = cu_destroy,
  .alloc = cu_alloc,
  .free = cu_free,
  .upload = cu_upload,
  .download = cu_download,
  .copy = cu_copy,
  .fill_zero = cu_fill_zero,
  .weight = cu_weight,
  .weight_free = cu_weight_free,
  .sync = cu_sync,
  .linear = op_linear,
  .rms_norm = cuda_rms_norm,
  .layer_norm = cuda_layer_norm,
  .rope = cuda_rope,
  .convert = cuda_convert,
  .add = cuda_add,
  .scale_shift = cuda_scale_shift,
  .silu_mul = cuda_silu_mul,
  .gelu_tanh = cuda_gelu_tanh,
  .gather_rows = cuda_gather_rows,
  .attention = op_attention,
  .conv2d = cuda_conv2d,
  .group_norm = cuda_group_norm,
  .upsample2x = cuda_upsample2x,
  .transpose = cuda_transpose,
  .latent_pack = cuda_latent_pack,
  .latent_unpack = cuda_latent_unpack,
  .cfg_euler = cuda_cfg_euler,
};

extern "C" bool bk_cuda_stats(const BkBackend *be, BkCudaStats *out) {
  if (!be || be->ops != &cuda_ops) return false;
  const CudaImpl *impl = (const CudaImpl *)be->impl;
  *out = impl->stats;
  out->live_bytes = impl->pool.live_bytes;
  out->cached_bytes = impl->pool.cached_bytes;
  return true;
}

/* The backend on device 0.  NULL only when the host is out of memory; a device that
 * cannot be used gives a backend whose error (be->error, bk_ok false) says why, so the
 * caller can report it and free it. */
extern "C" BkBackend *bk_cuda_new(void) {
  BkBackend *be = (BkBackend *)calloc(1, sizeof *be);
  CudaImpl *impl = (CudaImpl *)calloc(1, sizeof *impl);
  if (!be || !impl) {
    free(be);
    free(impl);
    return NULL;
  }
  be->ops = &cuda_ops;
  be->impl = impl;
  /* BAGEL_CUDA_NUMERICS: fast (default: cuBLASLt, tensor-core flash attention) or exact
   * (linear and attention with the CPU reference's arithmetic, bit for bit; exact.cu,
   * docs/cuda-backend.md).  Read once, here. */
  const char *numerics = getenv("BAGEL_CUDA_NUMERICS");
  if (numerics && strcmp(numerics, "fast") && strcmp(numerics, "exact")) {
    bk_fail(be, "BAGEL_CUDA_NUMERICS=\"%s\": expected \"fast\" (the default) or \"exact\"", numerics);
    return be;
  }
  impl->exact = numerics && !strcmp(numerics, "exact");
  cudaDeviceProp prop;
  if (!CUDA_OK(be, cudaSetDevice(0)) || !CUDA_OK(be, cudaGetDeviceProperties(&prop, 0))) return be;
  if (prop.major < 8) {
    bk_fail(be, "GPU %s (sm_%d%d) is too old: BAGEL needs bf16 tensor cores (sm_80+)", prop.name, prop.major,
            prop.minor);
    return be;
  }
  impl->sm_count = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  impl->max_blocks = impl->sm_count * 16;
  impl->smem_optin = prop.sharedMemPerBlockOptin;
  if (!CUDA_OK(be, cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking)) ||
      !CUBLAS_OK(be, cublasLtCreate(&impl->lt)))
    return be;
  impl->lt_ws_size = LT_WORKSPACE;
  impl->lt_ws = cuda_pool_alloc(be, impl->lt_ws_size);
  if (!impl->lt_ws) return be;
  cuda_attention_init(be);
#ifdef BAGEL_CUDA_EMU
  emu_ref_init(be);
#endif
  return be;
}
