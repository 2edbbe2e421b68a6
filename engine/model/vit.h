/* engine/model/vit.h — the understanding encoder: SigLIP NaViT (spec §1.3), the
 * connector and the ViT position table into LLM space (§1.4), §13 rounding.
 *
 * Input: one image already resized by the ViT transform and normalised to [−1, 1]
 * (float CHW, host memory; H, W multiples of the patch size).  Output: the image's
 * tokens in LLM space, [N, D_llm] bf16 = connector(post_layernorm(encoder(x))) +
 * vit_pos_embed[id], with id = row · vit_grid + col for both position tables. */
#ifndef BAGEL_VIT_H
#define BAGEL_VIT_H

#include <glib.h>

#include "checkpoint.h"
#include "dump.h"
#include "weights.h"

typedef struct {
  BkTensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;   /* self_attn.{q,k,v,out}_proj */
  BkTensor ln1_w, ln1_b, ln2_w, ln2_b;              /* layer_norm1, layer_norm2 */
  BkTensor fc1_w, fc1_b, fc2_w, fc2_b;              /* mlp.fc1, mlp.fc2 */
} VitLayer;

typedef struct {
  BkBackend *be;
  VitConfig cfg;
  int grid;                 /* vit_max_num_patch_per_side */
  int llm_hidden;
  BkTensor patch_w, patch_b;          /* embeddings.patch_embedding (Linear 3·p² -> hidden) */
  BkTensor pos;                       /* embeddings.position_embedding.weight */
  VitLayer *layers;
  BkTensor post_w, post_b;            /* post_layernorm */
  BkTensor fc1_w, fc1_b, fc2_w, fc2_b; /* connector.fc1, connector.fc2 */
  BkTensor vit_pos;                   /* vit_pos_embed.pos_embed */
} VitModel;

VitModel *vit_load(BkBackend *be, const Checkpoint *ck, GError **error);
void vit_free(VitModel *m);

/* Encode one normalised image (3×H×W floats) into tokens [N, D_llm] bf16 allocated in
 * the arena (N = (H/p)·(W/p)).  dump records vit_out (post-layernorm, fp32) and
 * vit_tokens. */
gboolean vit_encode(VitModel *m, Arena *a, const float *chw, int H, int W, BkTensor *tokens,
                    Dump *dump, GError **error);

/* Patchify (spec §4.3): patches[N, 3·p²], inside a patch (ky, kx, c); ids row·grid+col. */
void vit_patchify(const float *chw, int H, int W, int p, int grid, float *patches, int32_t *ids);

#endif
