/* engine/resources.h — data files of resources/ embedded in libbagel (GResource, compiled
 * from engine/resources.gresource.xml), so the engine never depends on the current directory
 * or an install path to find them. */
#ifndef BAGEL_RESOURCES_H
#define BAGEL_RESOURCES_H

#include <glib.h>

G_BEGIN_DECLS

/* The bytes of resources/<name> (e.g. "prompts/think_gen.txt"), exactly as in the file, in
 * static storage (never freed), followed by a NUL not counted in *len.  NULL + error
 * (BAGEL_ERROR_INVALID_ARG) when there is no such resource. */
const char *bagel_resource_text(const char *name, gsize *len, GError **error);

/* The think-mode system prompts of the official inferencer.py (spec §3), byte-exact:
 * GEN_THINK_SYSTEM_PROMPT (generation and editing) and VLM_THINK_SYSTEM_PROMPT
 * (understanding).  Two lines, no trailing newline. */
const char *bagel_prompt_think_gen(void);
const char *bagel_prompt_think_und(void);

G_END_DECLS

#endif
