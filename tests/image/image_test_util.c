/* tests/image/image_test_util.c — see image_test_util.h. */
#include "image_test_util.h"

#include <stdlib.h>
#include <string.h>

static char *data_dir;

void itu_set_data_dir(const char *dir) {
  g_free(data_dir);
  data_dir = g_strdup(dir);
}

char *itu_path(const char *rel) {
  g_assert_nonnull(data_dir);
  return g_build_filename(data_dir, rel, NULL);
}

guint8 *itu_read(const char *rel, gsize *len) {
  char *path = itu_path(rel), *buf = NULL;
  GError *err = NULL;
  gsize n = 0;
  g_file_get_contents(path, &buf, &n, &err);
  g_assert_no_error(err);
  g_free(path);
  if (len) *len = n;
  return (guint8 *)buf;
}

char **itu_lines(const char *rel) {
  char *text = (char *)itu_read(rel, NULL);
  char **all = g_strsplit(text, "\n", -1);
  GPtrArray *keep = g_ptr_array_new();
  for (char **l = all; *l; l++) {
    char *hash = strchr(*l, '#');
    if (hash) *hash = 0;
    g_strstrip(*l);
    if (**l) g_ptr_array_add(keep, g_strdup(*l));
  }
  g_ptr_array_add(keep, NULL);
  g_strfreev(all);
  g_free(text);
  return (char **)g_ptr_array_free(keep, FALSE);
}

guint8 *itu_pattern(guint seed, int w, int h, int c) {
  guint32 s = seed * 0x9E3779B1u + 0x7F4A7C15u;
  if (s == 0) s = 1;
  guint kind = seed % 4;
  guint8 *out = g_malloc((gsize)w * h * c);
  gsize i = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int ch = 0; ch < c; ch++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        guint r = s >> 24, v;
        if (kind == 0) v = r;
        else if (kind == 1) v = (guint)((x * 255) / MAX(w - 1, 1) + y * 3 + ch * 40 + (r >> 5)) & 255;
        else if (kind == 2) v = ((x / 3 + y / 2 + ch) & 1) ? 255 : 0;
        else v = ((x + y + ch) & 1) ? 255 : (r & 15);
        out[i++] = (guint8)v;
      }
  return out;
}

ItuDiff itu_diff_u8(const guint8 *a, const guint8 *b, gsize n) {
  ItuDiff d = {0};
  double sum = 0;
  for (gsize i = 0; i < n; i++) {
    int e = abs((int)a[i] - (int)b[i]);
    if (e) d.n_diff++;
    if (e > d.max_abs) d.max_abs = e;
    sum += e;
  }
  d.mean_abs = n ? sum / n : 0;
  return d;
}
