/* engine/tokenizer_load.c — reads the tokenizer files of a model directory into a
 * BagelTokenizer (spec §3): vocab.json + merges.txt + tokenizer_config.json (what the official
 * slow Qwen2Tokenizer reads), or tokenizer.json (HF fast format) with an optional
 * tokenizer_config.json.
 *
 * These files come from the internet: every value is checked, and every failure is one GError
 * naming the file and the line (merges.txt) or key (JSON) at fault.  Where the Python code is
 * lenient in a way that cannot change ids (duplicate JSON keys, duplicate merges: the last one
 * wins in both) we do the same; where it would silently produce unknown-token ids or crash
 * later (a merge of tokens absent from the vocabulary, a merges line that is not two tokens,
 * two tokens with one id) we refuse the file. */
#include "tokenizer_internal.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "bagel.h"

/* The names used in messages ("vocab.json", or a full path when loading a directory). */
typedef struct {
  const char *vocab, *merges, *config, *tokjson;
} TokNames;

/* ---- GPT-2 byte <-> unicode table and Python's isspace ------------------------------------ */

static gboolean byte_is_printable(guint b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 other bytes map to 256, 257, ... in byte order: 0x00-0x20, 0x7F-0xA0, 0xAD. */
gunichar tok_byte_to_unichar(guint8 b) {
  if (byte_is_printable(b)) return b;
  if (b <= 0x20) return 256 + b;
  if (b >= 0x7F && b <= 0xA0) return 289 + (b - 0x7F);
  return 323; /* 0xAD */
}

int tok_unichar_to_byte(gunichar c) {
  if (c < 256) return byte_is_printable(c) ? (int)c : -1;
  if (c <= 288) return (int)(c - 256);
  if (c <= 322) return (int)(0x7F + (c - 289));
  return c == 323 ? 0xAD : -1;
}

gboolean tok_py_isspace(gunichar c) {
  /* str.isspace(): bidi class WS, B or S, or category Zs */
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static gboolean fail(GError **error, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static gboolean fail(GError **error, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, BAGEL_ERROR, code, msg);
  g_free(msg);
  return FALSE;
}

/* A token or key quoted for a message, shortened and with control characters escaped. */
static char *quote(const char *s) {
  GString *q = g_string_new("\"");
  gsize n = 0;
  for (const char *p = s; *p && n < 60; n++) {
    gunichar c = g_utf8_get_char_validated(p, -1);
    if (c == (gunichar)-1 || c == (gunichar)-2) { g_string_append(q, "\\?"); p++; continue; }
    if (c < 0x20 || c == 0x7F || c == '"' || c == '\\') g_string_append_printf(q, "\\u%04x", c);
    else g_string_append_unichar(q, c);
    p = g_utf8_next_char(p);
  }
  if (n >= 60) g_string_append(q, "…");
  g_string_append_c(q, '"');
  return g_string_free(q, FALSE);
}

static JsonNode *parse_json(const char *data, gssize len, const char *name, GError **error) {
  if (len < 0) len = strlen(data);
  JsonParser *parser = json_parser_new_immutable();
  GError *err = NULL;
  if (!json_parser_load_from_data(parser, data, len, &err)) {
    const char *m = err->message;
    if (g_str_has_prefix(m, "<data>:")) m += 7;
    fail(error, BAGEL_ERROR_FORMAT, "%s: malformed JSON: %s", name, m);
    g_error_free(err);
    g_object_unref(parser);
    return NULL;
  }
  JsonNode *root = json_parser_steal_root(parser);
  g_object_unref(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    if (root) json_node_unref(root);
    fail(error, BAGEL_ERROR_FORMAT, "%s: the top level is not a JSON object", name);
    return NULL;
  }
  return root;
}

/* An integer id in [0, 2^31-1) from a JSON node. */
static gboolean node_id(JsonNode *n, gint32 *out) {
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64) return FALSE;
  gint64 v = json_node_get_int(n);
  if (v < 0 || v >= G_MAXINT32) return FALSE;
  *out = (gint32)v;
  return TRUE;
}

/* An optional boolean member: absent or null = dflt. */
static gboolean member_bool(JsonObject *o, const char *key, gboolean dflt, gboolean *out,
                            const char *where, GError **error) {
  JsonNode *n = json_object_get_member(o, key);
  if (!n || JSON_NODE_HOLDS_NULL(n)) { *out = dflt; return TRUE; }
  if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
    return fail(error, BAGEL_ERROR_FORMAT, "%s.%s: expected true or false", where, key);
  *out = json_node_get_boolean(n);
  return TRUE;
}

/* ---- the loader --------------------------------------------------------------------------- */

typedef struct {
  BagelTokenizer *tok;
  const TokNames *names;
  GPtrArray *vocab_keys;       /* owned by tok->vocab; index = insertion order */
  gint32 max_id;
  GPtrArray *added;            /* TokAdded* */
  GHashTable *special_text;    /* contents named in the config's special-token fields */
  GHashTable *additional_text; /* contents listed in additional_special_tokens */
  guint n_merges;
} Loader;

static void added_free(gpointer p) {
  TokAdded *a = p;
  g_free(a->content);
  g_free(a);
}

static gboolean load_vocab(Loader *L, JsonObject *obj, const char *where, GError **error) {
  BagelTokenizer *tok = L->tok;
  JsonObjectIter it;
  const char *key;
  JsonNode *val;
  json_object_iter_init(&it, obj);
  while (json_object_iter_next(&it, &key, &val)) {
    gint32 id;
    if (!node_id(val, &id)) {
      char *q = quote(key);
      fail(error, BAGEL_ERROR_FORMAT, "%s: key %s: the id must be an integer in [0, 2^31-1)",
           where, q);
      g_free(q);
      return FALSE;
    }
    if (g_hash_table_contains(tok->vocab, key)) { /* only through an escaped NUL in a key */
      char *q = quote(key);
      fail(error, BAGEL_ERROR_FORMAT, "%s: key %s appears twice", where, q);
      g_free(q);
      return FALSE;
    }
    char *k = g_strdup(key);
    g_hash_table_insert(tok->vocab, k, GINT_TO_POINTER(id + 1));
    g_ptr_array_add(L->vocab_keys, k);
    if (id > L->max_id) L->max_id = id;
  }
  tok->n_vocab_entries = (gint32)L->vocab_keys->len;
  if (tok->n_vocab_entries == 0) return fail(error, BAGEL_ERROR_FORMAT, "%s: empty vocabulary", where);
  /* ids index arrays: refuse absurdly sparse files rather than allocating for them */
  if (L->max_id >= 4 * tok->n_vocab_entries + 4096)
    return fail(error, BAGEL_ERROR_FORMAT,
                "%s: id %d is far beyond the number of entries (%d); refusing a sparse vocabulary",
                where, L->max_id, tok->n_vocab_entries);
  return TRUE;
}

static gint32 vocab_id(const BagelTokenizer *tok, const char *s) {
  gpointer v = g_hash_table_lookup(tok->vocab, s);
  return v ? GPOINTER_TO_INT(v) - 1 : -1;
}

static void pairs_alloc(BagelTokenizer *tok, guint n_max) {
  guint32 cap = 1024;
  while (cap < 2u * n_max + 16) cap <<= 1;
  tok->pairs = g_new(TokPair, cap);
  for (guint32 i = 0; i < cap; i++) tok->pairs[i].a = -1;
  tok->pair_mask = cap - 1;
}

/* Adds merge (a, b) with the next rank; `where` names the line or element for messages. */
static gboolean add_merge(Loader *L, const char *a, const char *b, GString *buf,
                          const char *where, GError **error) {
  BagelTokenizer *tok = L->tok;
  gint32 ia = vocab_id(tok, a), ib = vocab_id(tok, b);
  g_string_assign(buf, a);
  g_string_append(buf, b);
  gint32 im = vocab_id(tok, buf->str);
  const char *missing = ia < 0 ? a : ib < 0 ? b : im < 0 ? buf->str : NULL;
  if (missing) {
    char *q = quote(missing);
    fail(error, BAGEL_ERROR_FORMAT, "%s: %stoken %s is not in the vocabulary", where,
         im < 0 && ia >= 0 && ib >= 0 ? "merged " : "", q);
    g_free(q);
    return FALSE;
  }
  guint64 key = ((guint64)(guint32)ia << 32) | (guint32)ib;
  guint32 i = (guint32)((key * G_GUINT64_CONSTANT(0x9E3779B97F4A7C15)) >> 40) & tok->pair_mask;
  while (tok->pairs[i].a >= 0 && !(tok->pairs[i].a == ia && tok->pairs[i].b == ib))
    i = (i + 1) & tok->pair_mask;
  /* a duplicate merge takes the later rank, as Python's dict(zip(merges, range(n))) does */
  tok->pairs[i] = (TokPair){ia, ib, (gint32)L->n_merges, im};
  L->n_merges++;
  return TRUE;
}

/* merges.txt, read as Python does: universal newlines, line.strip(), the first line skipped
 * when it starts with "#version:", empty lines skipped, line.split() must give two tokens. */
static gboolean load_merges_txt(Loader *L, const char *data, gssize len, GError **error) {
  const char *name = L->names->merges;
  if (len < 0) len = strlen(data);
  const char *bad;
  if (!g_utf8_validate_len(data, len, &bad)) {
    guint line = 1;
    for (const char *p = data; p < bad; p++) line += (*p == '\n');
    return fail(error, BAGEL_ERROR_FORMAT, "%s line %u: invalid UTF-8 (byte offset %" G_GSIZE_FORMAT ")",
                name, line, (gsize)(bad - data));
  }
  guint n_lines = 1;
  for (gssize i = 0; i < len; i++) n_lines += (data[i] == '\n' || data[i] == '\r');
  pairs_alloc(L->tok, n_lines);

  GString *buf = g_string_new(NULL);
  GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
  const char *p = data, *end = data + len;
  gboolean ok = TRUE;
  for (guint lineno = 1; ok && p < end; lineno++) {
    const char *eol = p;
    while (eol < end && *eol != '\n' && *eol != '\r') eol++;
    const char *next = eol < end ? eol + 1 : end;
    if (eol < end && *eol == '\r' && next < end && *next == '\n') next++;
    /* split on runs of Python whitespace (which also strips the line) */
    g_ptr_array_set_size(parts, 0);
    const char *q = p;
    while (q < eol) {
      while (q < eol && tok_py_isspace(g_utf8_get_char(q))) q = g_utf8_next_char(q);
      if (q >= eol) break;
      const char *s = q;
      while (q < eol && !tok_py_isspace(g_utf8_get_char(q))) q = g_utf8_next_char(q);
      g_ptr_array_add(parts, g_strndup(s, q - s));
    }
    gboolean skip = parts->len == 0 ||
                    (lineno == 1 && g_str_has_prefix(g_ptr_array_index(parts, 0), "#version:"));
    if (!skip) {
      char *where = g_strdup_printf("%s line %u", name, lineno);
      if (parts->len != 2)
        ok = fail(error, BAGEL_ERROR_FORMAT, "%s: expected two tokens separated by a space, found %u",
                  where, parts->len);
      else if (memchr(p, '\0', eol - p) != NULL)
        ok = fail(error, BAGEL_ERROR_FORMAT, "%s: NUL character in a token", where);
      else
        ok = add_merge(L, g_ptr_array_index(parts, 0), g_ptr_array_index(parts, 1), buf, where, error);
      g_free(where);
    }
    p = next;
  }
  g_ptr_array_unref(parts);
  g_string_free(buf, TRUE);
  return ok;
}

/* tokenizer.json model.merges: ["a b", ...] or [["a", "b"], ...]. */
static gboolean load_merges_json(Loader *L, JsonArray *arr, GError **error) {
  guint n = json_array_get_length(arr);
  pairs_alloc(L->tok, n);
  GString *buf = g_string_new(NULL);
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < n; i++) {
    char *where = g_strdup_printf("%s: model.merges[%u]", L->names->tokjson, i);
    JsonNode *e = json_array_get_element(arr, i);
    const char *a = NULL, *b = NULL;
    char *tmp = NULL;
    if (JSON_NODE_HOLDS_VALUE(e) && json_node_get_value_type(e) == G_TYPE_STRING) {
      const char *s = json_node_get_string(e);
      const char *sp = strchr(s, ' ');
      if (sp && sp != s && sp[1] && !strchr(sp + 1, ' ')) {
        tmp = g_strndup(s, sp - s);
        a = tmp;
        b = sp + 1;
      }
    } else if (JSON_NODE_HOLDS_ARRAY(e) && json_array_get_length(json_node_get_array(e)) == 2) {
      JsonArray *pair = json_node_get_array(e);
      JsonNode *x = json_array_get_element(pair, 0), *y = json_array_get_element(pair, 1);
      if (JSON_NODE_HOLDS_VALUE(x) && json_node_get_value_type(x) == G_TYPE_STRING &&
          JSON_NODE_HOLDS_VALUE(y) && json_node_get_value_type(y) == G_TYPE_STRING) {
        a = json_node_get_string(x);
        b = json_node_get_string(y);
      }
    }
    if (!a || !b)
      ok = fail(error, BAGEL_ERROR_FORMAT, "%s: expected \"a b\" or [\"a\", \"b\"]", where);
    else
      ok = add_merge(L, a, b, buf, where, error);
    g_free(tmp);
    g_free(where);
  }
  g_string_free(buf, TRUE);
  return ok;
}

static TokAdded *find_added(Loader *L, const char *content) {
  for (guint i = 0; i < L->added->len; i++) {
    TokAdded *a = g_ptr_array_index(L->added, i);
    if (!strcmp(a->content, content)) return a;
  }
  return NULL;
}

/* Adds or (same id and content) re-states an added token. */
static gboolean add_added(Loader *L, TokAdded *t, const char *where, GError **error) {
  for (guint i = 0; i < L->added->len; i++) {
    TokAdded *a = g_ptr_array_index(L->added, i);
    gboolean same_text = !strcmp(a->content, t->content);
    if (a->id == t->id && same_text) { /* listed twice (tokenizer.json + config): keep first */
      added_free(t);
      return TRUE;
    }
    if (a->id == t->id || same_text) {
      char *qa = quote(a->content), *qt = quote(t->content);
      fail(error, BAGEL_ERROR_FORMAT, "%s: added token %s (id %d) clashes with added token %s (id %d)",
           where, qt, t->id, qa, a->id);
      g_free(qa);
      g_free(qt);
      added_free(t);
      return FALSE;
    }
  }
  if (t->len == 0) { /* transformers' Trie ignores empty tokens; so do we */
    added_free(t);
    return TRUE;
  }
  if (t->id > L->max_id) L->max_id = t->id;
  g_ptr_array_add(L->added, t);
  return TRUE;
}

/* An added token described by a JSON object {content, lstrip, rstrip, single_word, special,
 * normalized}; the id is given (from the key, or the object's "id" member). */
static gboolean parse_added(Loader *L, JsonObject *o, gint32 id, const char *where, GError **error) {
  JsonNode *c = json_object_get_member(o, "content");
  if (!c || !JSON_NODE_HOLDS_VALUE(c) || json_node_get_value_type(c) != G_TYPE_STRING)
    return fail(error, BAGEL_ERROR_FORMAT, "%s: missing or non-string \"content\"", where);
  TokAdded *t = g_new0(TokAdded, 1);
  t->content = g_strdup(json_node_get_string(c));
  t->len = strlen(t->content);
  t->id = id;
  gboolean normalized;
  if (!member_bool(o, "lstrip", FALSE, &t->lstrip, where, error) ||
      !member_bool(o, "rstrip", FALSE, &t->rstrip, where, error) ||
      !member_bool(o, "single_word", FALSE, &t->single_word, where, error) ||
      !member_bool(o, "special", FALSE, &t->special, where, error) ||
      !member_bool(o, "normalized", TRUE, &normalized, where, error)) {
    added_free(t);
    return FALSE;
  }
  return add_added(L, t, where, error);
}

static gboolean load_added_decoder(Loader *L, JsonObject *cfg, GError **error) {
  JsonNode *n = json_object_get_member(cfg, "added_tokens_decoder");
  if (!n || JSON_NODE_HOLDS_NULL(n)) return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT(n))
    return fail(error, BAGEL_ERROR_FORMAT, "%s: added_tokens_decoder is not an object", L->names->config);
  JsonObjectIter it;
  const char *key;
  JsonNode *val;
  json_object_iter_init(&it, json_node_get_object(n));
  while (json_object_iter_next(&it, &key, &val)) {
    char *q = quote(key);
    char *where = g_strdup_printf("%s: added_tokens_decoder.%s", L->names->config, q);
    g_free(q);
    char *endp;
    gint64 id = g_ascii_strtoll(key, &endp, 10);
    gboolean ok;
    if (!*key || *endp || id < 0 || id >= G_MAXINT32)
      ok = fail(error, BAGEL_ERROR_FORMAT, "%s: the key must be a non-negative integer id", where);
    else if (!JSON_NODE_HOLDS_OBJECT(val))
      ok = fail(error, BAGEL_ERROR_FORMAT, "%s: expected an object", where);
    else
      ok = parse_added(L, json_node_get_object(val), (gint32)id, where, error);
    g_free(where);
    if (!ok) return FALSE;
  }
  return TRUE;
}

static gboolean load_added_list(Loader *L, JsonObject *root, GError **error) {
  JsonNode *n = json_object_get_member(root, "added_tokens");
  if (!n || JSON_NODE_HOLDS_NULL(n)) return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY(n))
    return fail(error, BAGEL_ERROR_FORMAT, "%s: added_tokens is not an array", L->names->tokjson);
  JsonArray *arr = json_node_get_array(n);
  for (guint i = 0; i < json_array_get_length(arr); i++) {
    char *where = g_strdup_printf("%s: added_tokens[%u]", L->names->tokjson, i);
    JsonNode *e = json_array_get_element(arr, i);
    gint32 id;
    gboolean ok;
    if (!JSON_NODE_HOLDS_OBJECT(e))
      ok = fail(error, BAGEL_ERROR_FORMAT, "%s: expected an object", where);
    else if (!node_id(json_object_get_member(json_node_get_object(e), "id"), &id))
      ok = fail(error, BAGEL_ERROR_FORMAT, "%s: \"id\" must be an integer in [0, 2^31-1)", where);
    else
      ok = parse_added(L, json_node_get_object(e), id, where, error);
    g_free(where);
    if (!ok) return FALSE;
  }
  return TRUE;
}

/* A special-token value of the config: "text", {"content": "text", ...} or null. */
static gboolean special_value(JsonNode *n, const char *where, const char **out, GError **error) {
  *out = NULL;
  if (!n || JSON_NODE_HOLDS_NULL(n)) return TRUE;
  if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
    *out = json_node_get_string(n);
    return TRUE;
  }
  if (JSON_NODE_HOLDS_OBJECT(n)) {
    JsonNode *c = json_object_get_member(json_node_get_object(n), "content");
    if (c && JSON_NODE_HOLDS_VALUE(c) && json_node_get_value_type(c) == G_TYPE_STRING) {
      *out = json_node_get_string(c);
      return TRUE;
    }
  }
  return fail(error, BAGEL_ERROR_FORMAT, "%s: expected a string, {\"content\": ...} or null", where);
}

/* transformers adds the special tokens the config names but added_tokens_decoder does not list:
 * the vocab id when the text is in vocab.json, else the next free id. */
static gboolean add_special(Loader *L, const char *text, GError **error) {
  if (!text || !*text || find_added(L, text)) return TRUE;
  TokAdded *t = g_new0(TokAdded, 1);
  t->content = g_strdup(text);
  t->len = strlen(text);
  t->special = TRUE;
  t->id = vocab_id(L->tok, text);
  if (t->id < 0) {
    /* transformers: len(get_vocab()) = distinct texts of vocab and added tokens */
    guint extra = 0;
    for (guint i = 0; i < L->added->len; i++)
      if (vocab_id(L->tok, ((TokAdded *)g_ptr_array_index(L->added, i))->content) < 0) extra++;
    t->id = L->tok->n_vocab_entries + (gint32)extra;
  }
  return add_added(L, t, L->names->config, error);
}

static gboolean load_config(Loader *L, JsonObject *cfg, GError **error) {
  const char *name = L->names->config;
  JsonNode *cls = json_object_get_member(cfg, "tokenizer_class");
  if (cls && JSON_NODE_HOLDS_VALUE(cls) && json_node_get_value_type(cls) == G_TYPE_STRING &&
      !g_str_has_prefix(json_node_get_string(cls), "Qwen2Tokenizer"))
    return fail(error, BAGEL_ERROR_MODEL, "%s: tokenizer_class \"%s\" is not supported (Qwen2Tokenizer only)",
                name, json_node_get_string(cls));
  JsonNode *errs = json_object_get_member(cfg, "errors");
  if (errs && !JSON_NODE_HOLDS_NULL(errs) &&
      !(JSON_NODE_HOLDS_VALUE(errs) && json_node_get_value_type(errs) == G_TYPE_STRING &&
        !strcmp(json_node_get_string(errs), "replace")))
    return fail(error, BAGEL_ERROR_FORMAT, "%s: errors: only \"replace\" is supported", name);
  if (!member_bool(cfg, "split_special_tokens", FALSE, &L->tok->split_special_tokens, name, error))
    return FALSE;
  if (!load_added_decoder(L, cfg, error)) return FALSE;

  /* the special-token fields, with Qwen2Tokenizer's defaults for absent keys */
  static const char *const fields[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
  static const char *const defaults[] = {NULL, "<|endoftext|>", "<|endoftext|>", NULL,
                                         "<|endoftext|>", NULL, NULL};
  for (guint i = 0; i < G_N_ELEMENTS(fields); i++) {
    const char *text = defaults[i];
    if (json_object_has_member(cfg, fields[i])) {
      char *where = g_strdup_printf("%s: %s", name, fields[i]);
      gboolean ok = special_value(json_object_get_member(cfg, fields[i]), where, &text, error);
      g_free(where);
      if (!ok) return FALSE;
    }
    if (text) g_hash_table_add(L->special_text, g_strdup(text));
    if (!add_special(L, text, error)) return FALSE;
  }
  JsonNode *extra = json_object_get_member(cfg, "additional_special_tokens");
  if (extra && !JSON_NODE_HOLDS_NULL(extra)) {
    if (!JSON_NODE_HOLDS_ARRAY(extra))
      return fail(error, BAGEL_ERROR_FORMAT, "%s: additional_special_tokens is not an array", name);
    JsonArray *arr = json_node_get_array(extra);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
      char *where = g_strdup_printf("%s: additional_special_tokens[%u]", name, i);
      const char *text;
      gboolean ok = special_value(json_array_get_element(arr, i), where, &text, error);
      g_free(where);
      if (!ok) return FALSE;
      if (!text) continue;
      g_hash_table_add(L->special_text, g_strdup(text));
      g_hash_table_add(L->additional_text, g_strdup(text));
      if (!add_special(L, text, error)) return FALSE;
    }
  }
  return TRUE;
}

/* ---- finishing: id table, decode bytes, trie ---------------------------------------------- */

static guint trie_child(BagelTokenizer *tok, guint node, gunichar c, gboolean create) {
  TokTrieNode *n = &tok->trie[node];
  for (guint i = 0; i < n->n_kids; i++)
    if (n->chars[i] == c) return n->kids[i];
  if (!create) return 0;
  guint k = tok->n_trie++;
  tok->trie = g_renew(TokTrieNode, tok->trie, tok->n_trie);
  memset(&tok->trie[k], 0, sizeof(TokTrieNode));
  n = &tok->trie[node];
  n->chars = g_renew(gunichar, n->chars, n->n_kids + 1);
  n->kids = g_renew(guint, n->kids, n->n_kids + 1);
  n->chars[n->n_kids] = c;
  n->kids[n->n_kids] = k;
  n->n_kids++;
  return k;
}

static void append_token_bytes(GString *out, const char *s, gboolean verbatim) {
  if (!verbatim) { /* through the byte decoder, when every character is in its table */
    for (const char *p = s; *p; p = g_utf8_next_char(p))
      if (tok_unichar_to_byte(g_utf8_get_char(p)) < 0) { verbatim = TRUE; break; }
  }
  if (verbatim) {
    g_string_append(out, s);
    return;
  }
  for (const char *p = s; *p; p = g_utf8_next_char(p))
    g_string_append_c(out, (char)tok_unichar_to_byte(g_utf8_get_char(p)));
}

static gboolean finish(Loader *L, GError **error) {
  BagelTokenizer *tok = L->tok;
  const char *vname = L->names->vocab;
  tok->n_ids = L->max_id + 1;
  tok->text = g_new0(char *, tok->n_ids);
  for (guint i = 0; i < L->vocab_keys->len; i++) {
    char *k = g_ptr_array_index(L->vocab_keys, i);
    gint32 id = vocab_id(tok, k);
    if (tok->text[id]) {
      char *qa = quote(tok->text[id]), *qb = quote(k);
      fail(error, BAGEL_ERROR_FORMAT, "%s: keys %s and %s have the same id %d", vname, qa, qb, id);
      g_free(qa);
      g_free(qb);
      return FALSE;
    }
    tok->text[id] = k;
  }

  /* added tokens: a vocab token with the same id must have the same text */
  tok->n_added = L->added->len;
  tok->added = g_new0(TokAdded, tok->n_added);
  tok->added_by_text = g_hash_table_new(g_str_hash, g_str_equal);
  for (guint i = 0; i < tok->n_added; i++) {
    TokAdded *a = g_ptr_array_index(L->added, i);
    tok->added[i] = *a;
    a->content = NULL; /* moved */
    TokAdded *t = &tok->added[i];
    if (tok->text[t->id] && strcmp(tok->text[t->id], t->content)) {
      char *qa = quote(tok->text[t->id]), *qb = quote(t->content);
      fail(error, BAGEL_ERROR_FORMAT, "%s: added token %s has id %d, which %s gives to %s",
           tok->added_source, qb, t->id, vname, qa);
      g_free(qa);
      g_free(qb);
      return FALSE;
    }
    tok->text[t->id] = t->content;
    g_hash_table_insert(tok->added_by_text, t->content, t);
    t->verbatim = !g_hash_table_contains(L->special_text, t->content) ||
                  (g_hash_table_contains(L->additional_text, t->content) &&
                   t->id >= tok->n_vocab_entries);
    /* transformers converts BPE output through the added tokens first */
    gint32 v = vocab_id(tok, t->content);
    if (v >= 0 && v != t->id) {
      if (!tok->remap) {
        tok->remap = g_new(gint32, tok->n_ids);
        for (gint32 j = 0; j < tok->n_ids; j++) tok->remap[j] = j;
      }
      tok->remap[v] = t->id;
    }
  }

  /* every byte must have its one-character token */
  for (guint b = 0; b < 256; b++) {
    char s[8];
    s[g_unichar_to_utf8(tok_byte_to_unichar((guint8)b), s)] = 0;
    tok->byte_id[b] = vocab_id(tok, s);
    if (tok->byte_id[b] < 0)
      return fail(error, BAGEL_ERROR_FORMAT,
                  "%s: the byte-level token \"%s\" (byte 0x%02x) is missing", vname, s, b);
  }

  /* the bytes each id decodes to */
  GString *buf = g_string_sized_new(1 << 20);
  tok->dec_off = g_new(guint32, tok->n_ids);
  tok->dec_len = g_new(guint32, tok->n_ids);
  for (gint32 id = 0; id < tok->n_ids; id++) {
    tok->dec_off[id] = (guint32)buf->len;
    tok->dec_len[id] = G_MAXUINT32;
    if (!tok->text[id]) continue;
    TokAdded *a = g_hash_table_lookup(tok->added_by_text, tok->text[id]);
    gboolean is_added = a && a->id == id;
    append_token_bytes(buf, tok->text[id], is_added ? a->verbatim : FALSE);
    tok->dec_len[id] = (guint32)buf->len - tok->dec_off[id];
  }
  tok->dec_buf = g_string_free(buf, FALSE);

  /* the added-token trie */
  tok->trie = g_new0(TokTrieNode, 1);
  tok->n_trie = 1;
  for (guint i = 0; i < tok->n_added; i++) {
    guint node = 0;
    for (const char *p = tok->added[i].content; *p; p = g_utf8_next_char(p))
      node = trie_child(tok, node, g_utf8_get_char(p), TRUE);
    tok->trie[node].terminal = TRUE;
  }
  return tok_init_runtime(tok, error);
}

static BagelTokenizer *load_all(const TokSources *src, const TokNames *names, GError **error) {
  BagelTokenizer *tok = g_new0(BagelTokenizer, 1);
  tok->vocab = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_mutex_init(&tok->cache_lock);
  Loader L = {tok, names, g_ptr_array_new(), -1, g_ptr_array_new_with_free_func(added_free),
              g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
              g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL), 0};
  JsonNode *vroot = NULL, *troot = NULL, *croot = NULL;
  gboolean ok = FALSE;

  if (src->vocab_json) {
    tok->added_source = g_strdup(names->config);
    if (!src->merges_txt) {
      fail(error, BAGEL_ERROR_MODEL, "%s: missing (vocab.json needs merges.txt)", names->merges);
      goto out;
    }
    if (!src->config_json) {
      fail(error, BAGEL_ERROR_MODEL, "%s: missing (it lists the special tokens)", names->config);
      goto out;
    }
    if (!(vroot = parse_json(src->vocab_json, src->vocab_json_len, names->vocab, error)) ||
        !load_vocab(&L, json_node_get_object(vroot), names->vocab, error) ||
        !load_merges_txt(&L, src->merges_txt, src->merges_txt_len, error))
      goto out;
  } else if (src->tokenizer_json) {
    tok->added_source = g_strdup(names->tokjson);
    if (!(troot = parse_json(src->tokenizer_json, src->tokenizer_json_len, names->tokjson, error)))
      goto out;
    JsonObject *root = json_node_get_object(troot);
    JsonNode *m = json_object_get_member(root, "model");
    if (!m || !JSON_NODE_HOLDS_OBJECT(m)) {
      fail(error, BAGEL_ERROR_FORMAT, "%s: missing \"model\" object", names->tokjson);
      goto out;
    }
    JsonObject *model = json_node_get_object(m);
    JsonNode *tn = json_object_get_member(model, "type");
    const char *type = tn && JSON_NODE_HOLDS_VALUE(tn) && json_node_get_value_type(tn) == G_TYPE_STRING
                           ? json_node_get_string(tn) : tn && !JSON_NODE_HOLDS_NULL(tn) ? "?" : "BPE";
    gboolean byte_fallback, ignore_merges;
    if (strcmp(type, "BPE")) {
      fail(error, BAGEL_ERROR_MODEL, "%s: model.type \"%s\" is not supported (BPE only)", names->tokjson, type);
      goto out;
    }
    if (!member_bool(model, "byte_fallback", FALSE, &byte_fallback, names->tokjson, error) ||
        !member_bool(model, "ignore_merges", FALSE, &ignore_merges, names->tokjson, error))
      goto out;
    if (byte_fallback || ignore_merges) {
      fail(error, BAGEL_ERROR_MODEL, "%s: model.%s is not supported", names->tokjson,
           byte_fallback ? "byte_fallback" : "ignore_merges");
      goto out;
    }
    JsonNode *v = json_object_get_member(model, "vocab"), *mg = json_object_get_member(model, "merges");
    char *vwhere = g_strdup_printf("%s: model.vocab", names->tokjson);
    if (!v || !JSON_NODE_HOLDS_OBJECT(v)) {
      fail(error, BAGEL_ERROR_FORMAT, "%s: missing or not an object", vwhere);
      g_free(vwhere);
      goto out;
    }
    names = &(TokNames){vwhere, names->merges, names->config, names->tokjson};
    L.names = names;
    ok = load_vocab(&L, json_node_get_object(v), vwhere, error);
    if (ok && (!mg || !JSON_NODE_HOLDS_ARRAY(mg)))
      ok = fail(error, BAGEL_ERROR_FORMAT, "%s: model.merges: missing or not an array", names->tokjson);
    ok = ok && load_merges_json(&L, json_node_get_array(mg), error) && load_added_list(&L, root, error);
    if (ok && src->config_json) {
      ok = (croot = parse_json(src->config_json, src->config_json_len, names->config, error)) &&
           load_config(&L, json_node_get_object(croot), error);
    }
    ok = ok && finish(&L, error);
    g_free(vwhere);
    goto out;
  } else {
    fail(error, BAGEL_ERROR_MODEL, "no tokenizer: expected %s + %s + %s, or %s", names->vocab,
         names->merges, names->config, names->tokjson);
    goto out;
  }
  ok = (croot = parse_json(src->config_json, src->config_json_len, names->config, error)) &&
       load_config(&L, json_node_get_object(croot), error) && finish(&L, error);
out:
  if (vroot) json_node_unref(vroot);
  if (troot) json_node_unref(troot);
  if (croot) json_node_unref(croot);
  g_ptr_array_unref(L.vocab_keys);
  g_ptr_array_unref(L.added);
  g_hash_table_unref(L.special_text);
  g_hash_table_unref(L.additional_text);
  if (!ok) {
    tok_free(tok);
    return NULL;
  }
  return tok;
}

BagelTokenizer *tok_load_from_data(const TokSources *src, GError **error) {
  g_return_val_if_fail(src != NULL, NULL);
  static const TokNames names = {"vocab.json", "merges.txt", "tokenizer_config.json", "tokenizer.json"};
  return load_all(src, &names, error);
}

/* Reads dir/name if it exists; a missing file is not an error (contents stays NULL). */
static gboolean read_optional(const char *path, char **contents, gsize *len, GError **error) {
  *contents = NULL;
  *len = 0;
  if (!g_file_test(path, G_FILE_TEST_EXISTS)) return TRUE;
  GError *err = NULL;
  if (!g_file_get_contents(path, contents, len, &err)) {
    fail(error, BAGEL_ERROR_IO, "%s: %s", path, err->message);
    g_error_free(err);
    return FALSE;
  }
  return TRUE;
}

BagelTokenizer *tok_load(const char *model_dir, GError **error) {
  g_return_val_if_fail(model_dir != NULL, NULL);
  if (!g_file_test(model_dir, G_FILE_TEST_IS_DIR)) {
    fail(error, BAGEL_ERROR_MODEL, "%s: not a directory", model_dir);
    return NULL;
  }
  char *paths[4] = {g_build_filename(model_dir, "vocab.json", NULL),
                    g_build_filename(model_dir, "merges.txt", NULL),
                    g_build_filename(model_dir, "tokenizer_config.json", NULL),
                    g_build_filename(model_dir, "tokenizer.json", NULL)};
  char *data[4] = {NULL};
  gsize len[4] = {0};
  BagelTokenizer *tok = NULL;
  gboolean have_vocab = g_file_test(paths[0], G_FILE_TEST_EXISTS);
  for (int i = 0; i < 4; i++) {
    if (i == 3 && have_vocab) break; /* the slow tokenizer's files win */
    if (i == 1 && !have_vocab) continue;
    if (!read_optional(paths[i], &data[i], &len[i], error)) goto out;
  }
  TokNames names = {paths[0], paths[1], paths[2], paths[3]};
  TokSources src = {data[0], (gssize)len[0], data[1], (gssize)len[1],
                    data[2], (gssize)len[2], data[3], (gssize)len[3]};
  tok = load_all(&src, &names, error);
out:
  for (int i = 0; i < 4; i++) {
    g_free(paths[i]);
    g_free(data[i]);
  }
  return tok;
}
