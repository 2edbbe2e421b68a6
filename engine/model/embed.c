/* engine/model/embed.c — the generation head (embed.h). */
#include "embed.h"

#include <math.h>

#include "bagel.h"

GenHead *gen_head_load(BkBackend *be, const Checkpoint *ck, GError **error) {
  GenHead *g = g_new0(GenHead, 1);
  g->be = be;
  g->hidden = ck->cfg.llm.hidden;
  g->latent_channels = ck->cfg.geo.latent_channels;
  g->latent_grid = ck->cfg.geo.latent_grid;
  if (!wt_load(be, ck, &g->te0_w, error, "time_embedder.mlp.0.weight") ||
      !wt_load(be, ck, &g->te0_b, error, "time_embedder.mlp.0.bias") ||
      !wt_load(be, ck, &g->te2_w, error, "time_embedder.mlp.2.weight") ||
      !wt_load(be, ck, &g->te2_b, error, "time_embedder.mlp.2.bias") ||
      !wt_load(be, ck, &g->v2l_w, error, "vae2llm.weight") ||
      !wt_load(be, ck, &g->v2l_b, error, "vae2llm.bias") ||
      !wt_load(be, ck, &g->l2v_w, error, "llm2vae.weight") ||
      !wt_load(be, ck, &g->l2v_b, error, "llm2vae.bias") ||
      !wt_load(be, ck, &g->latent_pos, error, "latent_pos_embed.pos_embed")) {
    gen_head_free(g);
    return NULL;
  }
  return g;
}

void gen_head_free(GenHead *g) {
  if (!g) return;
  BkTensor *t[] = {&g->te0_w, &g->te0_b, &g->te2_w, &g->te2_b, &g->v2l_w,
                   &g->v2l_b, &g->l2v_w, &g->l2v_b, &g->latent_pos};
  for (unsigned i = 0; i < G_N_ELEMENTS(t); i++) wt_free(g->be, t[i]);
  g_free(g);
}

void gen_timestep_sinusoid(float t, float out[256]) {
  const int half = 128;
  const float neg_log = (float)(-log(10000.0));
  for (int k = 0; k < half; k++) {
    float f = expf(neg_log * (float)k / (float)half);
    float arg = t * f;
    out[k] = cosf(arg);
    out[half + k] = sinf(arg);
  }
}

void gen_embed_latents(GenHead *g, Arena *a, const BkTensor *x, float t, int h, int w,
                       BkTensor *out) {
  BkBackend *be = g->be;
  const int64_t N = (int64_t)h * w, D = g->hidden;
  ArenaMark mk = arena_mark(a);
  float sin_t[256];
  gen_timestep_sinusoid(t, sin_t);
  BkTensor s = arena_2d(a, BK_F32, 1, 256), t1 = arena_2d(a, BK_BF16, 1, D),
           temb = arena_2d(a, BK_BF16, 1, D);
  be->ops->upload(be, &s, sin_t);
  be->ops->linear(be, &t1, &s, &g->te0_w, &g->te0_b);
  be->ops->silu_mul(be, &t1, &t1, NULL);
  be->ops->linear(be, &temb, &t1, &g->te2_w, &g->te2_b);
  int32_t *ids = g_new(int32_t, N);
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) ids[r * w + c] = r * g->latent_grid + c;
  BkTensor pos = arena_2d(a, BK_BF16, N, D);
  be->ops->gather_rows(be, &pos, &g->latent_pos, ids);
  g_free(ids);
  be->ops->linear(be, out, x, &g->v2l_w, &g->v2l_b);
  be->ops->add(be, out, out, &temb);   /* broadcast over the tokens */
  be->ops->add(be, out, out, &pos);
  arena_reset(a, mk);
}

void gen_velocity(GenHead *g, const BkTensor *hidden, BkTensor *v) {
  g->be->ops->linear(g->be, v, hidden, &g->l2v_w, &g->l2v_b);
}
