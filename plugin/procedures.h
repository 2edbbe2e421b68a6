/* plugin/procedures.h — the PDB procedures of gimp-bagel (menu Filters ▸ AI ▸ BAGEL):
 * their named arguments with the official defaults, and reading a run's config into
 * BagelSettings.  Every argument can be given by name from scripts; run interactively, a
 * GimpProcedureDialog shows them (dialogs.h).
 *
 *   plug-in-bagel-edit       instruction, think, seed, steps, cfg-text, cfg-image,
 *                            cfg-interval-start, timestep-shift, renorm-type, renorm-min,
 *                            use-selection                        → layer, reasoning
 *   plug-in-bagel-generate   prompt, think, seed, width, height (0: the canvas), steps,
 *                            cfg-text, cfg-interval-start, timestep-shift, renorm-type,
 *                            renorm-min                           → layer, reasoning
 *   plug-in-bagel-describe   question, think, max-tokens          → text, reasoning
 *   plug-in-bagel-style      preset, extra-instruction, and the edit knobs
 *   plug-in-bagel-multiview  preset, extra-instruction, and the edit knobs
 */
#ifndef BAGEL_PLUGIN_PROCEDURES_H
#define BAGEL_PLUGIN_PROCEDURES_H

#include <libgimp/gimp.h>

#include "settings.h"

G_BEGIN_DECLS

#define BAGEL_MENU_PATH "<Image>/Filters/AI/BAGEL"
#define BAGEL_DEFAULT_QUESTION "Describe this image in detail."

BagelProcKind bagel_proc_kind_from_name(const char *name);

GimpProcedure *bagel_procedure_new(GimpPlugIn *plug_in, BagelProcKind kind,
                                   GimpRunImageFunc run);

/* Read the config of a run; canvas_width/height size a generate whose width/height are
 * 0.  Style/multiview presets are looked up here. */
gboolean bagel_procedure_settings(BagelProcKind kind, GimpProcedureConfig *config,
                                  int canvas_width, int canvas_height, BagelSettings *s,
                                  GError **error);

G_END_DECLS
#endif
