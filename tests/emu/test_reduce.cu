/* tests/emu/test_reduce.cu — block reductions with shared memory and warp shuffles, the
 * warp vote and scan intrinsics, the counting barriers and float atomics, against exact
 * CPU results (the data are small integers, so every order of summation is exact). */
#include "emu_test.h"

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}

/* y[row] = sum of x[row, :]: shuffles within each warp, then one warp over the partials. */
__global__ void row_sum(const float *x, float *y, int cols) {
  SHARED(float, part, [32]);
  const float *row = x + (size_t)blockIdx.x * cols;
  float s = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) s += row[c];
  s = warp_sum(s);
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = s;
  __syncthreads();
  if (warp == 0) {
    float v = lane < (int)blockDim.x / 32 ? part[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(FULL_MASK, v, o);
    if (lane == 0) y[blockIdx.x] = v;
  }
}

/* The classic tree in shared memory, a barrier per level; plus a float atomic total. */
__global__ void tree_sum(const float *x, float *y, float *total, int n) {
  SHARED(float, buf, [256]);
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  buf[threadIdx.x] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    y[blockIdx.x] = buf[0];
    atomicAdd(total, buf[0]);
  }
}

/* Warp scan (shfl_up), broadcast within half warps (shfl with width 16), ballot, votes
 * and the counting barriers. */
__global__ void warp_ops(const int *x, int *scan, int *bcast, unsigned *ballot, int *votes) {
  int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
  int v = x[i];
  for (int o = 1; o < 32; o <<= 1) {
    int u = __shfl_up_sync(FULL_MASK, v, o);
    if (lane >= o) v += u;
  }
  scan[i] = v;
  bcast[i] = __shfl_sync(FULL_MASK, x[i], 3, 16);
  ballot[i] = __ballot_sync(FULL_MASK, x[i] > 5);
  int any = __any_sync(FULL_MASK, x[i] > 8), all = __all_sync(FULL_MASK, x[i] >= 0);
  int count = __syncthreads_count(x[i] > 5);
  int bor = __syncthreads_or(x[i] == 9), band = __syncthreads_and(x[i] < 9);
  if (threadIdx.x == 0) {
    votes[blockIdx.x * 4 + 0] = count;
    votes[blockIdx.x * 4 + 1] = bor;
    votes[blockIdx.x * 4 + 2] = band;
  }
  if (lane == 0) atomicAdd(&votes[blockIdx.x * 4 + 3], any * 100 + all);
}

static void test_row_sum(void) {
  const int rows = 5, cols = 1000;
  TestRng rng(1);
  std::vector<float> x((size_t)rows * cols);
  for (float &v : x) v = (float)(rng.small_int(19) - 9);
  float *dx = to_device(x), *dy;
  CK(cudaMalloc((void **)&dy, rows * sizeof(float)));
  CK(LAUNCH(row_sum, dim3(rows), dim3(128), 0, 0, dx, dy, cols));
  std::vector<float> y = to_host(dy, rows);
  for (int r = 0; r < rows; r++) {
    float want = 0;
    for (int c = 0; c < cols; c++) want += x[(size_t)r * cols + c];
    CHECK(y[r] == want, "row %d: %g, want %g", r, y[r], want);
  }
  CK(cudaFree(dx));
  CK(cudaFree(dy));
  printf("row_sum: ok\n");
}

static void test_tree_sum(void) {
  const int n = 1000, blocks = (n + 255) / 256;
  TestRng rng(2);
  std::vector<float> x(n);
  for (float &v : x) v = (float)rng.small_int(7);
  float *dx = to_device(x), *dy, *dt;
  CK(cudaMalloc((void **)&dy, blocks * sizeof(float)));
  CK(cudaMalloc((void **)&dt, sizeof(float)));
  CK(cudaMemset(dt, 0, sizeof(float)));
  CK(LAUNCH(tree_sum, dim3(blocks), dim3(256), 0, 0, dx, dy, dt, n));
  std::vector<float> y = to_host(dy, blocks), t = to_host(dt, 1);
  float total = 0;
  for (int b = 0; b < blocks; b++) {
    float want = 0;
    for (int i = b * 256; i < n && i < (b + 1) * 256; i++) want += x[i];
    CHECK(y[b] == want, "block %d: %g, want %g", b, y[b], want);
    total += want;
  }
  CHECK(t[0] == total, "atomic total %g, want %g", t[0], total);
  CK(cudaFree(dx));
  CK(cudaFree(dy));
  CK(cudaFree(dt));
  printf("tree_sum: ok\n");
}

static void test_warp_ops(void) {
  const int blocks = 2, threads = 64, n = blocks * threads;
  TestRng rng(3);
  std::vector<int> x(n);
  for (int &v : x) v = rng.small_int(10);
  int *dx = to_device(x), *dscan, *dbc, *dvotes;
  unsigned *dballot;
  CK(cudaMalloc((void **)&dscan, n * sizeof(int)));
  CK(cudaMalloc((void **)&dbc, n * sizeof(int)));
  CK(cudaMalloc((void **)&dballot, n * sizeof(unsigned)));
  CK(cudaMalloc((void **)&dvotes, blocks * 4 * sizeof(int)));
  CK(cudaMemset(dvotes, 0, blocks * 4 * sizeof(int)));
  CK(LAUNCH(warp_ops, dim3(blocks), dim3(threads), 0, 0, dx, dscan, dbc, dballot, dvotes));
  std::vector<int> scan = to_host(dscan, n), bc = to_host(dbc, n), votes = to_host(dvotes, blocks * 4);
  std::vector<unsigned> ballot = to_host(dballot, n);
  for (int w = 0; w < n / 32; w++) {
    int run = 0, any = 0, all = 1;
    unsigned bits = 0;
    for (int l = 0; l < 32; l++) {
      int i = w * 32 + l;
      run += x[i];
      CHECK(scan[i] == run, "scan[%d] = %d, want %d", i, scan[i], run);
      int src = w * 32 + (l & ~15) + 3;
      CHECK(bc[i] == x[src], "bcast[%d] = %d, want %d", i, bc[i], x[src]);
      bits |= (unsigned)(x[i] > 5) << l;
      any |= x[i] > 8;
      all &= x[i] >= 0;
    }
    for (int l = 0; l < 32; l++) CHECK(ballot[w * 32 + l] == bits, "ballot of warp %d: %08x, want %08x", w, ballot[w * 32 + l], bits);
    (void)any;
    (void)all;
  }
  for (int b = 0; b < blocks; b++) {
    int count = 0, bor = 0, band = 1, vote = 0;
    for (int i = b * threads; i < (b + 1) * threads; i++) {
      count += x[i] > 5;
      bor |= x[i] == 9;
      band &= x[i] < 9;
    }
    for (int w = 0; w < threads / 32; w++) {
      int any = 0, all = 1;
      for (int l = 0; l < 32; l++) {
        any |= x[b * threads + w * 32 + l] > 8;
        all &= x[b * threads + w * 32 + l] >= 0;
      }
      vote += any * 100 + all;
    }
    CHECK(votes[b * 4 + 0] == count, "__syncthreads_count %d, want %d", votes[b * 4], count);
    CHECK(votes[b * 4 + 1] == bor, "__syncthreads_or %d, want %d", votes[b * 4 + 1], bor);
    CHECK(votes[b * 4 + 2] == band, "__syncthreads_and %d, want %d", votes[b * 4 + 2], band);
    CHECK(votes[b * 4 + 3] == vote, "any/all votes %d, want %d", votes[b * 4 + 3], vote);
  }
  CK(cudaFree(dx));
  CK(cudaFree(dscan));
  CK(cudaFree(dbc));
  CK(cudaFree(dballot));
  CK(cudaFree(dvotes));
  printf("warp_ops: ok\n");
}

int main(void) {
  require_device();
  test_row_sum();
  test_tree_sum();
  test_warp_ops();
  return 0;
}
