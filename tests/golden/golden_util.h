/* tests/golden/golden_util.h — reading the official implementation's golden tensors
 * (tests/data/golden/tiny, extracted by tools/golden-extract) and comparing ours to them
 * with the tolerances of ../shared/golden/README.md, printing the error figures. */
#ifndef BAGEL_GOLDEN_UTIL_H
#define BAGEL_GOLDEN_UTIL_H

#include <glib.h>

#include "safetensors.h"

typedef struct {
  StFile *st;
  char *mode;
} Golden;

/* Open tests/data/golden/tiny/MODE.safetensors under data_dir (g_assert on failure). */
Golden *golden_open(const char *data_dir, const char *mode);
void golden_close(Golden *g);
/* The i-th tensor (0-based, in key order) whose key ends with `suffix`, e.g.
 * ".vae.reg.moments"; NULL if none. */
const StTensor *golden_find(const Golden *g, const char *suffix, int index);
/* Same, g_assert that it exists. */
const StTensor *golden_get(const Golden *g, const char *suffix, int index);
/* Number of tensors whose key ends with suffix. */
int golden_count(const Golden *g, const char *suffix);

/* Element i of a float golden tensor (F32/BF16/F16) as double. */
double golden_value(const StTensor *t, int64_t i);
/* Golden tensor as a newly allocated float array (g_free). */
float *golden_floats(const StTensor *t);

typedef struct {
  double rel_l2;      /* ‖ours − ref‖ / ‖ref‖ */
  double max_abs;
  double mean_abs;
  int64_t n;
} GoldenDiff;

GoldenDiff golden_compare(const float *ours, const StTensor *ref);
GoldenDiff golden_compare_floats(const float *ours, const float *ref, int64_t n);
/* Compare and assert rel_l2 <= tol; prints the figures under `what`. */
void golden_assert_close(const char *what, const float *ours, const StTensor *ref, double tol);
/* uint8 images: max |diff| <= max_tol and mean <= mean_tol. */
void golden_assert_u8(const char *what, const guint8 *ours, const StTensor *ref, int max_tol,
                      double mean_tol);
/* the shape of ref equals (n, dims...) after squeezing leading 1s */
void golden_assert_shape(const StTensor *ref, int nd, const int64_t *shape);

/* The backend a golden test runs on: "cpu" unless argv holds "--backend NAME" (taken out
 * of argv; call before g_test_init).  The tests are registered once per backend
 * (tests/golden/meson.build: --backend cuda on the CUDA emulation build). */
const char *golden_take_backend(int *argc, char **argv);
/* A new backend of that name (g_error when it cannot be made). */
struct BkBackend *golden_backend_new(const char *name);

#endif
