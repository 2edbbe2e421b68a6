/* tests/image/image_test_util.h — helpers shared by the image tests: the deterministic
 * test pattern of tools/gen_image_ref.py, reading the reference files of
 * tests/data/image, and uint8 comparison with printed max/mean differences. */
#ifndef BAGEL_IMAGE_TEST_UTIL_H
#define BAGEL_IMAGE_TEST_UTIL_H

#include <glib.h>

/* pattern(seed, w, h, c) of tools/gen_image_ref.py: a new w·h·c buffer (g_free). */
guint8 *itu_pattern(guint seed, int w, int h, int c);

/* tests/data/image/<rel> (the data folder is argv[1] of every image test). */
char *itu_path(const char *rel);
void itu_set_data_dir(const char *dir);
/* Whole file (g_assert on failure); *len its size. */
guint8 *itu_read(const char *rel, gsize *len);
/* Non-comment, non-empty lines of a text file (g_strfreev). */
char **itu_lines(const char *rel);

typedef struct {
  int max_abs;
  double mean_abs;
  gsize n_diff;
} ItuDiff;

ItuDiff itu_diff_u8(const guint8 *a, const guint8 *b, gsize n);

#endif
