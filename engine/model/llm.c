/* engine/model/llm.c — the Qwen2-MoT decoder forward pass and the KV store (llm.h). */
#include "llm.h"

#include <math.h>
#include <string.h>

#include "bagel.h"

/* ---- weights ------------------------------------------------------------------------ */

static gboolean load_expert(BkBackend *be, const Checkpoint *ck, int l, const char *sfx,
                            LlmExpert *e, GError **error) {
  const char *p = "language_model.model.layers";
#define W(field, fmt) wt_load(be, ck, &e->field, error, fmt, p, l, sfx)
  return W(q_w, "%s.%d.self_attn.q_proj%s.weight") && W(q_b, "%s.%d.self_attn.q_proj%s.bias") &&
         W(k_w, "%s.%d.self_attn.k_proj%s.weight") && W(k_b, "%s.%d.self_attn.k_proj%s.bias") &&
         W(v_w, "%s.%d.self_attn.v_proj%s.weight") && W(v_b, "%s.%d.self_attn.v_proj%s.bias") &&
         W(o_w, "%s.%d.self_attn.o_proj%s.weight") &&
         W(q_norm, "%s.%d.self_attn.q_norm%s.weight") &&
         W(k_norm, "%s.%d.self_attn.k_norm%s.weight") &&
         W(gate, "%s.%d.mlp%s.gate_proj.weight") &&
         W(up, "%s.%d.mlp%s.up_proj.weight") && W(down, "%s.%d.mlp%s.down_proj.weight") &&
         W(ln_in, "%s.%d.input_layernorm%s.weight") &&
         W(ln_post, "%s.%d.post_attention_layernorm%s.weight");
#undef W
}

LlmModel *llm_load(BkBackend *be, const Checkpoint *ck, GError **error) {
  LlmModel *m = g_new0(LlmModel, 1);
  m->be = be;
  m->cfg = ck->cfg.llm;
  m->layers = g_new0(LlmLayer, m->cfg.layers);
  gboolean ok = wt_load(be, ck, &m->embed_tokens, error, "language_model.model.embed_tokens.weight") &&
                wt_load(be, ck, &m->lm_head, error, "language_model.lm_head.weight") &&
                wt_load(be, ck, &m->norm, error, "language_model.model.norm.weight") &&
                wt_load(be, ck, &m->norm_gen, error, "language_model.model.norm_moe_gen.weight");
  for (int l = 0; ok && l < m->cfg.layers; l++)
    ok = load_expert(be, ck, l, "", &m->layers[l].und, error) &&
         load_expert(be, ck, l, "_moe_gen", &m->layers[l].gen, error);
  if (!ok) {
    llm_free(m);
    return NULL;
  }
  return m;
}

static void free_expert(BkBackend *be, LlmExpert *e) {
  BkTensor *t = (BkTensor *)e;
  for (size_t i = 0; i < sizeof *e / sizeof *t; i++) wt_free(be, &t[i]);
}

void llm_free(LlmModel *m) {
  if (!m) return;
  for (int l = 0; l < m->cfg.layers; l++) {
    free_expert(m->be, &m->layers[l].und);
    free_expert(m->be, &m->layers[l].gen);
  }
  wt_free(m->be, &m->embed_tokens);
  wt_free(m->be, &m->lm_head);
  wt_free(m->be, &m->norm);
  wt_free(m->be, &m->norm_gen);
  g_free(m->layers);
  g_free(m);
}

/* ---- KV store ------------------------------------------------------------------------ */

KvStore *kv_new(BkBackend *be, const LlmConfig *cfg, int64_t cap, GError **error) {
  KvStore *kv = g_new0(KvStore, 1);
  kv->be = be;
  kv->layers = cfg->layers;
  kv->kv_heads = cfg->kv_heads;
  kv->head_dim = cfg->head_dim;
  kv->k = g_new0(BkTensor, kv->layers);
  kv->v = g_new0(BkTensor, kv->layers);
  if (!kv_reserve(kv, cap > 0 ? cap : 64, 0, error)) {
    kv_free(kv);
    return NULL;
  }
  return kv;
}

void kv_free(KvStore *kv) {
  if (!kv) return;
  for (int l = 0; l < kv->layers; l++) {
    if (kv->k[l].data) kv->be->ops->free(kv->be, kv->k[l].data);
    if (kv->v[l].data) kv->be->ops->free(kv->be, kv->v[l].data);
  }
  g_free(kv->k);
  g_free(kv->v);
  g_free(kv);
}

gboolean kv_reserve(KvStore *kv, int64_t rows, int64_t keep, GError **error) {
  if (rows <= kv->cap) return TRUE;
  int64_t cap = MAX(rows, kv->cap + kv->cap / 2);
  BkBackend *be = kv->be;
  for (int l = 0; l < kv->layers; l++) {
    for (int which = 0; which < 2; which++) {
      BkTensor *t = which ? &kv->v[l] : &kv->k[l];
      BkTensor n = bk_tensor(NULL, BK_BF16, 3, (int64_t[]){cap, kv->kv_heads, kv->head_dim});
      n.data = be->ops->alloc(be, bk_nbytes(&n));
      if (!n.data) {
        g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "KV cache of %" G_GINT64_FORMAT
                    " tokens: %s", cap, be->error);
        return FALSE;
      }
      if (t->data) {
        if (keep > 0) {
          BkTensor src = bk_rows_view(*t, 0, keep), dst = bk_rows_view(n, 0, keep);
          be->ops->copy(be, &dst, &src);
        }
        be->ops->free(be, t->data);
      }
      *t = n;
    }
  }
  kv->cap = cap;
  return TRUE;
}

KvStore *kv_clone_prefix(const KvStore *src, int64_t n, int64_t cap, GError **error) {
  LlmConfig c = {.layers = src->layers, .kv_heads = src->kv_heads, .head_dim = src->head_dim};
  KvStore *kv = kv_new(src->be, &c, MAX(cap, n), error);
  if (!kv) return NULL;
  for (int l = 0; l < kv->layers && n > 0; l++) {
    BkTensor s = kv_rows(src, FALSE, l, 0, n), d = kv_rows(kv, FALSE, l, 0, n);
    kv->be->ops->copy(kv->be, &d, &s);
    s = kv_rows(src, TRUE, l, 0, n);
    d = kv_rows(kv, TRUE, l, 0, n);
    kv->be->ops->copy(kv->be, &d, &s);
  }
  kv->used = n;
  return kv;
}

BkTensor kv_rows(const KvStore *kv, gboolean values, int layer, int64_t r0, int64_t n) {
  return bk_rows_view(values ? kv->v[layer] : kv->k[layer], r0, n);
}

/* ---- forward -------------------------------------------------------------------------- */

typedef struct {
  int64_t r0, n;
  const LlmExpert *e;    /* NULL for the final norm runs: use which_norm */
  gboolean gen;
} Run;

static int block_runs(const LlmBlock *b, const LlmLayer *layer, Run runs[3]) {
  int k = 0;
  int64_t r = 0;
  const int64_t lens[3] = {b->und_head, b->gen, b->und_tail};
  for (int i = 0; i < 3; i++) {
    if (lens[i] <= 0) continue;
    runs[k].r0 = r;
    runs[k].n = lens[i];
    runs[k].gen = i == 1;
    runs[k].e = layer ? (i == 1 ? &layer->gen : &layer->und) : NULL;
    r += lens[i];
    k++;
  }
  return k;
}

static BkTensor rows(const BkTensor *t, const Run *r) { return bk_rows_view(*t, r->r0, r->n); }

/* View [L, H·hd] as [L·H, hd] (per-head norms) or [L, H, hd] (RoPE/attention). */
static BkTensor heads3(BkTensor t, int64_t H, int64_t hd) {
  return bk_reshape(t, 3, (int64_t[]){bk_rows(&t), H, hd});
}
static BkTensor per_head(BkTensor t, int64_t hd) {
  return bk_reshape(t, 2, (int64_t[]){bk_numel(&t) / hd, hd});
}

/* QK-norm + RoPE of q or k [L, H·hd] (bf16) into dst [L, H, hd] (bf16), per §13. */
static void qk_norm_rope(LlmModel *m, Arena *a, const LlmBlock *b, const Run *runs, int nruns,
                         BkTensor *src, int64_t H, gboolean is_q, BkTensor *dst) {
  BkBackend *be = m->be;
  const int64_t hd = m->cfg.head_dim, L = bk_rows(src);
  const float eps = (float)m->cfg.rms_eps, theta = (float)m->cfg.rope_theta;
  if (b->gen_mode) {
    /* cast to fp32, RMSNorm (incl. the weight) and RoPE in fp32, one rounding */
    ArenaMark mk = arena_mark(a);
    BkTensor f = arena_tensor(a, BK_F32, 3, (int64_t[]){L, H, hd});
    BkTensor src3 = heads3(*src, H, hd);
    be->ops->convert(be, &f, &src3);
    for (int i = 0; i < nruns; i++) {
      BkTensor fr = per_head(rows(&f, &runs[i]), hd);
      be->ops->rms_norm(be, &fr, &fr, is_q ? &runs[i].e->q_norm : &runs[i].e->k_norm, eps);
    }
    be->ops->rope(be, &f, &f, b->pos0, b->pos_step, theta);
    be->ops->convert(be, dst, &f);
    arena_reset(a, mk);
  } else {
    for (int i = 0; i < nruns; i++) {
      BkTensor sr = per_head(rows(src, &runs[i]), hd);
      be->ops->rms_norm(be, &sr, &sr, is_q ? &runs[i].e->q_norm : &runs[i].e->k_norm, eps);
    }
    BkTensor src3 = heads3(*src, H, hd);
    be->ops->rope(be, dst, &src3, b->pos0, b->pos_step, theta);
  }
}

static void layer_forward(LlmModel *m, Arena *a, int l, BkTensor *x, const LlmBlock *b,
                          KvStore *kv, int64_t kv_len, gboolean append) {
  BkBackend *be = m->be;
  const LlmConfig *c = &m->cfg;
  const int64_t L = bk_rows(x), D = c->hidden, hd = c->head_dim, Hq = c->heads,
                Hkv = c->kv_heads, I = c->intermediate;
  const float eps = (float)c->rms_eps;
  Run runs[3];
  int nr = block_runs(b, &m->layers[l], runs);
  ArenaMark mk = arena_mark(a);

  /* attention */
  BkTensor h = arena_2d(a, BK_BF16, L, D);
  BkTensor q = arena_2d(a, BK_BF16, L, Hq * hd), k = arena_2d(a, BK_BF16, L, Hkv * hd),
           v = arena_2d(a, BK_BF16, L, Hkv * hd);
  for (int i = 0; i < nr; i++) {
    const LlmExpert *e = runs[i].e;
    BkTensor xr = rows(x, &runs[i]), hr = rows(&h, &runs[i]);
    be->ops->rms_norm(be, &hr, &xr, &e->ln_in, eps);
    BkTensor qr = rows(&q, &runs[i]), kr = rows(&k, &runs[i]), vr = rows(&v, &runs[i]);
    be->ops->linear(be, &qr, &hr, &e->q_w, &e->q_b);
    be->ops->linear(be, &kr, &hr, &e->k_w, &e->k_b);
    be->ops->linear(be, &vr, &hr, &e->v_w, &e->v_b);
  }
  BkTensor kn, vn;
  if (append) {
    kn = kv_rows(kv, FALSE, l, kv_len, L);
    vn = kv_rows(kv, TRUE, l, kv_len, L);
    BkTensor v3 = heads3(v, Hkv, hd);
    be->ops->copy(be, &vn, &v3);
  } else {
    kn = arena_tensor(a, BK_BF16, 3, (int64_t[]){L, Hkv, hd});
    vn = heads3(v, Hkv, hd);
  }
  BkTensor q3 = arena_tensor(a, BK_BF16, 3, (int64_t[]){L, Hq, hd});
  qk_norm_rope(m, a, b, runs, nr, &q, Hq, TRUE, &q3);
  qk_norm_rope(m, a, b, runs, nr, &k, Hkv, FALSE, &kn);
  BkTensor kc = kv_rows(kv, FALSE, l, 0, kv_len), vc = kv_rows(kv, TRUE, l, 0, kv_len);
  BkTensor o = arena_tensor(a, BK_BF16, 3, (int64_t[]){L, Hq, hd});
  be->ops->attention(be, &o, &q3, kv_len ? &kc : NULL, kv_len ? &vc : NULL, &kn, &vn, b->causal,
                     1.0f / sqrtf((float)hd));
  BkTensor o2 = bk_reshape(o, 2, (int64_t[]){L, Hq * hd});
  for (int i = 0; i < nr; i++) {
    BkTensor orr = rows(&o2, &runs[i]), hr = rows(&h, &runs[i]);
    be->ops->linear(be, &hr, &orr, &runs[i].e->o_w, NULL);
  }
  be->ops->add(be, x, x, &h);

  /* MLP */
  for (int i = 0; i < nr; i++) {
    const LlmExpert *e = runs[i].e;
    ArenaMark mm = arena_mark(a);
    BkTensor xr = rows(x, &runs[i]), hr = rows(&h, &runs[i]);
    be->ops->rms_norm(be, &hr, &xr, &e->ln_post, eps);
    BkTensor g = arena_2d(a, BK_BF16, runs[i].n, I), u = arena_2d(a, BK_BF16, runs[i].n, I);
    be->ops->linear(be, &g, &hr, &e->gate, NULL);
    be->ops->linear(be, &u, &hr, &e->up, NULL);
    be->ops->silu_mul(be, &g, &g, &u);
    be->ops->linear(be, &hr, &g, &e->down, NULL);
    arena_reset(a, mm);
  }
  be->ops->add(be, x, x, &h);
  arena_reset(a, mk);
}

gboolean llm_forward(LlmModel *m, Arena *a, BkTensor *x, const LlmBlock *b, KvStore *kv,
                     int64_t kv_len, gboolean append, BkTensor *out, Dump *dump,
                     const char *tag, GError **error) {
  BkBackend *be = m->be;
  const int64_t L = bk_rows(x);
  if (b->und_head + b->gen + b->und_tail != L || L == 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "llm: block of %" G_GINT64_FORMAT
                " rows routed as %" G_GINT64_FORMAT "+%" G_GINT64_FORMAT "+%" G_GINT64_FORMAT,
                L, b->und_head, b->gen, b->und_tail);
    return FALSE;
  }
  if (kv_len > kv->used || (append && kv_len + L > kv->cap)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "llm: KV rows [%" G_GINT64_FORMAT
                ", %" G_GINT64_FORMAT ") outside the store (%" G_GINT64_FORMAT " used, %"
                G_GINT64_FORMAT " capacity)", kv_len, kv_len + L, kv->used, kv->cap);
    return FALSE;
  }
  for (int l = 0; l < m->cfg.layers; l++) {
    layer_forward(m, a, l, x, b, kv, kv_len, append);
    if (dump) {
      char name[96];
      g_snprintf(name, sizeof name, "%s.layer%d", tag, l);
      dump_tensor(dump, be, name, x);
    }
  }
  if (append) kv->used = kv_len + L;
  if (out) {
    Run runs[3];
    int nr = block_runs(b, NULL, runs);
    for (int i = 0; i < nr; i++) {
      BkTensor xr = rows(x, &runs[i]), orr = rows(out, &runs[i]);
      be->ops->rms_norm(be, &orr, &xr, runs[i].gen ? &m->norm_gen : &m->norm,
                        (float)m->cfg.rms_eps);
    }
  }
  if (!bk_ok(be)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "llm: %s", be->error);
    return FALSE;
  }
  return TRUE;
}

void llm_embed(LlmModel *m, BkTensor *x, const int32_t *ids, int64_t n) {
  BkTensor xv = bk_rows_view(*x, 0, n);
  m->be->ops->gather_rows(m->be, &xv, &m->embed_tokens, ids);
}

void llm_logits(LlmModel *m, BkTensor *logits, const BkTensor *hidden_row) {
  m->be->ops->linear(m->be, logits, hidden_row, &m->lm_head, NULL);
}
