/* engine/safetensors.h — reading and writing .safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON
 *   {"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data area; offsets are relative to the data area.
 *
 * The reader maps the file and validates everything before any tensor is used: the
 * header length (inside the file, below ST_MAX_HEADER), UTF-8, well-formed JSON, known
 * dtypes, shape × element size == byte range, ranges inside the data area, sorted,
 * non-overlapping and covering the data area exactly, unique names.  Each violation is
 * one error naming the file, the tensor and the problem.  This parses files from the
 * internet: it never trusts a number before checking it.
 *
 * The writer streams: declare every tensor, then write the data of each (any order,
 * pwrite at its offset), so multi-GB checkpoints are written with little RAM.  Its
 * header is byte-compatible with the Python safetensors library (compact JSON,
 * __metadata__ first, names sorted, padded with spaces to a multiple of 8).
 */
#ifndef BAGEL_SAFETENSORS_H
#define BAGEL_SAFETENSORS_H

#include <glib.h>
#include <stdint.h>

#include "ops.h"

#define ST_MAX_HEADER (100u * 1024u * 1024u)
#define ST_MAX_DIMS 8

typedef enum {
  ST_BOOL, ST_U8, ST_I8, ST_I16, ST_I32, ST_I64, ST_F16, ST_BF16, ST_F32, ST_F64,
  ST_F8_E4M3, ST_F8_E5M2, ST_NDTYPES
} StDType;

typedef struct {
  const char *name;
  StDType dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  uint64_t offset;       /* within the data area */
  uint64_t nbytes;
  const void *data;      /* into the mapping; NULL for parse-only files */
} StTensor;

typedef struct StFile StFile;

/* Map and validate a file. */
StFile *st_open(const char *path, GError **error);
/* Validate an in-memory file image (header + data); `data` must outlive the StFile.
 * `label` names it in errors. */
StFile *st_parse(const void *data, size_t size, const char *label, GError **error);
void st_close(StFile *f);

const char *st_path(const StFile *f);
size_t st_count(const StFile *f);
const StTensor *st_get(const StFile *f, size_t i);      /* in data-offset order */
const StTensor *st_find(const StFile *f, const char *name);
const char *st_metadata(const StFile *f, const char *key);   /* NULL if absent */
uint64_t st_file_size(const StFile *f);

const char *st_dtype_name(StDType dt);
size_t st_dtype_size(StDType dt);
int64_t st_numel(const StTensor *t);
/* The op-interface dtype of a safetensors dtype; false if the backends don't use it. */
gboolean st_dtype_to_bk(StDType dt, BkDType *out);
StDType st_dtype_from_bk(BkDType dt);
/* "BF16[152064,3584]" into buf. */
const char *st_describe(const StTensor *t, char *buf, size_t n);

/* Lock the mapping in RAM (mlock); a clear error if the limit forbids it. */
gboolean st_mlock(StFile *f, GError **error);
/* Tell the kernel we will read it all (MADV_WILLNEED). */
void st_prefetch(StFile *f);

/* ---- writer ----------------------------------------------------------------------- */

typedef struct StWriter StWriter;

StWriter *st_writer_new(void);
void st_writer_set_metadata(StWriter *w, const char *key, const char *value);
/* Declare a tensor; names must be unique (checked at begin). */
void st_writer_add(StWriter *w, const char *name, StDType dtype, int ndim, const int64_t *shape);
/* Create the file and write the header; the data area is pre-sized. */
gboolean st_writer_begin(StWriter *w, const char *path, GError **error);
/* Write `nbytes` of tensor `name` starting at byte `at` of that tensor's data. */
gboolean st_writer_write(StWriter *w, const char *name, uint64_t at, const void *data,
                         uint64_t nbytes, GError **error);
/* Flush, check every tensor was fully written, close.  Frees w. */
gboolean st_writer_finish(StWriter *w, GError **error);
void st_writer_free(StWriter *w);   /* abandon (removes a half-written file) */

#endif
