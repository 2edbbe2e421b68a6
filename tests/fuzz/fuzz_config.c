/* tests/fuzz/fuzz_config.c — the llm_config.json / vit_config.json readers on arbitrary
 * bytes: a config is accepted only when every derived invariant holds (positive sizes,
 * heads dividing widths, …), and nothing crashes or leaks otherwise. */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  JsonParser *p = json_parser_new();
  if (json_parser_load_from_data(p, (const char *)data, (gssize)size, NULL)) {
    JsonNode *root = json_parser_get_root(p);
    if (root && JSON_NODE_HOLDS_OBJECT(root)) {
      LlmConfig l;
      VitConfig v;
      GError *err = NULL;
      if (llm_config_from_json(json_node_get_object(root), "fuzz", &l, &err)) {
        g_assert(l.hidden > 0 && l.heads > 0 && l.kv_heads > 0 && l.hidden % l.heads == 0 &&
                 l.heads % l.kv_heads == 0 && l.head_dim * l.heads == l.hidden);
      } else {
        g_assert(err && err->message[0]);
        g_clear_error(&err);
      }
      if (vit_config_from_json(json_node_get_object(root), "fuzz", &v, &err)) {
        g_assert(v.hidden % v.heads == 0 && v.layers == v.layers_config - 1 && v.layers >= 1);
      } else {
        g_assert(err && err->message[0]);
        g_clear_error(&err);
      }
    }
  }
  g_object_unref(p);
  return 0;
}
