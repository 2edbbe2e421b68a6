/* engine/model/embed.h — the generation head (spec §1.5–1.6, §13): the time embedder,
 * vae2llm / llm2vae and the latent position table.
 *
 * Latent token input: bf16(bf16(vae2llm(x) + time_embedder(t)) + latent_pos_embed[id]),
 * x the packed latent (fp32, rounded to bf16 at the Linear), t the raw flow time (0 for a
 * clean conditioning image), id = row · latent_grid + col over the h×w token grid.
 * Velocity: llm2vae(final hidden of the latent rows), bf16. */
#ifndef BAGEL_EMBED_H
#define BAGEL_EMBED_H

#include <glib.h>

#include "checkpoint.h"
#include "weights.h"

typedef struct {
  BkBackend *be;
  int hidden, latent_channels, latent_grid;
  BkTensor te0_w, te0_b, te2_w, te2_b;   /* time_embedder.mlp.0 / .2 */
  BkTensor v2l_w, v2l_b;                 /* vae2llm */
  BkTensor l2v_w, l2v_b;                 /* llm2vae */
  BkTensor latent_pos;                   /* latent_pos_embed.pos_embed */
} GenHead;

GenHead *gen_head_load(BkBackend *be, const Checkpoint *ck, GError **error);
void gen_head_free(GenHead *g);

/* DiT sinusoid of the raw flow time, cos first: [cos(t·f_k), sin(t·f_k)], k < 128,
 * f_k = exp(−ln(10000)·k/128), all in fp32 as torch computes it. */
void gen_timestep_sinusoid(float t, float out[256]);

/* out[h·w, D] (bf16) = the latent tokens' input embeddings. */
void gen_embed_latents(GenHead *g, Arena *a, const BkTensor *x, float t, int h, int w,
                       BkTensor *out);

/* v[N, latent_channels] (bf16) = llm2vae(hidden[N, D]). */
void gen_velocity(GenHead *g, const BkTensor *hidden, BkTensor *v);

#endif
