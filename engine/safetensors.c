/* engine/safetensors.c — validating safetensors reader (mmap + json-glib) and streaming
 * writer.  See safetensors.h for the format and the checks. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bagel.h"

static const struct {
  const char *name;
  size_t size;
} st_dtypes[ST_NDTYPES] = {
  [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
  [ST_I16] = {"I16", 2},   [ST_I32] = {"I32", 4},   [ST_I64] = {"I64", 8},
  [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2}, [ST_F32] = {"F32", 4},
  [ST_F64] = {"F64", 8},   [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *st_dtype_name(StDType dt) {
  return (unsigned)dt < ST_NDTYPES ? st_dtypes[dt].name : "?";
}
size_t st_dtype_size(StDType dt) {
  return (unsigned)dt < ST_NDTYPES ? st_dtypes[dt].size : 0;
}

static gboolean dtype_from_name(const char *s, StDType *out) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (!strcmp(s, st_dtypes[i].name)) {
      *out = (StDType)i;
      return TRUE;
    }
  return FALSE;
}

gboolean st_dtype_to_bk(StDType dt, BkDType *out) {
  switch (dt) {
  case ST_F32: *out = BK_F32; return TRUE;
  case ST_BF16: *out = BK_BF16; return TRUE;
  case ST_F16: *out = BK_F16; return TRUE;
  case ST_I32: *out = BK_I32; return TRUE;
  case ST_I64: *out = BK_I64; return TRUE;
  case ST_U8: *out = BK_U8; return TRUE;
  default: return FALSE;
  }
}

StDType st_dtype_from_bk(BkDType dt) {
  switch (dt) {
  case BK_F32: return ST_F32;
  case BK_BF16: return ST_BF16;
  case BK_F16: return ST_F16;
  case BK_I32: return ST_I32;
  case BK_I64: return ST_I64;
  default: return ST_U8;
  }
}

int64_t st_numel(const StTensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

const char *st_describe(const StTensor *t, char *buf, size_t n) {
  GString *s = g_string_new(st_dtype_name(t->dtype));
  g_string_append_c(s, '[');
  for (int i = 0; i < t->ndim; i++)
    g_string_append_printf(s, "%s%" G_GINT64_FORMAT, i ? "," : "", t->shape[i]);
  g_string_append_c(s, ']');
  g_strlcpy(buf, s->str, n);
  g_string_free(s, TRUE);
  return buf;
}

/* ---- reader ------------------------------------------------------------------------ */

struct StFile {
  char *path;             /* label used in errors */
  void *map;              /* mmap base (NULL for st_parse) */
  size_t map_size;
  const uint8_t *base;    /* file image */
  uint64_t size;
  StTensor *tensors;      /* sorted by offset */
  size_t n;
  GHashTable *by_name;    /* name -> StTensor* */
  GHashTable *metadata;   /* key -> value */
  gboolean locked;
};

static void st_err(GError **error, const StFile *f, const char *tensor, const char *fmt, ...)
  G_GNUC_PRINTF(4, 5);

static void st_err(GError **error, const StFile *f, const char *tensor, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (tensor)
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: tensor \"%s\": %s", f->path,
                tensor, msg);
  else
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: %s", f->path, msg);
  g_free(msg);
}

/* json-glib keeps the last of duplicate members silently; the parser's object-member
 * signal fires for each one, so duplicates are detected while parsing. */
typedef struct {
  GHashTable *seen;        /* JsonObject* -> GHashTable of names */
  char *duplicate;         /* first duplicate name */
} DupCheck;

static void on_object_member(JsonParser *parser, JsonObject *object, const char *name,
                             gpointer user) {
  (void)parser;
  DupCheck *dc = user;
  if (dc->duplicate) return;
  GHashTable *names = g_hash_table_lookup(dc->seen, object);
  if (!names) {
    names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert(dc->seen, object, names);
  }
  if (g_hash_table_contains(names, name)) dc->duplicate = g_strdup(name);
  else g_hash_table_add(names, g_strdup(name));
}

/* A JSON integer >= 0, or FALSE. */
static gboolean json_uint(JsonNode *node, int64_t *out) {
  if (!node || !JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64)
    return FALSE;
  int64_t v = json_node_get_int(node);
  if (v < 0) return FALSE;
  *out = v;
  return TRUE;
}

static gboolean parse_entry(StFile *f, const char *name, JsonNode *node, StTensor *t,
                            uint64_t data_size, GError **error) {
  if (!JSON_NODE_HOLDS_OBJECT(node)) {
    st_err(error, f, name, "entry is not a JSON object");
    return FALSE;
  }
  JsonObject *o = json_node_get_object(node);
  GList *members = json_object_get_members(o);
  for (GList *l = members; l; l = l->next) {
    const char *m = l->data;
    if (strcmp(m, "dtype") && strcmp(m, "shape") && strcmp(m, "data_offsets")) {
      st_err(error, f, name, "unknown field \"%s\"", m);
      g_list_free(members);
      return FALSE;
    }
  }
  g_list_free(members);

  JsonNode *dn = json_object_get_member(o, "dtype");
  if (!dn || !JSON_NODE_HOLDS_VALUE(dn) || json_node_get_value_type(dn) != G_TYPE_STRING) {
    st_err(error, f, name, "missing or non-string \"dtype\"");
    return FALSE;
  }
  const char *ds = json_node_get_string(dn);
  if (!dtype_from_name(ds, &t->dtype)) {
    st_err(error, f, name, "unknown dtype \"%s\"", ds);
    return FALSE;
  }

  JsonNode *sn = json_object_get_member(o, "shape");
  if (!sn || !JSON_NODE_HOLDS_ARRAY(sn)) {
    st_err(error, f, name, "missing or non-array \"shape\"");
    return FALSE;
  }
  JsonArray *sa = json_node_get_array(sn);
  guint nd = json_array_get_length(sa);
  if (nd > ST_MAX_DIMS) {
    st_err(error, f, name, "shape has %u dimensions (at most %d supported)", nd, ST_MAX_DIMS);
    return FALSE;
  }
  t->ndim = (int)nd;
  uint64_t numel = 1;
  for (guint i = 0; i < nd; i++) {
    int64_t d;
    if (!json_uint(json_array_get_element(sa, i), &d)) {
      st_err(error, f, name, "shape[%u] is not a non-negative integer", i);
      return FALSE;
    }
    t->shape[i] = d;
    if (d != 0 && numel > UINT64_MAX / (uint64_t)d) {
      st_err(error, f, name, "shape overflows 64 bits");
      return FALSE;
    }
    numel *= (uint64_t)d;
  }
  size_t es = st_dtype_size(t->dtype);
  if (numel > UINT64_MAX / es) {
    st_err(error, f, name, "shape overflows 64 bits");
    return FALSE;
  }

  JsonNode *on = json_object_get_member(o, "data_offsets");
  if (!on || !JSON_NODE_HOLDS_ARRAY(on) || json_array_get_length(json_node_get_array(on)) != 2) {
    st_err(error, f, name, "\"data_offsets\" must be an array [begin, end]");
    return FALSE;
  }
  JsonArray *oa = json_node_get_array(on);
  int64_t b, e;
  if (!json_uint(json_array_get_element(oa, 0), &b) ||
      !json_uint(json_array_get_element(oa, 1), &e)) {
    st_err(error, f, name, "\"data_offsets\" are not non-negative integers");
    return FALSE;
  }
  if (e < b) {
    st_err(error, f, name, "data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
           "] end before they begin", b, e);
    return FALSE;
  }
  if ((uint64_t)e > data_size) {
    st_err(error, f, name, "data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
           "] run past the end of the data area (%" G_GUINT64_FORMAT " bytes): "
           "the file is truncated or the header is wrong", b, e, data_size);
    return FALSE;
  }
  if ((uint64_t)(e - b) != numel * es) {
    char desc[96];
    t->offset = (uint64_t)b;
    st_err(error, f, name, "%s needs %" G_GUINT64_FORMAT " bytes but data_offsets hold %"
           G_GINT64_FORMAT, st_describe(t, desc, sizeof desc), numel * es, e - b);
    return FALSE;
  }
  t->offset = (uint64_t)b;
  t->nbytes = (uint64_t)(e - b);
  return TRUE;
}

static int cmp_offset(const void *a, const void *b) {
  const StTensor *x = a, *y = b;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  /* zero-sized tensors may share an offset; order them by name for stable output */
  return strcmp(x->name, y->name);
}

static gboolean parse_metadata(StFile *f, JsonNode *node, GError **error) {
  if (!JSON_NODE_HOLDS_OBJECT(node)) {
    st_err(error, f, NULL, "\"__metadata__\" is not an object");
    return FALSE;
  }
  JsonObject *o = json_node_get_object(node);
  GList *members = json_object_get_members(o);
  for (GList *l = members; l; l = l->next) {
    JsonNode *v = json_object_get_member(o, l->data);
    if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
      st_err(error, f, NULL, "\"__metadata__\" value of \"%s\" is not a string",
             (const char *)l->data);
      g_list_free(members);
      return FALSE;
    }
    g_hash_table_insert(f->metadata, g_strdup(l->data), g_strdup(json_node_get_string(v)));
  }
  g_list_free(members);
  return TRUE;
}

static gboolean st_validate(StFile *f, GError **error) {
  if (f->size < 8) {
    st_err(error, f, NULL, "file is %" G_GUINT64_FORMAT " bytes, too short for a safetensors "
           "header length", f->size);
    return FALSE;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
  if (hlen > ST_MAX_HEADER) {
    st_err(error, f, NULL, "header length %" G_GUINT64_FORMAT " exceeds the %u-byte limit "
           "(not a safetensors file?)", hlen, ST_MAX_HEADER);
    return FALSE;
  }
  if (hlen > f->size - 8) {
    st_err(error, f, NULL, "header length %" G_GUINT64_FORMAT " runs past the end of the "
           "file (%" G_GUINT64_FORMAT " bytes): truncated or not a safetensors file",
           hlen, f->size);
    return FALSE;
  }
  if (hlen < 2) {
    st_err(error, f, NULL, "header of %" G_GUINT64_FORMAT " bytes is too short for JSON", hlen);
    return FALSE;
  }
  const char *hdr = (const char *)f->base + 8;
  const char *bad = NULL;
  if (!g_utf8_validate(hdr, (gssize)hlen, &bad)) {
    st_err(error, f, NULL, "header is not valid UTF-8 (byte %td)", bad - hdr);
    return FALSE;
  }
  if (memchr(hdr, '\0', hlen)) {
    st_err(error, f, NULL, "header contains a NUL byte");
    return FALSE;
  }

  JsonParser *parser = json_parser_new();
  DupCheck dc = {g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                       (GDestroyNotify)g_hash_table_unref), NULL};
  g_signal_connect(parser, "object-member", G_CALLBACK(on_object_member), &dc);
  GError *jerr = NULL;
  gboolean ok = json_parser_load_from_data(parser, hdr, (gssize)hlen, &jerr);
  g_hash_table_unref(dc.seen);
  if (!ok) {
    st_err(error, f, NULL, "header is not valid JSON: %s", jerr->message);
    g_error_free(jerr);
    g_free(dc.duplicate);
    g_object_unref(parser);
    return FALSE;
  }
  if (dc.duplicate) {
    st_err(error, f, dc.duplicate, "name appears more than once in the header");
    g_free(dc.duplicate);
    g_object_unref(parser);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    st_err(error, f, NULL, "header is not a JSON object");
    g_object_unref(parser);
    return FALSE;
  }
  JsonObject *ro = json_node_get_object(root);
  uint64_t data_size = f->size - 8 - hlen;
  GList *members = json_object_get_members(ro);
  f->tensors = g_new0(StTensor, g_list_length(members));
  f->n = 0;
  ok = TRUE;
  for (GList *l = members; l && ok; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member(ro, name);
    if (!strcmp(name, "__metadata__")) {
      ok = parse_metadata(f, node, error);
      continue;
    }
    StTensor *t = &f->tensors[f->n];
    t->name = g_strdup(name);
    f->n++;
    ok = parse_entry(f, name, node, t, data_size, error);
  }
  g_list_free(members);
  g_object_unref(parser);
  if (!ok) return FALSE;

  qsort(f->tensors, f->n, sizeof *f->tensors, cmp_offset);
  uint64_t pos = 0;
  for (size_t i = 0; i < f->n; i++) {
    StTensor *t = &f->tensors[i];
    if (t->offset < pos) {
      st_err(error, f, t->name, "data [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
             ") overlaps \"%s\"", t->offset, t->offset + t->nbytes, f->tensors[i - 1].name);
      return FALSE;
    }
    if (t->offset > pos) {
      st_err(error, f, t->name, "%" G_GUINT64_FORMAT " bytes of the data area before it "
             "belong to no tensor", t->offset - pos);
      return FALSE;
    }
    pos = t->offset + t->nbytes;
    t->data = f->base + 8 + hlen + t->offset;
    g_hash_table_insert(f->by_name, (gpointer)t->name, t);
  }
  if (pos != data_size) {
    st_err(error, f, NULL, "%" G_GUINT64_FORMAT " bytes at the end of the data area belong "
           "to no tensor", data_size - pos);
    return FALSE;
  }
  return TRUE;
}

static StFile *st_new(const char *label) {
  StFile *f = g_new0(StFile, 1);
  f->path = g_strdup(label);
  f->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  f->metadata = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  return f;
}

StFile *st_parse(const void *data, size_t size, const char *label, GError **error) {
  StFile *f = st_new(label ? label : "(memory)");
  f->base = data;
  f->size = size;
  if (!st_validate(f, error)) {
    st_close(f);
    return NULL;
  }
  return f;
}

StFile *st_open(const char *path, GError **error) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    g_set_error(error, BAGEL_ERROR, e == ENOENT ? BAGEL_ERROR_MODEL : BAGEL_ERROR_IO,
                "%s: %s", path, g_strerror(e));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: not a regular file", path);
    close(fd);
    return NULL;
  }
  StFile *f = st_new(path);
  f->size = (uint64_t)st.st_size;
  if (st.st_size > 0) {
    f->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
      int e = errno;
      f->map = NULL;
      close(fd);
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: cannot map: %s", path,
                  g_strerror(e));
      st_close(f);
      return NULL;
    }
    f->map_size = (size_t)st.st_size;
    f->base = f->map;
  } else {
    f->base = (const uint8_t *)"";
  }
  close(fd);
  if (!st_validate(f, error)) {
    st_close(f);
    return NULL;
  }
  return f;
}

void st_close(StFile *f) {
  if (!f) return;
  if (f->map) {
    if (f->locked) munlock(f->map, f->map_size);
    munmap(f->map, f->map_size);
  }
  for (size_t i = 0; i < f->n; i++) g_free((char *)f->tensors[i].name);
  g_free(f->tensors);
  g_hash_table_unref(f->by_name);
  g_hash_table_unref(f->metadata);
  g_free(f->path);
  g_free(f);
}

const char *st_path(const StFile *f) { return f->path; }
size_t st_count(const StFile *f) { return f->n; }
const StTensor *st_get(const StFile *f, size_t i) { return i < f->n ? &f->tensors[i] : NULL; }
const StTensor *st_find(const StFile *f, const char *name) {
  return g_hash_table_lookup(f->by_name, name);
}
const char *st_metadata(const StFile *f, const char *key) {
  return g_hash_table_lookup(f->metadata, key);
}
uint64_t st_file_size(const StFile *f) { return f->size; }

gboolean st_mlock(StFile *f, GError **error) {
  if (!f->map || f->locked) return TRUE;
  if (mlock(f->map, f->map_size) != 0) {
    int e = errno;
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO,
                "%s: cannot lock %.1f GiB in RAM: %s (raise the memlock limit, "
                "e.g. `ulimit -l unlimited`)", f->path,
                (double)f->map_size / (1024.0 * 1024.0 * 1024.0), g_strerror(e));
    return FALSE;
  }
  f->locked = TRUE;
  return TRUE;
}

void st_prefetch(StFile *f) {
  if (f->map) madvise(f->map, f->map_size, MADV_WILLNEED);
}

/* ---- writer ------------------------------------------------------------------------ */

typedef struct {
  char *name;
  StDType dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  uint64_t offset, nbytes, written;
} WEntry;

struct StWriter {
  GPtrArray *entries;      /* WEntry*, sorted by name at begin */
  GHashTable *by_name;
  GPtrArray *meta_keys, *meta_values;
  char *path;
  int fd;
  uint64_t data_start;
};

StWriter *st_writer_new(void) {
  StWriter *w = g_new0(StWriter, 1);
  w->entries = g_ptr_array_new();
  w->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  w->meta_keys = g_ptr_array_new_with_free_func(g_free);
  w->meta_values = g_ptr_array_new_with_free_func(g_free);
  w->fd = -1;
  return w;
}

void st_writer_set_metadata(StWriter *w, const char *key, const char *value) {
  g_ptr_array_add(w->meta_keys, g_strdup(key));
  g_ptr_array_add(w->meta_values, g_strdup(value));
}

void st_writer_add(StWriter *w, const char *name, StDType dtype, int ndim, const int64_t *shape) {
  WEntry *e = g_new0(WEntry, 1);
  e->name = g_strdup(name);
  e->dtype = dtype;
  e->ndim = ndim;
  uint64_t n = st_dtype_size(dtype);
  for (int i = 0; i < ndim && i < ST_MAX_DIMS; i++) {
    e->shape[i] = shape[i];
    n *= (uint64_t)shape[i];
  }
  e->nbytes = n;
  g_ptr_array_add(w->entries, e);
}

static int cmp_wentry(gconstpointer a, gconstpointer b) {
  const WEntry *x = *(WEntry *const *)a, *y = *(WEntry *const *)b;
  return strcmp(x->name, y->name);
}

static void json_escape(GString *s, const char *str) {
  g_string_append_c(s, '"');
  for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
    if (*p == '"' || *p == '\\') g_string_append_printf(s, "\\%c", *p);
    else if (*p < 0x20) g_string_append_printf(s, "\\u%04x", *p);
    else g_string_append_c(s, (char)*p);
  }
  g_string_append_c(s, '"');
}

static gboolean write_all(int fd, const void *buf, size_t n, uint64_t off, const char *path,
                          GError **error) {
  const char *p = buf;
  while (n > 0) {
    ssize_t k = pwrite(fd, p, n, (off_t)off);
    if (k < 0) {
      if (errno == EINTR) continue;
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: write failed: %s", path,
                  g_strerror(errno));
      return FALSE;
    }
    p += k;
    n -= (size_t)k;
    off += (uint64_t)k;
  }
  return TRUE;
}

gboolean st_writer_begin(StWriter *w, const char *path, GError **error) {
  g_ptr_array_sort(w->entries, cmp_wentry);
  GString *h = g_string_new("{");
  gboolean first = TRUE;
  if (w->meta_keys->len) {
    g_string_append(h, "\"__metadata__\":{");
    for (guint i = 0; i < w->meta_keys->len; i++) {
      if (i) g_string_append_c(h, ',');
      json_escape(h, w->meta_keys->pdata[i]);
      g_string_append_c(h, ':');
      json_escape(h, w->meta_values->pdata[i]);
    }
    g_string_append_c(h, '}');
    first = FALSE;
  }
  uint64_t off = 0;
  for (guint i = 0; i < w->entries->len; i++) {
    WEntry *e = w->entries->pdata[i];
    if (g_hash_table_contains(w->by_name, e->name)) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                  "%s: tensor \"%s\" declared twice", path, e->name);
      g_string_free(h, TRUE);
      return FALSE;
    }
    g_hash_table_insert(w->by_name, e->name, e);
    e->offset = off;
    off += e->nbytes;
    if (!first) g_string_append_c(h, ',');
    first = FALSE;
    json_escape(h, e->name);
    g_string_append_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(e->dtype));
    for (int d = 0; d < e->ndim; d++)
      g_string_append_printf(h, "%s%" G_GINT64_FORMAT, d ? "," : "", e->shape[d]);
    g_string_append_printf(h, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT
                           "]}", e->offset, e->offset + e->nbytes);
  }
  g_string_append_c(h, '}');
  while (h->len % 8) g_string_append_c(h, ' ');

  w->path = g_strdup(path);
  w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd < 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: cannot create: %s", path,
                g_strerror(errno));
    g_string_free(h, TRUE);
    return FALSE;
  }
  uint8_t len8[8];
  uint64_t hl = h->len;
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hl >> (8 * i));
  w->data_start = 8 + hl;
  gboolean ok = write_all(w->fd, len8, 8, 0, path, error) &&
                write_all(w->fd, h->str, h->len, 8, path, error);
  g_string_free(h, TRUE);
  if (ok && ftruncate(w->fd, (off_t)(w->data_start + off)) != 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: cannot size to %" G_GUINT64_FORMAT
                " bytes: %s", path, w->data_start + off, g_strerror(errno));
    ok = FALSE;
  }
  return ok;
}

gboolean st_writer_write(StWriter *w, const char *name, uint64_t at, const void *data,
                         uint64_t nbytes, GError **error) {
  WEntry *e = g_hash_table_lookup(w->by_name, name);
  if (!e || w->fd < 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "%s: tensor \"%s\" was not "
                "declared", w->path ? w->path : "(writer)", name);
    return FALSE;
  }
  if (at > e->nbytes || nbytes > e->nbytes - at) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "%s: tensor \"%s\": write of %"
                G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT " exceeds its %" G_GUINT64_FORMAT
                " bytes", w->path, name, nbytes, at, e->nbytes);
    return FALSE;
  }
  if (!write_all(w->fd, data, nbytes, w->data_start + e->offset + at, w->path, error))
    return FALSE;
  e->written += nbytes;
  return TRUE;
}

static void writer_release(StWriter *w) {
  for (guint i = 0; i < w->entries->len; i++) {
    WEntry *e = w->entries->pdata[i];
    g_free(e->name);
    g_free(e);
  }
  g_ptr_array_free(w->entries, TRUE);
  g_hash_table_unref(w->by_name);
  g_ptr_array_free(w->meta_keys, TRUE);
  g_ptr_array_free(w->meta_values, TRUE);
  g_free(w->path);
  g_free(w);
}

gboolean st_writer_finish(StWriter *w, GError **error) {
  gboolean ok = w->fd >= 0;
  if (!ok)
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "safetensors writer: not begun");
  for (guint i = 0; ok && i < w->entries->len; i++) {
    WEntry *e = w->entries->pdata[i];
    if (e->written != e->nbytes) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "%s: tensor \"%s\": %"
                  G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes written", w->path, e->name,
                  e->written, e->nbytes);
      ok = FALSE;
    }
  }
  if (w->fd >= 0) {
    if (ok && fsync(w->fd) != 0 && errno != EINVAL) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: %s", w->path, g_strerror(errno));
      ok = FALSE;
    }
    if (close(w->fd) != 0 && ok) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: %s", w->path, g_strerror(errno));
      ok = FALSE;
    }
    w->fd = -1;
    if (!ok) unlink(w->path);
  }
  writer_release(w);
  return ok;
}

void st_writer_free(StWriter *w) {
  if (!w) return;
  if (w->fd >= 0) {
    close(w->fd);
    unlink(w->path);
  }
  writer_release(w);
}
