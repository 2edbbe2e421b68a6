/* kernels/ops.c — backend-independent helpers of the op interface (kernels/ops.h). */
#include "ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *bk_dtype_name(BkDType dt) {
  static const char *names[BK_NDTYPES] = {"F32", "BF16", "F16", "I32", "I64", "U8"};
  return (unsigned)dt < BK_NDTYPES ? names[dt] : "?";
}

BkTensor bk_tensor(void *data, BkDType dt, int nd, const int64_t *ne) {
  BkTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.dt = dt;
  t.nd = nd;
  for (int i = 0; i < nd && i < BK_MAX_DIMS; i++) t.ne[i] = ne[i];
  return t;
}

BkTensor bk_tensor_2d(void *data, BkDType dt, int64_t rows, int64_t cols) {
  int64_t ne[2] = {rows, cols};
  return bk_tensor(data, dt, 2, ne);
}

BkTensor bk_rows_view(BkTensor t, int64_t r0, int64_t n) {
  int64_t inner = t.ne[0] ? bk_numel(&t) / t.ne[0] : 0;
  BkTensor v = t;
  v.ne[0] = n;
  if (t.data) v.data = (char *)t.data + (size_t)(r0 * inner) * bk_dtype_size(t.dt);
  return v;
}

BkTensor bk_reshape(BkTensor t, int nd, const int64_t *ne) {
  BkTensor v = bk_tensor(t.data, t.dt, nd, ne);
  return v;
}

bool bk_same_shape(const BkTensor *a, const BkTensor *b) {
  if (a->nd != b->nd) return false;
  for (int i = 0; i < a->nd; i++)
    if (a->ne[i] != b->ne[i]) return false;
  return true;
}

bool bk_fail(BkBackend *be, const char *fmt, ...) {
  if (be->failed) return false;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(be->error, sizeof be->error, fmt, ap);
  va_end(ap);
  be->failed = true;
  return false;
}

void bk_clear_error(BkBackend *be) {
  be->failed = false;
  be->error[0] = '\0';
}

void bk_backend_free(BkBackend *be) {
  if (be) be->ops->destroy(be);
}
