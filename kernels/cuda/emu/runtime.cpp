/* kernels/cuda/emu/runtime.cpp — host versions of the CUDA runtime calls: configuration,
 * errors, the device (an sm_80 with the smallest shared-memory limits of our targets),
 * the allocation registry, memcpy/memset with direction and bounds checks.
 * Streams, events and graphs are in streams.cpp.
 *
 * Stricter than the real runtime on purpose: a copy whose declared direction does not
 * match where the pointers live, a range that leaves its allocation, a free of an
 * interior pointer are errors (cudaErrorInvalidValue), with a message on stderr and in
 * cuemu_error_message().  Device memory is host memory filled with 0xff bytes (NaN) when
 * allocated, so a read of memory never written shows; ASan sees overruns past its end.
 */
#include "emu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <map>

namespace cuemu {

namespace {

struct Registry {
  std::map<uintptr_t, Alloc> allocs; /* by base address */
  size_t device_bytes = 0;
};

Registry &registry() {
  static Registry r;
  return r;
}

struct ErrorState {
  cudaError_t last = cudaSuccess;
  cudaError_t sticky = cudaSuccess;
  std::string message;
};
ErrorState &errors() {
  static ErrorState e;
  return e;
}

std::map<const void *, int> &func_dyn_smem() {
  static std::map<const void *, int> m;
  return m;
}

Order parse_order(const char *s, bool *ok) {
  *ok = true;
  if (!strcmp(s, "forward")) return Order::Forward;
  if (!strcmp(s, "reverse")) return Order::Reverse;
  if (!strcmp(s, "random")) return Order::Random;
  *ok = false;
  return Order::Forward;
}

Config make_config() {
  Config c;
  const char *e;
  if ((e = getenv("CUEMU_ORDER")) && *e) {
    bool ok;
    c.order = parse_order(e, &ok);
    if (!ok) fprintf(stderr, "cuda-emu: CUEMU_ORDER=%s is not forward|reverse|random; using forward\n", e);
  }
  if ((e = getenv("CUEMU_SEED")) && *e) c.seed = strtoull(e, nullptr, 0);
  if ((e = getenv("CUEMU_LAUNCH")) && *e) c.deferred = strcmp(e, "immediate") != 0;
  c.abort_on_error = (e = getenv("CUEMU_ABORT")) && *e == '1';
  c.quiet = (e = getenv("CUEMU_QUIET")) && *e == '1';
#if defined(CUEMU_ASAN) || defined(CUEMU_TSAN)
  c.stack_size = 256 * 1024;  // instrumented frames are several times larger
#else
  c.stack_size = 64 * 1024;
#endif
  if ((e = getenv("CUEMU_STACK_KB")) && *e) c.stack_size = strtoull(e, nullptr, 0) * 1024;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  c.mem_total = pages > 0 && page > 0 ? (size_t)pages * (size_t)page / 2 : (size_t)8 << 30;
  if ((e = getenv("CUEMU_MEM_MB")) && *e) c.mem_total = strtoull(e, nullptr, 0) << 20;
  return c;
}

const char *kind_name(cudaMemcpyKind k) {
  switch (k) {
  case cudaMemcpyHostToHost: return "HostToHost";
  case cudaMemcpyHostToDevice: return "HostToDevice";
  case cudaMemcpyDeviceToHost: return "DeviceToHost";
  case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
  case cudaMemcpyDefault: return "Default";
  default: return "?";
  }
}

} /* namespace */

Config &config() {
  static Config c = make_config();
  return c;
}

Rng next_rng() {
  static unsigned long long counter;
  Rng r{config().seed * 0x9E3779B97F4A7C15ull + ++counter};
  if (!r.s) r.s = 1;
  r.next();
  return r;
}

std::recursive_mutex &device_lock() {
  static std::recursive_mutex m;
  return m;
}

std::string strprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  std::string s;
  if (n < (int)sizeof small) {
    s = small;
  } else {
    s.resize((size_t)n + 1);
    vsnprintf(&s[0], s.size(), fmt, ap2);
    s.resize((size_t)n);
  }
  va_end(ap2);
  return s;
}

void vreport(const char *fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt, ap);
  errors().message = buf;
  if (!config().quiet) fprintf(stderr, "cuda-emu: error: %s\n", buf);
  if (config().abort_on_error) abort();
}

void report(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
}

cudaError_t set_error(cudaError_t err, bool sticky) {
  if (err != cudaSuccess) {
    errors().last = err;
    if (sticky && errors().sticky == cudaSuccess) errors().sticky = err;
  }
  return err;
}

cudaError_t sticky_error() { return errors().sticky; }

int func_max_dynamic_smem(const void *func) {
  auto it = func_dyn_smem().find(func);
  return it == func_dyn_smem().end() ? (int)kDefaultDynSmemLimit : it->second;
}

const Alloc *find_alloc(const void *p, size_t n, MemKind kind) {
  auto &m = registry().allocs;
  auto it = m.upper_bound((uintptr_t)p);
  if (it == m.begin()) return nullptr;
  --it;
  const Alloc &a = it->second;
  uintptr_t off = (uintptr_t)p - (uintptr_t)a.base;
  /* One past the end is not inside: host memory may start right there. */
  if (a.kind != kind || (off >= a.size && off != 0) || n > a.size - off) return nullptr;
  return &a;
}

long long device_bytes_from(const void *p) {
  const Alloc *a = find_alloc(p, 0, MemKind::Device);
  return a ? (long long)(a->base + a->size - (const char *)p) : -1;
}

} /* namespace cuemu */

using namespace cuemu;

/* An API error: recorded for cudaGetLastError and explained on stderr. */
static cudaError_t api_fail(cudaError_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cudaError_t api_fail(cudaError_t err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
  return set_error(err, false);
}

#define LOCKED std::lock_guard<std::recursive_mutex> lock_(device_lock())
#define RETURN_IF_STICKY                                                                   \
  do {                                                                                     \
    if (sticky_error() != cudaSuccess) return sticky_error();                              \
  } while (0)

extern "C" {

const char *cuemu_error_message(void) { return errors().message.c_str(); }

int cuemu_set_order(const char *order) {
  bool ok;
  Order o = parse_order(order, &ok);
  if (ok) config().order = o;
  return ok;
}

const char *cuemu_order(void) {
  switch (config().order) {
  case Order::Reverse: return "reverse";
  case Order::Random: return "random";
  default: return "forward";
  }
}

/* ---- errors ---------------------------------------------------------------------------- */

cudaError_t cudaGetLastError(void) {
  LOCKED;
  cudaError_t e = errors().last;
  errors().last = errors().sticky;
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  LOCKED;
  return errors().last;
}

#define ERR(name, text) {name, #name, text}
static const struct {
  cudaError_t e;
  const char *name, *text;
} error_table[] = {
    ERR(cudaSuccess, "no error"),
    ERR(cudaErrorInvalidValue, "invalid argument"),
    ERR(cudaErrorMemoryAllocation, "out of memory"),
    ERR(cudaErrorInitializationError, "initialization error"),
    ERR(cudaErrorInvalidConfiguration, "invalid configuration argument"),
    ERR(cudaErrorInvalidPitchValue, "invalid pitch argument"),
    ERR(cudaErrorInvalidDevicePointer, "invalid device pointer"),
    ERR(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy"),
    ERR(cudaErrorInvalidDeviceFunction, "invalid device function"),
    ERR(cudaErrorNoDevice, "no CUDA-capable device is detected"),
    ERR(cudaErrorInvalidDevice, "invalid device ordinal"),
    ERR(cudaErrorInvalidResourceHandle, "invalid resource handle"),
    ERR(cudaErrorIllegalState, "the operation cannot be performed in the present state"),
    ERR(cudaErrorNotReady, "device not ready"),
    ERR(cudaErrorIllegalAddress, "an illegal memory access was encountered"),
    ERR(cudaErrorLaunchOutOfResources, "too many resources requested for launch"),
    ERR(cudaErrorLaunchTimeout, "the launch timed out and was terminated"),
    ERR(cudaErrorAssert, "device-side assert triggered"),
    ERR(cudaErrorIllegalInstruction, "an illegal instruction was encountered"),
    ERR(cudaErrorLaunchFailure, "unspecified launch failure"),
    ERR(cudaErrorNotSupported, "operation not supported"),
    ERR(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing"),
    ERR(cudaErrorStreamCaptureInvalidated, "operation failed due to a previous error during capture"),
    ERR(cudaErrorStreamCaptureUnmatched, "capture was not initiated in this stream"),
    ERR(cudaErrorStreamCaptureImplicit,
        "operation would make the legacy stream depend on a capturing blocking stream"),
    ERR(cudaErrorCapturedEvent, "operation not permitted on an event last recorded in a capturing stream"),
    ERR(cudaErrorUnknown, "unknown error"),
};
#undef ERR

const char *cudaGetErrorName(cudaError_t error) {
  for (const auto &r : error_table)
    if (r.e == error) return r.name;
  return "cudaErrorUnrecognized";
}

const char *cudaGetErrorString(cudaError_t error) {
  for (const auto &r : error_table)
    if (r.e == error) return r.text;
  return "unrecognized error code";
}

/* ---- the device ------------------------------------------------------------------------ */

cudaError_t cudaGetDeviceCount(int *count) {
  if (!count) return set_error(cudaErrorInvalidValue, false);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return api_fail(cudaErrorInvalidDevice, "cudaSetDevice(%d): the emulation has device 0 only", device);
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
  if (!device) return set_error(cudaErrorInvalidValue, false);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
  if (!prop) return set_error(cudaErrorInvalidValue, false);
  if (device != 0) return api_fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties: no device %d", device);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "CUDA emulation on the CPU (sm_80 model)");
  prop->totalGlobalMem = config().mem_total;
  prop->sharedMemPerBlock = kStaticSmemLimit;
  prop->sharedMemPerBlockOptin = kMaxSmemPerBlock;
  prop->sharedMemPerMultiprocessor = 100 * 1024;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 65536;
  prop->major = 8;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->maxThreadsPerMultiProcessor = 1536;
  prop->maxBlocksPerMultiProcessor = 16;
  prop->l2CacheSize = 4 << 20;
  prop->memoryBusWidth = 64;
  prop->unifiedAddressing = 1;
  prop->concurrentKernels = 1;
  prop->asyncEngineCount = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
  if (!value || device != 0) return set_error(device ? cudaErrorInvalidDevice : cudaErrorInvalidValue, false);
  switch (attr) {
  case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
  case cudaDevAttrWarpSize: *value = 32; break;
  case cudaDevAttrMultiProcessorCount: *value = 1; break;
  case cudaDevAttrComputeCapabilityMajor: *value = 8; break;
  case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
  case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)kStaticSmemLimit; break;
  case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)kMaxSmemPerBlock; break;
  case cudaDevAttrL2CacheSize: *value = 4 << 20; break;
  default:
    return api_fail(cudaErrorNotSupported, "cudaDeviceGetAttribute: attribute %d is not emulated", (int)attr);
  }
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v) {
  if (!v) return set_error(cudaErrorInvalidValue, false);
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) {
  if (!v) return set_error(cudaErrorInvalidValue, false);
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
  LOCKED;
  if (!func) return api_fail(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute: NULL function");
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || (size_t)value > kMaxSmemPerBlock)
      return api_fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: %d bytes of dynamic shared memory (limit %zu)",
                      value, kMaxSmemPerBlock);
    func_dyn_smem()[func] = value;
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
  return api_fail(cudaErrorNotSupported, "cudaFuncSetAttribute: attribute %d is not emulated", (int)attr);
}

cudaError_t cudaDeviceSynchronize(void) {
  LOCKED;
  drain_all();
  return sticky_error();
}

cudaError_t cudaDeviceReset(void) {
  LOCKED;
  drain_all();
  for (auto &kv : registry().allocs) free(kv.second.base);
  registry().allocs.clear();
  registry().device_bytes = 0;
  errors().last = errors().sticky = cudaSuccess;
  errors().message.clear();
  func_dyn_smem().clear();
  streams_reset();
  return cudaSuccess;
}

/* ---- memory ---------------------------------------------------------------------------- */

static cudaError_t do_alloc(void **p, size_t size, MemKind kind, const char *fn) {
  LOCKED;
  RETURN_IF_STICKY;
  if (!p) return api_fail(cudaErrorInvalidValue, "%s: NULL result pointer", fn);
  *p = nullptr;
  if (kind == MemKind::Device && registry().device_bytes + size > config().mem_total)
    return api_fail(cudaErrorMemoryAllocation, "%s(%zu): the emulated device has %zu of %zu bytes free", fn,
                    size, config().mem_total - registry().device_bytes, config().mem_total);
  /* The exact size, so ASan's redzone starts right after the last byte. */
  void *mem = nullptr;
  if (posix_memalign(&mem, 256, size ? size : 1)) mem = nullptr;
  char *m = (char *)mem;
  if (!m) return api_fail(cudaErrorMemoryAllocation, "%s(%zu): out of host memory", fn, size);
  memset(m, 0xff, size);  // NaN in every float format: a read of unwritten memory shows
  registry().allocs[(uintptr_t)m] = Alloc{m, size, kind};
  if (kind == MemKind::Device) registry().device_bytes += size;
  *p = m;
  return cudaSuccess;
}

static cudaError_t do_free(void *p, MemKind kind, const char *fn) {
  LOCKED;
  if (!p) return cudaSuccess;
  drain_all();  // cudaFree synchronises the device
  auto it = registry().allocs.find((uintptr_t)p);
  if (it == registry().allocs.end() || it->second.kind != kind)
    return api_fail(cudaErrorInvalidValue, "%s(%p): not the start of a live %s allocation", fn, p,
                    kind == MemKind::Device ? "device" : "pinned host");
  if (kind == MemKind::Device) registry().device_bytes -= it->second.size;
  free(it->second.base);
  registry().allocs.erase(it);
  return sticky_error();
}

cudaError_t cudaMalloc(void **devPtr, size_t size) { return do_alloc(devPtr, size, MemKind::Device, "cudaMalloc"); }
cudaError_t cudaFree(void *devPtr) { return do_free(devPtr, MemKind::Device, "cudaFree"); }
cudaError_t cudaMallocHost(void **ptr, size_t size) { return do_alloc(ptr, size, MemKind::PinnedHost, "cudaMallocHost"); }
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags) {
  if (flags & ~(unsigned)cudaHostAllocPortable)
    return api_fail(cudaErrorNotSupported, "cudaHostAlloc: flags 0x%x are not emulated (mapped/write-combined)", flags);
  return do_alloc(ptr, size, MemKind::PinnedHost, "cudaHostAlloc");
}
cudaError_t cudaFreeHost(void *ptr) { return do_free(ptr, MemKind::PinnedHost, "cudaFreeHost"); }

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  LOCKED;
  if (!free_bytes || !total) return set_error(cudaErrorInvalidValue, false);
  *total = config().mem_total;
  *free_bytes = config().mem_total - registry().device_bytes;
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attr, const void *ptr) {
  LOCKED;
  if (!attr) return set_error(cudaErrorInvalidValue, false);
  memset(attr, 0, sizeof *attr);
  attr->device = 0;
  if (const Alloc *a = find_alloc(ptr, 0, MemKind::Device)) {
    attr->type = cudaMemoryTypeDevice;
    attr->devicePointer = (void *)ptr;
    (void)a;
  } else if (find_alloc(ptr, 0, MemKind::PinnedHost)) {
    attr->type = cudaMemoryTypeHost;
    attr->hostPointer = (void *)ptr;
  } else {
    attr->type = cudaMemoryTypeUnregistered;
    attr->hostPointer = (void *)ptr;
  }
  return cudaSuccess;
}

/* Where a memcpy operand lives: device, pinned host or other host memory. */
static bool is_device(const void *p) { return find_alloc(p, 0, MemKind::Device) != nullptr; }
static bool is_pinned(const void *p) { return find_alloc(p, 0, MemKind::PinnedHost) != nullptr; }

/* Check a copy's direction and ranges; resolves cudaMemcpyDefault.  The kind is read as
 * an int: a caller may pass any value, which is an error, not undefined behaviour. */
static cudaError_t check_copy(const char *fn, void *dst, const void *src, size_t count, cudaMemcpyKind *kind) {
  int k;
  memcpy(&k, kind, sizeof k);
  if (k < cudaMemcpyHostToHost || k > cudaMemcpyDefault)
    return api_fail(cudaErrorInvalidMemcpyDirection, "%s: invalid cudaMemcpyKind %d", fn, k);
  bool dd = is_device(dst), sd = is_device(src);
  if (*kind == cudaMemcpyDefault)
    *kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
               : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  bool want_dd = *kind == cudaMemcpyHostToDevice || *kind == cudaMemcpyDeviceToDevice;
  bool want_sd = *kind == cudaMemcpyDeviceToHost || *kind == cudaMemcpyDeviceToDevice;
  if (dd != want_dd)
    return api_fail(cudaErrorInvalidValue, "%s(%s): destination %p is %s", fn, kind_name(*kind), dst,
                    dd ? "device memory" : "not device memory");
  if (sd != want_sd)
    return api_fail(cudaErrorInvalidValue, "%s(%s): source %p is %s", fn, kind_name(*kind), src,
                    sd ? "device memory" : "not device memory");
  if (dd && !find_alloc(dst, count, MemKind::Device))
    return api_fail(cudaErrorInvalidValue, "%s: %zu bytes at %p run past the end of the device allocation (%lld bytes left)",
                    fn, count, dst, device_bytes_from(dst));
  if (sd && !find_alloc(src, count, MemKind::Device))
    return api_fail(cudaErrorInvalidValue, "%s: %zu bytes at %p run past the end of the device allocation (%lld bytes left)",
                    fn, count, src, device_bytes_from(src));
  if (count && (!dst || !src)) return api_fail(cudaErrorInvalidValue, "%s: NULL pointer", fn);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
  LOCKED;
  RETURN_IF_STICKY;
  cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, count, &kind);
  if (e == cudaSuccess) e = stream_check(stream);
  if (e != cudaSuccess) return e;
  if (!is_device(src) && !is_pinned(src)) {
    /* Pageable source: the runtime stages it before returning, so the caller may reuse
     * the buffer at once.  Snapshot it the same way. */
    std::shared_ptr<std::vector<char>> stage(new std::vector<char>((const char *)src, (const char *)src + count));
    return stream_submit(stream, "cudaMemcpyAsync", [dst, stage, count] { memcpy(dst, stage->data(), count); });
  }
  e = stream_submit(stream, "cudaMemcpyAsync", [dst, src, count] { memmove(dst, src, count); });
  /* Into pageable memory the copy returns only when done. */
  if (e == cudaSuccess && !is_device(dst) && !is_pinned(dst)) e = cudaStreamSynchronize(stream);
  return e;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
  LOCKED;
  cudaError_t e = cudaMemcpyAsync(dst, src, count, kind, 0);
  return e == cudaSuccess ? cudaStreamSynchronize(0) : e;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                              size_t height, enum cudaMemcpyKind kind, cudaStream_t stream) {
  LOCKED;
  RETURN_IF_STICKY;
  if (width > dpitch || width > spitch)
    return api_fail(cudaErrorInvalidPitchValue, "cudaMemcpy2DAsync: width %zu > pitch (%zu, %zu)", width, dpitch, spitch);
  if (height == 0 || width == 0) return cudaSuccess;
  cudaError_t e = check_copy("cudaMemcpy2DAsync", dst, src, 0, &kind);
  bool dd = is_device(dst), sd = is_device(src);
  size_t dspan = dpitch * (height - 1) + width, sspan = spitch * (height - 1) + width;
  if (e == cudaSuccess && ((dd && !find_alloc(dst, dspan, MemKind::Device)) || (sd && !find_alloc(src, sspan, MemKind::Device))))
    e = api_fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: %zu rows of %zu bytes leave the device allocation", height, width);
  if (e == cudaSuccess) e = stream_check(stream);
  if (e != cudaSuccess) return e;
  std::shared_ptr<std::vector<char>> stage;
  if (!sd && !is_pinned(src)) {
    stage.reset(new std::vector<char>((const char *)src, (const char *)src + sspan));
    src = stage->data();
  }
  e = stream_submit(stream, "cudaMemcpy2DAsync", [=] {
    for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
  });
  if (e == cudaSuccess && !dd && !is_pinned(dst)) e = cudaStreamSynchronize(stream);
  return e;
}

cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream) {
  LOCKED;
  RETURN_IF_STICKY;
  if (!find_alloc(devPtr, count, MemKind::Device))
    return api_fail(cudaErrorInvalidValue, "cudaMemset: %zu bytes at %p are not inside one device allocation", count, devPtr);
  cudaError_t e = stream_check(stream);
  if (e != cudaSuccess) return e;
  return stream_submit(stream, "cudaMemsetAsync", [devPtr, value, count] { memset(devPtr, value, count); });
}

cudaError_t cudaMemset(void *devPtr, int value, size_t count) { return cudaMemsetAsync(devPtr, value, count, 0); }

cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t count, size_t offset, enum cudaMemcpyKind kind) {
  LOCKED;
  int k;
  memcpy(&k, &kind, sizeof k);
  if (k != cudaMemcpyHostToDevice && k != cudaMemcpyDefault)
    return api_fail(cudaErrorInvalidMemcpyDirection, "cudaMemcpyToSymbol: kind %d (HostToDevice expected)", k);
  drain_all();
  memcpy((char *)symbol + offset, src, count);
  return sticky_error();
}

} /* extern "C" */
