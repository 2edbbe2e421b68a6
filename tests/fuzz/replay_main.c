/* tests/fuzz/replay_main.c — runs a fuzz target's entry point over every file of its
 * corpus directories (the seed corpus and every crash ever found), so the regression
 * corpus is exercised by the normal test suite and under the sanitizer builds, with any
 * compiler.  libFuzzer builds (-Dfuzz=true, clang) link the same target file instead. */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_path(const char *path, int *count) {
  if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
    GError *err = NULL;
    GDir *dir = g_dir_open(path, 0, &err);
    if (!dir) {
      fprintf(stderr, "replay: %s\n", err->message);
      g_error_free(err);
      return 1;
    }
    const char *name;
    int rc = 0;
    while ((name = g_dir_read_name(dir))) {
      char *child = g_build_filename(path, name, NULL);
      rc |= replay_path(child, count);
      g_free(child);
    }
    g_dir_close(dir);
    return rc;
  }
  char *buf = NULL;
  gsize len = 0;
  GError *err = NULL;
  if (!g_file_get_contents(path, &buf, &len, &err)) {
    fprintf(stderr, "replay: %s\n", err->message);
    g_error_free(err);
    return 1;
  }
  LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
  g_free(buf);
  (*count)++;
  return 0;
}

int main(int argc, char **argv) {
  int rc = 0, count = 0;
  for (int i = 1; i < argc; i++) rc |= replay_path(argv[i], &count);
  printf("replayed %d inputs\n", count);
  if (count == 0) {
    fprintf(stderr, "replay: no corpus inputs found\n");
    return 1;
  }
  return rc;
}
