/* engine/model/weights.c — weight loading and the activation arena (weights.h). */
#include "weights.h"

#include <string.h>

#include "bagel.h"

gboolean wt_load(BkBackend *be, const Checkpoint *ck, BkTensor *out, GError **error,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *name = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  const StTensor *t = ckpt_tensor(ck, name);
  BkDType dt;
  gboolean ok = FALSE;
  if (!t) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" is missing", ck->dir,
                name);
  } else if (!st_dtype_to_bk(t->dtype, &dt) || t->ndim > BK_MAX_DIMS) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\": dtype %s with %d "
                "dimensions is not supported", ck->dir, name, st_dtype_name(t->dtype), t->ndim);
  } else if (!be->ops->weight(be, out, t->data, dt, t->ndim, t->shape)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "tensor \"%s\": %s", name, be->error);
  } else {
    if (t->ndim == 0) { /* scalars as 1-element vectors */
      out->nd = 1;
      out->ne[0] = 1;
    }
    ok = TRUE;
  }
  g_free(name);
  return ok;
}

void wt_free(BkBackend *be, BkTensor *t) {
  if (t->data) be->ops->weight_free(be, t);
  memset(t, 0, sizeof *t);
}

struct ArenaChunk {
  void *base;
  size_t size, used;
};

#define ARENA_ALIGN 256

void arena_init(Arena *a, BkBackend *be, size_t chunk_size) {
  memset(a, 0, sizeof *a);
  a->be = be;
  a->chunks = g_ptr_array_new();
  a->chunk_size = chunk_size ? chunk_size : (size_t)64 << 20;
}

void arena_clear(Arena *a) {
  if (!a->chunks) return;
  for (guint i = 0; i < a->chunks->len; i++) {
    ArenaChunk *c = a->chunks->pdata[i];
    if (c->base) a->be->ops->free(a->be, c->base);
    g_free(c);
  }
  g_ptr_array_free(a->chunks, TRUE);
  a->chunks = NULL;
}

static void *arena_alloc(Arena *a, size_t n) {
  n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (n == 0) n = ARENA_ALIGN;
  /* the current chunk, else the next existing chunk that fits, else a new one */
  while (a->cur < a->chunks->len) {
    ArenaChunk *c = a->chunks->pdata[a->cur];
    if (c->size - c->used >= n) {
      void *p = (char *)c->base + c->used;
      c->used += n;
      a->in_use += n;
      if (a->in_use > a->peak) a->peak = a->in_use;
      return p;
    }
    a->cur++;
    if (a->cur < a->chunks->len) ((ArenaChunk *)a->chunks->pdata[a->cur])->used = 0;
  }
  size_t sz = n > a->chunk_size ? n : a->chunk_size;
  void *base = a->be->ops->alloc(a->be, sz);
  if (!base) return NULL;
  ArenaChunk *c = g_new0(ArenaChunk, 1);
  c->base = base;
  c->size = sz;
  c->used = n;
  g_ptr_array_add(a->chunks, c);
  a->cur = a->chunks->len - 1;
  a->n_chunk_allocs++;
  a->in_use += n;
  if (a->in_use > a->peak) a->peak = a->in_use;
  return base;
}

BkTensor arena_tensor(Arena *a, BkDType dt, int nd, const int64_t *ne) {
  BkTensor t = bk_tensor(NULL, dt, nd, ne);
  t.data = arena_alloc(a, bk_nbytes(&t));
  return t;
}

BkTensor arena_2d(Arena *a, BkDType dt, int64_t rows, int64_t cols) {
  return arena_tensor(a, dt, 2, (int64_t[]){rows, cols});
}

ArenaMark arena_mark(const Arena *a) {
  ArenaMark m = {a->cur, 0, a->in_use};
  if (a->cur < a->chunks->len) m.used = ((ArenaChunk *)a->chunks->pdata[a->cur])->used;
  return m;
}

void arena_reset(Arena *a, ArenaMark m) {
  a->cur = m.chunk;
  if (a->cur < a->chunks->len) ((ArenaChunk *)a->chunks->pdata[a->cur])->used = m.used;
  a->in_use = m.in_use;
}
