/* engine/engine.c — the BagelEngine object of the public API (bagel.h): opening a model
 * directory on a backend, the official default parameters per mode (spec §6.1), results. */
#include <string.h>

#include "bagel-config.h"
#include "bagel.h"
#include "engine_internal.h"
#include "cpu/fast_backend.h"
#ifdef BAGEL_HAVE_CUDA
#include "cuda_probe.h"
#endif

void bagel_engine_options_init(BagelEngineOptions *o) {
  memset(o, 0, sizeof *o);
  o->backend = BAGEL_BACKEND_AUTO;
}

static void decode_init(BagelDecode *d, int max_tokens) {
  d->max_tokens = max_tokens;
  d->sample = FALSE;
  d->temperature = 0.3f;   /* the inferencer's text_temperature, used only when sampling */
}

static void common_init(BagelCommon *c) {
  memset(c, 0, sizeof *c);
  c->think = FALSE;
  decode_init(&c->think_decode, 1000);   /* notebook: max_think_token_n = 1000 */
  c->seed = -1;
}

void bagel_describe_params_init(BagelDescribeParams *p) {
  memset(p, 0, sizeof *p);
  common_init(&p->common);
  decode_init(&p->answer, 512);          /* app: "Max New Tokens" 512 */
}

void bagel_generate_params_init(BagelGenerateParams *p) {
  memset(p, 0, sizeof *p);
  common_init(&p->common);
  /* notebook T2I: cfg_text 4, cfg_img 1, interval [0.4, 1], shift 3, 50 steps, global */
  p->sampler = (BagelSampler){.steps = 50, .cfg_text = 4.0f, .cfg_image = 1.0f,
                              .cfg_interval = {0.4f, 1.0f}, .timestep_shift = 3.0f,
                              .renorm = BAGEL_RENORM_GLOBAL, .renorm_min = 0.0f};
  p->width = p->height = 1024;
}

void bagel_edit_params_init(BagelEditParams *p) {
  memset(p, 0, sizeof *p);
  common_init(&p->common);
  /* notebook edit: cfg_text 4, cfg_img 2, interval [0, 1], shift 3, 50 steps, text_channel */
  p->sampler = (BagelSampler){.steps = 50, .cfg_text = 4.0f, .cfg_image = 2.0f,
                              .cfg_interval = {0.0f, 1.0f}, .timestep_shift = 3.0f,
                              .renorm = BAGEL_RENORM_TEXT_CHANNEL, .renorm_min = 0.0f};
}

void bagel_result_clear(BagelResult *r) {
  if (!r) return;
  g_free(r->text);
  g_free(r->reasoning);
  g_free(r->image.pixels);
  memset(r, 0, sizeof *r);
}

#ifdef BAGEL_HAVE_CUDA
/* The CUDA backend, or NULL with the reason in msg (one line). */
static BkBackend *cuda_backend(char *msg, size_t msg_size) {
  if (bk_cuda_probe(msg, msg_size) <= 0) return NULL;
  BkBackend *be = bk_cuda_new();
  if (!be) {
    g_strlcpy(msg, "cannot create the CUDA backend: out of host memory", msg_size);
    return NULL;
  }
  if (!bk_ok(be)) {
    g_snprintf(msg, msg_size, "the CUDA backend cannot start: %s", be->error);
    bk_backend_free(be);
    return NULL;
  }
  return be;
}
#endif

/* Pick and create the compute backend.  cuda: the GPU or a one-line error; auto: the GPU
 * when a usable one is present (never the emulated one of a -Dcuda-emu build, which is a
 * test vehicle), else the CPU — with a warning when a GPU was found but could not start. */
static BkBackend *open_backend(const BagelEngineOptions *o, char *name, size_t name_size,
                               char **note, GError **error) {
  BagelBackendKind kind = o->backend;
  const char *env = g_getenv("BAGEL_BACKEND");
  if (kind == BAGEL_BACKEND_AUTO && env && *env) {
    if (!strcmp(env, "cpu")) kind = BAGEL_BACKEND_CPU;
    else if (!strcmp(env, "cuda")) kind = BAGEL_BACKEND_CUDA;
    else if (!strcmp(env, "count")) kind = BAGEL_BACKEND_COUNT;
    else if (strcmp(env, "auto")) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                  "BAGEL_BACKEND=%s: expected cpu, cuda, count or auto", env);
      return NULL;
    }
  }
  if (kind == BAGEL_BACKEND_CUDA) {
#ifdef BAGEL_HAVE_CUDA
    char msg[768];
    BkBackend *be = cuda_backend(msg, sizeof msg);
    if (!be) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "--backend cuda: %s", msg);
      return NULL;
    }
    g_strlcpy(name, "cuda", name_size);
    return be;
#else
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND,
                "--backend cuda: this build has no CUDA backend (configured without nvcc)");
    return NULL;
#endif
  }
  if (kind == BAGEL_BACKEND_COUNT) {
    BkBackend *cb = bk_count_new();
    if (!cb) g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "cannot create the count backend");
    else g_strlcpy(name, "count", name_size);
    return cb;
  }
#if defined(BAGEL_HAVE_CUDA) && !defined(BAGEL_CUDA_EMU)
  if (kind == BAGEL_BACKEND_AUTO) {
    char msg[768];
    int n = bk_cuda_probe(msg, sizeof msg);
    if (n > 0) {
      BkBackend *be = cuda_backend(msg, sizeof msg);
      if (be) {
        g_strlcpy(name, "cuda", name_size);
        return be;
      }
      *note = g_strdup_printf("%s; using the CPU backend", msg);
      g_warning("%s", *note);
    }
  }
#endif
  /* the fast kernels (kernels/cpu/fast_*.c), bit-identical to the reference;
   * BAGEL_CPU_FAST=0 runs the plain reference ops instead */
  const char *fast = g_getenv("BAGEL_CPU_FAST");
  const gboolean use_fast = !(fast && !strcmp(fast, "0"));
  BkBackend *be = use_fast ? bk_cpu_fast_new(o->n_threads) : bk_cpu_new(o->n_threads);
  if (!be) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "cannot create the CPU backend");
    return NULL;
  }
  g_strlcpy(name, use_fast ? "cpu-fast" : "cpu", name_size);
  return be;
}

BagelEngine *bagel_engine_open(const char *model_dir, const BagelEngineOptions *opts,
                               GError **error) {
  BagelEngineOptions defaults;
  if (!opts) {
    bagel_engine_options_init(&defaults);
    opts = &defaults;
  }
  BagelEngine *e = g_new0(BagelEngine, 1);
  e->opts = *opts;
  e->be = open_backend(opts, e->backend_name, sizeof e->backend_name, &e->backend_note, error);
  if (!e->be) goto fail;
  Checkpoint *ck = checkpoint_open(model_dir, error);
  if (!ck) goto fail;
  if (opts->mlock && (!st_mlock(ck->ema, error) || !st_mlock(ck->ae, error))) {
    checkpoint_free(ck);
    goto fail;
  }
  /* a corrupt download shows as NaN/Inf weights: refuse it with the tensor's name (the
   * count backend never reads a weight: no scan) */
  if (!bk_is_count(e->be) && !opts->skip_weight_check && !ckpt_check_finite_once(ck, NULL, error)) {
    checkpoint_free(ck);
    goto fail;
  }
  e->tok = tok_load(model_dir, error);
  if (!e->tok) {
    checkpoint_free(ck);
    goto fail;
  }
  TokBagelIds tids;
  if (!tok_bagel_ids(e->tok, &tids, error)) {
    checkpoint_free(ck);
    goto fail;
  }
  BagelTokenIds ids = {tids.bos, tids.eos, tids.start_of_image, tids.end_of_image};
  e->model = bagel_model_load(e->be, ck, &ids, error);   /* owns ck from here */
  if (!e->model) goto fail;
  if (ck->cfg.llm.vocab < tok_vocab_size(e->tok)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: the tokenizer has %d tokens but "
                "the model's vocabulary only %d", model_dir, tok_vocab_size(e->tok),
                ck->cfg.llm.vocab);
    goto fail;
  }
  e->vae = vae_load(e->be, ck, error);
  if (!e->vae) goto fail;
  arena_init(&e->arena, e->be, (size_t)64 << 20);
  return e;
fail:
  bagel_engine_free(e);
  return NULL;
}

void bagel_engine_free(BagelEngine *e) {
  if (!e) return;
  if (e->arena.chunks) arena_clear(&e->arena);
  vae_free(e->vae);
  bagel_model_free(e->model);
  tok_free(e->tok);
  bk_backend_free(e->be);
  g_free(e->backend_note);
  g_free(e);
}

const char *bagel_engine_backend_name(const BagelEngine *e) { return e->backend_name; }

const char *bagel_engine_backend_note(const BagelEngine *e) { return e->backend_note; }
