/* engine/cli/cmd_info.c — `bagel info --model DIR`: the architecture read from a
 * checkpoint directory, parameter counts per component, bytes and the dtype mix. */
#include <stdio.h>
#include <string.h>

#include "bagel.h"
#include "checkpoint.h"
#include "cli.h"

static void print_count(const char *label, int64_t n, uint64_t bytes) {
  printf("  %-38s %15" G_GINT64_FORMAT " params  %9.3f GB\n", label, n, (double)bytes / 1e9);
}

int cmd_info(int argc, char **argv) {
  char *model = NULL;
  gboolean check_finite = FALSE;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "checkpoint directory", "DIR"},
    {"check-finite", 0, 0, G_OPTION_ARG_NONE, &check_finite,
     "also scan every weight for NaN/Inf (reads the whole checkpoint)", NULL},
    {NULL},
  };
  GOptionContext *octx = g_option_context_new("- describe a BAGEL checkpoint");
  g_option_context_add_main_entries(octx, entries, NULL);
  GError *error = NULL;
  int rc = 1;
  Checkpoint *ck = NULL;
  if (!g_option_context_parse(octx, &argc, &argv, &error)) goto out;
  if (!model) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--model DIR is required");
    goto out;
  }
  ck = checkpoint_open(model, &error);
  if (!ck) goto out;
  if (check_finite && !ckpt_check_finite(ck, &error)) goto out;

  const ModelConfig *c = &ck->cfg;
  printf("BAGEL checkpoint %s\n\n", ck->dir);
  printf("LLM (Qwen2 Mixture-of-Transformers, 2 experts: understanding + generation)\n");
  printf("  layers %d, hidden %d, heads %d (head dim %d), KV heads %d, MLP %d, vocab %d\n",
         c->llm.layers, c->llm.hidden, c->llm.heads, c->llm.head_dim, c->llm.kv_heads,
         c->llm.intermediate, c->llm.vocab);
  printf("  rms_norm_eps %g, rope_theta %g, QK-norm on\n", c->llm.rms_eps, c->llm.rope_theta);
  printf("ViT (SigLIP NaViT)\n");
  printf("  layers %d used (%d in vit_config.json; the last is dropped), hidden %d, heads %d "
         "(head dim %d), MLP %d\n", c->vit.layers, c->vit.layers_config, c->vit.hidden,
         c->vit.heads, c->vit.head_dim, c->vit.intermediate);
  printf("  patch %d, position table %dx%d, connector to %d with a %dx%d sin-cos table\n",
         c->vit.patch, c->vit.image_size / c->vit.patch, c->vit.image_size / c->vit.patch,
         c->llm.hidden, c->geo.vit_grid, c->geo.vit_grid);
  printf("VAE (FLUX autoencoder)\n  base width %d, ch_mult [", c->vae.ch);
  for (int i = 0; i < c->vae.levels; i++) printf("%s%d", i ? "," : "", c->vae.ch_mult[i]);
  printf("], %d res blocks, z %d, downsample %d\n", c->vae.num_res_blocks, c->vae.z_channels,
         1 << (c->vae.levels - 1));
  printf("Generation\n  latent tokens of %d values (patch %d), grid up to %dx%d (%d px)\n",
         c->geo.latent_channels, c->geo.latent_patch, c->geo.latent_grid, c->geo.latent_grid,
         c->geo.latent_grid * 16);
  printf("Tokenizer\n  %s\n\n", ck->has_vocab_merges ? "vocab.json + merges.txt"
                                                     : "tokenizer.json");

  int64_t comp_n[CKPT_NCOMPONENTS] = {0};
  uint64_t comp_b[CKPT_NCOMPONENTS] = {0};
  int64_t dt_n[ST_NDTYPES] = {0};
  int64_t file_n[2] = {0};
  uint64_t file_b[2] = {0};
  for (guint i = 0; i < ck->expected->len; i++) {
    const CkptSpec *s = ck->expected->pdata[i];
    const StTensor *t = ckpt_tensor(ck, s->name);
    int64_t n = st_numel(t);
    comp_n[s->component] += n;
    comp_b[s->component] += t->nbytes;
    dt_n[t->dtype] += n;
    file_n[s->file] += n;
    file_b[s->file] += t->nbytes;
  }
  printf("Parameters\n");
  for (int i = 0; i < CKPT_NCOMPONENTS; i++) print_count(ckpt_component_name(i), comp_n[i], comp_b[i]);
  print_count("ema.safetensors (all BAGEL weights)", file_n[0], file_b[0]);
  print_count("ae.safetensors (VAE)", file_n[1], file_b[1]);
  printf("  LLM with one expert (shared + understanding): %.2f B params\n",
         (comp_n[CKPT_LLM_SHARED] + comp_n[CKPT_LLM_UND]) / 1e9);
  printf("Dtypes\n ");
  for (int i = 0; i < ST_NDTYPES; i++)
    if (dt_n[i]) printf(" %s %.1f%%", st_dtype_name(i), 100.0 * dt_n[i] / (file_n[0] + file_n[1]));
  printf("\nFiles\n  ema.safetensors %.3f GB, ae.safetensors %.3f GB\n",
         st_file_size(ck->ema) / 1e9, st_file_size(ck->ae) / 1e9);
  for (guint i = 0; i < ck->warnings->len; i++)
    printf("warning: %s\n", (const char *)ck->warnings->pdata[i]);
  rc = 0;
out:
  if (rc) cli_fail("info", error);
  checkpoint_free(ck);
  g_option_context_free(octx);
  g_free(model);
  return rc;
}
