/* plugin/settings.c — settings → job, layer name, parasite JSON (see settings.h). */
#include "settings.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "bagel-config.h"

static const char *const proc_names[BAGEL_PROC_N] = {
  "plug-in-bagel-edit", "plug-in-bagel-generate", "plug-in-bagel-describe",
  "plug-in-bagel-style", "plug-in-bagel-multiview",
};

const char *bagel_proc_name(BagelProcKind kind) {
  return (unsigned)kind < BAGEL_PROC_N ? proc_names[kind] : "?";
}

void bagel_settings_clear(BagelSettings *s) {
  g_free(s->text);
  g_free(s->preset);
  g_free(s->preset_name);
  g_free(s->preset_instruction);
  g_free(s->renorm);
  memset(s, 0, sizeof *s);
}

static gboolean is_preset_kind(BagelProcKind k) {
  return k == BAGEL_PROC_STYLE || k == BAGEL_PROC_MULTIVIEW;
}

static BagelJobMode job_mode(BagelProcKind k) {
  return k == BAGEL_PROC_GENERATE ? BAGEL_JOB_GENERATE
         : k == BAGEL_PROC_DESCRIBE ? BAGEL_JOB_DESCRIBE
                                    : BAGEL_JOB_EDIT;
}

/* "text-channel" (GIMP choice) → BAGEL_RENORM_TEXT_CHANNEL */
static gboolean renorm_type(const char *s, BagelRenormType *out) {
  char *engine = g_strdup(s ? s : "");
  g_strdelimit(engine, "-", '_');
  gboolean ok = bagel_renorm_from_string(engine, out, NULL);
  g_free(engine);
  return ok;
}

gboolean bagel_settings_validate(const BagelSettings *s, GError **error) {
  const char *text = s->text ? s->text : "";
  char *trimmed = g_strstrip(g_strdup(text));
  gboolean empty = *trimmed == '\0';
  g_free(trimmed);
  BagelRenormType r;
  if (is_preset_kind(s->kind) && !s->preset_instruction) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "unknown preset \"%s\"",
                s->preset ? s->preset : "");
  } else if (!is_preset_kind(s->kind) && empty) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "the %s is empty",
                s->kind == BAGEL_PROC_EDIT ? "instruction"
                : s->kind == BAGEL_PROC_GENERATE ? "prompt" : "question");
  } else if (s->kind != BAGEL_PROC_DESCRIBE && !renorm_type(s->renorm, &r)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "unknown renorm-type \"%s\" (expected global, channel or text-channel)",
                s->renorm ? s->renorm : "");
  } else {
    return TRUE;
  }
  return FALSE;
}

char *bagel_settings_prompt(const BagelSettings *s) {
  if (!is_preset_kind(s->kind)) return g_strstrip(g_strdup(s->text ? s->text : ""));
  BagelPreset p = {s->preset, s->preset_name, s->preset_instruction};
  return bagel_preset_prompt(&p, s->text);
}

BagelMsg *bagel_settings_job(const BagelSettings *s) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_JOB);
  m->mode = job_mode(s->kind);
  m->prompt = bagel_settings_prompt(s);
  BagelJobParams *p = &m->params;
  p->set = BAGEL_P_THINK | BAGEL_P_SEED;
  p->think = s->think;
  p->seed = s->seed < 0 ? -1 : s->seed;
  if (m->mode == BAGEL_JOB_DESCRIBE) {
    p->set |= BAGEL_P_MAX_TOKENS;
    p->max_tokens = s->max_tokens;
    return m;
  }
  p->set |= BAGEL_P_STEPS | BAGEL_P_CFG_TEXT | BAGEL_P_CFG_INTERVAL | BAGEL_P_TIMESTEP_SHIFT |
            BAGEL_P_RENORM | BAGEL_P_RENORM_MIN;
  p->steps = s->steps;
  p->cfg_text = (float)s->cfg_text;
  p->cfg_interval[0] = (float)s->cfg_interval_start;
  p->cfg_interval[1] = 1.0f;
  p->timestep_shift = (float)s->timestep_shift;
  renorm_type(s->renorm, &p->renorm);
  p->renorm_min = (float)s->renorm_min;
  if (m->mode == BAGEL_JOB_EDIT) {
    p->set |= BAGEL_P_CFG_IMAGE;
    p->cfg_image = (float)s->cfg_image;
  } else {
    p->set |= BAGEL_P_WIDTH | BAGEL_P_HEIGHT;
    p->width = s->gen_width;
    p->height = s->gen_height;
  }
  return m;
}

char *bagel_settings_layer_name(const BagelSettings *s, gint64 seed) {
  char *text;
  if (is_preset_kind(s->kind)) {
    char *extra = g_strstrip(g_strdup(s->text ? s->text : ""));
    text = *extra ? g_strdup_printf("%s, %s", s->preset_name, extra) : g_strdup(s->preset_name);
    g_free(extra);
  } else {
    text = g_strstrip(g_strdup(s->text ? s->text : ""));
  }
  /* one line, at most BAGEL_LAYER_NAME_MAX_CHARS characters */
  g_strdelimit(text, "\r\n\t", ' ');
  if (g_utf8_strlen(text, -1) > BAGEL_LAYER_NAME_MAX_CHARS) {
    char *end = g_utf8_offset_to_pointer(text, BAGEL_LAYER_NAME_MAX_CHARS - 1);
    *end = '\0';
    char *cut = g_strconcat(g_strchomp(text), "…", NULL);
    g_free(text);
    text = cut;
  }
  char *name = g_strdup_printf("BAGEL: %s (seed %" G_GINT64_FORMAT ")", text, seed);
  g_free(text);
  return name;
}

char *bagel_settings_to_json(const BagelSettings *s, const BagelOutcome *o) {
  JsonBuilder *b = json_builder_new_immutable();
#define STR(k, v) (json_builder_set_member_name(b, k), json_builder_add_string_value(b, v))
#define INT(k, v) (json_builder_set_member_name(b, k), json_builder_add_int_value(b, v))
#define DBL(k, v) (json_builder_set_member_name(b, k), json_builder_add_double_value(b, v))
#define BOOL(k, v) (json_builder_set_member_name(b, k), json_builder_add_boolean_value(b, v))
  json_builder_begin_object(b);
  STR("schema", "gimp-bagel-settings/1");
  STR("procedure", bagel_proc_name(s->kind));
  STR("mode", bagel_job_mode_name(job_mode(s->kind)));
  char *prompt = bagel_settings_prompt(s);
  STR("prompt", prompt);
  g_free(prompt);
  if (is_preset_kind(s->kind)) {
    STR("preset", s->preset);
    STR("extra-instruction", s->text ? s->text : "");
  } else {
    STR(s->kind == BAGEL_PROC_EDIT ? "instruction" : s->kind == BAGEL_PROC_GENERATE ? "prompt-text"
                                                                                  : "question",
        s->text ? s->text : "");
  }
  BOOL("think", s->think);
  INT("seed", o->seed);
  INT("requested-seed", s->seed);
  if (s->kind != BAGEL_PROC_DESCRIBE) {
    INT("steps", s->steps);
    DBL("cfg-text", s->cfg_text);
    if (s->kind != BAGEL_PROC_GENERATE) DBL("cfg-image", s->cfg_image);
    DBL("cfg-interval-start", s->cfg_interval_start);
    DBL("timestep-shift", s->timestep_shift);
    STR("renorm-type", s->renorm);
    DBL("renorm-min", s->renorm_min);
  } else {
    INT("max-tokens", s->max_tokens);
  }
  if (s->kind == BAGEL_PROC_GENERATE) {
    INT("width", s->width);
    INT("height", s->height);
  } else if (s->kind != BAGEL_PROC_DESCRIBE) {
    BOOL("use-selection", s->use_selection);
  }
  json_builder_set_member_name(b, "region");
  json_builder_begin_object(b);
  INT("x", o->src_x);
  INT("y", o->src_y);
  INT("width", o->src_width);
  INT("height", o->src_height);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "model-size");
  json_builder_begin_array(b);
  json_builder_add_int_value(b, o->model_width);
  json_builder_add_int_value(b, o->model_height);
  json_builder_end_array(b);
  STR("engine", o->engine ? o->engine : "");
  STR("plugin", "gimp-bagel " BAGEL_VERSION);
  json_builder_end_object(b);
#undef STR
#undef INT
#undef DBL
#undef BOOL
  JsonNode *root = json_builder_get_root(b);
  JsonGenerator *gen = json_generator_new();
  json_generator_set_root(gen, root);
  char *text = json_generator_to_data(gen, NULL);
  g_object_unref(gen);
  json_node_unref(root);
  g_object_unref(b);
  return text;
}
