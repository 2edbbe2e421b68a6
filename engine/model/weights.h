/* engine/model/weights.h — checkpoint tensors as backend weights, and the activation
 * arena the model computes in.
 *
 * Weights: each model file has a struct of BkTensor fields named after the checkpoint
 * names; wt_load fills one field from the checked checkpoint (the CPU backend points
 * into the mmap, CUDA uploads once).
 *
 * Arena: a chunked bump allocator over backend memory.  Stages take a mark and rewind
 * to it; chunks are kept, so after the first pass of a loop (a denoise step) nothing is
 * allocated any more. */
#ifndef BAGEL_WEIGHTS_H
#define BAGEL_WEIGHTS_H

#include <glib.h>

#include "checkpoint.h"
#include "ops.h"

/* Load tensor `name` (printf format) into *out.  Fails with an error naming the tensor
 * when it is missing or the backend cannot hold it. */
gboolean wt_load(BkBackend *be, const Checkpoint *ck, BkTensor *out, GError **error,
                 const char *fmt, ...) G_GNUC_PRINTF(5, 6);
void wt_free(BkBackend *be, BkTensor *t);

typedef struct ArenaChunk ArenaChunk;

typedef struct {
  BkBackend *be;
  GPtrArray *chunks;       /* ArenaChunk* */
  guint cur;               /* chunk being filled */
  size_t chunk_size;       /* default size of a new chunk */
  size_t in_use, peak;     /* bytes handed out now / at most */
  guint64 n_chunk_allocs;  /* how many times backend memory was allocated */
} Arena;

typedef struct {
  guint chunk;
  size_t used;
  size_t in_use;
} ArenaMark;

void arena_init(Arena *a, BkBackend *be, size_t chunk_size);
void arena_clear(Arena *a);   /* frees every chunk */
/* A tensor of the given shape; on out-of-memory the backend records the failure and the
 * tensor's data is NULL (check bk_ok at the stage boundary). */
BkTensor arena_tensor(Arena *a, BkDType dt, int nd, const int64_t *ne);
BkTensor arena_2d(Arena *a, BkDType dt, int64_t rows, int64_t cols);
ArenaMark arena_mark(const Arena *a);
void arena_reset(Arena *a, ArenaMark m);

#endif
