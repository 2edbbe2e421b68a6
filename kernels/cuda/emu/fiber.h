/* kernels/cuda/emu/fiber.h — user-space threads for the CUDA emulation.
 *
 * One fiber per CUDA thread.  On x86-64 the switch is a dozen instructions of our own
 * (callee-saved registers and the stack pointer: no system call, unlike swapcontext,
 * which saves the signal mask with a syscall and is ~20x slower); elsewhere ucontext is
 * the fallback (also selectable with -DCUEMU_UCONTEXT).  Fibers never leave the OS thread
 * that created them.  The sanitizers are told about every switch: ASan about the stack
 * in use, TSan about the logical thread (each fiber is its own TSan thread, switched
 * without synchronisation, so that only barriers and atomics order memory accesses).
 */
#ifndef BAGEL_CUDA_EMU_FIBER_H
#define BAGEL_CUDA_EMU_FIBER_H

#include <stddef.h>

#if !defined(__x86_64__) && !defined(CUEMU_UCONTEXT)
#define CUEMU_UCONTEXT 1
#endif
#ifdef CUEMU_UCONTEXT
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define CUEMU_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(CUEMU_ASAN)
#define CUEMU_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(CUEMU_TSAN)
#define CUEMU_TSAN 1
#endif
#endif

namespace cuemu {

struct Fiber {
  void *sp = nullptr;              /* saved stack pointer while switched out */
  char *stack = nullptr;           /* usable stack [stack, stack + stack_size) */
  size_t stack_size = 0;
  char *map = nullptr;             /* the mapping, guard page included */
  size_t map_size = 0;
  void *tsan = nullptr;            /* TSan fiber context */
  void *asan_fake = nullptr;       /* ASan fake stack while switched out */
  bool host = false;               /* the OS thread's own context */
  void (*entry)(void *) = nullptr; /* set by fiber_arm */
  void *arg = nullptr;
#ifdef CUEMU_UCONTEXT
  ucontext_t uc;
#endif
};

/* The calling OS thread's own context, to switch back to. */
void fiber_init_host(Fiber *f);
/* A fiber with its own stack (a guard page below it).  false when out of memory. */
bool fiber_create(Fiber *f, size_t stack_size);
void fiber_destroy(Fiber *f);
/* Make the next switch to f start entry(arg) on a fresh stack.  entry never returns:
 * it ends with a fiber_switch(..., exiting = true). */
void fiber_arm(Fiber *f, void (*entry)(void *), void *arg);
/* Save from, resume to.  exiting: from will never be resumed as it is (only re-armed). */
void fiber_switch(Fiber *from, Fiber *to, bool exiting);
/* The name sanitizer reports give the fiber's logical thread. */
void fiber_set_name(Fiber *f, const char *name);
/* TSan: make everything abandoned fiber f did happen before a later acquire of addr
 * (run from the host context `host`, without switching stacks). */
void fiber_tsan_release(Fiber *f, Fiber *host, void *addr);
/* Forget all stack poisoning of an abandoned fiber (after a kernel error). */
void fiber_scrub(Fiber *f);

} /* namespace cuemu */

#endif
