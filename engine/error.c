/* engine/error.c — the BAGEL_ERROR domain and small enum <-> string helpers of bagel.h. */
#include "bagel.h"

#include <string.h>

G_DEFINE_QUARK(bagel-error-quark, bagel_error)

static const char *renorm_names[] = {"global", "channel", "text_channel"};

gboolean bagel_renorm_from_string(const char *s, BagelRenormType *out, GError **error) {
  for (unsigned i = 0; i < G_N_ELEMENTS(renorm_names); i++) {
    if (s && strcmp(s, renorm_names[i]) == 0) {
      *out = (BagelRenormType)i;
      return TRUE;
    }
  }
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
              "unknown renorm type \"%s\" (expected global, channel or text_channel)",
              s ? s : "(null)");
  return FALSE;
}

const char *bagel_renorm_to_string(BagelRenormType t) {
  return (unsigned)t < G_N_ELEMENTS(renorm_names) ? renorm_names[t] : "?";
}
