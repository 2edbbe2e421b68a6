/* engine/dump.h — named intermediate tensors (--dump FILE.safetensors).
 *
 * Every pipeline can record named intermediates (names listed in
 * ../shared/golden/README.md: vit_out, x_t.<j>, v_cond.<j>, logits.<k>, …); this is how
 * parity with the official implementation is checked.  A Dump holds host copies in the
 * tensor's own dtype, in insertion order; dump_write saves them as one safetensors file.
 * A NULL Dump* is valid everywhere and records nothing. */
#ifndef BAGEL_DUMP_H
#define BAGEL_DUMP_H

#include <glib.h>

#include "ops.h"
#include "safetensors.h"

typedef struct {
  char *name;
  StDType dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  void *data;
  size_t nbytes;
} DumpEntry;

typedef struct Dump Dump;

Dump *dump_new(void);
void dump_free(Dump *d);
/* Copy a backend tensor (downloaded) under `name`; an existing name is replaced. */
void dump_tensor(Dump *d, BkBackend *be, const char *name, const BkTensor *t);
/* Copy host data. */
void dump_host(Dump *d, const char *name, StDType dt, int nd, const int64_t *shape,
               const void *data);
void dump_printf_name(char *buf, size_t n, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
const DumpEntry *dump_find(const Dump *d, const char *name);
guint dump_count(const Dump *d);
const DumpEntry *dump_get(const Dump *d, guint i);
gboolean dump_write(const Dump *d, const char *path, GError **error);

#endif
