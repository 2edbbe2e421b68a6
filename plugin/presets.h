/* plugin/presets.h — the style and multiview presets (resources/presets/<kind>.json):
 * a human name and an instruction per preset; plug-in-bagel-style and
 * plug-in-bagel-multiview are edits whose instruction is the preset's, plus the user's
 * optional extra instruction.
 *
 * File format:
 *   {"schema": "gimp-bagel-presets/1", "kind": "style",
 *    "presets": [{"id": "watercolor", "name": "Watercolor", "instruction": "…"}, …]}
 * ids are [a-z0-9-]+, unique; names and instructions are non-empty; at most 64 presets.
 *
 * Where: $BAGEL_RESOURCES/presets when set, else the installed data dir
 * (<datadir>/gimp-bagel/presets), else the source tree's resources/presets (an
 * uninstalled build).
 */
#ifndef BAGEL_PLUGIN_PRESETS_H
#define BAGEL_PLUGIN_PRESETS_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *id;
  char *name;
  char *instruction;
} BagelPreset;

typedef struct {
  char *kind;
  char *path;                    /* the file read */
  GPtrArray *presets;            /* BagelPreset*, file order */
} BagelPresetList;

/* The directory presets are read from (see above). */
char *bagel_presets_dir(void);

BagelPresetList *bagel_presets_load(const char *kind, GError **error);
BagelPresetList *bagel_presets_load_file(const char *path, const char *kind, GError **error);
void bagel_presets_free(BagelPresetList *list);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BagelPresetList, bagel_presets_free)

const BagelPreset *bagel_presets_find(const BagelPresetList *list, const char *id);

/* The instruction sent for a preset: its own, then the extra one when not empty. */
char *bagel_preset_prompt(const BagelPreset *preset, const char *extra);

G_END_DECLS
#endif
