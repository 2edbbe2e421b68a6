/* tests/tokenizer/test_tokenizer_corpus.c — our ids against an independent implementation.
 *
 * tests/data/tokenizer/corpus_expected.json holds ~2,450 strings (every major script, CJK,
 * emoji ZWJ sequences and skin tones, combining marks NFC changes, digit runs, whitespace runs,
 * contractions, code, URLs, literal special tokens, empty lines…) and the ids Hugging Face's
 * tokenizers.js gives them on the same vocabulary and merges (tools/tokref/).  Checks:
 *   1. encode(text) == expected ids, for every string (mismatches are printed);
 *   2. decode(encode(text)) == NFC(text) (NFC from JavaScript's String.normalize);
 *   3. a tokenizer.json written from the same vocab/merges/added tokens (merges in both the
 *      "a b" and the [a, b] form) loads and encodes the whole corpus to the same ids. */
#include <glib/gstdio.h>

#include "tok_test_util.h"

typedef struct {
  char *text;
  GArray *ids;
  char *nfc;
} Item;

static GPtrArray *corpus(void) {
  static GPtrArray *items;
  if (items) return items;
  items = g_ptr_array_new();
  JsonNode *root = load_json(TOK_DATA_DIR "/corpus_expected.json");
  JsonArray *arr = json_object_get_array_member(json_node_get_object(root), "items");
  for (guint i = 0; i < json_array_get_length(arr); i++) {
    JsonObject *o = json_array_get_object_element(arr, i);
    Item *it = g_new0(Item, 1);
    it->text = g_strdup(json_object_get_string_member(o, "text"));
    it->ids = ids_from_json(json_object_get_array_member(o, "ids"));
    it->nfc = g_strdup(json_object_get_string_member_with_default(o, "nfc", it->text));
    g_ptr_array_add(items, it);
  }
  json_node_unref(root);
  return items;
}

static void test_corpus_ids(void) {
  GPtrArray *items = corpus();
  g_assert_cmpuint(items->len, >=, 2000);
  guint bad = 0;
  for (guint i = 0; i < items->len; i++) {
    Item *it = g_ptr_array_index(items, i);
    GArray *ids = encode_ok(qwen2(), it->text, -1);
    if (!ids_equal(ids, it->ids)) {
      char *e = escaped(it->text, -1), *a = ids_to_string(ids), *b = ids_to_string(it->ids);
      g_printerr("MISMATCH item %u: \"%s\"\n  ours:     %s\n  expected: %s\n", i, e, a, b);
      g_free(e); g_free(a); g_free(b);
      bad++;
    }
    g_array_unref(ids);
  }
  g_test_message("corpus: %u strings, %u mismatches", items->len, bad);
  g_assert_cmpuint(bad, ==, 0);
}

static void test_round_trip(void) {
  GPtrArray *items = corpus();
  guint bad = 0;
  for (guint i = 0; i < items->len; i++) {
    Item *it = g_ptr_array_index(items, i);
    GArray *ids = encode_ok(qwen2(), it->text, -1);
    char *ours = tok_decode(qwen2(), (gint32 *)ids->data, ids->len, NULL);
    char *theirs = tok_decode(qwen2(), (gint32 *)it->ids->data, it->ids->len, NULL);
    if (strcmp(ours, it->nfc) || strcmp(theirs, it->nfc)) {
      char *e = escaped(it->nfc, -1), *o = escaped(ours, -1);
      g_printerr("ROUND TRIP item %u: NFC(text) = \"%s\", decode(encode) = \"%s\"\n", i, e, o);
      g_free(e); g_free(o);
      bad++;
    }
    g_free(ours);
    g_free(theirs);
    g_array_unref(ids);
  }
  g_test_message("round trip: %u strings, %u failures", items->len, bad);
  g_assert_cmpuint(bad, ==, 0);
}

/* ---- tokenizer.json ------------------------------------------------------------------------ */

static void add_flag(JsonBuilder *b, JsonObject *from, const char *key) {
  json_builder_set_member_name(b, key);
  json_builder_add_boolean_value(b, json_object_get_boolean_member_with_default(from, key, FALSE));
}

/* Writes dir/tokenizer.json (HF fast format) from tests/data/qwen2-tokenizer. */
static void write_tokenizer_json(const char *dir, gboolean pair_merges) {
  JsonNode *vocab = load_json(QWEN2_DIR "/vocab.json");
  JsonNode *config = load_json(QWEN2_DIR "/tokenizer_config.json");
  char *merges_txt;
  g_assert_true(g_file_get_contents(QWEN2_DIR "/merges.txt", &merges_txt, NULL, NULL));

  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "version");
  json_builder_add_string_value(b, "1.0");
  json_builder_set_member_name(b, "added_tokens");
  json_builder_begin_array(b);
  JsonObject *dec = json_object_get_object_member(json_node_get_object(config), "added_tokens_decoder");
  GList *keys = json_object_get_members(dec);
  for (GList *l = keys; l; l = l->next) {
    JsonObject *t = json_object_get_object_member(dec, l->data);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "id");
    json_builder_add_int_value(b, g_ascii_strtoll(l->data, NULL, 10));
    json_builder_set_member_name(b, "content");
    json_builder_add_string_value(b, json_object_get_string_member(t, "content"));
    add_flag(b, t, "single_word");
    add_flag(b, t, "lstrip");
    add_flag(b, t, "rstrip");
    add_flag(b, t, "normalized");
    add_flag(b, t, "special");
    json_builder_end_object(b);
  }
  g_list_free(keys);
  json_builder_end_array(b);
  json_builder_set_member_name(b, "model");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "type");
  json_builder_add_string_value(b, "BPE");
  json_builder_set_member_name(b, "byte_fallback");
  json_builder_add_boolean_value(b, FALSE);
  json_builder_set_member_name(b, "vocab");
  json_builder_add_value(b, json_node_copy(vocab));
  json_builder_set_member_name(b, "merges");
  json_builder_begin_array(b);
  char **lines = g_strsplit(merges_txt, "\n", -1);
  for (char **l = lines + 1; *l; l++) { /* line 1 is "#version: 0.2" */
    if (!**l) continue;
    if (pair_merges) {
      char **ab = g_strsplit(*l, " ", 2);
      json_builder_begin_array(b);
      json_builder_add_string_value(b, ab[0]);
      json_builder_add_string_value(b, ab[1]);
      json_builder_end_array(b);
      g_strfreev(ab);
    } else {
      json_builder_add_string_value(b, *l);
    }
  }
  g_strfreev(lines);
  json_builder_end_array(b);
  json_builder_end_object(b);
  json_builder_end_object(b);

  JsonGenerator *gen = json_generator_new();
  JsonNode *root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  char *path = g_build_filename(dir, "tokenizer.json", NULL);
  GError *error = NULL;
  json_generator_to_file(gen, path, &error);
  g_assert_no_error(error);
  if (pair_merges) { /* this one with tokenizer_config.json beside it */
    char *cfg = g_build_filename(dir, "tokenizer_config.json", NULL), *data;
    gsize len;
    g_assert_true(g_file_get_contents(QWEN2_DIR "/tokenizer_config.json", &data, &len, NULL));
    g_assert_true(g_file_set_contents(cfg, data, len, NULL));
    g_free(data);
    g_free(cfg);
  }
  g_free(path);
  json_node_unref(root);
  g_object_unref(gen);
  g_object_unref(b);
  g_free(merges_txt);
  json_node_unref(vocab);
  json_node_unref(config);
}

static void remove_dir(const char *dir) {
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    char *p = g_build_filename(dir, name, NULL);
    g_remove(p);
    g_free(p);
  }
  if (d) g_dir_close(d);
  g_rmdir(dir);
}

static void check_tokenizer_json(gboolean pair_merges) {
  GError *error = NULL;
  char *dir = g_dir_make_tmp("bagel-tokjson-XXXXXX", &error);
  g_assert_no_error(error);
  write_tokenizer_json(dir, pair_merges);
  BagelTokenizer *fast = tok_load(dir, &error);
  g_assert_no_error(error);
  g_assert_cmpint(tok_vocab_size(fast), ==, tok_vocab_size(qwen2()));
  TokBagelIds a, b;
  g_assert_true(tok_bagel_ids(fast, &a, &error));
  g_assert_true(tok_bagel_ids(qwen2(), &b, &error));
  g_assert_cmpmem(&a, sizeof a, &b, sizeof b);
  GPtrArray *items = corpus();
  guint bad = 0;
  for (guint i = 0; i < items->len; i++) {
    Item *it = g_ptr_array_index(items, i);
    GArray *x = encode_ok(fast, it->text, -1), *y = encode_ok(qwen2(), it->text, -1);
    if (!ids_equal(x, y)) bad++;
    char *d1 = tok_decode(fast, (gint32 *)x->data, x->len, NULL);
    char *d2 = tok_decode(qwen2(), (gint32 *)y->data, y->len, NULL);
    if (strcmp(d1, d2)) bad++;
    g_free(d1);
    g_free(d2);
    g_array_unref(x);
    g_array_unref(y);
  }
  g_test_message("tokenizer.json (%s merges%s): %u strings, %u differences from vocab.json+merges.txt",
          pair_merges ? "[a, b]" : "\"a b\"", pair_merges ? ", with tokenizer_config.json" : " alone",
          items->len, bad);
  g_assert_cmpuint(bad, ==, 0);
  tok_free(fast);
  remove_dir(dir);
  g_free(dir);
}

static void test_tokenizer_json_strings(void) {
  check_tokenizer_json(FALSE);
}

static void test_tokenizer_json_pairs(void) {
  check_tokenizer_json(TRUE);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/tokenizer/corpus/ids", test_corpus_ids);
  g_test_add_func("/tokenizer/corpus/round-trip", test_round_trip);
  g_test_add_func("/tokenizer/corpus/tokenizer-json-strings", test_tokenizer_json_strings);
  g_test_add_func("/tokenizer/corpus/tokenizer-json-pairs", test_tokenizer_json_pairs);
  return g_test_run();
}
