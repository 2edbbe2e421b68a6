/* tests/bench/test_fast_ops.c — the fast CPU backend (kernels/cpu/fast_backend.h) gives
 * the reference backend's results bit for bit: linear (bf16 and fp32 inputs, bf16 and
 * fp32 outputs, bias or none) and attention (GQA, bottom-right causal with a cache, the
 * ViT's head dim 72, the VAE's single fp32 head of 512) on random data.  The one op that
 * is not bit-exact on purpose is the VAE's conv2d (FMA, cpu_conv2d_fma): it is checked
 * against an fp64 convolution, as accurate as the exact kernel, and seen to differ from
 * it (so the FMA path is what runs).  This is where a
 * change of the reference's summation order shows: the fast kernels must then follow
 * (kernels/cpu/fast_backend.c names the order they implement).  Skips (77) without
 * AVX-512, where the fast backend is the reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_expf16.h"
#include "cpu_internal.h"
#include "fast_attention.h"
#include "fast_backend.h"
#include "fast_gemm.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float nrand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  double u1 = (double)(rng >> 11) * 0x1p-53 + 1e-300;
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  double u2 = (double)(rng >> 11) * 0x1p-53;
  return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

static BkTensor rand_tensor(BkDType dt, int nd, const int64_t *ne, float scale) {
  BkTensor t = bk_tensor(NULL, dt, nd, ne);
  t.data = malloc(bk_nbytes(&t) + 64);
  for (int64_t i = 0; i < bk_numel(&t); i++) {
    float v = nrand() * scale;
    if (dt == BK_F32) ((float *)t.data)[i] = v;
    else ((uint16_t *)t.data)[i] = bk_f32_to_bf16(v);
  }
  return t;
}

static BkTensor empty_like(const BkTensor *t) {
  BkTensor e = *t;
  e.data = calloc(1, bk_nbytes(t) + 64);
  return e;
}

static int compare(const char *what, const BkTensor *a, const BkTensor *b) {
  size_t es = bk_dtype_size(a->dt);
  int64_t mis = 0, n = bk_numel(a);
  for (int64_t i = 0; i < n; i++) mis += memcmp((char *)a->data + i * es, (char *)b->data + i * es, es) != 0;
  if (mis) printf("FAIL %s: %lld of %lld elements differ\n", what, (long long)mis, (long long)n);
  return mis != 0;
}

static int check_linear(BkBackend *ref, BkBackend *fast, int64_t M, int64_t K, int64_t N,
                        BkDType xdt, BkDType ydt, bool bias) {
  BkTensor x = rand_tensor(xdt, 2, (int64_t[]){M, K}, 1.0f);
  BkTensor w = rand_tensor(BK_BF16, 2, (int64_t[]){N, K}, 1.0f / sqrtf((float)K));
  BkTensor b = rand_tensor(BK_BF16, 1, (int64_t[]){N}, 0.1f);
  BkTensor y0 = bk_tensor(NULL, ydt, 2, (int64_t[]){M, N});
  y0.data = calloc(1, bk_nbytes(&y0));
  BkTensor y1 = empty_like(&y0);
  ref->ops->linear(ref, &y0, &x, &w, bias ? &b : NULL);
  fast->ops->linear(fast, &y1, &x, &w, bias ? &b : NULL);
  char what[128];
  snprintf(what, sizeof what, "linear M=%lld K=%lld N=%lld x %s y %s%s", (long long)M,
           (long long)K, (long long)N, bk_dtype_name(xdt), bk_dtype_name(ydt), bias ? " bias" : "");
  int bad = compare(what, &y0, &y1) || !bk_ok(ref) || !bk_ok(fast);
  free(x.data); free(w.data); free(b.data); free(y0.data); free(y1.data);
  return bad;
}

static int check_attention(BkBackend *ref, BkBackend *fast, int64_t Lq, int64_t Lc, int64_t Hq,
                           int64_t Hkv, int64_t D, BkDType dt, BkCausal causal) {
  BkTensor q = rand_tensor(dt, 3, (int64_t[]){Lq, Hq, D}, 1.0f);
  BkTensor kn = rand_tensor(dt, 3, (int64_t[]){Lq, Hkv, D}, 1.0f);
  BkTensor vn = rand_tensor(dt, 3, (int64_t[]){Lq, Hkv, D}, 1.0f);
  BkTensor kc = rand_tensor(dt, 3, (int64_t[]){Lc ? Lc : 1, Hkv, D}, 1.0f);
  BkTensor vc = rand_tensor(dt, 3, (int64_t[]){Lc ? Lc : 1, Hkv, D}, 1.0f);
  kc.ne[0] = vc.ne[0] = Lc;
  BkTensor o0 = empty_like(&q), o1 = empty_like(&q);
  const float scale = 1.0f / sqrtf((float)D);
  ref->ops->attention(ref, &o0, &q, Lc ? &kc : NULL, Lc ? &vc : NULL, &kn, &vn, causal, scale);
  fast->ops->attention(fast, &o1, &q, Lc ? &kc : NULL, Lc ? &vc : NULL, &kn, &vn, causal, scale);
  char what[160];
  snprintf(what, sizeof what, "attention Lq=%lld Lc=%lld heads %lld/%lld D=%lld %s%s",
           (long long)Lq, (long long)Lc, (long long)Hq, (long long)Hkv, (long long)D,
           bk_dtype_name(dt), causal ? " causal" : "");
  int bad = compare(what, &o0, &o1) || !bk_ok(ref) || !bk_ok(fast);
  free(q.data); free(kn.data); free(vn.data); free(kc.data); free(vc.data);
  free(o0.data); free(o1.data);
  return bad;
}

/* silu_mul (the MLP's act(gate)·up, bf16): fast against reference, bit for bit, on
 * random values of several scales and the special ones (±0, ±∞, NaN, the largest
 * finite, subnormals, values where exp(−g) overflows or underflows). */
static int check_silu_mul(BkBackend *ref, BkBackend *fast, int64_t n, bool with_up) {
  const int64_t ne[1] = {n};
  BkTensor g = rand_tensor(BK_BF16, 1, ne, 4.0f), u = rand_tensor(BK_BF16, 1, ne, 1.0f);
  static const uint16_t special[] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f7f,
                                     0xff7f, 0x0001, 0x8001, 0x42d0, 0xc2d0, 0x42c8, 0xc2c8,
                                     0x4300, 0xc300, 0xc2ce, 0x42cf};
  uint16_t *gd = g.data;
  for (int64_t i = 0; i < n; i++) {
    if (i % 7 == 3) gd[i] = special[(i / 7) % (sizeof special / sizeof *special)];
    if (i % 11 == 5) gd[i] = bk_f32_to_bf16(nrand() * 60.0f);
  }
  BkTensor y0 = empty_like(&g), y1 = empty_like(&g);
  ref->ops->silu_mul(ref, &y0, &g, with_up ? &u : NULL);
  fast->ops->silu_mul(fast, &y1, &g, with_up ? &u : NULL);
  char what[96];
  snprintf(what, sizeof what, "silu_mul n=%lld bf16%s", (long long)n, with_up ? " with up" : "");
  const int r = compare(what, &y0, &y1);
  free(g.data); free(u.data); free(y0.data); free(y1.data);
  return r;
}

/* group_norm (the VAE's, fp32, optional swish): fast against reference, bit for bit. */
static int check_group_norm(BkBackend *ref, BkBackend *fast, int64_t c, int64_t h, int64_t wd,
                            int groups, BkDType wdt, bool swish) {
  const int64_t xe[3] = {c, h, wd}, ce[1] = {c};
  BkTensor x = rand_tensor(BK_F32, 3, xe, 3.0f), w = rand_tensor(wdt, 1, ce, 1.0f),
           b = rand_tensor(wdt, 1, ce, 0.5f);
  float *xd = x.data;
  for (int64_t i = 0; i < bk_numel(&x); i++) xd[i] += 0.7f;   /* a mean away from 0 */
  BkTensor y0 = empty_like(&x), y1 = empty_like(&x);
  ref->ops->group_norm(ref, &y0, &x, &w, &b, groups, 1e-6f, swish);
  fast->ops->group_norm(fast, &y1, &x, &w, &b, groups, 1e-6f, swish);
  char what[96];
  snprintf(what, sizeof what, "group_norm %lldx%lldx%lld, %d groups, %s weights%s", (long long)c,
           (long long)h, (long long)wd, groups, bk_dtype_name(wdt), swish ? ", swish" : "");
  const int r = compare(what, &y0, &y1) || !bk_ok(fast);
  free(x.data); free(w.data); free(b.data); free(y0.data); free(y1.data);
  return r;
}

/* cpu_expf16 against cpu_expf on every `stride`-th 32-bit pattern (all of them with
 * FAST_OPS_EXP_STRIDE=1: 4.3e9 values, a minute) and on the edges of its ranges. */
__attribute__((target("avx512f"))) static int check_expf16(uint32_t stride) {
  static const float edge[] = {0.0f, -0.0f, 1.0f, -1.0f, 100.0f, -104.0f, 88.72f, -87.33f,
                               0.34657359f, -0.34657359f, 1e-30f, -1e-30f, 1e-45f};
  int64_t bad = 0, n = 0;
  uint32_t first_bad = 0;
  float in[16];
  int k = 0;
  for (uint64_t u = 0; u <= 0xffffffffull + 16 * 4 + sizeof edge / sizeof *edge; ) {
    float x;
    if (u <= 0xffffffffull) {
      uint32_t b = (uint32_t)u;
      memcpy(&x, &b, 4);
      u += stride;
      if (u > 0xffffffffull) u = 0x100000000ull;
    } else {
      const uint64_t e = u - 0x100000000ull;
      u++;
      if (e < sizeof edge / sizeof *edge) x = edge[e];
      else {   /* the neighbours of the range ends */
        const uint64_t i = e - sizeof edge / sizeof *edge;
        x = nextafterf(i < 32 ? -104.0f : 100.0f, (i & 1) ? INFINITY : -INFINITY);
        for (uint64_t t = 0; t < (i % 32) / 2; t++) x = nextafterf(x, (i & 1) ? INFINITY : -INFINITY);
      }
    }
    in[k++] = x;
    if (k < 16 && u <= 0xffffffffull + 16 * 4 + sizeof edge / sizeof *edge) continue;
    float out[16];
    _mm512_storeu_ps(out, cpu_expf16(_mm512_loadu_ps(in)));
    for (int l = 0; l < k; l++, n++) {
      const float want = cpu_expf(in[l]);
      if (memcmp(&want, &out[l], 4) && !(isnan(want) && isnan(out[l]))) {
        if (!bad) memcpy(&first_bad, &in[l], 4);
        bad++;
      }
    }
    k = 0;
  }
  printf("%s cpu_expf16 against cpu_expf on %lld values (every %u-th bit pattern and the "
         "range edges): %lld differ", bad ? "FAIL:" : "ok:  ", (long long)n, stride, (long long)bad);
  if (bad) printf(", the first at 0x%08x", first_bad);
  printf("\n");
  return bad ? 1 : 0;
}

/* y = conv(x, w) + b in fp64, the naive loop; also Σ|w·x| + |b| per output (the scale). */
static void conv_f64(const BkTensor *x, const BkTensor *w, const BkTensor *b, int stride,
                     const int pad[4], int64_t ho, int64_t wo, double *y, double *mag) {
  const int64_t cin = x->ne[0], h = x->ne[1], wd = x->ne[2], cout = w->ne[0], kh = w->ne[2],
                kw = w->ne[3];
  const float *xd = x->data, *wt = w->data, *bd = b->data;
  for (int64_t co = 0; co < cout; co++)
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        double s = bd[co], m = fabs(bd[co]);
        for (int64_t ci = 0; ci < cin; ci++)
          for (int64_t dy = 0; dy < kh; dy++)
            for (int64_t dx = 0; dx < kw; dx++) {
              const int64_t iy = oy * stride + dy - pad[0], ix = ox * stride + dx - pad[1];
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              const double t = (double)wt[((co * cin + ci) * kh + dy) * kw + dx] *
                               (double)xd[(ci * h + iy) * wd + ix];
              s += t;
              m += fabs(t);
            }
        y[(co * ho + oy) * wo + ox] = s;
        mag[(co * ho + oy) * wo + ox] = m;
      }
}

static int check_conv(BkBackend *ref, BkBackend *fast, int64_t cin, int64_t cout, int64_t h,
                      int64_t wd, int k, int stride, const int pad[4], int64_t *differ) {
  const int64_t xe[3] = {cin, h, wd}, we[4] = {cout, cin, k, k}, be_[1] = {cout};
  BkTensor x = rand_tensor(BK_F32, 3, xe, 1.0f), w = rand_tensor(BK_F32, 4, we, 0.05f),
           b = rand_tensor(BK_F32, 1, be_, 0.1f);
  const int64_t ho = (h + pad[0] + pad[2] - k) / stride + 1, wo = (wd + pad[1] + pad[3] - k) / stride + 1;
  const int64_t ye[3] = {cout, ho, wo};
  BkTensor y0 = bk_tensor(NULL, BK_F32, 3, ye), y1 = y0;
  y0.data = malloc(bk_nbytes(&y0));
  y1.data = malloc(bk_nbytes(&y1));
  double *y64 = malloc(sizeof(double) * (size_t)bk_numel(&y0)),
         *mag = malloc(sizeof(double) * (size_t)bk_numel(&y0));
  ref->ops->conv2d(ref, &y0, &x, &w, &b, stride, pad);
  fast->ops->conv2d(fast, &y1, &x, &w, &b, stride, pad);
  conv_f64(&x, &w, &b, stride, pad, ho, wo, y64, mag);
  double e_ref = 0, e_fast = 0, worst = 0;
  int64_t nd = 0;
  for (int64_t i = 0; i < bk_numel(&y0); i++) {
    const float r = ((float *)y0.data)[i], f = ((float *)y1.data)[i];
    nd += memcmp(&r, &f, 4) != 0;
    const double er = fabs(r - y64[i]) / mag[i], ef = fabs(f - y64[i]) / mag[i];
    e_ref += er;
    e_fast += ef;
    if (ef > worst) worst = ef;
  }
  const int64_t n = bk_numel(&y0);
  /* fp32 summation of K terms: |error| <= ~K·2^-24·Σ|terms| in the worst case, ~1e-7
   * relative in practice; the FMA path must be as accurate as the exact one on average */
  const bool ok = bk_ok(fast) && isfinite(worst) && worst < 1e-5 &&
                  e_fast <= 1.25 * e_ref + 1e-12 * (double)n;
  printf("%s conv %lldx%lld k%d s%d on %lldx%lld: mean rel error fma %.2e, exact %.2e, worst "
         "fma %.2e; %lld of %lld outputs differ from the exact kernel\n", ok ? "ok:  " : "FAIL:",
         (long long)cin, (long long)cout, k, stride, (long long)h, (long long)wd,
         e_fast / (double)n, e_ref / (double)n, worst, (long long)nd, (long long)n);
  *differ += nd;
  free(x.data); free(w.data); free(b.data); free(y0.data); free(y1.data); free(y64); free(mag);
  return ok ? 0 : 1;
}

int main(void) {
  if (!fa_supported() || fg_pick(FG_ORDER_SEQ) == FG_KERNEL_NONE) {
    printf("SKIP: no AVX-512 on this CPU (the fast backend is the reference)\n");
    return 77;
  }
  BkBackend *ref = bk_cpu_new(2), *fast = bk_cpu_fast_new(2);
  printf("fast GEMM kernel: %s\n", bk_cpu_fast_gemm_kernel(fast));
  int fails = 0, runs = 0;
  const int64_t lin[][3] = {{1, 64, 64}, {3, 128, 96}, {17, 300, 33}, {40, 1152, 200},
                            {5, 588, 1152}, {1, 3584, 512}};
  for (size_t i = 0; i < sizeof lin / sizeof *lin; i++)
    for (int v = 0; v < 4; v++, runs++)
      fails += check_linear(ref, fast, lin[i][0], lin[i][1], lin[i][2], v & 1 ? BK_F32 : BK_BF16,
                            v & 2 ? BK_F32 : BK_BF16, (i + (size_t)v) % 2);
  /* LLM (GQA 7:1, head dim 128): prefill with and without a cache, decode, image block */
  fails += check_attention(ref, fast, 20, 0, 14, 2, 128, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT);
  fails += check_attention(ref, fast, 9, 37, 14, 2, 128, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT);
  fails += check_attention(ref, fast, 1, 70, 28, 4, 128, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT);
  fails += check_attention(ref, fast, 33, 21, 12, 2, 128, BK_BF16, BK_CAUSAL_NONE);
  /* gen-mode q/k in fp32, the ViT (16 heads of 72), the VAE (one fp32 head of 512) */
  fails += check_attention(ref, fast, 18, 5, 4, 2, 16, BK_F32, BK_CAUSAL_NONE);
  fails += check_attention(ref, fast, 50, 0, 16, 16, 72, BK_BF16, BK_CAUSAL_NONE);
  fails += check_attention(ref, fast, 64, 0, 1, 1, 512, BK_F32, BK_CAUSAL_NONE);
  runs += 7;
  fails += check_silu_mul(ref, fast, 1, true);
  fails += check_silu_mul(ref, fast, 37, true);
  fails += check_silu_mul(ref, fast, 8960, false);
  fails += check_silu_mul(ref, fast, 3 * 18944 + 5, true);   /* > 65536: both threads */
  runs += 4;
  fails += check_group_norm(ref, fast, 64, 13, 11, 32, BK_F32, true);
  fails += check_group_norm(ref, fast, 128, 16, 16, 32, BK_F32, false);
  fails += check_group_norm(ref, fast, 96, 7, 5, 32, BK_BF16, true);   /* n = 105: a tail */
  fails += check_group_norm(ref, fast, 32, 1, 3, 32, BK_F32, true);    /* n = 3 < 8 */
  runs += 4;
  const char *es = getenv("FAST_OPS_EXP_STRIDE");
  fails += check_expf16(es && atoi(es) > 0 ? (uint32_t)atoi(es) : 97);
  runs++;
  /* the VAE's convolutions: 3×3 pad 1, the first (3 channels) and last (to 3), the
   * encoder's stride-2 downsample padded (0,1,0,1), a 1×1 shortcut; cout not a multiple
   * of the 12-row tile */
  const int p1[4] = {1, 1, 1, 1}, p0[4] = {0, 0, 0, 0}, pd[4] = {0, 0, 1, 1};
  int64_t differ = 0;
  fails += check_conv(ref, fast, 64, 64, 21, 19, 3, 1, p1, &differ);
  fails += check_conv(ref, fast, 3, 128, 16, 16, 3, 1, p1, &differ);
  fails += check_conv(ref, fast, 128, 3, 16, 16, 3, 1, p1, &differ);
  fails += check_conv(ref, fast, 32, 32, 17, 16, 3, 2, pd, &differ);
  fails += check_conv(ref, fast, 96, 50, 9, 11, 1, 1, p0, &differ);
  runs += 5;
  if (!differ) {
    printf("FAIL: the fast conv2d gave the exact kernel's bits everywhere: its FMA path did not run\n");
    fails++;
  }
  bk_backend_free(ref);
  bk_backend_free(fast);
  printf("%d passed, %d failed\n", runs - fails, fails);
  return fails ? 1 : 0;
}
