/* plugin/presets.c — load and check the preset files (see presets.h). */
#include "presets.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "bagel-config.h"
#include "bagel.h"

#define MAX_PRESETS 64

char *bagel_presets_dir(void) {
  const char *env = g_getenv("BAGEL_RESOURCES");
  if (env && *env) return g_build_filename(env, "presets", NULL);
  char *installed = g_build_filename(BAGEL_INSTALLED_RESOURCES_DIR, "presets", NULL);
  if (g_file_test(installed, G_FILE_TEST_IS_DIR)) return installed;
  g_free(installed);
  return g_build_filename(BAGEL_RESOURCES_DIR, "presets", NULL);
}

static void preset_free(gpointer p) {
  BagelPreset *preset = p;
  g_free(preset->id);
  g_free(preset->name);
  g_free(preset->instruction);
  g_free(preset);
}

void bagel_presets_free(BagelPresetList *list) {
  if (!list) return;
  g_free(list->kind);
  g_free(list->path);
  if (list->presets) g_ptr_array_unref(list->presets);
  g_free(list);
}

static gboolean valid_id(const char *s) {
  if (!*s) return FALSE;
  for (; *s; s++)
    if (!g_ascii_islower(*s) && !g_ascii_isdigit(*s) && *s != '-') return FALSE;
  return TRUE;
}

/* A string member, required and not empty. */
static const char *member_string(JsonObject *o, const char *key) {
  JsonNode *n = json_object_has_member(o, key) ? json_object_get_member(o, key) : NULL;
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
    return NULL;
  const char *s = json_node_get_string(n);
  return *s ? s : NULL;
}

static gboolean bad(GError **error, const char *path, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static gboolean bad(GError **error, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: %s", path, s);
  g_free(s);
  return FALSE;
}

static gboolean parse(JsonNode *root, const char *path, const char *kind, BagelPresetList *list,
                      GError **error) {
  if (!JSON_NODE_HOLDS_OBJECT(root)) return bad(error, path, "not a JSON object");
  JsonObject *o = json_node_get_object(root);
  const char *schema = member_string(o, "schema");
  if (!schema || strcmp(schema, "gimp-bagel-presets/1") != 0)
    return bad(error, path, "\"schema\" must be \"gimp-bagel-presets/1\"");
  const char *k = member_string(o, "kind");
  if (!k || strcmp(k, kind) != 0)
    return bad(error, path, "\"kind\" is \"%s\", expected \"%s\"", k ? k : "(none)", kind);
  JsonNode *arr = json_object_has_member(o, "presets") ? json_object_get_member(o, "presets") : NULL;
  if (!arr || !JSON_NODE_HOLDS_ARRAY(arr)) return bad(error, path, "\"presets\" must be an array");
  JsonArray *a = json_node_get_array(arr);
  guint n = json_array_get_length(a);
  if (n == 0 || n > MAX_PRESETS)
    return bad(error, path, "%u presets (expected 1 .. %d)", n, MAX_PRESETS);
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (!JSON_NODE_HOLDS_OBJECT(e)) return bad(error, path, "preset %u is not an object", i);
    JsonObject *p = json_node_get_object(e);
    const char *id = member_string(p, "id"), *name = member_string(p, "name"),
               *instruction = member_string(p, "instruction");
    if (!id || !valid_id(id))
      return bad(error, path, "preset %u: \"id\" must be a non-empty [a-z0-9-]+ string", i);
    if (!name || !instruction)
      return bad(error, path, "preset \"%s\": \"name\" and \"instruction\" must be non-empty strings",
                 id);
    if (bagel_presets_find(list, id)) return bad(error, path, "preset \"%s\" appears twice", id);
    BagelPreset *preset = g_new0(BagelPreset, 1);
    preset->id = g_strdup(id);
    preset->name = g_strdup(name);
    preset->instruction = g_strdup(instruction);
    g_ptr_array_add(list->presets, preset);
  }
  return TRUE;
}

BagelPresetList *bagel_presets_load_file(const char *path, const char *kind, GError **error) {
  JsonParser *parser = json_parser_new_immutable();
  GError *e = NULL;
  if (!json_parser_load_from_file(parser, path, &e)) {
    g_set_error(error, BAGEL_ERROR,
                e->domain == G_FILE_ERROR ? BAGEL_ERROR_IO : BAGEL_ERROR_FORMAT,
                "cannot read the %s presets %s: %s", kind, path, e->message);
    g_error_free(e);
    g_object_unref(parser);
    return NULL;
  }
  BagelPresetList *list = g_new0(BagelPresetList, 1);
  list->kind = g_strdup(kind);
  list->path = g_strdup(path);
  list->presets = g_ptr_array_new_with_free_func(preset_free);
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !parse(root, path, kind, list, error)) {
    if (!root) bad(error, path, "empty file");
    bagel_presets_free(list);
    list = NULL;
  }
  g_object_unref(parser);
  return list;
}

BagelPresetList *bagel_presets_load(const char *kind, GError **error) {
  char *dir = bagel_presets_dir();
  char *file = g_strdup_printf("%s.json", kind);
  char *path = g_build_filename(dir, file, NULL);
  BagelPresetList *list = bagel_presets_load_file(path, kind, error);
  g_free(path);
  g_free(file);
  g_free(dir);
  return list;
}

const BagelPreset *bagel_presets_find(const BagelPresetList *list, const char *id) {
  for (guint i = 0; id && i < list->presets->len; i++) {
    const BagelPreset *p = g_ptr_array_index(list->presets, i);
    if (strcmp(p->id, id) == 0) return p;
  }
  return NULL;
}

char *bagel_preset_prompt(const BagelPreset *preset, const char *extra) {
  char *trimmed = g_strstrip(g_strdup(extra ? extra : ""));
  char *prompt = *trimmed ? g_strdup_printf("%s %s", preset->instruction, trimmed)
                          : g_strdup(preset->instruction);
  g_free(trimmed);
  return prompt;
}
