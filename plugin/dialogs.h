/* plugin/dialogs.h — the interactive side: a GimpProcedureDialog per procedure (the
 * everyday arguments on top, the sampler knobs in a collapsed "Advanced" expander), and
 * a text dialog for describe's answer and think-mode reasoning (selectable, with a Copy
 * button).
 *
 * Test hook: with BAGEL_DIALOG_TEST=<prefix>, a dialog is built and shown but not run:
 * its widget tree is written to <prefix>-<name>.json (types, labels, expander states)
 * and its picture to <prefix>-<name>.png, and it answers OK / Close.  With
 * BAGEL_DIALOG_TEST_EXPAND=1 the expanders are opened first (for a screenshot).
 */
#ifndef BAGEL_PLUGIN_DIALOGS_H
#define BAGEL_PLUGIN_DIALOGS_H

#include <libgimp/gimpui.h>

#include "settings.h"

G_BEGIN_DECLS

/* TRUE when the user pressed OK. */
gboolean bagel_dialog_run(GimpProcedure *procedure, GimpProcedureConfig *config,
                          BagelProcKind kind);

/* Show text (and reasoning, when not NULL) until closed. */
void bagel_dialog_show_text(const char *title, const char *text, const char *reasoning);

G_END_DECLS
#endif
