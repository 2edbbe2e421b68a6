/* kernels/count/count_backend.c — the counting backend (kernels/ops.h, bk_count_new):
 * every op of the table, computing nothing, counting the FLOPs and the bytes a GPU
 * implementation of it moves, so that the real pipeline code can run unchanged on it
 * and `bagel bench --backend count --project h100` can turn the counts into a roofline
 * projection per stage (docs/performance.md, "The GPU projection").
 *
 * Memory: alloc hands out fake, distinct, never dereferenced addresses; downloads write
 * zeros (so the pipeline's host logic runs on zeros: greedy decoding emits token 0 until
 * max_tokens, the image is grey); weights keep the checkpoint pointer untouched.
 *
 * What counts (one BkCountOp per call, given to the hook and added to the totals):
 *   GEMM       2·M·N·K FLOP; bytes = weights + x + y (+ bias); weight_bytes separately
 *   attention  4·Lq·Lk·Hq·D FLOP over the visible keys (a causal block sees the cache
 *              and half of itself on average); bytes = q + o + the keys and values once
 *              (a flash kernel reads each K/V tile once per query tile)
 *   conv       2·Cout·Ho·Wo·Cin·kh·kw FLOP; bytes = x + w + y
 *   norm       ~5 FLOP per element; bytes = x + y (+ weights)
 *   eltwise    1 FLOP per output element; bytes = inputs + outputs
 *   transfer   host <-> device copies (upload/download): bytes only */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct {
  uintptr_t next;          /* the next fake address */
  BkCountHook hook;
  void *user;
  BkCounts totals;
} CountImpl;

static CountImpl *impl_of(BkBackend *be) { return be->impl; }

static void count(BkBackend *be, BkOpClass cls, const char *op, double flops, double bytes,
                  double weight_bytes, int64_t m) {
  CountImpl *c = impl_of(be);
  c->totals.flops[cls] += flops;
  c->totals.bytes[cls] += bytes;
  c->totals.calls[cls]++;
  if (c->hook) {
    BkCountOp o = {.cls = cls, .op = op, .flops = flops, .bytes = bytes,
                   .weight_bytes = weight_bytes, .m = m};
    c->hook(&o, c->user);
  }
}

static double nb(const BkTensor *t) { return t ? (double)bk_nbytes(t) : 0.0; }

/* ---- memory ----------------------------------------------------------------------- */

static void *count_alloc(BkBackend *be, size_t n) {
  CountImpl *c = impl_of(be);
  uintptr_t p = c->next;
  c->next += (n + 4095) & ~(uintptr_t)4095;
  c->next += 4096;   /* a gap: distinct buffers never share an address */
  return (void *)p;
}

static void count_free(BkBackend *be, void *p) { (void)be; (void)p; }

static void count_upload(BkBackend *be, BkTensor *dst, const void *host) {
  (void)host;
  count(be, BK_CLASS_TRANSFER, "upload", 0, nb(dst), 0, 0);
}

static void count_download(BkBackend *be, void *host, const BkTensor *src) {
  memset(host, 0, bk_nbytes(src));
  count(be, BK_CLASS_TRANSFER, "download", 0, nb(src), 0, 0);
}

static void count_copy(BkBackend *be, BkTensor *dst, const BkTensor *src) {
  count(be, BK_CLASS_ELTWISE, "copy", 0, nb(dst) + nb(src), 0, 0);
}

static void count_fill_zero(BkBackend *be, BkTensor *t) {
  count(be, BK_CLASS_ELTWISE, "fill_zero", 0, nb(t), 0, 0);
}

static bool count_weight(BkBackend *be, BkTensor *out, const void *host, BkDType dt, int nd,
                         const int64_t *ne) {
  (void)be;
  *out = bk_tensor((void *)host, dt, nd, ne);
  return true;
}

static void count_weight_free(BkBackend *be, BkTensor *w) {
  (void)be;
  w->data = NULL;
}

static void count_sync(BkBackend *be) { (void)be; }

/* ---- ops -------------------------------------------------------------------------- */

static void count_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                         const BkTensor *b) {
  const double M = (double)bk_rows(x), K = (double)bk_cols(x), N = (double)w->ne[0];
  count(be, BK_CLASS_GEMM, "linear", 2 * M * N * K, nb(w) + nb(x) + nb(y) + nb(b), nb(w),
        bk_rows(x));
}

static void count_rms_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                           float eps) {
  (void)eps;
  count(be, BK_CLASS_NORM, "rms_norm", 5.0 * (double)bk_numel(x), nb(x) + nb(y) + nb(w), 0, 0);
}

static void count_layer_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                             const BkTensor *b, float eps) {
  (void)eps;
  count(be, BK_CLASS_NORM, "layer_norm", 7.0 * (double)bk_numel(x),
        nb(x) + nb(y) + nb(w) + nb(b), 0, 0);
}

static void count_group_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                             const BkTensor *b, int groups, float eps, bool swish) {
  (void)groups;
  (void)eps;
  count(be, BK_CLASS_NORM, "group_norm", (swish ? 9.0 : 5.0) * (double)bk_numel(x),
        nb(x) + nb(y) + nb(w) + nb(b), 0, 0);
}

static void count_rope(BkBackend *be, BkTensor *y, const BkTensor *x, int64_t pos0, int step,
                       float theta) {
  (void)pos0;
  (void)step;
  (void)theta;
  count(be, BK_CLASS_ELTWISE, "rope", 3.0 * (double)bk_numel(x), nb(x) + nb(y), 0, 0);
}

static void eltwise(BkBackend *be, const char *op, const BkTensor *y, const BkTensor *a,
                    const BkTensor *b) {
  count(be, BK_CLASS_ELTWISE, op, (double)bk_numel(y), nb(y) + nb(a) + nb(b), 0, 0);
}

static void count_convert(BkBackend *be, BkTensor *y, const BkTensor *x) {
  eltwise(be, "convert", y, x, NULL);
}

static void count_add(BkBackend *be, BkTensor *y, const BkTensor *a, const BkTensor *b) {
  eltwise(be, "add", y, a, b);
}

static void count_scale_shift(BkBackend *be, BkTensor *y, const BkTensor *x, float s, float t) {
  (void)s;
  (void)t;
  eltwise(be, "scale_shift", y, x, NULL);
}

static void count_silu_mul(BkBackend *be, BkTensor *y, const BkTensor *gate, const BkTensor *up) {
  eltwise(be, "silu_mul", y, gate, up);
}

static void count_gelu_tanh(BkBackend *be, BkTensor *y, const BkTensor *x) {
  eltwise(be, "gelu_tanh", y, x, NULL);
}

static void count_gather_rows(BkBackend *be, BkTensor *y, const BkTensor *table,
                              const int32_t *ids) {
  (void)table;
  (void)ids;
  eltwise(be, "gather_rows", y, y, NULL);
}

static void count_transpose(BkBackend *be, BkTensor *y, const BkTensor *x) {
  eltwise(be, "transpose", y, x, NULL);
}

static void count_upsample2x(BkBackend *be, BkTensor *y, const BkTensor *x) {
  eltwise(be, "upsample2x", y, x, NULL);
}

static void count_latent_pack(BkBackend *be, BkTensor *tokens, const BkTensor *z) {
  eltwise(be, "latent_pack", tokens, z, NULL);
}

static void count_latent_unpack(BkBackend *be, BkTensor *z, const BkTensor *tokens) {
  eltwise(be, "latent_unpack", z, tokens, NULL);
}

static void count_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc,
                            const BkTensor *vc, const BkTensor *kn, const BkTensor *vn,
                            BkCausal causal, float scale) {
  (void)scale;
  const double Lq = (double)q->ne[0], Hq = (double)q->ne[1], D = (double)q->ne[2];
  const double Lc = kc ? (double)kc->ne[0] : 0;
  const double Lk = causal == BK_CAUSAL_BOTTOM_RIGHT ? Lc + (Lq + 1) / 2 : Lc + Lq;
  count(be, BK_CLASS_ATTENTION, "attention", 4.0 * Lq * Lk * Hq * D,
        nb(q) + nb(o) + nb(kc) + nb(vc) + nb(kn) + nb(vn), 0, q->ne[0]);
}

static void count_conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                         const BkTensor *b, int stride, const int pad[4]) {
  (void)stride;
  (void)pad;
  const double per_out = (double)(bk_numel(w) / (w->ne[0] ? w->ne[0] : 1));
  count(be, BK_CLASS_CONV, "conv2d", 2.0 * (double)bk_numel(y) * per_out,
        nb(x) + nb(w) + nb(y) + nb(b), nb(w), y->ne[1] * y->ne[2]);
}

static void count_cfg_euler(BkBackend *be, BkTensor *x, const BkTensor *c, const BkTensor *ut,
                            const BkTensor *ui, const BkCfgStep *p, BkTensor *v_out) {
  (void)p;
  count(be, BK_CLASS_ELTWISE, "cfg_euler", 10.0 * (double)bk_numel(x),
        2 * nb(x) + nb(c) + nb(ut) + nb(ui) + nb(v_out), 0, 0);
}

static void count_destroy(BkBackend *be) {
  free(be->impl);
  free(be);
}

static const BkOps count_ops = {
  .name = "count",
  .destroy = count_destroy,
  .alloc = count_alloc,
  .free = count_free,
  .upload = count_upload,
  .download = count_download,
  .copy = count_copy,
  .fill_zero = count_fill_zero,
  .weight = count_weight,
  .weight_free = count_weight_free,
  .sync = count_sync,
  .linear = count_linear,
  .rms_norm = count_rms_norm,
  .layer_norm = count_layer_norm,
  .rope = count_rope,
  .convert = count_convert,
  .add = count_add,
  .scale_shift = count_scale_shift,
  .silu_mul = count_silu_mul,
  .gelu_tanh = count_gelu_tanh,
  .gather_rows = count_gather_rows,
  .attention = count_attention,
  .conv2d = count_conv2d,
  .group_norm = count_group_norm,
  .upsample2x = count_upsample2x,
  .transpose = count_transpose,
  .latent_pack = count_latent_pack,
  .latent_unpack = count_latent_unpack,
  .cfg_euler = count_cfg_euler,
};

BkBackend *bk_count_new(void) {
  BkBackend *be = calloc(1, sizeof *be);
  CountImpl *c = calloc(1, sizeof *c);
  if (!be || !c) {
    free(be);
    free(c);
    return NULL;
  }
  c->next = (uintptr_t)1 << 44;   /* far from any real mapping; never dereferenced */
  be->ops = &count_ops;
  be->impl = c;
  return be;
}

bool bk_is_count(const BkBackend *be) { return be && be->ops == &count_ops; }

void bk_count_set_hook(BkBackend *be, BkCountHook fn, void *user) {
  if (!bk_is_count(be)) return;
  impl_of(be)->hook = fn;
  impl_of(be)->user = user;
}

void bk_count_totals(BkBackend *be, BkCounts *out) {
  if (bk_is_count(be)) *out = impl_of(be)->totals;
  else memset(out, 0, sizeof *out);
}

const char *bk_op_class_name(BkOpClass c) {
  static const char *names[BK_NCLASSES] = {"gemm", "attention", "conv", "norm", "eltwise",
                                           "transfer"};
  return (unsigned)c < BK_NCLASSES ? names[c] : "?";
}
