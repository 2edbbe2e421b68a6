/* engine/cli/cli.h — the bagel command-line tool: one file per subcommand
 * (cmd_<name>.c, exporting int cmd_<name>(int argc, char **argv)).
 * A subcommand prints its error as "bagel <cmd>: <message>" on stderr and returns
 * non-zero; it never crashes on bad input. */
#ifndef BAGEL_CLI_H
#define BAGEL_CLI_H

#include <glib.h>

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);   /* argv[0] is the subcommand name */
  const char *summary;
} CliCommand;

/* Print "bagel <cmd>: <error message>" to stderr and return 1. */
int cli_fail(const char *cmd, GError *error);

/* subcommands (keep in the order of the help text) */
int cmd_info(int argc, char **argv);
int cmd_describe(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
