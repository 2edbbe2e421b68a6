/* engine/context.h — the inference context of spec §4: a KV cache, its length and the
 * next RoPE position, with the operations the pipelines compose:
 *   append text (causal), append a ViT image block (und, full), append a VAE image block
 *   (gen, full), decode one token (logits), and the denoising forward (no cache update).
 * Position rule: a text token takes its own position; a whole image block (markers
 * included) shares one position and advances it by 1; the denoising block uses the
 * current position without advancing it.
 *
 * Contexts share K/V by prefix: ctx_fork gives a context that sees the same rows; an
 * append writes in place when no other context on the store extends past the append
 * point, and otherwise first copies the prefix into a new store (copy-on-write).  So the
 * CFG contexts of spec §5.1 are built once and share their common prefix, and the denoise
 * loop never rebuilds or copies a cache. */
#ifndef BAGEL_CONTEXT_H
#define BAGEL_CONTEXT_H

#include <glib.h>

#include "dump.h"
#include "model.h"
#include "weights.h"

typedef struct Ctx Ctx;

Ctx *ctx_new(BagelModel *m, int64_t capacity, GError **error);
Ctx *ctx_fork(const Ctx *c);
void ctx_free(Ctx *c);

int64_t ctx_kv_len(const Ctx *c);
int64_t ctx_rope(const Ctx *c);
const KvStore *ctx_store(const Ctx *c);
/* Record every update's layer outputs as "<tag>.u<k>.layer<l>" (dump may be NULL). */
void ctx_set_dump(Ctx *c, Dump *dump, const char *tag);

/* Append a text segment; ids are the whole segment ([bos] + text + [eos] for BAGEL). */
gboolean ctx_append_text(Ctx *c, Arena *a, const int32_t *ids, int64_t n, GError **error);
/* Append [start_of_image, tokens…, end_of_image] (tokens [N, D] bf16 from vit_encode). */
gboolean ctx_append_vit(Ctx *c, Arena *a, const BkTensor *tokens, GError **error);
/* Append [start, latent tokens (gen expert, t = 0), end]; latents [h·w, C] F32 packed. */
gboolean ctx_append_vae(Ctx *c, Arena *a, const BkTensor *latents, int h, int w,
                        GError **error);
/* Feed one token (appended, causal) and get its logits [1, vocab] bf16 into `logits`. */
gboolean ctx_decode(Ctx *c, Arena *a, int32_t token, BkTensor *logits, GError **error);
/* The velocity v[h·w, C] (bf16) of noisy latents x_t [h·w, C] (F32) at flow time t;
 * the cache is not changed. */
gboolean ctx_denoise(Ctx *c, Arena *a, const BkTensor *x_t, float t, int h, int w,
                     BkTensor *v, GError **error);

#endif
