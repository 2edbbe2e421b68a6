/* kernels/cuda/emu/cublas.cpp — the cuBLASLt and cuBLAS calls of the backend, on the CPU,
 * behind the toolkit's own cublasLt.h / cublas_v2.h declarations.
 *
 * Semantics as documented: column-major unless CUBLASLT_ORDER_ROW, op(A) is m×k and
 * op(B) k×n with m, n from D and k from A, element (r, c) at r + c·ld (column order) or
 * r·ld + c (row order), D = alpha·op(A)·op(B) + beta·C (+ bias[r] broadcast over the
 * columns), fp32 accumulation, one rounding to D's type, C not read when beta == 0,
 * strided batches.  Stricter than the library: a dimension that does not match, an ld
 * below the minimum, an operand (or bias, or workspace) whose extent leaves its cudaMalloc
 * allocation, a pointer that is not device memory are CUBLAS_STATUS_INVALID_VALUE; a
 * type, order, epilogue or attribute we do not emulate is CUBLAS_STATUS_NOT_SUPPORTED.
 * Every refusal says why on stderr and in cuemu_error_message().
 */
#include "emu_internal.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <string.h>

#include <new>
#include <vector>

struct cublasLtContext {
  unsigned magic;
};
struct cublasContext {
  unsigned magic;
  cudaStream_t stream;
  cublasMath_t math;
};

namespace cuemu {
namespace {

constexpr unsigned kHandleMagic = 0xb1a5u, kLayoutMagic = 0x1a70u, kDescMagic = 0xde5cu,
                   kPrefMagic = 0x9ef0u, kAlgoMagic = 0xa160u;

struct Layout {
  unsigned magic;
  cudaDataType type;
  int32_t order;
  int32_t batch;
  uint64_t rows, cols;
  int64_t ld, stride;
};
struct Desc {
  unsigned magic;
  cublasComputeType_t compute;
  cudaDataType scale;
  int32_t transa, transb, pointer_mode;
  uint32_t epilogue;
  int32_t bias_type;
  const void *bias;
  int64_t bias_stride;
};
struct Pref {
  unsigned magic;
  uint64_t max_workspace;
  uint32_t min_align[4];  // A, B, C, D: what the chosen algorithm may assume (default 256)
};
static_assert(sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "layout storage");
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t), "desc storage");
static_assert(sizeof(Pref) <= sizeof(cublasLtMatmulPreferenceOpaque_t), "pref storage");

Layout *layout_of(cublasLtMatrixLayout_t l) {
  Layout *p = reinterpret_cast<Layout *>(l);
  return p && p->magic == kLayoutMagic ? p : nullptr;
}
Desc *desc_of(cublasLtMatmulDesc_t d) {
  Desc *p = reinterpret_cast<Desc *>(d);
  return p && p->magic == kDescMagic ? p : nullptr;
}
Pref *pref_of(cublasLtMatmulPreference_t d) {
  Pref *p = reinterpret_cast<Pref *>(d);
  return p && p->magic == kPrefMagic ? p : nullptr;
}

cublasStatus_t refuse(cublasStatus_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cublasStatus_t refuse(cublasStatus_t st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
  return st;
}

size_t type_size(cudaDataType t) {
  switch (t) {
  case CUDA_R_32F: return 4;
  case CUDA_R_16BF: case CUDA_R_16F: return 2;
  default: return 0;
  }
}
const char *type_name(cudaDataType t) {
  switch (t) {
  case CUDA_R_32F: return "CUDA_R_32F";
  case CUDA_R_16BF: return "CUDA_R_16BF";
  case CUDA_R_16F: return "CUDA_R_16F";
  default: return "an unemulated type";
  }
}

float load(const void *p, cudaDataType t, int64_t i) {
  switch (t) {
  case CUDA_R_32F: return ((const float *)p)[i];
  case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
  default: return __half2float(((const __half *)p)[i]);
  }
}
void store(void *p, cudaDataType t, int64_t i, float v) {
  switch (t) {
  case CUDA_R_32F: ((float *)p)[i] = v; break;
  case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
  default: ((__half *)p)[i] = __float2half_rn(v); break;
  }
}

/* One operand: where element (r, c) of batch b is. */
struct Operand {
  const char *name;
  const void *p;
  Layout l;
  int64_t at(uint64_t r, uint64_t c, int64_t b) const {
    return b * l.stride + (l.order == CUBLASLT_ORDER_ROW ? (int64_t)r * l.ld + (int64_t)c : (int64_t)r + (int64_t)c * l.ld);
  }
};

/* A validated problem, ready to run on a stream. */
struct Gemm {
  uint64_t m, n, k;
  int64_t batch;
  bool ta, tb;
  Operand A, B, C, D;
  float alpha, beta;
  const void *bias;
  cudaDataType bias_type;
  int64_t bias_stride;
};

void run_gemm(const Gemm &g) {
  std::vector<float> a(g.m * g.k), b(g.n * g.k);
  for (int64_t bt = 0; bt < g.batch; bt++) {
    for (uint64_t i = 0; i < g.m; i++)  // op(A) as m×k row-major
      for (uint64_t kk = 0; kk < g.k; kk++)
        a[i * g.k + kk] = load(g.A.p, g.A.l.type, g.ta ? g.A.at(kk, i, bt) : g.A.at(i, kk, bt));
    for (uint64_t j = 0; j < g.n; j++)  // op(B)ᵀ as n×k row-major
      for (uint64_t kk = 0; kk < g.k; kk++)
        b[j * g.k + kk] = load(g.B.p, g.B.l.type, g.tb ? g.B.at(j, kk, bt) : g.B.at(kk, j, bt));
    for (uint64_t i = 0; i < g.m; i++)
      for (uint64_t j = 0; j < g.n; j++) {
        float acc = 0.0f;
        const float *ar = &a[i * g.k], *br = &b[j * g.k];
        for (uint64_t kk = 0; kk < g.k; kk++) acc += ar[kk] * br[kk];
        float v = g.alpha * acc;
        if (g.beta != 0.0f) v += g.beta * load(g.C.p, g.C.l.type, g.C.at(i, j, bt));
        if (g.bias) v += load(g.bias, g.bias_type, bt * g.bias_stride + (int64_t)i);
        store((void *)g.D.p, g.D.l.type, g.D.at(i, j, bt), v);
      }
  }
}

/* Elements an operand spans, from its first to its last element, over all batches. */
int64_t span_of(const Layout &l) {
  if (!l.rows || !l.cols) return 0;
  int64_t one = l.order == CUBLASLT_ORDER_ROW ? (int64_t)(l.rows - 1) * l.ld + (int64_t)l.cols
                                              : (int64_t)(l.cols - 1) * l.ld + (int64_t)l.rows;
  return (int64_t)(l.batch - 1) * l.stride + one;
}

/* What a layout alone must satisfy (also checked by the heuristic query). */
cublasStatus_t check_layout(const char *fn, const Operand &o) {
  const Layout &l = o.l;
  if (!type_size(l.type))
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: matrix %s has type %d (%s)", fn, o.name, (int)l.type, type_name(l.type));
  if (l.order != CUBLASLT_ORDER_COL && l.order != CUBLASLT_ORDER_ROW)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: matrix %s: order %d is not emulated (COL and ROW are)", fn, o.name, l.order);
  uint64_t min_ld = l.order == CUBLASLT_ORDER_ROW ? l.cols : l.rows;
  if (l.ld < (int64_t)(min_ld ? min_ld : 1))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: matrix %s is %llux%llu %s-major with ld %lld < %llu", fn, o.name,
                  (unsigned long long)l.rows, (unsigned long long)l.cols, l.order == CUBLASLT_ORDER_ROW ? "row" : "column",
                  (long long)l.ld, (unsigned long long)min_ld);
  if (l.batch < 1 || l.stride < 0)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: matrix %s: batch count %d, stride %lld", fn, o.name, l.batch, (long long)l.stride);
  return CUBLAS_STATUS_SUCCESS;
}

/* The operand's pointer: device memory, aligned, holding every element the layout spans. */
cublasStatus_t check_extent(const char *fn, const Operand &o) {
  const Layout &l = o.l;
  int64_t bytes = span_of(l) * (int64_t)type_size(l.type);
  long long have = device_bytes_from(o.p);
  if (have < 0)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: matrix %s (%p) is not device memory from cudaMalloc", fn, o.name, o.p);
  if ((uintptr_t)o.p % type_size(l.type))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: matrix %s (%p) is misaligned for %s", fn, o.name, o.p, type_name(l.type));
  if (bytes > have)
    return refuse(CUBLAS_STATUS_INVALID_VALUE,
                  "%s: matrix %s (%llux%llu, ld %lld, %d batches of stride %lld) spans %lld bytes but its allocation "
                  "has %lld bytes from %p",
                  fn, o.name, (unsigned long long)l.rows, (unsigned long long)l.cols, (long long)l.ld, l.batch,
                  (long long)l.stride, (long long)bytes, have, o.p);
  return CUBLAS_STATUS_SUCCESS;
}

/* Everything cublasLtMatmul checks before it runs; fills g. */
cublasStatus_t validate(const char *fn, const Desc &d, Gemm &g, bool check_pointers) {
  if (d.compute != CUBLAS_COMPUTE_32F && d.compute != CUBLAS_COMPUTE_32F_PEDANTIC)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: compute type %d is not emulated (CUBLAS_COMPUTE_32F is)", fn, (int)d.compute);
  if (d.scale != CUDA_R_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: scale type %s (CUDA_R_32F with COMPUTE_32F)", fn, type_name(d.scale));
  if (d.pointer_mode != CUBLASLT_POINTER_MODE_HOST)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: pointer mode %d is not emulated (host alpha/beta are)", fn, d.pointer_mode);
  for (int32_t t : {d.transa, d.transb})
    if (t != CUBLAS_OP_N && t != CUBLAS_OP_T)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: operation %d is not emulated (N and T are)", fn, t);
  if (d.epilogue != CUBLASLT_EPILOGUE_DEFAULT && d.epilogue != CUBLASLT_EPILOGUE_BIAS)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: epilogue %u is not emulated (DEFAULT and BIAS are)", fn, d.epilogue);
  g.ta = d.transa == CUBLAS_OP_T;
  g.tb = d.transb == CUBLAS_OP_T;
  const Layout &A = g.A.l, &B = g.B.l, &C = g.C.l, &D = g.D.l;
  for (const Operand *o : {&g.A, &g.B, &g.C, &g.D}) {
    cublasStatus_t st = check_layout(fn, *o);
    if (st == CUBLAS_STATUS_SUCCESS && check_pointers) st = check_extent(fn, *o);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
  }
  if (A.type != B.type)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: A is %s but B is %s", fn, type_name(A.type), type_name(B.type));
  if (C.type != D.type)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: C is %s but D is %s", fn, type_name(C.type), type_name(D.type));
  if (A.type == CUDA_R_32F && D.type != CUDA_R_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: fp32 inputs need an fp32 output", fn);
  g.m = D.rows;
  g.n = D.cols;
  g.k = g.ta ? A.rows : A.cols;
  uint64_t am = g.ta ? A.cols : A.rows;
  uint64_t bk = g.tb ? B.cols : B.rows, bn = g.tb ? B.rows : B.cols;
  if (am != g.m || bk != g.k || bn != g.n || C.rows != D.rows || C.cols != D.cols)
    return refuse(CUBLAS_STATUS_INVALID_VALUE,
                  "%s: inconsistent dimensions: D is %llux%llu (m x n), op%s(A) is %llux%llu, op%s(B) is %llux%llu, C is "
                  "%llux%llu",
                  fn, (unsigned long long)D.rows, (unsigned long long)D.cols, g.ta ? "T" : "N", (unsigned long long)am,
                  (unsigned long long)g.k, g.tb ? "T" : "N", (unsigned long long)bk, (unsigned long long)bn,
                  (unsigned long long)C.rows, (unsigned long long)C.cols);
  if (A.batch != D.batch || B.batch != D.batch || C.batch != D.batch)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: batch counts differ (A %d, B %d, C %d, D %d)", fn, A.batch, B.batch,
                  C.batch, D.batch);
  if (D.batch > 1 && D.stride < span_of(Layout{0, D.type, D.order, 1, D.rows, D.cols, D.ld, 0}))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: the batches of D overlap (stride %lld)", fn, (long long)D.stride);
  if (g.C.p == g.D.p && (C.ld != D.ld || C.order != D.order || C.stride != D.stride))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: in place (C == D) with different C and D layouts", fn);
  g.batch = D.batch;
  g.bias = nullptr;
  if (d.epilogue == CUBLASLT_EPILOGUE_BIAS) {
    g.bias_type = d.bias_type == -1 ? D.type : (cudaDataType)d.bias_type;
    if (g.bias_type != D.type)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: bias type %s differs from D's type %s (the library wants D's)", fn,
                    type_name(g.bias_type), type_name(D.type));
    g.bias = d.bias;
    g.bias_stride = d.bias_stride;
    if (check_pointers) {
      if (!g.bias) return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: EPILOGUE_BIAS without a bias pointer", fn);
      long long need = ((D.batch - 1) * d.bias_stride + (int64_t)g.m) * (int64_t)type_size(g.bias_type);
      long long have = device_bytes_from(g.bias);
      if (have < need)
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: the bias needs %llu elements (one per row of D) but %s", fn, (unsigned long long)g.m,
                      have < 0 ? "is not device memory" : strprintf("its allocation has %lld bytes", have).c_str());
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

Layout plain_layout(cudaDataType t, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  return Layout{kLayoutMagic, t, CUBLASLT_ORDER_COL, (int32_t)batch, rows, cols, ld, stride};
}

cublasStatus_t submit(const char *fn, const Gemm &g, cudaStream_t stream) {
  if (stream_check(stream) != cudaSuccess) return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: bad stream", fn);
  if (stream_submit(stream, fn, [g] { run_gemm(g); }) != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  return CUBLAS_STATUS_SUCCESS;
}

template <typename T>
bool attr_in(const void *buf, size_t size, T *out) {
  if (!buf || size != sizeof(T)) return false;
  memcpy(out, buf, sizeof(T));
  return true;
}

} /* namespace */
} /* namespace cuemu */

using namespace cuemu;

#define LOCKED std::lock_guard<std::recursive_mutex> lock_(device_lock())
#define BAD_SIZE(fn, attr) refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: attribute %d: wrong buffer size", fn, (int)(attr))

extern "C" {

static const char *status_name(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  default: return "CUBLAS_STATUS_UNKNOWN";
  }
}
static const char *status_string(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS: return "success";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
  case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
  case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  default: return "unknown error";
  }
}
const char *cublasGetStatusName(cublasStatus_t s) { return status_name(s); }
const char *cublasGetStatusString(cublasStatus_t s) { return status_string(s); }
const char *cublasLtGetStatusName(cublasStatus_t s) { return status_name(s); }
const char *cublasLtGetStatusString(cublasStatus_t s) { return status_string(s); }
size_t cublasLtGetVersion(void) { return CUBLAS_VERSION; }

/* ---- cuBLASLt ---------------------------------------------------------------------------- */

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = new cublasLtContext{kHandleMagic};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->magic = 0;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (!l) return CUBLAS_STATUS_INVALID_VALUE;
  auto *o = new cublasLtMatrixLayoutOpaque_t;
  new (o) Layout{kLayoutMagic, type, CUBLASLT_ORDER_COL, 1, rows, cols, ld, 0};
  *l = o;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  Layout *p = layout_of(l);
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  p->magic = 0;
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t size) {
  const char *fn = "cublasLtMatrixLayoutSetAttribute";
  Layout *p = layout_of(l);
  if (!p) return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: not a layout", fn);
  bool ok;
  switch (attr) {
  case CUBLASLT_MATRIX_LAYOUT_TYPE: {
    uint32_t v;
    if ((ok = attr_in(buf, size, &v))) p->type = (cudaDataType)v;
    break;
  }
  case CUBLASLT_MATRIX_LAYOUT_ORDER: ok = attr_in(buf, size, &p->order); break;
  case CUBLASLT_MATRIX_LAYOUT_ROWS: ok = attr_in(buf, size, &p->rows); break;
  case CUBLASLT_MATRIX_LAYOUT_COLS: ok = attr_in(buf, size, &p->cols); break;
  case CUBLASLT_MATRIX_LAYOUT_LD: ok = attr_in(buf, size, &p->ld); break;
  case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: ok = attr_in(buf, size, &p->batch); break;
  case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: ok = attr_in(buf, size, &p->stride); break;
  default: return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d is not emulated", fn, (int)attr);
  }
  return ok ? CUBLAS_STATUS_SUCCESS : BAD_SIZE(fn, attr);
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
  if (!d) return CUBLAS_STATUS_INVALID_VALUE;
  auto *o = new cublasLtMatmulDescOpaque_t;
  new (o) Desc{kDescMagic, compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_POINTER_MODE_HOST,
               CUBLASLT_EPILOGUE_DEFAULT, -1, nullptr, 0};
  *d = o;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  Desc *p = desc_of(d);
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  p->magic = 0;
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
  const char *fn = "cublasLtMatmulDescSetAttribute";
  Desc *p = desc_of(d);
  if (!p) return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: not a matmul descriptor", fn);
  bool ok;
  int32_t v = 0;
  switch (attr) {
  case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
    if ((ok = attr_in(buf, size, &v))) p->compute = (cublasComputeType_t)v;
    break;
  case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
    if ((ok = attr_in(buf, size, &v))) p->scale = (cudaDataType)v;
    break;
  case CUBLASLT_MATMUL_DESC_POINTER_MODE: ok = attr_in(buf, size, &p->pointer_mode); break;
  case CUBLASLT_MATMUL_DESC_TRANSA: ok = attr_in(buf, size, &p->transa); break;
  case CUBLASLT_MATMUL_DESC_TRANSB: ok = attr_in(buf, size, &p->transb); break;
  case CUBLASLT_MATMUL_DESC_EPILOGUE: ok = attr_in(buf, size, &p->epilogue); break;
  case CUBLASLT_MATMUL_DESC_BIAS_POINTER: ok = attr_in(buf, size, &p->bias); break;
  case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: ok = attr_in(buf, size, &p->bias_type); break;
  case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: ok = attr_in(buf, size, &p->bias_stride); break;
  default: return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d is not emulated", fn, (int)attr);
  }
  return ok ? CUBLAS_STATUS_SUCCESS : BAD_SIZE(fn, attr);
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  auto *o = new cublasLtMatmulPreferenceOpaque_t;
  new (o) Pref{kPrefMagic, 0, {256, 256, 256, 256}};
  *pref = o;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  Pref *p = pref_of(pref);
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  p->magic = 0;
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
  const char *fn = "cublasLtMatmulPreferenceSetAttribute";
  Pref *p = pref_of(pref);
  if (!p) return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: not a preference", fn);
  int which = -1;
  switch (attr) {
  case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
    return attr_in(buf, size, &p->max_workspace) ? CUBLAS_STATUS_SUCCESS : BAD_SIZE(fn, attr);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: which = 0; break;
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: which = 1; break;
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: which = 2; break;
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: which = 3; break;
  default: return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d is not emulated", fn, (int)attr);
  }
  uint32_t a;
  if (!attr_in(buf, size, &a)) return BAD_SIZE(fn, attr);
  if (a == 0 || (a & (a - 1)))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: minimum alignment %u is not a power of two", fn, a);
  p->min_align[which] = a;
  return CUBLAS_STATUS_SUCCESS;
}

static bool fill_operands(Gemm &g, const void *A, cublasLtMatrixLayout_t Ad, const void *B, cublasLtMatrixLayout_t Bd,
                          const void *C, cublasLtMatrixLayout_t Cd, void *D, cublasLtMatrixLayout_t Dd) {
  const Layout *la = layout_of(Ad), *lb = layout_of(Bd), *lc = layout_of(Cd), *ld = layout_of(Dd);
  if (!la || !lb || !lc || !ld) return false;
  g.A = Operand{"A", A, *la};
  g.B = Operand{"B", B, *lb};
  g.C = Operand{"C", C, *lc};
  g.D = Operand{"D", D, *ld};
  return true;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t Ad,
                                              cublasLtMatrixLayout_t Bd, cublasLtMatrixLayout_t Cd,
                                              cublasLtMatrixLayout_t Dd, cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned) {
  const char *fn = "cublasLtMatmulAlgoGetHeuristic";
  LOCKED;
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  Desc *d = desc_of(desc);
  Gemm g;
  if (!d || !pref_of(pref) || requested <= 0 || !results || !returned ||
      !fill_operands(g, nullptr, Ad, nullptr, Bd, nullptr, Cd, nullptr, Dd))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: bad descriptor or result array", fn);
  *returned = 0;
  cublasStatus_t st = validate(fn, *d, g, false);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  memset(&results[0], 0, sizeof results[0]);
  results[0].algo.data[0] = kAlgoMagic;
  /* the algorithm may assume the preference's pointer alignments (cublasLtMatmul checks) */
  const Pref *pf = pref_of(pref);
  for (int i = 0; i < 4; i++) results[0].algo.data[1 + i] = pf->min_align[i];
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Ad, const void *B, cublasLtMatrixLayout_t Bd, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cd, void *D, cublasLtMatrixLayout_t Dd,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_size,
                              cudaStream_t stream) {
  const char *fn = "cublasLtMatmul";
  LOCKED;
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  Desc *d = desc_of(desc);
  Gemm g;
  if (!d || !alpha || !beta || !fill_operands(g, A, Ad, B, Bd, C, Cd, D, Dd))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL alpha/beta or a bad descriptor", fn);
  if (algo && algo->data[0] != kAlgoMagic)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: algo is not from cublasLtMatmulAlgoGetHeuristic", fn);
  if (workspace_size && device_bytes_from(workspace) < (long long)workspace_size)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: workspace %p does not hold %zu bytes of device memory", fn,
                  workspace, workspace_size);
  cublasStatus_t st = validate(fn, *d, g, true);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (algo) {
    /* Stricter than the library's undefined behaviour: a pointer less aligned than the
     * heuristic was told (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES, default 256). */
    const Operand *ops[4] = {&g.A, &g.B, &g.C, &g.D};
    for (int i = 0; i < 4; i++) {
      uint64_t need = algo->data[1 + i];
      if (need && (uintptr_t)ops[i]->p % need)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                      "%s: matrix %s (%p) is not %llu-byte aligned, as the algorithm from the heuristic assumes "
                      "(set CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%s_BYTES)",
                      fn, ops[i]->name, ops[i]->p, (unsigned long long)need, ops[i]->name);
    }
  }
  memcpy(&g.alpha, alpha, sizeof g.alpha);  // host pointer mode: read at the call
  memcpy(&g.beta, beta, sizeof g.beta);
  return submit(fn, g, stream);
}

/* ---- cuBLAS (column-major GEMMs through the same engine) ---------------------------------- */

cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = new cublasContext{kHandleMagic, nullptr, CUBLAS_DEFAULT_MATH};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->magic = 0;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  LOCKED;
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (stream_check(s) != cudaSuccess) return CUBLAS_STATUS_INVALID_VALUE;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *s) {
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!s) return CUBLAS_STATUS_INVALID_VALUE;
  *s = h->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_PEDANTIC_MATH)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSetMathMode: mode %d is not emulated (DEFAULT, PEDANTIC are)", (int)mode);
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                          int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
                                          long long strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo) {
  const char *fn = batch == 1 && !strideA && !strideB && !strideC ? "cublasGemmEx" : "cublasGemmStridedBatchedEx";
  LOCKED;
  if (!h || h->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (m < 0 || n < 0 || k < 0 || batch < 1 || !alpha || !beta)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: m %d, n %d, k %d, batch %d", fn, m, n, k, batch);
  if (algo != CUBLAS_GEMM_DEFAULT && algo != CUBLAS_GEMM_DEFAULT_TENSOR_OP)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: algo %d is not emulated", fn, (int)algo);
  bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
  Desc d{kDescMagic, compute, CUDA_R_32F, transa, transb, CUBLASLT_POINTER_MODE_HOST, CUBLASLT_EPILOGUE_DEFAULT, -1,
         nullptr, 0};
  Gemm g;
  g.A = Operand{"A", A, plain_layout(Atype, ta ? k : m, ta ? m : k, lda, batch, strideA)};
  g.B = Operand{"B", B, plain_layout(Btype, tb ? n : k, tb ? k : n, ldb, batch, strideB)};
  g.C = Operand{"C", C, plain_layout(Ctype, m, n, ldc, batch, strideC)};
  g.D = g.C;
  g.D.name = "C (output)";
  cublasStatus_t st = validate(fn, d, g, true);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  memcpy(&g.alpha, alpha, sizeof g.alpha);
  memcpy(&g.beta, beta, sizeof g.beta);
  return submit(fn, g, h->stream);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(h, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C,
                                    Ctype, ldc, 0, 1, compute, algo);
}

} /* extern "C" */
