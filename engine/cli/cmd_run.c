/* engine/cli/cmd_run.c — `bagel describe | generate | edit`: the three modes of the public
 * API from the command line, with the parity options used against the official
 * implementation (--dump, --noise, --vae-transform, --vit-transform).
 *
 *   bagel edit --model DIR --image in.png --prompt "Make it snowy" --out out.png
 *   bagel generate --model DIR --prompt "A red cube" --width 512 --height 512 --out cube.png
 *   bagel describe --model DIR --image photo.jpg --prompt "What is in this image?"
 */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bagel-debug.h"
#include "bagel.h"
#include "cli.h"
#include "image.h"
#include "imageio.h"

typedef enum { MODE_DESCRIBE, MODE_GENERATE, MODE_EDIT } Mode;

typedef struct {
  char *model, *backend, *image, *prompt, *out, *dump, *noise, *renorm;
  char *cfg_interval, *vae_transform, *vit_transform;
  gboolean think, json, quiet, sample, mlock;
  int max_tokens, max_think_tokens, width, height, steps, threads;
  double cfg_text, cfg_image, shift, renorm_min, temperature;
  gint64 seed;
} Opts;

static const char *mode_name(Mode m) {
  return m == MODE_DESCRIBE ? "describe" : m == MODE_GENERATE ? "generate" : "edit";
}

static gboolean parse_floats(const char *opt, const char *s, int n, double *out, GError **error) {
  char **parts = g_strsplit(s, ",", -1);
  gboolean ok = g_strv_length(parts) == (guint)n;
  for (int i = 0; ok && i < n; i++) {
    char *end;
    out[i] = g_ascii_strtod(parts[i], &end);
    ok = end != parts[i] && *g_strstrip(end) == '\0';
  }
  g_strfreev(parts);
  if (!ok)
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "%s: expected %d comma-separated "
                "numbers, got \"%s\"", opt, n, s);
  return ok;
}

static gboolean parse_transform(const char *opt, const char *s, ImgTransform *t, GError **error) {
  double v[3];
  if (!parse_floats(opt, s, 3, v, error)) return FALSE;
  if (v[0] < 1 || v[1] < 1 || v[2] < 1 || v[0] > 16384 || v[1] > v[0] || v[0] != (int)v[0] ||
      v[1] != (int)v[1] || v[2] != (int)v[2]) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "%s: expected MAX,MIN,STRIDE "
                "integers with 1 <= MIN <= MAX <= 16384", opt);
    return FALSE;
  }
  *t = (ImgTransform){(int)v[0], (int)v[1], (int)v[2], 14 * 14 * 9 * 1024};
  return TRUE;
}

/* --noise FILE: init_noise [N, C] and/or vae_posterior_eps [z, h, w], any float dtype. */
static float *noise_tensor(StFile *f, const char *name, gsize *n) {
  const StTensor *t = st_find(f, name);
  if (!t) return NULL;
  BkDType dt;
  if (!st_dtype_to_bk(t->dtype, &dt) || (dt != BK_F32 && dt != BK_BF16)) return NULL;
  *n = (gsize)st_numel(t);
  float *v = g_new(float, *n ? *n : 1);
  for (gsize i = 0; i < *n; i++)
    v[i] = dt == BK_F32 ? ((const float *)t->data)[i]
                        : bk_bf16_to_f32(((const uint16_t *)t->data)[i]);
  return v;
}

static gboolean on_progress(const char *stage, int step, int total, double elapsed, gpointer u) {
  const Opts *o = u;
  if (!o->quiet && isatty(STDERR_FILENO)) {
    fprintf(stderr, "\r\033[K%-10s %d/%d  %.1fs", stage, step + 1, total, elapsed);
    fflush(stderr);
  }
  return TRUE;
}

static void print_json(Mode m, const Opts *o, const BagelResult *r, const BagelSampler *s,
                       const char *backend) {
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "mode");
  json_builder_add_string_value(b, mode_name(m));
  json_builder_set_member_name(b, "backend");
  json_builder_add_string_value(b, backend);
  json_builder_set_member_name(b, "seed");
  json_builder_add_int_value(b, r->seed);
  if (r->text) {
    json_builder_set_member_name(b, "text");
    json_builder_add_string_value(b, r->text);
  }
  if (r->reasoning) {
    json_builder_set_member_name(b, "reasoning");
    json_builder_add_string_value(b, r->reasoning);
  }
  if (r->image.pixels) {
    json_builder_set_member_name(b, "image");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "path");
    json_builder_add_string_value(b, o->out);
    json_builder_set_member_name(b, "width");
    json_builder_add_int_value(b, r->image.width);
    json_builder_set_member_name(b, "height");
    json_builder_add_int_value(b, r->image.height);
    json_builder_end_object(b);
  }
  json_builder_set_member_name(b, "settings");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "prompt");
  json_builder_add_string_value(b, o->prompt);
  json_builder_set_member_name(b, "think");
  json_builder_add_boolean_value(b, o->think);
  if (s) {
    json_builder_set_member_name(b, "steps");
    json_builder_add_int_value(b, s->steps);
    json_builder_set_member_name(b, "cfg_text");
    json_builder_add_double_value(b, s->cfg_text);
    json_builder_set_member_name(b, "cfg_image");
    json_builder_add_double_value(b, s->cfg_image);
    json_builder_set_member_name(b, "cfg_interval");
    json_builder_begin_array(b);
    json_builder_add_double_value(b, s->cfg_interval[0]);
    json_builder_add_double_value(b, s->cfg_interval[1]);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "timestep_shift");
    json_builder_add_double_value(b, s->timestep_shift);
    json_builder_set_member_name(b, "renorm");
    json_builder_add_string_value(b, bagel_renorm_to_string(s->renorm));
    json_builder_set_member_name(b, "renorm_min");
    json_builder_add_double_value(b, s->renorm_min);
  }
  json_builder_end_object(b);
  const BagelTimings *t = &r->timings;
  json_builder_set_member_name(b, "timings_s");
  json_builder_begin_object(b);
  const struct { const char *k; double v; } tv[] = {
    {"vit", t->vit}, {"vae_encode", t->vae_encode}, {"prefill", t->prefill},
    {"think", t->think}, {"decode", t->decode}, {"denoise", t->denoise},
    {"vae_decode", t->vae_decode}, {"total", t->total}};
  for (unsigned i = 0; i < G_N_ELEMENTS(tv); i++) {
    json_builder_set_member_name(b, tv[i].k);
    json_builder_add_double_value(b, tv[i].v);
  }
  json_builder_set_member_name(b, "denoise_steps");
  json_builder_add_int_value(b, t->denoise_steps);
  json_builder_set_member_name(b, "decode_tokens");
  json_builder_add_int_value(b, t->decode_tokens);
  json_builder_end_object(b);
  json_builder_end_object(b);
  JsonGenerator *g = json_generator_new();
  json_generator_set_pretty(g, TRUE);
  JsonNode *root = json_builder_get_root(b);
  json_generator_set_root(g, root);
  char *s_json = json_generator_to_data(g, NULL);
  printf("%s\n", s_json);
  g_free(s_json);
  json_node_unref(root);
  g_object_unref(g);
  g_object_unref(b);
}

static int run(Mode mode, int argc, char **argv) {
  Opts o = {.max_tokens = -1, .max_think_tokens = -1, .width = -1, .height = -1, .steps = -1,
            .cfg_text = -1, .cfg_image = -1, .shift = -1, .renorm_min = -1, .seed = -1,
            .temperature = -1};
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &o.model, "model directory (or $BAGEL_MODEL)", "DIR"},
    {"backend", 0, 0, G_OPTION_ARG_STRING, &o.backend, "cpu, cuda or auto (default)", "NAME"},
    {"threads", 0, 0, G_OPTION_ARG_INT, &o.threads, "CPU threads (default: all cores)", "N"},
    {"mlock", 0, 0, G_OPTION_ARG_NONE, &o.mlock, "lock the weights in RAM", NULL},
    {"image", 'i', 0, G_OPTION_ARG_FILENAME, &o.image, "input image (PNG or JPEG)", "FILE"},
    {"prompt", 'p', 0, G_OPTION_ARG_STRING, &o.prompt, "prompt, instruction or question", "TEXT"},
    {"think", 0, 0, G_OPTION_ARG_NONE, &o.think, "reason before answering (chain of thought)", NULL},
    {"max-tokens", 0, 0, G_OPTION_ARG_INT, &o.max_tokens, "at most N new tokens (describe)", "N"},
    {"max-think-tokens", 0, 0, G_OPTION_ARG_INT, &o.max_think_tokens, "at most N reasoning tokens", "N"},
    {"sample", 0, 0, G_OPTION_ARG_NONE, &o.sample, "sample text instead of greedy decoding", NULL},
    {"temperature", 0, 0, G_OPTION_ARG_DOUBLE, &o.temperature, "sampling temperature (0.3)", "F"},
    {"width", 'W', 0, G_OPTION_ARG_INT, &o.width, "generated width (1024)", "W"},
    {"height", 'H', 0, G_OPTION_ARG_INT, &o.height, "generated height (1024)", "H"},
    {"steps", 0, 0, G_OPTION_ARG_INT, &o.steps, "num_timesteps (50)", "N"},
    {"cfg-text", 0, 0, G_OPTION_ARG_DOUBLE, &o.cfg_text, "text guidance scale (4)", "F"},
    {"cfg-image", 0, 0, G_OPTION_ARG_DOUBLE, &o.cfg_image, "image guidance scale (1 / 2)", "F"},
    {"cfg-interval", 0, 0, G_OPTION_ARG_STRING, &o.cfg_interval, "guidance interval (0.4,1 / 0,1)", "A,B"},
    {"shift", 0, 0, G_OPTION_ARG_DOUBLE, &o.shift, "timestep shift (3)", "F"},
    {"renorm", 0, 0, G_OPTION_ARG_STRING, &o.renorm, "global, channel or text_channel", "TYPE"},
    {"renorm-min", 0, 0, G_OPTION_ARG_DOUBLE, &o.renorm_min, "renorm minimum (0)", "F"},
    {"seed", 's', 0, G_OPTION_ARG_INT64, &o.seed, "random seed (default: random)", "S"},
    {"out", 'o', 0, G_OPTION_ARG_FILENAME, &o.out, "output image (.png or .jpg)", "FILE"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &o.json, "print the result, settings and timings as JSON", NULL},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet, "no progress line", NULL},
    {"dump", 0, 0, G_OPTION_ARG_FILENAME, &o.dump, "write named intermediates (safetensors)", "FILE"},
    {"noise", 0, 0, G_OPTION_ARG_FILENAME, &o.noise, "take init_noise / vae_posterior_eps from FILE", "FILE"},
    {"vae-transform", 0, 0, G_OPTION_ARG_STRING, &o.vae_transform, "VAE resize rule (1024,512,16)", "MAX,MIN,STRIDE"},
    {"vit-transform", 0, 0, G_OPTION_ARG_STRING, &o.vit_transform, "ViT resize rule (980,224,14)", "MAX,MIN,STRIDE"},
    {NULL},
  };
  char *summary = g_strdup_printf("- %s", mode == MODE_DESCRIBE ? "describe an image / answer a question"
                                  : mode == MODE_GENERATE ? "generate an image from a prompt"
                                                          : "edit an image with an instruction");
  GOptionContext *octx = g_option_context_new(summary);
  g_free(summary);
  g_option_context_add_main_entries(octx, entries, NULL);
  GError *error = NULL;
  int rc = 1;
  BagelEngine *engine = NULL;
  BagelResult result = {0};
  BagelDebug dbg = {0};
  Dump *dump = NULL;
  StFile *noise = NULL;
  float *init_noise = NULL, *eps = NULL;
  ImgBuffer in = {0};
  guint8 *rgb = NULL;
  BagelSampler sampler, *sp = NULL;

  if (!g_option_context_parse(octx, &argc, &argv, &error)) goto out;
  if (argc > 1) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "unexpected argument \"%s\"", argv[1]);
    goto out;
  }
  if (!o.model && g_getenv("BAGEL_MODEL")) o.model = g_strdup(g_getenv("BAGEL_MODEL"));
  if (!o.model) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--model DIR is required "
                "(or set BAGEL_MODEL)");
    goto out;
  }
  if (!o.prompt) {
    if (mode == MODE_DESCRIBE) o.prompt = g_strdup("Describe this image in detail.");
    else {
      g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--prompt TEXT is required");
      goto out;
    }
  }
  if (mode != MODE_GENERATE && !o.image) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--image FILE is required");
    goto out;
  }

  /* parameters: the official defaults per mode, then the options */
  BagelDescribeParams dp;
  BagelGenerateParams gp;
  BagelEditParams ep;
  bagel_describe_params_init(&dp);
  bagel_generate_params_init(&gp);
  bagel_edit_params_init(&ep);
  BagelCommon *common = mode == MODE_DESCRIBE ? &dp.common : mode == MODE_GENERATE ? &gp.common
                                                                                  : &ep.common;
  if (mode != MODE_DESCRIBE) {
    sp = mode == MODE_GENERATE ? &gp.sampler : &ep.sampler;
    if (o.steps >= 0) sp->steps = o.steps;
    if (o.cfg_text >= 0) sp->cfg_text = (float)o.cfg_text;
    if (o.cfg_image >= 0) sp->cfg_image = (float)o.cfg_image;
    if (o.shift >= 0) sp->timestep_shift = (float)o.shift;
    if (o.renorm_min >= 0) sp->renorm_min = (float)o.renorm_min;
    if (o.renorm && !bagel_renorm_from_string(o.renorm, &sp->renorm, &error)) goto out;
    if (o.cfg_interval) {
      double iv[2];
      if (!parse_floats("--cfg-interval", o.cfg_interval, 2, iv, &error)) goto out;
      sp->cfg_interval[0] = (float)iv[0];
      sp->cfg_interval[1] = (float)iv[1];
    }
    sampler = *sp;
  }
  common->think = o.think;
  common->seed = o.seed;
  if (o.max_think_tokens >= 0) common->think_decode.max_tokens = o.max_think_tokens;
  if (o.max_tokens >= 0) dp.answer.max_tokens = o.max_tokens;
  if (o.sample) dp.answer.sample = common->think_decode.sample = TRUE;
  if (o.temperature >= 0) dp.answer.temperature = common->think_decode.temperature = (float)o.temperature;
  if (o.width >= 0) gp.width = o.width;
  if (o.height >= 0) gp.height = o.height;

  /* parity options */
  if (o.vae_transform) {
    if (!parse_transform("--vae-transform", o.vae_transform, &dbg.vae_transform, &error)) goto out;
    dbg.has_vae_transform = TRUE;
  }
  if (o.vit_transform) {
    if (!parse_transform("--vit-transform", o.vit_transform, &dbg.vit_transform, &error)) goto out;
    dbg.has_vit_transform = TRUE;
  }
  if (o.noise) {
    if (!(noise = st_open(o.noise, &error))) goto out;
    init_noise = noise_tensor(noise, "init_noise", &dbg.init_noise_n);
    eps = noise_tensor(noise, "vae_posterior_eps", &dbg.vae_eps_n);
    if (!init_noise && !eps) {
      g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: no F32/BF16 tensor "
                  "\"init_noise\" or \"vae_posterior_eps\"", o.noise);
      goto out;
    }
    dbg.init_noise = init_noise;
    dbg.vae_eps = eps;
  }
  if (o.dump) dbg.dump = dump = dump_new();
  common->debug = &dbg;

  BagelEngineOptions eo;
  bagel_engine_options_init(&eo);
  eo.n_threads = o.threads;
  eo.mlock = o.mlock;
  if (o.backend) {
    if (!strcmp(o.backend, "cpu")) eo.backend = BAGEL_BACKEND_CPU;
    else if (!strcmp(o.backend, "cuda")) eo.backend = BAGEL_BACKEND_CUDA;
    else if (strcmp(o.backend, "auto")) {
      g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--backend %s: expected cpu, "
                  "cuda or auto", o.backend);
      goto out;
    }
  }
  BagelImage image = {0};
  if (o.image) {
    if (!img_load_file(o.image, &in, &error)) goto out;
    if (!(rgb = img_to_rgb(&in, &error))) goto out;
    image = (BagelImage){in.width, in.height, 3, in.width * 3, rgb};
  }
  if (!(engine = bagel_engine_open(o.model, &eo, &error))) goto out;

  gboolean ok;
  switch (mode) {
  case MODE_DESCRIBE:
    ok = bagel_describe(engine, &image, o.prompt, &dp, on_progress, &o, &result, &error);
    break;
  case MODE_GENERATE:
    ok = bagel_generate(engine, o.prompt, &gp, on_progress, &o, &result, &error);
    break;
  default:
    ok = bagel_edit(engine, &image, o.prompt, &ep, on_progress, &o, &result, &error);
  }
  if (!o.quiet && isatty(STDERR_FILENO)) fprintf(stderr, "\r\033[K");
  if (dump && !dump_write(dump, o.dump, ok ? &error : NULL)) goto out;
  if (!ok) goto out;
  if (result.image.pixels) {
    if (!o.out) o.out = g_strdup_printf("bagel-%s-%" G_GINT64_FORMAT ".png", mode_name(mode), result.seed);
    if (!img_save_file(o.out, result.image.pixels, result.image.width, result.image.height, 3, 0,
                       &error))
      goto out;
  }
  if (o.json) {
    print_json(mode, &o, &result, sp ? &sampler : NULL, bagel_engine_backend_name(engine));
  } else if (mode == MODE_DESCRIBE) {
    if (result.reasoning) printf("Reasoning: %s\n\n", result.reasoning);
    printf("%s\n", result.text);
  } else {
    if (result.reasoning) printf("Reasoning: %s\n", result.reasoning);
    printf("%s: %dx%d, seed %" G_GINT64_FORMAT ", %.1f s\n", o.out, result.image.width,
           result.image.height, result.seed, result.timings.total);
  }
  rc = 0;
out:
  if (rc) cli_fail(mode_name(mode), error);
  bagel_result_clear(&result);
  bagel_engine_free(engine);
  dump_free(dump);
  st_close(noise);
  g_free(init_noise);
  g_free(eps);
  img_buffer_clear(&in);
  g_free(rgb);
  g_option_context_free(octx);
  g_free(o.model); g_free(o.backend); g_free(o.image); g_free(o.prompt); g_free(o.out);
  g_free(o.dump); g_free(o.noise); g_free(o.renorm); g_free(o.cfg_interval);
  g_free(o.vae_transform); g_free(o.vit_transform);
  return rc;
}

int cmd_describe(int argc, char **argv) { return run(MODE_DESCRIBE, argc, argv); }
int cmd_generate(int argc, char **argv) { return run(MODE_GENERATE, argc, argv); }
int cmd_edit(int argc, char **argv) { return run(MODE_EDIT, argc, argv); }
