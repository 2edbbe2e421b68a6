/* engine/resources.c — lookup of the resources/ files embedded with GResource (see
 * resources.h).  The bundle is compiled with --manual-register and registered (GLib's
 * process-wide resource table, read-only data under /org/gimp-bagel/) the first time it is
 * needed, rather than by a constructor at load time. */
#include "resources.h"

#include "bagel-resources.h"
#include "bagel.h"

const char *bagel_resource_text(const char *name, gsize *len, GError **error) {
  g_return_val_if_fail(name != NULL, NULL);
  static gsize registered;
  if (g_once_init_enter(&registered)) {
    bagel_res_register_resource();
    g_once_init_leave(&registered, 1);
  }
  char *path = g_strconcat("/org/gimp-bagel/", name, NULL);
  GError *err = NULL;
  GBytes *bytes = g_resource_lookup_data(bagel_res_get_resource(), path, G_RESOURCE_LOOKUP_FLAGS_NONE, &err);
  g_free(path);
  if (!bytes) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "no embedded resource \"%s\": %s", name,
                err->message);
    g_error_free(err);
    return NULL;
  }
  /* uncompressed resource data lives in the library's read-only data and is NUL-terminated */
  gsize n;
  const char *data = g_bytes_get_data(bytes, &n);
  g_bytes_unref(bytes);
  if (len) *len = n;
  return data;
}

static const char *prompt(const char *name) {
  const char *s = bagel_resource_text(name, NULL, NULL);
  g_return_val_if_fail(s != NULL, ""); /* only if the build is broken */
  return s;
}

const char *bagel_prompt_think_gen(void) {
  return prompt("prompts/think_gen.txt");
}

const char *bagel_prompt_think_und(void) {
  return prompt("prompts/think_und.txt");
}
