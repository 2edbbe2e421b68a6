/* engine/pipeline/modes.c — bagel_describe, bagel_generate, bagel_edit (bagel.h): the
 * official inferencer's interleave_inference for each input list (docs/bagel-spec.md §5),
 * with the CFG contexts of §5.1 built once and shared by prefix:
 *
 *   describe:        gen = [T(I), P]                    → decode
 *            think:  gen = [S_und, T(I), P]             → decode (reasoning + answer)
 *   generate:        gen = [P]          text = []       img = [P]
 *            think:  gen = [S, P] → decode R → [S,P,R]; text = [S];  img = [S, P]
 *   edit:            gen = [V, T, P]    text = [V, T]   img = [P]
 *            think:  gen = [S,V,T,P] → R → [S,V,T,P,R]; text = [S,V,T]; img = [S, P]
 *
 * The image-guidance context omits R in think mode, as inferencer.py does (its eval
 * scripts differ: ImgEdit/KRIS/RISE/GEdit append R there too; we follow the inferencer,
 * which is what the notebook and the app run).  Noise: one generator seeded per call;
 * an edit draws the VAE posterior noise first, then the initial noise. */
#include <string.h>

#include "imageio.h"
#include "job.h"
#include "resources.h"

static gboolean fail_cleanup(Job *j, BagelResult *r) {
  job_end(j);
  bagel_result_clear(r);
  return FALSE;
}

/* Split "…<think>R</think> answer" into reasoning and answer (describe + think). */
static void split_think(char *text, char **reasoning, char **answer) {
  char *open = strstr(text, "<think>"), *close = strstr(text, "</think>");
  if (close) {
    char *rs = open && open < close ? open + strlen("<think>") : text;
    *reasoning = g_strstrip(g_strndup(rs, (gsize)(close - rs)));
    *answer = g_strstrip(g_strdup(close + strlen("</think>")));
  } else {
    *reasoning = NULL;
    *answer = g_strdup(text);
  }
}

gboolean bagel_describe(BagelEngine *e, const BagelImage *image, const char *question,
                        const BagelDescribeParams *p, BagelProgressFunc progress,
                        gpointer user, BagelResult *r, GError **error) {
  BagelDescribeParams defaults;
  if (!p) {
    bagel_describe_params_init(&defaults);
    p = &defaults;
  }
  memset(r, 0, sizeof *r);
  if (!job_check_prompt("question", question, error)) return FALSE;
  Job j;
  job_begin(&j, e, &p->common, progress, user, &r->timings);
  r->seed = j.seed;
  guint8 *rgb = NULL;
  int w, h;
  char *text = NULL;
  Ctx *gen = NULL;
  gboolean ok = (gen = job_ctx(&j, error)) != NULL;
  if (ok && p->common.think) ok = job_text(&j, gen, bagel_prompt_think_und(), TRUE, error);
  if (ok) ok = job_prepare_image(&j, image, &rgb, &w, &h, error);
  if (ok) ok = job_vit_block(&j, gen, rgb, w, h, error);
  if (ok) ok = job_text(&j, gen, question, TRUE, error);
  if (ok) ok = job_generate_text(&j, gen, &p->answer, "decode", "output_ids", &text, error);
  g_free(rgb);
  if (!ok) return fail_cleanup(&j, r);
  if (p->common.think) {
    split_think(text, &r->reasoning, &r->text);
    g_free(text);
  } else {
    r->text = text;
  }
  job_end(&j);
  return TRUE;
}

/* The think pass of generate/edit: decode R from gen, append it to gen. */
static gboolean think(Job *j, Ctx *gen, const BagelCommon *c, BagelResult *r, GError **error) {
  char *reasoning = NULL;
  if (!job_generate_text(j, gen, &c->think_decode, "think", "think_ids", &reasoning, error))
    return FALSE;
  r->reasoning = reasoning;
  return job_text(j, gen, reasoning, TRUE, error);
}

/* Round a requested size to the model's grid: multiples of 16, long side ≤ 16·grid. */
static gboolean generation_size(BagelEngine *e, int w, int h, int *W, int *H, GError **error) {
  if (w < 1 || h < 1 || w > 16384 || h > 16384) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "image size %dx%d is out of range (1..16384 a side)", w, h);
    return FALSE;
  }
  const int unit = vae_downsample_factor(&e->vae->cfg) * e->model->ck->cfg.geo.latent_patch;
  const int max = unit * e->model->gen->latent_grid;
  return img_resize_rule(w, h, max, unit, unit, max * max, W, H, error);
}

gboolean bagel_generate(BagelEngine *e, const char *prompt, const BagelGenerateParams *p,
                        BagelProgressFunc progress, gpointer user, BagelResult *r,
                        GError **error) {
  BagelGenerateParams defaults;
  if (!p) {
    bagel_generate_params_init(&defaults);
    p = &defaults;
  }
  memset(r, 0, sizeof *r);
  int W, H;
  if (!job_check_prompt("prompt", prompt, error) ||
      !generation_size(e, p->width, p->height, &W, &H, error))
    return FALSE;
  Job j;
  job_begin(&j, e, &p->common, progress, user, &r->timings);
  r->seed = j.seed;
  Ctx *gen = NULL, *img = NULL, *txt = NULL;
  gboolean ok = (gen = job_ctx(&j, error)) && (img = job_ctx(&j, error));
  if (ok && p->common.think)
    ok = job_text(&j, gen, bagel_prompt_think_gen(), TRUE, error) &&
         job_text(&j, img, bagel_prompt_think_gen(), FALSE, error);
  if (ok) {
    txt = job_fork(&j, gen);   /* cfg_text = the context before the prompt */
    ok = job_text(&j, gen, prompt, TRUE, error) && job_text(&j, img, prompt, FALSE, error);
  }
  if (ok && p->common.think) ok = think(&j, gen, &p->common, r, error);
  if (ok) ok = job_generate_image(&j, gen, txt, img, W, H, &p->sampler, &r->image, error);
  if (!ok) return fail_cleanup(&j, r);
  job_end(&j);
  return TRUE;
}

gboolean bagel_edit(BagelEngine *e, const BagelImage *image, const char *instruction,
                    const BagelEditParams *p, BagelProgressFunc progress, gpointer user,
                    BagelResult *r, GError **error) {
  BagelEditParams defaults;
  if (!p) {
    bagel_edit_params_init(&defaults);
    p = &defaults;
  }
  memset(r, 0, sizeof *r);
  if (!job_check_prompt("instruction", instruction, error)) return FALSE;
  Job j;
  job_begin(&j, e, &p->common, progress, user, &r->timings);
  r->seed = j.seed;
  guint8 *rgb = NULL;
  int w = 0, h = 0;
  Ctx *gen = NULL, *img = NULL, *txt = NULL;
  gboolean ok = (gen = job_ctx(&j, error)) && (img = job_ctx(&j, error));
  if (ok && p->common.think)
    ok = job_text(&j, gen, bagel_prompt_think_gen(), TRUE, error) &&
         job_text(&j, img, bagel_prompt_think_gen(), FALSE, error);
  if (ok) ok = job_prepare_image(&j, image, &rgb, &w, &h, error);
  if (ok) ok = job_vae_block(&j, gen, rgb, w, h, error) && job_vit_block(&j, gen, rgb, w, h, error);
  if (ok) {
    txt = job_fork(&j, gen);   /* cfg_text = [(S,) V, T] */
    ok = job_text(&j, gen, instruction, TRUE, error) &&
         job_text(&j, img, instruction, FALSE, error);
  }
  if (ok && p->common.think) ok = think(&j, gen, &p->common, r, error);
  /* the output has the size of the VAE-resized input */
  if (ok) ok = job_generate_image(&j, gen, txt, img, w, h, &p->sampler, &r->image, error);
  g_free(rgb);
  if (!ok) return fail_cleanup(&j, r);
  job_end(&j);
  return TRUE;
}
