/* tests/unit/test_safetensors.c — the safetensors reader rejects every malformed file
 * with its specific error, and the writer round-trips. */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "bagel.h"
#include "safetensors.h"

/* Build a file image: 8-byte length + header + `data_len` bytes of data. */
static GByteArray *make_file(const char *header, size_t data_len) {
  GByteArray *b = g_byte_array_new();
  uint64_t n = strlen(header);
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(n >> (8 * i));
  g_byte_array_append(b, len8, 8);
  g_byte_array_append(b, (const guint8 *)header, (guint)n);
  for (size_t i = 0; i < data_len; i++) {
    guint8 v = (guint8)i;
    g_byte_array_append(b, &v, 1);
  }
  return b;
}

/* Parse `header` + data and expect an error containing every needle. */
static void expect_error(const char *header, size_t data_len, const char *needle1,
                         const char *needle2) {
  GByteArray *b = make_file(header, data_len);
  GError *err = NULL;
  StFile *f = st_parse(b->data, b->len, "test.safetensors", &err);
  g_assert_null(f);
  g_assert_nonnull(err);
  g_test_message("error: %s", err->message);
  g_assert_true(g_str_has_prefix(err->message, "test.safetensors: "));
  if (needle1 && !strstr(err->message, needle1)) g_error("\"%s\" not in \"%s\"", needle1, err->message);
  if (needle2 && !strstr(err->message, needle2)) g_error("\"%s\" not in \"%s\"", needle2, err->message);
  g_error_free(err);
  g_byte_array_unref(b);
}

static void test_valid(void) {
  const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                  "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
                  "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]},"
                  "\"z\":{\"dtype\":\"U8\",\"shape\":[0,5],\"data_offsets\":[24,24]}}";
  GByteArray *b = make_file(h, 24);
  GError *err = NULL;
  StFile *f = st_parse(b->data, b->len, "test.safetensors", &err);
  g_assert_no_error(err);
  g_assert_cmpuint(st_count(f), ==, 4);
  const StTensor *a = st_find(f, "a");
  g_assert_nonnull(a);
  g_assert_cmpint(a->dtype, ==, ST_BF16);
  g_assert_cmpint(a->ndim, ==, 2);
  g_assert_cmpint(a->shape[1], ==, 3);
  g_assert_true(a->data == b->data + 8 + strlen(h));
  const StTensor *s = st_find(f, "s");
  g_assert_cmpint(s->ndim, ==, 0);
  g_assert_cmpint(st_numel(s), ==, 1);
  g_assert_cmpstr(st_metadata(f, "format"), ==, "pt");
  g_assert_null(st_find(f, "missing"));
  st_close(f);
  g_byte_array_unref(b);
}

static void test_truncated_file(void) {
  /* the header promises 16 bytes of data, only 8 are there */
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
               "\"a\"", "truncated");
}

static void test_too_short(void) {
  GError *err = NULL;
  g_assert_null(st_parse("\x01\x02", 2, "test.safetensors", &err));
  g_assert_nonnull(strstr(err->message, "too short"));
  g_error_free(err);
}

static void test_header_longer_than_file(void) {
  GByteArray *b = make_file("{}", 0);
  b->data[0] = 200; /* claims 200 bytes of header */
  GError *err = NULL;
  g_assert_null(st_parse(b->data, b->len, "test.safetensors", &err));
  g_assert_nonnull(strstr(err->message, "runs past the end of the file"));
  g_clear_error(&err);
  /* and a header length beyond the sanity cap */
  memset(b->data, 0xff, 8);
  g_assert_null(st_parse(b->data, b->len, "test.safetensors", &err));
  g_assert_nonnull(strstr(err->message, "exceeds"));
  g_error_free(err);
  g_byte_array_unref(b);
}

static void test_overlap(void) {
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
               "\"b\"", "overlaps \"a\"");
}

static void test_gap_and_tail(void) {
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "\"a\"",
               "belong to no tensor");
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
               "4 bytes at the end", NULL);
}

static void test_bad_dtype(void) {
  expect_error("{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"a\"",
               "unknown dtype \"Q4_K\"");
  expect_error("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"a\"", "dtype");
}

static void test_shape_size_mismatch(void) {
  expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 16, "\"a\"",
               "needs 18 bytes but data_offsets hold 16");
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "\"a\"",
               "shape[0]");
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
               "\"data_offsets\":[0,4]}}", 4, "\"a\"", "overflows");
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "\"a\"",
               "end before they begin");
}

static void test_invalid_utf8_and_json(void) {
  expect_error("{\"\xff\xfe\":{}}", 0, "not valid UTF-8", NULL);
  expect_error("{\"a\":{\"dtype\":\"F32\",", 0, "not valid JSON", NULL);
  expect_error("[1,2,3]", 0, "not a JSON object", NULL);
  expect_error("{\"a\":[1]}", 0, "\"a\"", "not a JSON object");
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
               "\"a\"", "unknown field \"x\"");
  expect_error("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", NULL);
}

static void test_duplicate_names(void) {
  expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "\"a\"",
               "more than once");
}

static void test_writer_roundtrip(void) {
  char *dir = g_dir_make_tmp("st-XXXXXX", NULL);
  char *path = g_build_filename(dir, "w.safetensors", NULL);
  StWriter *w = st_writer_new();
  st_writer_set_metadata(w, "format", "pt");
  st_writer_add(w, "zeta", ST_F32, 2, (int64_t[]){2, 2});
  st_writer_add(w, "alpha", ST_BF16, 1, (int64_t[]){3});
  GError *err = NULL;
  g_assert_true(st_writer_begin(w, path, &err));
  float z[4] = {1, 2, 3, 4};
  uint16_t a[3] = {0x3f80, 0x4000, 0x4040};
  /* in pieces and out of order */
  g_assert_true(st_writer_write(w, "zeta", 8, z + 2, 8, &err));
  g_assert_true(st_writer_write(w, "alpha", 0, a, 6, &err));
  g_assert_true(st_writer_write(w, "zeta", 0, z, 8, &err));
  g_assert_false(st_writer_write(w, "zeta", 12, z, 8, &err)); /* past its end */
  g_clear_error(&err);
  g_assert_true(st_writer_finish(w, &err));
  g_assert_no_error(err);

  StFile *f = st_open(path, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(st_count(f), ==, 2);
  g_assert_cmpstr(st_get(f, 0)->name, ==, "alpha"); /* sorted by name, like safetensors */
  g_assert_cmpmem(st_find(f, "zeta")->data, 16, z, 16);
  g_assert_cmpmem(st_find(f, "alpha")->data, 6, a, 6);
  g_assert_cmpstr(st_metadata(f, "format"), ==, "pt");
  /* header padded to a multiple of 8 */
  g_assert_cmpuint((uintptr_t)st_find(f, "alpha")->data % 8, ==, 0);
  st_close(f);

  /* an incomplete file is refused and removed */
  w = st_writer_new();
  st_writer_add(w, "x", ST_F32, 1, (int64_t[]){4});
  g_assert_true(st_writer_begin(w, path, &err));
  g_assert_false(st_writer_finish(w, &err));
  g_assert_nonnull(strstr(err->message, "0 of 16 bytes written"));
  g_clear_error(&err);
  g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

  /* open errors name the file */
  g_assert_null(st_open(path, &err));
  g_assert_nonnull(strstr(err->message, path));
  g_clear_error(&err);
  g_rmdir(dir);
  g_free(path);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/safetensors/valid", test_valid);
  g_test_add_func("/safetensors/truncated-file", test_truncated_file);
  g_test_add_func("/safetensors/too-short", test_too_short);
  g_test_add_func("/safetensors/header-longer-than-file", test_header_longer_than_file);
  g_test_add_func("/safetensors/overlap", test_overlap);
  g_test_add_func("/safetensors/gap-and-tail", test_gap_and_tail);
  g_test_add_func("/safetensors/bad-dtype", test_bad_dtype);
  g_test_add_func("/safetensors/shape-size-mismatch", test_shape_size_mismatch);
  g_test_add_func("/safetensors/invalid-utf8-json", test_invalid_utf8_and_json);
  g_test_add_func("/safetensors/duplicate-names", test_duplicate_names);
  g_test_add_func("/safetensors/writer-roundtrip", test_writer_roundtrip);
  return g_test_run();
}
