/* engine/pipeline/sampler.c — the flow-matching sampling loop (sampler.h). */
#include "sampler.h"

#include <math.h>

void sampler_schedule(int T, float shift, float *t, float *dt) {
  /* torch.linspace(1, 0, T): the first half counts up from the start, the second half
   * down from the end, with step = (end − start)/(T − 1) in fp32 */
  const float start = 1.0f, end = 0.0f;
  const float step = (end - start) / (float)(T - 1);
  const int halfway = T / 2;
  for (int i = 0; i < T; i++) {
    float u = i < halfway ? start + step * (float)i : end - step * (float)(T - i - 1);
    t[i] = shift * u / (1.0f + (shift - 1.0f) * u);
  }
  for (int i = 0; i + 1 < T; i++) dt[i] = t[i] - t[i + 1];
}

gboolean sampler_check(const BagelSampler *s, GError **error) {
  const char *bad = NULL;
  if (s->steps < 2 || s->steps > 1000) bad = "steps must be between 2 and 1000";
  else if (!isfinite(s->cfg_text) || s->cfg_text < 0 || s->cfg_text > 100)
    bad = "cfg-text must be between 0 and 100";
  else if (!isfinite(s->cfg_image) || s->cfg_image < 0 || s->cfg_image > 100)
    bad = "cfg-image must be between 0 and 100";
  else if (!(s->cfg_interval[0] >= 0 && s->cfg_interval[0] <= 1 && s->cfg_interval[1] >= 0 &&
             s->cfg_interval[1] <= 1 && s->cfg_interval[0] <= s->cfg_interval[1]))
    bad = "cfg-interval must be A,B with 0 <= A <= B <= 1";
  else if (!isfinite(s->timestep_shift) || s->timestep_shift <= 0 || s->timestep_shift > 100)
    bad = "timestep shift must be in (0, 100]";
  else if (!(s->renorm_min >= 0 && s->renorm_min <= 1))
    bad = "renorm-min must be between 0 and 1";
  else if ((unsigned)s->renorm > BAGEL_RENORM_TEXT_CHANNEL)
    bad = "unknown renorm type";
  if (bad) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "%s", bad);
    return FALSE;
  }
  return TRUE;
}

static void dump_step(Dump *d, BkBackend *be, const char *what, int j, const BkTensor *t) {
  if (!d) return;
  char name[64];
  g_snprintf(name, sizeof name, "%s.%d", what, j);
  dump_tensor(d, be, name, t);
}

gboolean sampler_run(BagelModel *m, Arena *a, Ctx *cond, Ctx *ut, Ctx *ui, int h, int w,
                     const BagelSampler *s, float *x, Progress *prog, Dump *dump,
                     GError **error) {
  if (!sampler_check(s, error)) return FALSE;
  BkBackend *be = m->be;
  const int T = s->steps;
  const int64_t N = (int64_t)h * w, C = m->gen->latent_channels;
  float *t = g_new(float, T), *dt = g_new(float, T);
  sampler_schedule(T, s->timestep_shift, t, dt);
  /* persistent buffers for the whole loop; per-step work rewinds to `steady` */
  BkTensor xt = arena_2d(a, BK_F32, N, C), vc = arena_2d(a, BK_BF16, N, C),
           vt = arena_2d(a, BK_BF16, N, C), vi = arena_2d(a, BK_BF16, N, C),
           v = arena_2d(a, BK_F32, N, C);
  be->ops->upload(be, &xt, x);
  ArenaMark steady = arena_mark(a);
  gboolean ok = bk_ok(be);
  if (!ok) g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "sampler: %s", be->error);
  for (int j = 0; ok && j < T - 1; j++) {
    ok = progress_report(prog, "denoise", j, T - 1, error);
    if (!ok) break;
    const gboolean active = t[j] > s->cfg_interval[0] && t[j] <= s->cfg_interval[1];
    BkCfgStep p = {.cfg_text = active ? s->cfg_text : 1.0f,
                   .cfg_img = active ? s->cfg_image : 1.0f,
                   .renorm = (BkRenorm)s->renorm,
                   .renorm_min = s->renorm_min,
                   .dt = dt[j]};
    dump_step(dump, be, "x_t", j, &xt);
    ok = ctx_denoise(cond, a, &xt, t[j], h, w, &vc, error);
    dump_step(dump, be, "v_cond", j, &vc);
    const gboolean run_text = ok && p.cfg_text > 1.0f && ut;
    const gboolean run_img = ok && p.cfg_img > 1.0f && ui;
    if (run_text) {
      ok = ctx_denoise(ut, a, &xt, t[j], h, w, &vt, error);
      dump_step(dump, be, "v_text", j, &vt);
    }
    if (ok && run_img) {
      ok = ctx_denoise(ui, a, &xt, t[j], h, w, &vi, error);
      dump_step(dump, be, "v_img", j, &vi);
    }
    if (!ok) break;
    be->ops->cfg_euler(be, &xt, &vc, run_text ? &vt : NULL, run_img ? &vi : NULL, &p,
                       dump ? &v : NULL);
    if (dump) dump_step(dump, be, "v", j, &v);
    arena_reset(a, steady);
    if (!bk_ok(be)) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "sampler: %s", be->error);
      ok = FALSE;
    }
  }
  if (ok) {
    be->ops->download(be, x, &xt);
    dump_host(dump, "final_latent", ST_F32, 2, (int64_t[]){N, C}, x);
  }
  g_free(t);
  g_free(dt);
  return ok;
}
