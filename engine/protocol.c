/* engine/protocol.c — framing and strict parsing of the plug-in ↔ bagel-engine messages
 * described in protocol.h (encoding and writing: protocol_write.c).
 *
 * The parser treats every byte as hostile: the prefix is checked before anything is
 * allocated, the header is bounded (1 MiB), validated as UTF-8 and pre-scanned for
 * nesting depth before json-glib sees it (its parser recurses), every key of every
 * object is checked against the message type's list, and the payload size is derived
 * from the declared image, whose sides are bounded.  Encoding goes through the same
 * tables, so what we send is exactly what we accept (the fuzz target checks that
 * decode ∘ encode is the identity on everything the parser accepts).
 */
#include "protocol.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

/* ---- names ------------------------------------------------------------------------ */

static const char *const type_names[BAGEL_MSG_N_TYPES] = {
  "hello", "job", "accepted", "progress", "result", "error", "cancel", "status",
};
static const char *const mode_names[] = {"edit", "generate", "describe"};
static const char *const code_names[] = {
  "failed", "io", "model", "format", "invalid-arg", "backend", "cancelled",
};

const char *bagel_msg_type_name(BagelMsgType type) {
  return (unsigned)type < BAGEL_MSG_N_TYPES ? type_names[type] : "?";
}

const char *bagel_job_mode_name(BagelJobMode mode) {
  return (unsigned)mode < G_N_ELEMENTS(mode_names) ? mode_names[mode] : "?";
}

gboolean bagel_job_mode_from_string(const char *s, BagelJobMode *out) {
  for (unsigned i = 0; i < G_N_ELEMENTS(mode_names); i++)
    if (s && strcmp(s, mode_names[i]) == 0) {
      *out = (BagelJobMode)i;
      return TRUE;
    }
  return FALSE;
}

const char *bagel_proto_error_code_name(BagelErrorCode code) {
  return (unsigned)code < G_N_ELEMENTS(code_names) ? code_names[code] : "failed";
}

static gboolean error_code_from_string(const char *s, BagelErrorCode *out) {
  for (unsigned i = 0; i < G_N_ELEMENTS(code_names); i++)
    if (strcmp(s, code_names[i]) == 0) {
      *out = (BagelErrorCode)i;
      return TRUE;
    }
  return FALSE;
}

/* ---- messages ----------------------------------------------------------------------- */

BagelMsg *bagel_msg_new(BagelMsgType type) {
  BagelMsg *m = g_new0(BagelMsg, 1);
  m->type = type;
  m->id = -1;
  return m;
}

void bagel_msg_free(BagelMsg *m) {
  if (!m) return;
  g_free(m->software);
  g_free(m->prompt);
  g_free(m->stage);
  g_free(m->text);
  g_free(m->reasoning);
  g_free(m->warning);
  g_free(m->message);
  g_free(m->backend);
  g_free(m->image.pixels);
  g_free(m);
}

BagelMsg *bagel_msg_new_error(gint32 id, BagelErrorCode code, const char *message) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_ERROR);
  m->id = id;
  m->code = (unsigned)code < G_N_ELEMENTS(code_names) ? code : BAGEL_ERROR_FAILED;
  m->message = g_strdup(message ? message : "");
  return m;
}

BagelMsg *bagel_msg_new_error_from_gerror(gint32 id, const GError *error) {
  BagelErrorCode code = BAGEL_ERROR_FAILED;
  if (error && error->domain == BAGEL_ERROR) code = (BagelErrorCode)error->code;
  else if (error && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    code = BAGEL_ERROR_CANCELLED;
  return bagel_msg_new_error(id, code, error ? error->message : "failed");
}

void bagel_msg_propagate_error(const BagelMsg *msg, GError **error) {
  g_set_error_literal(error, BAGEL_ERROR, msg->code, msg->message ? msg->message : "");
}

static gboolean check_image_dims(int w, int h, int c, GError **error) {
  if (w < 1 || h < 1 || w > BAGEL_PROTO_MAX_DIM || h > BAGEL_PROTO_MAX_DIM) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "image size %d×%d is outside 1..%d", w, h, BAGEL_PROTO_MAX_DIM);
    return FALSE;
  }
  if (c != 3 && c != 4) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "image has %d channels (expected 3 or 4)", c);
    return FALSE;
  }
  return TRUE;
}

static gsize image_bytes(const BagelProtoImage *im) {
  return im->pixels || im->width ? (gsize)im->width * im->height * im->channels : 0;
}

gboolean bagel_msg_set_image(BagelMsg *msg, int width, int height, int channels,
                             const guint8 *pixels, int stride, GError **error) {
  if (!check_image_dims(width, height, channels, error)) return FALSE;
  gsize row = (gsize)width * channels;
  guint8 *copy = g_try_malloc(row * height);
  if (!copy) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
                "out of memory for a %d×%d image", width, height);
    return FALSE;
  }
  for (int y = 0; y < height; y++) memcpy(copy + row * y, pixels + (gsize)stride * y, row);
  g_free(msg->image.pixels);
  msg->image = (BagelProtoImage){width, height, channels, copy};
  return TRUE;
}

/* ---- header validation ------------------------------------------------------------ */

static gboolean fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean fail(GError **error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "protocol: %s", s);
  g_free(s);
  return FALSE;
}

/* Every key of `obj` must be one of `allowed` (a NULL-terminated list). */
static gboolean only_keys(JsonObject *obj, const char *where, const char *const *allowed,
                          GError **error) {
  JsonObjectIter it;
  const char *name;
  JsonNode *node;
  json_object_iter_init(&it, obj);
  while (json_object_iter_next(&it, &name, &node)) {
    gboolean ok = FALSE;
    for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, name) == 0;
    if (!ok) return fail(error, "unknown key \"%.64s\" in %s", name, where);
  }
  return TRUE;
}

static JsonNode *member(JsonObject *obj, const char *key) {
  return json_object_has_member(obj, key) ? json_object_get_member(obj, key) : NULL;
}

static gboolean is_int(JsonNode *n) {
  return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64;
}

static gboolean is_number(JsonNode *n) {
  return JSON_NODE_HOLDS_VALUE(n) && (json_node_get_value_type(n) == G_TYPE_INT64 ||
                                      json_node_get_value_type(n) == G_TYPE_DOUBLE);
}

/* Optional integer in [lo, hi]; *present tells whether it was there. */
static gboolean get_int(JsonObject *obj, const char *key, gint64 lo, gint64 hi,
                        gboolean required, gint64 *out, gboolean *present, GError **error) {
  JsonNode *n = member(obj, key);
  if (present) *present = n != NULL;
  if (!n) return required ? fail(error, "missing \"%s\"", key) : TRUE;
  if (!is_int(n)) return fail(error, "\"%s\" must be an integer", key);
  gint64 v = json_node_get_int(n);
  if (v < lo || v > hi)
    return fail(error, "\"%s\" = %" G_GINT64_FORMAT " is outside %" G_GINT64_FORMAT
                " .. %" G_GINT64_FORMAT, key, v, lo, hi);
  *out = v;
  return TRUE;
}

static gboolean get_int32(JsonObject *obj, const char *key, int lo, int hi,
                          gboolean required, int *out, gboolean *present, GError **error) {
  gint64 v = 0;
  gboolean here = FALSE;
  if (!get_int(obj, key, lo, hi, required, &v, &here, error)) return FALSE;
  if (here) *out = (int)v;
  if (present) *present = here;
  return TRUE;
}

static gboolean get_double(JsonObject *obj, const char *key, double lo, double hi,
                           gboolean required, double *out, gboolean *present,
                           GError **error) {
  JsonNode *n = member(obj, key);
  if (present) *present = n != NULL;
  if (!n) return required ? fail(error, "missing \"%s\"", key) : TRUE;
  if (!is_number(n)) return fail(error, "\"%s\" must be a number", key);
  double v = json_node_get_value_type(n) == G_TYPE_INT64 ? (double)json_node_get_int(n)
                                                         : json_node_get_double(n);
  if (!isfinite(v) || v < lo || v > hi)
    return fail(error, "\"%s\" = %g is outside %g .. %g", key, v, lo, hi);
  *out = v == 0 ? 0.0 : v;  /* no −0: it would not survive an integer "0" */
  return TRUE;
}

static gboolean get_float(JsonObject *obj, const char *key, double lo, double hi,
                          float *out, gboolean *present, GError **error) {
  double v = 0;
  if (!get_double(obj, key, lo, hi, FALSE, &v, present, error)) return FALSE;
  if (*present) *out = (float)v;
  return TRUE;
}

static gboolean get_bool(JsonObject *obj, const char *key, gboolean required,
                         gboolean *out, gboolean *present, GError **error) {
  JsonNode *n = member(obj, key);
  if (present) *present = n != NULL;
  if (!n) return required ? fail(error, "missing \"%s\"", key) : TRUE;
  if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
    return fail(error, "\"%s\" must be true or false", key);
  *out = json_node_get_boolean(n);
  return TRUE;
}

/* Strings: any valid UTF-8 (the whole header was validated) up to `max` bytes. */
static gboolean get_string(JsonObject *obj, const char *key, gsize max, gboolean required,
                           char **out, GError **error) {
  JsonNode *n = member(obj, key);
  if (!n) return required ? fail(error, "missing \"%s\"", key) : TRUE;
  if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
    return fail(error, "\"%s\" must be a string", key);
  const char *s = json_node_get_string(n);
  /* json-glib may turn a lone \uD800 escape into bytes that are not UTF-8 */
  if (!g_utf8_validate(s, -1, NULL)) return fail(error, "\"%s\" is not valid UTF-8", key);
  if (strlen(s) > max) return fail(error, "\"%s\" is longer than %zu bytes", key, (size_t)max);
  g_free(*out);
  *out = g_strdup(s);
  return TRUE;
}

static JsonObject *get_object(JsonObject *obj, const char *key, GError **error) {
  JsonNode *n = member(obj, key);
  if (!n) return NULL;
  if (!JSON_NODE_HOLDS_OBJECT(n)) {
    fail(error, "\"%s\" must be an object", key);
    return NULL;
  }
  return json_node_get_object(n);
}

/* Object-valued keys: NULL means "absent" when *error stays unset. */
#define GET_OBJECT(var, obj, key)                              \
  JsonObject *var = get_object(obj, key, error);               \
  if (!var && error && *error) return FALSE

static gboolean parse_id(JsonObject *o, gboolean required, BagelMsg *m, GError **error) {
  gint64 id = -1;
  if (!get_int(o, "id", 0, BAGEL_PROTO_MAX_ID, required, &id, NULL, error)) return FALSE;
  m->id = (gint32)id;
  return TRUE;
}

static gboolean parse_image(JsonObject *o, BagelMsg *m, GError **error) {
  GET_OBJECT(im, o, "image");
  if (!im) return TRUE;
  static const char *const keys[] = {"width", "height", "channels", NULL};
  if (!only_keys(im, "image", keys, error)) return FALSE;
  int w = 0, h = 0, c = 0;
  if (!get_int32(im, "width", 1, BAGEL_PROTO_MAX_DIM, TRUE, &w, NULL, error) ||
      !get_int32(im, "height", 1, BAGEL_PROTO_MAX_DIM, TRUE, &h, NULL, error) ||
      !get_int32(im, "channels", 3, 4, TRUE, &c, NULL, error))
    return FALSE;
  m->image = (BagelProtoImage){w, h, c, NULL};
  return TRUE;
}

static gboolean parse_hello(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "version", "software", "pid", NULL};
  return only_keys(o, "hello", keys, error) &&
         get_int32(o, "version", 1, G_MAXINT32, TRUE, &m->version, NULL, error) &&
         get_string(o, "software", 256, TRUE, &m->software, error) &&
         get_int(o, "pid", 1, G_MAXINT32, FALSE, &m->pid, NULL, error);
}

/* Which params apply to which mode. */
#define P_COMMON (BAGEL_P_THINK | BAGEL_P_SEED | BAGEL_P_THINK_MAX_TOKENS)
#define P_SAMPLER (BAGEL_P_STEPS | BAGEL_P_CFG_TEXT | BAGEL_P_CFG_IMAGE |             \
                   BAGEL_P_CFG_INTERVAL | BAGEL_P_TIMESTEP_SHIFT | BAGEL_P_RENORM |     \
                   BAGEL_P_RENORM_MIN)

static guint32 params_allowed(BagelJobMode mode) {
  switch (mode) {
  case BAGEL_JOB_DESCRIBE: return P_COMMON | BAGEL_P_MAX_TOKENS;
  case BAGEL_JOB_GENERATE: return P_COMMON | P_SAMPLER | BAGEL_P_WIDTH | BAGEL_P_HEIGHT;
  case BAGEL_JOB_EDIT: return P_COMMON | P_SAMPLER;
  }
  return 0;
}

static const struct {
  const char *key;
  guint32 bit;
} param_keys[] = {
  {"think", BAGEL_P_THINK}, {"seed", BAGEL_P_SEED},
  {"think_max_tokens", BAGEL_P_THINK_MAX_TOKENS}, {"max_tokens", BAGEL_P_MAX_TOKENS},
  {"steps", BAGEL_P_STEPS}, {"cfg_text", BAGEL_P_CFG_TEXT}, {"cfg_image", BAGEL_P_CFG_IMAGE},
  {"cfg_interval", BAGEL_P_CFG_INTERVAL}, {"timestep_shift", BAGEL_P_TIMESTEP_SHIFT},
  {"renorm", BAGEL_P_RENORM}, {"renorm_min", BAGEL_P_RENORM_MIN},
  {"width", BAGEL_P_WIDTH}, {"height", BAGEL_P_HEIGHT},
};

static gboolean parse_cfg_interval(JsonObject *o, BagelJobParams *p, GError **error) {
  JsonNode *n = member(o, "cfg_interval");
  if (!n) return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY(n) || json_array_get_length(json_node_get_array(n)) != 2)
    return fail(error, "\"cfg_interval\" must be an array of two numbers");
  JsonArray *a = json_node_get_array(n);
  double v[2];
  for (int i = 0; i < 2; i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (!is_number(e)) return fail(error, "\"cfg_interval\" must be an array of two numbers");
    v[i] = json_node_get_value_type(e) == G_TYPE_INT64 ? (double)json_node_get_int(e)
                                                       : json_node_get_double(e);
    if (v[i] == 0) v[i] = 0.0;  /* no −0 */
  }
  if (!(v[0] >= 0 && v[0] <= v[1] && v[1] <= 1))
    return fail(error, "\"cfg_interval\" [%g, %g] must satisfy 0 ≤ start ≤ end ≤ 1", v[0], v[1]);
  p->cfg_interval[0] = (float)v[0];
  p->cfg_interval[1] = (float)v[1];
  return TRUE;
}

static gboolean parse_params(JsonObject *o, BagelJobMode mode, BagelJobParams *p,
                             GError **error) {
  guint32 allowed = params_allowed(mode);
  JsonObjectIter it;
  const char *name;
  JsonNode *node;
  json_object_iter_init(&it, o);
  while (json_object_iter_next(&it, &name, &node)) {
    guint32 bit = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(param_keys) && !bit; i++)
      if (strcmp(param_keys[i].key, name) == 0) bit = param_keys[i].bit;
    if (!bit) return fail(error, "unknown key \"%.64s\" in params", name);
    if (!(bit & allowed))
      return fail(error, "params \"%s\" does not apply to %s jobs", name,
                  bagel_job_mode_name(mode));
    p->set |= bit;
  }
  gboolean here;
  char *renorm = NULL;
  gboolean ok =
      get_bool(o, "think", FALSE, &p->think, &here, error) &&
      get_int(o, "seed", G_MININT64, G_MAXINT64, FALSE, &p->seed, &here, error) &&
      get_int32(o, "think_max_tokens", 1, 65536, FALSE, &p->think_max_tokens, &here, error) &&
      get_int32(o, "max_tokens", 1, 65536, FALSE, &p->max_tokens, &here, error) &&
      get_int32(o, "steps", 2, 1000, FALSE, &p->steps, &here, error) &&
      get_float(o, "cfg_text", 0, 100, &p->cfg_text, &here, error) &&
      get_float(o, "cfg_image", 0, 100, &p->cfg_image, &here, error) &&
      parse_cfg_interval(o, p, error) &&
      get_float(o, "timestep_shift", 0, 100, &p->timestep_shift, &here, error) &&
      get_float(o, "renorm_min", 0, 100, &p->renorm_min, &here, error) &&
      get_int32(o, "width", 1, BAGEL_PROTO_MAX_DIM, FALSE, &p->width, &here, error) &&
      get_int32(o, "height", 1, BAGEL_PROTO_MAX_DIM, FALSE, &p->height, &here, error) &&
      get_string(o, "renorm", 32, FALSE, &renorm, error);
  if (ok && (p->set & BAGEL_P_TIMESTEP_SHIFT) && !(p->timestep_shift > 0))
    ok = fail(error, "\"timestep_shift\" must be greater than 0");
  if (ok && renorm) {
    GError *e = NULL;
    if (!bagel_renorm_from_string(renorm, &p->renorm, &e)) {
      ok = fail(error, "%s", e->message);
      g_error_free(e);
    }
  }
  g_free(renorm);
  return ok;
}

static gboolean parse_job(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "id", "mode", "prompt", "params", "image", NULL};
  char *mode = NULL;
  if (!only_keys(o, "job", keys, error) || !parse_id(o, TRUE, m, error) ||
      !get_string(o, "mode", 16, TRUE, &mode, error))
    return FALSE;
  gboolean known = bagel_job_mode_from_string(mode, &m->mode);
  if (!known) fail(error, "unknown job mode \"%.16s\"", mode);
  g_free(mode);
  if (!known || !get_string(o, "prompt", BAGEL_PROTO_MAX_HEADER, TRUE, &m->prompt, error))
    return FALSE;
  GET_OBJECT(params, o, "params");
  if (params && !parse_params(params, m->mode, &m->params, error)) return FALSE;
  if (!parse_image(o, m, error)) return FALSE;
  gboolean wants_image = m->mode != BAGEL_JOB_GENERATE;
  if (wants_image != (m->image.width > 0))
    return fail(error, "a %s job %s", bagel_job_mode_name(m->mode),
                wants_image ? "needs an image" : "takes no image");
  return TRUE;
}

static gboolean parse_accepted(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "id", "position", NULL};
  return only_keys(o, "accepted", keys, error) && parse_id(o, TRUE, m, error) &&
         get_int32(o, "position", 0, G_MAXINT32, TRUE, &m->position, NULL, error);
}

static gboolean parse_progress(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "id", "stage", "step", "total", "elapsed", NULL};
  return only_keys(o, "progress", keys, error) && parse_id(o, TRUE, m, error) &&
         get_string(o, "stage", 64, TRUE, &m->stage, error) &&
         get_int32(o, "step", 0, G_MAXINT32, TRUE, &m->step, NULL, error) &&
         get_int32(o, "total", 0, G_MAXINT32, TRUE, &m->total, NULL, error) &&
         get_double(o, "elapsed", 0, 1e9, FALSE, &m->elapsed, NULL, error);
}

static gboolean parse_timings(JsonObject *o, BagelTimings *t, GError **error) {
  static const char *const keys[] = {"vit", "vae_encode", "prefill", "think", "decode",
                                     "denoise", "vae_decode", "total", "denoise_steps",
                                     "decode_tokens", NULL};
  return only_keys(o, "timings", keys, error) &&
         get_double(o, "vit", 0, 1e9, FALSE, &t->vit, NULL, error) &&
         get_double(o, "vae_encode", 0, 1e9, FALSE, &t->vae_encode, NULL, error) &&
         get_double(o, "prefill", 0, 1e9, FALSE, &t->prefill, NULL, error) &&
         get_double(o, "think", 0, 1e9, FALSE, &t->think, NULL, error) &&
         get_double(o, "decode", 0, 1e9, FALSE, &t->decode, NULL, error) &&
         get_double(o, "denoise", 0, 1e9, FALSE, &t->denoise, NULL, error) &&
         get_double(o, "vae_decode", 0, 1e9, FALSE, &t->vae_decode, NULL, error) &&
         get_double(o, "total", 0, 1e9, FALSE, &t->total, NULL, error) &&
         get_int32(o, "denoise_steps", 0, G_MAXINT32, FALSE, &t->denoise_steps, NULL, error) &&
         get_int32(o, "decode_tokens", 0, G_MAXINT32, FALSE, &t->decode_tokens, NULL, error);
}

static gboolean parse_result(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "id", "seed", "text", "reasoning", "timings",
                                     "image", "warning", NULL};
  if (!only_keys(o, "result", keys, error) || !parse_id(o, TRUE, m, error) ||
      !get_int(o, "seed", G_MININT64, G_MAXINT64, TRUE, &m->seed, NULL, error) ||
      !get_string(o, "text", BAGEL_PROTO_MAX_HEADER, FALSE, &m->text, error) ||
      !get_string(o, "reasoning", BAGEL_PROTO_MAX_HEADER, FALSE, &m->reasoning, error) ||
      !get_string(o, "warning", 4096, FALSE, &m->warning, error))
    return FALSE;
  GET_OBJECT(timings, o, "timings");
  if (timings && !parse_timings(timings, &m->timings, error)) return FALSE;
  return parse_image(o, m, error);
}

static gboolean parse_error(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "id", "code", "message", NULL};
  char *code = NULL;
  if (!only_keys(o, "error", keys, error) || !parse_id(o, FALSE, m, error) ||
      !get_string(o, "code", 32, TRUE, &code, error) ||
      !get_string(o, "message", BAGEL_PROTO_MAX_HEADER, TRUE, &m->message, error)) {
    g_free(code);
    return FALSE;
  }
  gboolean known = error_code_from_string(code, &m->code);
  if (!known) fail(error, "unknown error code \"%.32s\"", code);
  g_free(code);
  return known;
}

static gboolean parse_cancel(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "id", NULL};
  return only_keys(o, "cancel", keys, error) && parse_id(o, TRUE, m, error);
}

static gboolean parse_status(JsonObject *o, BagelMsg *m, GError **error) {
  static const char *const keys[] = {"type", "pid", "model_loaded", "model_loads",
                                     "jobs_done", "jobs_cancelled", "queued", "backend",
                                     NULL};
  if (!only_keys(o, "status", keys, error)) return FALSE;
  m->is_reply = json_object_get_size(o) > 1;
  if (!m->is_reply) return TRUE;  /* the request */
  return get_int(o, "pid", 1, G_MAXINT32, TRUE, &m->pid, NULL, error) &&
         get_bool(o, "model_loaded", TRUE, &m->model_loaded, NULL, error) &&
         get_int32(o, "model_loads", 0, G_MAXINT32, TRUE, &m->model_loads, NULL, error) &&
         get_int32(o, "jobs_done", 0, G_MAXINT32, TRUE, &m->jobs_done, NULL, error) &&
         get_int32(o, "jobs_cancelled", 0, G_MAXINT32, TRUE, &m->jobs_cancelled, NULL, error) &&
         get_int32(o, "queued", 0, G_MAXINT32, TRUE, &m->queued, NULL, error) &&
         get_string(o, "backend", 64, FALSE, &m->backend, error);
}

typedef gboolean (*ParseFunc)(JsonObject *o, BagelMsg *m, GError **error);
static const ParseFunc parsers[BAGEL_MSG_N_TYPES] = {
  parse_hello, parse_job, parse_accepted, parse_progress,
  parse_result, parse_error, parse_cancel, parse_status,
};

/* ---- decoding --------------------------------------------------------------------- */

gboolean bagel_proto_parse_prefix(const guint8 prefix[BAGEL_PROTO_PREFIX_SIZE],
                                  guint32 *header_len, GError **error) {
  if (memcmp(prefix, BAGEL_PROTO_MAGIC, 3) != 0)
    return fail(error, "not a bagel-engine frame (bad magic %02x %02x %02x)",
                prefix[0], prefix[1], prefix[2]);
  if (prefix[3] != (guint8)BAGEL_PROTO_MAGIC[3])
    return fail(error, "framing version %u is not supported (this side speaks %u)",
                prefix[3], (guint8)BAGEL_PROTO_MAGIC[3]);
  guint32 n = (guint32)prefix[4] | (guint32)prefix[5] << 8 | (guint32)prefix[6] << 16 |
              (guint32)prefix[7] << 24;
  if (n < 2 || n > BAGEL_PROTO_MAX_HEADER)
    return fail(error, "header length %u is outside 2 .. %u", n, BAGEL_PROTO_MAX_HEADER);
  *header_len = n;
  return TRUE;
}

/* json-glib's parser recurses once per nesting level: refuse deep input first. */
static gboolean check_depth(const char *s, gsize len, GError **error) {
  int depth = 0;
  gboolean in_string = FALSE, escaped = FALSE;
  for (gsize i = 0; i < len; i++) {
    char c = s[i];
    if (in_string) {
      if (escaped) escaped = FALSE;
      else if (c == '\\') escaped = TRUE;
      else if (c == '"') in_string = FALSE;
    } else if (c == '"') {
      in_string = TRUE;
    } else if (c == '{' || c == '[') {
      if (++depth > BAGEL_PROTO_MAX_DEPTH)
        return fail(error, "header nests deeper than %d levels", BAGEL_PROTO_MAX_DEPTH);
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return TRUE;
}

BagelMsg *bagel_proto_parse_header(const char *json, gsize len, gsize *payload_len,
                                   GError **error) {
  if (len > BAGEL_PROTO_MAX_HEADER) {
    fail(error, "header of %zu bytes is larger than %u", (size_t)len, BAGEL_PROTO_MAX_HEADER);
    return NULL;
  }
  if (!g_utf8_validate(json, (gssize)len, NULL)) {
    fail(error, "header is not valid UTF-8 (or holds a NUL byte)");
    return NULL;
  }
  if (!check_depth(json, len, error)) return NULL;

  JsonParser *parser = json_parser_new_immutable();
  GError *e = NULL;
  if (!json_parser_load_from_data(parser, json, (gssize)len, &e)) {
    fail(error, "header is not JSON: %s", e->message);
    g_error_free(e);
    g_object_unref(parser);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(parser);
  BagelMsg *m = NULL;
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    fail(error, "header is not a JSON object");
    goto out;
  }
  JsonObject *o = json_node_get_object(root);
  char *type = NULL;
  if (!get_string(o, "type", 32, TRUE, &type, error)) goto out;
  int t = -1;
  for (int i = 0; i < BAGEL_MSG_N_TYPES; i++)
    if (strcmp(type, type_names[i]) == 0) t = i;
  if (t < 0) {
    fail(error, "unknown message type \"%.32s\"", type);
    g_free(type);
    goto out;
  }
  g_free(type);
  m = bagel_msg_new((BagelMsgType)t);
  if (!parsers[t](o, m, error)) {
    bagel_msg_free(m);
    m = NULL;
    goto out;
  }
  if (payload_len) *payload_len = image_bytes(&m->image);
out:
  g_object_unref(parser);
  return m;
}

BagelProtoStatus bagel_proto_decode(const guint8 *data, gsize len, gsize *consumed,
                                    BagelMsg **msg, GError **error) {
  *msg = NULL;
  *consumed = 0;
  guint32 hlen;
  if (len == 0) return BAGEL_PROTO_NEED_MORE;
  if (len < BAGEL_PROTO_PREFIX_SIZE) {
    /* A wrong magic is refused as soon as it shows. */
    gsize n = MIN(len, 4);
    if (memcmp(data, BAGEL_PROTO_MAGIC, n) != 0) {
      fail(error, "not a bagel-engine frame (bad magic)");
      return BAGEL_PROTO_INVALID;
    }
    return BAGEL_PROTO_NEED_MORE;
  }
  if (!bagel_proto_parse_prefix(data, &hlen, error)) return BAGEL_PROTO_INVALID;
  if (len - BAGEL_PROTO_PREFIX_SIZE < hlen) return BAGEL_PROTO_NEED_MORE;
  gsize payload = 0;
  BagelMsg *m = bagel_proto_parse_header((const char *)data + BAGEL_PROTO_PREFIX_SIZE, hlen,
                                         &payload, error);
  if (!m) return BAGEL_PROTO_INVALID;
  gsize head = BAGEL_PROTO_PREFIX_SIZE + (gsize)hlen;
  if (len - head < payload) {
    bagel_msg_free(m);
    return BAGEL_PROTO_NEED_MORE;
  }
  if (payload) {
    m->image.pixels = g_try_malloc(payload);
    if (!m->image.pixels) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
                  "out of memory for a %d×%d image", m->image.width, m->image.height);
      bagel_msg_free(m);
      return BAGEL_PROTO_INVALID;
    }
    memcpy(m->image.pixels, data + head, payload);
  }
  *consumed = head + payload;
  *msg = m;
  return BAGEL_PROTO_MESSAGE;
}

/* Read exactly n bytes; *got tells how many arrived before an end of stream. */
static gboolean read_exactly(GInputStream *in, void *buf, gsize n, gsize *got,
                             GCancellable *cancellable, GError **error) {
  GError *e = NULL;
  if (!g_input_stream_read_all(in, buf, n, got, cancellable, &e)) {
    g_set_error(error, BAGEL_ERROR,
                g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED) ? BAGEL_ERROR_CANCELLED
                                                                     : BAGEL_ERROR_IO,
                "connection: %s", e->message);
    g_error_free(e);
    return FALSE;
  }
  return TRUE;
}

BagelMsg *bagel_proto_read(GInputStream *in, GCancellable *cancellable, GError **error) {
  guint8 prefix[BAGEL_PROTO_PREFIX_SIZE];
  gsize got = 0;
  guint32 hlen;
  if (!read_exactly(in, prefix, sizeof prefix, &got, cancellable, error)) return NULL;
  if (got == 0) return NULL;  /* clean end of stream */
  if (got < sizeof prefix) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "connection closed inside a frame");
    return NULL;
  }
  if (!bagel_proto_parse_prefix(prefix, &hlen, error)) return NULL;
  char *json = g_malloc(hlen);
  if (!read_exactly(in, json, hlen, &got, cancellable, error)) {
    g_free(json);
    return NULL;
  }
  if (got < hlen) {
    g_free(json);
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "connection closed inside a frame");
    return NULL;
  }
  gsize payload = 0;
  BagelMsg *m = bagel_proto_parse_header(json, hlen, &payload, error);
  g_free(json);
  if (!m || !payload) return m;
  m->image.pixels = g_try_malloc(payload);
  if (!m->image.pixels) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "out of memory for a %d×%d image",
                m->image.width, m->image.height);
    bagel_msg_free(m);
    return NULL;
  }
  if (!read_exactly(in, m->image.pixels, payload, &got, cancellable, error)) {
    bagel_msg_free(m);
    return NULL;
  }
  if (got < payload) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "connection closed inside a frame");
    bagel_msg_free(m);
    return NULL;
  }
  return m;
}
