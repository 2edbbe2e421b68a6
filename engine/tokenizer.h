/* engine/tokenizer.h — the Qwen2.5 byte-level BPE tokenizer BAGEL reads text with
 * (docs/bagel-spec.md §3).
 *
 * It reproduces transformers' *slow* Qwen2Tokenizer (transformers 4.49, the version the
 * official BAGEL code pins), id for id:
 *   encode = NFC  →  split out added tokens (transformers' Trie, with the lstrip / rstrip /
 *            single_word flags of tokenizer_config.json)  →  on each remaining piece the Qwen2
 *            pre-tokenisation regex  →  GPT-2 byte→unicode mapping  →  BPE by merge rank.
 *            No bos/eos is added.
 *   decode = concatenate the tokens' bytes (added tokens as their text), then UTF-8 decode with
 *            Python's errors="replace" (one U+FFFD per maximal invalid subsequence).
 *
 * Files read from the model directory:
 *   vocab.json + merges.txt + tokenizer_config.json (the slow tokenizer's files; used when
 *   vocab.json is present), or tokenizer.json alone (HF "fast" format: model.vocab,
 *   model.merges as "a b" strings or [a, b] pairs, added_tokens), plus tokenizer_config.json
 *   when present.  Every malformed input is a GError (domain BAGEL_ERROR) naming the file and
 *   the line (merges.txt) or the key (JSON) at fault.
 *
 * Known limits (see tests/tokenizer/README.md): character classes \p{L} / \p{N} come from the
 * system PCRE2 (Debian 12: Unicode 14) and NFC from GLib; characters assigned in later Unicode
 * versions may pre-tokenise differently from a Python whose `regex` module is newer.
 *
 * A BagelTokenizer is immutable after loading except for its BPE cache, which is guarded by a
 * mutex: one tokenizer may be used from several threads. */
#ifndef BAGEL_TOKENIZER_H
#define BAGEL_TOKENIZER_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct _BagelTokenizer BagelTokenizer;

/* Load from a model directory (see above for which files).  NULL + error on failure. */
BagelTokenizer *tok_load(const char *model_dir, GError **error);

/* Load from file contents in memory (tests, fuzzing).  Give either vocab_json + merges_txt
 * (+ config_json) or tokenizer_json (+ optional config_json); absent ones are NULL.  A length
 * of -1 means NUL-terminated.  Error messages name the files by their usual names. */
typedef struct {
  const char *vocab_json;     gssize vocab_json_len;
  const char *merges_txt;     gssize merges_txt_len;
  const char *config_json;    gssize config_json_len;     /* tokenizer_config.json */
  const char *tokenizer_json; gssize tokenizer_json_len;
} TokSources;
BagelTokenizer *tok_load_from_data(const TokSources *src, GError **error);

void tok_free(BagelTokenizer *tok);

/* Append the ids of `utf8` (len bytes, or -1 for NUL-terminated; embedded NULs are text) to
 * ids_out (a GArray of gint32).  Invalid UTF-8 is an error naming the byte offset
 * (BAGEL_ERROR_INVALID_ARG); ids_out is then left as it was. */
gboolean tok_encode(BagelTokenizer *tok, const char *utf8, gssize len, GArray *ids_out,
                    GError **error);

/* Decode ids to a newly allocated, valid UTF-8 string, NUL-terminated; its length in bytes
 * goes to *len when len is not NULL (the text holds a NUL where an id decodes to U+0000).
 * Added/special tokens are kept as their text; invalid byte sequences become U+FFFD (Python
 * errors="replace"); an id that has no token (outside the vocabulary) also becomes U+FFFD,
 * where Python would raise. */
char *tok_decode(const BagelTokenizer *tok, const gint32 *ids, gsize n, gsize *len);

/* The id of a token given by its text (added tokens first, then vocab.json's keys, which are
 * in the byte-level alphabet: "Ġhello" for " hello"); -1 if absent. */
gint32 tok_token_id(const BagelTokenizer *tok, const char *token_text);

/* Number of ids: 1 + the largest id of the vocabulary and added tokens (151665 for Qwen2.5). */
int tok_vocab_size(const BagelTokenizer *tok);

/* The ids BAGEL frames segments with, looked up by their text among the added tokens:
 * bos = <|im_start|>, eos = <|im_end|>, start/end of image = <|vision_start|>/<|vision_end|>.
 * A missing one is an error naming the token and the file. */
typedef struct {
  gint32 bos, eos, start_of_image, end_of_image;
} TokBagelIds;
gboolean tok_bagel_ids(const BagelTokenizer *tok, TokBagelIds *ids, GError **error);

/* A BAGEL text segment: append [bos] + encode(text) + [eos] to ids_out (spec §4.2). */
gboolean tok_encode_segment(BagelTokenizer *tok, const char *utf8, gssize len, GArray *ids_out,
                            GError **error);

G_END_DECLS

#endif
