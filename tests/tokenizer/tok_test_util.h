/* tests/tokenizer/tok_test_util.h — small helpers shared by the tokenizer tests. */
#ifndef TOK_TEST_UTIL_H
#define TOK_TEST_UTIL_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer.h"

#define QWEN2_DIR BAGEL_TEST_DATA_DIR "/qwen2-tokenizer"
#define TOK_DATA_DIR BAGEL_TEST_DATA_DIR "/tokenizer"

/* The real Qwen2.5 tokenizer, loaded once per test program. */
static inline BagelTokenizer *qwen2(void) {
  static BagelTokenizer *tok;
  if (!tok) {
    GError *error = NULL;
    tok = tok_load(QWEN2_DIR, &error);
    g_assert_no_error(error);
    g_assert_nonnull(tok);
  }
  return tok;
}

static inline JsonNode *load_json(const char *path) {
  JsonParser *p = json_parser_new();
  GError *error = NULL;
  json_parser_load_from_file(p, path, &error);
  g_assert_no_error(error);
  JsonNode *root = json_node_copy(json_parser_get_root(p));
  g_object_unref(p);
  return root;
}

static inline GArray *ids_from_json(JsonArray *a) {
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  for (guint i = 0; i < json_array_get_length(a); i++) {
    gint32 v = (gint32)json_array_get_int_element(a, i);
    g_array_append_val(ids, v);
  }
  return ids;
}

static inline gboolean ids_equal(const GArray *a, const GArray *b) {
  return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len * sizeof(gint32)));
}

static inline char *ids_to_string(const GArray *ids) {
  GString *s = g_string_new("[");
  for (guint i = 0; i < ids->len; i++)
    g_string_append_printf(s, i ? ", %d" : "%d", g_array_index(ids, gint32, i));
  g_string_append_c(s, ']');
  return g_string_free(s, FALSE);
}

/* The string as a C literal would show it (for mismatch reports). */
static inline char *escaped(const char *s, gssize len) {
  if (len < 0) len = strlen(s);
  char *copy = g_strndup(s, len), *e = g_strescape(copy, NULL);
  g_free(copy);
  return e;
}

static inline GArray *encode_ok(BagelTokenizer *tok, const char *s, gssize len) {
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  GError *error = NULL;
  gboolean ok = tok_encode(tok, s, len, ids, &error);
  g_assert_no_error(error);
  g_assert_true(ok);
  return ids;
}

#endif
