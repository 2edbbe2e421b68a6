/* kernels/cuda/layout.cu — the data-movement ops: gather_rows (token embeddings and the
 * position tables), transpose (the VAE attention's [C, L] <-> [L, C]), upsample2x
 * (nearest, the VAE decoder) and the latent pack/unpack of spec §1.7
 *   z[C, 2h, 2w] <-> tokens[h·w, 4C], element (py·2 + px)·C + c of token (r, c).
 *
 * gather_rows takes its ids from the host: they are checked there (an id outside the
 * table is a bk_fail naming it, like the reference) and copied with the pageable
 * cudaMemcpyAsync, which stages them before returning, into a pool temporary.
 * transpose goes through a 32×33 shared tile so both the read and the write are
 * coalesced; the others are one element per thread of a grid-stride loop. */
#include "cuda_internal.cuh"

#define LAYOUT_THREADS 256

__global__ void gather_rows_kernel(void *y, int ydt, const void *table, int tdt, const int32_t *ids, int64_t rows,
                                   int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    const int64_t src = (int64_t)ids[r] * cols + c;
    if (ydt == tdt) {
      if (ydt == BK_F32) ((float *)y)[i] = ((const float *)table)[src];
      else ((uint16_t *)y)[i] = ((const uint16_t *)table)[src];
    } else {
      st_any(y, ydt, i, ld_any(table, tdt, src));
    }
  }
}

/* y[C, R] = x[R, C]ᵀ for elements of 2 or 4 bytes (T = uint16_t / uint32_t). */
template <typename T>
__global__ void transpose_kernel(T *y, const T *x, int64_t R, int64_t C) {
  SHARED(T, tile, [32][33]);
  const int64_t tiles_c = (C + 31) / 32, tiles = ((R + 31) / 32) * tiles_c;
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;  /* 32 × 8 threads */
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t r0 = (t / tiles_c) * 32, c0 = (t % tiles_c) * 32;
    for (int j = ty; j < 32; j += 8) {
      const int64_t r = r0 + j, c = c0 + tx;
      if (r < R && c < C) tile[j][tx] = x[r * C + c];
    }
    __syncthreads();
    for (int j = ty; j < 32; j += 8) {
      const int64_t c = c0 + j, r = r0 + tx;
      if (r < R && c < C) y[c * R + r] = tile[tx][j];
    }
    __syncthreads();
  }
}

__global__ void transpose_bytes(unsigned char *y, const unsigned char *x, int64_t R, int64_t C, int es) {
  const int64_t total = R * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    for (int b = 0; b < es; b++) y[(c * R + r) * es + b] = x[i * es + b];
  }
}

/* y[c, 2i+dy, 2j+dx] = x[c, i, j]; one output element per iteration */
template <typename T>
__global__ void upsample2x_kernel(T *y, const T *x, int64_t planes, int64_t H, int64_t W) {
  const int64_t W2 = 2 * W, total = planes * 4 * H * W;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ox = i % W2, oy = (i / W2) % (2 * H), p = i / (W2 * 2 * H);
    y[i] = x[(p * H + oy / 2) * W + ox / 2];
  }
}

/* pack (dir 0): tokens <- z; unpack (dir 1): z <- tokens; one token element per iteration */
__global__ void latent_kernel(float *tokens, float *z, int64_t C, int64_t h, int64_t w, int dir) {
  const int64_t total = h * w * 4 * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ch = i % C, q = (i / C) % 4, tok = i / (4 * C);
    const int64_t r = tok / w, c = tok % w, py = q / 2, px = q % 2;
    const int64_t zi = (ch * 2 * h + 2 * r + py) * 2 * w + 2 * c + px;
    if (dir == 0) tokens[i] = z[zi];
    else z[zi] = tokens[i];
  }
}

extern "C" void cuda_gather_rows(BkBackend *be, BkTensor *y, const BkTensor *table, const int32_t *ids) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t rows = bk_rows(y), cols = bk_cols(y), trows = bk_rows(table);
  if (bk_cols(table) != cols || !cuda_float_dt(y->dt) || !cuda_float_dt(table->dt)) {
    bk_fail(be, "cuda gather_rows: table rows of %lld, output rows of %lld", (long long)bk_cols(table),
            (long long)cols);
    return;
  }
  for (int64_t r = 0; r < rows; r++) {
    if (ids[r] < 0 || ids[r] >= trows) {
      bk_fail(be, "cuda gather_rows: id %d outside the table's %lld rows", ids[r], (long long)trows);
      return;
    }
  }
  if (!rows || !cols) return;
  int32_t *dids = (int32_t *)cuda_pool_alloc(be, (size_t)rows * sizeof *dids);
  if (!dids) return;
  if (CUDA_OK(be, cudaMemcpyAsync(dids, ids, (size_t)rows * sizeof *dids, cudaMemcpyHostToDevice, impl->stream)))
    CUDA_OK(be, LAUNCH(gather_rows_kernel, dim3(cuda_grid(impl, rows * cols, LAYOUT_THREADS)), dim3(LAYOUT_THREADS),
                       0, impl->stream, y->data, (int)y->dt, table->data, (int)table->dt, (const int32_t *)dids, rows,
                       cols));
  cuda_pool_free(be, dids);
}

extern "C" void cuda_transpose(BkBackend *be, BkTensor *y, const BkTensor *x) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t R = bk_rows(x), C = bk_cols(x);
  if (y->dt != x->dt || bk_numel(y) != R * C) {
    bk_fail(be, "cuda transpose: shape or dtype mismatch");
    return;
  }
  if (!R || !C) return;
  if (y->data == x->data) {
    bk_fail(be, "cuda transpose: in place");
    return;
  }
  const size_t es = bk_dtype_size(x->dt);
  const int64_t tiles = ((R + 31) / 32) * ((C + 31) / 32);
  const dim3 grid(cuda_grid(impl, tiles, 1)), block(256);
  if (es == 4) {
    auto k = transpose_kernel<uint32_t>;
    CUDA_OK(be, LAUNCH(k, grid, block, 0, impl->stream, (uint32_t *)y->data, (const uint32_t *)x->data, R, C));
  } else if (es == 2) {
    auto k = transpose_kernel<uint16_t>;
    CUDA_OK(be, LAUNCH(k, grid, block, 0, impl->stream, (uint16_t *)y->data, (const uint16_t *)x->data, R, C));
  } else {
    CUDA_OK(be, LAUNCH(transpose_bytes, dim3(cuda_grid(impl, R * C, LAYOUT_THREADS)), dim3(LAYOUT_THREADS), 0,
                       impl->stream, (unsigned char *)y->data, (const unsigned char *)x->data, R, C, (int)es));
  }
}

extern "C" void cuda_upsample2x(BkBackend *be, BkTensor *y, const BkTensor *x) {
  CudaImpl *impl = cuda_impl(be);
  if (x->dt != y->dt || x->nd != 3 || y->nd != 3 || y->ne[0] != x->ne[0] || y->ne[1] != 2 * x->ne[1] ||
      y->ne[2] != 2 * x->ne[2] || !cuda_float_dt(x->dt)) {
    bk_fail(be, "cuda upsample2x: x %s[%lld,%lld,%lld] -> y %s[%lld,%lld,%lld]", bk_dtype_name(x->dt),
            (long long)x->ne[0], (long long)x->ne[1], (long long)x->ne[2], bk_dtype_name(y->dt), (long long)y->ne[0],
            (long long)y->ne[1], (long long)y->ne[2]);
    return;
  }
  const int64_t n = bk_numel(y);
  if (!n) return;
  const dim3 grid(cuda_grid(impl, n, LAYOUT_THREADS)), block(LAYOUT_THREADS);
  if (x->dt == BK_F32) {
    auto k = upsample2x_kernel<float>;
    CUDA_OK(be, LAUNCH(k, grid, block, 0, impl->stream, (float *)y->data, (const float *)x->data, x->ne[0], x->ne[1],
                       x->ne[2]));
  } else {
    auto k = upsample2x_kernel<uint16_t>;
    CUDA_OK(be, LAUNCH(k, grid, block, 0, impl->stream, (uint16_t *)y->data, (const uint16_t *)x->data, x->ne[0],
                       x->ne[1], x->ne[2]));
  }
}

static bool latent_shapes(BkBackend *be, const BkTensor *tokens, const BkTensor *z) {
  if (z->nd != 3 || tokens->nd != 2 || z->ne[1] % 2 || z->ne[2] % 2 ||
      tokens->ne[0] != (z->ne[1] / 2) * (z->ne[2] / 2) || tokens->ne[1] != 4 * z->ne[0] || z->dt != BK_F32 ||
      tokens->dt != BK_F32)
    return bk_fail(be, "cuda latent pack: tokens [%lld,%lld] do not match z [%lld,%lld,%lld]",
                   (long long)tokens->ne[0], (long long)tokens->ne[1], (long long)z->ne[0], (long long)z->ne[1],
                   (long long)z->ne[2]);
  return true;
}

static void latent_run(BkBackend *be, BkTensor *tokens, BkTensor *z, int dir) {
  CudaImpl *impl = cuda_impl(be);
  if (!latent_shapes(be, tokens, z) || !bk_numel(z)) return;
  CUDA_OK(be, LAUNCH(latent_kernel, dim3(cuda_grid(impl, bk_numel(z), LAYOUT_THREADS)), dim3(LAYOUT_THREADS), 0,
                     impl->stream, (float *)tokens->data, (float *)z->data, z->ne[0], z->ne[1] / 2, z->ne[2] / 2, dir));
}

extern "C" void cuda_latent_pack(BkBackend *be, BkTensor *tokens, const BkTensor *z) {
  latent_run(be, tokens, (BkTensor *)z, 0);
}

extern "C" void cuda_latent_unpack(BkBackend *be, BkTensor *z, const BkTensor *tokens) {
  latent_run(be, (BkTensor *)tokens, z, 1);
}
