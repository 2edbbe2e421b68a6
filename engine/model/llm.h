/* engine/model/llm.h — the Qwen2 Mixture-of-Transformers decoder (spec §1.1–1.2, §4,
 * §13) and the per-layer KV store it reads and appends to.
 *
 * A forward pass runs one block of tokens through every layer.  Rows are routed by kind
 * (not by a router): a block is [und_head rows | gen rows | und_tail rows], e.g. a text
 * segment is all und, a VAE/latent block is [start marker | latents | end marker]
 * = (1, N, 1).  The block's mode picks the QK-norm/RoPE precision recipe (§13): gen
 * blocks normalise q/k in fp32 for every row (markers included) and round once; und
 * blocks follow the bf16 op-by-op recipe.  Attention sees the store's first kv_len rows
 * (the context) and the block itself, causal (bottom-right) or full. */
#ifndef BAGEL_LLM_H
#define BAGEL_LLM_H

#include <glib.h>

#include "checkpoint.h"
#include "dump.h"
#include "ops.h"
#include "weights.h"

typedef struct {
  BkTensor q_w, q_b, k_w, k_b, v_w, v_b, o_w;  /* self_attn.{q,k,v,o}_proj */
  BkTensor q_norm, k_norm;                      /* self_attn.{q,k}_norm */
  BkTensor gate, up, down;                      /* mlp.{gate,up,down}_proj */
  BkTensor ln_in, ln_post;                      /* input_/post_attention_layernorm */
} LlmExpert;

typedef struct {
  LlmExpert und;   /* the understanding expert (plain names) */
  LlmExpert gen;   /* the generation expert (*_moe_gen) */
} LlmLayer;

typedef struct {
  BkBackend *be;
  LlmConfig cfg;
  BkTensor embed_tokens;   /* language_model.model.embed_tokens.weight [vocab, D] */
  BkTensor lm_head;        /* language_model.lm_head.weight [vocab, D] */
  BkTensor norm, norm_gen; /* language_model.model.norm(_moe_gen).weight */
  LlmLayer *layers;
} LlmModel;

LlmModel *llm_load(BkBackend *be, const Checkpoint *ck, GError **error);
void llm_free(LlmModel *m);

/* K/V of every layer, bf16 [cap, kv_heads, head_dim] per layer, K after QK-norm + RoPE.
 * Shared by contexts (engine/context.c); `used` rows are valid. */
typedef struct {
  BkBackend *be;
  int layers, kv_heads, head_dim;
  int64_t cap, used;
  BkTensor *k, *v;
} KvStore;

KvStore *kv_new(BkBackend *be, const LlmConfig *cfg, int64_t cap, GError **error);
void kv_free(KvStore *kv);
/* Make room for `rows` rows (keeps the first `keep` rows); allocation happens only here. */
gboolean kv_reserve(KvStore *kv, int64_t rows, int64_t keep, GError **error);
/* A new store with the first n rows of src. */
KvStore *kv_clone_prefix(const KvStore *src, int64_t n, int64_t cap, GError **error);
BkTensor kv_rows(const KvStore *kv, gboolean values, int layer, int64_t r0, int64_t n);

typedef struct {
  int64_t und_head, gen, und_tail;   /* routing runs; their sum is the block length */
  gboolean gen_mode;                 /* QK-norm/RoPE recipe (§13) */
  int64_t pos0;                      /* RoPE position of row 0 */
  int pos_step;                      /* 1 for text, 0 for an image block */
  BkCausal causal;
} LlmBlock;

/* Run the block x[L, D] (bf16 embeddings; overwritten) through all layers.
 * Attends to rows [0, kv_len) of kv; if append, the block's K/V are written at rows
 * [kv_len, kv_len + L) (the caller reserved them).  If out is non-NULL it receives the
 * final hidden states after the per-kind final norms, [L, D] bf16.
 * dump (may be NULL) records "<tag>.layer<l>" outputs. */
gboolean llm_forward(LlmModel *m, Arena *a, BkTensor *x, const LlmBlock *b, KvStore *kv,
                     int64_t kv_len, gboolean append, BkTensor *out, Dump *dump,
                     const char *tag, GError **error);

/* Embeddings of token ids into x[n, D] (bf16). */
void llm_embed(LlmModel *m, BkTensor *x, const int32_t *ids, int64_t n);

/* logits[1, vocab] (bf16) of one final hidden row [1, D]. */
void llm_logits(LlmModel *m, BkTensor *logits, const BkTensor *hidden_row);

#endif
