/* tests/gimp/test_plugin_core.c — the parts of the plug-in that need no GIMP: the size
 * rule (against values worked out from the official Python code), the shipped presets
 * and their validation, settings → job / layer name / parasite JSON. */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <unistd.h>

#include "bagel-config.h"

#include "presets.h"
#include "settings.h"
#include "sizes.h"

static void fit(int w, int h, int ew, int eh) {
  int ow, oh;
  bagel_model_size(w, h, &ow, &oh);
  if (ow != ew || oh != eh) g_error("model size of %dx%d: %dx%d, expected %dx%d", w, h, ow, oh, ew, eh);
}

static void test_sizes(void) {
  /* golden README: ImageTransform(128, 64, 16) of 100×75 is 96×80 */
  int ow, oh;
  bagel_fit_size(100, 75, 128, 64, 16, BAGEL_VAE_MAX_PIXELS, &ow, &oh);
  g_assert_cmpint(ow, ==, 96);
  g_assert_cmpint(oh, ==, 80);
  /* the real VAE transform (1024, 512, 16): fixed points, upscaling to a 512 short
   * side, downscaling to a 1024 long side, the pixel budget as a plain ratio, and
   * Python's round-half-to-even (4200×600: 3528/16 = 220.5 → 220, 504/16 = 31.5 → 32) */
  fit(512, 512, 512, 512);
  fit(1024, 768, 1024, 768);
  fit(64, 48, 688, 512);
  fit(1500, 1100, 1024, 752);
  fit(4200, 600, 1024, 144);
  fit(16384, 16384, 1024, 1024);
  fit(1, 16384, 16, 1024);
  /* text-to-image: long side 1024, multiples of 16 */
  bagel_generate_size(200, 120, &ow, &oh);
  g_assert_cmpint(ow, ==, 1024);
  g_assert_cmpint(oh, ==, 608);
  bagel_generate_size(64, 32, &ow, &oh);
  g_assert_cmpint(ow, ==, 1024);
  g_assert_cmpint(oh, ==, 512);
  bagel_generate_size(3, 5000, &ow, &oh);
  g_assert_cmpint(ow, ==, 16);
  g_assert_cmpint(oh, ==, 1024);
}

static void test_shipped_presets(void) {
  static const char *const style[] = {"watercolor", "oil-painting", "pixel-art", "anime",
                                      "pencil-sketch", "photorealistic", NULL};
  static const char *const multiview[] = {"front", "back", "left", "right", "top", "rotate-90", NULL};
  g_setenv("BAGEL_RESOURCES", BAGEL_RESOURCES_DIR, TRUE);
  GError *e = NULL;
  BagelPresetList *s = bagel_presets_load("style", &e);
  g_assert_no_error(e);
  for (const char *const *id = style; *id; id++) g_assert_nonnull(bagel_presets_find(s, *id));
  BagelPresetList *m = bagel_presets_load("multiview", &e);
  g_assert_no_error(e);
  for (const char *const *id = multiview; *id; id++) g_assert_nonnull(bagel_presets_find(m, *id));
  const BagelPreset *w = bagel_presets_find(s, "watercolor");
  g_assert_cmpstr(w->name, ==, "Watercolor");
  char *p = bagel_preset_prompt(w, "  with a moon \n");
  g_assert_true(g_str_has_prefix(p, w->instruction));
  g_assert_true(g_str_has_suffix(p, ". with a moon"));
  g_free(p);
  p = bagel_preset_prompt(w, "   ");
  g_assert_cmpstr(p, ==, w->instruction);
  g_free(p);
  bagel_presets_free(s);
  bagel_presets_free(m);
}

static void bad_presets(const char *json, const char *needle) {
  char *path = NULL;
  int fd = g_file_open_tmp("presets-XXXXXX.json", &path, NULL);
  g_assert_cmpint(fd, >=, 0);
  close(fd);
  g_assert_true(g_file_set_contents(path, json, -1, NULL));
  GError *e = NULL;
  BagelPresetList *l = bagel_presets_load_file(path, "style", &e);
  g_assert_null(l);
  g_assert_nonnull(e);
  if (!strstr(e->message, needle)) g_error("\"%s\" lacks \"%s\"", e->message, needle);
  g_error_free(e);
  g_unlink(path);
  g_free(path);
}

static void test_bad_presets(void) {
  bad_presets("[]", "not a JSON object");
  bad_presets("{\"schema\":\"x\"}", "schema");
  bad_presets("{\"schema\":\"gimp-bagel-presets/1\",\"kind\":\"multiview\",\"presets\":[]}", "kind");
  bad_presets("{\"schema\":\"gimp-bagel-presets/1\",\"kind\":\"style\",\"presets\":[]}", "0 presets");
  bad_presets("{\"schema\":\"gimp-bagel-presets/1\",\"kind\":\"style\",\"presets\":"
              "[{\"id\":\"Bad Id\",\"name\":\"n\",\"instruction\":\"i\"}]}", "[a-z0-9-]+");
  bad_presets("{\"schema\":\"gimp-bagel-presets/1\",\"kind\":\"style\",\"presets\":"
              "[{\"id\":\"a\",\"name\":\"\",\"instruction\":\"i\"}]}", "non-empty");
  bad_presets("{\"schema\":\"gimp-bagel-presets/1\",\"kind\":\"style\",\"presets\":"
              "[{\"id\":\"a\",\"name\":\"n\",\"instruction\":\"i\"},"
              "{\"id\":\"a\",\"name\":\"n\",\"instruction\":\"i\"}]}", "appears twice");
  bad_presets("{\"schema\":", "cannot read");
  GError *e = NULL;
  g_assert_null(bagel_presets_load_file("/nonexistent/style.json", "style", &e));
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_IO);
  g_error_free(e);
}

static BagelSettings edit_settings(void) {
  BagelSettings s = {0};
  s.kind = BAGEL_PROC_EDIT;
  s.text = g_strdup("  Make the sky purple\n");
  s.seed = -1;
  s.steps = 30;
  s.cfg_text = 4.5;
  s.cfg_image = 1.5;
  s.cfg_interval_start = 0.25;
  s.timestep_shift = 2.0;
  s.renorm = g_strdup("text-channel");
  s.renorm_min = 0.1;
  s.use_selection = TRUE;
  return s;
}

static void test_settings_job(void) {
  BagelSettings s = edit_settings();
  GError *e = NULL;
  g_assert_true(bagel_settings_validate(&s, &e));
  BagelMsg *job = bagel_settings_job(&s);
  g_assert_cmpint(job->mode, ==, BAGEL_JOB_EDIT);
  g_assert_cmpstr(job->prompt, ==, "Make the sky purple");
  g_assert_cmpint(job->params.seed, ==, -1);
  g_assert_cmpint(job->params.steps, ==, 30);
  g_assert_true(job->params.cfg_text == 4.5f && job->params.cfg_image == 1.5f);
  g_assert_true(job->params.cfg_interval[0] == 0.25f && job->params.cfg_interval[1] == 1.0f);
  g_assert_cmpint(job->params.renorm, ==, BAGEL_RENORM_TEXT_CHANNEL);
  g_assert_false(job->params.set & (BAGEL_P_WIDTH | BAGEL_P_MAX_TOKENS));
  bagel_msg_free(job);

  g_free(s.renorm);
  s.renorm = g_strdup("weird");
  g_assert_false(bagel_settings_validate(&s, &e));
  g_assert_nonnull(strstr(e->message, "renorm-type"));
  g_clear_error(&e);
  g_free(s.text);
  s.text = g_strdup(" \n ");
  g_assert_false(bagel_settings_validate(&s, &e));
  g_assert_nonnull(strstr(e->message, "instruction is empty"));
  g_clear_error(&e);
  bagel_settings_clear(&s);

  BagelSettings g = {0};
  g.kind = BAGEL_PROC_GENERATE;
  g.text = g_strdup("a cat");
  g.renorm = g_strdup("global");
  g.steps = 50;
  g.width = 200, g.height = 120, g.gen_width = 1024, g.gen_height = 608;
  job = bagel_settings_job(&g);
  g_assert_cmpint(job->mode, ==, BAGEL_JOB_GENERATE);
  g_assert_true(job->params.set & BAGEL_P_WIDTH);
  g_assert_cmpint(job->params.width, ==, 1024);
  g_assert_cmpint(job->params.height, ==, 608);
  g_assert_false(job->params.set & BAGEL_P_CFG_IMAGE);
  bagel_msg_free(job);
  bagel_settings_clear(&g);

  BagelSettings d = {0};
  d.kind = BAGEL_PROC_DESCRIBE;
  d.text = g_strdup("What?");
  d.max_tokens = 99;
  d.think = TRUE;
  g_assert_true(bagel_settings_validate(&d, NULL));
  job = bagel_settings_job(&d);
  g_assert_cmpint(job->mode, ==, BAGEL_JOB_DESCRIBE);
  g_assert_cmphex(job->params.set, ==, BAGEL_P_THINK | BAGEL_P_SEED | BAGEL_P_MAX_TOKENS);
  g_assert_cmpint(job->params.max_tokens, ==, 99);
  /* the job the plug-in builds is one the engine's parser accepts */
  guint8 px[3] = {1, 2, 3};
  bagel_msg_set_image(job, 1, 1, 3, px, 3, NULL);
  job->id = 1;  /* the client numbers jobs when it sends them */
  GBytes *b = bagel_proto_encode(job);
  BagelMsg *back = NULL;
  gsize used;
  g_assert_cmpint(bagel_proto_decode(g_bytes_get_data(b, NULL), g_bytes_get_size(b), &used, &back,
                                     NULL), ==, BAGEL_PROTO_MESSAGE);
  bagel_msg_free(back);
  g_bytes_unref(b);
  bagel_msg_free(job);
  bagel_settings_clear(&d);
}

static void test_layer_name(void) {
  BagelSettings s = edit_settings();
  char *n = bagel_settings_layer_name(&s, 42);
  g_assert_cmpstr(n, ==, "BAGEL: Make the sky purple (seed 42)");
  g_free(n);
  g_free(s.text);
  s.text = g_strdup("line one\nline two äöü — and a very long tail that goes on and on and on beyond sixty");
  n = bagel_settings_layer_name(&s, 7);
  g_assert_null(strchr(n, '\n'));
  g_assert_true(g_str_has_suffix(n, "… (seed 7)"));
  char *inner = g_strndup(n + 7, strlen(n) - 7 - strlen(" (seed 7)"));
  g_assert_cmpint(g_utf8_strlen(inner, -1), ==, BAGEL_LAYER_NAME_MAX_CHARS);
  g_free(inner);
  g_free(n);
  bagel_settings_clear(&s);

  BagelSettings st = {0};
  st.kind = BAGEL_PROC_STYLE;
  st.preset = g_strdup("anime");
  st.preset_name = g_strdup("Anime");
  st.preset_instruction = g_strdup("Redraw it as anime.");
  st.text = g_strdup("");
  st.renorm = g_strdup("global");
  n = bagel_settings_layer_name(&st, 1);
  g_assert_cmpstr(n, ==, "BAGEL: Anime (seed 1)");
  g_free(n);
  g_free(st.text);
  st.text = g_strdup("at night");
  n = bagel_settings_layer_name(&st, 1);
  g_assert_cmpstr(n, ==, "BAGEL: Anime, at night (seed 1)");
  g_free(n);
  char *prompt = bagel_settings_prompt(&st);
  g_assert_cmpstr(prompt, ==, "Redraw it as anime. at night");
  g_free(prompt);
  bagel_settings_clear(&st);
}

static void test_parasite_json(void) {
  BagelSettings s = edit_settings();
  BagelOutcome o = {123456, 10, 20, 30, 40, 688, 512, "bagel-engine 0.1.0"};
  char *json = bagel_settings_to_json(&s, &o);
  JsonParser *p = json_parser_new();
  g_assert_true(json_parser_load_from_data(p, json, -1, NULL));
  JsonObject *obj = json_node_get_object(json_parser_get_root(p));
  g_assert_cmpstr(json_object_get_string_member(obj, "schema"), ==, "gimp-bagel-settings/1");
  g_assert_cmpstr(json_object_get_string_member(obj, "procedure"), ==, "plug-in-bagel-edit");
  g_assert_cmpint(json_object_get_int_member(obj, "seed"), ==, 123456);
  g_assert_cmpint(json_object_get_int_member(obj, "requested-seed"), ==, -1);
  g_assert_cmpstr(json_object_get_string_member(obj, "instruction"), ==, "  Make the sky purple\n");
  g_assert_cmpstr(json_object_get_string_member(obj, "prompt"), ==, "Make the sky purple");
  g_assert_true(json_object_get_double_member(obj, "cfg-interval-start") == 0.25);
  g_assert_cmpstr(json_object_get_string_member(obj, "renorm-type"), ==, "text-channel");
  g_assert_true(json_object_get_boolean_member(obj, "use-selection"));
  JsonObject *region = json_object_get_object_member(obj, "region");
  g_assert_cmpint(json_object_get_int_member(region, "width"), ==, 30);
  JsonArray *ms = json_object_get_array_member(obj, "model-size");
  g_assert_cmpint(json_array_get_int_element(ms, 0), ==, 688);
  g_assert_cmpstr(json_object_get_string_member(obj, "engine"), ==, "bagel-engine 0.1.0");
  g_object_unref(p);
  g_free(json);
  bagel_settings_clear(&s);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/plugin-core/sizes", test_sizes);
  g_test_add_func("/plugin-core/presets/shipped", test_shipped_presets);
  g_test_add_func("/plugin-core/presets/refused", test_bad_presets);
  g_test_add_func("/plugin-core/settings/job", test_settings_job);
  g_test_add_func("/plugin-core/settings/layer-name", test_layer_name);
  g_test_add_func("/plugin-core/settings/parasite", test_parasite_json);
  return g_test_run();
}
