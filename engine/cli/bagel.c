/* engine/cli/bagel.c — `bagel <command> [options]`: dispatch to the subcommands. */
#include "cli.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "bagel-config.h"

/* One line per subcommand; the table ends with a NULL name. */
static const CliCommand commands[] = {
  {"info", cmd_info, "print the architecture, parameter counts and dtypes of a checkpoint"},
  {"tokenize", cmd_tokenize, "text <-> token ids with the model's tokenizer (stdin lines)"},
  {"describe", cmd_describe, "describe an image or answer a question about it"},
  {"generate", cmd_generate, "generate an image from a prompt"},
  {"edit", cmd_edit, "edit an image following an instruction"},
  {"bench", cmd_bench, "time the pipeline stage by stage (or project it on a GPU)"},
  {NULL, NULL, NULL},
};

int cli_fail(const char *cmd, GError *error) {
  fprintf(stderr, "bagel %s: %s\n", cmd, error ? error->message : "failed");
  g_clear_error(&error);
  return 1;
}

static void usage(FILE *f) {
  fprintf(f, "usage: bagel <command> [options]   (bagel <command> --help for its options)\n\n");
  for (size_t i = 0; commands[i].name; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  setlocale(LC_ALL, "");
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("bagel %s\n", BAGEL_VERSION);
    return 0;
  }
  for (size_t i = 0; commands[i].name; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "bagel: unknown command \"%s\"\n\n", argv[1]);
  usage(stderr);
  return 2;
}
