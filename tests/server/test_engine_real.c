/* tests/server/test_engine_real.c — bagel-engine on libbagel and the tiny checkpoint
 * answers a request exactly as the bagel CLI does: the same describe text, the same
 * generated pixels, the same edited pixels for the same seed and settings.  The engine is
 * started through the client library, as the plug-in starts it; the CLI is run on the
 * same pixels written to a PNG.
 *
 * /engine-real/describe and /engine-real/generate (64×64) run in the golden suite; the
 * edit runs at 512×512 (the smallest size the VAE transform (1024, 512, 16) leaves as it
 * is, so that no resampling hides a difference) and takes about a minute on two cores:
 * suite slow.
 */
#include <json-glib/json-glib.h>
#include <string.h>

#include "fixture.h"
#include "imageio.h"

static const char *cli_path, *ckpt;

static void real_setup(Fx *fx, gconstpointer data) {
  fx_setup(fx, data);
  g_setenv("BAGEL_MODEL", ckpt, TRUE);
  g_setenv("BAGEL_THREADS", "2", TRUE);  /* the CLI gets --threads 2 too */
}

static guint8 *pattern(int w, int h) {
  guint8 *px = g_malloc((gsize)w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) px[((gsize)y * w + x) * 3 + c] = fixture_pixel(x, y, c, 5);
  return px;
}

/* Run the CLI; returns its stdout (JSON with --json). */
static char *run_cli(const char *const *args) {
  GPtrArray *argv = g_ptr_array_new();
  g_ptr_array_add(argv, (gpointer)cli_path);
  for (const char *const *a = args; *a; a++) g_ptr_array_add(argv, (gpointer)*a);
  g_ptr_array_add(argv, NULL);
  char *out = NULL, *err = NULL;
  int status = 0;
  GError *e = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                             &err, &status, &e));
  g_assert_no_error(e);
  if (!g_spawn_check_wait_status(status, NULL)) g_error("bagel %s failed: %s", args[0], err);
  g_ptr_array_free(argv, TRUE);
  g_free(err);
  return out;
}

static char *json_string(const char *json, const char *key) {
  JsonParser *p = json_parser_new();
  g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  char *v = g_strdup(json_object_get_string_member(o, key));
  g_object_unref(p);
  return v;
}

static BagelMsg *run_engine(Fx *fx, BagelMsg *job) {
  BagelClient *c = connect_engine(fx);
  GError *e = NULL;
  BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  bagel_client_free(c);
  return r;
}

static void assert_same_image(const BagelMsg *r, const char *png) {
  ImgBuffer img = {0};
  GError *e = NULL;
  g_assert_true(img_load_file(png, &img, &e));
  g_assert_cmpint(img.channels, ==, 3);
  g_assert_cmpint(r->image.width, ==, img.width);
  g_assert_cmpint(r->image.height, ==, img.height);
  gsize row = (gsize)img.width * 3, differ = 0;
  for (int y = 0; y < img.height; y++)
    differ += memcmp(r->image.pixels + row * y, img.pixels + (gsize)img.stride * y, row) != 0;
  if (differ) g_error("%zu of %d rows differ between bagel-engine and the CLI", differ, img.height);
  img_buffer_clear(&img);
}

static void test_describe(Fx *fx, gconstpointer data) {
  int w = 100, h = 75;
  guint8 *px = pattern(w, h);
  char *png = g_build_filename(fx->runtime, "in.png", NULL);
  g_assert_true(img_save_png(png, px, w, h, 3, 0, NULL));
  BagelMsg *job = bagel_msg_new(BAGEL_MSG_JOB);
  job->mode = BAGEL_JOB_DESCRIBE;
  job->prompt = g_strdup("What is in this image?");
  job->params.set = BAGEL_P_MAX_TOKENS | BAGEL_P_SEED;
  job->params.max_tokens = 12;
  job->params.seed = 1;
  bagel_msg_set_image(job, w, h, 3, px, w * 3, NULL);
  BagelMsg *r = run_engine(fx, job);
  const char *args[] = {"describe", "-m", ckpt, "--backend", "cpu", "--threads", "2", "-i", png,
                        "-p", "What is in this image?", "--max-tokens", "12", "-s", "1", "-q",
                        "--json", NULL};
  char *out = run_cli(args);
  char *text = json_string(out, "text");
  g_assert_nonnull(r->text);
  g_assert_cmpstr(r->text, ==, text);
  g_test_message("describe: %s", text);
  g_free(text);
  g_free(out);
  bagel_msg_free(r);
  bagel_msg_free(job);
  g_free(png);
  g_free(px);
}

static void test_generate(Fx *fx, gconstpointer data) {
  BagelMsg *job = bagel_msg_new(BAGEL_MSG_JOB);
  job->mode = BAGEL_JOB_GENERATE;
  job->prompt = g_strdup("A red cube on a blue table.");
  job->params.set = BAGEL_P_WIDTH | BAGEL_P_HEIGHT | BAGEL_P_SEED | BAGEL_P_STEPS;
  job->params.width = 64;
  job->params.height = 48;
  job->params.seed = 3;
  job->params.steps = 3;
  BagelMsg *r = run_engine(fx, job);
  g_assert_cmpint(r->seed, ==, 3);
  char *png = g_build_filename(fx->runtime, "gen.png", NULL);
  const char *args[] = {"generate", "-m", ckpt, "--backend", "cpu", "--threads", "2",
                        "-p", "A red cube on a blue table.", "-W", "64", "-H", "48",
                        "--steps", "3", "-s", "3", "-q", "-o", png, NULL};
  g_free(run_cli(args));
  assert_same_image(r, png);
  bagel_msg_free(r);
  bagel_msg_free(job);
  g_free(png);
}

static void test_edit(Fx *fx, gconstpointer data) {
  int w = 512, h = 512;
  guint8 *px = pattern(w, h);
  char *in = g_build_filename(fx->runtime, "in.png", NULL);
  char *out_png = g_build_filename(fx->runtime, "out.png", NULL);
  g_assert_true(img_save_png(in, px, w, h, 3, 0, NULL));
  BagelMsg *job = bagel_msg_new(BAGEL_MSG_JOB);
  job->mode = BAGEL_JOB_EDIT;
  job->prompt = g_strdup("Make the stripes green.");
  job->params.set = BAGEL_P_SEED | BAGEL_P_STEPS;
  job->params.seed = 7;
  job->params.steps = 2;
  bagel_msg_set_image(job, w, h, 3, px, w * 3, NULL);
  BagelMsg *r = run_engine(fx, job);
  const char *args[] = {"edit", "-m", ckpt, "--backend", "cpu", "--threads", "2", "-i", in,
                        "-p", "Make the stripes green.", "--steps", "2", "-s", "7", "-q",
                        "-o", out_png, NULL};
  g_free(run_cli(args));
  assert_same_image(r, out_png);
  bagel_msg_free(r);
  bagel_msg_free(job);
  g_free(in);
  g_free(out_png);
  g_free(px);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  engine_path = g_getenv("BAGEL_TEST_ENGINE");
  cli_path = g_getenv("BAGEL_TEST_CLI");
  ckpt = g_getenv("BAGEL_TEST_CKPT");
  if (!engine_path || !cli_path || !ckpt) {
    g_printerr("BAGEL_TEST_ENGINE, BAGEL_TEST_CLI and BAGEL_TEST_CKPT must be set\n");
    return 1;
  }
  g_test_add("/engine-real/describe", Fx, NULL, real_setup, test_describe, fx_teardown);
  g_test_add("/engine-real/generate", Fx, NULL, real_setup, test_generate, fx_teardown);
  g_test_add("/engine-real/edit", Fx, NULL, real_setup, test_edit, fx_teardown);
  return g_test_run();
}
