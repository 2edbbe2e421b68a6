/* kernels/cuda/emu/sched.cpp — runs a grid: one fiber per CUDA thread, block by block.
 *
 * A block's threads run one at a time on the calling OS thread, each until it blocks
 * (at __syncthreads or a warp intrinsic) or exits; the next one comes from a ready queue
 * filled in the configured run order (forward, reverse, random), so code that depends on
 * which thread gets somewhere first gives different results in different orders.  In
 * forward order the warps of a block advance in lockstep from one warp intrinsic to the
 * next; in reverse order a warp released from one runs ahead of the others up to the
 * next block barrier.
 * Barriers are checked: every thread of the block must wait at the same __syncthreads,
 * every lane of a warp at the same warp intrinsic with the full mask, and when nothing
 * can run any more the state of every thread is reported.  Warp intrinsics really
 * exchange values: each lane deposits its operand and reads the others' (warp_gather).
 *
 * For ThreadSanitizer each fiber is a thread of its own and switches do not synchronise;
 * barriers and __syncwarp add happens-before edges (release on arrival, acquire on
 * leaving), so a missing barrier is a data race TSan reports.
 */
#include "emu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <vector>

namespace cuemu {

__thread const ThreadCtx *cur __attribute__((tls_model("initial-exec")));

namespace {

enum TState : unsigned char { T_READY, T_RUN, T_BAR, T_WARP, T_DONE };

struct Block;

struct Thread : ThreadCtx {
  Block *blk;
  Fiber *fiber;
  unsigned linear;
  TState state;
  const char *wfile, *wwhat;  /* where it waits */
  int wline;
  std::vector<AsyncCopy> cp;  /* queued cp.async copies */
  std::vector<size_t> cp_ends; /* end (in cp) of each committed group */
#ifdef CUEMU_TSAN
  const volatile void *last_atomic;
  bool fence_pending;
#endif
};

struct Warp {
  unsigned arrived, gen;
  const char *file, *what;
  int line;
  bool sync;
  size_t n;
  unsigned char *slots; /* [2][32][kWarpSlot]: one table per generation parity */
  char tsan_sync[2];
};

struct SmemSite {
  const char *file;
  int line;
  size_t size;
  void *p;
};

struct Block {
  const LaunchSpec *spec;
  uint3 bid;
  unsigned n;
  Thread *t;
  Warp *w;
  unsigned *q; /* ready queue (ring of n) */
  unsigned qhead, qcount;
  unsigned bar_arrived, bar_gen;
  const char *bar_file, *bar_what;
  int bar_line, bar_acc, bar_op;
  int bar_result[2];
  char bar_sync[2];
  char start_sync, end_sync;
  unsigned exited;
  std::vector<SmemSite> smem;
  size_t smem_static;
  void *dyn;
  size_t dyn_size;
  bool failed;
  std::string msg;
  Rng rng;
  Order order;
};

/* Per OS thread: the fibers and arrays, reused from block to block. */
struct Sched {
  Fiber host;
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::vector<unsigned char> slots;
  std::vector<unsigned> queue, perm;
  Block blk;
  bool in_use = false;
  Sched() { fiber_init_host(&host); }
  ~Sched() {
    for (auto &f : fibers) fiber_destroy(f.get());
  }
  void drop_fibers() {
    for (auto &f : fibers) fiber_destroy(f.get());
    fibers.clear();
  }
};

thread_local std::unique_ptr<Sched> t_sched;

unsigned long long g_switches, g_barriers, g_collectives, g_blocks;

inline Thread *self() { return static_cast<Thread *>(const_cast<ThreadCtx *>(cur)); }

void push(Block &b, unsigned i) {
  unsigned at = b.qhead + b.qcount++;
  b.q[at < b.n ? at : at - b.n] = i;
  b.t[i].state = T_READY;
}

unsigned pop(Block &b) {
  unsigned i = b.q[b.qhead];
  if (++b.qhead == b.n) b.qhead = 0;
  b.qcount--;
  return i;
}

/* Make threads first..first+count-1 ready, in the run order. */
void push_batch(Block &b, unsigned first, unsigned count) {
  switch (b.order) {
  case Order::Forward:
    for (unsigned i = 0; i < count; i++) push(b, first + i);
    break;
  case Order::Reverse:
    for (unsigned i = count; i-- > 0;) push(b, first + i);
    break;
  case Order::Random: {
    std::vector<unsigned> &p = t_sched->perm;
    p.resize(count);
    for (unsigned i = 0; i < count; i++) p[i] = first + i;
    for (unsigned i = count; i > 1; i--) std::swap(p[i - 1], p[b.rng.below(i)]);
    for (unsigned i = 0; i < count; i++) push(b, p[i]);
    break;
  }
  }
}

/* Make the 32 lanes of warp w ready.  Forward order queues them behind everybody, so the
 * warps of a block advance in lockstep; reverse order puts them first (lane 31 first), so
 * the warp runs ahead of the others until it blocks at a barrier; random does either. */
void push_warp(Block &b, unsigned w) {
  bool ahead = b.order == Order::Reverse || (b.order == Order::Random && (b.rng.next() & 1));
  if (!ahead) {
    push_batch(b, w * 32, 32);
    return;
  }
  unsigned lanes[32];
  for (unsigned i = 0; i < 32; i++) lanes[i] = w * 32 + i;
  if (b.order == Order::Random)
    for (unsigned i = 32; i > 1; i--) std::swap(lanes[i - 1], lanes[b.rng.below(i)]);
  for (unsigned i = 0; i < 32; i++) {  // pushed in front one by one: the last pushed runs first
    b.qhead = b.qhead ? b.qhead - 1 : b.n - 1;
    b.q[b.qhead] = lanes[i];
    b.qcount++;
    b.t[lanes[i]].state = T_READY;
  }
}

/* Give the OS thread to the next ready thread (or back to the host when none is). */
void switch_next(Thread *t, bool exiting) {
  Block &b = *t->blk;
  Fiber *to;
  if (b.qcount) {
    Thread *nt = &b.t[pop(b)];
    nt->state = T_RUN;
    if (nt == t) return;
    to = nt->fiber;
  } else {
    to = &t_sched->host;
  }
  g_switches++;
  fiber_switch(t->fiber, to, exiting);
  cur = t;
}

const char *state_name(const Thread &t) {
  switch (t.state) {
  case T_READY: return "ready";
  case T_RUN: return "running";
  case T_BAR: return "waiting at";
  case T_WARP: return "waiting at";
  default: return "exited";
  }
}

/* "threads 0-31 waiting at __syncthreads (a.cu:12); threads 32-63 exited" */
std::string describe_threads(const Block &b) {
  std::string s;
  for (unsigned i = 0; i < b.n;) {
    const Thread &a = b.t[i];
    unsigned j = i + 1;
    while (j < b.n && b.t[j].state == a.state && b.t[j].wline == a.wline && b.t[j].wfile == a.wfile &&
           b.t[j].wwhat == a.wwhat)
      j++;
    s += j - i == 1 ? strprintf("\n    thread %u: ", i) : strprintf("\n    threads %u-%u: ", i, j - 1);
    s += state_name(a);
    if (a.state == T_BAR || a.state == T_WARP) s += strprintf(" %s (%s:%d)", a.wwhat, a.wfile, a.wline);
    i = j;
  }
  return s;
}

std::string where(const Block &b) {
  return strprintf("kernel %s (launched at %s:%d), block (%u,%u,%u)", b.spec->kernel, b.spec->file,
                   b.spec->line, b.bid.x, b.bid.y, b.bid.z);
}

/* Stop the block: the message (prefixed with where it happened, followed by every
 * thread's state when asked) is kept for the host, and the fiber never runs again.
 * Nothing that owns memory may live in this frame or the caller's when it switches away. */
[[noreturn]] void fail_block(Thread *t, bool states, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
[[noreturn]] void fail_block(Thread *t, bool states, const char *fmt, ...) {
  Block &b = *t->blk;
  {
    CUEMU_TSAN_IGNORE;  // the host reads the message; the fibers' memory is not ordered with it
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    b.msg = where(b) + ": " + buf;
    if (states) b.msg += describe_threads(b);
    b.failed = true;
  }
  g_switches++;
  fiber_switch(t->fiber, &t_sched->host, true);
  abort(); /* never resumed */
}

bool same_site(const char *f1, int l1, const char *f2, int l2) {
  return l1 == l2 && (f1 == f2 || strcmp(f1, f2) == 0);
}

void thread_main(void *p) {
  Thread *t = (Thread *)p;
  Block &b = *t->blk;
  cur = t;
  CUEMU_TSAN_ACQUIRE(&b.start_sync);
  b.spec->invoke(b.spec->pack.get());
  t->state = T_DONE;
  b.exited++;
  t->cp.clear();
  t->cp_ends.clear();
  if (b.bar_arrived)
    fail_block(t, false,
               "thread %u exited while %u threads wait at %s (%s:%d): a barrier in non-uniform "
               "control flow (early return?)",
               t->linear, b.bar_arrived, b.bar_what, b.bar_file, b.bar_line);
  const Warp &w = b.w[t->warp];
  if (w.arrived)
    fail_block(t, false, "lane %u of warp %u exited while %u lanes wait at %s (%s:%d)", t->lane, t->warp,
               w.arrived, w.what, w.file, w.line);
  CUEMU_TSAN_RELEASE(&b.end_sync);
  switch_next(t, true);
  abort(); /* an exited fiber is never resumed */
}

void *alloc_smem(size_t size, size_t align) {
  CUEMU_TSAN_IGNORE;
  void *p = nullptr;
  if (posix_memalign(&p, align > 16 ? align : 16, size ? size : 1)) return nullptr;
  memset(p, 0xff, size);  // NaN in every float format: a missing load shows
  return p;
}
void free_smem(void *p) {
  CUEMU_TSAN_IGNORE;
  free(p);
}

void release_block_memory(Block &b) {
  for (SmemSite &s : b.smem) free_smem(s.p);
  b.smem.clear();
  free_smem(b.dyn);
  b.dyn = nullptr;
}

/* Prepare the Sched arrays for blocks of n threads. */
bool prepare(Sched &S, unsigned n) {
  size_t stack = config().stack_size;
  while (S.fibers.size() < n) {
    std::unique_ptr<Fiber> f(new Fiber);
    if (!fiber_create(f.get(), stack)) return false;
    char name[48];
    snprintf(name, sizeof name, "CUDA thread %zu of each block", S.fibers.size());
    fiber_set_name(f.get(), name);
    S.fibers.push_back(std::move(f));
  }
  unsigned nw = n / 32;
  S.threads.resize(n);
  S.warps.resize(nw);
  S.slots.resize((size_t)nw * 2 * 32 * kWarpSlot);
  S.queue.resize(n);
  return true;
}

bool run_block(Sched &S, Block &b) {
  const LaunchSpec &sp = *b.spec;
  unsigned bx = sp.block.x, by = sp.block.y;
  for (unsigned i = 0; i < b.n; i++) {
    Thread &t = b.t[i];
    t.tid = uint3{i % bx, (i / bx) % by, i / (bx * by)};
    t.bid = b.bid;
    t.bdim = sp.block;
    t.gdim = sp.grid;
    t.lane = i % 32;
    t.warp = i / 32;
    t.linear = i;
    t.blk = &b;
    t.fiber = S.fibers[i].get();
    t.wfile = t.wwhat = nullptr;
    t.wline = 0;
    t.cp.clear();
    t.cp_ends.clear();
#ifdef CUEMU_TSAN
    t.last_atomic = nullptr;
    t.fence_pending = false;
#endif
    fiber_arm(t.fiber, thread_main, &t);
  }
  for (unsigned w = 0; w < b.n / 32; w++) {
    Warp &wp = b.w[w];
    wp.arrived = wp.gen = 0;
    wp.slots = &S.slots[(size_t)w * 2 * 32 * kWarpSlot];
  }
  b.qhead = b.qcount = 0;
  b.bar_arrived = b.bar_gen = 0;
  b.bar_acc = 0;
  b.exited = 0;
  b.smem_static = 0;
  b.failed = false;
  b.msg.clear();
  b.dyn_size = sp.smem;
  b.dyn = alloc_smem(sp.smem, 16);
  if (!b.dyn) {
    b.msg = strprintf("%s: out of host memory for %zu bytes of dynamic shared memory", where(b).c_str(), sp.smem);
    return false;
  }
  push_batch(b, 0, b.n);
  CUEMU_TSAN_RELEASE(&b.start_sync);
  Thread *first = &b.t[pop(b)];
  first->state = T_RUN;
  g_switches++;
  fiber_switch(&S.host, first->fiber, false);
  cur = nullptr;
  if (b.failed || b.exited != b.n)  // abandoned fibers never reached their release at exit
    for (unsigned i = 0; i < b.n; i++) fiber_tsan_release(b.t[i].fiber, &t_sched->host, &b.end_sync);
  CUEMU_TSAN_ACQUIRE(&b.end_sync);
  release_block_memory(b);
  g_blocks++;
  if (!b.failed && b.exited != b.n) {
    b.failed = true;
    b.msg = strprintf("%s: deadlock: no thread can run%s", where(b).c_str(), describe_threads(b).c_str());
  }
  if (b.failed) {
    // Abandoned fibers: forget their stacks' poisoning and their TSan histories.
    for (unsigned i = 0; i < b.n; i++) fiber_scrub(b.t[i].fiber);
    S.drop_fibers();
  }
  return !b.failed;
}

} /* namespace */

/* ---- called by kernels (through cuda_emu.h) -------------------------------------------- */

void kernel_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  Thread *t = self();
  if (!t) {
    report("%s:%d: %s (device code called outside a kernel)", file, line, buf);
    abort();
  }
  fail_block(t, false, "thread (%u,%u,%u): %s:%d: %s", t->tid.x, t->tid.y, t->tid.z, file, line, buf);
}

int block_barrier(int op, int pred, const char *file, int line, const char *what) {
  Thread *t = self();
  Block &b = *t->blk;
  if (b.exited)
    fail_block(t, false,
               "thread %u reached %s (%s:%d) after %u threads of the block exited: a barrier in "
               "non-uniform control flow (early return?)",
               t->linear, what, file, line, b.exited);
  if (b.bar_arrived == 0) {
    b.bar_file = file;
    b.bar_line = line;
    b.bar_what = what;
    b.bar_op = op;
    b.bar_acc = op == 2 ? 1 : 0;
  } else if (!same_site(file, line, b.bar_file, b.bar_line) || b.bar_op != op) {
    t->state = T_BAR;
    t->wfile = file;
    t->wline = line;
    t->wwhat = what;
    fail_block(t, true, "divergent barrier: thread %u reached %s (%s:%d) while other threads wait at %s (%s:%d)",
               t->linear, what, file, line, b.bar_what, b.bar_file, b.bar_line);
  }
  if (op == 1) b.bar_acc += pred != 0;
  else if (op == 2) b.bar_acc &= pred != 0;
  else if (op == 3) b.bar_acc |= pred != 0;
  t->state = T_BAR;
  t->wfile = file;
  t->wline = line;
  t->wwhat = what;
  unsigned gen = b.bar_gen;
  CUEMU_TSAN_RELEASE(&b.bar_sync[gen & 1]);
  if (++b.bar_arrived == b.n) {
    b.bar_result[gen & 1] = b.bar_acc;
    b.bar_arrived = 0;
    b.bar_gen++;
    g_barriers++;
    push_batch(b, 0, b.n);
  }
  switch_next(t, false);
  t->wfile = t->wwhat = nullptr;
  t->wline = 0;
  CUEMU_TSAN_ACQUIRE(&b.bar_sync[gen & 1]);
  return b.bar_result[gen & 1];
}

const unsigned char *warp_gather(unsigned mask, const void *in, size_t n, bool sync,
                                 const char *file, int line, const char *what) {
  Thread *t = self();
  Block &b = *t->blk;
  Warp &w = b.w[t->warp];
  if (mask != 0xffffffffu)
    fail_block(t, false, "%s:%d: %s with mask 0x%08x: kernel rule: warp intrinsics take the full mask 0xffffffff",
               file, line, what, mask);
  if (w.arrived == 0) {
    w.file = file;
    w.line = line;
    w.what = what;
    w.sync = sync;
    w.n = n;
  } else if (!same_site(file, line, w.file, w.line) || strcmp(w.what, what) != 0) {
    fail_block(t, false, "divergent warp: lane %u of warp %u reached %s (%s:%d) while %u lanes wait at %s (%s:%d)",
               t->lane, t->warp, what, file, line, w.arrived, w.what, w.file, w.line);
  }
  unsigned gen = w.gen;
  unsigned char *tab = w.slots + (size_t)(gen & 1) * 32 * kWarpSlot;
  if (n) {
    CUEMU_TSAN_IGNORE;
    memcpy(tab + (size_t)t->lane * kWarpSlot, in, n);
  }
  t->state = T_WARP;
  t->wfile = file;
  t->wline = line;
  t->wwhat = what;
  if (sync) CUEMU_TSAN_RELEASE(&w.tsan_sync[gen & 1]);
  if (++w.arrived == 32) {
    w.arrived = 0;
    w.gen++;
    g_collectives++;
    push_warp(b, t->warp);
  }
  switch_next(t, false);
  t->wfile = t->wwhat = nullptr;
  t->wline = 0;
  if (sync) CUEMU_TSAN_ACQUIRE(&w.tsan_sync[gen & 1]);
  return tab;
}

void *shared_static(const char *file, int line, size_t size, size_t align) {
  Thread *t = self();
  Block &b = *t->blk;
  for (const SmemSite &s : b.smem)
    if (s.size == size && same_site(file, line, s.file, s.line)) return s.p;
  if (b.smem_static + size > kStaticSmemLimit)
    kernel_fail(file, line, "static shared memory of the block grows to %zu bytes (limit %zu)",
                b.smem_static + size, kStaticSmemLimit);
  if (b.smem_static + size + b.dyn_size > kMaxSmemPerBlock)
    kernel_fail(file, line, "static (%zu) + dynamic (%zu) shared memory exceeds %zu bytes per block",
                b.smem_static + size, b.dyn_size, kMaxSmemPerBlock);
  void *p = alloc_smem(size, align);
  if (!p) kernel_fail(file, line, "out of host memory for shared memory");
  b.smem.push_back(SmemSite{file, line, size, p});
  b.smem_static += size;
  return p;
}

void *shared_dynamic(const char *file, int line) {
  (void)file;
  (void)line;
  return self()->blk->dyn;
}

bool is_shared(const void *p, size_t n) {
  const Block &b = *self()->blk;
  const char *c = (const char *)p;
  auto inside = [&](const void *base, size_t size) {
    return c >= (const char *)base && c + n <= (const char *)base + size;
  };
  if (b.dyn && inside(b.dyn, b.dyn_size)) return true;
  for (const SmemSite &s : b.smem)
    if (inside(s.p, s.size)) return true;
  return false;
}

bool cp_async_queue(void *dst, const void *src, unsigned bytes, const char *file, int line) {
  Thread *t = self();
  if (bytes != 4 && bytes != 8 && bytes != 16)
    kernel_fail(file, line, "cp.async of %u bytes (4, 8 or 16)", bytes);
  if (((uintptr_t)dst | (uintptr_t)src) % bytes)
    kernel_fail(file, line, "cp.async of %u bytes from %p to %p: misaligned", bytes, src, dst);
  if (!is_shared(dst, bytes))
    kernel_fail(file, line, "cp.async destination %p is not this block's shared memory", dst);
  if (device_bytes_from(src) < (long long)bytes)
    kernel_fail(file, line, "cp.async source %p (+%u bytes) is not device memory", src, bytes);
  /* The hardware may land the copy any time between issue and wait: forward order lands
   * it at the wait (the latest), reverse at the issue (the earliest), random either way. */
  Block &b = *t->blk;
  if (b.order == Order::Reverse || (b.order == Order::Random && (b.rng.next() & 1))) return true;
  CUEMU_TSAN_IGNORE;
  t->cp.push_back(AsyncCopy{dst, src, bytes});
  return false;
}

void cp_async_commit() {
  Thread *t = self();
  CUEMU_TSAN_IGNORE;
  t->cp_ends.push_back(t->cp.size());
}

size_t cp_async_take(int n, AsyncCopy *out, size_t cap) {
  Thread *t = self();
  CUEMU_TSAN_IGNORE;
  size_t g = t->cp_ends.size();
  size_t lim = g > (size_t)n ? t->cp_ends[g - n - 1] : 0;
  size_t k = lim < cap ? lim : cap;
  for (size_t i = 0; i < k; i++) out[i] = t->cp[i];
  t->cp.erase(t->cp.begin(), t->cp.begin() + k);
  for (size_t &e : t->cp_ends) e = e > k ? e - k : 0;
  size_t done = 0;
  while (done < t->cp_ends.size() && t->cp_ends[done] == 0 && done + n < g) done++;
  t->cp_ends.erase(t->cp_ends.begin(), t->cp_ends.begin() + done);
  return k;
}

/* The GPU's atomics are relaxed; a __threadfence() before one makes it a release, one
 * after it an acquire (the "last block" reduction pattern).  TSan is told exactly that. */
void tsan_fence() {
#ifdef CUEMU_TSAN
  Thread *t = self();
  if (!t) return;
  if (t->last_atomic) CUEMU_TSAN_ACQUIRE(t->last_atomic);
  t->fence_pending = true;
#endif
}

void tsan_atomic(const volatile void *addr) {
#ifdef CUEMU_TSAN
  Thread *t = self();
  if (!t) return;
  if (t->fence_pending) CUEMU_TSAN_RELEASE(addr);
  t->fence_pending = false;
  t->last_atomic = addr;
#else
  (void)addr;
#endif
}

/* ---- the grid ------------------------------------------------------------------------- */

bool run_grid(const LaunchSpec &spec) {
  if (!t_sched) t_sched.reset(new Sched);
  Sched &S = *t_sched;
  if (S.in_use) {
    report("%s:%d: launch of %s from inside a kernel (dynamic parallelism is not emulated)", spec.file,
           spec.line, spec.kernel);
    return false;
  }
  unsigned n = spec.block.x * spec.block.y * spec.block.z;
  if (!prepare(S, n)) {
    report("%s:%d: %s: cannot allocate %u fiber stacks", spec.file, spec.line, spec.kernel, n);
    return false;
  }
  S.in_use = true;
  Block &b = S.blk;
  b.spec = &spec;
  b.n = n;
  b.t = S.threads.data();
  b.w = S.warps.data();
  b.q = S.queue.data();
  b.order = config().order;
  b.rng = next_rng();
  const dim3 g = spec.grid;
  unsigned long long nblocks = (unsigned long long)g.x * g.y * g.z;
  std::vector<unsigned long long> order;
  if (b.order == Order::Random) {
    order.resize(nblocks);
    for (unsigned long long i = 0; i < nblocks; i++) order[i] = i;
    for (unsigned long long i = nblocks; i > 1; i--) std::swap(order[i - 1], order[b.rng.next() % i]);
  }
  bool ok = true;
  for (unsigned long long k = 0; k < nblocks && ok; k++) {
    unsigned long long i = b.order == Order::Forward ? k : b.order == Order::Reverse ? nblocks - 1 - k : order[k];
    b.bid = uint3{(unsigned)(i % g.x), (unsigned)(i / g.x % g.y), (unsigned)(i / ((unsigned long long)g.x * g.y))};
    ok = run_block(S, b);
  }
  S.in_use = false;
  if (!ok) report("%s", b.msg.c_str());
  return ok;
}

} /* namespace cuemu */

extern "C" void cuemu_get_stats(CuemuStats *st) {
  using namespace cuemu;
  st->switches = g_switches;
  st->barriers = g_barriers;
  st->warp_collectives = g_collectives;
  st->blocks = g_blocks;
  st->launches = launches_submitted();
}
