/* tests/fuzz/fuzz_tokenizer_load.c — libFuzzer target for the tokenizer loader
 * (tok_load_from_data, engine/tokenizer_load.c): malformed vocab.json, merges.txt,
 * tokenizer_config.json and tokenizer.json.
 *
 * Input: the files' contents separated by the line "@@\n".  Three parts = vocab.json,
 * merges.txt, tokenizer_config.json; one or two parts = tokenizer.json and an optional
 * tokenizer_config.json.  A load must end in a tokenizer or a GError, never a crash or a
 * leak; a tokenizer that loads then encodes and decodes a fixed text and the first part. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *parts[3] = {NULL};
  gssize lens[3] = {0};
  guint n = 0;
  const char *p = (const char *)data, *end = p + size;
  while (n < 3) {
    const char *sep = n < 2 ? g_strstr_len(p, end - p, "@@\n") : NULL;
    parts[n] = p;
    lens[n] = (sep ? sep : end) - p;
    n++;
    if (!sep) break;
    p = sep + 3;
  }
  TokSources src = {0};
  if (n == 3) {
    src = (TokSources){parts[0], lens[0], parts[1], lens[1], parts[2], lens[2], NULL, 0};
  } else {
    src.tokenizer_json = parts[0];
    src.tokenizer_json_len = lens[0];
    if (n == 2) { src.config_json = parts[1]; src.config_json_len = lens[1]; }
  }
  GError *error = NULL;
  BagelTokenizer *tok = tok_load_from_data(&src, &error);
  if (!tok) {
    if (!error) abort();
    g_error_free(error);
    return 0;
  }
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  static const char text[] = "Hello <|im_start|>wörld<|im_end|> 123 日本語\n\t 'll";
  if (!tok_encode(tok, text, -1, ids, NULL)) abort();
  tok_encode(tok, parts[0], lens[0], ids, NULL); /* may fail: invalid UTF-8 */
  char *back = tok_decode(tok, (const gint32 *)ids->data, ids->len, NULL);
  g_free(back);
  TokBagelIds bagel;
  if (!tok_bagel_ids(tok, &bagel, &error)) g_clear_error(&error);
  tok_token_id(tok, "<|im_end|>");
  g_array_unref(ids);
  tok_free(tok);
  return 0;
}
