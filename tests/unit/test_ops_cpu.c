/* tests/unit/test_ops_cpu.c — each CPU reference op against a closed form or a naive
 * fp64 formula on random inputs (odd shapes included), with explicit tolerances:
 * fp32 paths agree to ~1e-5 relative; bf16 outputs to within bf16 rounding (2^-8).
 * The /ops-cpu/order-* tests pin, bit for bit, the summation orders and transcendental
 * functions the reference shares with the golden torch run (docs/numerics.md) on
 * hand-built inputs where the alternatives give other answers. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "ops.h"
#include "cpu/cpu_internal.h"

static BkBackend *be;
static GRand *rng;

static float frand(float scale) { return (float)g_rand_double_range(rng, -scale, scale); }

typedef struct {
  BkTensor t;
  void *mem;
} Buf;

static Buf buf(BkDType dt, int nd, const int64_t *ne) {
  Buf b;
  b.t = bk_tensor(NULL, dt, nd, ne);
  b.mem = g_malloc0(bk_nbytes(&b.t) + 64);
  b.t.data = b.mem;
  return b;
}
static Buf buf2(BkDType dt, int64_t r, int64_t c) { return buf(dt, 2, (int64_t[]){r, c}); }

static void fill(Buf *b, float scale) {
  for (int64_t i = 0; i < bk_numel(&b->t); i++) {
    float v = frand(scale);
    if (b->t.dt == BK_F32) ((float *)b->mem)[i] = v;
    else ((uint16_t *)b->mem)[i] = bk_f32_to_bf16(v);
  }
}
static float at(const Buf *b, int64_t i) {
  return b->t.dt == BK_F32 ? ((float *)b->mem)[i] : bk_bf16_to_f32(((uint16_t *)b->mem)[i]);
}

/* max |ours - ref| / max(|ref|, floor) over the tensor */
static double max_rel(const Buf *ours, const double *ref, double floor) {
  double m = 0;
  for (int64_t i = 0; i < bk_numel(&ours->t); i++)
    m = fmax(m, fabs(at(ours, i) - ref[i]) / fmax(fabs(ref[i]), floor));
  return m;
}

#define CHECK_OK() g_assert_true(bk_ok(be))

static void test_linear(void) {
  const int64_t shapes[][3] = {{1, 7, 5}, {3, 64, 17}, {5, 33, 129}, {2, 300, 40}};
  for (unsigned s = 0; s < G_N_ELEMENTS(shapes); s++) {
    int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
    for (int wdt = 0; wdt < 2; wdt++) {
      BkDType dt = wdt ? BK_BF16 : BK_F32;
      Buf x = buf2(BK_F32, M, K), w = buf2(dt, N, K), b = buf(dt, 1, (int64_t[]){N});
      Buf y = buf2(dt, M, N);
      fill(&x, 2);
      fill(&w, 1);
      fill(&b, 1);
      be->ops->linear(be, &y.t, &x.t, &w.t, &b.t);
      CHECK_OK();
      double *ref = g_new(double, M * N);
      for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
          double acc = at(&b, n);
          for (int64_t k = 0; k < K; k++) {
            double xv = wdt ? bk_round_bf16(at(&x, m * K + k)) : at(&x, m * K + k);
            acc += xv * at(&w, n * K + k);
          }
          ref[m * N + n] = acc;
        }
      /* fp32 accumulation error grows ~sqrt(K)·2^-24 relative to the sum of |terms| */
      double err = max_rel(&y, ref, 1.0), tol = wdt ? 4.0 / 256 : 1e-5;
      g_test_message("linear %s M%lld K%lld N%lld: max rel err %.2e (tol %.0e)",
                     bk_dtype_name(dt), (long long)M, (long long)K, (long long)N, err, tol);
      g_assert_cmpfloat(err, <=, tol);
      g_free(ref);
      g_free(x.mem); g_free(w.mem); g_free(b.mem); g_free(y.mem);
    }
  }
  /* a shape mismatch is reported, not crashed on */
  Buf x = buf2(BK_F32, 2, 3), w = buf2(BK_F32, 4, 5), y = buf2(BK_F32, 2, 4);
  be->ops->linear(be, &y.t, &x.t, &w.t, NULL);
  g_assert_false(bk_ok(be));
  g_assert_nonnull(strstr(be->error, "linear"));
  bk_clear_error(be);
  g_free(x.mem); g_free(w.mem); g_free(y.mem);
}

static void test_rms_norm(void) {
  const int64_t R = 5, D = 37;
  Buf w = buf(BK_BF16, 1, (int64_t[]){D});
  fill(&w, 1.5);
  for (int bf = 0; bf < 2; bf++) {
    BkDType dt = bf ? BK_BF16 : BK_F32;
    Buf x = buf2(dt, R, D), y = buf2(dt, R, D);
    fill(&x, 3);
    be->ops->rms_norm(be, &y.t, &x.t, &w.t, 1e-6f);
    CHECK_OK();
    for (int64_t r = 0; r < R; r++) {
      double ss = 0;
      for (int64_t i = 0; i < D; i++) ss += (double)at(&x, r * D + i) * at(&x, r * D + i);
      double rstd = 1.0 / sqrt(ss / D + 1e-6);
      for (int64_t i = 0; i < D; i++) {
        double n = at(&x, r * D + i) * rstd;
        double want = bf ? bk_round_bf16(at(&w, i) * bk_round_bf16((float)n)) : at(&w, i) * n;
        double got = at(&y, r * D + i);
        /* bf16 recipe: identical roundings, so at most one bf16 ulp apart */
        double tol = bf ? fabs(want) * (1.0 / 128) + 1e-30 : fabs(want) * 1e-5 + 1e-7;
        if (fabs(got - want) > tol) g_error("rms_norm %s [%lld,%lld]: %g vs %g", bk_dtype_name(dt),
                                            (long long)r, (long long)i, got, want);
      }
    }
    g_free(x.mem);
    g_free(y.mem);
  }
  g_free(w.mem);
}

static void test_layer_norm(void) {
  const int64_t R = 4, D = 45;
  Buf x = buf2(BK_BF16, R, D), y = buf2(BK_F32, R, D), w = buf(BK_BF16, 1, (int64_t[]){D}),
      b = buf(BK_BF16, 1, (int64_t[]){D});
  fill(&x, 4);
  fill(&w, 1);
  fill(&b, 1);
  be->ops->layer_norm(be, &y.t, &x.t, &w.t, &b.t, 1e-6f);
  CHECK_OK();
  double *ref = g_new(double, R * D);
  for (int64_t r = 0; r < R; r++) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < D; i++) m += at(&x, r * D + i);
    m /= D;
    for (int64_t i = 0; i < D; i++) v += pow(at(&x, r * D + i) - m, 2);
    v /= D;
    for (int64_t i = 0; i < D; i++)
      ref[r * D + i] = (at(&x, r * D + i) - m) / sqrt(v + 1e-6) * at(&w, i) + at(&b, i);
  }
  double err = max_rel(&y, ref, 1.0);
  g_test_message("layer_norm max err %.2e", err);
  g_assert_cmpfloat(err, <=, 2e-6);
  g_free(ref);
  g_free(x.mem); g_free(y.mem); g_free(w.mem); g_free(b.mem);
}

static void test_rope(void) {
  const int64_t L = 6, H = 3, D = 16;
  const float theta = 1e6f;
  for (int bf = 0; bf < 2; bf++) {
    BkDType dt = bf ? BK_BF16 : BK_F32;
    for (int step = 0; step < 2; step++) {
      Buf x = buf(dt, 3, (int64_t[]){L, H, D}), y = buf(dt, 3, (int64_t[]){L, H, D});
      fill(&x, 2);
      const int64_t pos0 = 1000;
      be->ops->rope(be, &y.t, &x.t, pos0, step, theta);
      CHECK_OK();
      for (int64_t i = 0; i < L; i++)
        for (int64_t h = 0; h < H; h++)
          for (int64_t d = 0; d < D; d++) {
            int64_t k = d % (D / 2);
            double ang = (double)(pos0 + i * step) / pow(theta, 2.0 * k / D);
            double xr = d < D / 2 ? -at(&x, (i * H + h) * D + d + D / 2)
                                  : at(&x, (i * H + h) * D + d - D / 2);
            double want = at(&x, (i * H + h) * D + d) * cos(ang) + xr * sin(ang);
            double got = at(&y, (i * H + h) * D + d);
            /* cos/sin are bf16 values: errors up to ~2^-8 of |x| per term */
            double tol = (fabs(at(&x, (i * H + h) * D + d)) + fabs(xr)) * (bf ? 3.0 / 256 : 1.0 / 256) + 1e-6;
            if (fabs(got - want) > tol)
              g_error("rope %s step %d [%lld,%lld,%lld]: %g vs %g", bk_dtype_name(dt), step,
                      (long long)i, (long long)h, (long long)d, got, want);
          }
      /* pos_step 0: every row sees the same angle, so identical inputs give identical rows */
      g_free(x.mem);
      g_free(y.mem);
    }
  }
  /* in place works */
  Buf x = buf(BK_BF16, 3, (int64_t[]){2, 1, 4}), y = buf(BK_BF16, 3, (int64_t[]){2, 1, 4});
  fill(&x, 1);
  be->ops->rope(be, &y.t, &x.t, 3, 1, 10000.0f);
  be->ops->rope(be, &x.t, &x.t, 3, 1, 10000.0f);
  g_assert_cmpmem(x.mem, 16, y.mem, 16);
  /* position 0 is the identity */
  be->ops->rope(be, &y.t, &x.t, 0, 0, 10000.0f);
  g_assert_cmpmem(x.mem, 16, y.mem, 16);
  g_free(x.mem);
  g_free(y.mem);
}

static void test_pointwise(void) {
  const int64_t n = 257;
  Buf g = buf2(BK_BF16, 1, n), u = buf2(BK_BF16, 1, n), y = buf2(BK_BF16, 1, n);
  fill(&g, 6);
  fill(&u, 2);
  be->ops->silu_mul(be, &y.t, &g.t, &u.t);
  CHECK_OK();
  for (int64_t i = 0; i < n; i++) {
    double gv = at(&g, i);
    double want = bk_round_bf16(bk_round_bf16((float)(gv / (1 + exp(-gv)))) * at(&u, i));
    g_assert_cmpfloat(fabs(at(&y, i) - want), <=, fabs(want) / 128 + 1e-30);
  }
  be->ops->gelu_tanh(be, &y.t, &g.t);
  for (int64_t i = 0; i < n; i++) {
    double v = at(&g, i);
    double want = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    g_assert_cmpfloat(fabs(at(&y, i) - want), <=, fabs(want) / 128 + 1e-6);
  }
  /* add with broadcast and rounding into bf16; scale_shift; convert */
  Buf a = buf2(BK_F32, 3, 5), b = buf2(BK_BF16, 1, 5), s = buf2(BK_BF16, 3, 5);
  fill(&a, 3);
  fill(&b, 3);
  be->ops->add(be, &s.t, &a.t, &b.t);
  for (int64_t i = 0; i < 15; i++)
    g_assert_cmpfloat(at(&s, i), ==, bk_round_bf16(at(&a, i) + at(&b, i % 5)));
  Buf f = buf2(BK_F32, 3, 5);
  be->ops->scale_shift(be, &f.t, &a.t, 0.5f, -1.0f);
  for (int64_t i = 0; i < 15; i++) g_assert_cmpfloat(at(&f, i), ==, at(&a, i) * 0.5f - 1.0f);
  be->ops->convert(be, &s.t, &a.t);
  for (int64_t i = 0; i < 15; i++) g_assert_cmpfloat(at(&s, i), ==, bk_round_bf16(at(&a, i)));
  /* into f16: IEEE binary16 bits (a bug once stored bf16 bits there) */
  Buf h32 = buf2(BK_F32, 1, 6), h16 = buf2(BK_F16, 1, 6);
  const float hv[6] = {1.0f / 3.0f, -2.5f, 65504.0f, 70000.0f, 1e-7f, 0.0f};
  const uint16_t hbits[6] = {0x3555, 0xc100, 0x7bff, 0x7c00, 0x0002, 0x0000};
  memcpy(h32.mem, hv, sizeof hv);
  be->ops->convert(be, &h16.t, &h32.t);
  for (int i = 0; i < 6; i++) g_assert_cmphex(((uint16_t *)h16.mem)[i], ==, hbits[i]);
  g_free(h32.mem); g_free(h16.mem);
  CHECK_OK();
  g_free(g.mem); g_free(u.mem); g_free(y.mem); g_free(a.mem); g_free(b.mem); g_free(s.mem);
  g_free(f.mem);
}

static void test_gather_transpose_pack(void) {
  Buf table = buf2(BK_BF16, 10, 6), y = buf2(BK_BF16, 3, 6);
  fill(&table, 1);
  int32_t ids[3] = {9, 0, 4};
  be->ops->gather_rows(be, &y.t, &table.t, ids);
  for (int r = 0; r < 3; r++)
    g_assert_cmpmem((uint16_t *)y.mem + r * 6, 12, (uint16_t *)table.mem + ids[r] * 6, 12);
  int32_t bad[3] = {0, 10, 1};
  be->ops->gather_rows(be, &y.t, &table.t, bad);
  g_assert_false(bk_ok(be));
  bk_clear_error(be);

  Buf x = buf2(BK_F32, 37, 45), t = buf2(BK_F32, 45, 37);
  fill(&x, 1);
  be->ops->transpose(be, &t.t, &x.t);
  for (int r = 0; r < 37; r++)
    for (int c = 0; c < 45; c++) g_assert_cmpfloat(at(&t, c * 37 + r), ==, at(&x, r * 45 + c));

  /* latent pack: z[C, 2h, 2w] -> tokens[h·w, 4C], element (py·2+px)·C + c; and back */
  const int64_t C = 3, h = 2, w = 3;
  Buf z = buf(BK_F32, 3, (int64_t[]){C, 2 * h, 2 * w}), tok = buf2(BK_F32, h * w, 4 * C);
  Buf z2 = buf(BK_F32, 3, (int64_t[]){C, 2 * h, 2 * w});
  fill(&z, 1);
  be->ops->latent_pack(be, &tok.t, &z.t);
  for (int64_t r = 0; r < h; r++)
    for (int64_t c = 0; c < w; c++)
      for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++)
          for (int64_t ch = 0; ch < C; ch++)
            g_assert_cmpfloat(at(&tok, (r * w + c) * 4 * C + (py * 2 + px) * C + ch), ==,
                              at(&z, (ch * 2 * h + 2 * r + py) * 2 * w + 2 * c + px));
  be->ops->latent_unpack(be, &z2.t, &tok.t);
  g_assert_cmpmem(z.mem, bk_nbytes(&z.t), z2.mem, bk_nbytes(&z.t));
  CHECK_OK();
  g_free(table.mem); g_free(y.mem); g_free(x.mem); g_free(t.mem); g_free(z.mem); g_free(tok.mem);
  g_free(z2.mem);
}

/* naive attention in double over the concatenated keys */
static void attn_ref(const Buf *q, const Buf *kc, const Buf *vc, const Buf *kn, const Buf *vn,
                     int64_t Lc, int causal, float scale, double *out) {
  int64_t Lq = q->t.ne[0], Hq = q->t.ne[1], D = q->t.ne[2], Hkv = kn->t.ne[1];
  for (int64_t i = 0; i < Lq; i++)
    for (int64_t h = 0; h < Hq; h++) {
      int64_t hk = h / (Hq / Hkv), vis = causal ? Lc + i + 1 : Lc + Lq;
      double *s = g_new(double, vis), mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < vis; j++) {
        const Buf *K = j < Lc ? kc : kn;
        int64_t jj = j < Lc ? j : j - Lc;
        double d = 0;
        for (int64_t e = 0; e < D; e++) d += at(q, (i * Hq + h) * D + e) * at(K, (jj * Hkv + hk) * D + e);
        s[j] = d * scale;
        mx = fmax(mx, s[j]);
      }
      for (int64_t j = 0; j < vis; j++) sum += (s[j] = exp(s[j] - mx));
      for (int64_t e = 0; e < D; e++) {
        double acc = 0;
        for (int64_t j = 0; j < vis; j++) {
          const Buf *V = j < Lc ? vc : vn;
          int64_t jj = j < Lc ? j : j - Lc;
          acc += s[j] * at(V, (jj * Hkv + hk) * D + e);
        }
        out[(i * Hq + h) * D + e] = acc / sum;
      }
      g_free(s);
    }
}

static void test_attention(void) {
  const struct { int64_t Lq, Lc, Hq, Hkv, D; int causal; BkDType dt; } cases[] = {
    {5, 0, 4, 2, 16, 1, BK_BF16},   /* text prefill, empty cache */
    {4, 7, 4, 2, 16, 1, BK_BF16},   /* text prefill after a cache: bottom-right */
    {1, 9, 6, 2, 8, 1, BK_BF16},    /* decode step */
    {9, 11, 4, 1, 16, 0, BK_BF16},  /* image block, full, GQA 4:1 */
    {7, 0, 2, 2, 18, 0, BK_BF16},   /* SigLIP-like, head dim not a power of two */
    {33, 0, 1, 1, 40, 0, BK_F32},   /* VAE mid-block: one head, fp32 */
  };
  for (unsigned c = 0; c < G_N_ELEMENTS(cases); c++) {
    int64_t Lq = cases[c].Lq, Lc = cases[c].Lc, Hq = cases[c].Hq, Hkv = cases[c].Hkv,
            D = cases[c].D;
    BkDType dt = cases[c].dt;
    Buf q = buf(dt, 3, (int64_t[]){Lq, Hq, D}), o = buf(dt, 3, (int64_t[]){Lq, Hq, D});
    Buf kn = buf(dt, 3, (int64_t[]){Lq, Hkv, D}), vn = buf(dt, 3, (int64_t[]){Lq, Hkv, D});
    Buf kc = buf(dt, 3, (int64_t[]){Lc ? Lc : 1, Hkv, D}), vc = buf(dt, 3, (int64_t[]){Lc ? Lc : 1, Hkv, D});
    kc.t.ne[0] = vc.t.ne[0] = Lc;
    fill(&q, 2); fill(&kn, 2); fill(&vn, 2); fill(&kc, 2); fill(&vc, 2);
    float scale = 1.0f / sqrtf((float)D);
    be->ops->attention(be, &o.t, &q.t, Lc ? &kc.t : NULL, Lc ? &vc.t : NULL, &kn.t, &vn.t,
                       cases[c].causal ? BK_CAUSAL_BOTTOM_RIGHT : BK_CAUSAL_NONE, scale);
    CHECK_OK();
    double *ref = g_new(double, Lq * Hq * D);
    attn_ref(&q, &kc, &vc, &kn, &vn, Lc, cases[c].causal, scale, ref);
    double err = max_rel(&o, ref, 0.5), tol = dt == BK_BF16 ? 1.0 / 128 : 1e-5;
    g_test_message("attention case %u (Lq %lld Lc %lld %lld/%lld heads D %lld %s): max err %.2e",
                   c, (long long)Lq, (long long)Lc, (long long)Hq, (long long)Hkv, (long long)D,
                   cases[c].causal ? "causal" : "full", err);
    g_assert_cmpfloat(err, <=, tol);
    g_free(ref);
    g_free(q.mem); g_free(o.mem); g_free(kn.mem); g_free(vn.mem); g_free(kc.mem); g_free(vc.mem);
  }
}

/* bf16 GEMM: pairs (k, k+1) with the odd term first (VDPBF16PS).  x = [1, 0, −1, 2^-24],
 * w = 1: pair order (0+1) + 2^-24 → 1 (tie to even), then −1 → 0; k-sequential order
 * gives 2^-24. */
static void test_order_linear(void) {
  float xv[4] = {1.0f, 0.0f, -1.0f, 0x1p-24f};
  uint16_t wv[4], yv[1];
  for (int k = 0; k < 4; k++) wv[k] = bk_f32_to_bf16(1.0f);
  BkTensor x = bk_tensor_2d(xv, BK_F32, 1, 4), w = bk_tensor_2d(wv, BK_BF16, 1, 4),
           y = bk_tensor_2d(yv, BK_BF16, 1, 1);
  be->ops->linear(be, &y, &x, &w, NULL);
  CHECK_OK();
  g_assert_cmpfloat(bk_bf16_to_f32(yv[0]), ==, 0.0f);
  /* an odd K ends with the last term alone: [1, 2, 3, 4, 5, 6, 7]·1 = 28 exactly */
  float x7[7] = {1, 2, 3, 4, 5, 6, 7};
  uint16_t w7[7];
  for (int k = 0; k < 7; k++) w7[k] = bk_f32_to_bf16(1.0f);
  x = bk_tensor_2d(x7, BK_F32, 1, 7);
  w = bk_tensor_2d(w7, BK_BF16, 1, 7);
  be->ops->linear(be, &y, &x, &w, NULL);
  CHECK_OK();
  g_assert_cmpfloat(bk_bf16_to_f32(yv[0]), ==, 28.0f);
}

/* SLEEF expf_u10 values (from libsleef's AVX512 build); the last six are inputs where
 * glibc's expf returns the neighbouring float. */
static void test_order_exp(void) {
  static const float cases[][2] = {
    {-0x1p-1f, 0x1.368b3p-1f},       {-0x1p+0f, 0x1.78b564p-2f},
    {-0x1.ep+1f, 0x1.815094p-6f},    {-0x1.4p+3f, 0x1.7cd79cp-15f},
    {-0x1.48p+4f, 0x1.57a3bp-30f},   {-0x1.5ep+6f, 0x1.b2cafp-127f},
    {-0x1.9p+6f, 0x1.bp-145f},       {-0x1.a2p+6f, 0.0f},
    {0.0f, 1.0f},                    {0x1p+0f, 0x1.5bf0a8p+1f},
    {0x1.6p+2f, 0x1.e96244p+7f},     {0x1.6p+6f, 0x1.f1056ep+126f},
    {-0x1.02e668p-3f, 0x1.c332f4p-1f}, {-0x1.03a002p-3f, 0x1.c30a14p-1f},
    {-0x1.08f116p-3f, 0x1.c1deb4p-1f}, {-0x1.0c533ap-3f, 0x1.c1209cp-1f},
    {-0x1.0d4ab2p-3f, 0x1.c0ea58p-1f}, {-0x1.0f39a2p-3f, 0x1.c07de8p-1f},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++)
    if (cpu_expf(cases[i][0]) != cases[i][1])
      g_error("cpu_expf(%a) = %a, SLEEF gives %a", cases[i][0], cpu_expf(cases[i][0]),
              cases[i][1]);
  g_assert_true(isinf(cpu_expf(101.0f)) && cpu_expf(-INFINITY) == 0.0f && isnan(cpu_expf(NAN)));
}

/* Reductions on [1, 2^-24, 2^-24, …]: every order gives another answer.
 *   k-sequential: 1 (each 2^-24 is a tie, rounded back to 1);
 *   cpu_sum16 (softmax), n = 32: lanes 1..15 hold 2^-23, folded l+8, l+4, l+2, l+1
 *     onto lane 0 → 1 + 15·2^-23 (fp64 would give 1 + 16·2^-23);
 *   cpu_sum8_cascade (RMSNorm mean), n = 64: 4 accumulators of 8 lanes over 2 rows of 4
 *     vectors, folded 0+1+2+3, lanes added to 0 → 1 + 31·2^-23 (fp64: 1 + 32·2^-23). */
static void test_order_reductions(void) {
  float v[64];
  v[0] = 1.0f;
  for (int i = 1; i < 64; i++) v[i] = 0x1p-24f;
  g_assert_cmpfloat(cpu_sum16(v, 32), ==, 1.0f + 15 * 0x1p-23f);
  g_assert_cmpfloat(cpu_sum8_cascade(v, 64), ==, 1.0f + 31 * 0x1p-23f);
  /* short rows: cpu_sum16 is left to right below 16 values */
  g_assert_cmpfloat(cpu_sum16(v, 15), ==, 1.0f);
  /* RMSNorm goes through the cascade: mean(x²) of the row (x² = v) is (1 + 31·2^-23)/64 */
  float xr[64];
  for (int i = 0; i < 64; i++) xr[i] = sqrtf(v[i]);
  for (int i = 0; i < 64; i++) g_assert_cmpfloat(xr[i] * xr[i], ==, v[i]);
  uint16_t wv[64];
  for (int i = 0; i < 64; i++) wv[i] = bk_f32_to_bf16(1.0f);
  float yr[64];
  BkTensor x = bk_tensor_2d(xr, BK_F32, 1, 64), w = bk_tensor_2d(wv, BK_BF16, 1, 64),
           y = bk_tensor_2d(yr, BK_F32, 1, 64);
  be->ops->rms_norm(be, &y, &x, &w, 0.0f);
  CHECK_OK();
  const float rstd = 1.0f / sqrtf((1.0f + 31 * 0x1p-23f) / 64.0f);
  g_assert_cmpfloat(yr[0], ==, 1.0f * rstd);
}

/* Attention, fp32 output (no final rounding), against the recipe of docs/numerics.md
 * written out plainly: q, k scaled by sqrt(scale); scores in order; SLEEF exp; 16-lane
 * sum over the whole row (masked keys are zeros); P normalised before P·V; P·V in order
 * without FMA.  Bit-identical, and measurably different from normalising at the end. */
static void test_order_attention(void) {
  const int64_t Lq = 5, Lc = 17, Hq = 4, Hkv = 2, D = 16, Lk = Lc + Lq;
  Buf q = buf(BK_BF16, 3, (int64_t[]){Lq, Hq, D}), o = buf(BK_F32, 3, (int64_t[]){Lq, Hq, D});
  Buf kn = buf(BK_BF16, 3, (int64_t[]){Lq, Hkv, D}), vn = buf(BK_BF16, 3, (int64_t[]){Lq, Hkv, D});
  Buf kc = buf(BK_BF16, 3, (int64_t[]){Lc, Hkv, D}), vc = buf(BK_BF16, 3, (int64_t[]){Lc, Hkv, D});
  fill(&q, 2); fill(&kn, 2); fill(&vn, 2); fill(&kc, 2); fill(&vc, 2);
  const float scale = 1.0f / sqrtf(12.0f), sf = (float)sqrt((double)scale);
  int64_t end_norm_diffs = 0;
  for (int causal = 0; causal < 2; causal++) {
    be->ops->attention(be, &o.t, &q.t, &kc.t, &vc.t, &kn.t, &vn.t,
                       causal ? BK_CAUSAL_BOTTOM_RIGHT : BK_CAUSAL_NONE, scale);
    CHECK_OK();
    for (int64_t i = 0; i < Lq; i++)
      for (int64_t h = 0; h < Hq; h++) {
        const int64_t hk = h / (Hq / Hkv), vis = causal ? Lc + i + 1 : Lk;
        float e[32], mx = -INFINITY;   /* Lk = 22 */
        for (int64_t j = 0; j < Lk; j++) {
          const Buf *K = j < Lc ? &kc : &kn;
          const int64_t jj = j < Lc ? j : j - Lc;
          float d = 0;
          for (int64_t c = 0; c < D; c++)
            d += (at(&q, (i * Hq + h) * D + c) * sf) * (at(K, (jj * Hkv + hk) * D + c) * sf);
          e[j] = j < vis ? d : -INFINITY;
          mx = fmaxf(mx, e[j]);
        }
        for (int64_t j = 0; j < Lk; j++) e[j] = cpu_expf(e[j] - mx);
        const float sum = cpu_sum16(e, Lk), inv = 1.0f / sum;
        for (int64_t c = 0; c < D; c++) {
          float acc = 0, acc_end = 0;
          for (int64_t j = 0; j < vis; j++) {
            const Buf *V = j < Lc ? &vc : &vn;
            const float v = at(V, ((j < Lc ? j : j - Lc) * Hkv + hk) * D + c);
            acc += (e[j] * inv) * v;
            acc_end += e[j] * v;
          }
          const float got = at(&o, (i * Hq + h) * D + c);
          if (got != acc)
            g_error("attention %s [%lld,%lld,%lld]: %a, recipe %a", causal ? "causal" : "full",
                    (long long)i, (long long)h, (long long)c, got, acc);
          end_norm_diffs += acc_end * inv != acc;
        }
      }
  }
  g_test_message("normalising after P.V would change %" G_GINT64_FORMAT " of %lld outputs",
                 end_norm_diffs, (long long)(2 * Lq * Hq * D));
  g_assert_cmpint(end_norm_diffs, >, 0);
  g_free(q.mem); g_free(o.mem); g_free(kn.mem); g_free(vn.mem); g_free(kc.mem); g_free(vc.mem);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  be = bk_cpu_new(0);
  rng = g_rand_new_with_seed(1234);
  g_test_add_func("/ops-cpu/linear", test_linear);
  g_test_add_func("/ops-cpu/rms-norm", test_rms_norm);
  g_test_add_func("/ops-cpu/layer-norm", test_layer_norm);
  g_test_add_func("/ops-cpu/rope", test_rope);
  g_test_add_func("/ops-cpu/pointwise", test_pointwise);
  g_test_add_func("/ops-cpu/gather-transpose-pack", test_gather_transpose_pack);
  g_test_add_func("/ops-cpu/attention", test_attention);
  g_test_add_func("/ops-cpu/order-linear", test_order_linear);
  g_test_add_func("/ops-cpu/order-exp", test_order_exp);
  g_test_add_func("/ops-cpu/order-reductions", test_order_reductions);
  g_test_add_func("/ops-cpu/order-attention", test_order_attention);
  int rc = g_test_run();
  g_rand_free(rng);
  bk_backend_free(be);
  return rc;
}
