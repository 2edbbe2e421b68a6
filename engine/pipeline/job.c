/* engine/pipeline/job.c — the pieces the modes compose (job.h). */
#include "job.h"

#include <string.h>

#include "image.h"
#include "imageio.h"
#include "sampler.h"
#include "textgen.h"

#define MAX_IMAGE_SIDE 16384

static double since(gint64 t0) { return (double)(g_get_monotonic_time() - t0) / 1e6; }

void job_begin(Job *j, BagelEngine *e, const BagelCommon *c, BagelProgressFunc fn,
               gpointer user, BagelTimings *tm) {
  memset(j, 0, sizeof *j);
  j->e = e;
  progress_init(&j->prog, fn, user);
  j->seed = c->seed >= 0 ? c->seed : (int64_t)(g_random_int() & 0x7fffffff);
  tg_seed(&j->rng, (uint64_t)j->seed);   /* torch.manual_seed(seed) before the call */
  j->dbg = c->debug;
  j->dump = j->dbg ? j->dbg->dump : NULL;
  j->mark = arena_mark(&e->arena);
  j->tm = tm;
  j->ctxs = g_ptr_array_new_with_free_func((GDestroyNotify)ctx_free);
  bk_clear_error(e->be);
}

void job_end(Job *j) {
  g_ptr_array_unref(j->ctxs);
  arena_reset(&j->e->arena, j->mark);
  bk_clear_error(j->e->be);
  if (j->tm) j->tm->total = progress_elapsed(&j->prog);
}

Ctx *job_ctx(Job *j, GError **error) {
  Ctx *c = ctx_new(j->e->model, 512, error);
  if (c) g_ptr_array_add(j->ctxs, c);
  return c;
}

Ctx *job_fork(Job *j, Ctx *c) {
  Ctx *f = ctx_fork(c);
  g_ptr_array_add(j->ctxs, f);
  return f;
}

static gboolean backend_ok(Job *j, const char *stage, GError **error) {
  if (bk_ok(j->e->be)) return TRUE;
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "%s: %s", stage, j->e->be->error);
  return FALSE;
}

gboolean job_check_prompt(const char *what, const char *text, GError **error) {
  if (!text) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "the %s is missing", what);
    return FALSE;
  }
  if (!g_utf8_validate(text, -1, NULL)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "the %s is not valid UTF-8", what);
    return FALSE;
  }
  for (const char *p = text; *p; p = g_utf8_next_char(p))
    if (!g_unichar_isspace(g_utf8_get_char(p))) return TRUE;
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "the %s is empty", what);
  return FALSE;
}

gboolean job_text(Job *j, Ctx *c, const char *text, gboolean record, GError **error) {
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  gint64 t0 = g_get_monotonic_time();
  gboolean ok = tok_encode_segment(j->e->tok, text, -1, ids, error);
  if (ok && record && j->dump) {
    char name[32];
    g_snprintf(name, sizeof name, "text_ids.%d", j->n_text++);
    dump_host(j->dump, name, ST_I32, 1, (int64_t[]){ids->len}, ids->data);
  }
  if (ok) ok = progress_report(&j->prog, "prefill", 0, 1, error);
  if (ok) ok = ctx_append_text(c, &j->e->arena, (const int32_t *)ids->data, ids->len, error);
  if (j->tm) j->tm->prefill += since(t0);
  g_array_free(ids, TRUE);
  return ok;
}

static void dump_u8_image(Job *j, const char *name, const guint8 *rgb, int w, int h) {
  dump_host(j->dump, name, ST_U8, 3, (int64_t[]){h, w, 3}, rgb);
}

gboolean job_prepare_image(Job *j, const BagelImage *img, guint8 **rgb, int *w, int *h,
                           GError **error) {
  if (!img || !img->pixels) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "no input image");
    return FALSE;
  }
  if (img->width < 1 || img->height < 1 || img->width > MAX_IMAGE_SIDE ||
      img->height > MAX_IMAGE_SIDE) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "input image is %dx%d; sides must be 1..%d pixels", img->width, img->height,
                MAX_IMAGE_SIDE);
    return FALSE;
  }
  if ((img->channels != 3 && img->channels != 4) ||
      (img->stride != 0 && img->stride < img->width * img->channels)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "input image must be RGB or RGBA with rows of at least width·channels bytes "
                "(got %d channels, stride %d)", img->channels, img->stride);
    return FALSE;
  }
  ImgBuffer b = img_buffer_wrap(img->pixels, img->width, img->height, img->channels,
                                img->stride);
  guint8 *full = img_to_rgb(&b, error);   /* pil_img2rgb: alpha composited over white */
  if (!full) return FALSE;
  ImgTransform t = j->dbg && j->dbg->has_vae_transform ? j->dbg->vae_transform
                                                       : IMG_TRANSFORM_VAE;
  gboolean ok = img_transform_resize(&t, full, img->width, img->height, rgb, w, h, error);
  g_free(full);
  if (ok) dump_u8_image(j, "vae_resized", *rgb, *w, *h);
  return ok;
}

gboolean job_vit_block(Job *j, Ctx *c, const guint8 *rgb, int w, int h, GError **error) {
  BagelEngine *e = j->e;
  gint64 t0 = g_get_monotonic_time();
  if (!progress_report(&j->prog, "vit", 0, 1, error)) return FALSE;
  ImgTransform t = j->dbg && j->dbg->has_vit_transform ? j->dbg->vit_transform
                                                       : IMG_TRANSFORM_VIT;
  guint8 *vit_rgb = NULL;
  int vw, vh;
  if (!img_transform_resize(&t, rgb, w, h, &vit_rgb, &vw, &vh, error)) return FALSE;
  dump_u8_image(j, "vit_resized", vit_rgb, vw, vh);
  float *chw = g_new(float, (gsize)3 * vw * vh);
  img_to_tensor(vit_rgb, vw, vh, 3, chw);
  g_free(vit_rgb);
  ArenaMark mk = arena_mark(&e->arena);
  BkTensor tokens;
  gboolean ok = vit_encode(e->model->vit, &e->arena, chw, vh, vw, &tokens, j->dump, error);
  g_free(chw);
  if (j->tm) j->tm->vit += since(t0);
  t0 = g_get_monotonic_time();
  if (ok) ok = ctx_append_vit(c, &e->arena, &tokens, error);
  if (j->tm) j->tm->prefill += since(t0);
  arena_reset(&e->arena, mk);
  return ok;
}

gboolean job_vae_block(Job *j, Ctx *c, const guint8 *rgb, int w, int h, GError **error) {
  BagelEngine *e = j->e;
  BkBackend *be = e->be;
  const VaeConfig *vc = &e->vae->cfg;
  gint64 t0 = g_get_monotonic_time();
  if (!progress_report(&j->prog, "vae-encode", 0, 1, error)) return FALSE;
  /* prepare_vae_images applies the VAE transform again; for an image the inferencer
   * already resized this is a no-op, but it is what the official code does */
  ImgTransform t = j->dbg && j->dbg->has_vae_transform ? j->dbg->vae_transform
                                                       : IMG_TRANSFORM_VAE;
  guint8 *img = NULL;
  int W, H;
  if (!img_transform_resize(&t, rgb, w, h, &img, &W, &H, error)) return FALSE;
  const int f = vae_downsample_factor(vc), p = e->model->ck->cfg.geo.latent_patch;
  const int zh = H / f, zw = W / f, gh = zh / p, gw = zw / p;
  const int grid = e->model->gen->latent_grid;
  if (H % (f * p) || W % (f * p) || gh > grid || gw > grid) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "image of %dx%d does not fit the latent grid (multiples of %d, at most %d a side)",
                W, H, f * p, grid * f * p);
    g_free(img);
    return FALSE;
  }
  ArenaMark mk = arena_mark(&e->arena);
  BkTensor x = arena_tensor(&e->arena, BK_F32, 3, (int64_t[]){3, H, W});
  float *chw = g_new(float, (gsize)3 * W * H);
  img_to_tensor(img, W, H, 3, chw);
  g_free(img);
  dump_host(j->dump, "vae_input", ST_F32, 3, (int64_t[]){3, H, W}, chw);
  be->ops->upload(be, &x, chw);
  g_free(chw);
  BkTensor moments;
  gboolean ok = vae_encode(e->vae, &e->arena, &x, &moments, NULL, error);
  const gsize nz = (gsize)vc->z_channels * zh * zw;
  float *mom = NULL, *eps = NULL, *z = NULL;
  if (ok) {
    mom = g_new(float, 2 * nz);
    be->ops->download(be, mom, &moments);
    dump_host(j->dump, "vae_moments", ST_F32, 3, (int64_t[]){2 * vc->z_channels, zh, zw}, mom);
    eps = g_new(float, nz);
    if (j->dbg && j->dbg->vae_eps) {
      if (j->dbg->vae_eps_n != nz) {
        g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--noise: vae_posterior_eps has "
                    "%zu values, this image needs %zu", j->dbg->vae_eps_n, nz);
        ok = FALSE;
      } else {
        memcpy(eps, j->dbg->vae_eps, nz * sizeof(float));
      }
    } else {
      tg_randn(&j->rng, eps, nz);   /* randn_like(mean): [1, z, h, w], drawn first */
    }
  }
  if (ok) {
    dump_host(j->dump, "vae_posterior_eps", ST_F32, 3, (int64_t[]){vc->z_channels, zh, zw}, eps);
    z = g_new(float, nz);
    vae_posterior(vc, mom, eps, zh, zw, z, NULL);
    dump_host(j->dump, "vae_latent_in", ST_F32, 3, (int64_t[]){vc->z_channels, zh, zw}, z);
    BkTensor zt = arena_tensor(&e->arena, BK_F32, 3, (int64_t[]){vc->z_channels, zh, zw});
    be->ops->upload(be, &zt, z);
    BkTensor lat = arena_2d(&e->arena, BK_F32, (int64_t)gh * gw, e->model->gen->latent_channels);
    be->ops->latent_pack(be, &lat, &zt);
    ok = backend_ok(j, "vae-encode", error);
    if (j->tm) j->tm->vae_encode += since(t0);
    t0 = g_get_monotonic_time();
    if (ok) ok = ctx_append_vae(c, &e->arena, &lat, gh, gw, error);
    if (j->tm) j->tm->prefill += since(t0);
  }
  g_free(mom);
  g_free(eps);
  g_free(z);
  arena_reset(&e->arena, mk);
  return ok;
}

/* gen_text's post-processing: decode(start token + ids), split('<|im_end|>')[0],
 * split('<|im_start|>')[1]. */
static char *postprocess(const char *decoded) {
  const char *start = "<|im_start|>";
  char *full = g_strconcat(start, decoded, NULL);
  char *end = strstr(full, "<|im_end|>");
  if (end) *end = '\0';
  char *body = full + strlen(start);
  char *second = strstr(body, start);
  if (second) *second = '\0';
  char *out = g_strdup(body);
  g_free(full);
  return out;
}

gboolean job_generate_text(Job *j, Ctx *c, const BagelDecode *d, const char *stage,
                           const char *ids_dump, char **text, GError **error) {
  gint64 t0 = g_get_monotonic_time();
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint32));
  gboolean ok = textgen_run(j->e->model, &j->e->arena, c, d, &j->rng, ids, &j->prog, stage,
                            j->dump, error);
  if (ok) {
    dump_host(j->dump, ids_dump, ST_I32, 1, (int64_t[]){ids->len}, ids->data);
    char *decoded = tok_decode(j->e->tok, (const gint32 *)ids->data, ids->len, NULL);
    *text = postprocess(decoded);
    g_free(decoded);
    if (j->tm) j->tm->decode_tokens += (int)ids->len;
  }
  double dt = since(t0);
  if (j->tm) {
    if (!strcmp(stage, "think")) j->tm->think += dt;
    else j->tm->decode += dt;
  }
  g_array_free(ids, TRUE);
  return ok;
}

gboolean job_generate_image(Job *j, Ctx *cond, Ctx *ut, Ctx *ui, int W, int H,
                            const BagelSampler *s, BagelRgb *out, GError **error) {
  BagelEngine *e = j->e;
  BkBackend *be = e->be;
  const VaeConfig *vc = &e->vae->cfg;
  const int f = vae_downsample_factor(vc), p = e->model->ck->cfg.geo.latent_patch;
  const int gh = H / (f * p), gw = W / (f * p);
  const gsize N = (gsize)gh * gw, C = (gsize)e->model->gen->latent_channels;
  if (!sampler_check(s, error)) return FALSE;
  float *x = g_new(float, N * C);
  if (j->dbg && j->dbg->init_noise) {
    if (j->dbg->init_noise_n != N * C) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--noise: init_noise has %zu "
                  "values, a %dx%d image needs %zu", j->dbg->init_noise_n, W, H, N * C);
      g_free(x);
      return FALSE;
    }
    memcpy(x, j->dbg->init_noise, N * C * sizeof(float));
  } else {
    tg_randn(&j->rng, x, N * C);   /* torch.randn(N, 64) after the posterior noise */
  }
  dump_host(j->dump, "init_noise", ST_F32, 2, (int64_t[]){N, C}, x);
  gint64 t0 = g_get_monotonic_time();
  gboolean ok = sampler_run(e->model, &e->arena, cond, ut, ui, gh, gw, s, x, &j->prog, j->dump,
                            error);
  if (j->tm) {
    j->tm->denoise += since(t0);
    j->tm->denoise_steps = s->steps - 1;
  }
  if (!ok) {
    g_free(x);
    return FALSE;
  }
  t0 = g_get_monotonic_time();
  ok = progress_report(&j->prog, "vae-decode", 0, 1, error);
  ArenaMark mk = arena_mark(&e->arena);
  float *img = NULL;
  if (ok) {
    BkTensor tok = arena_2d(&e->arena, BK_F32, (int64_t)N, (int64_t)C);
    be->ops->upload(be, &tok, x);
    BkTensor z = arena_tensor(&e->arena, BK_F32, 3, (int64_t[]){vc->z_channels, gh * p, gw * p});
    be->ops->latent_unpack(be, &z, &tok);
    BkTensor y;
    ok = backend_ok(j, "vae-decode", error) &&
         vae_decode(e->vae, &e->arena, &z, &y, NULL, error);
    if (ok) {
      img = g_new(float, (gsize)3 * W * H);
      be->ops->download(be, img, &y);
      dump_host(j->dump, "decoded", ST_F32, 3, (int64_t[]){3, H, W}, img);
      out->width = W;
      out->height = H;
      out->pixels = g_malloc((gsize)W * H * 3);
      img_from_tensor(img, W, H, 3, out->pixels);
      dump_u8_image(j, "image", out->pixels, W, H);
    }
  }
  if (j->tm) j->tm->vae_decode += since(t0);
  arena_reset(&e->arena, mk);
  g_free(img);
  g_free(x);
  return ok;
}
