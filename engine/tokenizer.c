/* engine/tokenizer.c — encode and decode exactly as transformers' slow Qwen2Tokenizer
 * (transformers 4.49; BAGEL's modeling/qwen2/tokenization_qwen2.py), spec §3.
 *
 * encode: validate UTF-8 → NFC (unicodedata.normalize) → split out added tokens with a port of
 *   transformers' Trie.split (quirks included) and the lstrip/rstrip/single_word handling of
 *   PreTrainedTokenizer.tokenize → Qwen2 regex (GRegex/PCRE2) on each other piece → GPT-2
 *   byte→unicode → BPE by merge rank (cached per pre-token) → ids.
 * decode: every id's bytes (added tokens as text), then Python's UTF-8 errors="replace".
 *
 * The loader is tokenizer_load.c. */
#include "tokenizer_internal.h"

#include <string.h>

#include "bagel.h"

/* The Qwen2 pre-tokenisation regex, with Python `regex`'s meaning of \s spelled out: the
 * Unicode White_Space property.  PCRE2's \s adds U+180E (and JavaScript's adds U+FEFF and
 * drops U+0085), so \s and \S are written as explicit classes. */
#define WS "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
           "\\x{202F}\\x{205F}\\x{3000}"
static const char pretok_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" WS "]*[\\r\\n]+"
    "|[" WS "]+(?![^" WS "])"
    "|[" WS "]+";

enum {
  CACHE_MAX_KEY = 256,        /* longer pre-tokens are not cached */
  CACHE_MAX_ENTRIES = 1 << 17 /* then the cache is emptied and starts again */
};

gboolean tok_init_runtime(BagelTokenizer *tok, GError **error) {
  GError *err = NULL;
  tok->pretok = g_regex_new(pretok_pattern, G_REGEX_OPTIMIZE, 0, &err);
  if (!tok->pretok) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "tokenizer: cannot compile the pre-tokenisation regex: %s",
                err->message);
    g_error_free(err);
    return FALSE;
  }
  tok->cache_mask = 1024 - 1;
  tok->cache = g_new0(TokCacheEntry *, tok->cache_mask + 1);
  return TRUE;
}

static void cache_clear(BagelTokenizer *tok) {
  for (guint32 i = 0; i <= tok->cache_mask; i++) {
    g_free(tok->cache[i]);
    tok->cache[i] = NULL;
  }
  tok->cache_count = 0;
}

void tok_free(BagelTokenizer *tok) {
  if (!tok) return;
  if (tok->cache) {
    cache_clear(tok);
    g_free(tok->cache);
  }
  g_mutex_clear(&tok->cache_lock);
  if (tok->pretok) g_regex_unref(tok->pretok);
  for (guint i = 0; i < tok->n_trie; i++) {
    g_free(tok->trie[i].chars);
    g_free(tok->trie[i].kids);
  }
  g_free(tok->trie);
  if (tok->added_by_text) g_hash_table_unref(tok->added_by_text);
  for (guint i = 0; i < tok->n_added; i++) g_free(tok->added[i].content);
  g_free(tok->added);
  g_free(tok->added_source);
  g_free(tok->remap);
  g_free(tok->pairs);
  g_free(tok->dec_off);
  g_free(tok->dec_len);
  g_free(tok->dec_buf);
  g_free(tok->text); /* the strings belong to vocab (keys) and added */
  if (tok->vocab) g_hash_table_unref(tok->vocab);
  g_free(tok);
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one.  Like Python's strict
 * decoder: no overlongs, no surrogates, nothing above U+10FFFF; NUL is a character. */
static guint utf8_seq_len(const guint8 *s, gsize n, guint *valid_prefix) {
  guint8 b = s[0];
  guint need;
  guint8 lo = 0x80, hi = 0xBF;
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) need = 1;
  else if (b == 0xE0) need = 2, lo = 0xA0;
  else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) need = 2;
  else if (b == 0xED) need = 2, hi = 0x9F;
  else if (b == 0xF0) need = 3, lo = 0x90;
  else if (b >= 0xF1 && b <= 0xF3) need = 3;
  else if (b == 0xF4) need = 3, hi = 0x8F;
  else {
    *valid_prefix = 1;
    return 0;
  }
  guint k = 1;
  if (k < n && s[k] >= lo && s[k] <= hi) {
    k++;
    while (k <= need && k < n && s[k] >= 0x80 && s[k] <= 0xBF) k++;
  }
  *valid_prefix = k;
  return k == need + 1 ? k : 0;
}

static gboolean utf8_validate(const char *s, gsize n, gsize *bad) {
  const guint8 *p = (const guint8 *)s;
  for (gsize i = 0; i < n;) {
    if (p[i] < 0x80) { i++; continue; }
    guint pre, k = utf8_seq_len(p + i, n - i, &pre);
    if (!k) { *bad = i; return FALSE; }
    i += k;
  }
  return TRUE;
}

/* bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal invalid subsequence. */
static void utf8_append_replace(GString *out, const guint8 *s, gsize n) {
  for (gsize i = 0; i < n;) {
    gsize j = i;
    while (j < n && s[j] < 0x80) j++;
    if (j > i) { g_string_append_len(out, (const char *)s + i, j - i); i = j; continue; }
    guint pre, k = utf8_seq_len(s + i, n - i, &pre);
    if (k) { g_string_append_len(out, (const char *)s + i, k); i += k; }
    else { g_string_append(out, "\xEF\xBF\xBD"); i += pre; }
  }
}

/* A character before which NFC text can be cut: NFC(a + b) = NFC(a) + NFC(b) when b starts
 * with it, because it is a starter (combining class 0) that is never the second character of a
 * canonical composition.  Below U+0300 every character is; so are CJK ideographs, Hangul
 * syllables and leading jamo. */
static gboolean nfc_boundary(gunichar c) {
  return c < 0x300 || (c >= 0x1100 && c <= 0x1112) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0x20000 && c <= 0x3FFFF);
}

static void nfc_flush(GString *out, const char *s, gsize len, gboolean high) {
  if (!high) {
    g_string_append_len(out, s, len);
    return;
  }
  char *part = g_utf8_normalize(s, len, G_NORMALIZE_NFC);
  g_string_append(out, part);
  g_free(part);
}

/* NFC, as unicodedata.normalize("NFC", ·).  NULL when the text is unchanged for sure (nothing
 * at or above U+0300, the first character NFC can touch).  The text goes to GLib's normaliser
 * in pieces of a few hundred bytes cut at nfc_boundary(): it shifts the rest of its buffer at
 * every composition, which is quadratic on long texts, and it stops at NUL (NUL is a piece of
 * its own). */
static char *nfc(const char *s, gsize n, gsize *out_len) {
  gboolean plain = TRUE;
  for (gsize i = 0; i < n && plain; i++)
    if ((guint8)s[i] >= 0xCC) plain = FALSE; /* lead bytes of U+0300 and above */
  if (plain) return NULL;
  GString *out = g_string_sized_new(n + 16);
  gsize start = 0;
  gboolean high = FALSE; /* the piece has a character >= U+0300 */
  for (gsize i = 0; i < n;) {
    gunichar c = g_utf8_get_char(s + i);
    gsize next = g_utf8_next_char(s + i) - s;
    if (c == 0 || (nfc_boundary(c) && i - start >= 256)) {
      nfc_flush(out, s + start, i - start, high);
      start = i;
      high = FALSE;
      if (c == 0) {
        g_string_append_len(out, "", 1);
        start = next;
      }
    }
    if (c >= 0x300) high = TRUE;
    i = next;
  }
  nfc_flush(out, s + start, n - start, high);
  *out_len = out->len;
  return g_string_free(out, FALSE);
}

/* ---- added tokens: transformers' Trie.split, ported with its quirks --------------------- */

static guint trie_step(const BagelTokenizer *tok, guint node, gunichar c) {
  const TokTrieNode *n = &tok->trie[node];
  for (guint i = 0; i < n->n_kids; i++)
    if (n->chars[i] == c) return n->kids[i];
  return 0; /* the root is never a child */
}

typedef struct {
  gsize start;
  guint node;
  gboolean drop;
} TrieState;

/* Cut offsets (byte offsets into text) in the order Trie.split appends them. */
static void trie_split(const BagelTokenizer *tok, const char *text, gsize len, GArray *offsets) {
  GArray *states = g_array_new(FALSE, FALSE, sizeof(TrieState));
  gsize zero = 0, skip = 0;
  g_array_append_val(offsets, zero);
  for (gsize cur = 0; cur < len;) {
    gunichar ch = g_utf8_get_char(text + cur);
    gsize next = g_utf8_next_char(text + cur) - text;
    if (skip && cur < skip) { cur = next; continue; }
    gboolean reset = FALSE;
    for (guint i = 0; i < states->len; i++) {
      TrieState *st = &g_array_index(states, TrieState, i);
      if (tok->trie[st->node].terminal) {
        /* a match: look for the longest one among this and the earlier partial matches */
        gsize start = st->start, end = 0;
        for (guint k = 0; k < states->len; k++) {
          TrieState *ls = &g_array_index(states, TrieState, k);
          gsize look;
          if (ls->start > start) break;
          if (ls->start < start) look = end = next; /* its pointer already consumed ch */
          else look = end = cur;
          guint node = ls->node;
          if (tok->trie[node].terminal) { start = ls->start; end = look; skip = look; }
          while (look < len) {
            guint kid = trie_step(tok, node, g_utf8_get_char(text + look));
            if (!kid) break;
            node = kid;
            look = g_utf8_next_char(text + look) - text;
            if (tok->trie[node].terminal) { start = ls->start; end = look; skip = look; }
          }
        }
        g_array_append_val(offsets, start);
        g_array_append_val(offsets, end);
        reset = TRUE;
        break;
      }
      guint kid = trie_step(tok, st->node, ch);
      if (kid) st->node = kid;
      else st->drop = TRUE;
    }
    if (reset) g_array_set_size(states, 0);
    else {
      guint w = 0;
      for (guint i = 0; i < states->len; i++)
        if (!g_array_index(states, TrieState, i).drop)
          g_array_index(states, TrieState, w++) = g_array_index(states, TrieState, i);
      g_array_set_size(states, w);
    }
    guint first = trie_step(tok, 0, ch);
    if (cur >= skip && first) {
      TrieState st = {cur, first, FALSE};
      g_array_append_val(states, st);
    }
    cur = next;
  }
  for (guint i = 0; i < states->len; i++) {
    TrieState *st = &g_array_index(states, TrieState, i);
    if (tok->trie[st->node].terminal) {
      g_array_append_val(offsets, st->start);
      g_array_append_val(offsets, len);
      break;
    }
  }
  g_array_unref(states);
}

static void gstring_free(gpointer s) {
  g_string_free(s, TRUE);
}

/* The pieces of PreTrainedTokenizer.tokenize: GStrings, possibly emptied or joined. */
static GPtrArray *split_pieces(const BagelTokenizer *tok, const char *text, gsize len) {
  GPtrArray *pieces = g_ptr_array_new_with_free_func(gstring_free);
  GArray *offs = g_array_new(FALSE, FALSE, sizeof(gsize));
  if (!tok->split_special_tokens && tok->n_added) trie_split(tok, text, len, offs);
  else g_array_append_val(offs, (gsize){0});
  g_array_append_val(offs, len);
  gsize start = 0;
  for (guint i = 0; i < offs->len; i++) { /* cut_text */
    gsize end = g_array_index(offs, gsize, i);
    if (start >= end) continue; /* start > end: transformers logs "bug in Trie" and skips */
    g_ptr_array_add(pieces, g_string_new_len(text + start, end - start));
    start = end;
  }
  g_array_unref(offs);
  return pieces;
}

static const TokAdded *piece_added(const BagelTokenizer *tok, const GString *s) {
  if (tok->split_special_tokens || s->len == 0) return NULL;
  const TokAdded *a = g_hash_table_lookup(tok->added_by_text, s->str);
  return a && a->len == s->len ? a : NULL;
}

static void py_lstrip(GString *s) {
  gsize i = 0;
  while (i < s->len && tok_py_isspace(g_utf8_get_char(s->str + i))) i = g_utf8_next_char(s->str + i) - s->str;
  g_string_erase(s, 0, i);
}

static void py_rstrip(GString *s) {
  while (s->len) {
    const char *prev = g_utf8_find_prev_char(s->str, s->str + s->len);
    if (!tok_py_isspace(g_utf8_get_char(prev))) break;
    g_string_truncate(s, prev - s->str);
  }
}

/* The lstrip / rstrip / single_word loop of PreTrainedTokenizer.tokenize, line by line. */
static void apply_added_flags(const BagelTokenizer *tok, GPtrArray *pieces) {
  for (guint i = 0; i < pieces->len; i++) {
    GString *token = g_ptr_array_index(pieces, i);
    const TokAdded *a = piece_added(tok, token);
    if (!a || !(a->lstrip || a->rstrip || a->single_word)) continue;
    GString *left = i > 0 ? g_ptr_array_index(pieces, i - 1) : NULL;
    GString *right = i + 1 < pieces->len ? g_ptr_array_index(pieces, i + 1) : NULL;
    /* Python keeps the values of left/right from before the strips for the tests below */
    gboolean left_ok = left && left->len, right_ok = right && right->len;
    gboolean left_ends_space = left_ok && left->str[left->len - 1] == ' ';
    gboolean right_starts_space = right_ok && right->str[0] == ' ';
    if (a->rstrip && right_ok) py_lstrip(right);
    if (a->lstrip && left_ok) py_rstrip(left);
    if (a->single_word && left_ok && !left_ends_space) {
      g_string_append_len(left, token->str, token->len);
      g_string_truncate(token, 0);
    } else if (a->single_word && right_ok && !right_starts_space) {
      g_string_prepend_len(right, token->str, token->len);
      g_string_truncate(token, 0);
    }
  }
}

/* ---- BPE ---------------------------------------------------------------------------------- */

/* Python's loop: take the lowest-ranked adjacent pair, merge all its occurrences left to
 * right, repeat.  O(n^2): for short pre-tokens. */
static guint bpe_short(const BagelTokenizer *tok, gint32 *syms, guint n) {
  while (n > 1) {
    const TokPair *best = NULL;
    for (guint i = 0; i + 1 < n; i++) {
      const TokPair *p = tok_pair_find(tok, syms[i], syms[i + 1]);
      if (p && (!best || p->rank < best->rank)) best = p;
    }
    if (!best) break;
    gint32 a = best->a, b = best->b, merged = best->merged;
    guint j = 0;
    for (guint i = 0; i < n;) {
      if (i + 1 < n && syms[i] == a && syms[i + 1] == b) { syms[j++] = merged; i += 2; }
      else syms[j++] = syms[i++];
    }
    n = j;
  }
  return n;
}

typedef struct {
  gint32 rank;
  guint32 pos;
} HeapItem;

static gboolean heap_less(HeapItem x, HeapItem y) {
  return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos);
}

static void heap_push(GArray *h, HeapItem it) {
  g_array_append_val(h, it);
  HeapItem *v = (HeapItem *)h->data;
  for (guint i = h->len - 1; i > 0;) {
    guint p = (i - 1) / 2;
    if (!heap_less(v[i], v[p])) break;
    HeapItem t = v[i]; v[i] = v[p]; v[p] = t;
    i = p;
  }
}

static HeapItem heap_pop(GArray *h) {
  HeapItem *v = (HeapItem *)h->data, top = v[0];
  v[0] = v[h->len - 1];
  g_array_set_size(h, h->len - 1);
  v = (HeapItem *)h->data;
  for (guint i = 0;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->len && heap_less(v[l], v[m])) m = l;
    if (r < h->len && heap_less(v[r], v[m])) m = r;
    if (m == i) break;
    HeapItem t = v[i]; v[i] = v[m]; v[m] = t;
    i = m;
  }
  return top;
}

/* The same result as bpe_short in O(n log n), for long pre-tokens (a CJK paragraph is one).
 * A round handles one rank: all its occurrences present at the start of the round, left to
 * right (heap order); the pairs a round creates enter the heap only after it, as in Python,
 * where the next min() sees them. */
static guint bpe_long(const BagelTokenizer *tok, gint32 *syms, guint n) {
  gint32 *next = g_new(gint32, n), *prev = g_new(gint32, n);
  GArray *heap = g_array_sized_new(FALSE, FALSE, sizeof(HeapItem), n);
  GArray *merged_at = g_array_new(FALSE, FALSE, sizeof(guint32));
  for (guint i = 0; i < n; i++) {
    next[i] = i + 1 < n ? (gint32)i + 1 : -1;
    prev[i] = (gint32)i - 1;
  }
  for (guint i = 0; i + 1 < n; i++) {
    const TokPair *p = tok_pair_find(tok, syms[i], syms[i + 1]);
    if (p) heap_push(heap, (HeapItem){p->rank, i});
  }
  while (heap->len) {
    gint32 rank = ((HeapItem *)heap->data)[0].rank;
    g_array_set_size(merged_at, 0);
    while (heap->len && ((HeapItem *)heap->data)[0].rank == rank) {
      guint32 pos = heap_pop(heap).pos;
      if (prev[pos] == -2 || next[pos] < 0) continue; /* removed, or last */
      const TokPair *p = tok_pair_find(tok, syms[pos], syms[next[pos]]);
      if (!p || p->rank != rank) continue;          /* stale entry */
      gint32 q = next[pos];
      syms[pos] = p->merged;
      next[pos] = next[q];
      if (next[q] >= 0) prev[next[q]] = (gint32)pos;
      prev[q] = -2;
      g_array_append_val(merged_at, pos);
    }
    for (guint k = 0; k < merged_at->len; k++) {
      guint32 pos = g_array_index(merged_at, guint32, k);
      const TokPair *p;
      if (prev[pos] >= 0 && (p = tok_pair_find(tok, syms[prev[pos]], syms[pos])))
        heap_push(heap, (HeapItem){p->rank, (guint32)prev[pos]});
      if (next[pos] >= 0 && (p = tok_pair_find(tok, syms[pos], syms[next[pos]])))
        heap_push(heap, (HeapItem){p->rank, pos});
    }
  }
  guint m = 0;
  for (gint32 i = 0; i >= 0; i = next[i]) syms[m++] = syms[i];
  g_array_unref(merged_at);
  g_array_unref(heap);
  g_free(next);
  g_free(prev);
  return m;
}

static guint32 hash_bytes(const guint8 *s, gsize n) {
  guint32 h = 2166136261u; /* FNV-1a */
  for (gsize i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
  return h;
}

static TokCacheEntry **cache_slot(BagelTokenizer *tok, guint32 h, const guint8 *s, gsize n) {
  for (guint32 i = h & tok->cache_mask;; i = (i + 1) & tok->cache_mask) {
    TokCacheEntry *e = tok->cache[i];
    if (!e || (e->hash == h && e->klen == n && !memcmp(e->key, s, n))) return &tok->cache[i];
  }
}

static void cache_insert(BagelTokenizer *tok, guint32 h, const guint8 *s, gsize n,
                         const gint32 *ids, guint n_ids) {
  if (tok->cache_count + 1 > (tok->cache_mask + 1) / 2) {
    if (tok->cache_mask + 1 >= CACHE_MAX_ENTRIES * 2) cache_clear(tok);
    else { /* grow */
      guint32 old = tok->cache_mask + 1;
      TokCacheEntry **from = tok->cache;
      tok->cache_mask = old * 2 - 1;
      tok->cache = g_new0(TokCacheEntry *, old * 2);
      for (guint32 i = 0; i < old; i++)
        if (from[i]) *cache_slot(tok, from[i]->hash, (guint8 *)from[i]->key, from[i]->klen) = from[i];
      g_free(from);
    }
  }
  TokCacheEntry **slot = cache_slot(tok, h, s, n);
  if (*slot) return; /* another thread was first */
  gsize off = (sizeof(TokCacheEntry) + n + sizeof(gint32) - 1) / sizeof(gint32) * sizeof(gint32);
  TokCacheEntry *e = g_malloc(off + n_ids * sizeof(gint32));
  e->hash = h;
  e->klen = (guint32)n;
  e->n_ids = n_ids;
  memcpy(e->key, s, n);
  e->ids = (gint32 *)((char *)e + off);
  memcpy(e->ids, ids, n_ids * sizeof(gint32));
  *slot = e;
  tok->cache_count++;
}

/* Appends the ids of one pre-token. */
static void bpe_append(BagelTokenizer *tok, const guint8 *s, gsize n, GArray *out) {
  guint32 h = 0;
  if (n <= CACHE_MAX_KEY) {
    h = hash_bytes(s, n);
    g_mutex_lock(&tok->cache_lock);
    TokCacheEntry *e = *cache_slot(tok, h, s, n);
    if (e) g_array_append_vals(out, e->ids, e->n_ids);
    g_mutex_unlock(&tok->cache_lock);
    if (e) return;
  }
  gint32 local[CACHE_MAX_KEY];
  gint32 *syms = n <= CACHE_MAX_KEY ? local : g_new(gint32, n);
  for (gsize i = 0; i < n; i++) syms[i] = tok->byte_id[s[i]];
  guint m = n <= 64 ? bpe_short(tok, syms, (guint)n) : bpe_long(tok, syms, (guint)n);
  if (tok->remap)
    for (guint i = 0; i < m; i++) syms[i] = tok->remap[syms[i]];
  g_array_append_vals(out, syms, m);
  if (n <= CACHE_MAX_KEY) {
    g_mutex_lock(&tok->cache_lock);
    cache_insert(tok, h, s, n, syms, m);
    g_mutex_unlock(&tok->cache_lock);
  } else {
    g_free(syms);
  }
}

/* Qwen2Tokenizer._tokenize: re.findall(pattern, text), then BPE of each match. */
static gboolean tokenize_piece(BagelTokenizer *tok, const GString *piece, GArray *out, GError **error) {
  GMatchInfo *mi = NULL;
  GError *err = NULL;
  g_regex_match_full(tok->pretok, piece->str, piece->len, 0, 0, &mi, &err);
  while (!err && g_match_info_matches(mi)) {
    gint s, e;
    g_match_info_fetch_pos(mi, 0, &s, &e);
    if (e > s) bpe_append(tok, (const guint8 *)piece->str + s, e - s, out);
    g_match_info_next(mi, &err);
  }
  g_match_info_free(mi);
  if (err) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "tokenizer: pre-tokenisation failed: %s", err->message);
    g_error_free(err);
    return FALSE;
  }
  return TRUE;
}

gboolean tok_encode(BagelTokenizer *tok, const char *utf8, gssize len, GArray *ids_out, GError **error) {
  g_return_val_if_fail(tok != NULL && ids_out != NULL, FALSE);
  g_return_val_if_fail(utf8 != NULL || len == 0, FALSE);
  if (len < 0) len = strlen(utf8);
  gsize bad;
  if (!utf8_validate(utf8, len, &bad)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "text is not valid UTF-8 (byte offset %" G_GSIZE_FORMAT
                ": 0x%02x)", bad, (guint8)utf8[bad]);
    return FALSE;
  }
  gsize nlen = len;
  char *norm = nfc(utf8, len, &nlen);
  const char *text = norm ? norm : utf8;
  guint start_len = ids_out->len;
  GPtrArray *pieces = split_pieces(tok, text, nlen);
  apply_added_flags(tok, pieces);
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < pieces->len; i++) {
    GString *p = g_ptr_array_index(pieces, i);
    if (!p->len) continue;
    const TokAdded *a = piece_added(tok, p);
    if (a) g_array_append_val(ids_out, a->id);
    else ok = tokenize_piece(tok, p, ids_out, error);
  }
  g_ptr_array_unref(pieces);
  g_free(norm);
  if (!ok) g_array_set_size(ids_out, start_len);
  return ok;
}

char *tok_decode(const BagelTokenizer *tok, const gint32 *ids, gsize n, gsize *len) {
  g_return_val_if_fail(tok != NULL && (ids != NULL || n == 0), NULL);
  GString *bytes = g_string_new(NULL);
  for (gsize i = 0; i < n; i++) {
    gint32 id = ids[i];
    if (id < 0 || id >= tok->n_ids || tok->dec_len[id] == G_MAXUINT32)
      g_string_append(bytes, "\xEF\xBF\xBD"); /* no such token: Python would raise */
    else
      g_string_append_len(bytes, tok->dec_buf + tok->dec_off[id], tok->dec_len[id]);
  }
  /* Added tokens that transformers splices in as text (rather than through the byte decoder)
   * are valid UTF-8, so decoding once is the same as its flush-before-each-token. */
  GString *out = g_string_sized_new(bytes->len);
  utf8_append_replace(out, (const guint8 *)bytes->str, bytes->len);
  g_string_free(bytes, TRUE);
  if (len) *len = out->len;
  return g_string_free(out, FALSE);
}

gint32 tok_token_id(const BagelTokenizer *tok, const char *token_text) {
  g_return_val_if_fail(tok != NULL && token_text != NULL, -1);
  const TokAdded *a = g_hash_table_lookup(tok->added_by_text, token_text);
  if (a) return a->id;
  gpointer v = g_hash_table_lookup(tok->vocab, token_text);
  return v ? GPOINTER_TO_INT(v) - 1 : -1;
}

int tok_vocab_size(const BagelTokenizer *tok) {
  g_return_val_if_fail(tok != NULL, 0);
  return tok->n_ids;
}

gboolean tok_bagel_ids(const BagelTokenizer *tok, TokBagelIds *ids, GError **error) {
  g_return_val_if_fail(tok != NULL && ids != NULL, FALSE);
  static const char *const names[] = {"<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"};
  gint32 *out[] = {&ids->bos, &ids->eos, &ids->start_of_image, &ids->end_of_image};
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    const TokAdded *a = g_hash_table_lookup(tok->added_by_text, names[i]);
    if (!a) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: the special token %s is not defined",
                  tok->added_source, names[i]);
      return FALSE;
    }
    *out[i] = a->id;
  }
  return TRUE;
}

gboolean tok_encode_segment(BagelTokenizer *tok, const char *utf8, gssize len, GArray *ids_out,
                            GError **error) {
  TokBagelIds b;
  if (!tok_bagel_ids(tok, &b, error)) return FALSE;
  guint start_len = ids_out->len;
  g_array_append_val(ids_out, b.bos);
  if (!tok_encode(tok, utf8, len, ids_out, error)) {
    g_array_set_size(ids_out, start_len);
    return FALSE;
  }
  g_array_append_val(ids_out, b.eos);
  return TRUE;
}
