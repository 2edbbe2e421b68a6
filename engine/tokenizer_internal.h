/* engine/tokenizer_internal.h — the BagelTokenizer structure shared by tokenizer_load.c
 * (reading vocab.json / merges.txt / tokenizer.json / tokenizer_config.json) and
 * tokenizer.c (encode, decode).  Not part of the public API. */
#ifndef BAGEL_TOKENIZER_INTERNAL_H
#define BAGEL_TOKENIZER_INTERNAL_H

#include "tokenizer.h"

/* An added token (tokenizer_config.json added_tokens_decoder, tokenizer.json added_tokens,
 * or a special token named in the config that was not listed there). */
typedef struct {
  char *content;
  gsize len;
  gint32 id;
  gboolean lstrip, rstrip, single_word, special;
  /* decode: TRUE = insert the text as is (transformers' "legacy added tokens": not named as
   * special, or an additional special token with an id past vocab.json); FALSE = its
   * characters go through the byte decoder like a vocab token. */
  gboolean verbatim;
} TokAdded;

/* One merge: the pair (a, b) of token ids, its rank, and the id of the merged token. */
typedef struct {
  gint32 a, b;        /* a = -1: empty slot */
  gint32 rank, merged;
} TokPair;

/* A node of the added-token trie (transformers' Trie, one node per code point). */
typedef struct {
  gunichar *chars;    /* child code points, parallel to kids */
  guint *kids;
  guint n_kids;
  gboolean terminal;
} TokTrieNode;

/* One cached BPE result, keyed by the UTF-8 bytes of a pre-token. */
typedef struct {
  guint32 hash, klen, n_ids;
  gint32 *ids;        /* points into the same allocation, after the key bytes */
  char key[];
} TokCacheEntry;

struct _BagelTokenizer {
  /* ids: 0 .. n_ids-1; text[id] is the vocab.json key or the added token's content */
  gint32 n_ids;
  char **text;
  gint32 n_vocab_entries;   /* len(vocab.json), transformers' vocab_size */
  GHashTable *vocab;        /* vocab.json key -> GINT_TO_POINTER(id + 1) */

  /* decode: the bytes of every id, in one buffer; dec_len[id] = G_MAXUINT32 for no token */
  guint32 *dec_off, *dec_len;
  char *dec_buf;

  /* BPE */
  gint32 byte_id[256];      /* id of the one-character token of each byte */
  TokPair *pairs;           /* open addressing, capacity pair_mask + 1 */
  guint32 pair_mask;
  gint32 *remap;            /* NULL, or id -> id when a vocab token's text is an added token */

  /* added tokens */
  TokAdded *added;
  guint n_added;
  GHashTable *added_by_text; /* content -> TokAdded* */
  TokTrieNode *trie;         /* trie[0] is the root */
  guint n_trie;
  gboolean split_special_tokens;
  char *added_source;        /* the file the added tokens came from, for messages */

  GRegex *pretok;            /* the Qwen2 pre-tokenisation regex */

  /* BPE cache (the only mutable state) */
  GMutex cache_lock;
  TokCacheEntry **cache;
  guint32 cache_mask, cache_count;
};

/* GPT-2 byte <-> unicode table (transformers' bytes_to_unicode). */
gunichar tok_byte_to_unichar(guint8 b);
int tok_unichar_to_byte(gunichar c); /* -1 if c is not in the table */

/* Python's str.isspace() (used for merges.txt splitting and lstrip/rstrip of added tokens). */
gboolean tok_py_isspace(gunichar c);

/* Looks up a merge; NULL if (a, b) is not a merge. */
static inline const TokPair *tok_pair_find(const BagelTokenizer *tok, gint32 a, gint32 b) {
  guint64 key = ((guint64)(guint32)a << 32) | (guint32)b;
  guint32 i = (guint32)((key * G_GUINT64_CONSTANT(0x9E3779B97F4A7C15)) >> 40) & tok->pair_mask;
  for (;;) {
    const TokPair *p = &tok->pairs[i];
    if (p->a < 0) return NULL;
    if (p->a == a && p->b == b) return p;
    i = (i + 1) & tok->pair_mask;
  }
}

/* Compiles the pre-tokenisation regex and sets up the cache (called by the loader). */
gboolean tok_init_runtime(BagelTokenizer *tok, GError **error);

#endif
