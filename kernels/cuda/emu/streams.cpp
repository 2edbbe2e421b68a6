/* kernels/cuda/emu/streams.cpp — streams, events, graphs and kernel launches.
 *
 * Work submitted to a stream is deferred (CUEMU_LAUNCH=deferred, the default): it runs
 * when the host synchronises with it — cudaStreamSynchronize, cudaEventSynchronize,
 * cudaDeviceSynchronize, a synchronous cudaMemcpy, cudaFree — and only what that
 * synchronisation needs, so a host read without its synchronisation sees stale memory.
 * Cross-stream order comes only from events and from the legacy default stream's
 * implicit barriers; among independent streams, the run order (forward: oldest work
 * first, reverse: newest first, random) decides, so a missing cudaStreamWaitEvent shows.
 * CUEMU_LAUNCH=immediate runs everything at submission (errors at the launch site).
 * A capturing stream records its work into a graph instead (cudaStreamBeginCapture).
 */
#include "emu_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <deque>
#include <memory>
#include <set>
#include <vector>

struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;

namespace cuemu {
namespace {

struct Stream;
struct Dep {
  Stream *s;
  unsigned long long seq;
};
struct Op {
  unsigned long long seq, global;
  const char *what;
  std::vector<Dep> deps;
  std::function<void()> work;
};
struct Graph {
  std::vector<std::pair<const char *, std::function<void()>>> ops;
};

struct Stream {
  bool blocking;
  unsigned long long issued = 0, done = 0;
  std::deque<Op> q;
  Graph *capture = nullptr;
  bool capture_broken = false;
};

struct Event {
  unsigned flags;
  Stream *s = nullptr;
  unsigned long long seq = 0; /* 0: never recorded */
  double ms = 0;
};

struct Streams {
  Stream legacy{true};
  std::set<Stream *> live;
  std::set<Event *> events;
  std::set<Graph *> graphs, execs;
  /* Destroyed streams and events stay allocated: pending work may still refer to them. */
  std::vector<std::unique_ptr<Stream>> dead_streams;
  std::vector<std::unique_ptr<Event>> dead_events;
  unsigned long long global = 0;
  unsigned long long launches = 0;
};

Streams &st() {
  static Streams s;
  return s;
}

double now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Stream *resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &st().legacy;
  Stream *p = (Stream *)(void *)s;
  return st().live.count(p) ? p : nullptr;
}

void run_until(Stream *s, unsigned long long seq) {
  while (s->done < seq) {
    Op op = std::move(s->q.front());
    s->q.pop_front();
    for (const Dep &d : op.deps) run_until(d.s, d.seq);
    if (sticky_error() == cudaSuccess) op.work();
    s->done = op.seq;
  }
}

void enqueue(Stream *s, const char *what, std::function<void()> work, std::vector<Dep> deps) {
  Streams &S = st();
  /* The legacy default stream waits for all blocking streams and they wait for it. */
  if (s == &S.legacy) {
    for (Stream *o : S.live)
      if (o->blocking && o->issued > o->done) deps.push_back(Dep{o, o->issued});
  } else if (s->blocking && S.legacy.issued > S.legacy.done) {
    deps.push_back(Dep{&S.legacy, S.legacy.issued});
  }
  Op op{++s->issued, ++S.global, what, std::move(deps), std::move(work)};
  s->q.push_back(std::move(op));
  if (!config().deferred) run_until(s, s->issued);
}

cudaError_t bad_stream(const char *fn, cudaStream_t s) {
  report("%s: %p is not a live stream", fn, (void *)s);
  return set_error(cudaErrorInvalidResourceHandle, false);
}

cudaError_t capture_violation(Stream *s, const char *fn) {
  report("%s: not allowed while the stream captures a graph", fn);
  if (s) s->capture_broken = true;
  return set_error(cudaErrorStreamCaptureUnsupported, false);
}

bool any_capture() {
  if (st().legacy.capture) return true;
  for (Stream *s : st().live)
    if (s->capture) return true;
  return false;
}

} /* namespace */

unsigned long long launches_submitted() { return st().launches; }

cudaError_t stream_check(cudaStream_t s) { return resolve(s) ? cudaSuccess : bad_stream("stream", s); }

cudaError_t stream_submit(cudaStream_t s, const char *what, std::function<void()> work) {
  Stream *p = resolve(s);
  if (!p) return bad_stream(what, s);
  if (p->capture) {
    p->capture->ops.emplace_back(what, std::move(work));
    return cudaSuccess;
  }
  if (p == &st().legacy && any_capture()) return capture_violation(nullptr, what);
  enqueue(p, what, std::move(work), {});
  return cudaSuccess;
}

void drain_all() {
  Streams &S = st();
  Rng rng = next_rng();
  for (;;) {
    std::vector<Stream *> ready;
    if (!S.legacy.q.empty()) ready.push_back(&S.legacy);
    for (Stream *s : S.live)
      if (!s->q.empty()) ready.push_back(s);
    if (ready.empty()) return;
    Stream *pick = ready[0];
    for (Stream *s : ready) {
      unsigned long long a = s->q.front().global, b = pick->q.front().global;
      if (config().order == Order::Forward ? a < b : config().order == Order::Reverse ? a > b : false) pick = s;
    }
    if (config().order == Order::Random) pick = ready[rng.below((unsigned)ready.size())];
    run_until(pick, pick->q.front().seq);
  }
}

void streams_reset() {
  Streams &S = st();
  for (Stream *s : S.live) {
    delete s->capture;
    s->capture = nullptr;
    S.dead_streams.emplace_back(s);
  }
  for (Event *e : S.events) S.dead_events.emplace_back(e);
  for (Graph *g : S.graphs) delete g;
  for (Graph *g : S.execs) delete g;
  S.live.clear();
  S.events.clear();
  S.graphs.clear();
  S.execs.clear();
}

cudaError_t launch_submit(LaunchSpec &spec, const PtrArg *ptrs, int nptrs) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  if (sticky_error() != cudaSuccess) return sticky_error();
  const dim3 g = spec.grid, b = spec.block;
  unsigned long long nt = (unsigned long long)b.x * b.y * b.z;
  auto fail = [&](cudaError_t e, const std::string &why) {
    report("%s:%d: LAUNCH(%s, grid (%u,%u,%u), block (%u,%u,%u), smem %zu): %s", spec.file, spec.line,
           spec.kernel, g.x, g.y, g.z, b.x, b.y, b.z, spec.smem, why.c_str());
    return set_error(e, false);
  };
  if (!g.x || !g.y || !g.z || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
    return fail(cudaErrorInvalidConfiguration, "grid dimensions out of range");
  if (!b.x || !b.y || !b.z || b.x > 1024 || b.y > 1024 || b.z > 64 || nt > 1024)
    return fail(cudaErrorInvalidConfiguration, "block dimensions out of range (at most 1024 threads)");
  if (nt % 32)
    return fail(cudaErrorInvalidConfiguration,
                strprintf("kernel rule: the block has %llu threads, not a multiple of 32", nt));
  int dyn_limit = func_max_dynamic_smem(spec.func);
  if (spec.smem > (size_t)dyn_limit)
    return fail(cudaErrorInvalidValue,
                strprintf("%zu bytes of dynamic shared memory, more than the %d allowed%s", spec.smem, dyn_limit,
                          dyn_limit == (int)kDefaultDynSmemLimit
                              ? " (more needs cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))"
                              : ""));
  for (int i = 0; i < nptrs; i++)
    if (ptrs[i].value && !find_alloc(ptrs[i].value, 0, MemKind::Device))
      return fail(cudaErrorInvalidValue,
                  strprintf("kernel rule: argument %d (%p) is a pointer but not device memory from cudaMalloc",
                            ptrs[i].index + 1, ptrs[i].value));
  if (!resolve(spec.stream)) return bad_stream("LAUNCH", spec.stream);
  st().launches++;
  LaunchSpec copy = spec;
  return stream_submit(spec.stream, "kernel launch", [copy] {
    if (!run_grid(copy)) set_error(cudaErrorLaunchFailure, true);
  });
}

} /* namespace cuemu */

using namespace cuemu;

#define LOCKED std::lock_guard<std::recursive_mutex> lock_(device_lock())

extern "C" {

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *pStream, unsigned int flags) {
  LOCKED;
  if (!pStream) return set_error(cudaErrorInvalidValue, false);
  Stream *s = new Stream;
  s->blocking = !(flags & cudaStreamNonBlocking);
  st().live.insert(s);
  *pStream = (cudaStream_t)(void *)s;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *pStream) { return cudaStreamCreateWithFlags(pStream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  LOCKED;
  Stream *s = resolve(stream);
  if (!s || s == &st().legacy) return bad_stream("cudaStreamDestroy", stream);
  if (s->capture) return capture_violation(s, "cudaStreamDestroy");
  /* Pending work still completes; nothing may wait for the stream afterwards. */
  run_until(s, s->issued);
  st().live.erase(s);
  st().dead_streams.emplace_back(s);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  LOCKED;
  Stream *s = resolve(stream);
  if (!s) return bad_stream("cudaStreamSynchronize", stream);
  if (s->capture || (s == &st().legacy && any_capture())) return capture_violation(s, "cudaStreamSynchronize");
  run_until(s, s->issued);
  return sticky_error();
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  /* Polling would never see progress in a deferred world: the query completes the work. */
  return cudaStreamSynchronize(stream);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
  LOCKED;
  if (!event) return set_error(cudaErrorInvalidValue, false);
  Event *e = new Event;
  e->flags = flags;
  st().events.insert(e);
  *event = (cudaEvent_t)(void *)e;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

static Event *event_of(cudaEvent_t e) {
  Event *p = (Event *)(void *)e;
  return st().events.count(p) ? p : nullptr;
}

static cudaError_t bad_event(const char *fn, cudaEvent_t e) {
  report("%s: %p is not a live event", fn, (void *)e);
  return set_error(cudaErrorInvalidResourceHandle, false);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  LOCKED;
  Event *e = event_of(event);
  if (!e) return bad_event("cudaEventDestroy", event);
  st().events.erase(e);
  st().dead_events.emplace_back(e);
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  LOCKED;
  Event *e = event_of(event);
  if (!e) return bad_event("cudaEventRecord", event);
  Stream *s = resolve(stream);
  if (!s) return bad_stream("cudaEventRecord", stream);
  if (s->capture) return capture_violation(s, "cudaEventRecord (events inside a capture are not emulated)");
  enqueue(s, "cudaEventRecord", [e] { e->ms = now_ms(); }, {});
  e->s = s;
  e->seq = s->issued;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  LOCKED;
  Event *e = event_of(event);
  if (!e) return bad_event("cudaEventSynchronize", event);
  if (e->s) run_until(e->s, e->seq);
  return sticky_error();
}

cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
  LOCKED;
  Event *a = event_of(start), *b = event_of(end);
  if (!ms || !a || !b) return bad_event("cudaEventElapsedTime", a ? end : start);
  if ((a->flags | b->flags) & cudaEventDisableTiming) {
    report("cudaEventElapsedTime: an event was created with cudaEventDisableTiming");
    return set_error(cudaErrorInvalidResourceHandle, false);
  }
  if (!a->s || !b->s || a->s->done < a->seq || b->s->done < b->seq) {
    report("cudaEventElapsedTime: an event has not completed (synchronise with it first)");
    return set_error(cudaErrorNotReady, false);
  }
  *ms = (float)(b->ms - a->ms);
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  LOCKED;
  Event *e = event_of(event);
  if (!e) return bad_event("cudaStreamWaitEvent", event);
  Stream *s = resolve(stream);
  if (!s) return bad_stream("cudaStreamWaitEvent", stream);
  if (flags) return set_error(cudaErrorInvalidValue, false);
  if (s->capture) return capture_violation(s, "cudaStreamWaitEvent (cross-stream capture is not emulated)");
  if (!e->s) return cudaSuccess;  // never recorded: nothing to wait for
  enqueue(s, "cudaStreamWaitEvent", [] {}, {Dep{e->s, e->seq}});
  return cudaSuccess;
}

/* ---- graphs (stream capture of one stream, replay) -------------------------------------- */

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
  LOCKED;
  (void)mode;
  Stream *s = resolve(stream);
  if (!s) return bad_stream("cudaStreamBeginCapture", stream);
  if (s == &st().legacy) {
    report("cudaStreamBeginCapture: the legacy default stream cannot capture");
    return set_error(cudaErrorStreamCaptureUnsupported, false);
  }
  if (s->capture) return set_error(cudaErrorIllegalState, false);
  s->capture = new Graph;
  s->capture_broken = false;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *pGraph) {
  LOCKED;
  Stream *s = resolve(stream);
  if (!s) return bad_stream("cudaStreamEndCapture", stream);
  if (!s->capture) return set_error(cudaErrorStreamCaptureUnmatched, false);
  Graph *g = s->capture;
  s->capture = nullptr;
  if (s->capture_broken || !pGraph) {
    delete g;
    if (pGraph) *pGraph = nullptr;
    return set_error(cudaErrorStreamCaptureInvalidated, false);
  }
  st().graphs.insert(g);
  *pGraph = (cudaGraph_t)(void *)g;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status) {
  LOCKED;
  Stream *s = resolve(stream);
  if (!s) return bad_stream("cudaStreamIsCapturing", stream);
  if (!status) return set_error(cudaErrorInvalidValue, false);
  *status = s->capture ? (s->capture_broken ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive)
                       : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *pGraphExec, cudaGraph_t graph, unsigned long long flags) {
  LOCKED;
  Graph *g = (Graph *)(void *)graph;
  if (!pGraphExec || !st().graphs.count(g) || flags) return set_error(cudaErrorInvalidValue, false);
  Graph *x = new Graph(*g);
  st().execs.insert(x);
  *pGraphExec = (cudaGraphExec_t)(void *)x;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
  LOCKED;
  if (sticky_error() != cudaSuccess) return sticky_error();
  Graph *x = (Graph *)(void *)graphExec;
  if (!st().execs.count(x)) return set_error(cudaErrorInvalidValue, false);
  for (auto &op : x->ops) {
    cudaError_t e = stream_submit(stream, op.first, op.second);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
  LOCKED;
  Graph *x = (Graph *)(void *)graphExec;
  if (!st().execs.erase(x)) return set_error(cudaErrorInvalidValue, false);
  delete x;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  LOCKED;
  Graph *g = (Graph *)(void *)graph;
  if (!st().graphs.erase(g)) return set_error(cudaErrorInvalidValue, false);
  delete g;
  return cudaSuccess;
}

} /* extern "C" */
