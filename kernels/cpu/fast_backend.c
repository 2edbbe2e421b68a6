/* kernels/cpu/fast_backend.c — the fast CPU backend (fast_backend.h): the reference
 * backend with a copy of its op table in which linear and attention point to the fast
 * kernels and silu_mul and group_norm to vector versions of the reference's arithmetic
 * (all bit-identical to the reference's), and conv2d to the FMA variant of the
 * reference's convolution (the VAE's, within its tolerance; cpu_conv.c).  The table
 * lives in the backend (no global state); the reference's impl (thread count) is
 * untouched, so every reference op runs as before.
 *
 * The summation order the fast kernels follow must be the reference's: FAST_LINEAR_ORDER
 * and FAST_ATTENTION_ORDER name it, and tests/bench/test_fast_ops.c compares the two
 * backends bit for bit, so a change of the reference's order shows there first. */
#include "fast_backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fast_attention.h"
#include "cpu_expf16.h"
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
  CpuConvWork *conv;       /* conv2d's scratch, kept between calls */
  bool vec_eltwise;        /* AVX-512 F/BW/VL: silu_mul and group_norm vectorised */
  int n_threads;
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

#if defined(__x86_64__) && defined(__GNUC__)
/* bf16 rounding as bk_f32_to_bf16 (nearest-even; a NaN stays a quiet NaN), 16 lanes */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m256i round16_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                  _mm512_and_si512(_mm512_srli_epi32(u, 16),
                                                                   _mm512_set1_epi32(1))));
  r = _mm512_srli_epi32(r, 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512 widen16_bf16(const uint16_t *p,
                                                                          __mmask16 k) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(
      _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}

/* silu_mul on bf16 tensors: the reference's arithmetic (cpu_eltwise.c) on 16 lanes —
 * a = g / (1 + expf(−g)) with cpu_expf16, rounded to bf16, times up, rounded to bf16. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void silu16(uint16_t *y, const uint16_t *g,
                                                                      const uint16_t *up, int64_t i,
                                                                      int64_t n) {
  const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
  const __m512 gv = widen16_bf16(g + i, k);
  const __m512 ng = _mm512_castsi512_ps(
      _mm512_xor_si512(_mm512_castps_si512(gv), _mm512_set1_epi32((int)0x80000000u)));
  __m512 a = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), cpu_expf16(ng)));
  if (up) {
    const __m512 ar = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(round16_bf16(a)), 16));
    a = _mm512_mul_ps(ar, widen16_bf16(up + i, k));
  }
  _mm256_mask_storeu_epi16(y + i, k, round16_bf16(a));
}

/* (the OpenMP loop in a function of its own: the outlined region does not inherit a
 * target attribute, so no vector value may cross into it) */
static void silu_mul_bf16(uint16_t *y, const uint16_t *g, const uint16_t *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i += 16) silu16(y, g, up, i, n);
}

/* group_norm (the VAE's) with the reference's arithmetic (cpu_conv.c) on 8 double
 * lanes: the 8 partial sums of the mean and of the squared deviations are the
 * reference's part[0..7] (lane l takes elements i ≡ l mod 8), combined in its order;
 * each output (x − mean)·scale + shift in double, rounded once to float; the swish
 * with the C library's expf, as the reference. */
__attribute__((target("avx512f"))) static double group_stats(const float *xs, int64_t n,
                                                            double *var_out) {
  __m512d acc = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_loadu_ps(xs + i)));
  double part[8];
  _mm512_storeu_pd(part, acc);
  for (; i < n; i++) part[0] += xs[i];
  const double mean = (((part[0] + part[1]) + (part[2] + part[3])) +
                       ((part[4] + part[5]) + (part[6] + part[7]))) / (double)n;
  const __m512d m = _mm512_set1_pd(mean);
  acc = _mm512_setzero_pd();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xs + i)), m);
    acc = _mm512_add_pd(acc, _mm512_mul_pd(d, d));
  }
  _mm512_storeu_pd(part, acc);
  for (; i < n; i++) {
    const double d = xs[i] - mean;
    part[0] += d * d;
  }
  *var_out = (((part[0] + part[1]) + (part[2] + part[3])) +
              ((part[4] + part[5]) + (part[6] + part[7]))) / (double)n;
  return mean;
}

__attribute__((target("avx512f"))) static void group_apply(const float *xc, float *yc, int64_t hw,
                                                           double mean, double scale,
                                                           double shift, bool swish) {
  const __m512d m = _mm512_set1_pd(mean), sc = _mm512_set1_pd(scale), sh = _mm512_set1_pd(shift);
  int64_t j = 0;
  for (; j + 8 <= hw; j += 8) {
    const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xc + j)), m);
    _mm256_storeu_ps(yc + j, _mm512_cvtpd_ps(_mm512_add_pd(_mm512_mul_pd(d, sc), sh)));
  }
  for (; j < hw; j++) yc[j] = (float)((xc[j] - mean) * scale + shift);
  if (swish)
    for (j = 0; j < hw; j++) {
      const float v = yc[j];
      yc[j] = v * (1.0f / (1.0f + expf(-v)));
    }
}
#endif

static void fast_group_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                            const BkTensor *b, int groups, float eps, bool swish) {
  FastTable *ft = table(be);
#if defined(__x86_64__) && defined(__GNUC__)
  const int64_t c = x->nd ? x->ne[0] : 0;
  if (!ft->vec_eltwise || !w || !b || x->dt != BK_F32 || y->dt != BK_F32 ||
      (w->dt != BK_F32 && w->dt != BK_BF16) || (b->dt != BK_F32 && b->dt != BK_BF16) ||
      x->nd < 1 || !bk_same_shape(x, y) || groups < 1 || c % groups || bk_numel(w) != c ||
      bk_numel(b) != c) {
    ft->ref->group_norm(be, y, x, w, b, groups, eps, swish);   /* it reports the errors */
    return;
  }
  const int64_t hw = bk_numel(x) / c, cpg = c / groups, n = cpg * hw;
  const float *xd = x->data;
  float *yd = y->data;
#pragma omp parallel for num_threads(ft->n_threads) schedule(dynamic)
  for (int gi = 0; gi < groups; gi++) {
    double var;
    const double mean = group_stats(xd + gi * n, n, &var);
    const double rstd = 1.0 / sqrt(var + (double)eps);
    for (int64_t ch = gi * cpg; ch < (gi + 1) * cpg; ch++) {
      const double wc = w->dt == BK_F32 ? ((const float *)w->data)[ch]
                                        : bk_bf16_to_f32(((const uint16_t *)w->data)[ch]);
      const double bc = b->dt == BK_F32 ? ((const float *)b->data)[ch]
                                        : bk_bf16_to_f32(((const uint16_t *)b->data)[ch]);
      group_apply(xd + ch * hw, yd + ch * hw, hw, mean, rstd * wc, bc, swish);
    }
  }
#else
  ft->ref->group_norm(be, y, x, w, b, groups, eps, swish);
#endif
}

static void fast_silu_mul(BkBackend *be, BkTensor *y, const BkTensor *gate, const BkTensor *up) {
  FastTable *ft = table(be);
#if defined(__x86_64__) && defined(__GNUC__)
  const int64_t n = bk_numel(gate);
  if (ft->vec_eltwise && y->dt == BK_BF16 && gate->dt == BK_BF16 && bk_numel(y) == n &&
      (!up || (up->dt == BK_BF16 && bk_numel(up) == n))) {
    silu_mul_bf16(y->data, gate->data, up ? up->data : NULL, n);
    return;
  }
#endif
  ft->ref->silu_mul(be, y, gate, up);
}

static void fast_conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                        const BkTensor *b, int stride, const int pad[4]) {
  cpu_conv2d_fma(be, table(be)->conv, y, x, w, b, stride, pad);
}

static void fast_destroy(BkBackend *be) {
  FastTable *ft = table(be);
  cpu_conv_work_free(ft->conv);
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
  ft->ops.silu_mul = fast_silu_mul;
  ft->ops.group_norm = fast_group_norm;
  ft->n_threads = n_threads;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  ft->vec_eltwise = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl");
#endif
  /* the VAE: FMA, within its 1e-4 golden tolerance; BAGEL_CPU_CONV=exact keeps the
   * reference's mul+add kernel (A/B benches) */
  const char *conv = getenv("BAGEL_CPU_CONV");
  if (!conv || strcmp(conv, "exact")) ft->ops.conv2d = fast_conv2d;
  ft->conv = cpu_conv_work_new(n_threads);
  ft->kernel = fg_pick(FAST_LINEAR_ORDER);
  ft->gemm = fg_work_new(n_threads);
  ft->attn = fa_work_new(n_threads);
  if (!ft->gemm || !ft->attn || !ft->conv) goto fail;
  be->ops = &ft->ops;
  return be;
fail:
  if (ft) {
    fg_work_free(ft->gemm);
    fa_work_free(ft->attn);
    cpu_conv_work_free(ft->conv);
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
