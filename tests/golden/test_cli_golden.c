/* tests/golden/test_cli_golden.c — the six golden modes end to end through the `bagel`
 * CLI, as the golden README prescribes: the golden transforms, --max-tokens 7, and either
 * --noise FILE (the dumped noise) or --seed 0 alone (our generator must reproduce
 * torch's draws).  The --dump file is compared with the golden tensors, README
 * tolerances: ids equal; resized images max|d| <= 1, mean <= 0.05; bf16-flow tensors
 * rel L2 <= 1e-2; fp32 VAE tensors <= 1e-4; final image max|d| <= 6, mean <= 1.
 *
 * The CPU backend reproduces the official arithmetic bit for bit (docs/numerics.md), so
 * the whole trajectory is held to the README tolerances like everything else.
 *
 * usage: test_cli_golden BAGEL_EXE TINY_CKPT_DIR TESTS_DATA_DIR [--backend cpu|cuda] */
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "golden_util.h"

static const char *bagel_exe, *ckpt_dir, *data_dir, *backend = "cpu";

typedef struct {
  const char *mode;      /* golden set name */
  const char *cmd;       /* bagel subcommand */
  gboolean think, image_in, image_out, text_out;
} Case;

static const Case cases[] = {
  {"und", "describe", FALSE, TRUE, FALSE, TRUE},
  {"t2i", "generate", FALSE, FALSE, TRUE, FALSE},
  {"edit", "edit", FALSE, TRUE, TRUE, FALSE},
  {"und_think", "describe", TRUE, TRUE, FALSE, TRUE},
  {"t2i_think", "generate", TRUE, FALSE, TRUE, TRUE},
  {"edit_think", "edit", TRUE, TRUE, TRUE, TRUE},
};


static char *golden_prompt(const char *mode) {
  char *name = g_strdup_printf("%s.json", mode);
  char *path = g_build_filename(data_dir, "golden", "tiny", name, NULL);
  JsonParser *p = json_parser_new();
  GError *err = NULL;
  g_assert_true(json_parser_load_from_file(p, path, &err));
  char *prompt = g_strdup(json_object_get_string_member(json_node_get_object(json_parser_get_root(p)), "prompt"));
  g_object_unref(p);
  g_free(path);
  g_free(name);
  return prompt;
}

/* A --noise file from the golden dumped noise. */
static void write_noise(Golden *g, const char *path) {
  StWriter *w = st_writer_new();
  const StTensor *n = golden_find(g, ".prepare_vae_latent.out.packed_init_noises", 0);
  const StTensor *e = golden_find(g, ".vae.reg.eps", 0);
  if (n) st_writer_add(w, "init_noise", ST_F32, 2, n->shape);
  if (e) st_writer_add(w, "vae_posterior_eps", ST_F32, 3, e->shape + 1);
  GError *err = NULL;
  g_assert_true(st_writer_begin(w, path, &err));
  if (n) g_assert_true(st_writer_write(w, "init_noise", 0, n->data, n->nbytes, &err));
  if (e) g_assert_true(st_writer_write(w, "vae_posterior_eps", 0, e->data, e->nbytes, &err));
  g_assert_true(st_writer_finish(w, &err));
}

/* A dump tensor as floats. */
static float *dump_floats(StFile *d, const char *name, int64_t *n) {
  const StTensor *t = st_find(d, name);
  if (!t) g_error("dump has no \"%s\"", name);
  *n = st_numel(t);
  return golden_floats(t);
}

/* Trajectory checks (x_t, v, final latent, decoded image): on a backend that cannot be
 * bit-identical to the golden arithmetic (CUDA), CFG amplifies single-ulp differences;
 * BAGEL_GOLDEN_TRAJECTORY=report (that backend's registration, tests/golden/meson.build)
 * reports an over-tolerance trajectory and marks the test incomplete.  Everything else
 * keeps its tolerance. */
static gboolean traj_report(void) { return !g_strcmp0(g_getenv("BAGEL_GOLDEN_TRAJECTORY"), "report"); }
static gboolean traj_over;

static void check_t(const char *what, StFile *d, const char *name, const StTensor *ref,
                    double tol, gboolean trajectory) {
  int64_t n;
  float *ours = dump_floats(d, name, &n);
  g_assert_cmpint(n, ==, st_numel(ref));
  GoldenDiff df = golden_compare(ours, ref);
  g_free(ours);
  g_test_message("%-12s %-20s rel L2 %.3e  max|d| %.3e%s", what, name, df.rel_l2, df.max_abs,
                 df.rel_l2 > tol ? "  OVER" : "");
  if (!(df.rel_l2 <= tol)) {
    if (!trajectory || !traj_report())
      g_error("%s: %s relative L2 %.3e exceeds %.0e", what, name, df.rel_l2, tol);
    traj_over = TRUE;
  }
}

static void check(const char *what, StFile *d, const char *name, const StTensor *ref, double tol) {
  check_t(what, d, name, ref, tol, FALSE);
}

static void check_ids(const char *what, StFile *d, const char *name, const int32_t *ref,
                      int64_t n) {
  const StTensor *t = st_find(d, name);
  if (!t) g_error("%s: dump has no \"%s\"", what, name);
  g_assert_cmpint(st_numel(t), ==, n);
  for (int64_t i = 0; i < n; i++)
    if (((const int32_t *)t->data)[i] != ref[i])
      g_error("%s: %s[%" G_GINT64_FORMAT "] = %d, golden %d", what, name, i,
              ((const int32_t *)t->data)[i], ref[i]);
}

static void run_case(gconstpointer data) {
  const Case *c = data;
  const gboolean with_noise = strstr(g_test_get_path(), "/noise") != NULL;
  Golden *g = golden_open(data_dir, c->mode);
  char *tmp = g_dir_make_tmp("cli-golden-XXXXXX", NULL);
  char *dump = g_build_filename(tmp, "dump.safetensors", NULL);
  char *noise = g_build_filename(tmp, "noise.safetensors", NULL);
  char *out = g_build_filename(tmp, "out.png", NULL);
  char *input = g_build_filename(data_dir, "golden", "tiny", "input.png", NULL);
  char *prompt = golden_prompt(c->mode);
  GPtrArray *argv = g_ptr_array_new();
  g_ptr_array_add(argv, (char *)bagel_exe);
  g_ptr_array_add(argv, (char *)c->cmd);
  const char *fixed[] = {"--model", ckpt_dir, "--backend", backend, "--quiet", "--prompt", prompt,
                         "--dump", dump, "--vae-transform", "128,64,16", "--vit-transform",
                         "112,56,14", "--out", out};
  for (unsigned i = 0; i < G_N_ELEMENTS(fixed); i++) g_ptr_array_add(argv, (char *)fixed[i]);
  if (c->image_in) {
    g_ptr_array_add(argv, "--image");
    g_ptr_array_add(argv, input);
  }
  if (c->think) g_ptr_array_add(argv, "--think");
  /* max_think_token_n = 8 in the golden run returned 7 tokens */
  g_ptr_array_add(argv, !strcmp(c->cmd, "describe") ? "--max-tokens" : "--max-think-tokens");
  g_ptr_array_add(argv, "7");
  if (!strcmp(c->mode, "t2i") || !strcmp(c->mode, "t2i_think")) {
    const char *a[] = {"--width", "96", "--height", "64", "--steps", "5", "--shift", "3",
                       "--cfg-text", "4", "--cfg-image", "1", "--cfg-interval", "0.6,1",
                       "--renorm", "global", "--renorm-min", "0"};
    for (unsigned i = 0; i < G_N_ELEMENTS(a); i++) g_ptr_array_add(argv, (char *)a[i]);
  } else if (c->image_out) {
    const char *a[] = {"--steps", "5", "--shift", "3", "--cfg-text", "4", "--cfg-image", "2",
                       "--cfg-interval", "0,1", "--renorm", "text_channel", "--renorm-min", "0"};
    for (unsigned i = 0; i < G_N_ELEMENTS(a); i++) g_ptr_array_add(argv, (char *)a[i]);
  }
  if (with_noise) {
    write_noise(g, noise);
    g_ptr_array_add(argv, "--noise");
    g_ptr_array_add(argv, noise);
  } else {
    g_ptr_array_add(argv, "--seed");
    g_ptr_array_add(argv, "0");
  }
  g_ptr_array_add(argv, NULL);
  int status;
  char *serr = NULL;
  GError *err = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL,
                             &serr, &status, &err));
  if (!g_spawn_check_wait_status(status, NULL)) g_error("bagel %s failed: %s", c->cmd, serr);
  g_free(serr);
  StFile *d = st_open(dump, &err);
  g_assert_no_error(err);

  /* text segments appended to the full-condition context: the golden prepare_prompts
   * calls, without the copies the image-guidance context gets right after each one */
  int k = 0;
  int32_t prev[4096];
  int64_t prev_n = -1;
  for (int i = 0; i < golden_count(g, ".prepare_prompts.out.packed_text_ids"); i++) {
    const StTensor *t = golden_get(g, ".prepare_prompts.out.packed_text_ids", i);
    int64_t n = st_numel(t);
    int32_t ids[4096];
    g_assert_cmpint(n, <=, 4096);
    for (int64_t x = 0; x < n; x++) ids[x] = (int32_t)golden_value(t, x);
    if (n == prev_n && !memcmp(ids, prev, n * sizeof *ids)) continue;
    char name[32];
    g_snprintf(name, sizeof name, "text_ids.%d", k++);
    check_ids(c->mode, d, name, ids, n);
    memcpy(prev, ids, n * sizeof *ids);
    prev_n = n;
  }
  g_test_message("%s: %d text segments equal", c->mode, k);

  /* images: resizes exact, ViT within the bf16 flow */
  const StTensor *vr = golden_find(g, ".vae_transform.resize.out_uint8", 0);
  if (vr && c->image_in) golden_assert_u8("vae_resized", st_find(d, "vae_resized")->data, vr, 1, 0.05);
  const StTensor *vt = golden_find(g, ".vit_transform.resize.out_uint8", 0);
  if (vt) golden_assert_u8("vit_resized", st_find(d, "vit_resized")->data, vt, 1, 0.05);
  const StTensor *vo = golden_find(g, ".mod.vit_model.out", 0);
  if (vo) check(c->mode, d, "vit_out", vo, 1e-2);

  /* text: the generated ids (golden generate_text.out has the start token first) */
  const StTensor *gt = golden_find(g, ".generate_text.out.out", 0);
  if (gt) {
    int64_t n = st_numel(gt) - 1;
    int32_t *ids = g_new(int32_t, n + 1);
    for (int64_t x = 0; x < n; x++) ids[x] = (int32_t)golden_value(gt, x + 1);
    check_ids(c->mode, d, c->image_out ? "think_ids" : "output_ids", ids, n);
    g_test_message("%s: %" G_GINT64_FORMAT " generated ids equal", c->mode, n);
    g_free(ids);
    /* the official loop's eighth step is discarded: we run 7 (README) */
    for (int x = 0; x < golden_count(g, ".mod.lm_head.out") && x < 7; x++) {
      char name[32];
      g_snprintf(name, sizeof name, "logits.%d", x);
      check(c->mode, d, name, golden_get(g, ".mod.lm_head.out", x), 1e-2);
    }
  }

  /* VAE encode, noise */
  const StTensor *eps = golden_find(g, ".vae.reg.eps", 0);
  if (eps) {
    check(c->mode, d, "vae_posterior_eps", eps, 1e-6);
    check(c->mode, d, "vae_moments", golden_get(g, ".vae.reg.moments", 0), 1e-4);
    check(c->mode, d, "vae_latent_in", golden_get(g, ".vae.encode.out.z", 0), 1e-4);
  }
  const StTensor *noi = golden_find(g, ".prepare_vae_latent.out.packed_init_noises", 0);
  if (noi) {
    check(c->mode, d, "init_noise", noi, 1e-6);
    for (int j = 0; j < golden_count(g, "._forward_flow.in.x_t"); j++) {
      char name[32];
      g_snprintf(name, sizeof name, "x_t.%d", j);
      check_t(c->mode, d, name, golden_get(g, "._forward_flow.in.x_t", j), 1e-2, TRUE);
      g_snprintf(name, sizeof name, "v.%d", j);
      check_t(c->mode, d, name, golden_get(g, "._forward_flow.out.out", j), 1e-2, TRUE);
    }
    check_t(c->mode, d, "final_latent", golden_get(g, ".generate_image.out.out.0", 0), 1e-2, TRUE);
    const StTensor *img = golden_get(g, ".decode_image.out.image_uint8", 0);
    const StTensor *ours = st_find(d, "image");
    g_assert_nonnull(ours);
    g_assert_cmpint(st_numel(ours), ==, st_numel(img));
    int maxd = 0;
    double sum = 0;
    for (int64_t x = 0; x < st_numel(img); x++) {
      int dd = abs((int)((const guint8 *)ours->data)[x] - (int)((const guint8 *)img->data)[x]);
      maxd = MAX(maxd, dd);
      sum += dd;
    }
    double mean = sum / st_numel(img);
    g_test_message("%-12s %-20s max|d| %d  mean|d| %.3f (tol 6 / 1.0)", c->mode, "image", maxd, mean);
    if (maxd > 6 || mean > 1.0) {
      if (!traj_report()) g_error("%s: final image max %d mean %.3f", c->mode, maxd, mean);
      traj_over = TRUE;
    }
  }
  st_close(d);
  golden_close(g);
  g_ptr_array_free(argv, TRUE);
  g_unlink(dump);
  g_unlink(noise);
  g_unlink(out);
  g_rmdir(tmp);
  g_free(tmp); g_free(dump); g_free(noise); g_free(out); g_free(input); g_free(prompt);
  if (traj_over)
    g_test_incomplete("denoising trajectory beyond tolerance on this backend (reported, "
                      "BAGEL_GOLDEN_TRAJECTORY=report)");
  traj_over = FALSE;
}

int main(int argc, char **argv) {
  backend = golden_take_backend(&argc, argv);
  g_test_init(&argc, &argv, NULL);
  if (argc != 4) {
    g_printerr("usage: %s BAGEL_EXE TINY_CKPT_DIR TESTS_DATA_DIR [--backend cpu|cuda]\n", argv[0]);
    return 2;
  }
  bagel_exe = argv[1];
  ckpt_dir = argv[2];
  data_dir = argv[3];
  for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
    char *p1 = g_strdup_printf("/cli-golden/%s/seed", cases[i].mode);
    char *p2 = g_strdup_printf("/cli-golden/%s/noise", cases[i].mode);
    g_test_add_data_func(p1, &cases[i], run_case);
    if (cases[i].image_out) g_test_add_data_func(p2, &cases[i], run_case);  /* has noise */
    g_free(p1);
    g_free(p2);
  }
  return g_test_run();
}
