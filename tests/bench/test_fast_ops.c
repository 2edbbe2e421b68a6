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
