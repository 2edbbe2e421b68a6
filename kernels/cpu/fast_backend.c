/* kernels/cpu/fast_backend.c — the fast CPU backend (fast_backend.h): the reference
 * backend with a copy of its op table in which linear and attention point to the fast
 * kernels (bit-identical to the reference's) and conv2d to the FMA variant of the
 * reference's convolution (the VAE's, within its tolerance; cpu_conv.c).  The table lives in the backend (no global state); the reference's impl
 * (thread count) is untouched, so every reference op runs as before.
 *
 * The summation order the fast kernels follow must be the reference's: FAST_LINEAR_ORDER
 * and FAST_ATTENTION_ORDER name it, and tests/bench/test_fast_ops.c compares the two
 * backends bit for bit, so a change of the reference's order shows there first. */
#include "fast_backend.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fast_attention.h"
#include "cpu_internal.h"
#include "fast_gemm.h"

#define FAST_LINEAR_ORDER FG_ORDER_PAIRS     /* cpu_linear.c: pairs, the odd term first */
#define FAST_ATTENTION_ORDER FA_ORDER_SDPA   /* cpu_attention.c: torch's math SDPA */

typedef struct {
  BkOps ops;               /* first: be->ops points here */
  const BkOps *ref;
  FgWork *gemm;
  FgKernel kernel;
  FaWork *attn;
  uint16_t *xb;            /* x rounded to bf16 (fp32 inputs) */
  float *bias;
  size_t xb_cap, bias_cap;
  double linear_s, attention_s;   /* wall time inside the two ops (bench breakdowns) */
} FastTable;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FastTable *table(BkBackend *be) { return (FastTable *)(void *)be->ops; }

static bool grow(void **p, size_t *cap, size_t n) {
  if (n <= *cap && *p) return true;
  free(*p);
  *p = malloc(n ? n : 1);
  *cap = *p ? n : 0;
  return *p != NULL;
}

static void linear_op(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                      const BkTensor *b);

static void fast_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                        const BkTensor *b) {
  const double t0 = now_s();
  linear_op(be, y, x, w, b);
  table(be)->linear_s += now_s() - t0;
}

static void linear_op(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                      const BkTensor *b) {
  FastTable *ft = table(be);
  const int64_t K = bk_cols(x), M = bk_rows(x);
  const bool ok_types = w->dt == BK_BF16 && w->nd == 2 && w->ne[1] == K &&
                        (x->dt == BK_BF16 || x->dt == BK_F32) &&
                        (y->dt == BK_BF16 || y->dt == BK_F32) && bk_rows(y) == M &&
                        bk_cols(y) == w->ne[0] &&
                        (!b || ((b->dt == BK_BF16 || b->dt == BK_F32) && bk_numel(b) == w->ne[0]));
  if (ft->kernel == FG_KERNEL_NONE || !ok_types) {
    ft->ref->linear(be, y, x, w, b);
    return;
  }
  const int64_t N = w->ne[0];
  const uint16_t *xb = x->data;
  if (x->dt == BK_F32) {   /* autocast: x rounded to bf16 */
    if (!grow((void **)&ft->xb, &ft->xb_cap, (size_t)(M * K) * 2)) goto fallback;
    const float *xf = x->data;
    for (int64_t i = 0; i < M * K; i++) ft->xb[i] = bk_f32_to_bf16(xf[i]);
    xb = ft->xb;
  }
  const float *bias = NULL;
  if (b) {
    if (!grow((void **)&ft->bias, &ft->bias_cap, (size_t)N * 4)) goto fallback;
    for (int64_t n = 0; n < N; n++)
      ft->bias[n] = b->dt == BK_F32 ? ((const float *)b->data)[n]
                                    : bk_bf16_to_f32(((const uint16_t *)b->data)[n]);
    bias = ft->bias;
  }
  FgGemm g = {.M = M, .N = N, .K = K, .x = xb, .ldx = K, .w = w->data, .ldw = K,
              .bias = bias, .y = y->data, .ldy = N, .y_bf16 = y->dt == BK_BF16};
  if (fg_gemm(ft->gemm, &g, FAST_LINEAR_ORDER, ft->kernel)) return;
fallback:
  ft->ref->linear(be, y, x, w, b);
}

static void fast_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc,
                           const BkTensor *vc, const BkTensor *kn, const BkTensor *vn,
                           BkCausal causal, float scale) {
  FastTable *ft = table(be);
  /* the reference checks the shapes (and reports a failure); only well-formed calls
   * reach the fast kernel */
  const bool shapes_ok = q->nd == 3 && kn->nd == 3 && vn->nd == 3 && kn->ne[1] &&
                         q->ne[1] % kn->ne[1] == 0 && bk_same_shape(kn, vn) &&
                         kn->ne[0] == q->ne[0] && kn->ne[2] == q->ne[2] && bk_same_shape(o, q) &&
                         (!kc || (vc && kc->nd == 3 && bk_same_shape(kc, vc) &&
                                  kc->ne[1] == kn->ne[1] && kc->ne[2] == q->ne[2]));
  const double t0 = now_s();
  if (!shapes_ok ||
      !fa_attention(ft->attn, FAST_ATTENTION_ORDER, o, q, kc, vc, kn, vn, causal, scale))
    ft->ref->attention(be, o, q, kc, vc, kn, vn, causal, scale);
  ft->attention_s += now_s() - t0;
}

static void fast_destroy(BkBackend *be) {
  FastTable *ft = table(be);
  be->ops = ft->ref;
  fg_work_free(ft->gemm);
  fa_work_free(ft->attn);
  free(ft->xb);
  free(ft->bias);
  free(ft);
  be->ops->destroy(be);
}

BkBackend *bk_cpu_fast_new(int n_threads) {
#ifdef _OPENMP
  if (n_threads <= 0) n_threads = omp_get_max_threads();
#else
  if (n_threads <= 0) n_threads = 1;
#endif
  BkBackend *be = bk_cpu_new(n_threads);
  FastTable *ft = calloc(1, sizeof *ft);
  if (!be || !ft) goto fail;
  ft->ref = be->ops;
  ft->ops = *be->ops;
  ft->ops.name = "cpu-fast";
  ft->ops.destroy = fast_destroy;
  ft->ops.linear = fast_linear;
  ft->ops.attention = fast_attention;
  /* the VAE: FMA, within its 1e-4 golden tolerance; BAGEL_CPU_CONV=exact keeps the
   * reference's mul+add kernel (A/B benches) */
  const char *conv = getenv("BAGEL_CPU_CONV");
  if (!conv || strcmp(conv, "exact")) ft->ops.conv2d = cpu_conv2d_fma;
  ft->kernel = fg_pick(FAST_LINEAR_ORDER);
  ft->gemm = fg_work_new(n_threads);
  ft->attn = fa_work_new(n_threads);
  if (!ft->gemm || !ft->attn) goto fail;
  be->ops = &ft->ops;
  return be;
fail:
  if (ft) {
    fg_work_free(ft->gemm);
    fa_work_free(ft->attn);
    free(ft);
  }
  bk_backend_free(be);
  return NULL;
}

const char *bk_cpu_fast_gemm_kernel(const BkBackend *be) {
  if (!be || be->ops->destroy != fast_destroy) return "ref";
  return fg_kernel_name(((const FastTable *)(const void *)be->ops)->kernel);
}

void bk_cpu_fast_timers(const BkBackend *be, double *linear_s, double *attention_s) {
  *linear_s = *attention_s = 0;
  if (!be || be->ops->destroy != fast_destroy) return;
  const FastTable *ft = (const FastTable *)(const void *)be->ops;
  *linear_s = ft->linear_s;
  *attention_s = ft->attention_s;
}
