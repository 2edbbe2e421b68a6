/* kernels/cuda/emu/emu_internal.h — what the parts of the CUDA emulation share:
 * configuration, error reporting, the device-memory registry and the grid runner.
 * Not for kernels or backend code (they see cuda_emu.h and the CUDA headers only). */
#ifndef BAGEL_CUDA_EMU_INTERNAL_H
#define BAGEL_CUDA_EMU_INTERNAL_H

#include "cuda_emu.h"
#include "fiber.h"

#include <stdarg.h>

#include <functional>
#include <mutex>
#include <string>

#ifdef CUEMU_TSAN
#include <sanitizer/tsan_interface.h>
/* TSan must not see the emulator's own bookkeeping (it is ordered by the fiber switches,
 * which TSan is told not to treat as synchronisation). */
extern "C" void __tsan_ignore_thread_begin(void);
extern "C" void __tsan_ignore_thread_end(void);
struct TsanIgnore {
  TsanIgnore() { __tsan_ignore_thread_begin(); }
  ~TsanIgnore() { __tsan_ignore_thread_end(); }
};
#define CUEMU_TSAN_IGNORE TsanIgnore tsan_ignore_
#define CUEMU_TSAN_RELEASE(a) __tsan_release((void *)(a))
#define CUEMU_TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
#else
#define CUEMU_TSAN_IGNORE do {} while (0)
#define CUEMU_TSAN_RELEASE(a) do {} while (0)
#define CUEMU_TSAN_ACQUIRE(a) do {} while (0)
#endif

namespace cuemu {

enum class Order { Forward, Reverse, Random };

struct Config {
  Order order = Order::Forward;
  unsigned long long seed = 1;
  bool deferred = true;        /* CUEMU_LAUNCH=deferred|immediate */
  bool abort_on_error = false; /* CUEMU_ABORT=1: abort() at the first error (debugging) */
  bool quiet = false;          /* CUEMU_QUIET=1: do not print errors to stderr */
  size_t stack_size = 0;       /* CUEMU_STACK_KB */
  size_t mem_total = 0;        /* CUEMU_MEM_MB: the emulated device's memory */
};
Config &config();

/* xorshift64*: reproducible "random" run orders. */
struct Rng {
  unsigned long long s;
  unsigned long long next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  unsigned below(unsigned n) { return (unsigned)(next() % n); }
};
Rng next_rng();              /* a generator for one launch / one drain (from CUEMU_SEED) */

/* Errors: printed (unless quiet) and kept as the message cuemu_error_message() returns. */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vreport(const char *fmt, va_list ap);
std::string strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the device: memory registry, errors, streams (runtime.cpp, streams.cpp) ------- */
enum class MemKind { Device, PinnedHost };
struct Alloc {
  char *base;
  size_t size;
  MemKind kind;
};
/* The allocation that holds [p, p+n) (p itself inside it, even when n is 0), nullptr
 * when there is none.  The caller holds the device lock. */
const Alloc *find_alloc(const void *p, size_t n, MemKind kind);
/* Bytes from p to the end of its device allocation, or -1 when p is not device memory. */
long long device_bytes_from(const void *p);

std::recursive_mutex &device_lock();
/* Record err for cudaGetLastError (and as sticky, for errors that kill the context). */
cudaError_t set_error(cudaError_t err, bool sticky);
cudaError_t sticky_error();
/* The dynamic shared memory a kernel may use (cudaFuncSetAttribute). */
int func_max_dynamic_smem(const void *func);

/* Work on a stream: executed at once, deferred to the next synchronisation, or recorded
 * into a graph while the stream captures (streams.cpp). */
cudaError_t stream_submit(cudaStream_t s, const char *what, std::function<void()> work);
cudaError_t stream_check(cudaStream_t s);
unsigned long long launches_submitted();
void drain_all();
/* cudaDeviceReset: every stream, event and graph is destroyed (after drain_all). */
void streams_reset();

/* ---- the grid runner (sched.cpp) ----------------------------------------------------- */
/* Runs every block of a launch on the calling OS thread; false (and a report) when the
 * kernel broke a rule of the execution model or faulted. */
bool run_grid(const LaunchSpec &spec);
constexpr size_t kStaticSmemLimit = 48 * 1024;     /* static __shared__ per block */
constexpr size_t kDefaultDynSmemLimit = 48 * 1024; /* without cudaFuncSetAttribute */
constexpr size_t kMaxSmemPerBlock = 99 * 1024;     /* sm_86/sm_89 opt-in limit, the smallest */

} /* namespace cuemu */

#endif
