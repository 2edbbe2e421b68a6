/* kernels/cuda/emu/fiber.cpp — the fiber switch of the CUDA emulation (see fiber.h). */
#include "fiber.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CUEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CUEMU_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#ifndef CUEMU_UCONTEXT
/* cuemu_ctx_switch(void **save_sp, void *new_sp): push the callee-saved registers, swap
 * stacks, pop them.  A fresh stack holds registers whose r12 is the entry and r13 its
 * argument, and returns into cuemu_ctx_start, which calls entry(arg) with the stack
 * aligned as the ABI wants (rsp % 16 == 8 at function entry). */
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl cuemu_ctx_switch\n"
    ".hidden cuemu_ctx_switch\n"
    ".type cuemu_ctx_switch,@function\n"
    "cuemu_ctx_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size cuemu_ctx_switch,.-cuemu_ctx_switch\n"
    ".p2align 4\n"
    ".globl cuemu_ctx_start\n"
    ".hidden cuemu_ctx_start\n"
    ".type cuemu_ctx_start,@function\n"
    "cuemu_ctx_start:\n"
    "  .cfi_startproc\n"
    "  .cfi_undefined rip\n"
    "  movq %r13, %rdi\n"
    "  callq *%r12\n"
    "  ud2\n"
    "  .cfi_endproc\n"
    ".size cuemu_ctx_start,.-cuemu_ctx_start\n");
extern "C" void cuemu_ctx_switch(void **save_sp, void *new_sp);
extern "C" void cuemu_ctx_start(void);
#endif

namespace cuemu {

namespace {
#ifdef CUEMU_ASAN
/* The context being left, for the sanitizer bookkeeping on the other side. */
__thread Fiber *g_from;
#endif

void on_arrival(Fiber *self) {
#ifdef CUEMU_ASAN
  const void *lo = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(self->asan_fake, &lo, &size);
  self->asan_fake = nullptr;
  if (g_from && g_from->host) {  // learn the OS thread's stack, to switch back to it
    g_from->stack = (char *)lo;
    g_from->stack_size = size;
  }
#else
  (void)self;
#endif
}

#ifdef CUEMU_UCONTEXT
void uc_entry(unsigned hi, unsigned lo) {
  Fiber *f = (Fiber *)(((uintptr_t)hi << 32) | lo);
  on_arrival(f);
  f->entry(f->arg);
}
#else
void fiber_first_entry(void *p) {
  Fiber *f = (Fiber *)p;
  on_arrival(f);
  f->entry(f->arg);
}
#endif
} /* namespace */

void fiber_init_host(Fiber *f) {
  f->host = true;
#ifdef CUEMU_TSAN
  f->tsan = __tsan_get_current_fiber();
#endif
}

bool fiber_create(Fiber *f, size_t stack_size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  stack_size = (stack_size + page - 1) / page * page;
  size_t total = stack_size + page;
  void *m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (m == MAP_FAILED) return false;
  mprotect(m, page, PROT_NONE);  // a stack overflow faults instead of corrupting memory
  f->map = (char *)m;
  f->map_size = total;
  f->stack = (char *)m + page;
  f->stack_size = stack_size;
#ifdef CUEMU_TSAN
  f->tsan = __tsan_create_fiber(0);
#endif
  return true;
}

void fiber_destroy(Fiber *f) {
#ifdef CUEMU_TSAN
  if (f->tsan && !f->host) __tsan_destroy_fiber(f->tsan);
#endif
  if (f->map) munmap(f->map, f->map_size);
  f->map = f->stack = nullptr;
  f->tsan = nullptr;
}

void fiber_arm(Fiber *f, void (*entry)(void *), void *arg) {
  f->entry = entry;
  f->arg = arg;
  f->asan_fake = nullptr;
#ifdef CUEMU_UCONTEXT
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = f->stack_size;
  f->uc.uc_link = nullptr;
  uintptr_t p = (uintptr_t)f;
  makecontext(&f->uc, (void (*)())uc_entry, 2, (unsigned)(p >> 32), (unsigned)p);
#else
  uintptr_t top = ((uintptr_t)f->stack + f->stack_size) & ~(uintptr_t)15;
  void **sp = (void **)(top - 72);  // after 6 pops and ret, rsp % 16 == 0
  memset(sp, 0, 72);
  sp[2] = f;                                  // r13: argument
  sp[3] = (void *)fiber_first_entry;          // r12: entry
  sp[6] = (void *)cuemu_ctx_start;            // return address
  f->sp = sp;
#endif
}

void fiber_switch(Fiber *from, Fiber *to, bool exiting) {
#ifdef CUEMU_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &from->asan_fake, to->stack, to->stack_size);
#else
  (void)exiting;
#endif
#ifdef CUEMU_TSAN
  __tsan_switch_to_fiber(to->tsan, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef CUEMU_ASAN
  g_from = from;
#endif
#ifdef CUEMU_UCONTEXT
  swapcontext(&from->uc, &to->uc);
#else
  cuemu_ctx_switch(&from->sp, to->sp);
#endif
  on_arrival(from);
}

void fiber_set_name(Fiber *f, const char *name) {
#ifdef CUEMU_TSAN
  __tsan_set_fiber_name(f->tsan, name);
#else
  (void)f, (void)name;
#endif
}

void fiber_tsan_release(Fiber *f, Fiber *host, void *addr) {
#ifdef CUEMU_TSAN
  __tsan_switch_to_fiber(f->tsan, __tsan_switch_to_fiber_no_sync);
  __tsan_release(addr);
  __tsan_switch_to_fiber(host->tsan, __tsan_switch_to_fiber_no_sync);
#else
  (void)f, (void)host, (void)addr;
#endif
}

void fiber_scrub(Fiber *f) {
#ifdef CUEMU_ASAN
  if (f->stack) __asan_unpoison_memory_region(f->stack, f->stack_size);
#else
  (void)f;
#endif
}

} /* namespace cuemu */
