/* tests/tokenizer/test_tokenizer.c — the tokenizer against the official runs and Python's
 * rules, case by case (the large corpus comparison is test_tokenizer_corpus.c):
 *  - golden: every text segment the official code appended in ../shared/golden/tiny (prompts,
 *    think system prompts, re-encoded reasoning), prompt_token_ids, and decode of the
 *    generated ids (tests/data/tokenizer/golden_tiny.json, see tools/tokref/extract_golden.py);
 *  - the embedded think prompts equal the official strings and give the official ids;
 *  - invalid UTF-8, NUL, Python's errors="replace" decoding, unknown ids;
 *  - added tokens on a tiny vocabulary: transformers' Trie and lstrip/rstrip/single_word
 *    (expected ids worked out with transformers' algorithm);
 *  - loader errors: each names the file and the line or key at fault. */
#include <glib/gstdio.h>

#include "bagel.h"
#include "resources.h"
#include "tok_test_util.h"
#include "tokenizer_internal.h"

static JsonObject *golden(void) {
  static JsonNode *root;
  if (!root) root = load_json(TOK_DATA_DIR "/golden_tiny.json");
  return json_node_get_object(root);
}

static void assert_ids(const GArray *got, const GArray *want, const char *what) {
  if (!ids_equal(got, want)) {
    char *a = ids_to_string(got), *b = ids_to_string(want);
    g_error("%s:\n  ours:     %s\n  expected: %s", what, a, b);
  }
}

static GArray *ids_of(const gint32 *v, guint n) {
  GArray *a = g_array_new(FALSE, FALSE, sizeof(gint32));
  g_array_append_vals(a, v, n);
  return a;
}

/* ---- the real tokenizer ------------------------------------------------------------------- */

static void test_qwen2_basics(void) {
  BagelTokenizer *tok = qwen2();
  g_assert_cmpint(tok_vocab_size(tok), ==, 151665);
  TokBagelIds ids;
  GError *error = NULL;
  g_assert_true(tok_bagel_ids(tok, &ids, &error));
  g_assert_no_error(error);
  g_assert_cmpint(ids.bos, ==, 151644);
  g_assert_cmpint(ids.eos, ==, 151645);
  g_assert_cmpint(ids.start_of_image, ==, 151652);
  g_assert_cmpint(ids.end_of_image, ==, 151653);
  g_assert_cmpint(tok_token_id(tok, "<|endoftext|>"), ==, 151643);
  g_assert_cmpint(tok_token_id(tok, "<|file_sep|>"), ==, 151664);
  g_assert_cmpint(tok_token_id(tok, "Hello"), ==, 9707);
  g_assert_cmpint(tok_token_id(tok, "\xc4\xa0world"), ==, 1879); /* "Ġworld" */
  g_assert_cmpint(tok_token_id(tok, "<think>"), ==, -1);         /* plain text in Qwen2.5 */
  g_assert_cmpint(tok_token_id(tok, "no such token"), ==, -1);
  GArray *a = encode_ok(tok, "Hello world", -1);
  assert_ids(a, ids_of((gint32[]){9707, 1879}, 2), "Hello world");
  g_array_unref(a);
  a = encode_ok(tok, "", 0);
  g_assert_cmpuint(a->len, ==, 0);
  g_array_unref(a);
}

static void test_golden_segments(void) {
  JsonObject *modes = json_object_get_object_member(golden(), "modes");
  GList *names = json_object_get_members(modes);
  guint n_segments = 0, n_prompts = 0;
  for (GList *l = names; l; l = l->next) {
    JsonObject *m = json_object_get_object_member(modes, l->data);
    /* prompt_token_ids = encode(prompt), no bos/eos */
    GArray *want = ids_from_json(json_object_get_array_member(m, "prompt_token_ids"));
    GArray *got = encode_ok(qwen2(), json_object_get_string_member(m, "prompt"), -1);
    assert_ids(got, want, l->data);
    g_array_unref(want);
    g_array_unref(got);
    n_prompts++;
    /* new_token_ids of the official code = our BAGEL ids */
    JsonObject *nt = json_object_get_object_member(m, "new_token_ids");
    TokBagelIds b;
    g_assert_true(tok_bagel_ids(qwen2(), &b, NULL));
    g_assert_cmpint(b.bos, ==, json_object_get_int_member(nt, "bos_token_id"));
    g_assert_cmpint(b.eos, ==, json_object_get_int_member(nt, "eos_token_id"));
    g_assert_cmpint(b.start_of_image, ==, json_object_get_int_member(nt, "start_of_image"));
    g_assert_cmpint(b.end_of_image, ==, json_object_get_int_member(nt, "end_of_image"));
    /* every segment appended to a context = [bos] + encode(text) + [eos] */
    JsonArray *segs = json_object_get_array_member(m, "segments");
    for (guint i = 0; i < json_array_get_length(segs); i++) {
      JsonObject *s = json_array_get_object_element(segs, i);
      want = ids_from_json(json_object_get_array_member(s, "ids"));
      got = g_array_new(FALSE, FALSE, sizeof(gint32));
      GError *error = NULL;
      g_assert_true(tok_encode_segment(qwen2(), json_object_get_string_member(s, "text"), -1, got, &error));
      g_assert_no_error(error);
      assert_ids(got, want, json_object_get_string_member(s, "text"));
      g_array_unref(want);
      g_array_unref(got);
      n_segments++;
    }
  }
  g_list_free(names);
  g_test_message("golden: %u prompts, %u segments equal", n_prompts, n_segments);
  g_assert_cmpuint(n_segments, >=, 20);
}

/* inferencer.py: output = decode(ids).split('<|im_end|>')[0].split('<|im_start|>')[1] */
static void test_golden_decode(void) {
  JsonObject *modes = json_object_get_object_member(golden(), "modes");
  GList *names = json_object_get_members(modes);
  guint n = 0;
  for (GList *l = names; l; l = l->next) {
    JsonObject *m = json_object_get_object_member(modes, l->data);
    JsonNode *g = json_object_get_member(m, "generated_ids");
    if (!g || JSON_NODE_HOLDS_NULL(g)) continue;
    GArray *ids = ids_from_json(json_node_get_array(g));
    char *text = tok_decode(qwen2(), (gint32 *)ids->data, ids->len, NULL);
    g_assert_true(g_str_has_prefix(text, "<|im_start|>"));
    char *end = strstr(text, "<|im_end|>");
    if (end) *end = '\0';
    g_assert_cmpstr(text + strlen("<|im_start|>"), ==, json_object_get_string_member(m, "output_text"));
    g_free(text);
    g_array_unref(ids);
    n++;
  }
  g_list_free(names);
  g_assert_cmpuint(n, ==, 4);
}

static void test_think_prompts(void) {
  JsonObject *tp = json_object_get_object_member(golden(), "think_prompts");
  struct { const char *key, *text; } cases[] = {
    {"think_gen", bagel_prompt_think_gen()},
    {"think_und", bagel_prompt_think_und()},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    JsonObject *o = json_object_get_object_member(tp, cases[i].key);
    /* the resource is the Python string byte for byte (no trailing newline) */
    g_assert_cmpstr(cases[i].text, ==, json_object_get_string_member(o, "text"));
    GArray *want = ids_from_json(json_object_get_array_member(o, "ids"));
    GArray *got = g_array_new(FALSE, FALSE, sizeof(gint32));
    g_assert_true(tok_encode_segment(qwen2(), cases[i].text, -1, got, NULL));
    assert_ids(got, want, cases[i].key);
    g_array_unref(want);
    g_array_unref(got);
  }
  g_assert_true(g_str_has_suffix(bagel_prompt_think_gen(), "</think> image here"));
  g_assert_true(g_str_has_suffix(bagel_prompt_think_und(), "</think> answer here"));
  gsize len;
  GError *error = NULL;
  g_assert_nonnull(bagel_resource_text("prompts/think_gen.txt", &len, &error));
  g_assert_cmpuint(len, ==, strlen(bagel_prompt_think_gen()));
  g_assert_null(bagel_resource_text("prompts/nope.txt", NULL, &error));
  g_assert_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&error);
}

static void test_invalid_utf8(void) {
  struct { const char *s; gssize len; gsize offset; } cases[] = {
    {"ab\xff", -1, 2}, {"\xe4\xb8", -1, 0}, {"ok \xe4\xb8 x", -1, 3}, {"a\xed\xa0\x80", -1, 1},
    {"\xc0\xaf", -1, 0}, {"\xf4\x90\x80\x80", -1, 0}, {"x\0\x80", 3, 2}, {"\xf8\x88\x80\x80\x80", -1, 0},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
    gint32 keep = 7;
    g_array_append_val(ids, keep);
    GError *error = NULL;
    g_assert_false(tok_encode(qwen2(), cases[i].s, cases[i].len, ids, &error));
    g_assert_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
    char *want = g_strdup_printf("byte offset %" G_GSIZE_FORMAT ":", cases[i].offset);
    if (!strstr(error->message, want)) g_error("\"%s\" does not say \"%s\"", error->message, want);
    g_free(want);
    g_assert_cmpuint(ids->len, ==, 1); /* left as it was */
    g_assert_false(tok_encode_segment(qwen2(), cases[i].s, cases[i].len, ids, NULL));
    g_assert_cmpuint(ids->len, ==, 1);
    g_clear_error(&error);
    g_array_unref(ids);
  }
}

/* NUL is text (ids from tools/tokref, tokenizers.js) */
static void test_nul(void) {
  struct { const char *s; gssize len; gint32 ids[8]; guint n; const char *nfc; gsize nfc_len; } cases[] = {
    {"a\0b", 3, {64, 188, 65}, 3, "a\0b", 3},
    {"\0", 1, {188}, 1, "\0", 1},
    {"x\0\0 y\0", 6, {87, 188, 188, 379, 188}, 5, "x\0\0 y\0", 6},
    {"e\xcc\x81\0e\xcc\x81", 7, {963, 188, 963}, 3, "\xc3\xa9\0\xc3\xa9", 5}, /* NFC both sides */
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    GArray *got = encode_ok(qwen2(), cases[i].s, cases[i].len);
    GArray *want = ids_of(cases[i].ids, cases[i].n);
    assert_ids(got, want, "NUL case");
    gsize len;
    char *back = tok_decode(qwen2(), (gint32 *)got->data, got->len, &len);
    g_assert_cmpmem(back, len, cases[i].nfc, cases[i].nfc_len);
    g_array_unref(got);
    g_array_unref(want);
    g_free(back);
  }
}

static gint32 byte_token(guint8 b) {
  char s[8];
  s[g_unichar_to_utf8(tok_byte_to_unichar(b), s)] = 0;
  gint32 id = tok_token_id(qwen2(), s);
  g_assert_cmpint(id, >=, 0);
  return id;
}

static void check_decode_bytes(const char *bytes, gsize n, const char *want) {
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  for (gsize i = 0; i < n; i++) {
    gint32 id = byte_token((guint8)bytes[i]);
    g_array_append_val(ids, id);
  }
  char *got = tok_decode(qwen2(), (gint32 *)ids->data, ids->len, NULL);
  g_assert_cmpstr(got, ==, want);
  g_free(got);
  g_array_unref(ids);
}

/* Expected strings are CPython's bytes.decode("utf-8", "replace"). */
static void test_decode_replace(void) {
  const char *R = "\xef\xbf\xbd";
  char *r2 = g_strconcat(R, R, NULL), *r3 = g_strconcat(R, R, R, NULL), *r4 = g_strconcat(r2, r2, NULL);
  check_decode_bytes("\xe4\xb8", 2, R);
  char *ra = g_strconcat(R, "A", NULL);
  check_decode_bytes("\xe4\xb8" "A", 3, ra);
  check_decode_bytes("\xed\xa0\x80", 3, r3);
  check_decode_bytes("\xf0\x80", 2, r2);
  check_decode_bytes("\x80\x80", 2, r2);
  check_decode_bytes("\xc0\xaf", 2, r2);
  check_decode_bytes("\xf4\x90\x80\x80", 4, r4);
  check_decode_bytes("\xe4\xb8\xad", 3, "\xe4\xb8\xad");
  check_decode_bytes("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
  check_decode_bytes("\xf0\x9f\x98", 3, R);
  gint32 nul = byte_token(0);
  gsize len;
  char *z = tok_decode(qwen2(), &nul, 1, &len);
  g_assert_cmpmem(z, len, "\0", 1);
  g_free(z);
  /* a special token between the bytes of a character */
  gint32 ids[] = {byte_token(0xe4), 151645, byte_token(0xb8), byte_token(0xad)};
  char *got = tok_decode(qwen2(), ids, 4, NULL);
  char *want = g_strconcat(R, "<|im_end|>", R, R, NULL);
  g_assert_cmpstr(got, ==, want);
  g_free(got);
  g_free(want);
  /* special tokens are kept as text; ids without a token decode to U+FFFD */
  gint32 ids2[] = {151644, 9707, 151645, 151643, 151700, -1, 1879};
  got = tok_decode(qwen2(), ids2, G_N_ELEMENTS(ids2), NULL);
  want = g_strconcat("<|im_start|>Hello<|im_end|><|endoftext|>", R, R, " world", NULL);
  g_assert_cmpstr(got, ==, want);
  g_free(got);
  g_free(want);
  got = tok_decode(qwen2(), NULL, 0, NULL);
  g_assert_cmpstr(got, ==, "");
  g_free(got);
  g_free(r2); g_free(r3); g_free(r4); g_free(ra);
}

static void test_segment(void) {
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  g_assert_true(tok_encode_segment(qwen2(), "", 0, ids, NULL));
  assert_ids(ids, ids_of((gint32[]){151644, 151645}, 2), "empty segment");
  g_array_set_size(ids, 0);
  g_assert_true(tok_encode_segment(qwen2(), "Hello world", -1, ids, NULL));
  assert_ids(ids, ids_of((gint32[]){151644, 9707, 1879, 151645}, 4), "segment");
  g_array_unref(ids);
}

/* One tokenizer, several threads: the BPE cache is shared. */
static gpointer encode_many(gpointer data) {
  const char *text = data;
  GArray *first = encode_ok(qwen2(), text, -1);
  for (int i = 0; i < 200; i++) {
    GArray *again = encode_ok(qwen2(), text, -1);
    if (!ids_equal(first, again)) return GINT_TO_POINTER(1);
    g_array_unref(again);
  }
  g_array_unref(first);
  return NULL;
}

static void test_threads(void) {
  const char *texts[] = {"The quick brown fox jumps over the lazy dog 12345.",
                         "你好，世界！这是一个没有空格的中文句子。", "Съешь же ещё этих мягких булок",
                         "if (a && b) { return c->d; } // ok"};
  GThread *th[G_N_ELEMENTS(texts)];
  for (guint i = 0; i < G_N_ELEMENTS(texts); i++) th[i] = g_thread_new("enc", encode_many, (gpointer)texts[i]);
  for (guint i = 0; i < G_N_ELEMENTS(texts); i++) g_assert_null(g_thread_join(th[i]));
}

/* ---- a tiny tokenizer: 256 byte tokens (id = byte), no merges ------------------------------ */

static char *tiny_vocab(void) {
  GString *v = g_string_new("{");
  for (guint b = 0; b < 256; b++) {
    char s[8];
    s[g_unichar_to_utf8(tok_byte_to_unichar((guint8)b), s)] = 0;
    g_string_append_printf(v, "%s\"%s%s\": %u", b ? ", " : "", strchr("\"\\", s[0]) && s[0] ? "\\" : "", s, b);
  }
  g_string_append(v, "}");
  return g_string_free(v, FALSE);
}

/* added: "content:flags" with flags among l (lstrip), r (rstrip), s (single_word); ids 1000… */
static BagelTokenizer *tiny_tokenizer(const char *const *added, guint n) {
  GString *cfg = g_string_new("{\"eos_token\": null, \"unk_token\": null, \"pad_token\": null, "
                              "\"added_tokens_decoder\": {");
  for (guint i = 0; i < n; i++) {
    const char *colon = strrchr(added[i], ':');
    char *content = g_strndup(added[i], colon - added[i]);
    g_string_append_printf(cfg, "%s\"%u\": {\"content\": \"%s\", \"lstrip\": %s, \"rstrip\": %s, "
                           "\"single_word\": %s}", i ? ", " : "", 1000 + i, content,
                           strchr(colon, 'l') ? "true" : "false", strchr(colon, 'r') ? "true" : "false",
                           strchr(colon, 's') ? "true" : "false");
    g_free(content);
  }
  g_string_append(cfg, "}}");
  char *vocab = tiny_vocab();
  TokSources src = {vocab, -1, "#version: 0.2\n", -1, cfg->str, -1, NULL, 0};
  GError *error = NULL;
  BagelTokenizer *tok = tok_load_from_data(&src, &error);
  g_assert_no_error(error);
  g_free(vocab);
  g_string_free(cfg, TRUE);
  return tok;
}

static void test_added_tokens(void) {
  /* expected ids: transformers' Trie.split and PreTrainedTokenizer.tokenize (4.49), run on
   * these inputs; text pieces give their bytes */
  struct { const char *added[3]; guint n; const char *text; gint32 ids[12]; guint n_ids; } cases[] = {
    {{"axyz:", "x:"}, 2, "axqyz", {97, 1001, 113, 121, 122}, 5},
    {{"axyz:", "x:"}, 2, "axyz", {1000}, 1},
    {{"axyz:", "x:"}, 2, "xaxyz", {1001, 1000}, 2},
    {{"axyz:", "x:"}, 2, "axy", {97, 1001, 121}, 3},
    {{"ab:", "abc:", "b:"}, 3, "xabcx", {120, 1001, 120}, 3},
    {{"ab:", "abc:", "b:"}, 3, "abab", {1000, 1000}, 2},
    {{"ab:", "abc:", "b:"}, 3, "bab", {1002, 1000}, 2},
    {{"ab:", "abc:", "b:"}, 3, "abcab", {1001, 1000}, 2},
    {{"bc:", "abcd:"}, 2, "abcx", {97, 1000, 120}, 3},
    {{"bc:", "abcd:"}, 2, "zabcdz", {122, 1001, 122}, 3},
    {{"<x>:lr"}, 1, "a  <x>  b", {97, 1000, 98}, 3},
    {{"<x>:lr"}, 1, "a\t<x>\nb", {97, 1000, 98}, 3},
    {{"<x>:lr"}, 1, " <x>", {1000}, 1},
    {{"<x>:l"}, 1, "a  <x>  b", {97, 1000, 32, 32, 98}, 5},
    {{"<x>:r"}, 1, "a  <x>  b", {97, 32, 32, 1000, 98}, 5},
    {{"<x>:s"}, 1, "a<x>b", {97, 60, 120, 62, 98}, 5},
    {{"<x>:s"}, 1, "a <x>b", {97, 32, 60, 120, 62, 98}, 6},
    {{"<x>:s"}, 1, "a <x> b", {97, 32, 1000, 32, 98}, 5},
    {{"<x>:s"}, 1, "<x>b", {60, 120, 62, 98}, 4},
    {{"<x>:s"}, 1, "<x> b", {1000, 32, 98}, 3},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    BagelTokenizer *tok = tiny_tokenizer(cases[i].added, cases[i].n);
    GArray *got = encode_ok(tok, cases[i].text, -1);
    GArray *want = ids_of(cases[i].ids, cases[i].n_ids);
    assert_ids(got, want, cases[i].text);
    g_array_unref(got);
    g_array_unref(want);
    tok_free(tok);
  }
  /* split_special_tokens: added tokens are plain text */
  char *vocab = tiny_vocab();
  TokSources src = {vocab, -1, "", 0, "{\"split_special_tokens\": true, \"eos_token\": null, "
                    "\"unk_token\": null, \"pad_token\": null, \"added_tokens_decoder\": "
                    "{\"1000\": {\"content\": \"<x>\"}}}", -1, NULL, 0};
  BagelTokenizer *tok = tok_load_from_data(&src, NULL);
  g_assert_nonnull(tok);
  GArray *got = encode_ok(tok, "a<x>", -1);
  assert_ids(got, ids_of((gint32[]){97, 60, 120, 62}, 4), "split_special_tokens");
  g_array_unref(got);
  tok_free(tok);
  g_free(vocab);
}

/* ---- loader errors -------------------------------------------------------------------------- */

static void expect_load_error(const TokSources *src, int code, const char *const *parts) {
  GError *error = NULL;
  BagelTokenizer *tok = tok_load_from_data(src, &error);
  g_assert_null(tok);
  g_assert_nonnull(error);
  if (!g_error_matches(error, BAGEL_ERROR, code))
    g_error("\"%s\": code %d, expected %d", error->message, error->code, code);
  for (const char *const *p = parts; *p; p++)
    if (!strstr(error->message, *p)) g_error("\"%s\" does not mention \"%s\"", error->message, *p);
  g_test_message("error: %s", error->message);
  g_error_free(error);
}

#define PARTS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_load_errors(void) {
  char *vocab = tiny_vocab();
  /* vocab + two merges: "a b" -> "ab", "ab c" -> "abc" */
  char *vocab_m = g_strdup_printf("%.*s, \"ab\": 256, \"abc\": 257}", (int)strlen(vocab) - 1, vocab);
  const char *merges = "#version: 0.2\na b\nab c\n";
  const char *cfg = "{\"added_tokens_decoder\": {\"300\": {\"content\": \"<|im_start|>\"}}}";
  TokSources ok = {vocab_m, -1, merges, -1, cfg, -1, NULL, 0};
  GError *error = NULL;
  BagelTokenizer *tok = tok_load_from_data(&ok, &error);
  g_assert_no_error(error);
  GArray *ids = encode_ok(tok, "abc abd", -1);
  assert_ids(ids, ids_of((gint32[]){257, tok_token_id(tok, "\xc4\xa0"), 256, 100}, 4), "tiny merges");
  g_array_unref(ids);
  /* Qwen2Tokenizer's default eos/pad "<|endoftext|>" is added as a special token */
  g_assert_cmpint(tok_token_id(tok, "<|endoftext|>"), ==, 258 + 1);
  g_assert_false(tok_bagel_ids(tok, &(TokBagelIds){0}, &error));
  g_assert_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL);
  g_assert_nonnull(strstr(error->message, "<|im_end|>"));
  g_assert_nonnull(strstr(error->message, "tokenizer_config.json"));
  g_clear_error(&error);
  tok_free(tok);

  TokSources s;
  s = ok; s.merges_txt = NULL;
  expect_load_error(&s, BAGEL_ERROR_MODEL, PARTS("merges.txt", "missing"));
  s = ok; s.config_json = NULL;
  expect_load_error(&s, BAGEL_ERROR_MODEL, PARTS("tokenizer_config.json", "missing"));
  s = (TokSources){0};
  expect_load_error(&s, BAGEL_ERROR_MODEL, PARTS("vocab.json", "tokenizer.json"));
  s = ok; s.vocab_json = "{\"a\": 1,\n \"b\": }";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "malformed JSON", "2:"));
  s = ok; s.vocab_json = "[1, 2]";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "not a JSON object"));
  s = ok; s.vocab_json = "{\"a\": 1, \"b\": \"two\"}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "key \"b\"", "integer"));
  s = ok; s.vocab_json = "{\"a\": 1, \"b\": -3}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "key \"b\""));
  s = ok; s.vocab_json = "{\"a\": 1, \"b\": 1.5}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "key \"b\""));
  s = ok; s.vocab_json = "{\"a\": 1, \"b\": 99999999}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "sparse"));
  char *dup = g_strdup_printf("%.*s, \"zz\": 65}", (int)strlen(vocab) - 1, vocab);
  s = ok; s.vocab_json = dup; s.merges_txt = "";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "\"zz\"", "\"A\"", "same id 65"));
  g_free(dup);
  s = ok; s.vocab_json = "{\"a\": 0, \"b\": 1}"; s.merges_txt = "";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("vocab.json", "byte-level token"));
  s = ok; s.merges_txt = "#version: 0.2\na b\nab c d\n";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("merges.txt line 3", "two tokens", "found 3"));
  s = ok; s.merges_txt = "a b\r\nab\r\n";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("merges.txt line 2", "found 1"));
  s = ok; s.merges_txt = "#version: 0.2\na b\nab q\xc3\xa9\n";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("merges.txt line 3", "\"q\xc3\xa9\"", "not in the vocabulary"));
  s = ok; s.merges_txt = "#version: 0.2\nb c\n";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("merges.txt line 2", "merged token \"bc\""));
  s = ok; s.merges_txt = "#version: 0.2\na b\n\xff\xfe\n";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("merges.txt line 3", "UTF-8"));
  s = ok; s.config_json = "{\"added_tokens_decoder\": {\"x\": {\"content\": \"<a>\"}}}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "added_tokens_decoder.\"x\""));
  s = ok; s.config_json = "{\"added_tokens_decoder\": {\"300\": {\"lstrip\": true}}}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "\"300\"", "content"));
  s = ok; s.config_json = "{\"added_tokens_decoder\": {\"300\": {\"content\": \"<a>\", \"lstrip\": 3}}}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "\"300\"", "lstrip"));
  s = ok; s.config_json = "{\"added_tokens_decoder\": {\"97\": {\"content\": \"<a>\"}}}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "\"<a>\"", "id 97"));
  s = ok; s.config_json = "{\"added_tokens_decoder\": {\"300\": {\"content\": \"<a>\"}, \"301\": {\"content\": \"<a>\"}}}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "clashes"));
  s = ok; s.config_json = "{\"tokenizer_class\": \"LlamaTokenizer\"}";
  expect_load_error(&s, BAGEL_ERROR_MODEL, PARTS("tokenizer_config.json", "LlamaTokenizer"));
  s = ok; s.config_json = "{\"errors\": \"strict\"}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "errors"));
  s = ok; s.config_json = "{\"eos_token\": 5}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "eos_token"));
  s = ok; s.config_json = "{\"additional_special_tokens\": [\"<a>\", 7]}";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "additional_special_tokens[1]"));
  s = ok; s.config_json = "{";
  expect_load_error(&s, BAGEL_ERROR_FORMAT, PARTS("tokenizer_config.json", "malformed JSON"));

  /* tokenizer.json */
  char *tj = g_strdup_printf("{\"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": [\"a b\", [\"ab\", \"c\"]]},"
                             " \"added_tokens\": [{\"id\": 300, \"content\": \"<|im_start|>\", \"special\": true}]}",
                             vocab_m);
  s = (TokSources){.tokenizer_json = tj, .tokenizer_json_len = -1};
  tok = tok_load_from_data(&s, &error);
  g_assert_no_error(error);
  ids = encode_ok(tok, "abc<|im_start|>", -1);
  assert_ids(ids, ids_of((gint32[]){257, 300}, 2), "tokenizer.json");
  g_array_unref(ids);
  tok_free(tok);
  struct { const char *json; const char *part; } bad[] = {
    {"{\"model\": {\"type\": \"Unigram\", \"vocab\": {}, \"merges\": []}}", "model.type"},
    {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}}", "byte-level token"},
    {"{\"nomodel\": 1}", "\"model\""},
    {"{\"model\": {\"merges\": []}}", "model.vocab"},
    {"{\"model\": {\"vocab\": %s}}", "model.merges"},
    {"{\"model\": {\"vocab\": %s, \"merges\": [\"a b c\"]}}", "model.merges[0]"},
    {"{\"model\": {\"vocab\": %s, \"merges\": [[\"a\"]]}}", "model.merges[0]"},
    {"{\"model\": {\"vocab\": %s, \"merges\": [\"a q\\u00e9\"]}}", "model.merges[0]"},
    {"{\"model\": {\"vocab\": %s, \"merges\": [], \"byte_fallback\": true}}", "byte_fallback"},
    {"{\"model\": {\"vocab\": %s, \"merges\": []}, \"added_tokens\": [{\"content\": \"x\"}]}", "added_tokens[0]"},
    {"{\"model\": {\"vocab\": %s, \"merges\": []}, \"added_tokens\": {}}", "added_tokens"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    char *j = strstr(bad[i].json, "%s") ? g_strdup_printf(bad[i].json, vocab_m) : g_strdup(bad[i].json);
    s = (TokSources){.tokenizer_json = j, .tokenizer_json_len = -1};
    expect_load_error(&s, strstr(bad[i].part, "type") || strstr(bad[i].part, "fallback") ? BAGEL_ERROR_MODEL : BAGEL_ERROR_FORMAT,
                      PARTS("tokenizer.json", bad[i].part));
    g_free(j);
  }
  g_free(tj);
  g_free(vocab_m);
  g_free(vocab);
}

static void test_load_dir(void) {
  GError *error = NULL;
  g_assert_null(tok_load("/nonexistent/model", &error));
  g_assert_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL);
  g_assert_nonnull(strstr(error->message, "/nonexistent/model"));
  g_clear_error(&error);

  char *dir = g_dir_make_tmp("bagel-tok-XXXXXX", &error);
  g_assert_no_error(error);
  g_assert_null(tok_load(dir, &error));
  g_assert_nonnull(strstr(error->message, "tokenizer.json"));
  g_clear_error(&error);
  char *vocab = g_build_filename(dir, "vocab.json", NULL), *merges = g_build_filename(dir, "merges.txt", NULL);
  g_assert_true(g_file_set_contents(vocab, "{}", -1, NULL));
  g_assert_null(tok_load(dir, &error));
  g_assert_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL);
  g_assert_nonnull(strstr(error->message, merges)); /* names the missing file, with its path */
  g_clear_error(&error);
  g_assert_true(g_file_set_contents(merges, "", -1, NULL));
  g_assert_null(tok_load(dir, &error));
  g_assert_nonnull(strstr(error->message, "tokenizer_config.json"));
  g_clear_error(&error);
  g_remove(vocab);
  g_remove(merges);
  g_rmdir(dir);
  g_free(vocab);
  g_free(merges);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/tokenizer/qwen2/basics", test_qwen2_basics);
  g_test_add_func("/tokenizer/golden/segments", test_golden_segments);
  g_test_add_func("/tokenizer/golden/decode", test_golden_decode);
  g_test_add_func("/tokenizer/golden/think-prompts", test_think_prompts);
  g_test_add_func("/tokenizer/encode/invalid-utf8", test_invalid_utf8);
  g_test_add_func("/tokenizer/encode/nul", test_nul);
  g_test_add_func("/tokenizer/encode/segment", test_segment);
  g_test_add_func("/tokenizer/encode/threads", test_threads);
  g_test_add_func("/tokenizer/decode/replace", test_decode_replace);
  g_test_add_func("/tokenizer/added-tokens", test_added_tokens);
  g_test_add_func("/tokenizer/load/errors", test_load_errors);
  g_test_add_func("/tokenizer/load/dir", test_load_dir);
  return g_test_run();
}
