/* kernels/cpu/fast_gemm.c — the fast bf16 GEMM (fast_gemm.h): GotoBLAS-style blocking
 * with on-the-fly transposed weight panels and an outer-product micro-kernel whose
 * lanes are outputs, so each output keeps the reference's summation order.
 *
 * Blocking: a task owns an NC-column block of w and a range of x rows.  For every
 * KC-deep slice of k it packs the block's NR=32-column micro-panels (16×16 dword
 * transposes of the bf16 rows: one dword = one k-pair of one output column), then runs
 * the MR×32 micro-kernel over its rows.  Partial sums live in a per-task fp32 tile
 * between k-slices (stored and reloaded exactly, never re-associated); the bias and the
 * rounding to y's dtype come after the last slice.  x is copied once per call into a
 * scratch with an even, zero-padded row length, so a k-pair never reads past a row.
 * Decode (M = 1) streams each weight once: the tasks split N, and a 1-row kernel keeps
 * 16 accumulators (8 micro-panels) in flight to hide VDPBF16PS/FMA latency. */
#include "fast_gemm.h"

#include "ops.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define FG_X86 1
#endif

#define FG_NR 32          /* micro-panel width: two 16-lane vectors */
#define FG_NC 256         /* columns per task block (8 micro-panels) */
#define FG_KC 256         /* k per slice (even) */
#define FG_MR 12          /* rows per micro-kernel call */
#define FG_NP (FG_NC / FG_NR)

struct FgWork {
  int n_threads;
  /* per thread: packed panels (FG_KC × FG_NC, as fp32 for the FMA kernel) and the tile */
  void **panel;
  float **tile;
  size_t *tile_cap;
  /* x copied as bf16 [M, ldx2] and, for the FMA kernel, as fp32 */
  uint16_t *xb;
  float *xf;
  size_t xb_cap, xf_cap;
};

FgWork *fg_work_new(int n_threads) {
  FgWork *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->n_threads = n_threads > 0 ? n_threads : 1;
  w->panel = calloc((size_t)w->n_threads, sizeof *w->panel);
  w->tile = calloc((size_t)w->n_threads, sizeof *w->tile);
  w->tile_cap = calloc((size_t)w->n_threads, sizeof *w->tile_cap);
  if (!w->panel || !w->tile || !w->tile_cap) {
    fg_work_free(w);
    return NULL;
  }
  return w;
}

void fg_work_free(FgWork *w) {
  if (!w) return;
  for (int t = 0; w->panel && t < w->n_threads; t++) free(w->panel[t]);
  for (int t = 0; w->tile && t < w->n_threads; t++) free(w->tile[t]);
  free(w->panel);
  free(w->tile);
  free(w->tile_cap);
  free(w->xb);
  free(w->xf);
  free(w);
}

/* Grow *p to hold n bytes (64-byte aligned); contents are not kept. */
static bool grow(void **p, size_t *cap, size_t n) {
  if (n <= *cap && *p) return true;
  free(*p);
  n = (n + 4095) & ~(size_t)4095;
  *p = aligned_alloc(64, n);
  *cap = *p ? n : 0;
  return *p != NULL;
}

const char *fg_kernel_name(FgKernel k) {
  switch (k) {
  case FG_KERNEL_FMA: return "fma";
  case FG_KERNEL_DPBF16: return "dpbf16";
  default: return "ref";
  }
}

#ifdef FG_X86
static bool cpu_has_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}
static bool cpu_has_bf16(void) {
  unsigned a, b, c, d;
  return cpu_has_avx512() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}
#endif

bool fg_kernel_supported(FgKernel k, FgOrder order) {
#ifdef FG_X86
  if (k == FG_KERNEL_FMA) return cpu_has_avx512();
  if (k == FG_KERNEL_DPBF16) return order == FG_ORDER_PAIRS && cpu_has_bf16();
#endif
  (void)order;
  return false;
}

static FgKernel calibrate(FgOrder order);

FgKernel fg_pick(FgOrder order) {
  const char *env = getenv("BAGEL_CPU_GEMM");
  if (env && !strcmp(env, "ref")) return FG_KERNEL_NONE;
  if (env && !strcmp(env, "fma") && fg_kernel_supported(FG_KERNEL_FMA, order))
    return FG_KERNEL_FMA;
  if (env && !strcmp(env, "dpbf16") && fg_kernel_supported(FG_KERNEL_DPBF16, order))
    return FG_KERNEL_DPBF16;
  /* Both kernels give the same bits; which is faster depends on the CPU (VDPBF16PS does
   * twice an FMA's work per instruction, but some CPUs issue it at a quarter of the FMA
   * rate): time them on a cached tile. */
  if (fg_kernel_supported(FG_KERNEL_DPBF16, order)) return calibrate(order);
  if (fg_kernel_supported(FG_KERNEL_FMA, order)) return FG_KERNEL_FMA;
  return FG_KERNEL_NONE;
}

#ifdef FG_X86
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512bf16")))

/* ---- packing: 16 rows × 32 bf16 (16 k-pairs) -> 16 vectors, one per k-pair ---------- */

/* v[r] = 16 dwords of row r; on return v[c] = dword c of every row (lane r). */
AVX512 static __attribute__((always_inline)) inline void transpose16(__m512i v[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    v[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    v[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    v[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    v[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  /* v[4i+j] 128-bit lane L = column 4L+j of rows 4i..4i+3 */
  for (int j = 0; j < 4; j++) {
    __m512i s0 = _mm512_shuffle_i32x4(v[j], v[4 + j], 0x44);
    __m512i s1 = _mm512_shuffle_i32x4(v[8 + j], v[12 + j], 0x44);
    __m512i s2 = _mm512_shuffle_i32x4(v[j], v[4 + j], 0xee);
    __m512i s3 = _mm512_shuffle_i32x4(v[8 + j], v[12 + j], 0xee);
    t[j] = _mm512_shuffle_i32x4(s0, s1, 0x88);
    t[4 + j] = _mm512_shuffle_i32x4(s0, s1, 0xdd);
    t[8 + j] = _mm512_shuffle_i32x4(s2, s3, 0x88);
    t[12 + j] = _mm512_shuffle_i32x4(s2, s3, 0xdd);
  }
  for (int i = 0; i < 16; i++) v[i] = t[i];
}

/* Load 16 rows n0.. of w at column k (32 bf16 each, zeros past K or N). */
AVX512 static __attribute__((always_inline)) inline void load_rows16(const FgGemm *g, int64_t n0, int64_t k, __m512i v[16]) {
  const int64_t left = g->K - k;
  const __mmask32 m = left >= 32 ? 0xffffffffu : (left <= 0 ? 0 : (__mmask32)((1ull << left) - 1));
  for (int r = 0; r < 16; r++) {
    if (n0 + r < g->N)
      v[r] = _mm512_maskz_loadu_epi16(m, g->w + (n0 + r) * g->ldw + k);
    else
      v[r] = _mm512_setzero_si512();
  }
}

/* Micro-panel of columns [n0, n0+32) for k in [k0, k0+kc): dwords [kc/2][32]. */
AVX512 static void pack_dp(const FgGemm *g, int64_t n0, int64_t k0, int kc, uint32_t *dst) {
  __m512i v[16];
  for (int half = 0; half < 2; half++) {
    for (int kk = 0; kk < kc; kk += 32) {
      load_rows16(g, n0 + 16 * half, k0 + kk, v);
      transpose16(v);
      const int np = (kc - kk) / 2 < 16 ? (kc - kk) / 2 : 16;
      for (int c = 0; c < np; c++)
        _mm512_store_si512((void *)(dst + (int64_t)(kk / 2 + c) * FG_NR + 16 * half), v[c]);
    }
  }
}

/* The same panel widened to fp32: [kc][32] floats, row k = w[n0.., k]. */
AVX512 static void pack_f32(const FgGemm *g, int64_t n0, int64_t k0, int kc, float *dst) {
  __m512i v[16];
  const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
  for (int half = 0; half < 2; half++) {
    for (int kk = 0; kk < kc; kk += 32) {
      load_rows16(g, n0 + 16 * half, k0 + kk, v);
      transpose16(v);
      const int np = (kc - kk) / 2 < 16 ? (kc - kk) / 2 : 16;
      for (int c = 0; c < np; c++) {
        float *d = dst + (int64_t)(kk + 2 * c) * FG_NR + 16 * half;
        _mm512_store_si512((void *)d, _mm512_slli_epi32(v[c], 16));
        _mm512_store_si512((void *)(d + FG_NR), _mm512_and_si512(v[c], hi));
      }
    }
  }
}

/* ---- micro-kernels -------------------------------------------------------------------
 * c[mr][32] (row stride ldc) = (first ? 0 : c) + the slice's terms, in the fixed order. */

#define FG_INLINE __attribute__((always_inline)) inline

AVX512BF16 static FG_INLINE void kern_dp(int mr, int kcp, const uint16_t *x, int64_t ldx,
                                         const uint32_t *p, float *c, int64_t ldc, bool first) {
  __m512 acc[FG_MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < mr; i++) {
    acc[i][0] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc);
    acc[i][1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc + 16);
  }
  for (int kp = 0; kp < kcp; kp++) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(p + kp * FG_NR));
    const __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(p + kp * FG_NR + 16));
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
      uint32_t pair;
      memcpy(&pair, x + i * ldx + 2 * kp, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < mr; i++) {
    _mm512_storeu_ps(c + i * ldc, acc[i][0]);
    _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
  }
}

AVX512 static FG_INLINE void kern_fma(int mr, int kc, bool pairs, const float *x, int64_t ldx,
                                      const float *p, float *c, int64_t ldc, bool first) {
  __m512 acc[FG_MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < mr; i++) {
    acc[i][0] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc);
    acc[i][1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc + 16);
  }
  for (int kk = 0; kk < kc; kk += 2) {
    /* pairs: the odd term first (VDPBF16PS order); seq: k then k+1 */
    const int k1 = pairs ? kk + 1 : kk, k2 = pairs ? kk : kk + 1;
    const __m512 b10 = _mm512_load_ps(p + k1 * FG_NR), b11 = _mm512_load_ps(p + k1 * FG_NR + 16);
    const __m512 b20 = _mm512_load_ps(p + k2 * FG_NR), b21 = _mm512_load_ps(p + k2 * FG_NR + 16);
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
      const __m512 a1 = _mm512_set1_ps(x[i * ldx + k1]);
      acc[i][0] = _mm512_fmadd_ps(a1, b10, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a1, b11, acc[i][1]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
      const __m512 a2 = _mm512_set1_ps(x[i * ldx + k2]);
      acc[i][0] = _mm512_fmadd_ps(a2, b20, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a2, b21, acc[i][1]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < mr; i++) {
    _mm512_storeu_ps(c + i * ldc, acc[i][0]);
    _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
  }
}

/* One row against np micro-panels at once (decode): 2·np accumulator chains. */
AVX512BF16 static void kern_dp_row(int np, int kcp, const uint16_t *x, const uint32_t *p,
                                   int64_t pstride, float *c, int64_t ldc_panel, bool first) {
  __m512 acc[2 * FG_NP];
  for (int j = 0; j < np; j++) {
    acc[2 * j] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + j * ldc_panel);
    acc[2 * j + 1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + j * ldc_panel + 16);
  }
  for (int kp = 0; kp < kcp; kp++) {
    uint32_t pair;
    memcpy(&pair, x + 2 * kp, 4);
    const __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
#pragma GCC unroll 8
    for (int j = 0; j < np; j++) {
      const uint32_t *q = p + j * pstride + kp * FG_NR;
      acc[2 * j] = _mm512_dpbf16_ps(acc[2 * j], a, (__m512bh)_mm512_load_si512((const void *)q));
      acc[2 * j + 1] =
        _mm512_dpbf16_ps(acc[2 * j + 1], a, (__m512bh)_mm512_load_si512((const void *)(q + 16)));
    }
  }
  for (int j = 0; j < np; j++) {
    _mm512_storeu_ps(c + j * ldc_panel, acc[2 * j]);
    _mm512_storeu_ps(c + j * ldc_panel + 16, acc[2 * j + 1]);
  }
}

AVX512 static void kern_fma_row(int np, int kc, bool pairs, const float *x, const float *p,
                                int64_t pstride, float *c, int64_t ldc_panel, bool first) {
  __m512 acc[2 * FG_NP];
  for (int j = 0; j < np; j++) {
    acc[2 * j] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + j * ldc_panel);
    acc[2 * j + 1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + j * ldc_panel + 16);
  }
  for (int kk = 0; kk < kc; kk += 2) {
    const int k1 = pairs ? kk + 1 : kk, k2 = pairs ? kk : kk + 1;
    const __m512 a1 = _mm512_set1_ps(x[k1]), a2 = _mm512_set1_ps(x[k2]);
#pragma GCC unroll 8
    for (int j = 0; j < np; j++) {
      const float *q = p + j * pstride;
      acc[2 * j] = _mm512_fmadd_ps(a1, _mm512_load_ps(q + k1 * FG_NR), acc[2 * j]);
      acc[2 * j + 1] = _mm512_fmadd_ps(a1, _mm512_load_ps(q + k1 * FG_NR + 16), acc[2 * j + 1]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < np; j++) {
      const float *q = p + j * pstride;
      acc[2 * j] = _mm512_fmadd_ps(a2, _mm512_load_ps(q + k2 * FG_NR), acc[2 * j]);
      acc[2 * j + 1] = _mm512_fmadd_ps(a2, _mm512_load_ps(q + k2 * FG_NR + 16), acc[2 * j + 1]);
    }
  }
  for (int j = 0; j < np; j++) {
    _mm512_storeu_ps(c + j * ldc_panel, acc[2 * j]);
    _mm512_storeu_ps(c + j * ldc_panel + 16, acc[2 * j + 1]);
  }
}

/* Dispatch on a constant mr so that each case is fully unrolled. */
AVX512BF16 static void kern_dp_mr(int mr, int kcp, const uint16_t *x, int64_t ldx,
                                  const uint32_t *p, float *c, int64_t ldc, bool first) {
  switch (mr) {
#define C(n) case n: kern_dp(n, kcp, x, ldx, p, c, ldc, first); break;
    C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8) C(9) C(10) C(11) C(12)
#undef C
  }
}

AVX512 static void kern_fma_mr(int mr, int kc, bool pairs, const float *x, int64_t ldx,
                               const float *p, float *c, int64_t ldc, bool first) {
  switch (mr) {
#define C(n) case n: kern_fma(n, kc, pairs, x, ldx, p, c, ldc, first); break;
    C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8) C(9) C(10) C(11) C(12)
#undef C
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of 5 timings of each micro-kernel on a 12×32 tile over 256 cached k values. */
static FgKernel calibrate(FgOrder order) {
  static uint32_t pdp[FG_KC / 2 * FG_NR] __attribute__((aligned(64)));
  static float pf[FG_KC * FG_NR] __attribute__((aligned(64)));
  static uint16_t xb[FG_MR * FG_KC];
  static float xf[FG_MR * FG_KC], c[FG_MR * FG_NR];
  for (int i = 0; i < FG_KC / 2 * FG_NR; i++) pdp[i] = 0x3c003c00u;
  for (int i = 0; i < FG_KC * FG_NR; i++) pf[i] = 0.0078125f;
  for (int i = 0; i < FG_MR * FG_KC; i++) {
    xb[i] = 0x3c00;
    xf[i] = 0.0078125f;
  }
  double best[2] = {1e30, 1e30};
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now_s();
    for (int i = 0; i < 20; i++) kern_dp_mr(FG_MR, FG_KC / 2, xb, FG_KC, pdp, c, FG_NR, i == 0);
    double t1 = now_s();
    for (int i = 0; i < 20; i++)
      kern_fma_mr(FG_MR, FG_KC, order == FG_ORDER_PAIRS, xf, FG_KC, pf, c, FG_NR, i == 0);
    double t2 = now_s();
    if (t1 - t0 < best[0]) best[0] = t1 - t0;
    if (t2 - t1 < best[1]) best[1] = t2 - t1;
  }
  return best[0] <= best[1] ? FG_KERNEL_DPBF16 : FG_KERNEL_FMA;
}

/* ---- the driver ---------------------------------------------------------------------- */

typedef struct {
  const FgGemm *g;
  FgKernel kernel;
  bool pairs;
  int64_t kpad;           /* K rounded up to even: the scratch rows' length */
  const uint16_t *xb;
  const float *xf;
  const float *bias;
} Plan;

/* Rows [m0, m1) × columns [nb, nb + FG_NC) of y. */
static void run_task(const Plan *pl, int64_t nb, int64_t m0, int64_t m1, void *panel, float *tile) {
  const FgGemm *g = pl->g;
  const int64_t ncols = g->N - nb < FG_NC ? g->N - nb : FG_NC;
  const int np = (int)((ncols + FG_NR - 1) / FG_NR);
  const int64_t ldc = FG_NC;
  for (int64_t k0 = 0; k0 < pl->kpad; k0 += FG_KC) {
    const int kc = (int)(pl->kpad - k0 < FG_KC ? pl->kpad - k0 : FG_KC);
    const bool first = k0 == 0;
    if (pl->kernel == FG_KERNEL_DPBF16) {
      uint32_t *pp = panel;
      const int64_t ps = (int64_t)(FG_KC / 2) * FG_NR;
      for (int j = 0; j < np; j++) pack_dp(g, nb + j * FG_NR, k0, kc, pp + j * ps);
      if (m1 - m0 == 1) {
        kern_dp_row(np, kc / 2, pl->xb + m0 * pl->kpad + k0, pp, ps, tile, FG_NR, first);
        continue;
      }
      for (int64_t m = m0; m < m1; m += FG_MR) {
        const int mr = (int)(m1 - m < FG_MR ? m1 - m : FG_MR);
        for (int j = 0; j < np; j++)
          kern_dp_mr(mr, kc / 2, pl->xb + m * pl->kpad + k0, pl->kpad, pp + j * ps,
                     tile + (m - m0) * ldc + j * FG_NR, ldc, first);
      }
    } else {
      float *pp = panel;
      const int64_t ps = (int64_t)FG_KC * FG_NR;
      for (int j = 0; j < np; j++) pack_f32(g, nb + j * FG_NR, k0, kc, pp + j * ps);
      if (m1 - m0 == 1) {
        kern_fma_row(np, kc, pl->pairs, pl->xf + m0 * pl->kpad + k0, pp, ps, tile, FG_NR, first);
        continue;
      }
      for (int64_t m = m0; m < m1; m += FG_MR) {
        const int mr = (int)(m1 - m < FG_MR ? m1 - m : FG_MR);
        for (int j = 0; j < np; j++)
          kern_fma_mr(mr, kc, pl->pairs, pl->xf + m * pl->kpad + k0, pl->kpad, pp + j * ps,
                      tile + (m - m0) * ldc + j * FG_NR, ldc, first);
      }
    }
  }
  /* bias after the whole sum, one rounding */
  for (int64_t m = m0; m < m1; m++) {
    const float *t = tile + (m - m0) * ldc;
    for (int64_t n = 0; n < ncols; n++) {
      float v = t[n] + (pl->bias ? pl->bias[nb + n] : 0.0f);
      if (g->y_bf16) ((uint16_t *)g->y)[m * g->ldy + nb + n] = bk_f32_to_bf16(v);
      else ((float *)g->y)[m * g->ldy + nb + n] = v;
    }
  }
}

/* ---- decode: one row of x, the weights streamed once ---------------------------------
 * 16 weight rows at a time are loaded (32 bf16 each), transposed in registers and used
 * straight away: no panel in memory.  Two row groups per task give two independent
 * accumulator chains; the next chunk of each row is prefetched. */

#define FG_PF 128   /* prefetch distance in k (4 cache lines of a row) */
#define GEMV_GROUP(NAME, ATTR, DP)                                                          \
  ATTR static __attribute__((always_inline)) inline __m512 NAME(                              \
      const FgGemm *g, int64_t n0, int64_t k, int np, bool pairs, const uint16_t *xb,          \
      const float *xf, __m512 acc) {                                                          \
    __m512i v[16];                                                                            \
    load_rows16(g, n0, k, v);                                                                 \
    /* the next chunk of each row; past the row's end, the next task's rows (a task's  \
     * rows are short in the 1.5B model: K = 1536 is 48 chunks) */                          \
    for (int r = 0; r < 16; r++) {                                                            \
      int64_t pk = k + FG_PF, row = n0 + r;                                                   \
      if (pk >= g->K) {                                                                       \
        pk -= g->K;                                                                           \
        row += 32;                                                                            \
      }                                                                                       \
      if (row < g->N && pk < g->K)                                                            \
        _mm_prefetch((const char *)(g->w + row * g->ldw + pk), _MM_HINT_T0);                  \
    }                                                                                         \
    transpose16(v);                                                                           \
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);                                   \
    for (int c = 0; c < np; c++) {                                                            \
      if (DP) {                                                                               \
        acc = GEMV_DP_STEP(acc, xb, k, c, v[c]);                                              \
      } else {                                                                                \
        const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v[c], 16));                  \
        const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(v[c], hi));                    \
        const __m512 xe = _mm512_set1_ps(xf[k + 2 * c]), xo = _mm512_set1_ps(xf[k + 2 * c + 1]); \
        acc = _mm512_fmadd_ps(pairs ? xo : xe, pairs ? wo : we, acc);                         \
        acc = _mm512_fmadd_ps(pairs ? xe : xo, pairs ? we : wo, acc);                         \
      }                                                                                       \
    }                                                                                         \
    (void)xb;                                                                                 \
    (void)xf;                                                                                 \
    return acc;                                                                               \
  }

AVX512BF16 static __attribute__((always_inline)) inline __m512 dp_step(__m512 acc,
                                                                      const uint16_t *xb,
                                                                      int64_t k, int c,
                                                                      __m512i w) {
  uint32_t pair;
  memcpy(&pair, xb + k + 2 * c, 4);
  return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_set1_epi32((int)pair), (__m512bh)w);
}

#define GEMV_DP_STEP(acc, xb, k, c, w) dp_step(acc, xb, k, c, w)
GEMV_GROUP(gemv_group_dp, AVX512BF16, 1)
#undef GEMV_DP_STEP
#define GEMV_DP_STEP(acc, xb, k, c, w) (acc)
GEMV_GROUP(gemv_group_fma, AVX512, 0)
#undef GEMV_DP_STEP

AVX512BF16 static void gemv_dp(const Plan *pl, int64_t n0, float out[32]) {
  const FgGemm *g = pl->g;
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (int64_t k = 0; k < pl->kpad; k += 32) {
    const int np = (int)((pl->kpad - k) / 2 < 16 ? (pl->kpad - k) / 2 : 16);
    a0 = gemv_group_dp(g, n0, k, np, true, pl->xb, NULL, a0);
    a1 = gemv_group_dp(g, n0 + 16, k, np, true, pl->xb, NULL, a1);
  }
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
}

AVX512 static void gemv_fma(const Plan *pl, int64_t n0, float out[32]) {
  const FgGemm *g = pl->g;
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (int64_t k = 0; k < pl->kpad; k += 32) {
    const int np = (int)((pl->kpad - k) / 2 < 16 ? (pl->kpad - k) / 2 : 16);
    a0 = gemv_group_fma(g, n0, k, np, pl->pairs, NULL, pl->xf, a0);
    a1 = gemv_group_fma(g, n0 + 16, k, np, pl->pairs, NULL, pl->xf, a1);
  }
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
}

static void gemv_task(const Plan *pl, int64_t n0) {
  const FgGemm *g = pl->g;
  float acc[32];
  if (pl->kernel == FG_KERNEL_DPBF16) gemv_dp(pl, n0, acc);
  else gemv_fma(pl, n0, acc);
  const int64_t nn = g->N - n0 < 32 ? g->N - n0 : 32;
  for (int64_t j = 0; j < nn; j++) {
    const float v = acc[j] + (pl->bias ? pl->bias[n0 + j] : 0.0f);
    if (g->y_bf16) ((uint16_t *)g->y)[n0 + j] = bk_f32_to_bf16(v);
    else ((float *)g->y)[n0 + j] = v;
  }
}
#endif /* FG_X86 */

#ifndef FG_X86
static FgKernel calibrate(FgOrder order) {
  (void)order;
  return FG_KERNEL_NONE;
}
#endif

/* Row m of x into the scratch: bf16 with a zero pad to kpad, and fp32 for the FMA kernel. */
static void copy_x_row(FgWork *w, const FgGemm *g, int64_t m, int64_t kpad, bool fma) {
  uint16_t *d = w->xb + m * kpad;
  memcpy(d, g->x + m * g->ldx, (size_t)g->K * 2);
  if (kpad > g->K) d[g->K] = 0;
  if (fma)
    for (int64_t k = 0; k < kpad; k++) {
      union { uint32_t u; float f; } v = { (uint32_t)d[k] << 16 };
      w->xf[m * kpad + k] = v.f;
    }
}

bool fg_gemm(FgWork *w, const FgGemm *g, FgOrder order, FgKernel kernel) {
  if (!fg_kernel_supported(kernel, order)) return false;
#ifdef FG_X86
  if (g->M <= 0 || g->N <= 0) return true;
  const int64_t kpad = (g->K + 1) & ~(int64_t)1;
  const bool fma = kernel == FG_KERNEL_FMA;
  /* x as bf16 (and fp32 for the FMA kernel), rows of kpad with a zero tail */
  if (!grow((void **)&w->xb, &w->xb_cap, (size_t)(g->M * kpad) * 2)) return false;
  if (fma && !grow((void **)&w->xf, &w->xf_cap, (size_t)(g->M * kpad) * 4)) return false;
  const int nt = w->n_threads;
  const int64_t nblocks = (g->N + FG_NC - 1) / FG_NC;
  /* split rows too when there are fewer column blocks than 2 per thread */
  int64_t mchunks = 1;
  if (nblocks < 2 * nt && g->M >= 2 * FG_MR) {
    mchunks = (2 * nt + nblocks - 1) / nblocks;
    if (mchunks > g->M / FG_MR) mchunks = g->M / FG_MR;
  }
  const int64_t mstep = ((g->M + mchunks - 1) / mchunks + FG_MR - 1) / FG_MR * FG_MR;
  mchunks = (g->M + mstep - 1) / mstep;
  const size_t tile_bytes = (size_t)(mstep * FG_NC) * sizeof(float);
  for (int t = 0; t < nt; t++) {
    /* one size for both kernels: the fp32 panels of the FMA kernel */
    if (!w->panel[t] && !(w->panel[t] = aligned_alloc(64, (size_t)FG_KC * FG_NC * 4)))
      return false;
    if (!grow((void **)&w->tile[t], &w->tile_cap[t], tile_bytes)) return false;
  }
  Plan pl = {.g = g, .kernel = kernel, .pairs = order == FG_ORDER_PAIRS, .kpad = kpad,
             .xb = w->xb, .xf = w->xf, .bias = g->bias};
  if (g->M == 1) {
    /* decode: x is one row, prepared here; the threads then start on the weights at
     * once (no barrier before the stream), and the only barrier is the region's end.
     * dynamic: on a shared machine a descheduled or late-waking thread's share moves to
     * the other; small chunks keep the wait at that barrier short. */
    copy_x_row(w, g, 0, kpad, fma);
    const int64_t ntasks = (g->N + 31) / 32;
    int64_t chunk = ntasks / (8 * (int64_t)nt);
    chunk = chunk < 1 ? 1 : chunk > 8 ? 8 : chunk;
#pragma omp parallel for num_threads(nt) schedule(dynamic, chunk)
    for (int64_t n0 = 0; n0 < ntasks; n0++) gemv_task(&pl, n0 * 32);
    return true;
  }
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t m = 0; m < g->M; m++) copy_x_row(w, g, m, kpad, fma);
#pragma omp for schedule(dynamic) nowait
    for (int64_t task = 0; task < nblocks * mchunks; task++) {
#ifdef _OPENMP
      const int t = omp_get_thread_num();
#else
      const int t = 0;
#endif
      const int64_t nb = (task / mchunks) * FG_NC, m0 = (task % mchunks) * mstep;
      const int64_t m1 = m0 + mstep < g->M ? m0 + mstep : g->M;
      run_task(&pl, nb, m0, m1, w->panel[t], w->tile[t]);
    }
  }
  return true;
#else
  (void)w;
  (void)g;
  return false;
#endif
}
