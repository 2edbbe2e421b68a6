/* kernels/cuda/emu/cuda_emu.h — the CUDA execution model on the CPU: what a kernel sees.
 *
 * A .cu file of the CUDA backend includes kernels/cuda/cuda_common.cuh, which includes
 * this header when the sources are built for the host (-Dcuda-emu=true, BAGEL_CUDA_EMU).
 * Everything here mirrors a CUDA spelling: the toolkit's own headers give the host
 * compiler dim3, the bf16/fp16 types and the runtime API declarations; this header adds
 * the device built-ins (threadIdx..., barriers, warp intrinsics, atomics, a few math
 * intrinsics) and the project macros SHARED()/DYN_SHARED()/LAUNCH() that both worlds
 * spell the same way.  Each CUDA thread runs on its own fiber (sched.cpp); warp
 * intrinsics exchange values between the 32 lanes for real (warp_gather), and every
 * barrier checks that all threads wait at the same one.  docs/cuda-emulation.md has the
 * whole picture.
 */
#ifndef BAGEL_CUDA_EMU_H
#define BAGEL_CUDA_EMU_H

#if defined(__CUDACC__)
#error "cuda_emu.h is the host emulation of CUDA; nvcc builds use the real headers"
#endif

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

/* ---- what the emulator exposes to tests and tools (C linkage) ---------------------- */
extern "C" {
/* The message of the last error the emulation reported ("" when none). */
const char *cuemu_error_message(void);
/* Run order of threads, blocks and streams: "forward", "reverse" or "random" (the
 * environment variable CUEMU_ORDER sets it at start-up; CUEMU_SEED seeds "random"). */
int cuemu_set_order(const char *order);
const char *cuemu_order(void);
/* Counters since start-up: fiber switches, barrier releases, blocks run. */
typedef struct {
  unsigned long long switches, barriers, warp_collectives, blocks, launches;
} CuemuStats;
void cuemu_get_stats(CuemuStats *st);
}

namespace cuemu {

/* Where a barrier or warp intrinsic was called from. */
struct Site {
  const char *file;
  int line;
  const char *what;
};

/* The per-thread values kernel code reads; the scheduler fills them. */
struct ThreadCtx {
  uint3 tid, bid;
  dim3 bdim, gdim;
  unsigned lane, warp;
};

/* The CUDA thread running on this OS thread.  Fibers never migrate between OS threads,
 * so a cached address of this variable stays right across context switches. */
extern __thread const ThreadCtx *cur __attribute__((tls_model("initial-exec")));

[[noreturn]] void kernel_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Block barrier; op 0 plain, 1 count, 2 and, 3 or (the __syncthreads_* family). */
int block_barrier(int op, int pred, const char *file, int line, const char *what);

/* Warp collective: every lane of the warp deposits n (<= 64) bytes; when all 32 have
 * arrived, each gets the table of the 32 deposits (lane i at offset i*64), valid until
 * the lane's next collective.  Checks the full mask and that all lanes are at the same
 * intrinsic.  sync: also a memory barrier among the lanes (__syncwarp). */
const unsigned char *warp_gather(unsigned mask, const void *in, size_t n, bool sync,
                                 const char *file, int line, const char *what);
constexpr size_t kWarpSlot = 64;

/* Shared memory of the running block: one buffer per SHARED() site, filled with 0xff
 * bytes (NaN in every float format) when the block starts using it. */
void *shared_static(const char *file, int line, size_t size, size_t align);
void *shared_dynamic(const char *file, int line);
bool is_shared(const void *p, size_t n);
/* Asynchronous copies (cp.async): checked, then either queued for the wait or (true) to
 * be done by the caller at once, as the run order decides. */
bool cp_async_queue(void *dst, const void *src, unsigned bytes, const char *file, int line);
void cp_async_commit();
struct AsyncCopy {
  void *dst;
  const void *src;
  unsigned bytes;
};
/* The copies of all groups but the newest n, removed from the queue. */
size_t cp_async_take(int n, AsyncCopy *out, size_t cap);

/* Happens-before annotations for ThreadSanitizer (no-ops otherwise). */
void tsan_fence();
void tsan_atomic(const volatile void *addr);

/* ---- the launch -------------------------------------------------------------------- */
struct LaunchSpec {
  const char *kernel, *file;
  int line;
  const void *func;                      /* identity for cudaFuncSetAttribute */
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  void (*invoke)(const void *pack);      /* runs the kernel body for the current thread */
  std::shared_ptr<const void> pack;      /* kernel pointer + argument values */
};
struct PtrArg {
  int index;
  const void *value;
};
cudaError_t launch_submit(LaunchSpec &spec, const PtrArg *ptrs, int nptrs);

template <typename T>
constexpr bool kernel_arg_ok() {
  return std::is_arithmetic<T>::value || std::is_enum<T>::value || std::is_pointer<T>::value ||
         (std::is_class<T>::value && std::is_trivially_copyable<T>::value);
}

template <typename... P, typename... A>
cudaError_t launch(void (*k)(P...), const char *kname, const char *file, int line, dim3 grid,
                   dim3 block, size_t smem, cudaStream_t stream, A &&...args) {
  static_assert(sizeof...(P) == sizeof...(A), "LAUNCH: wrong number of kernel arguments");
  static_assert((kernel_arg_ok<std::decay_t<P>>() && ... && true),
                "kernel rule: kernel arguments are plain values and device pointers");
  struct Pack {
    void (*k)(P...);
    std::tuple<std::decay_t<P>...> args;
  };
  auto pack = std::make_shared<const Pack>(Pack{k, std::tuple<std::decay_t<P>...>(
                                                       std::forward<A>(args)...)});
  PtrArg ptrs[sizeof...(P) + 1];
  int nptrs = 0;
  std::apply(
      [&](const auto &...v) {
        int i = 0;
        auto note = [&](const auto &x) {
          if constexpr (std::is_pointer<std::decay_t<decltype(x)>>::value)
            ptrs[nptrs++] = PtrArg{i, (const void *)x};
          i++;
        };
        (note(v), ...);
      },
      pack->args);
  LaunchSpec spec{kname, file, line, (const void *)k, grid, block, smem, stream,
                  [](const void *p) {
                    const Pack *pk = static_cast<const Pack *>(p);
                    std::apply(pk->k, pk->args);
                  },
                  pack};
  launch_submit(spec, ptrs, nptrs);
  return cudaGetLastError();  // as LAUNCH does under nvcc: also reports (and clears) earlier errors
}

/* ---- warp shuffles, exactly as PTX shfl.sync computes the source lane ----------------- */
enum ShflMode { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_BFLY };

template <typename T>
T shfl(ShflMode mode, const char *file, int line, const char *what, unsigned mask, T var,
       int b, int width = 32) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8,
                "__shfl_*_sync takes values of at most 8 bytes");
  if (width < 1 || width > 32 || (width & (width - 1)))
    kernel_fail(file, line, "%s: width %d is not a power of two in 1..32", what, width);
  const unsigned char *tab = warp_gather(mask, &var, sizeof(T), false, file, line, what);
  int lane = (int)cur->lane;
  int segmask = 32 - width, cval = mode == SHFL_UP ? 0 : 31;
  int max_lane = (lane & segmask) | (cval & ~segmask), min_lane = lane & segmask;
  int bval = b & 31, j = lane;
  bool ok = false;
  switch (mode) {
  case SHFL_UP: j = lane - bval; ok = j >= max_lane; break;
  case SHFL_DOWN: j = lane + bval; ok = j <= max_lane; break;
  case SHFL_BFLY: j = lane ^ bval; ok = j <= max_lane; break;
  case SHFL_IDX: j = min_lane | (bval & ~segmask); ok = j <= max_lane; break;
  }
  if (!ok) j = lane;
  T out;
  memcpy((void *)&out, tab + (size_t)j * kWarpSlot, sizeof(T));
  return out;
}

inline unsigned ballot(const char *file, int line, const char *what, unsigned mask, int pred) {
  int p = pred != 0;
  const unsigned char *tab = warp_gather(mask, &p, sizeof p, false, file, line, what);
  unsigned bits = 0;
  for (unsigned i = 0; i < 32; i++) {
    int v;
    memcpy(&v, tab + i * kWarpSlot, sizeof v);
    bits |= (unsigned)(v != 0) << i;
  }
  return bits;
}

/* ---- atomics: relaxed, as on the GPU; __threadfence() orders them for TSan ------------ */
template <typename T>
T atomic_rmw_int(T *p, T v, int op) {
  tsan_atomic(p);
  switch (op) {
  case 0: return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  case 1: return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED);
  case 2: return __atomic_fetch_and(p, v, __ATOMIC_RELAXED);
  case 3: return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
  case 4: return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED);
  default: return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
  }
}
/* Read-modify-write of any 2/4/8-byte type through a compare-and-swap loop. */
template <typename T, typename F>
T atomic_cas_loop(T *p, F f) {
  using U = std::conditional_t<sizeof(T) == 8, uint64_t,
                               std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>>;
  static_assert(sizeof(T) == sizeof(U), "atomic on an unsupported size");
  tsan_atomic(p);
  U *u = reinterpret_cast<U *>(p);
  U old = __atomic_load_n(u, __ATOMIC_RELAXED), nw;
  T o;
  do {
    memcpy((void *)&o, &old, sizeof o);
    T n = f(o);
    memcpy(&nw, &n, sizeof nw);
  } while (!__atomic_compare_exchange_n(u, &old, nw, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return o;
}

} /* namespace cuemu */

/* ---- the runtime's C++ templates that cuda_runtime.h offers only to nvcc ------------- */
template <class T>
inline cudaError_t cudaFuncSetAttribute(T *entry, enum cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute((const void *)entry, attr, value);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                                      enum cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
  return ::cudaMemcpyToSymbol((const void *)&symbol, src, count, offset, kind);
}

/* ---- device built-ins ---------------------------------------------------------------- */
#define threadIdx (::cuemu::cur->tid)
#define blockIdx (::cuemu::cur->bid)
#define blockDim (::cuemu::cur->bdim)
#define gridDim (::cuemu::cur->gdim)
static constexpr int warpSize = 32;

#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

/* The toolkit makes __shared__ empty for a host compiler: a raw __shared__ array would
 * silently become a private array of each thread.  Make it an error instead. */
#undef __shared__
#define __shared__ static_assert(false, "use SHARED()/DYN_SHARED() instead of __shared__");

/* SHARED(float, tile, [32][33]);  ->  __shared__ float tile[32][33];  on the GPU. */
#define SHARED(T, name, dims)                                                              \
  T(&name) dims = *reinterpret_cast<T(*) dims>(                                           \
      ::cuemu::shared_static(__FILE__, __LINE__, sizeof(T dims), alignof(T)))
/* DYN_SHARED(float, buf);  ->  the dynamic shared memory of the launch, as float *. */
#define DYN_SHARED(T, name) T *name = reinterpret_cast<T *>(::cuemu::shared_dynamic(__FILE__, __LINE__))

/* LAUNCH(kernel, grid, block, smem, stream, args...) launches and returns cudaGetLastError(). */
#define LAUNCH(kernel, grid, block, smem, stream, ...)                                     \
  ::cuemu::launch(kernel, #kernel, __FILE__, __LINE__, (grid), (block), (smem), (stream),   \
                  ##__VA_ARGS__)

#define __syncthreads() ((void)::cuemu::block_barrier(0, 0, __FILE__, __LINE__, "__syncthreads"))
#define __syncthreads_count(p) ::cuemu::block_barrier(1, (p), __FILE__, __LINE__, "__syncthreads_count")
#define __syncthreads_and(p) ::cuemu::block_barrier(2, (p), __FILE__, __LINE__, "__syncthreads_and")
#define __syncthreads_or(p) ::cuemu::block_barrier(3, (p), __FILE__, __LINE__, "__syncthreads_or")
/* __syncwarp() and __syncwarp(mask): a call object, so the empty form needs no GNU
 * comma-swallowing (which -std=c++17 does not do) */
#define __syncwarp(...) ::cuemu::SyncwarpAt{__FILE__, __LINE__}(__VA_ARGS__)
#define __shfl_sync(...) ::cuemu::shfl(::cuemu::SHFL_IDX, __FILE__, __LINE__, "__shfl_sync", __VA_ARGS__)
#define __shfl_up_sync(...) ::cuemu::shfl(::cuemu::SHFL_UP, __FILE__, __LINE__, "__shfl_up_sync", __VA_ARGS__)
#define __shfl_down_sync(...) ::cuemu::shfl(::cuemu::SHFL_DOWN, __FILE__, __LINE__, "__shfl_down_sync", __VA_ARGS__)
#define __shfl_xor_sync(...) ::cuemu::shfl(::cuemu::SHFL_BFLY, __FILE__, __LINE__, "__shfl_xor_sync", __VA_ARGS__)
#define __ballot_sync(mask, pred) ::cuemu::ballot(__FILE__, __LINE__, "__ballot_sync", (mask), (pred))
#define __all_sync(mask, pred) (::cuemu::ballot(__FILE__, __LINE__, "__all_sync", (mask), (pred)) == 0xffffffffu)
#define __any_sync(mask, pred) (::cuemu::ballot(__FILE__, __LINE__, "__any_sync", (mask), (pred)) != 0u)
#define __trap() ::cuemu::kernel_fail(__FILE__, __LINE__, "__trap() called")

namespace cuemu {
struct SyncwarpAt {
  const char *file;
  int line;
  void operator()(unsigned mask = 0xffffffffu) const { warp_gather(mask, nullptr, 0, true, file, line, "__syncwarp"); }
};
} /* namespace cuemu */

inline void __threadfence() { ::cuemu::tsan_fence(); __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { ::cuemu::tsan_fence(); __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* Atomics (device and shared memory alike). */
inline int atomicAdd(int *p, int v) { return ::cuemu::atomic_rmw_int(p, v, 0); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return ::cuemu::atomic_rmw_int(p, v, 0); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
  return ::cuemu::atomic_rmw_int(p, v, 0);
}
inline float atomicAdd(float *p, float v) {
  return ::cuemu::atomic_cas_loop(p, [v](float o) { return o + v; });
}
inline double atomicAdd(double *p, double v) {
  return ::cuemu::atomic_cas_loop(p, [v](double o) { return o + v; });
}
inline __nv_bfloat162 atomicAdd(__nv_bfloat162 *p, __nv_bfloat162 v) {
  return ::cuemu::atomic_cas_loop(p, [v](__nv_bfloat162 o) { return o + v; });
}
inline __half2 atomicAdd(__half2 *p, __half2 v) {
  return ::cuemu::atomic_cas_loop(p, [v](__half2 o) { return o + v; });
}
inline int atomicSub(int *p, int v) { return ::cuemu::atomic_rmw_int(p, v, 1); }
inline unsigned atomicSub(unsigned *p, unsigned v) { return ::cuemu::atomic_rmw_int(p, v, 1); }
inline int atomicAnd(int *p, int v) { return ::cuemu::atomic_rmw_int(p, v, 2); }
inline unsigned atomicAnd(unsigned *p, unsigned v) { return ::cuemu::atomic_rmw_int(p, v, 2); }
inline int atomicOr(int *p, int v) { return ::cuemu::atomic_rmw_int(p, v, 3); }
inline unsigned atomicOr(unsigned *p, unsigned v) { return ::cuemu::atomic_rmw_int(p, v, 3); }
inline int atomicXor(int *p, int v) { return ::cuemu::atomic_rmw_int(p, v, 4); }
inline unsigned atomicXor(unsigned *p, unsigned v) { return ::cuemu::atomic_rmw_int(p, v, 4); }
inline int atomicExch(int *p, int v) { return ::cuemu::atomic_rmw_int(p, v, 5); }
inline unsigned atomicExch(unsigned *p, unsigned v) { return ::cuemu::atomic_rmw_int(p, v, 5); }
inline float atomicExch(float *p, float v) {
  return ::cuemu::atomic_cas_loop(p, [v](float) { return v; });
}
template <typename T>
inline T atomicMax(T *p, T v) {
  return ::cuemu::atomic_cas_loop(p, [v](T o) { return o < v ? v : o; });
}
template <typename T>
inline T atomicMin(T *p, T v) {
  return ::cuemu::atomic_cas_loop(p, [v](T o) { return v < o ? v : o; });
}
template <typename T>
inline T atomicCAS(T *p, T cmp, T v) {
  static_assert(std::is_integral<T>::value, "atomicCAS on integers");
  ::cuemu::tsan_atomic(p);
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;
}

/* Loads through the read-only / streaming caches are plain loads here. */
template <typename T> inline T __ldg(const T *p) { return *p; }
template <typename T> inline T __ldcs(const T *p) { return *p; }
template <typename T> inline T __ldcg(const T *p) { return *p; }
template <typename T> inline void __stcs(T *p, T v) { *p = v; }
template <typename T> inline void __stcg(T *p, T v) { *p = v; }

/* Integer and bit intrinsics. */
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }

/* Float intrinsics.  The GPU's fast approximations (__expf, __fdividef, rsqrtf...) are
 * computed exactly here: the emulation checks logic and layouts, not the last ulp. */
inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float f) { int x; memcpy(&x, &f, 4); return x; }
inline float __uint_as_float(unsigned x) { float f; memcpy(&f, &x, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned x; memcpy(&x, &f, 4); return x; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x > 1.0f ? 1.0f : (x >= 0.0f ? x : 0.0f); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
  return __float2bfloat16_rn((float)((double)__bfloat162float(a) * __bfloat162float(b) +
                                     __bfloat162float(c)));
}
inline __half __hfma(__half a, __half b, __half c) {
  return __float2half_rn((float)((double)__half2float(a) * __half2float(b) + __half2float(c)));
}
inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c) {
  return __halves2bfloat162(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y));
}
inline __nv_bfloat16 hexp(__nv_bfloat16 x) { return __float2bfloat16_rn(expf(__bfloat162float(x))); }

#endif /* BAGEL_CUDA_EMU_H */
