/* kernels/cpu/cpu_conv.c — the image ops of the CPU reference backend: conv2d,
 * group_norm, upsample2x (kernels/ops.h), as the FLUX VAE uses them (docs/bagel-spec.md
 * §1.7).  Everything is fp32; batch 1; tensors [C, H, W].
 *
 * conv2d is a GEMM  y[Cout, P] = W[Cout, K] · col[K, P] + b  over the P = Ho·Wo output
 * pixels, K = Cin·kh·kw, with the im2col matrix `col` never materialised: each thread
 * takes a tile of pixels, packs NR-pixel strips of `col` one K-block at a time (plain
 * copies for stride-1 rows inside the image, bounds-checked loads at the borders and
 * for strided convolutions), and runs an MR×NR register-tile micro-kernel against the
 * weights, packed once per call in MR-row panels.  The micro-kernel is plain C on GCC
 * vector types, built three times (AVX-512, AVX2, baseline SSE2/any ISA) with its tile
 * size fitted to the register file; the best one the CPU supports is picked per call.
 *
 * Numerics, on purpose: every output is accumulated in fp32 in one fixed order,
 *     y = (((b + w0·x0) + w1·x1) + …) + w(K-1)·x(K-1),   k = (ci, dy, dx) row-major,
 * with no FMA (-ffp-contract=off) — the same sequence of roundings as the naive loop.
 * K-blocks only split that chain between calls, never reorder it, and threads split
 * pixels, never K; so the result is bit-identical for every ISA variant, block size
 * and thread count (tests/unit/test_ops_conv.c checks this against the naive loop).
 * torch (oneDNN, FMA, another order) differs by the fp32 summation error, ~1e-7
 * relative to Σ|w·x|, far inside the VAE's 1e-4 golden tolerance.
 *
 * group_norm accumulates mean and variance in double (two passes) and normalises each
 * element in double with one rounding to fp32: it is at least as accurate as torch's
 * fp32 Welford kernel, so the two agree to torch's own error (~1e-6 relative to the
 * input scale).  The optional swish is torch's x·sigmoid(x) in fp32.
 *
 * Set BAGEL_CPU_ISA=generic|avx2|avx512 to force a micro-kernel (tests; it is capped to
 * what the CPU supports). */
#include "cpu_internal.h"

#include <stdlib.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static int cpu_threads(const BkBackend *be) {
  const CpuImpl *impl = be->impl;
  return impl && impl->n_threads > 0 ? impl->n_threads : 1;
}

/* ---- the micro-kernels -------------------------------------------------------------
 * c[MR][NR] (row stride ldc) += ap[k][MR] ⊗ bp[k][NR] for k = 0..kb-1, each product
 * added in k order.  The accumulator tile lives in registers (full unrolling). */

#define GEMM_KERNEL(NAME, ATTR, MR_, VW_)                                                 \
  typedef float NAME##_vec __attribute__((vector_size((VW_) * 4)));                       \
  typedef float NAME##_uvec __attribute__((vector_size((VW_) * 4), aligned(4)));          \
  ATTR static void NAME(int kb, const float *restrict ap, const float *restrict bp,      \
                        float *restrict c, int64_t ldc) {                                 \
    NAME##_vec acc[MR_][2];                                                               \
    _Pragma("GCC unroll 16") for (int i = 0; i < (MR_); i++)                             \
      _Pragma("GCC unroll 2") for (int j = 0; j < 2; j++)                                \
        acc[i][j] = *(const NAME##_uvec *)(c + i * ldc + j * (VW_));                      \
    for (int k = 0; k < kb; k++) {                                                        \
      const NAME##_vec b0 = *(const NAME##_vec *)(bp + (int64_t)k * 2 * (VW_));           \
      const NAME##_vec b1 = *(const NAME##_vec *)(bp + (int64_t)k * 2 * (VW_) + (VW_));   \
      const float *a = ap + (int64_t)k * (MR_);                                           \
      _Pragma("GCC unroll 16") for (int i = 0; i < (MR_); i++) {                         \
        acc[i][0] += a[i] * b0;                                                           \
        acc[i][1] += a[i] * b1;                                                           \
      }                                                                                   \
    }                                                                                     \
    _Pragma("GCC unroll 16") for (int i = 0; i < (MR_); i++)                             \
      _Pragma("GCC unroll 2") for (int j = 0; j < 2; j++)                                \
        *(NAME##_uvec *)(c + i * ldc + j * (VW_)) = acc[i][j];                            \
  }

typedef void (*GemmKernel)(int kb, const float *ap, const float *bp, float *c, int64_t ldc);

typedef struct {
  const char *name;
  GemmKernel kernel;
  int mr, nr;     /* register tile: MR weight rows × NR pixels */
  int kb;         /* K-block: an NR×KB strip of col stays in L1 */
} GemmIsa;

/* baseline: 4-float vectors, any target GCC supports (SSE2 on x86-64) */
GEMM_KERNEL(gemm_kernel_generic, , 4, 4)
#if defined(__x86_64__) && defined(__GNUC__)
GEMM_KERNEL(gemm_kernel_avx2, __attribute__((target("avx2"))), 6, 8)
GEMM_KERNEL(gemm_kernel_avx512, __attribute__((target("avx512f"))), 12, 16)
#endif

#define GEMM_MAX_NR 32

#if defined(__x86_64__) && defined(__GNUC__)
/* The fast backend's variant (cpu_conv2d_fma): the same tile and k order with one FMA,
 * one rounding, per product-add — twice the arithmetic rate, ~1e-7 relative from the
 * exact kernel (torch's oneDNN convolutions use FMA too). */
__attribute__((target("avx512f"))) static void gemm_kernel_avx512_fma(
    int kb, const float *restrict ap, const float *restrict bp, float *restrict c, int64_t ldc) {
  __m512 acc[12][2];
  _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) {
    acc[i][0] = _mm512_loadu_ps(c + i * ldc);
    acc[i][1] = _mm512_loadu_ps(c + i * ldc + 16);
  }
  for (int k = 0; k < kb; k++) {
    const __m512 b0 = _mm512_load_ps(bp + (int64_t)k * 32);
    const __m512 b1 = _mm512_load_ps(bp + (int64_t)k * 32 + 16);
    const float *a = ap + (int64_t)k * 12;
    _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) {
      const __m512 av = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) {
    _mm512_storeu_ps(c + i * ldc, acc[i][0]);
    _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
  }
}
#endif

static GemmIsa gemm_isa(bool fma) {
  const GemmIsa generic = {"generic", gemm_kernel_generic, 4, 8, 512};
#if defined(__x86_64__) && defined(__GNUC__)
  const GemmIsa avx2 = {"avx2", gemm_kernel_avx2, 6, 16, 384};
  const GemmIsa avx512 = {"avx512", gemm_kernel_avx512, 12, 32, 256};
  const char *force = getenv("BAGEL_CPU_ISA");
  int cap = 2;
  if (force && !strcmp(force, "generic")) cap = 0;
  else if (force && !strcmp(force, "avx2")) cap = 1;
  __builtin_cpu_init();
  if (cap >= 2 && __builtin_cpu_supports("avx512f")) {
    if (fma) return (GemmIsa){"avx512-fma", gemm_kernel_avx512_fma, 12, 32, 256};
    return avx512;
  }
  if (cap >= 1 && __builtin_cpu_supports("avx2")) return avx2;
#endif
  (void)fma;   /* no FMA variant below AVX-512: the exact kernels */
  return generic;
}

/* ---- conv2d ------------------------------------------------------------------------ */

typedef struct {
  const float *x;
  int64_t cin, h, w;        /* input */
  int64_t kh, kw, stride, pt, pl;
  int64_t ho, wo, k, p;     /* output rows/cols, GEMM K and P */
} ConvGeom;

/* memcpy with the strip widths as constants, so that it is inlined as vector moves */
static inline void copy_run(float *restrict d, const float *restrict s, int n) {
  switch (n) {
  case 32: memcpy(d, s, 32 * sizeof *d); break;
  case 16: memcpy(d, s, 16 * sizeof *d); break;
  case 8: memcpy(d, s, 8 * sizeof *d); break;
  default: memcpy(d, s, (size_t)n * sizeof *d);
  }
}

/* Rows [k0, k0+kb) of col for output pixels [p0, p0+nr) into dst[kk][nr]; pixels past
 * the end are zero.  k = (ci·kh + dy)·kw + dx; col[k, p] = x[ci, oy·s+dy−pt, ox·s+dx−pl]
 * or 0 outside the image. */
static void pack_col_strip(const ConvGeom *g, int64_t k0, int kb, int64_t p0, int nr,
                           float *restrict dst) {
  int n = (int)(g->p - p0 < nr ? g->p - p0 : nr);
  int64_t ry[GEMM_MAX_NR], rx[GEMM_MAX_NR];  /* top-left input tap of each pixel */
  int64_t oy = p0 / g->wo, ox = p0 % g->wo;
  const bool one_row = ox + n <= g->wo;     /* the strip is a run of one output row */
  for (int j = 0; j < n; j++) {
    ry[j] = oy * g->stride - g->pt;
    rx[j] = ox * g->stride - g->pl;
    if (++ox == g->wo) {
      ox = 0;
      oy++;
    }
  }
  int64_t taps = g->kh * g->kw;
  int64_t ci = k0 / taps, dy = (k0 % taps) / g->kw, dx = k0 % g->kw;
  for (int kk = 0; kk < kb; kk++) {
    float *d = dst + (int64_t)kk * nr;
    const float *xc = g->x + ci * g->h * g->w;
    if (one_row && g->stride == 1) {
      int64_t iy = ry[0] + dy, ix0 = rx[0] + dx;
      if (iy < 0 || iy >= g->h) {
        memset(d, 0, (size_t)n * sizeof *d);
      } else if (ix0 >= 0 && ix0 + n <= g->w) {
        copy_run(d, xc + iy * g->w + ix0, n);
      } else {
        for (int j = 0; j < n; j++) {
          int64_t ix = ix0 + j;
          d[j] = ix >= 0 && ix < g->w ? xc[iy * g->w + ix] : 0.0f;
        }
      }
    } else {
      for (int j = 0; j < n; j++) {
        int64_t iy = ry[j] + dy, ix = rx[j] + dx;
        d[j] = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w ? xc[iy * g->w + ix] : 0.0f;
      }
    }
    for (int j = n; j < nr; j++) d[j] = 0.0f;
    if (++dx == g->kw) {
      dx = 0;
      if (++dy == g->kh) {
        dy = 0;
        ci++;
      }
    }
  }
}

/* Panel pi of the weights w[M, K]: rows pi·MR.. as ap[K][MR] (rows past M are zero). */
static void pack_weight_panel(const float *w, int64_t m, int64_t k, int mr, int64_t pi,
                              float *restrict ap) {
  float *dst = ap + pi * k * mr;
  for (int64_t kk = 0; kk < k; kk++)
    for (int i = 0; i < mr; i++) {
      int64_t row = pi * mr + i;
      dst[kk * mr + i] = row < m ? w[row * k + kk] : 0.0f;
    }
}

#define CONV_STRIPS_PER_TILE 4

/* Scratch kept between calls (the fast backend's): the packed weights and each thread's
 * column strips and output tile, grown to the largest call, never shrunk — so a decode
 * after the first touches no new page (without it, each call maps and zeroes ~10 MB). */
struct CpuConvWork {
  int n_threads;
  float *ap, **bp, **ct;
  size_t ap_cap, *bp_cap, *ct_cap;   /* floats */
};

CpuConvWork *cpu_conv_work_new(int n_threads) {
  CpuConvWork *cw = calloc(1, sizeof *cw);
  if (!cw) return NULL;
  cw->n_threads = n_threads > 0 ? n_threads : 1;
  cw->bp = calloc((size_t)cw->n_threads, sizeof *cw->bp);
  cw->ct = calloc((size_t)cw->n_threads, sizeof *cw->ct);
  cw->bp_cap = calloc((size_t)cw->n_threads, sizeof *cw->bp_cap);
  cw->ct_cap = calloc((size_t)cw->n_threads, sizeof *cw->ct_cap);
  if (!cw->bp || !cw->ct || !cw->bp_cap || !cw->ct_cap) {
    cpu_conv_work_free(cw);
    return NULL;
  }
  return cw;
}

void cpu_conv_work_free(CpuConvWork *cw) {
  if (!cw) return;
  for (int t = 0; t < cw->n_threads; t++) {
    if (cw->bp) free(cw->bp[t]);
    if (cw->ct) free(cw->ct[t]);
  }
  free(cw->ap);
  free(cw->bp);
  free(cw->ct);
  free(cw->bp_cap);
  free(cw->ct_cap);
  free(cw);
}

/* *p holding at least n floats, 64-byte aligned (contents not kept) */
static bool grow_floats(float **p, size_t *cap, size_t n) {
  if (*p && *cap >= n) return true;
  free(*p);
  *p = aligned_alloc(64, (n * sizeof **p + 63) / 64 * 64);
  *cap = *p ? n : 0;
  return *p != NULL;
}

static void conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                   const BkTensor *b, int stride, const int pad[4], bool fma, CpuConvWork *cw);

void cpu_conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                const BkTensor *b, int stride, const int pad[4]) {
  conv2d(be, y, x, w, b, stride, pad, false, NULL);
}

void cpu_conv2d_fma(BkBackend *be, CpuConvWork *cw, BkTensor *y, const BkTensor *x,
                    const BkTensor *w, const BkTensor *b, int stride, const int pad[4]) {
  conv2d(be, y, x, w, b, stride, pad, true, cw);
}

static void conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                   const BkTensor *b, int stride, const int pad[4], bool fma, CpuConvWork *cw) {
  if (x->dt != BK_F32 || w->dt != BK_F32 || y->dt != BK_F32 || (b && b->dt != BK_F32)) {
    bk_fail(be, "cpu conv2d: needs F32 tensors (x %s, w %s, y %s)", bk_dtype_name(x->dt),
            bk_dtype_name(w->dt), bk_dtype_name(y->dt));
    return;
  }
  if (x->nd != 3 || w->nd != 4 || y->nd != 3 || stride < 1 || pad[0] < 0 || pad[1] < 0 ||
      pad[2] < 0 || pad[3] < 0) {
    bk_fail(be, "cpu conv2d: bad ranks or parameters (x %dD, w %dD, y %dD, stride %d)", x->nd,
            w->nd, y->nd, stride);
    return;
  }
  ConvGeom g = {.x = x->data, .cin = x->ne[0], .h = x->ne[1], .w = x->ne[2],
                .kh = w->ne[2], .kw = w->ne[3], .stride = stride, .pt = pad[0], .pl = pad[1]};
  int64_t cout = w->ne[0];
  int64_t hp = g.h + pad[0] + pad[2], wp = g.w + pad[1] + pad[3];
  g.ho = hp >= g.kh ? (hp - g.kh) / stride + 1 : 0;
  g.wo = wp >= g.kw ? (wp - g.kw) / stride + 1 : 0;
  if (w->ne[1] != g.cin || y->ne[0] != cout || y->ne[1] != g.ho || y->ne[2] != g.wo ||
      (b && bk_numel(b) != cout) || g.ho <= 0 || g.wo <= 0) {
    bk_fail(be, "cpu conv2d: shapes x[%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] -> y[%lld,%lld,"
            "%lld], expected y[%lld,%lld,%lld]", (long long)g.cin, (long long)g.h,
            (long long)g.w, (long long)w->ne[0], (long long)w->ne[1], (long long)g.kh,
            (long long)g.kw, (long long)y->ne[0], (long long)y->ne[1], (long long)y->ne[2],
            (long long)cout, (long long)g.ho, (long long)g.wo);
    return;
  }
  g.k = g.cin * g.kh * g.kw;
  g.p = g.ho * g.wo;

  const GemmIsa isa = gemm_isa(fma);
  const int nt = cpu_threads(be);
  const int64_t mpad = (cout + isa.mr - 1) / isa.mr * isa.mr;
  const int64_t tile = (int64_t)isa.nr * CONV_STRIPS_PER_TILE;
  const int64_t ntiles = (g.p + tile - 1) / tile;
  const size_t ap_n = (size_t)((mpad * g.k + 15) / 16 * 16);
  const int nt_cw = cw && cw->n_threads < nt ? cw->n_threads : nt;
  bool have = cw != NULL;
  for (int t = 0; have && t < nt_cw; t++)
    have = grow_floats(&cw->bp[t], &cw->bp_cap[t], (size_t)(tile * isa.kb)) &&
           grow_floats(&cw->ct[t], &cw->ct_cap[t], (size_t)(mpad * tile));
  if (have) have = grow_floats(&cw->ap, &cw->ap_cap, ap_n);
  if (!have) cw = NULL;   /* out of memory for the kept scratch: this call's own, below */
  const int nthr = cw ? nt_cw : nt;
  float *ap = cw ? cw->ap : aligned_alloc(64, ap_n * sizeof *ap);
  if (!ap) {
    bk_fail(be, "cpu conv2d: out of memory packing weights [%lld, %lld]", (long long)cout,
            (long long)g.k);
    return;
  }
  const float *bias = b ? b->data : NULL;
  float *yd = y->data;
  bool oom = false;

#pragma omp parallel num_threads(nthr)
  {
#pragma omp for schedule(static)
    for (int64_t pi = 0; pi < mpad / isa.mr; pi++)
      pack_weight_panel(w->data, cout, g.k, isa.mr, pi, ap);
    /* (the loop's barrier: the weights are packed before any tile starts) */

    /* per thread: packed col strips [strip][kk][NR] and the output tile [mpad][tile] */
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    float *bp = cw ? cw->bp[tid] : aligned_alloc(64, (size_t)(tile * isa.kb) * sizeof *bp);
    float *ct = cw ? cw->ct[tid] : aligned_alloc(64, (size_t)(mpad * tile) * sizeof *ct);
    if (!bp || !ct) {
#pragma omp atomic write
      oom = true;
    }
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < ntiles; t++) {
      if (!bp || !ct) continue;
      int64_t p0 = t * tile;
      int64_t np = g.p - p0 < tile ? g.p - p0 : tile;
      int nstrips = (int)((np + isa.nr - 1) / isa.nr);
      for (int64_t m = 0; m < mpad; m++) {
        float v = bias && m < cout ? bias[m] : 0.0f;
        for (int64_t j = 0; j < tile; j++) ct[m * tile + j] = v;
      }
      for (int64_t k0 = 0; k0 < g.k; k0 += isa.kb) {
        int kb = (int)(g.k - k0 < isa.kb ? g.k - k0 : isa.kb);
        for (int s = 0; s < nstrips; s++)
          pack_col_strip(&g, k0, kb, p0 + (int64_t)s * isa.nr, isa.nr,
                         bp + (int64_t)s * kb * isa.nr);
        for (int s = 0; s < nstrips; s++)
          for (int64_t m0 = 0; m0 < mpad; m0 += isa.mr)
            isa.kernel(kb, ap + m0 * g.k + k0 * isa.mr, bp + (int64_t)s * kb * isa.nr,
                       ct + m0 * tile + (int64_t)s * isa.nr, tile);
      }
      for (int64_t m = 0; m < cout; m++)
        memcpy(yd + m * g.p + p0, ct + m * tile, (size_t)np * sizeof *yd);
    }
    if (!cw) {
      free(bp);
      free(ct);
    }
  }
  if (!cw) free(ap);
  if (oom) bk_fail(be, "cpu conv2d: out of memory for the per-thread tiles");
}

/* ---- group_norm -------------------------------------------------------------------- */

void cpu_group_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                    const BkTensor *b, int groups, float eps, bool swish) {
  if (!w || !b) {
    bk_fail(be, "cpu group_norm: the affine weight and bias are required");
    return;
  }
  if (x->dt != BK_F32 || y->dt != BK_F32 || !is_float_dt(w->dt) || !is_float_dt(b->dt)) {
    bk_fail(be, "cpu group_norm: x and y must be F32 (x %s, y %s, w %s, b %s)",
            bk_dtype_name(x->dt), bk_dtype_name(y->dt), bk_dtype_name(w->dt),
            bk_dtype_name(b->dt));
    return;
  }
  int64_t c = x->nd ? x->ne[0] : 0;
  if (x->nd < 1 || !bk_same_shape(x, y) || groups < 1 || c % groups || bk_numel(w) != c ||
      bk_numel(b) != c) {
    bk_fail(be, "cpu group_norm: %lld channels, %d groups, w[%lld], b[%lld], or y's shape "
            "differs from x's", (long long)c, groups, (long long)bk_numel(w),
            (long long)bk_numel(b));
    return;
  }
  const int64_t hw = bk_numel(x) / (c ? c : 1), cpg = c / groups, n = cpg * hw;
  const float *xd = x->data;
  float *yd = y->data;

#pragma omp parallel for num_threads(cpu_threads(be)) schedule(dynamic)
  for (int gi = 0; gi < groups; gi++) {
    const float *xs = xd + gi * n;
    /* Two passes in double; 8 partial sums break the add latency chain (fixed order,
     * so the result does not depend on threads). */
    double part[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; l++) part[l] += xs[i + l];
    for (; i < n; i++) part[0] += xs[i];
    double mean = (((part[0] + part[1]) + (part[2] + part[3])) +
                   ((part[4] + part[5]) + (part[6] + part[7]))) / (double)n;
    for (int l = 0; l < 8; l++) part[l] = 0;
    for (i = 0; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; l++) {
        double d = xs[i + l] - mean;
        part[l] += d * d;
      }
    for (; i < n; i++) {
      double d = xs[i] - mean;
      part[0] += d * d;
    }
    double var = (((part[0] + part[1]) + (part[2] + part[3])) +
                  ((part[4] + part[5]) + (part[6] + part[7]))) / (double)n;
    double rstd = 1.0 / sqrt(var + (double)eps);
    for (int64_t ch = gi * cpg; ch < (gi + 1) * cpg; ch++) {
      const double scale = rstd * ld_f(w, ch), shift = ld_f(b, ch);
      const float *xc = xd + ch * hw;
      float *yc = yd + ch * hw;
      for (int64_t j = 0; j < hw; j++) {
        float v = (float)((xc[j] - mean) * scale + shift);
        if (swish) v = v * (1.0f / (1.0f + expf(-v)));
        yc[j] = v;
      }
    }
  }
}

/* ---- upsample2x -------------------------------------------------------------------- */

void cpu_upsample2x(BkBackend *be, BkTensor *y, const BkTensor *x) {
  if (x->dt != y->dt || x->nd != 3 || y->nd != 3 || y->ne[0] != x->ne[0] ||
      y->ne[1] != 2 * x->ne[1] || y->ne[2] != 2 * x->ne[2] || !is_float_dt(x->dt)) {
    bk_fail(be, "cpu upsample2x: x %s[%lld,%lld,%lld] -> y %s[%lld,%lld,%lld]",
            bk_dtype_name(x->dt), (long long)x->ne[0], (long long)x->ne[1],
            (long long)x->ne[2], bk_dtype_name(y->dt), (long long)y->ne[0],
            (long long)y->ne[1], (long long)y->ne[2]);
    return;
  }
  const int64_t rows = x->ne[0] * x->ne[1], w = x->ne[2];
  const size_t es = bk_dtype_size(x->dt);
  const char *xd = x->data;
  char *yd = y->data;
#pragma omp parallel for num_threads(cpu_threads(be)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const char *src = xd + (size_t)(r * w) * es;
    char *dst = yd + (size_t)(2 * r * 2 * w) * es;
    for (int64_t j = 0; j < w; j++) {
      memcpy(dst + (size_t)(2 * j) * es, src + (size_t)j * es, es);
      memcpy(dst + (size_t)(2 * j + 1) * es, src + (size_t)j * es, es);
    }
    memcpy(dst + (size_t)(2 * w) * es, dst, (size_t)(2 * w) * es);
  }
}
