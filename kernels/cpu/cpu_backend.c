/* kernels/cpu/cpu_backend.c — the CPU reference backend: memory, weights, op table.
 * Host memory is backend memory; checkpoint weights are used in place (no copy). */
#include "cpu_internal.h"

#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void *cpu_alloc(BkBackend *be, size_t n) {
  /* 64-byte aligned for vector loads; size rounded up as aligned_alloc requires. */
  size_t sz = (n + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, sz ? sz : 64);
  if (!p) bk_fail(be, "cpu: out of memory allocating %zu bytes", n);
  return p;
}

static void cpu_free(BkBackend *be, void *p) { (void)be; free(p); }

static void cpu_upload(BkBackend *be, BkTensor *dst, const void *host) {
  (void)be;
  memcpy(dst->data, host, bk_nbytes(dst));
}

static void cpu_download(BkBackend *be, void *host, const BkTensor *src) {
  (void)be;
  memcpy(host, src->data, bk_nbytes(src));
}

static void cpu_copy(BkBackend *be, BkTensor *dst, const BkTensor *src) {
  if (dst->dt != src->dt || bk_numel(dst) != bk_numel(src)) {
    bk_fail(be, "cpu copy: %s[%lld] <- %s[%lld]", bk_dtype_name(dst->dt),
            (long long)bk_numel(dst), bk_dtype_name(src->dt), (long long)bk_numel(src));
    return;
  }
  memmove(dst->data, src->data, bk_nbytes(src));
}

static void cpu_fill_zero(BkBackend *be, BkTensor *t) {
  (void)be;
  memset(t->data, 0, bk_nbytes(t));
}

static bool cpu_weight(BkBackend *be, BkTensor *out, const void *host, BkDType dt, int nd,
                       const int64_t *ne) {
  (void)be;
  *out = bk_tensor((void *)host, dt, nd, ne);
  return true;
}

static void cpu_weight_free(BkBackend *be, BkTensor *w) {
  (void)be;
  w->data = NULL;
}

static void cpu_sync(BkBackend *be) { (void)be; }

void cpu_load_row(const BkTensor *t, int64_t r, int64_t n, float *dst) {
  int64_t base = r * n;
  switch (t->dt) {
  case BK_F32:
    memcpy(dst, (const float *)t->data + base, (size_t)n * sizeof(float));
    break;
  case BK_BF16: {
    const uint16_t *s = (const uint16_t *)t->data + base;
    for (int64_t i = 0; i < n; i++) dst[i] = bk_bf16_to_f32(s[i]);
    break;
  }
  default:
    for (int64_t i = 0; i < n; i++) dst[i] = ld_f(t, base + i);
  }
}

static void cpu_destroy(BkBackend *be) {
  free(be->impl);
  free(be);
}

static const BkOps cpu_ops = {
  .name = "cpu",
  .destroy = cpu_destroy,
  .alloc = cpu_alloc,
  .free = cpu_free,
  .upload = cpu_upload,
  .download = cpu_download,
  .copy = cpu_copy,
  .fill_zero = cpu_fill_zero,
  .weight = cpu_weight,
  .weight_free = cpu_weight_free,
  .sync = cpu_sync,
  .linear = cpu_linear,
  .rms_norm = cpu_rms_norm,
  .layer_norm = cpu_layer_norm,
  .rope = cpu_rope,
  .convert = cpu_convert,
  .add = cpu_add,
  .scale_shift = cpu_scale_shift,
  .silu_mul = cpu_silu_mul,
  .gelu_tanh = cpu_gelu_tanh,
  .gather_rows = cpu_gather_rows,
  .attention = cpu_attention,
  .conv2d = cpu_conv2d,
  .group_norm = cpu_group_norm,
  .upsample2x = cpu_upsample2x,
  .transpose = cpu_transpose,
  .latent_pack = cpu_latent_pack,
  .latent_unpack = cpu_latent_unpack,
  .cfg_euler = cpu_cfg_euler,
};

BkBackend *bk_cpu_new(int n_threads) {
  BkBackend *be = calloc(1, sizeof *be);
  CpuImpl *impl = calloc(1, sizeof *impl);
  if (!be || !impl) {
    free(be);
    free(impl);
    return NULL;
  }
#ifdef _OPENMP
  if (n_threads <= 0) n_threads = omp_get_max_threads();
#else
  if (n_threads <= 0) n_threads = 1;
#endif
  impl->n_threads = n_threads;
  be->ops = &cpu_ops;
  be->impl = impl;
  return be;
}
