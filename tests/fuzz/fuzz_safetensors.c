/* tests/fuzz/fuzz_safetensors.c — the safetensors header parser on arbitrary bytes:
 * no crash, no leak, no read outside the input, whatever the header claims. */
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a private copy, so reads past `size` are caught by ASan */
  uint8_t *copy = g_memdup2(data, size ? size : 1);
  GError *err = NULL;
  StFile *f = st_parse(copy, size, "fuzz", &err);
  if (f) {
    /* touch every tensor's first and last byte: the ranges must be inside the input */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < st_count(f); i++) {
      const StTensor *t = st_get(f, i);
      if (t->nbytes) sink ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->nbytes - 1];
      char buf[128];
      st_describe(t, buf, sizeof buf);
      g_assert(st_find(f, t->name) == t);
    }
    (void)sink;
    st_close(f);
  } else {
    g_assert(err != NULL && err->message[0]);
    g_error_free(err);
  }
  g_free(copy);
  return 0;
}
