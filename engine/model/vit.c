/* engine/model/vit.c — SigLIP NaViT encoder + connector (vit.h). */
#include "vit.h"

#include <math.h>
#include <string.h>

#include "bagel.h"

#define VP "vit_model.vision_model"

VitModel *vit_load(BkBackend *be, const Checkpoint *ck, GError **error) {
  VitModel *m = g_new0(VitModel, 1);
  m->be = be;
  m->cfg = ck->cfg.vit;
  m->grid = ck->cfg.geo.vit_grid;
  m->llm_hidden = ck->cfg.llm.hidden;
  m->layers = g_new0(VitLayer, m->cfg.layers);
  gboolean ok = wt_load(be, ck, &m->patch_w, error, VP ".embeddings.patch_embedding.weight") &&
                wt_load(be, ck, &m->patch_b, error, VP ".embeddings.patch_embedding.bias") &&
                wt_load(be, ck, &m->pos, error, VP ".embeddings.position_embedding.weight") &&
                wt_load(be, ck, &m->post_w, error, VP ".post_layernorm.weight") &&
                wt_load(be, ck, &m->post_b, error, VP ".post_layernorm.bias") &&
                wt_load(be, ck, &m->fc1_w, error, "connector.fc1.weight") &&
                wt_load(be, ck, &m->fc1_b, error, "connector.fc1.bias") &&
                wt_load(be, ck, &m->fc2_w, error, "connector.fc2.weight") &&
                wt_load(be, ck, &m->fc2_b, error, "connector.fc2.bias") &&
                wt_load(be, ck, &m->vit_pos, error, "vit_pos_embed.pos_embed");
  for (int l = 0; ok && l < m->cfg.layers; l++) {
    VitLayer *y = &m->layers[l];
#define W(field, part) wt_load(be, ck, &y->field, error, VP ".encoder.layers.%d." part, l)
    ok = W(q_w, "self_attn.q_proj.weight") && W(q_b, "self_attn.q_proj.bias") &&
         W(k_w, "self_attn.k_proj.weight") && W(k_b, "self_attn.k_proj.bias") &&
         W(v_w, "self_attn.v_proj.weight") && W(v_b, "self_attn.v_proj.bias") &&
         W(o_w, "self_attn.out_proj.weight") && W(o_b, "self_attn.out_proj.bias") &&
         W(ln1_w, "layer_norm1.weight") && W(ln1_b, "layer_norm1.bias") &&
         W(ln2_w, "layer_norm2.weight") && W(ln2_b, "layer_norm2.bias") &&
         W(fc1_w, "mlp.fc1.weight") && W(fc1_b, "mlp.fc1.bias") &&
         W(fc2_w, "mlp.fc2.weight") && W(fc2_b, "mlp.fc2.bias");
#undef W
  }
  if (!ok) {
    vit_free(m);
    return NULL;
  }
  return m;
}

void vit_free(VitModel *m) {
  if (!m) return;
  for (int l = 0; l < m->cfg.layers; l++) {
    BkTensor *t = (BkTensor *)&m->layers[l];
    for (size_t i = 0; i < sizeof(VitLayer) / sizeof *t; i++) wt_free(m->be, &t[i]);
  }
  BkTensor *top[] = {&m->patch_w, &m->patch_b, &m->pos, &m->post_w, &m->post_b, &m->fc1_w,
                     &m->fc1_b, &m->fc2_w, &m->fc2_b, &m->vit_pos};
  for (unsigned i = 0; i < G_N_ELEMENTS(top); i++) wt_free(m->be, top[i]);
  g_free(m->layers);
  g_free(m);
}

void vit_patchify(const float *chw, int H, int W, int p, int grid, float *patches, int32_t *ids) {
  const int gh = H / p, gw = W / p, K = 3 * p * p;
  for (int r = 0; r < gh; r++)
    for (int c = 0; c < gw; c++) {
      float *row = patches + (size_t)(r * gw + c) * K;
      for (int ky = 0; ky < p; ky++)
        for (int kx = 0; kx < p; kx++)
          for (int ch = 0; ch < 3; ch++)
            row[(ky * p + kx) * 3 + ch] = chw[((size_t)ch * H + r * p + ky) * W + c * p + kx];
      ids[r * gw + c] = r * grid + c;
    }
}

static void layer_forward(VitModel *m, Arena *a, const VitLayer *y, BkTensor *x) {
  BkBackend *be = m->be;
  const VitConfig *c = &m->cfg;
  const int64_t N = bk_rows(x), D = c->hidden, H = c->heads, hd = c->head_dim;
  const float eps = (float)c->ln_eps;
  ArenaMark mk = arena_mark(a);
  BkTensor h = arena_2d(a, BK_F32, N, D);
  be->ops->layer_norm(be, &h, x, &y->ln1_w, &y->ln1_b, eps);
  BkTensor q = arena_tensor(a, BK_BF16, 3, (int64_t[]){N, H, hd});
  BkTensor k = arena_tensor(a, BK_BF16, 3, (int64_t[]){N, H, hd});
  BkTensor v = arena_tensor(a, BK_BF16, 3, (int64_t[]){N, H, hd});
  BkTensor q2 = bk_reshape(q, 2, (int64_t[]){N, D}), k2 = bk_reshape(k, 2, (int64_t[]){N, D}),
           v2 = bk_reshape(v, 2, (int64_t[]){N, D});
  be->ops->linear(be, &q2, &h, &y->q_w, &y->q_b);
  be->ops->linear(be, &k2, &h, &y->k_w, &y->k_b);
  be->ops->linear(be, &v2, &h, &y->v_w, &y->v_b);
  BkTensor o = arena_tensor(a, BK_BF16, 3, (int64_t[]){N, H, hd});
  be->ops->attention(be, &o, &q, NULL, NULL, &k, &v, BK_CAUSAL_NONE, 1.0f / sqrtf((float)hd));
  BkTensor o2 = bk_reshape(o, 2, (int64_t[]){N, D});
  BkTensor t = arena_2d(a, BK_BF16, N, D);
  be->ops->linear(be, &t, &o2, &y->o_w, &y->o_b);
  be->ops->add(be, x, x, &t);
  be->ops->layer_norm(be, &h, x, &y->ln2_w, &y->ln2_b, eps);
  BkTensor f = arena_2d(a, BK_BF16, N, c->intermediate);
  be->ops->linear(be, &f, &h, &y->fc1_w, &y->fc1_b);
  be->ops->gelu_tanh(be, &f, &f);
  be->ops->linear(be, &t, &f, &y->fc2_w, &y->fc2_b);
  be->ops->add(be, x, x, &t);
  arena_reset(a, mk);
}

gboolean vit_encode(VitModel *m, Arena *a, const float *chw, int H, int W, BkTensor *tokens,
                    Dump *dump, GError **error) {
  BkBackend *be = m->be;
  const int p = m->cfg.patch;
  if (H <= 0 || W <= 0 || H % p || W % p || H / p > m->grid || W / p > m->grid) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "ViT input %dx%d must be a "
                "multiple of the %d-pixel patch and at most %d patches a side", W, H, p, m->grid);
    return FALSE;
  }
  const int64_t N = (int64_t)(H / p) * (W / p), K = 3 * p * p, D = m->cfg.hidden;
  float *patches = g_new(float, N * K);
  int32_t *ids = g_new(int32_t, N);
  vit_patchify(chw, H, W, p, m->grid, patches, ids);
  gboolean ok = TRUE;
  for (int64_t i = 0; i < N && ok; i++)
    if (ids[i] >= bk_rows(&m->pos) || ids[i] >= bk_rows(&m->vit_pos)) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "ViT position %d outside the position "
                  "tables (%" G_GINT64_FORMAT " / %" G_GINT64_FORMAT " rows)", ids[i],
                  bk_rows(&m->pos), bk_rows(&m->vit_pos));
      ok = FALSE;
    }
  if (!ok) goto out;

  *tokens = arena_2d(a, BK_BF16, N, m->llm_hidden);
  ArenaMark mk = arena_mark(a);
  BkTensor px = arena_2d(a, BK_F32, N, K);
  be->ops->upload(be, &px, patches);
  /* embeddings: bf16(bf16(patch GEMM) + position table) */
  BkTensor x = arena_2d(a, BK_BF16, N, D), pe = arena_2d(a, BK_BF16, N, D);
  be->ops->linear(be, &x, &px, &m->patch_w, &m->patch_b);
  be->ops->gather_rows(be, &pe, &m->pos, ids);
  be->ops->add(be, &x, &x, &pe);
  for (int l = 0; l < m->cfg.layers; l++) layer_forward(m, a, &m->layers[l], &x);
  BkTensor vo = arena_2d(a, BK_F32, N, D);
  be->ops->layer_norm(be, &vo, &x, &m->post_w, &m->post_b, (float)m->cfg.ln_eps);
  dump_tensor(dump, be, "vit_out", &vo);
  /* connector: fc2(gelu_tanh(fc1(x))), then + vit_pos_embed (each add rounded) */
  BkTensor f = arena_2d(a, BK_BF16, N, m->llm_hidden), pos = arena_2d(a, BK_BF16, N, m->llm_hidden);
  be->ops->linear(be, &f, &vo, &m->fc1_w, &m->fc1_b);
  be->ops->gelu_tanh(be, &f, &f);
  be->ops->linear(be, tokens, &f, &m->fc2_w, &m->fc2_b);
  be->ops->gather_rows(be, &pos, &m->vit_pos, ids);
  be->ops->add(be, tokens, tokens, &pos);
  dump_tensor(dump, be, "vit_tokens", tokens);
  arena_reset(a, mk);
  if (!bk_ok(be)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "vit: %s", be->error);
    ok = FALSE;
  }
out:
  g_free(patches);
  g_free(ids);
  return ok;
}
