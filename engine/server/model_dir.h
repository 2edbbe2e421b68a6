/* engine/server/model_dir.h — where the BAGEL-7B-MoT checkpoint is, and whether it is
 * complete.
 *
 * Order: the configured directory (bagel-engine --model, BAGEL_MODEL, or `model` in
 * ~/.config/gimp-bagel/gimp-bagel.conf); else the default download location
 * <user data dir>/gimp-bagel/BAGEL-7B-MoT; else the Hugging Face cache snapshot of
 * ByteDance-Seed/BAGEL-7B-MoT ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub;
 * the snapshot refs/main names, else the newest complete one).  A missing or partial
 * model is a BAGEL_ERROR_MODEL whose message holds the exact download command.
 */
#ifndef BAGEL_MODEL_DIR_H
#define BAGEL_MODEL_DIR_H

#include <glib.h>

G_BEGIN_DECLS

#define BAGEL_HF_REPO "ByteDance-Seed/BAGEL-7B-MoT"

/* The files a checkpoint directory must hold (NULL-terminated). */
extern const char *const bagel_model_files[];

/* The default download location, <user data dir>/gimp-bagel/BAGEL-7B-MoT. */
char *bagel_model_default_dir(void);

/* The model directory to open.  configured may be NULL; origin names where it came
 * from ("BAGEL_MODEL", "the config file …") for the error message. */
char *bagel_model_dir_find(const char *configured, const char *origin, GError **error);

/* Append the download command for dir to a model error's message. */
void bagel_model_dir_add_hint(GError *error, const char *dir);

G_END_DECLS
#endif
