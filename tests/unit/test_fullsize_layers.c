/* tests/unit/test_fullsize_layers.c — the real BAGEL-7B-MoT shapes, not only the tiny
 * ones: one LLM-MoT layer at full width (hidden 3584, MLP 18944, 28 heads over 4 KV heads
 * of 128) and one SigLIP layer + connector at full width (1152, 16 heads of 72, MLP 4304,
 * into 3584), on random bf16 weights, against a naive fp64 implementation written here
 * from the spec (§1.1–1.4, §4) with no intermediate rounding.  Our forward rounds to
 * bf16 where the official dtype flow does, so the tolerance is that rounding's scale
 * (rel L2 ≤ 2e-2; typical figures are printed).
 *
 * The LLM check runs a text segment (und, causal, appended to the cache) followed by a
 * denoise-style gen-mode block ([und marker | gen rows | und marker], full attention over
 * the cache and itself, RoPE position shared by the block), covering MoT routing, both
 * QK-norm recipes, GQA and the cache. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "llm.h"
#include "vit.h"

static BkBackend *be;
static guint64 rng_state = 0x9e3779b97f4a7c15ull;

static double urand(void) {   /* xorshift64*, [−1, 1) */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-52 - 1.0;
}

/* A bf16 tensor of random values (uniform · scale + offset); host memory for the CPU
 * backend.  Freed with the test. */
static GPtrArray *allocs;
static BkTensor rnd(int nd, const int64_t *ne, double scale, double offset) {
  BkTensor t = bk_tensor(NULL, BK_BF16, nd, ne);
  uint16_t *p = g_malloc(bk_nbytes(&t));
  for (int64_t i = 0; i < bk_numel(&t); i++) p[i] = bk_f32_to_bf16((float)(urand() * scale + offset));
  t.data = p;
  g_ptr_array_add(allocs, p);
  return t;
}
static BkTensor rnd2(int64_t r, int64_t c, double scale) { return rnd(2, (int64_t[]){r, c}, scale, 0); }
static BkTensor rnd1(int64_t n, double scale, double offset) { return rnd(1, (int64_t[]){n}, scale, offset); }
static double at(const BkTensor *t, int64_t i) { return bk_bf16_to_f32(((const uint16_t *)t->data)[i]); }

/* ---- fp64 reference pieces ----------------------------------------------------------- */

static void ref_linear(const double *x, int64_t M, int64_t K, const BkTensor *w, const BkTensor *b,
                       int64_t N, double *y) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double s = b ? at(b, n) : 0;
      const uint16_t *wr = (const uint16_t *)w->data + n * K;
      for (int64_t k = 0; k < K; k++) s += x[m * K + k] * bk_bf16_to_f32(wr[k]);
      y[m * N + n] = s;
    }
}

static void ref_rms(double *x, int64_t rows, int64_t D, const BkTensor *w, double eps) {
  for (int64_t r = 0; r < rows; r++) {
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += x[r * D + i] * x[r * D + i];
    double s = 1.0 / sqrt(ss / D + eps);
    for (int64_t i = 0; i < D; i++) x[r * D + i] *= s * at(w, i);
  }
}

static void ref_layernorm(const double *x, double *y, int64_t rows, int64_t D, const BkTensor *w,
                          const BkTensor *b) {
  for (int64_t r = 0; r < rows; r++) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < D; i++) m += x[r * D + i];
    m /= D;
    for (int64_t i = 0; i < D; i++) v += (x[r * D + i] - m) * (x[r * D + i] - m);
    v /= D;
    for (int64_t i = 0; i < D; i++) y[r * D + i] = (x[r * D + i] - m) / sqrt(v + 1e-6) * at(w, i) + at(b, i);
  }
}

static void ref_rope(double *x, int64_t rows, int64_t H, int64_t d, int64_t pos0, int step,
                     double theta) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t h = 0; h < H; h++) {
      double *v = x + (r * H + h) * d;
      double tmp[256];
      memcpy(tmp, v, sizeof(double) * d);
      for (int64_t i = 0; i < d; i++) {
        int64_t k = i % (d / 2);
        double ang = (double)(pos0 + r * step) * pow(theta, -2.0 * k / d);
        double rot = i < d / 2 ? -tmp[i + d / 2] : tmp[i - d / 2];
        v[i] = tmp[i] * cos(ang) + rot * sin(ang);
      }
    }
}

/* o[L,Hq,d] = softmax over [cache keys | block keys] */
static void ref_attention(const double *q, int64_t L, int64_t Hq, int64_t d, const double *kc,
                          const double *vc, int64_t Lc, const double *kn, const double *vn,
                          int64_t Hkv, gboolean causal, double *o) {
  for (int64_t i = 0; i < L; i++)
    for (int64_t h = 0; h < Hq; h++) {
      int64_t hk = h / (Hq / Hkv), vis = causal ? Lc + i + 1 : Lc + L;
      double *s = g_new(double, vis), mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < vis; j++) {
        const double *k = j < Lc ? kc + (j * Hkv + hk) * d : kn + ((j - Lc) * Hkv + hk) * d;
        double dot = 0;
        for (int64_t e = 0; e < d; e++) dot += q[(i * Hq + h) * d + e] * k[e];
        s[j] = dot / sqrt((double)d);
        mx = fmax(mx, s[j]);
      }
      for (int64_t j = 0; j < vis; j++) sum += (s[j] = exp(s[j] - mx));
      for (int64_t e = 0; e < d; e++) {
        double acc = 0;
        for (int64_t j = 0; j < vis; j++) {
          const double *v = j < Lc ? vc + (j * Hkv + hk) * d : vn + ((j - Lc) * Hkv + hk) * d;
          acc += s[j] * v[e];
        }
        o[(i * Hq + h) * d + e] = acc / sum;
      }
      g_free(s);
    }
}

static double rel_l2(const BkTensor *ours, const double *ref) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < bk_numel(ours); i++) {
    double v = at(ours, i);
    num += (v - ref[i]) * (v - ref[i]);
    den += ref[i] * ref[i];
  }
  return sqrt(num / den);
}

/* ---- LLM layer ------------------------------------------------------------------------ */

static void rand_expert(LlmExpert *e, const LlmConfig *c) {
  const int64_t D = c->hidden, KV = (int64_t)c->kv_heads * c->head_dim, I = c->intermediate;
  const double sD = sqrt(3.0 / D), sI = sqrt(3.0 / I);   /* unit-variance outputs */
  e->q_w = rnd2(D, D, sD); e->q_b = rnd1(D, 0.1, 0);
  e->k_w = rnd2(KV, D, sD); e->k_b = rnd1(KV, 0.1, 0);
  e->v_w = rnd2(KV, D, sD); e->v_b = rnd1(KV, 0.1, 0);
  e->o_w = rnd2(D, D, sD);
  e->q_norm = rnd1(c->head_dim, 0.2, 1); e->k_norm = rnd1(c->head_dim, 0.2, 1);
  e->gate = rnd2(I, D, sD); e->up = rnd2(I, D, sD); e->down = rnd2(D, I, sI);
  e->ln_in = rnd1(D, 0.2, 1); e->ln_post = rnd1(D, 0.2, 1);
}

/* One reference layer over a block; rows [0,u0) und, [u0,u0+g) gen, rest und. Appends the
 * block's K/V to the reference cache when `append`. */
static void ref_layer(const LlmConfig *c, const LlmLayer *ly, double *x, int64_t L, int64_t u0,
                      int64_t g, int64_t pos0, int step, gboolean causal, double *kc, double *vc,
                      int64_t *Lc, gboolean append) {
  const int64_t D = c->hidden, hd = c->head_dim, Hq = c->heads, Hkv = c->kv_heads,
                KV = Hkv * hd, I = c->intermediate;
  double *h = g_new(double, L * D), *q = g_new(double, L * D), *k = g_new(double, L * KV),
         *v = g_new(double, L * KV), *o = g_new(double, L * D), *t = g_new(double, L * D);
  double *gt = g_new(double, L * I), *up = g_new(double, L * I);
  for (int64_t r = 0; r < L; r++) {
    const LlmExpert *e = r >= u0 && r < u0 + g ? &ly->gen : &ly->und;
    memcpy(h + r * D, x + r * D, sizeof(double) * D);
    ref_rms(h + r * D, 1, D, &e->ln_in, c->rms_eps);
    ref_linear(h + r * D, 1, D, &e->q_w, &e->q_b, D, q + r * D);
    ref_linear(h + r * D, 1, D, &e->k_w, &e->k_b, KV, k + r * KV);
    ref_linear(h + r * D, 1, D, &e->v_w, &e->v_b, KV, v + r * KV);
    ref_rms(q + r * D, Hq, hd, &e->q_norm, c->rms_eps);
    ref_rms(k + r * KV, Hkv, hd, &e->k_norm, c->rms_eps);
  }
  ref_rope(q, L, Hq, hd, pos0, step, c->rope_theta);
  ref_rope(k, L, Hkv, hd, pos0, step, c->rope_theta);
  ref_attention(q, L, Hq, hd, kc, vc, *Lc, k, v, Hkv, causal, o);
  for (int64_t r = 0; r < L; r++) {
    const LlmExpert *e = r >= u0 && r < u0 + g ? &ly->gen : &ly->und;
    ref_linear(o + r * D, 1, D, &e->o_w, NULL, D, t + r * D);
    for (int64_t i = 0; i < D; i++) x[r * D + i] += t[r * D + i];
    memcpy(h + r * D, x + r * D, sizeof(double) * D);
    ref_rms(h + r * D, 1, D, &e->ln_post, c->rms_eps);
    ref_linear(h + r * D, 1, D, &e->gate, NULL, I, gt + r * I);
    ref_linear(h + r * D, 1, D, &e->up, NULL, I, up + r * I);
    for (int64_t i = 0; i < I; i++) {
      double a = gt[r * I + i];
      gt[r * I + i] = a / (1 + exp(-a)) * up[r * I + i];
    }
    ref_linear(gt + r * I, 1, I, &e->down, NULL, D, t + r * D);
    for (int64_t i = 0; i < D; i++) x[r * D + i] += t[r * D + i];
  }
  if (append) {
    memcpy(kc + *Lc * KV, k, sizeof(double) * L * KV);
    memcpy(vc + *Lc * KV, v, sizeof(double) * L * KV);
    *Lc += L;
  }
  g_free(h); g_free(q); g_free(k); g_free(v); g_free(o); g_free(t); g_free(gt); g_free(up);
}

static void test_llm_layer(void) {
  LlmModel m = {0};
  m.be = be;
  m.cfg = (LlmConfig){.hidden = 3584, .layers = 1, .heads = 28, .kv_heads = 4, .head_dim = 128,
                      .intermediate = 18944, .vocab = 16, .rms_eps = 1e-6, .rope_theta = 1e6};
  LlmLayer layer;
  rand_expert(&layer.und, &m.cfg);
  rand_expert(&layer.gen, &m.cfg);
  m.layers = &layer;
  m.norm = rnd1(3584, 0.2, 1);
  m.norm_gen = rnd1(3584, 0.2, 1);
  const int64_t D = 3584, KV = 512;
  GError *err = NULL;
  KvStore *kv = kv_new(be, &m.cfg, 16, &err);
  g_assert_no_error(err);
  Arena a;
  arena_init(&a, be, 64 << 20);
  double *kc = g_new0(double, 16 * KV), *vc = g_new0(double, 16 * KV);
  int64_t Lc = 0;

  /* 1: a text segment of 5 tokens at positions 3..7, causal, appended */
  const int64_t L1 = 5;
  BkTensor x1 = rnd2(L1, D, 1.0);
  double *r1 = g_new(double, L1 * D);
  for (int64_t i = 0; i < L1 * D; i++) r1[i] = at(&x1, i);
  LlmBlock b1 = {.und_head = L1, .pos0 = 3, .pos_step = 1, .causal = BK_CAUSAL_BOTTOM_RIGHT};
  BkTensor out1 = bk_tensor_2d(g_malloc(L1 * D * 2), BK_BF16, L1, D);
  g_ptr_array_add(allocs, out1.data);
  g_assert_true(llm_forward(&m, &a, &x1, &b1, kv, 0, TRUE, &out1, NULL, NULL, &err));
  ref_layer(&m.cfg, &layer, r1, L1, L1, 0, 3, 1, TRUE, kc, vc, &Lc, TRUE);
  ref_rms(r1, L1, D, &m.norm, 1e-6);
  double e1 = rel_l2(&out1, r1);
  BkTensor kcache = kv_rows(kv, FALSE, 0, 0, L1), vcache = kv_rows(kv, TRUE, 0, 0, L1);
  double ek = rel_l2(&kcache, kc), ev = rel_l2(&vcache, vc);
  g_test_message("LLM text block (und, causal): out rel L2 %.2e, K cache %.2e, V cache %.2e",
                 e1, ek, ev);
  g_assert_cmpfloat(e1, <=, 2e-2);
  g_assert_cmpfloat(ek, <=, 2e-2);
  g_assert_cmpfloat(ev, <=, 2e-2);

  /* 2: a gen-mode block [und | 4 gen | und], full attention over the cache, one position */
  const int64_t L2 = 6;
  BkTensor x2 = rnd2(L2, D, 1.0);
  double *r2 = g_new(double, L2 * D);
  for (int64_t i = 0; i < L2 * D; i++) r2[i] = at(&x2, i);
  LlmBlock b2 = {.und_head = 1, .gen = 4, .und_tail = 1, .gen_mode = TRUE, .pos0 = 8,
                 .pos_step = 0, .causal = BK_CAUSAL_NONE};
  BkTensor out2 = bk_tensor_2d(g_malloc(L2 * D * 2), BK_BF16, L2, D);
  g_ptr_array_add(allocs, out2.data);
  g_assert_true(llm_forward(&m, &a, &x2, &b2, kv, L1, FALSE, &out2, NULL, NULL, &err));
  ref_layer(&m.cfg, &layer, r2, L2, 1, 4, 8, 0, FALSE, kc, vc, &Lc, FALSE);
  for (int64_t r = 0; r < L2; r++)
    ref_rms(r2 + r * D, 1, D, r >= 1 && r < 5 ? &m.norm_gen : &m.norm, 1e-6);
  double e2 = rel_l2(&out2, r2);
  g_test_message("LLM gen block (MoT routing, full attention over cache): out rel L2 %.2e", e2);
  g_assert_cmpfloat(e2, <=, 2e-2);
  g_assert_cmpint(kv->used, ==, L1);   /* the denoise-style block left the cache alone */

  arena_clear(&a);
  kv_free(kv);
  g_free(kc); g_free(vc); g_free(r1); g_free(r2);
}

/* ---- ViT layer + connector ------------------------------------------------------------ */

static void test_vit_layer(void) {
  VitModel m = {0};
  m.be = be;
  m.cfg = (VitConfig){.hidden = 1152, .intermediate = 4304, .heads = 16, .head_dim = 72,
                      .layers_config = 2, .layers = 1, .patch = 14, .image_size = 980,
                      .channels = 3, .ln_eps = 1e-6};
  m.grid = 70;
  m.llm_hidden = 3584;
  const int64_t D = 1152, I = 4304, E = 3584, K = 588;
  m.patch_w = rnd2(D, K, sqrt(3.0 / K)); m.patch_b = rnd1(D, 0.1, 0);
  m.pos = rnd2(4900, D, 1.0);
  VitLayer ly;
  ly.q_w = rnd2(D, D, sqrt(3.0 / D)); ly.q_b = rnd1(D, 0.1, 0);
  ly.k_w = rnd2(D, D, sqrt(3.0 / D)); ly.k_b = rnd1(D, 0.1, 0);
  ly.v_w = rnd2(D, D, sqrt(3.0 / D)); ly.v_b = rnd1(D, 0.1, 0);
  ly.o_w = rnd2(D, D, sqrt(3.0 / D)); ly.o_b = rnd1(D, 0.1, 0);
  ly.ln1_w = rnd1(D, 0.2, 1); ly.ln1_b = rnd1(D, 0.1, 0);
  ly.ln2_w = rnd1(D, 0.2, 1); ly.ln2_b = rnd1(D, 0.1, 0);
  ly.fc1_w = rnd2(I, D, sqrt(3.0 / D)); ly.fc1_b = rnd1(I, 0.1, 0);
  ly.fc2_w = rnd2(D, I, sqrt(3.0 / I)); ly.fc2_b = rnd1(D, 0.1, 0);
  m.layers = &ly;
  m.post_w = rnd1(D, 0.2, 1); m.post_b = rnd1(D, 0.1, 0);
  m.fc1_w = rnd2(E, D, sqrt(3.0 / D)); m.fc1_b = rnd1(E, 0.1, 0);
  m.fc2_w = rnd2(E, E, sqrt(3.0 / E)); m.fc2_b = rnd1(E, 0.1, 0);
  m.vit_pos = rnd2(4900, E, 1.0);

  /* a 42×28 image: 3×2 patches */
  const int H = 28, W = 42, N = 6;
  float *img = g_new(float, 3 * H * W);
  for (int i = 0; i < 3 * H * W; i++) img[i] = (float)urand();
  Arena a;
  arena_init(&a, be, 32 << 20);
  BkTensor tokens;
  GError *err = NULL;
  g_assert_true(vit_encode(&m, &a, img, H, W, &tokens, NULL, &err));
  g_assert_no_error(err);

  float patches[6 * 588];
  int32_t ids[6];
  vit_patchify(img, H, W, 14, 70, patches, ids);
  double *x = g_new(double, N * D), *h = g_new(double, N * D), *q = g_new(double, N * D),
         *k = g_new(double, N * D), *v = g_new(double, N * D), *o = g_new(double, N * D),
         *t = g_new(double, N * D), *f = g_new(double, N * I), *pd = g_new(double, N * K),
         *c1 = g_new(double, N * E), *c2 = g_new(double, N * E);
  for (int i = 0; i < N * K; i++) pd[i] = patches[i];
  ref_linear(pd, N, K, &m.patch_w, &m.patch_b, D, x);
  for (int r = 0; r < N; r++)
    for (int64_t i = 0; i < D; i++) x[r * D + i] += at(&m.pos, ids[r] * D + i);
  ref_layernorm(x, h, N, D, &ly.ln1_w, &ly.ln1_b);
  ref_linear(h, N, D, &ly.q_w, &ly.q_b, D, q);
  ref_linear(h, N, D, &ly.k_w, &ly.k_b, D, k);
  ref_linear(h, N, D, &ly.v_w, &ly.v_b, D, v);
  ref_attention(q, N, 16, 72, NULL, NULL, 0, k, v, 16, FALSE, o);
  ref_linear(o, N, D, &ly.o_w, &ly.o_b, D, t);
  for (int i = 0; i < N * D; i++) x[i] += t[i];
  ref_layernorm(x, h, N, D, &ly.ln2_w, &ly.ln2_b);
  ref_linear(h, N, D, &ly.fc1_w, &ly.fc1_b, I, f);
  for (int i = 0; i < N * I; i++) {
    double z = f[i];
    f[i] = 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
  }
  ref_linear(f, N, I, &ly.fc2_w, &ly.fc2_b, D, t);
  for (int i = 0; i < N * D; i++) x[i] += t[i];
  ref_layernorm(x, h, N, D, &m.post_w, &m.post_b);
  ref_linear(h, N, D, &m.fc1_w, &m.fc1_b, E, c1);
  for (int i = 0; i < N * E; i++) {
    double z = c1[i];
    c1[i] = 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
  }
  ref_linear(c1, N, E, &m.fc2_w, &m.fc2_b, E, c2);
  for (int r = 0; r < N; r++)
    for (int64_t i = 0; i < E; i++) c2[r * E + i] += at(&m.vit_pos, ids[r] * E + i);
  double e = rel_l2(&tokens, c2);
  g_test_message("ViT layer + connector at full width (1152, 16 heads of 72, MLP 4304 -> 3584): tokens rel L2 %.2e", e);
  g_assert_cmpfloat(e, <=, 2e-2);
  arena_clear(&a);
  g_free(img); g_free(x); g_free(h); g_free(q); g_free(k); g_free(v); g_free(o); g_free(t);
  g_free(f); g_free(pd); g_free(c1); g_free(c2);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  be = bk_cpu_new(0);
  allocs = g_ptr_array_new_with_free_func(g_free);
  g_test_add_func("/fullsize/llm-layer", test_llm_layer);
  g_test_add_func("/fullsize/vit-layer", test_vit_layer);
  int rc = g_test_run();
  g_ptr_array_unref(allocs);
  bk_backend_free(be);
  return rc;
}
