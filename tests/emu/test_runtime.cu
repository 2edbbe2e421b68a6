/* tests/emu/test_runtime.cu — the runtime calls the backend makes: streams with event
 * dependencies, graph capture and replay, events, error names, the launch checks and the
 * CUDA_CHECK / CUBLAS_CHECK macros.  Under the emulation, also its strictness: memcpy
 * directions and ranges, frees of interior pointers, deferred work that shows a missing
 * synchronisation, run orders that show a missing cross-stream dependency, and sticky
 * kernel errors. */
#include "emu_test.h"

#include <string>

__global__ void add_into(float *dst, const float *src, float v, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = src[i] + v;
}

__global__ void trap_kernel(int *out) {
  if (threadIdx.x == 5) __trap();
  out[threadIdx.x] = 1;
}

static const int N = 256;

/* Producer on stream a, consumer on stream b; the event orders them (or not). */
static std::vector<float> two_streams(bool with_event) {
  cudaStream_t a, b;
  cudaEvent_t e;
  CK(cudaStreamCreate(&a));
  CK(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
  CK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  std::vector<float> h(N, 1.0f);
  float *src = to_device(h), *mid, *out;
  CK(cudaMalloc((void **)&mid, N * sizeof(float)));
  CK(cudaMalloc((void **)&out, N * sizeof(float)));
  CK(cudaMemsetAsync(mid, 0, N * sizeof(float), a));
  CK(cudaDeviceSynchronize());
  CK(LAUNCH(add_into, dim3(N / 64), dim3(64), 0, a, mid, src, 1.0f, N));  // mid = 2
  CK(cudaEventRecord(e, a));
  if (with_event) CK(cudaStreamWaitEvent(b, e, 0));
  CK(LAUNCH(add_into, dim3(N / 64), dim3(64), 0, b, out, mid, 10.0f, N));  // out = 12 after mid
  CK(cudaStreamSynchronize(b));
  std::vector<float> r = to_host(out, N);
  CK(cudaDeviceSynchronize());
  for (float *p : {src, mid, out}) CK(cudaFree(p));
  CK(cudaEventDestroy(e));
  CK(cudaStreamDestroy(a));
  CK(cudaStreamDestroy(b));
  return r;
}

static void test_streams(void) {
  std::vector<float> r = two_streams(true);
  for (int i = 0; i < N; i++) CHECK(r[i] == 12.0f, "out[%d] = %g with the event", i, r[i]);
  printf("two streams ordered by an event: ok\n");
#ifdef BAGEL_CUDA_EMU
  /* Without the event nothing orders the consumer after the producer: the newest-first
   * order runs it first and it reads the zeros. */
  const char *saved = cuemu_order();
  cuemu_set_order("reverse");
  r = two_streams(false);
  CHECK(r[0] == 10.0f, "a missing cudaStreamWaitEvent went unnoticed in reverse order (%g)", r[0]);
  cuemu_set_order(saved);
  printf("missing cudaStreamWaitEvent shown by the reverse order: ok\n");
#endif
}

static void test_graph(void) {
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  float *pinned, *dsrc, *ddst;
  CK(cudaMallocHost((void **)&pinned, N * sizeof(float)));
  CK(cudaMalloc((void **)&dsrc, N * sizeof(float)));
  CK(cudaMalloc((void **)&ddst, N * sizeof(float)));
  cudaGraph_t g;
  cudaGraphExec_t x;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  CK(cudaMemcpyAsync(dsrc, pinned, N * sizeof(float), cudaMemcpyHostToDevice, s));
  CK(LAUNCH(add_into, dim3(N / 64), dim3(64), 0, s, ddst, dsrc, 0.5f, N));
  CK(cudaMemcpyAsync(pinned, ddst, N * sizeof(float), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&x, g, 0));
  for (int run = 0; run < 2; run++) {
    for (int i = 0; i < N; i++) pinned[i] = (float)(i + run * 1000);
    CK(cudaGraphLaunch(x, s));
    CK(cudaStreamSynchronize(s));
    for (int i = 0; i < N; i++) CHECK(pinned[i] == i + run * 1000 + 0.5f, "run %d: [%d] = %g", run, i, pinned[i]);
  }
  CK(cudaGraphExecDestroy(x));
  CK(cudaGraphDestroy(g));
  CK(cudaFreeHost(pinned));
  CK(cudaFree(dsrc));
  CK(cudaFree(ddst));
  CK(cudaStreamDestroy(s));
  printf("graph capture and two replays: ok\n");
}

static void test_events_and_errors(void) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  float *d;
  CK(cudaMalloc((void **)&d, N * sizeof(float)));
  CK(cudaEventRecord(e0, 0));
  CK(LAUNCH(add_into, dim3(N / 64), dim3(64), 0, 0, d, d, 1.0f, N));
  CK(cudaEventRecord(e1, 0));
  CK(cudaEventSynchronize(e1));
  float ms = -1;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  CHECK(ms >= 0, "elapsed %g ms", ms);
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  CHECK(!strcmp(cudaGetErrorName(cudaErrorInvalidValue), "cudaErrorInvalidValue"), "error name");
  CHECK(LAUNCH(add_into, dim3(0), dim3(64), 0, 0, d, d, 1.0f, N) == cudaErrorInvalidConfiguration, "empty grid");
  CHECK(LAUNCH(add_into, dim3(1), dim3(2048), 0, 0, d, d, 1.0f, N) == cudaErrorInvalidConfiguration, "huge block");
  CHECK(cudaGetLastError() == cudaSuccess, "launch errors are not sticky");
  CK(cudaFree(d));
  printf("events, error names, launch configuration errors: ok\n");
}

/* The backend's error macros: they return false with "file:line: call: text (name)". */
static bool bad_copy(BkBackend *be, float *d) {
  float h = 0;
  CUDA_CHECK(be, cudaMemcpy(d, &h, sizeof h, (cudaMemcpyKind)99));
  return true;
}
static bool bad_gemm(BkBackend *be) {
  cublasHandle_t h;
  CUBLAS_CHECK(be, cublasCreate(&h));
  float one = 1, zero = 0;
  cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 4, &one, nullptr, CUDA_R_32F, 4, nullptr,
                                   CUDA_R_32F, 4, &zero, nullptr, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  cublasDestroy(h);
  CUBLAS_CHECK(be, st);
  return true;
}

static void test_check_macros(void) {
  BkBackend be;
  memset(&be, 0, sizeof be);
  float *d;
  CK(cudaMalloc((void **)&d, sizeof(float)));
  CHECK(!bad_copy(&be, d), "CUDA_CHECK must return false");
  CHECK(strstr(be.error, "test_runtime.cu:") && strstr(be.error, "cudaErrorInvalidMemcpyDirection"), "message: %s",
        be.error);
  printf("CUDA_CHECK: %s\n", be.error);
  cudaGetLastError();
  bk_clear_error(&be);
  CHECK(!bad_gemm(&be), "CUBLAS_CHECK must return false");
  CHECK(strstr(be.error, "CUBLAS_STATUS_INVALID_VALUE"), "message: %s", be.error);
  printf("CUBLAS_CHECK: %s\n", be.error);
  CK(cudaFree(d));
}

#ifdef BAGEL_CUDA_EMU
static void expect_api_error(cudaError_t got, cudaError_t want, const char *text) {
  std::string msg = cuemu_error_message();
  CHECK(got == want && msg.find(text) != std::string::npos, "got %s \"%s\", want %s \"%s\"", cudaGetErrorName(got),
        msg.c_str(), cudaGetErrorName(want), text);
  cudaGetLastError();
}

static void test_emulation_strictness(void) {
  std::vector<float> host(N, 3.0f);
  float *d;
  CK(cudaMalloc((void **)&d, N * sizeof(float)));
  expect_api_error(cudaMemcpy(d, host.data(), N * sizeof(float), cudaMemcpyDeviceToHost), cudaErrorInvalidValue,
                   "destination");
  expect_api_error(cudaMemcpy(d + 1, host.data(), N * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue,
                   "past the end");
  expect_api_error(cudaFree(d + 1), cudaErrorInvalidValue, "not the start");
  expect_api_error(cudaMemset(d, 0, (N + 1) * sizeof(float)), cudaErrorInvalidValue, "cudaMemset");
  printf("memcpy direction and range, interior free, memset range: refused\n");

  /* Deferred work: a copy into pinned memory is not there before the synchronisation. */
  CK(cudaMemcpy(d, host.data(), N * sizeof(float), cudaMemcpyHostToDevice));
  float *pinned;
  CK(cudaMallocHost((void **)&pinned, N * sizeof(float)));
  for (int i = 0; i < N; i++) pinned[i] = -1.0f;
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  CK(cudaMemcpyAsync(pinned, d, N * sizeof(float), cudaMemcpyDeviceToHost, s));
  CHECK(pinned[0] == -1.0f, "the async copy landed before any synchronisation (%g)", pinned[0]);
  CK(cudaStreamSynchronize(s));
  CHECK(pinned[0] == 3.0f, "after cudaStreamSynchronize: %g", pinned[0]);
  printf("deferred async copy shows a missing synchronisation: ok\n");

  /* A kernel fault is sticky: every call fails until cudaDeviceReset. */
  int *di;
  CK(cudaMalloc((void **)&di, 64 * sizeof(int)));
  CK(LAUNCH(trap_kernel, dim3(1), dim3(64), 0, s, di));
  CHECK(cudaStreamSynchronize(s) == cudaErrorLaunchFailure, "trap must fail the launch");
  CHECK(strstr(cuemu_error_message(), "__trap() called"), "report: %s", cuemu_error_message());
  CHECK(cudaMemcpy(host.data(), d, 4, cudaMemcpyDeviceToHost) == cudaErrorLaunchFailure, "the error is sticky");
  CHECK(cudaGetLastError() == cudaErrorLaunchFailure, "cudaGetLastError keeps a sticky error");
  CK(cudaDeviceReset());
  CHECK(cudaGetLastError() == cudaSuccess, "cudaDeviceReset clears it");
  printf("sticky kernel error until cudaDeviceReset: ok\n");
}
#endif

int main(void) {
  require_device();
  test_streams();
  test_graph();
  test_events_and_errors();
  test_check_macros();
#ifdef BAGEL_CUDA_EMU
  test_emulation_strictness();
#endif
  return 0;
}
