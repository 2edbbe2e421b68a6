/* tests/unit/test_sampler.c — the sampler beyond the golden set:
 *  - the schedule (spec §6 step 2) against the spec's worked example and a double-precision
 *    formula;
 *  - the CFG combine + Euler step (the backend's cfg_euler) for every renorm type, with
 *    and without the image branch, with renorm_min clamping, against an fp64 reference
 *    written here from spec §6 step 5 (tolerance: the bf16 rounding of the combine);
 *  - the CFG gate: which steps run which branches for intervals the golden set lacks,
 *    observed through the sampler's dumps on the tiny model.
 * usage: test_sampler TINY_CKPT_DIR */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "context.h"
#include "model.h"
#include "sampler.h"

static const char *ckpt_dir;

static void test_schedule(void) {
  float t[50], dt[50];
  sampler_schedule(50, 3.0f, t, dt);
  /* spec §6: s = 3 → 1.0, 0.9931, 0.9860 … 0.1132, 0.0588, then 0 */
  const double want[] = {1.0, 0.9931, 0.9860};
  for (int i = 0; i < 3; i++) g_assert_cmpfloat_with_epsilon(t[i], want[i], 1e-4);
  g_assert_cmpfloat_with_epsilon(t[47], 0.1132, 1e-4);
  g_assert_cmpfloat_with_epsilon(t[48], 0.0588, 1e-4);
  g_assert_cmpfloat(t[49], ==, 0.0f);
  for (int i = 0; i < 50; i++) {
    double u = 1.0 - i / 49.0, ref = 3.0 * u / (1.0 + 2.0 * u);
    g_assert_cmpfloat(fabs(t[i] - ref), <=, 2e-7);   /* fp32 steps vs exact */
    if (i < 49) g_assert_cmpfloat(dt[i], ==, t[i] - t[i + 1]);
  }
  /* shift 1 is the identity on linspace */
  sampler_schedule(5, 1.0f, t, dt);
  const float lin[5] = {1.0f, 0.75f, 0.5f, 0.25f, 0.0f};
  g_assert_cmpmem(t, sizeof lin, lin, sizeof lin);
}

/* spec §6 step 5 in double, no rounding */
static void combine_ref(int n, int C, const double *c, const double *ut, const double *ui,
                        double st, double si, int renorm, double rmin, double *v) {
  if (st <= 1) {
    memcpy(v, c, sizeof(double) * n * C);
    return;
  }
  double *a = g_new(double, n * C);
  for (int i = 0; i < n * C; i++) a[i] = ut[i] + st * (c[i] - ut[i]);
  if (renorm == BK_RENORM_TEXT_CHANNEL) {
    for (int t = 0; t < n; t++) {
      double nc = 0, na = 0;
      for (int k = 0; k < C; k++) {
        nc += c[t * C + k] * c[t * C + k];
        na += a[t * C + k] * a[t * C + k];
      }
      double r = fmin(fmax(sqrt(nc) / (sqrt(na) + 1e-8), rmin), 1.0);
      for (int k = 0; k < C; k++) {
        double ap = a[t * C + k] * r;
        v[t * C + k] = si > 1 ? ui[t * C + k] + si * (ap - ui[t * C + k]) : ap;
      }
    }
  } else {
    if (si > 1)
      for (int i = 0; i < n * C; i++) a[i] = ui[i] + si * (a[i] - ui[i]);
    if (renorm == BK_RENORM_GLOBAL) {
      double nc = 0, nb = 0;
      for (int i = 0; i < n * C; i++) {
        nc += c[i] * c[i];
        nb += a[i] * a[i];
      }
      double r = fmin(fmax(sqrt(nc) / (sqrt(nb) + 1e-8), rmin), 1.0);
      for (int i = 0; i < n * C; i++) v[i] = a[i] * r;
    } else {
      for (int t = 0; t < n; t++) {
        double nc = 0, nb = 0;
        for (int k = 0; k < C; k++) {
          nc += c[t * C + k] * c[t * C + k];
          nb += a[t * C + k] * a[t * C + k];
        }
        double r = fmin(fmax(sqrt(nc) / (sqrt(nb) + 1e-8), rmin), 1.0);
        for (int k = 0; k < C; k++) v[t * C + k] = a[t * C + k] * r;
      }
    }
  }
  g_free(a);
}

static void test_combine(void) {
  BkBackend *be = bk_cpu_new(0);
  GRand *rng = g_rand_new_with_seed(99);
  enum { n = 7, C = 64 };
  uint16_t cb[n * C], tb[n * C], ib[n * C];
  double cd[n * C], td[n * C], id[n * C];
  /* velocities with different magnitudes per token, so per-token and global norms differ */
  for (int i = 0; i < n * C; i++) {
    double scale = 0.3 + (i / C);
    cb[i] = bk_f32_to_bf16((float)(g_rand_double_range(rng, -1, 1) * scale));
    tb[i] = bk_f32_to_bf16((float)(g_rand_double_range(rng, -1, 1) * scale));
    ib[i] = bk_f32_to_bf16((float)(g_rand_double_range(rng, -1, 1) * scale));
    cd[i] = bk_bf16_to_f32(cb[i]);
    td[i] = bk_bf16_to_f32(tb[i]);
    id[i] = bk_bf16_to_f32(ib[i]);
  }
  BkTensor c = bk_tensor_2d(cb, BK_BF16, n, C), ut = bk_tensor_2d(tb, BK_BF16, n, C),
           ui = bk_tensor_2d(ib, BK_BF16, n, C);
  const struct { float st, si; BkRenorm r; float rmin; } cases[] = {
    {4, 1, BK_RENORM_GLOBAL, 0},   {4, 2, BK_RENORM_GLOBAL, 0},   {4, 2, BK_RENORM_GLOBAL, 0.9f},
    {4, 1, BK_RENORM_CHANNEL, 0},  {3, 1.5f, BK_RENORM_CHANNEL, 0}, {3, 1.5f, BK_RENORM_CHANNEL, 0.95f},
    {4, 1, BK_RENORM_TEXT_CHANNEL, 0}, {4, 2, BK_RENORM_TEXT_CHANNEL, 0},
    {4, 2, BK_RENORM_TEXT_CHANNEL, 1.0f}, {1, 2, BK_RENORM_GLOBAL, 0} /* s_t ≤ 1: v = c */,
  };
  for (unsigned k = 0; k < G_N_ELEMENTS(cases); k++) {
    float xs[n * C], x0[n * C], vo[n * C];
    for (int i = 0; i < n * C; i++) xs[i] = x0[i] = (float)g_rand_double_range(rng, -2, 2);
    BkTensor x = bk_tensor_2d(xs, BK_F32, n, C), v = bk_tensor_2d(vo, BK_F32, n, C);
    BkCfgStep p = {cases[k].st, cases[k].si, cases[k].r, cases[k].rmin, 0.0137f};
    be->ops->cfg_euler(be, &x, &c, &ut, &ui, &p, &v);
    g_assert_true(bk_ok(be));
    double vref[n * C], num = 0, den = 0;
    combine_ref(n, C, cd, td, id, p.cfg_text, p.cfg_img, p.renorm, p.renorm_min, vref);
    /* v is bf16 with global renorm or when s_t <= 1, fp32 otherwise (spec §13) */
    const gboolean v_bf16 = p.cfg_text <= 1 || p.renorm == BK_RENORM_GLOBAL;
    for (int i = 0; i < n * C; i++) {
      num += (vo[i] - vref[i]) * (vo[i] - vref[i]);
      den += vref[i] * vref[i];
      if (v_bf16) g_assert_cmpfloat(vo[i], ==, bk_round_bf16(vo[i]));
      /* Euler: x − v·Δ in fp32, the product rounded to bf16 first when v is bf16 */
      float step = vo[i] * p.dt;
      if (v_bf16) step = bk_round_bf16(step);
      g_assert_cmpfloat(xs[i], ==, x0[i] - step);
    }
    double rel = sqrt(num / den);
    g_test_message("combine st %.1f si %.1f renorm %d min %.2f: rel L2 vs fp64 %.2e (v %s)",
                   p.cfg_text, p.cfg_img, p.renorm, p.renorm_min, rel, v_bf16 ? "bf16" : "fp32");
    /* the combine's bf16 steps (a = u + s(c − u) op by op) cost a few 2^-9 relative */
    g_assert_cmpfloat(rel, <=, 1.5e-2);
  }
  /* renorm_min = 1 clamps r to exactly 1: text_channel with no image step is then the
   * unscaled a' = a; with s_t ≤ 1 the output is c itself, bit for bit */
  float xs[n * C], vo[n * C];
  memset(xs, 0, sizeof xs);
  BkTensor x = bk_tensor_2d(xs, BK_F32, n, C), v = bk_tensor_2d(vo, BK_F32, n, C);
  BkCfgStep p = {1.0f, 3.0f, BK_RENORM_TEXT_CHANNEL, 0, 1.0f};
  be->ops->cfg_euler(be, &x, &c, &ut, &ui, &p, &v);
  for (int i = 0; i < n * C; i++) g_assert_cmpfloat(vo[i], ==, bk_bf16_to_f32(cb[i]));
  g_rand_free(rng);
  bk_backend_free(be);
}

/* The gate: run 9 steps with dumps and read which branches ran at which step. */
static void gate_case(BagelModel *m, Arena *a, float i0, float i1, float st, float si,
                      int expect_text, int expect_img) {
  GError *err = NULL;
  Ctx *gen = ctx_new(m, 64, &err), *img = ctx_new(m, 64, &err);
  Ctx *txt = ctx_fork(gen);
  int32_t seg[] = {m->ids.bos, 785, 264, 8251, m->ids.eos};
  g_assert_true(ctx_append_text(gen, a, seg, 5, &err));
  g_assert_true(ctx_append_text(img, a, seg, 5, &err));
  BagelSampler s = {.steps = 10, .cfg_text = st, .cfg_image = si, .cfg_interval = {i0, i1},
                    .timestep_shift = 3, .renorm = BAGEL_RENORM_GLOBAL};
  float x[4 * 64];
  for (int i = 0; i < 4 * 64; i++) x[i] = (float)((i * 7919) % 200 - 100) / 50.0f;
  Dump *d = dump_new();
  g_assert_true(sampler_run(m, a, gen, txt, img, 2, 2, &s, x, NULL, d, &err));
  float t[10], dt[10];
  sampler_schedule(10, 3, t, dt);
  int n_text = 0, n_img = 0;
  for (int j = 0; j < 9; j++) {
    char name[32];
    gboolean active = t[j] > i0 && t[j] <= i1;
    g_snprintf(name, sizeof name, "v_text.%d", j);
    gboolean has_t = dump_find(d, name) != NULL;
    g_snprintf(name, sizeof name, "v_img.%d", j);
    gboolean has_i = dump_find(d, name) != NULL;
    g_assert_cmpint(has_t, ==, active && st > 1);
    g_assert_cmpint(has_i, ==, active && si > 1);
    n_text += has_t;
    n_img += has_i;
  }
  g_test_message("interval [%.2f, %.2f] s_t %.1f s_i %.1f: text branch %d/9, image branch %d/9",
                 i0, i1, st, si, n_text, n_img);
  g_assert_cmpint(n_text, ==, expect_text);
  g_assert_cmpint(n_img, ==, expect_img);
  dump_free(d);
  ctx_free(gen);
  ctx_free(txt);
  ctx_free(img);
}

static void test_gate(void) {
  GError *err = NULL;
  Checkpoint *ck = checkpoint_open(ckpt_dir, &err);
  g_assert_no_error(err);
  BagelTokenIds ids = {151644, 151645, 151652, 151653};
  BagelModel *m = bagel_model_load(bk_cpu_new(0), ck, &ids, &err);
  g_assert_no_error(err);
  Arena a;
  arena_init(&a, m->be, 4 << 20);
  /* T = 10, shift 3: t = 1, .960, .913, .857, .789, .706, .600, .462, .273 (then 0) */
  gate_case(m, &a, 0.0f, 1.0f, 4, 2, 9, 9);     /* all steps */
  gate_case(m, &a, 0.5f, 1.0f, 4, 1.5f, 7, 7);  /* t > 0.5 */
  gate_case(m, &a, 0.2f, 0.9f, 4, 2, 6, 6);     /* 0.2 < t <= 0.9 */
  gate_case(m, &a, 0.6f, 0.96f, 4, 2, 4, 4);    /* .6 < t <= .96: bounds open below, closed above */
  gate_case(m, &a, 0.0f, 1.0f, 1, 2, 0, 9);     /* s_t = 1: no text branch; image still runs */
  gate_case(m, &a, 0.0f, 1.0f, 4, 1, 9, 0);     /* s_i = 1: no image branch */
  arena_clear(&a);
  BkBackend *be = m->be;
  bagel_model_free(m);
  bk_backend_free(be);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  if (argc != 2) return 2;
  ckpt_dir = argv[1];
  g_test_add_func("/sampler/schedule", test_schedule);
  g_test_add_func("/sampler/combine-vs-fp64", test_combine);
  g_test_add_func("/sampler/cfg-gate", test_gate);
  return g_test_run();
}
