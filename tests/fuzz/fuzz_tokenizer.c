/* tests/fuzz/fuzz_tokenizer.c — libFuzzer target for the tokenizer's encode and decode
 * (engine/tokenizer.h) on the real Qwen2.5 files.  Random bytes in: encode must fail cleanly
 * on invalid UTF-8; on valid UTF-8, decode(encode(s)) must equal NFC(s) (GLib's normaliser on
 * the whole text, which also checks the tokenizer's piecewise NFC).  The input's bytes, read as
 * ids, are decoded too (ids out of range included).  Any violation aborts. */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static BagelTokenizer *tokenizer(void) {
  static BagelTokenizer *tok; /* loaded once, kept reachable (not a leak) */
  if (!tok) {
    GError *error = NULL;
    tok = tok_load(BAGEL_TEST_DATA_DIR "/qwen2-tokenizer", &error);
    if (!tok) {
      fprintf(stderr, "fuzz_tokenizer: %s\n", error->message);
      abort();
    }
  }
  return tok;
}

static char *nfc_whole(const char *s, size_t n, size_t *len) {
  GString *out = g_string_new(NULL);
  for (size_t i = 0; i < n;) { /* g_utf8_normalize stops at NUL */
    size_t j = i;
    while (j < n && s[j]) j++;
    char *part = g_utf8_normalize(s + i, j - i, G_NORMALIZE_NFC);
    g_string_append(out, part);
    g_free(part);
    if (j < n) g_string_append_len(out, "", 1);
    i = j + 1;
  }
  *len = out->len;
  return g_string_free(out, FALSE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BagelTokenizer *tok = tokenizer();
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  GError *error = NULL;
  if (tok_encode(tok, (const char *)data, (gssize)size, ids, &error)) {
    gsize back_len, want_len;
    char *back = tok_decode(tok, (const gint32 *)ids->data, ids->len, &back_len);
    char *want = nfc_whole((const char *)data, size, &want_len);
    if (back_len != want_len || memcmp(back, want, want_len) != 0) {
      fprintf(stderr, "fuzz_tokenizer: decode(encode(s)) != NFC(s)\n");
      abort();
    }
    g_free(want);
    g_free(back);
  } else {
    if (!error || g_utf8_validate_len((const char *)data, size, NULL)) abort();
    g_clear_error(&error);
  }
  g_array_unref(ids);

  gint32 *raw = g_new(gint32, size / 4 + 1);
  memcpy(raw, data, size / 4 * 4);
  gsize len;
  char *text = tok_decode(tok, raw, size / 4, &len);
  if (!g_utf8_validate(text, -1, NULL) || strlen(text) > len) abort();
  g_free(text);
  g_free(raw);
  return 0;
}
