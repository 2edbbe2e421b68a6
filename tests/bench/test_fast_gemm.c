/* tests/bench/test_fast_gemm.c — the fast bf16 GEMM (kernels/cpu/fast_gemm.h) is
 * bit-identical to a scalar loop in the order it claims, for every kernel this CPU has,
 * both orders, odd/even K, ragged M and N, 1 and 2 threads, bf16 and fp32 outputs, with
 * and without bias.  Also pins the premise of the VDPBF16PS kernel: the instruction
 * sums each pair with the odd term first (one fp32 rounding after each product).
 * Exits 77 (skip) on a CPU without AVX-512. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fast_gemm.h"
#include "ops.h"

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1p-53;
}
static float nrand(void) {
  double u1 = urand() + 1e-300, u2 = urand();
  return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* The reference: one fp32 accumulator per output in `order`, bias after, one rounding. */
static void ref_gemm(const FgGemm *g, FgOrder order) {
  for (int64_t m = 0; m < g->M; m++)
    for (int64_t n = 0; n < g->N; n++) {
      const uint16_t *x = g->x + m * g->ldx, *w = g->w + n * g->ldw;
      float s = 0;
      int64_t k = 0;
      if (order == FG_ORDER_PAIRS) {
        for (; k + 1 < g->K; k += 2) {
          s += bk_bf16_to_f32(x[k + 1]) * bk_bf16_to_f32(w[k + 1]);
          s += bk_bf16_to_f32(x[k]) * bk_bf16_to_f32(w[k]);
        }
      }
      for (; k < g->K; k++) s += bk_bf16_to_f32(x[k]) * bk_bf16_to_f32(w[k]);
      float v = s + (g->bias ? g->bias[n] : 0.0f);
      if (g->y_bf16) ((uint16_t *)g->y)[m * g->ldy + n] = bk_f32_to_bf16(v);
      else ((float *)g->y)[m * g->ldy + n] = v;
    }
}

static int check(FgKernel kern, FgOrder order, int nt, int64_t M, int64_t N, int64_t K,
                 bool y_bf16, bool bias) {
  uint16_t *x = malloc(sizeof *x * (size_t)(M * K + 1)), *w = malloc(sizeof *w * (size_t)(N * K + 1));
  float *b = malloc(sizeof *b * (size_t)N);
  for (int64_t i = 0; i < M * K; i++) x[i] = bk_f32_to_bf16(nrand());
  for (int64_t i = 0; i < N * K; i++) w[i] = bk_f32_to_bf16(nrand() / sqrtf((float)K));
  for (int64_t i = 0; i < N; i++) b[i] = bk_round_bf16(0.1f * nrand());
  size_t es = y_bf16 ? 2 : 4;
  void *y = calloc((size_t)(M * N), es), *yr = calloc((size_t)(M * N), es);
  FgGemm g = {.M = M, .N = N, .K = K, .x = x, .ldx = K, .w = w, .ldw = K,
              .bias = bias ? b : NULL, .y = y, .ldy = N, .y_bf16 = y_bf16};
  FgWork *work = fg_work_new(nt);
  int bad = 0;
  if (!fg_gemm(work, &g, order, kern)) {
    printf("FAIL %s: fg_gemm refused M=%lld N=%lld K=%lld\n", fg_kernel_name(kern),
           (long long)M, (long long)N, (long long)K);
    bad = 1;
  } else {
    g.y = yr;
    ref_gemm(&g, order);
    int64_t mis = 0;
    for (int64_t i = 0; i < M * N; i++) mis += memcmp((char *)y + i * es, (char *)yr + i * es, es) != 0;
    if (mis) {
      printf("FAIL %s %s threads %d M=%lld N=%lld K=%lld %s%s: %lld of %lld outputs differ\n",
             fg_kernel_name(kern), order == FG_ORDER_PAIRS ? "pairs" : "seq", nt, (long long)M,
             (long long)N, (long long)K, y_bf16 ? "bf16" : "f32", bias ? " bias" : "",
             (long long)mis, (long long)(M * N));
      bad = 1;
    }
  }
  fg_work_free(work);
  free(x);
  free(w);
  free(b);
  free(y);
  free(yr);
  return bad;
}

int main(void) {
  if (!fg_kernel_supported(FG_KERNEL_FMA, FG_ORDER_SEQ)) {
    printf("SKIP: no AVX-512 on this CPU\n");
    return 77;
  }
  const int64_t Ms[] = {1, 2, 13, 40}, Ns[] = {1, 17, 64, 300}, Ks[] = {1, 2, 31, 64, 300, 611};
  int fails = 0, runs = 0;
  for (int ki = 0; ki < 2; ki++) {
    FgKernel kern = ki ? FG_KERNEL_DPBF16 : FG_KERNEL_FMA;
    for (int oi = 0; oi < 2; oi++) {
      FgOrder order = oi ? FG_ORDER_PAIRS : FG_ORDER_SEQ;
      if (!fg_kernel_supported(kern, order)) continue;
      for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
          for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
            fails += check(kern, order, 1 + (int)((a + b + c) % 2), Ms[a], Ns[b], Ks[c],
                           (a + c) % 2 == 0, (b + c) % 2 == 1);
            runs++;
          }
      /* a model shape: several k-slices, several column blocks, two threads */
      fails += check(kern, order, 2, 33, 600, 1536, true, true);
      fails += check(kern, order, 2, 1, 1000, 3584, true, false);
      runs += 2;
      printf("%s, %s order: checked\n", fg_kernel_name(kern),
             order == FG_ORDER_PAIRS ? "pair" : "sequential");
    }
  }
  printf("%d passed, %d failed\n", runs - fails, fails);
  return fails ? 1 : 0;
}
