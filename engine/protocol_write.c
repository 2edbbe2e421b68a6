/* engine/protocol_write.c — encoding and writing the plug-in ↔ bagel-engine frames
 * (protocol.h), and applying a job's parameters over the engine's defaults.  The header
 * JSON is built from the same fields the parser (protocol.c) checks, in a fixed order, so
 * what we send is exactly what we accept. */
#include "protocol.h"

#include <json-glib/json-glib.h>
#include <string.h>

static gsize image_bytes(const BagelProtoImage *im) {
  return im->width > 0 ? (gsize)im->width * im->height * im->channels : 0;
}

/* ---- encoding ----------------------------------------------------------------------- */

static void add_int(JsonBuilder *b, const char *key, gint64 v) {
  json_builder_set_member_name(b, key);
  json_builder_add_int_value(b, v);
}

static void add_double(JsonBuilder *b, const char *key, double v) {
  json_builder_set_member_name(b, key);
  json_builder_add_double_value(b, v);
}

static void add_string(JsonBuilder *b, const char *key, const char *v) {
  if (!v) return;
  json_builder_set_member_name(b, key);
  json_builder_add_string_value(b, v);
}

static void add_bool(JsonBuilder *b, const char *key, gboolean v) {
  json_builder_set_member_name(b, key);
  json_builder_add_boolean_value(b, v);
}

static void add_image(JsonBuilder *b, const BagelProtoImage *im) {
  if (im->width <= 0) return;
  json_builder_set_member_name(b, "image");
  json_builder_begin_object(b);
  add_int(b, "width", im->width);
  add_int(b, "height", im->height);
  add_int(b, "channels", im->channels);
  json_builder_end_object(b);
}

static void add_params(JsonBuilder *b, const BagelJobParams *p) {
  json_builder_set_member_name(b, "params");
  json_builder_begin_object(b);
  if (p->set & BAGEL_P_THINK) add_bool(b, "think", p->think);
  if (p->set & BAGEL_P_SEED) add_int(b, "seed", p->seed);
  if (p->set & BAGEL_P_THINK_MAX_TOKENS) add_int(b, "think_max_tokens", p->think_max_tokens);
  if (p->set & BAGEL_P_MAX_TOKENS) add_int(b, "max_tokens", p->max_tokens);
  if (p->set & BAGEL_P_STEPS) add_int(b, "steps", p->steps);
  if (p->set & BAGEL_P_CFG_TEXT) add_double(b, "cfg_text", p->cfg_text);
  if (p->set & BAGEL_P_CFG_IMAGE) add_double(b, "cfg_image", p->cfg_image);
  if (p->set & BAGEL_P_CFG_INTERVAL) {
    json_builder_set_member_name(b, "cfg_interval");
    json_builder_begin_array(b);
    json_builder_add_double_value(b, p->cfg_interval[0]);
    json_builder_add_double_value(b, p->cfg_interval[1]);
    json_builder_end_array(b);
  }
  if (p->set & BAGEL_P_TIMESTEP_SHIFT) add_double(b, "timestep_shift", p->timestep_shift);
  if (p->set & BAGEL_P_RENORM) add_string(b, "renorm", bagel_renorm_to_string(p->renorm));
  if (p->set & BAGEL_P_RENORM_MIN) add_double(b, "renorm_min", p->renorm_min);
  if (p->set & BAGEL_P_WIDTH) add_int(b, "width", p->width);
  if (p->set & BAGEL_P_HEIGHT) add_int(b, "height", p->height);
  json_builder_end_object(b);
}

static void add_timings(JsonBuilder *b, const BagelTimings *t) {
  json_builder_set_member_name(b, "timings");
  json_builder_begin_object(b);
  add_double(b, "vit", t->vit);
  add_double(b, "vae_encode", t->vae_encode);
  add_double(b, "prefill", t->prefill);
  add_double(b, "think", t->think);
  add_double(b, "decode", t->decode);
  add_double(b, "denoise", t->denoise);
  add_double(b, "vae_decode", t->vae_decode);
  add_double(b, "total", t->total);
  add_int(b, "denoise_steps", t->denoise_steps);
  add_int(b, "decode_tokens", t->decode_tokens);
  json_builder_end_object(b);
}

static char *header_json(const BagelMsg *m, gsize *len) {
  JsonBuilder *b = json_builder_new_immutable();
  json_builder_begin_object(b);
  add_string(b, "type", bagel_msg_type_name(m->type));
  switch (m->type) {
  case BAGEL_MSG_HELLO:
    add_int(b, "version", m->version);
    add_string(b, "software", m->software ? m->software : "");
    if (m->pid > 0) add_int(b, "pid", m->pid);
    break;
  case BAGEL_MSG_JOB:
    add_int(b, "id", m->id);
    add_string(b, "mode", bagel_job_mode_name(m->mode));
    add_string(b, "prompt", m->prompt ? m->prompt : "");
    add_params(b, &m->params);
    add_image(b, &m->image);
    break;
  case BAGEL_MSG_ACCEPTED:
    add_int(b, "id", m->id);
    add_int(b, "position", m->position);
    break;
  case BAGEL_MSG_PROGRESS:
    add_int(b, "id", m->id);
    add_string(b, "stage", m->stage ? m->stage : "");
    add_int(b, "step", m->step);
    add_int(b, "total", m->total);
    add_double(b, "elapsed", m->elapsed);
    break;
  case BAGEL_MSG_RESULT:
    add_int(b, "id", m->id);
    add_int(b, "seed", m->seed);
    add_string(b, "text", m->text);
    add_string(b, "reasoning", m->reasoning);
    add_timings(b, &m->timings);
    add_image(b, &m->image);
    add_string(b, "warning", m->warning);
    break;
  case BAGEL_MSG_ERROR:
    if (m->id >= 0) add_int(b, "id", m->id);
    add_string(b, "code", bagel_proto_error_code_name(m->code));
    add_string(b, "message", m->message ? m->message : "");
    break;
  case BAGEL_MSG_CANCEL:
    add_int(b, "id", m->id);
    break;
  case BAGEL_MSG_STATUS:
    if (!m->is_reply) break;
    add_int(b, "pid", m->pid);
    add_bool(b, "model_loaded", m->model_loaded);
    add_int(b, "model_loads", m->model_loads);
    add_int(b, "jobs_done", m->jobs_done);
    add_int(b, "jobs_cancelled", m->jobs_cancelled);
    add_int(b, "queued", m->queued);
    add_string(b, "backend", m->backend);
    break;
  case BAGEL_MSG_N_TYPES:
    break;
  }
  json_builder_end_object(b);
  JsonNode *root = json_builder_get_root(b);
  JsonGenerator *gen = json_generator_new();
  json_generator_set_root(gen, root);
  char *s = json_generator_to_data(gen, len);
  g_object_unref(gen);
  json_node_unref(root);
  g_object_unref(b);
  return s;
}

GBytes *bagel_proto_encode_head(const BagelMsg *msg) {
  gsize len = 0;
  char *json = header_json(msg, &len);
  guint8 *buf = g_malloc(BAGEL_PROTO_PREFIX_SIZE + len);
  memcpy(buf, BAGEL_PROTO_MAGIC, 4);
  buf[4] = len & 0xff;
  buf[5] = (len >> 8) & 0xff;
  buf[6] = (len >> 16) & 0xff;
  buf[7] = (len >> 24) & 0xff;
  memcpy(buf + BAGEL_PROTO_PREFIX_SIZE, json, len);
  g_free(json);
  return g_bytes_new_take(buf, BAGEL_PROTO_PREFIX_SIZE + len);
}

GBytes *bagel_proto_encode(const BagelMsg *msg) {
  GBytes *head = bagel_proto_encode_head(msg);
  gsize hn = 0, pn = msg->image.pixels ? image_bytes(&msg->image) : 0;
  const guint8 *h = g_bytes_get_data(head, &hn);
  guint8 *buf = g_malloc(hn + pn);
  memcpy(buf, h, hn);
  if (pn) memcpy(buf + hn, msg->image.pixels, pn);
  g_bytes_unref(head);
  return g_bytes_new_take(buf, hn + pn);
}

gboolean bagel_proto_write(GOutputStream *out, const BagelMsg *msg,
                           GCancellable *cancellable, GError **error) {
  if (msg->image.width > 0 && !msg->image.pixels) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
                "protocol: a %s message declares an image without pixels",
                bagel_msg_type_name(msg->type));
    return FALSE;
  }
  GBytes *head = bagel_proto_encode_head(msg);
  gsize hn = 0;
  const guint8 *h = g_bytes_get_data(head, &hn);
  if (hn - BAGEL_PROTO_PREFIX_SIZE > BAGEL_PROTO_MAX_HEADER) {
    g_bytes_unref(head);
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "protocol: a %s message header is larger than %u bytes (text too long)",
                bagel_msg_type_name(msg->type), BAGEL_PROTO_MAX_HEADER);
    return FALSE;
  }
  GOutputVector v[2] = {{h, hn}, {msg->image.pixels, image_bytes(&msg->image)}};
  GError *e = NULL;
  gboolean ok = g_output_stream_writev_all(out, v, msg->image.pixels ? 2 : 1, NULL,
                                           cancellable, &e);
  g_bytes_unref(head);
  if (!ok) {
    g_set_error(error, BAGEL_ERROR,
                g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED) ? BAGEL_ERROR_CANCELLED
                                                                     : BAGEL_ERROR_IO,
                "connection: %s", e->message);
    g_error_free(e);
  }
  return ok;
}

/* ---- job parameters ----------------------------------------------------------------- */

void bagel_job_params_apply_common(const BagelJobParams *p, BagelCommon *c) {
  if (p->set & BAGEL_P_THINK) c->think = p->think;
  if (p->set & BAGEL_P_SEED) c->seed = p->seed;
  if (p->set & BAGEL_P_THINK_MAX_TOKENS) c->think_decode.max_tokens = p->think_max_tokens;
}

void bagel_job_params_apply_sampler(const BagelJobParams *p, BagelSampler *s) {
  if (p->set & BAGEL_P_STEPS) s->steps = p->steps;
  if (p->set & BAGEL_P_CFG_TEXT) s->cfg_text = p->cfg_text;
  if (p->set & BAGEL_P_CFG_IMAGE) s->cfg_image = p->cfg_image;
  if (p->set & BAGEL_P_CFG_INTERVAL) {
    s->cfg_interval[0] = p->cfg_interval[0];
    s->cfg_interval[1] = p->cfg_interval[1];
  }
  if (p->set & BAGEL_P_TIMESTEP_SHIFT) s->timestep_shift = p->timestep_shift;
  if (p->set & BAGEL_P_RENORM) s->renorm = p->renorm;
  if (p->set & BAGEL_P_RENORM_MIN) s->renorm_min = p->renorm_min;
}

void bagel_job_params_apply_describe(const BagelJobParams *p, BagelDescribeParams *out) {
  bagel_job_params_apply_common(p, &out->common);
  if (p->set & BAGEL_P_MAX_TOKENS) out->answer.max_tokens = p->max_tokens;
}

void bagel_job_params_apply_generate(const BagelJobParams *p, BagelGenerateParams *out) {
  bagel_job_params_apply_common(p, &out->common);
  bagel_job_params_apply_sampler(p, &out->sampler);
  if (p->set & BAGEL_P_WIDTH) out->width = p->width;
  if (p->set & BAGEL_P_HEIGHT) out->height = p->height;
}

void bagel_job_params_apply_edit(const BagelJobParams *p, BagelEditParams *out) {
  bagel_job_params_apply_common(p, &out->common);
  bagel_job_params_apply_sampler(p, &out->sampler);
}
