/* engine/cli/cmd_tokenize.c — `bagel tokenize --model DIR [--decode] [--segment]`:
 * reads UTF-8 lines on stdin and prints, per line, the token ids separated by spaces
 * (no bos/eos; --segment frames them as a BAGEL text segment: <|im_start|> … <|im_end|>).
 * With --decode, reads lines of ids and prints the decoded text, one line each (a decoded
 * text that contains newlines spans several output lines).
 * Only the "\n" ending a line is removed: a "\r" before it is text. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bagel.h"
#include "tokenizer.h"

static gboolean encode_line(BagelTokenizer *tok, const char *line, gsize len, gboolean segment,
                            GString *out, GError **error) {
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  gboolean ok = segment ? tok_encode_segment(tok, line, len, ids, error)
                        : tok_encode(tok, line, len, ids, error);
  for (guint i = 0; ok && i < ids->len; i++)
    g_string_append_printf(out, i ? " %d" : "%d", g_array_index(ids, gint32, i));
  g_string_append_c(out, '\n');
  g_array_unref(ids);
  return ok;
}

static gboolean decode_line(BagelTokenizer *tok, const char *line, GString *out, GError **error) {
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  gboolean ok = TRUE;
  char **words = g_strsplit_set(line, " \t\r", -1);
  for (char **w = words; ok && *w; w++) {
    if (!**w) continue;
    char *end;
    errno = 0;
    long v = strtol(*w, &end, 10);
    if (*end || errno || v < 0 || v > G_MAXINT32) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "\"%s\" is not a token id", *w);
      ok = FALSE;
    } else {
      gint32 id = (gint32)v;
      g_array_append_val(ids, id);
    }
  }
  g_strfreev(words);
  if (ok) {
    gsize len;
    char *text = tok_decode(tok, (const gint32 *)ids->data, ids->len, &len);
    g_string_append_len(out, text, len);
    g_string_append_c(out, '\n');
    g_free(text);
  }
  g_array_unref(ids);
  return ok;
}

int cmd_tokenize(int argc, char **argv) {
  char *model = NULL;
  gboolean decode = FALSE, segment = FALSE;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "model directory (vocab.json, merges.txt, "
     "tokenizer_config.json, or tokenizer.json)", "DIR"},
    {"decode", 'd', 0, G_OPTION_ARG_NONE, &decode, "read lines of ids, print the text", NULL},
    {"segment", 's', 0, G_OPTION_ARG_NONE, &segment, "frame each line as a BAGEL segment "
     "(<|im_start|> ids <|im_end|>)", NULL},
    {NULL, 0, 0, 0, NULL, NULL, NULL},
  };
  GOptionContext *ctx = g_option_context_new("- text <-> token ids, one stdin line at a time");
  g_option_context_add_main_entries(ctx, entries, NULL);
  GError *error = NULL;
  gboolean parsed = g_option_context_parse(ctx, &argc, &argv, &error);
  g_option_context_free(ctx);
  if (!parsed) return cli_fail("tokenize", error);
  if (!model) {
    fprintf(stderr, "bagel tokenize: --model DIR is required\n");
    return 2;
  }
  BagelTokenizer *tok = tok_load(model, &error);
  g_free(model);
  if (!tok) return cli_fail("tokenize", error);

  int rc = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  GString *out = g_string_new(NULL);
  for (guint lineno = 1; (n = getline(&line, &cap, stdin)) >= 0; lineno++) {
    if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    gboolean ok = decode ? decode_line(tok, line, out, &error)
                         : encode_line(tok, line, (gsize)n, segment, out, &error);
    if (!ok) {
      g_prefix_error(&error, "stdin line %u: ", lineno);
      rc = cli_fail("tokenize", error);
      break;
    }
    fwrite(out->str, 1, out->len, stdout);
    g_string_truncate(out, 0);
  }
  free(line);
  g_string_free(out, TRUE);
  tok_free(tok);
  if (fflush(stdout) != 0) rc = 1;
  return rc;
}
