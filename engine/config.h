/* engine/config.h — model geometry: llm_config.json, vit_config.json, the VAE widths
 * (read from ae.safetensors shapes) and the BAGEL constants (spec §1).
 * Every size the engine uses comes from here; nothing is a compiled-in constant, so the
 * real checkpoint and the tiny test ones load through the same code. */
#ifndef BAGEL_CONFIG_H
#define BAGEL_CONFIG_H

#include <glib.h>

#include "safetensors.h"

typedef struct {
  int hidden;          /* hidden_size */
  int layers;          /* num_hidden_layers */
  int heads;           /* num_attention_heads */
  int kv_heads;        /* num_key_value_heads */
  int head_dim;        /* hidden / heads */
  int intermediate;    /* intermediate_size */
  int vocab;           /* vocab_size */
  double rms_eps;      /* rms_norm_eps */
  double rope_theta;   /* rope_theta */
} LlmConfig;

typedef struct {
  int hidden;          /* hidden_size */
  int intermediate;    /* intermediate_size */
  int heads;           /* num_attention_heads */
  int head_dim;
  int layers_config;   /* num_hidden_layers as written in the file */
  int layers;          /* layers used: the official code drops the last one */
  int patch;           /* patch_size */
  int image_size;      /* image_size: position table has (image_size/patch)² rows */
  int channels;        /* num_channels */
  double ln_eps;       /* layer_norm_eps */
} VitConfig;

#define VAE_MAX_LEVELS 8

typedef struct {
  int in_channels, out_channels;
  int ch;                          /* base width */
  int levels;                      /* len(ch_mult) */
  int ch_mult[VAE_MAX_LEVELS];
  int num_res_blocks;              /* encoder; the decoder has num_res_blocks + 1 */
  int z_channels;
  int groups;                      /* GroupNorm groups (FLUX: 32) */
  float scale_factor, shift_factor;
  double gn_eps;
} VaeConfig;

/* Sizes of the BAGEL wrapper, read from tensor shapes (spec §1.8). */
typedef struct {
  int vit_grid;          /* vit_max_num_patch_per_side: vit_pos_embed has grid² rows (70) */
  int latent_grid;       /* max_latent_size: latent_pos_embed has grid² rows (64) */
  int latent_patch;      /* latent_patch_size (2) */
  int latent_channels;   /* latent token width = z · patch² (64) */
} BagelGeometry;

typedef struct {
  LlmConfig llm;
  VitConfig vit;
  VaeConfig vae;
  BagelGeometry geo;
} ModelConfig;

gboolean llm_config_load(const char *path, LlmConfig *out, GError **error);
gboolean vit_config_load(const char *path, VitConfig *out, GError **error);
/* Parse from a JSON object node (used by the loaders and by bagel-mkckpt FILE.json). */
gboolean llm_config_from_json(gpointer json_object, const char *label, LlmConfig *out,
                              GError **error);
gboolean vit_config_from_json(gpointer json_object, const char *label, VitConfig *out,
                              GError **error);
/* Check the derived invariants (heads divide widths, positive sizes, …). */
gboolean llm_config_check(const LlmConfig *c, const char *label, GError **error);
gboolean vit_config_check(const VitConfig *c, const char *label, GError **error);
gboolean vae_config_check(const VaeConfig *c, const char *label, GError **error);

/* VAE widths from the shapes in ae.safetensors (anchor tensors by name). */
gboolean vae_config_from_file(const StFile *ae, VaeConfig *out, GError **error);
/* The FLUX constants not stored in the file (spec §1.7). */
void vae_config_set_flux_constants(VaeConfig *c);

/* Write llm_config.json / vit_config.json in the official layout. */
char *llm_config_to_json(const LlmConfig *c);
char *vit_config_to_json(const VitConfig *c);

/* Presets for bagel-mkckpt and tests: "tiny" (the golden set's geometry), "medium"
 * (Qwen2.5-1.5B LLM with the real ViT and VAE), "7b" (BAGEL-7B-MoT). */
gboolean model_config_preset(const char *name, ModelConfig *out);
/* A FILE.json for bagel-mkckpt: {"llm": {...}, "vit": {...}, "vae": {"ch":..,
 * "ch_mult": [..], "num_res_blocks":.., "z_channels":..}, "vit_grid":.., "latent_grid":..} */
gboolean model_config_load_json(const char *path, ModelConfig *out, GError **error);

#endif
