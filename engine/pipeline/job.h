/* engine/pipeline/job.h — the pieces the three modes (describe, generate, edit) compose,
 * exactly as the official inferencer composes them (docs/bagel-spec.md §5):
 * text segments, the image preparation (VAE resize rule, then the ViT transform), the
 * ViT and VAE blocks, the reasoning pass, the noise draws and the sampling + decoding.
 * A Job carries one call's state: progress/cancel, the torch-compatible generator seeded
 * once per call, the parity options, the timings, and the contexts to free. */
#ifndef BAGEL_JOB_H
#define BAGEL_JOB_H

#include "bagel-debug.h"
#include "context.h"
#include "engine_internal.h"
#include "progress.h"
#include "rng.h"

typedef struct {
  BagelEngine *e;
  Progress prog;
  TorchGen rng;
  int64_t seed;
  const BagelDebug *dbg;
  Dump *dump;
  ArenaMark mark;
  BagelTimings *tm;
  int n_text;            /* text segments recorded (dump text_ids.<i>) */
  GPtrArray *ctxs;       /* Ctx* freed at the end */
  gint64 t_stage;
} Job;

void job_begin(Job *j, BagelEngine *e, const BagelCommon *c, BagelProgressFunc fn,
               gpointer user, BagelTimings *tm);
/* Free the contexts, rewind the arena; keeps the engine usable after any failure. */
void job_end(Job *j);

Ctx *job_ctx(Job *j, GError **error);
Ctx *job_fork(Job *j, Ctx *c);

/* Append [bos] + text + [eos] to c; `record` dumps its ids as text_ids.<i>. */
gboolean job_text(Job *j, Ctx *c, const char *text, gboolean record, GError **error);

/* Check and convert the caller's image to RGB, resized by the VAE rule (twice, as the
 * official code does; the second pass is a no-op).  *rgb is g_free'd by the caller. */
gboolean job_prepare_image(Job *j, const BagelImage *img, guint8 **rgb, int *w, int *h,
                           GError **error);
/* The ViT transform of an RGB image and its block [start, tokens, end] appended to c. */
gboolean job_vit_block(Job *j, Ctx *c, const guint8 *rgb, int w, int h, GError **error);
/* VAE encode (posterior noise drawn from the job's generator) and the VAE block. */
gboolean job_vae_block(Job *j, Ctx *c, const guint8 *rgb, int w, int h, GError **error);

/* Decode text from c (a fork; c is unchanged), post-processed like the official
 * gen_text: the part before the first <|im_end|> and before any second <|im_start|>. */
gboolean job_generate_text(Job *j, Ctx *c, const BagelDecode *d, const char *stage,
                           const char *ids_dump, char **text, GError **error);

/* Draw the initial noise, run the sampler with the three CFG contexts (ut/ui may be
 * NULL), decode the latent with the VAE into out (RGB, W×H). */
gboolean job_generate_image(Job *j, Ctx *cond, Ctx *ut, Ctx *ui, int W, int H,
                            const BagelSampler *s, BagelRgb *out, GError **error);

/* Check a prompt: non-NULL, valid UTF-8, not only whitespace. */
gboolean job_check_prompt(const char *what, const char *text, GError **error);

#endif
