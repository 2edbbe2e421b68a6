/* kernels/cuda/rope.cu — rotary position embedding ("rotate half") on x[L, H, D], both
 * precision recipes of docs/bagel-spec.md §13:
 *   x bf16 (und rows):  y = bf16( bf16(x·cos) + bf16(rot(x)·sin) )   op by op in bf16
 *   x fp32 (gen rows):  y = x·cos + rot(x)·sin in fp32, the bf16 cos/sin values
 * with rot(x)_d = −x_{d+D/2} for d < D/2, x_{d−D/2} otherwise.
 *
 * The cos/sin tables are computed on the host, with the reference's exact formula
 * (inv_freq_k = 1/θ^(2k/D) in fp32, angle fp32(pos·inv_freq), cosf/sinf rounded to
 * bf16) and the host's libm, then uploaded: the device's cosf/powf differ from glibc's by
 * an ulp now and then, and a flipped bf16 rounding of a table entry would move every
 * query and key at that position.  The table covers positions 0..npos−1 and grows by
 * doubling (a synchronous upload, rare: the positions of a job only grow) — never inside
 * a denoising loop, whose image blocks share one position.
 *
 * One thread per (token, head, pair d / d+D/2): it reads both halves before writing, so
 * y may alias x. */
#include "cuda_internal.cuh"

#include <stdlib.h>

#define ROPE_THREADS 256

__global__ void rope_kernel(void *y, const void *x, int dt, const uint32_t *table, int64_t L, int64_t H, int half,
                            int64_t pos0, int pos_step) {
  const int64_t total = L * H * half;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int k = (int)(idx % half);
    const int64_t row = idx / half, i = row / H;
    const int64_t pos = pos0 + i * pos_step;
    const uint32_t cs = table[pos * half + k];  /* cos in the low half, sin in the high */
    const float c = __uint_as_float(cs << 16), s = __uint_as_float(cs & 0xffff0000u);
    const int64_t base = row * 2 * half;
    const float x1 = ld_any(x, dt, base + k), x2 = ld_any(x, dt, base + k + half);
    float o1, o2;
    if (dt == BK_F32) {
      o1 = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(-x2, s));
      o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
    } else {  /* q·cos + rotate_half(q)·sin, each step rounded */
      o1 = __fadd_rn(round_to(dt, __fmul_rn(x1, c)), round_to(dt, __fmul_rn(-x2, s)));
      o2 = __fadd_rn(round_to(dt, __fmul_rn(x2, c)), round_to(dt, __fmul_rn(x1, s)));
    }
    st_any(y, dt, base + k, o1);
    st_any(y, dt, base + k + half, o2);
  }
}

/* The table of (theta, D) covering positions < need; NULL after bk_fail. */
static const uint32_t *rope_table(BkBackend *be, float theta, int D, int64_t need) {
  CudaImpl *impl = cuda_impl(be);
  RopeTable *t = NULL;
  for (int i = 0; i < 2; i++)
    if (impl->rope[i].table && impl->rope[i].theta == theta && impl->rope[i].dim == D) t = &impl->rope[i];
  if (t && t->npos >= need) return (const uint32_t *)t->table;
  if (!t) {  /* a new (theta, D): replace the second slot */
    t = !impl->rope[0].table ? &impl->rope[0] : &impl->rope[1];
    cuda_pool_free(be, t->table);
    t->table = NULL;
    t->npos = 0;
  }
  const int half = D / 2;
  int64_t npos = t->npos * 2 > need ? t->npos * 2 : need;
  if (npos < 4096) npos = 4096;
  uint32_t *host = (uint32_t *)malloc((size_t)npos * half * sizeof *host);
  float *inv = (float *)malloc((size_t)half * sizeof *inv);
  if (!host || !inv) {
    free(host);
    free(inv);
    bk_fail(be, "cuda rope: out of host memory for a table of %lld positions", (long long)npos);
    return NULL;
  }
  for (int k = 0; k < half; k++) {
    float expo = (float)(2 * k) / (float)D;
    inv[k] = 1.0f / powf(theta, expo);
  }
  for (int64_t p = 0; p < npos; p++)
    for (int k = 0; k < half; k++) {
      float ang = (float)p * inv[k];
      host[p * half + k] = (uint32_t)bk_f32_to_bf16(cosf(ang)) | (uint32_t)bk_f32_to_bf16(sinf(ang)) << 16;
    }
  free(inv);
  void *dev = cuda_pool_alloc(be, (size_t)npos * half * sizeof *host);
  bool ok = dev && CUDA_OK(be, cudaMemcpyAsync(dev, host, (size_t)npos * half * sizeof *host,
                                               cudaMemcpyHostToDevice, impl->stream));
  free(host);
  if (!ok) {
    cuda_pool_free(be, dev);
    return NULL;
  }
  cuda_pool_free(be, t->table);  /* stream order: earlier kernels still see the old one */
  t->table = (uint16_t *)dev;
  t->npos = npos;
  t->theta = theta;
  t->dim = D;
  return (const uint32_t *)dev;
}

extern "C" void cuda_rope_destroy(BkBackend *be) {
  CudaImpl *impl = cuda_impl(be);
  for (int i = 0; i < 2; i++) {
    cuda_pool_free(be, impl->rope[i].table);
    impl->rope[i].table = NULL;
  }
}

extern "C" void cuda_rope(BkBackend *be, BkTensor *y, const BkTensor *x, int64_t pos0, int pos_step, float theta) {
  CudaImpl *impl = cuda_impl(be);
  if (x->nd != 3 || !bk_same_shape(y, x) || y->dt != x->dt || x->ne[2] % 2 || !cuda_float_dt(x->dt)) {
    bk_fail(be, "cuda rope: needs x[L,H,D] with even D and y of the same shape and dtype");
    return;
  }
  const int64_t L = x->ne[0], H = x->ne[1];
  const int D = (int)x->ne[2], half = D / 2;
  if (!L || !H || !D) return;
  const int64_t last = pos0 + (L - 1) * (int64_t)pos_step;
  if (pos0 < 0 || last < 0) {
    bk_fail(be, "cuda rope: negative position (%lld, step %d)", (long long)pos0, pos_step);
    return;
  }
  const int64_t need = (last > pos0 ? last : pos0) + 1;
  const uint32_t *table = rope_table(be, theta, D, need);
  if (!table) return;
  CUDA_OK(be, LAUNCH(rope_kernel, dim3(cuda_grid(impl, L * H * half, ROPE_THREADS)), dim3(ROPE_THREADS), 0,
                     impl->stream, y->data, x->data, (int)x->dt, table, L, H, half, pos0, pos_step));
}
