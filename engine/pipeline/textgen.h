/* engine/pipeline/textgen.h — text decoding from a context (spec §4.6, §13).
 *
 * Works on a fork of the context (the caller's context is unchanged).  Step 0 feeds
 * <|im_start|> at the context's position; each step appends the fed token and predicts
 * the next one from bf16 logits: greedy = argmax with the lowest index on ties, or
 * sampling = softmax(logits / temperature) and one draw (torch's exponential trick,
 * with the engine's torch-compatible generator).  Decoding stops when <|im_end|> is
 * predicted (not returned) or after max_tokens new tokens. */
#ifndef BAGEL_TEXTGEN_H
#define BAGEL_TEXTGEN_H

#include "bagel.h"
#include "context.h"
#include "progress.h"
#include "rng.h"

/* Decode into out_ids (gint32, the new tokens without the leading <|im_start|>).
 * Dump names: logits.<k> (bf16).  `stage` names the progress stage. */
gboolean textgen_run(BagelModel *m, Arena *a, const Ctx *ctx, const BagelDecode *d,
                     TorchGen *rng, GArray *out_ids, Progress *prog, const char *stage,
                     Dump *dump, GError **error);

/* argmax over bf16 logits, lowest index on ties (exposed for tests). */
int32_t textgen_argmax_bf16(const uint16_t *logits, int64_t n);

#endif
