/* tests/bench/bench_tokenizer.c — encode speed of the Qwen2.5 tokenizer (engine/tokenizer.h).
 *
 *   build/tests/bench_tokenizer [MODEL_DIR] [MEGABYTES]
 *
 * Builds ~1 MB (default) of deterministic mixed text — English prose with punctuation and
 * numbers, Chinese runs without spaces, Russian, Arabic, Japanese, code, emoji, newlines — and
 * times tok_load, a cold encode (fresh tokenizer, empty BPE cache), warm encodes (cache
 * filled; best of 5) and decode.  Prints MB/s and tokens/s.  Not a test: nothing is asserted
 * beyond decode(encode(text)) == text. */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static const char *const english[] = {
  "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
  "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which", "but",
  "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her",
  "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "image",
  "generate", "model", "tokenizer", "diffusion", "photograph", "lighting", "composition",
  "mountain", "river", "sunset", "portrait", "texture", "background", "foreground", "don't",
  "it's", "we're", "they'll", "I'm", "GIMP", "BAGEL", "layer", "selection", "transformation",
};
static const char *const russian[] = {"и", "в", "не", "на", "я", "быть", "он", "с", "что", "а",
  "по", "это", "она", "этот", "к", "но", "они", "мы", "как", "из", "изображение", "картина"};
static const char *const arabic[] = {"في", "من", "على", "إلى", "أن", "هذا", "التي", "الذي", "صورة", "جميل"};
static const char *const japanese[] = {"これは", "テスト", "です", "画像", "を", "生成", "して", "ください", "。"};
static const char *const code[] = {
  "for (int i = 0; i < n; i++) {\n    sum += a[i] * b[i];\n}\n",
  "def main():\n    print(\"hello\")\n    return 0\n",
  "if (err != NULL) { g_error_free(err); return FALSE; }\n",
  "{\"width\": 1024, \"height\": 768, \"steps\": 50}\n",
};
static const char *const emoji[] = {"🙂", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "🎨"};

static char *make_text(gsize target) {
  GRand *r = g_rand_new_with_seed(20251124);
  GString *s = g_string_sized_new(target + 256);
  while (s->len < target) {
    int kind = g_rand_int_range(r, 0, 100);
    if (kind < 45) { /* an English sentence */
      int n = g_rand_int_range(r, 5, 20);
      for (int i = 0; i < n; i++) {
        const char *w = english[g_rand_int_range(r, 0, G_N_ELEMENTS(english))];
        if (i == 0) { g_string_append_c(s, g_ascii_toupper(w[0])); g_string_append(s, w + 1); }
        else { g_string_append_c(s, ' '); g_string_append(s, w); }
        if (g_rand_int_range(r, 0, 12) == 0) g_string_append_printf(s, " %d", g_rand_int_range(r, 0, 100000));
        if (g_rand_int_range(r, 0, 10) == 0) g_string_append_c(s, ',');
      }
      g_string_append(s, g_rand_int_range(r, 0, 4) ? ". " : "?\n");
    } else if (kind < 65) { /* Chinese: a run of common characters, no spaces */
      int n = g_rand_int_range(r, 8, 40);
      for (int i = 0; i < n; i++) g_string_append_unichar(s, 0x4E00 + g_rand_int_range(r, 0, 3000));
      g_string_append(s, g_rand_int_range(r, 0, 3) ? "，" : "。\n");
    } else if (kind < 75) {
      int n = g_rand_int_range(r, 4, 14);
      for (int i = 0; i < n; i++) {
        g_string_append(s, russian[g_rand_int_range(r, 0, G_N_ELEMENTS(russian))]);
        g_string_append_c(s, i + 1 < n ? ' ' : '.');
      }
      g_string_append_c(s, ' ');
    } else if (kind < 82) {
      int n = g_rand_int_range(r, 4, 12);
      for (int i = 0; i < n; i++) {
        g_string_append(s, arabic[g_rand_int_range(r, 0, G_N_ELEMENTS(arabic))]);
        g_string_append_c(s, ' ');
      }
    } else if (kind < 89) {
      int n = g_rand_int_range(r, 3, 10);
      for (int i = 0; i < n; i++) g_string_append(s, japanese[g_rand_int_range(r, 0, G_N_ELEMENTS(japanese))]);
      g_string_append_c(s, '\n');
    } else if (kind < 95) {
      g_string_append(s, code[g_rand_int_range(r, 0, G_N_ELEMENTS(code))]);
    } else {
      g_string_append(s, emoji[g_rand_int_range(r, 0, G_N_ELEMENTS(emoji))]);
      g_string_append_c(s, ' ');
    }
  }
  g_rand_free(r);
  return g_string_free(s, FALSE);
}

static double encode_once(BagelTokenizer *tok, const char *text, gsize len, guint *n_tokens) {
  GArray *ids = g_array_sized_new(FALSE, FALSE, sizeof(gint32), len / 3);
  GError *error = NULL;
  gint64 t0 = g_get_monotonic_time();
  if (!tok_encode(tok, text, len, ids, &error)) {
    fprintf(stderr, "bench_tokenizer: %s\n", error->message);
    exit(1);
  }
  double s = (g_get_monotonic_time() - t0) / 1e6;
  *n_tokens = ids->len;
  g_array_unref(ids);
  return s;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : BAGEL_TEST_DATA_DIR "/qwen2-tokenizer";
  double mb = argc > 2 ? atof(argv[2]) : 1.0;
  gsize len = (gsize)(mb * 1024 * 1024);
  char *text = make_text(len);
  len = strlen(text);

  GError *error = NULL;
  gint64 t0 = g_get_monotonic_time();
  BagelTokenizer *tok = tok_load(dir, &error);
  if (!tok) {
    fprintf(stderr, "bench_tokenizer: %s\n", error->message);
    return 1;
  }
  double load_s = (g_get_monotonic_time() - t0) / 1e6;

  guint n = 0;
  double cold = encode_once(tok, text, len, &n), warm = 1e9;
  for (int i = 0; i < 5; i++) {
    double t = encode_once(tok, text, len, &n);
    if (t < warm) warm = t;
  }
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  tok_encode(tok, text, len, ids, NULL);
  t0 = g_get_monotonic_time();
  char *back = tok_decode(tok, (gint32 *)ids->data, ids->len, NULL);
  double dec_s = (g_get_monotonic_time() - t0) / 1e6;
  int round_trip = strcmp(back, text) == 0;

  double mib = len / (1024.0 * 1024.0);
  printf("text:   %.2f MiB, %u tokens (%.2f bytes/token)\n", mib, n, (double)len / n);
  printf("load:   %.3f s (%s)\n", load_s, dir);
  printf("encode: cold %.3f s = %.2f MiB/s, %.0f tokens/s\n", cold, mib / cold, n / cold);
  printf("encode: warm %.3f s = %.2f MiB/s, %.0f tokens/s (best of 5)\n", warm, mib / warm, n / warm);
  printf("decode: %.3f s = %.0f tokens/s; round trip %s\n", dec_s, ids->len / dec_s, round_trip ? "ok" : "FAILED");
  g_free(back);
  g_array_unref(ids);
  tok_free(tok);
  g_free(text);
  return round_trip ? 0 : 1;
}
