/* engine/context.c — contexts over shared KV stores (context.h). */
#include "context.h"

#include <string.h>

#include "bagel.h"

typedef struct {
  KvStore *kv;
  GPtrArray *ctxs;   /* live contexts on this store */
} Shared;

struct Ctx {
  BagelModel *m;
  Shared *sh;
  int64_t kv_len, rope;
  Dump *dump;
  char *tag;
  int n_updates;
};

static Shared *shared_new(KvStore *kv) {
  Shared *s = g_new0(Shared, 1);
  s->kv = kv;
  s->ctxs = g_ptr_array_new();
  return s;
}

static void shared_leave(Shared *s, Ctx *c) {
  g_ptr_array_remove_fast(s->ctxs, c);
  if (s->ctxs->len == 0) {
    kv_free(s->kv);
    g_ptr_array_free(s->ctxs, TRUE);
    g_free(s);
  }
}

Ctx *ctx_new(BagelModel *m, int64_t capacity, GError **error) {
  KvStore *kv = kv_new(m->be, &m->llm->cfg, capacity, error);
  if (!kv) return NULL;
  Ctx *c = g_new0(Ctx, 1);
  c->m = m;
  c->sh = shared_new(kv);
  g_ptr_array_add(c->sh->ctxs, c);
  return c;
}

Ctx *ctx_fork(const Ctx *c) {
  Ctx *f = g_new0(Ctx, 1);
  *f = *c;
  f->tag = c->tag ? g_strdup_printf("%s.fork", c->tag) : NULL;
  f->n_updates = 0;
  g_ptr_array_add(f->sh->ctxs, f);
  return f;
}

void ctx_free(Ctx *c) {
  if (!c) return;
  shared_leave(c->sh, c);
  g_free(c->tag);
  g_free(c);
}

int64_t ctx_kv_len(const Ctx *c) { return c->kv_len; }
int64_t ctx_rope(const Ctx *c) { return c->rope; }
const KvStore *ctx_store(const Ctx *c) { return c->sh->kv; }

void ctx_set_dump(Ctx *c, Dump *dump, const char *tag) {
  c->dump = dump;
  g_free(c->tag);
  c->tag = g_strdup(tag);
  c->n_updates = 0;
}

/* Make rows [kv_len, kv_len + n) of this context's store writable. */
static gboolean prepare_append(Ctx *c, int64_t n, GError **error) {
  Shared *s = c->sh;
  gboolean others_beyond = FALSE;
  for (guint i = 0; i < s->ctxs->len; i++) {
    const Ctx *o = s->ctxs->pdata[i];
    if (o != c && o->kv_len > c->kv_len) others_beyond = TRUE;
  }
  if (others_beyond) {
    KvStore *kv = kv_clone_prefix(s->kv, c->kv_len, c->kv_len + n, error);
    if (!kv) return FALSE;
    shared_leave(s, c);
    c->sh = shared_new(kv);
    g_ptr_array_add(c->sh->ctxs, c);
    return TRUE;
  }
  s->kv->used = c->kv_len;
  return kv_reserve(s->kv, c->kv_len + n, c->kv_len, error);
}

static char *update_tag(Ctx *c) {
  return c->dump ? g_strdup_printf("%s.u%d", c->tag ? c->tag : "ctx", c->n_updates) : NULL;
}

static gboolean run_update(Ctx *c, Arena *a, BkTensor *x, const LlmBlock *b, GError **error) {
  if (!prepare_append(c, bk_rows(x), error)) return FALSE;
  char *tag = update_tag(c);
  gboolean ok = llm_forward(c->m->llm, a, x, b, c->sh->kv, c->kv_len, TRUE, NULL, c->dump, tag,
                            error);
  g_free(tag);
  c->n_updates++;
  return ok;
}

gboolean ctx_append_text(Ctx *c, Arena *a, const int32_t *ids, int64_t n, GError **error) {
  if (n <= 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "empty text segment");
    return FALSE;
  }
  ArenaMark mk = arena_mark(a);
  BkTensor x = arena_2d(a, BK_BF16, n, c->m->llm->cfg.hidden);
  llm_embed(c->m->llm, &x, ids, n);
  LlmBlock b = {.und_head = n, .gen_mode = FALSE, .pos0 = c->rope, .pos_step = 1,
                .causal = BK_CAUSAL_BOTTOM_RIGHT};
  gboolean ok = run_update(c, a, &x, &b, error);
  arena_reset(a, mk);
  if (ok) {
    c->kv_len += n;
    c->rope += n;
  }
  return ok;
}

/* x rows: [start marker | body (N rows, filled by the caller) | end marker] */
static BkTensor image_block(Ctx *c, Arena *a, int64_t N) {
  BkTensor x = arena_2d(a, BK_BF16, N + 2, c->m->llm->cfg.hidden);
  const int32_t start = c->m->ids.start_of_image, end = c->m->ids.end_of_image;
  BkTensor first = bk_rows_view(x, 0, 1), last = bk_rows_view(x, N + 1, 1);
  llm_embed(c->m->llm, &first, &start, 1);
  llm_embed(c->m->llm, &last, &end, 1);
  return x;
}

/* Run the image block x ([start, N rows, end], already embedded) as one update: the
 * whole block shares one RoPE position and advances it by 1 (spec §4.1). */
static gboolean append_image_block(Ctx *c, Arena *a, BkTensor *x, int64_t N, gboolean gen,
                                   GError **error) {
  LlmBlock b = {.und_head = gen ? 1 : N + 2, .gen = gen ? N : 0, .und_tail = gen ? 1 : 0,
                .gen_mode = gen, .pos0 = c->rope, .pos_step = 0, .causal = BK_CAUSAL_NONE};
  if (!run_update(c, a, x, &b, error)) return FALSE;
  c->kv_len += N + 2;
  c->rope += 1;
  return TRUE;
}

gboolean ctx_append_vit(Ctx *c, Arena *a, const BkTensor *tokens, GError **error) {
  const int64_t N = bk_rows(tokens);
  ArenaMark mk = arena_mark(a);
  BkTensor x = image_block(c, a, N);
  BkTensor body = bk_rows_view(x, 1, N);
  c->m->be->ops->copy(c->m->be, &body, tokens);
  gboolean ok = append_image_block(c, a, &x, N, FALSE, error);   /* und expert throughout */
  arena_reset(a, mk);
  return ok;
}

gboolean ctx_append_vae(Ctx *c, Arena *a, const BkTensor *latents, int h, int w,
                        GError **error) {
  const int64_t N = (int64_t)h * w;
  ArenaMark mk = arena_mark(a);
  BkTensor x = image_block(c, a, N);
  BkTensor body = bk_rows_view(x, 1, N);
  gen_embed_latents(c->m->gen, a, latents, 0.0f, h, w, &body);   /* clean image: t = 0 */
  gboolean ok = append_image_block(c, a, &x, N, TRUE, error);    /* latents: gen expert */
  arena_reset(a, mk);
  return ok;
}

gboolean ctx_decode(Ctx *c, Arena *a, int32_t token, BkTensor *logits, GError **error) {
  ArenaMark mk = arena_mark(a);
  const int64_t D = c->m->llm->cfg.hidden;
  BkTensor x = arena_2d(a, BK_BF16, 1, D), h = arena_2d(a, BK_BF16, 1, D);
  llm_embed(c->m->llm, &x, &token, 1);
  LlmBlock b = {.und_head = 1, .gen_mode = FALSE, .pos0 = c->rope, .pos_step = 1,
                .causal = BK_CAUSAL_BOTTOM_RIGHT};
  gboolean ok = prepare_append(c, 1, error);
  if (ok) {
    char *tag = update_tag(c);
    ok = llm_forward(c->m->llm, a, &x, &b, c->sh->kv, c->kv_len, TRUE, &h, c->dump, tag, error);
    g_free(tag);
    c->n_updates++;
  }
  if (ok) {
    llm_logits(c->m->llm, logits, &h);
    c->kv_len += 1;
    c->rope += 1;
  }
  arena_reset(a, mk);
  return ok;
}

gboolean ctx_denoise(Ctx *c, Arena *a, const BkTensor *x_t, float t, int h, int w,
                     BkTensor *v, GError **error) {
  const int64_t N = (int64_t)h * w, D = c->m->llm->cfg.hidden;
  ArenaMark mk = arena_mark(a);
  BkTensor x = image_block(c, a, N);
  BkTensor body = bk_rows_view(x, 1, N);
  gen_embed_latents(c->m->gen, a, x_t, t, h, w, &body);
  BkTensor out = arena_2d(a, BK_BF16, N + 2, D);
  LlmBlock b = {.und_head = 1, .gen = N, .und_tail = 1, .gen_mode = TRUE, .pos0 = c->rope,
                .pos_step = 0, .causal = BK_CAUSAL_NONE};
  char *tag = update_tag(c);
  gboolean ok = llm_forward(c->m->llm, a, &x, &b, c->sh->kv, c->kv_len, FALSE, &out, c->dump,
                            tag, error);
  g_free(tag);
  c->n_updates++;
  if (ok) {
    BkTensor lat = bk_rows_view(out, 1, N);
    gen_velocity(c->m->gen, &lat, v);
  }
  arena_reset(a, mk);
  return ok;
}
