/* engine/dump.c — recording and writing named intermediates (dump.h). */
#include "dump.h"

#include <stdio.h>
#include <string.h>

struct Dump {
  GPtrArray *entries;     /* DumpEntry* in insertion order */
  GHashTable *by_name;
};

static void entry_free(gpointer p) {
  DumpEntry *e = p;
  g_free(e->name);
  g_free(e->data);
  g_free(e);
}

Dump *dump_new(void) {
  Dump *d = g_new0(Dump, 1);
  d->entries = g_ptr_array_new_with_free_func(entry_free);
  d->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  return d;
}

void dump_free(Dump *d) {
  if (!d) return;
  g_hash_table_unref(d->by_name);
  g_ptr_array_unref(d->entries);
  g_free(d);
}

static DumpEntry *slot(Dump *d, const char *name) {
  DumpEntry *e = g_hash_table_lookup(d->by_name, name);
  if (e) {
    g_free(e->data);
    e->data = NULL;
    return e;
  }
  e = g_new0(DumpEntry, 1);
  e->name = g_strdup(name);
  g_ptr_array_add(d->entries, e);
  g_hash_table_insert(d->by_name, e->name, e);
  return e;
}

void dump_host(Dump *d, const char *name, StDType dt, int nd, const int64_t *shape,
               const void *data) {
  if (!d) return;
  DumpEntry *e = slot(d, name);
  e->dtype = dt;
  e->ndim = nd;
  size_t n = st_dtype_size(dt);
  for (int i = 0; i < nd; i++) {
    e->shape[i] = shape[i];
    n *= (size_t)shape[i];
  }
  e->nbytes = n;
  e->data = g_memdup2(data, n ? n : 1);
}

void dump_tensor(Dump *d, BkBackend *be, const char *name, const BkTensor *t) {
  if (!d) return;
  size_t n = bk_nbytes(t);
  void *host = g_malloc(n ? n : 1);
  if (t->data) be->ops->download(be, host, t);
  else memset(host, 0, n);
  dump_host(d, name, st_dtype_from_bk(t->dt), t->nd, t->ne, host);
  g_free(host);
}

void dump_printf_name(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_vsnprintf(buf, n, fmt, ap);
  va_end(ap);
}

const DumpEntry *dump_find(const Dump *d, const char *name) {
  return d ? g_hash_table_lookup(d->by_name, name) : NULL;
}

guint dump_count(const Dump *d) { return d ? d->entries->len : 0; }
const DumpEntry *dump_get(const Dump *d, guint i) { return d->entries->pdata[i]; }

gboolean dump_write(const Dump *d, const char *path, GError **error) {
  StWriter *w = st_writer_new();
  st_writer_set_metadata(w, "format", "gimp-bagel dump");
  for (guint i = 0; i < d->entries->len; i++) {
    const DumpEntry *e = d->entries->pdata[i];
    st_writer_add(w, e->name, e->dtype, e->ndim, e->shape);
  }
  if (!st_writer_begin(w, path, error)) {
    st_writer_free(w);
    return FALSE;
  }
  for (guint i = 0; i < d->entries->len; i++) {
    const DumpEntry *e = d->entries->pdata[i];
    if (!st_writer_write(w, e->name, 0, e->data, e->nbytes, error)) {
      st_writer_free(w);
      return FALSE;
    }
  }
  return st_writer_finish(w, error);
}
