/* tests/server/test_protocol.c — the plug-in ↔ bagel-engine wire format
 * (engine/protocol.c): every message type survives encode → decode with every field;
 * malformed frames are refused with a message naming the fault; the incremental decoder
 * and the stream reader find frame boundaries; job parameters apply over defaults. */
#include <gio/gio.h>
#include <math.h>
#include <string.h>

#include "protocol.h"

static BagelMsg *round_trip(const BagelMsg *m) {
  GBytes *b = bagel_proto_encode(m);
  gsize n = 0, used = 0;
  const guint8 *p = g_bytes_get_data(b, &n);
  BagelMsg *out = NULL;
  GError *e = NULL;
  g_assert_cmpint(bagel_proto_decode(p, n, &used, &out, &e), ==, BAGEL_PROTO_MESSAGE);
  g_assert_no_error(e);
  g_assert_cmpuint(used, ==, n);
  g_bytes_unref(b);
  return out;
}

static void test_round_trip_job(void) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_JOB);
  m->id = 7;
  m->mode = BAGEL_JOB_EDIT;
  m->prompt = g_strdup("Make the sky \"purple\"\n— and äöü 中文");
  BagelJobParams *p = &m->params;
  p->set = BAGEL_P_THINK | BAGEL_P_SEED | BAGEL_P_STEPS | BAGEL_P_CFG_TEXT | BAGEL_P_CFG_IMAGE |
           BAGEL_P_CFG_INTERVAL | BAGEL_P_TIMESTEP_SHIFT | BAGEL_P_RENORM | BAGEL_P_RENORM_MIN |
           BAGEL_P_THINK_MAX_TOKENS;
  p->think = TRUE;
  p->seed = G_MININT64 + 1;
  p->steps = 37;
  p->cfg_text = 4.1f;
  p->cfg_image = 1.7f;
  p->cfg_interval[0] = 0.1f;
  p->cfg_interval[1] = 0.9f;
  p->timestep_shift = 3.3f;
  p->renorm = BAGEL_RENORM_CHANNEL;
  p->renorm_min = 0.25f;
  p->think_max_tokens = 333;
  guint8 px[5 * 3 * 4];
  for (unsigned i = 0; i < sizeof px; i++) px[i] = (guint8)(i * 11);
  g_assert_true(bagel_msg_set_image(m, 5, 3, 4, px, 5 * 4, NULL));

  BagelMsg *r = round_trip(m);
  g_assert_cmpint(r->type, ==, BAGEL_MSG_JOB);
  g_assert_cmpint(r->id, ==, 7);
  g_assert_cmpint(r->mode, ==, BAGEL_JOB_EDIT);
  g_assert_cmpstr(r->prompt, ==, m->prompt);
  g_assert_cmphex(r->params.set, ==, p->set);
  g_assert_true(r->params.think);
  g_assert_cmpint(r->params.seed, ==, p->seed);
  g_assert_cmpint(r->params.steps, ==, 37);
  /* floats cross as doubles: exact */
  g_assert_true(r->params.cfg_text == 4.1f && r->params.cfg_image == 1.7f);
  g_assert_true(r->params.cfg_interval[0] == 0.1f && r->params.cfg_interval[1] == 0.9f);
  g_assert_true(r->params.timestep_shift == 3.3f && r->params.renorm_min == 0.25f);
  g_assert_cmpint(r->params.renorm, ==, BAGEL_RENORM_CHANNEL);
  g_assert_cmpint(r->params.think_max_tokens, ==, 333);
  g_assert_cmpint(r->image.width, ==, 5);
  g_assert_cmpint(r->image.height, ==, 3);
  g_assert_cmpint(r->image.channels, ==, 4);
  g_assert_cmpmem(r->image.pixels, sizeof px, px, sizeof px);
  bagel_msg_free(r);
  bagel_msg_free(m);
}

static void test_round_trip_others(void) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_HELLO);
  m->version = BAGEL_PROTO_VERSION;
  m->software = g_strdup("gimp-bagel test");
  m->pid = 1234;
  BagelMsg *r = round_trip(m);
  g_assert_cmpint(r->version, ==, BAGEL_PROTO_VERSION);
  g_assert_cmpstr(r->software, ==, "gimp-bagel test");
  g_assert_cmpint(r->pid, ==, 1234);
  bagel_msg_free(r);
  bagel_msg_free(m);

  m = bagel_msg_new(BAGEL_MSG_PROGRESS);
  m->id = 3;
  m->stage = g_strdup("denoise");
  m->step = 4;
  m->total = 49;
  m->elapsed = 1.0 / 3.0;
  r = round_trip(m);
  g_assert_cmpstr(r->stage, ==, "denoise");
  g_assert_cmpint(r->step, ==, 4);
  g_assert_cmpint(r->total, ==, 49);
  g_assert_true(r->elapsed == 1.0 / 3.0);
  bagel_msg_free(r);
  bagel_msg_free(m);

  m = bagel_msg_new(BAGEL_MSG_RESULT);
  m->id = 3;
  m->seed = 987654321987LL;
  m->text = g_strdup("a cat");
  m->reasoning = g_strdup("I think");
  m->warning = g_strdup("no usable GPU; using the CPU backend");
  m->timings.total = 12.5;
  m->timings.denoise_steps = 49;
  guint8 rgb[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  g_assert_true(bagel_msg_set_image(m, 2, 2, 3, rgb, 6, NULL));
  r = round_trip(m);
  g_assert_cmpint(r->seed, ==, 987654321987LL);
  g_assert_cmpstr(r->text, ==, "a cat");
  g_assert_cmpstr(r->reasoning, ==, "I think");
  g_assert_cmpstr(r->warning, ==, "no usable GPU; using the CPU backend");
  g_assert_true(r->timings.total == 12.5);
  g_assert_cmpint(r->timings.denoise_steps, ==, 49);
  g_assert_cmpmem(r->image.pixels, 12, rgb, 12);
  bagel_msg_free(r);
  bagel_msg_free(m);

  m = bagel_msg_new_error(-1, BAGEL_ERROR_MODEL, "no model");
  r = round_trip(m);
  g_assert_cmpint(r->id, ==, -1);
  g_assert_cmpint(r->code, ==, BAGEL_ERROR_MODEL);
  GError *e = NULL;
  bagel_msg_propagate_error(r, &e);
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_MODEL);
  g_assert_cmpstr(e->message, ==, "no model");
  g_error_free(e);
  bagel_msg_free(r);
  bagel_msg_free(m);

  m = bagel_msg_new(BAGEL_MSG_STATUS);
  r = round_trip(m);
  g_assert_false(r->is_reply);
  bagel_msg_free(r);
  m->is_reply = TRUE;
  m->pid = 5;
  m->model_loaded = TRUE;
  m->model_loads = 1;
  m->jobs_done = 2;
  m->jobs_cancelled = 3;
  m->queued = 4;
  m->backend = g_strdup("cpu");
  r = round_trip(m);
  g_assert_true(r->is_reply && r->model_loaded);
  g_assert_cmpint(r->pid + r->model_loads + r->jobs_done + r->jobs_cancelled + r->queued, ==, 15);
  g_assert_cmpstr(r->backend, ==, "cpu");
  bagel_msg_free(r);
  bagel_msg_free(m);
}

/* A frame around a literal header; payload bytes appended. */
static GBytes *frame(const char *header, gsize payload) {
  gsize n = strlen(header);
  guint8 *b = g_malloc0(8 + n + payload);
  memcpy(b, BAGEL_PROTO_MAGIC, 4);
  b[4] = n & 0xff;
  b[5] = (n >> 8) & 0xff;
  b[6] = (n >> 16) & 0xff;
  b[7] = (n >> 24) & 0xff;
  memcpy(b + 8, header, n);
  return g_bytes_new_take(b, 8 + n + payload);
}

/* The header must be refused with a message containing `needle`. */
static void refused(const char *header, gsize payload, const char *needle) {
  GBytes *b = frame(header, payload);
  gsize n = 0, used = 0;
  const guint8 *p = g_bytes_get_data(b, &n);
  BagelMsg *m = NULL;
  GError *e = NULL;
  BagelProtoStatus st = bagel_proto_decode(p, n, &used, &m, &e);
  if (st != BAGEL_PROTO_INVALID) g_error("accepted: %s", header);
  g_assert_null(m);
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_FORMAT);
  if (!strstr(e->message, needle))
    g_error("refusing %s: message \"%s\" lacks \"%s\"", header, e->message, needle);
  g_error_free(e);
  g_bytes_unref(b);
}

static void test_refused(void) {
  refused("[1]", 0, "not a JSON object");
  refused("{\"type\":\"hello\"", 0, "not JSON");
  refused("{\"type\":\"nope\"}", 0, "unknown message type");
  refused("{\"type\":\"cancel\",\"id\":1,\"x\":2}", 0, "unknown key \"x\"");
  refused("{\"type\":\"cancel\",\"id\":-1}", 0, "\"id\"");
  refused("{\"type\":\"cancel\",\"id\":2147483648}", 0, "\"id\"");
  refused("{\"type\":\"cancel\",\"id\":1.5}", 0, "must be an integer");
  refused("{\"type\":\"cancel\"}", 0, "missing \"id\"");
  refused("{\"type\":\"hello\",\"version\":0,\"software\":\"x\"}", 0, "\"version\"");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"paint\",\"prompt\":\"x\"}", 0, "unknown job mode");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"edit\",\"prompt\":\"x\"}", 0, "needs an image");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"image\":{\"width\":1,\"height\":1,\"channels\":3}}", 3, "takes no image");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"edit\",\"prompt\":\"x\","
          "\"image\":{\"width\":16385,\"height\":1,\"channels\":3}}", 0, "\"width\"");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"edit\",\"prompt\":\"x\","
          "\"image\":{\"width\":1,\"height\":1,\"channels\":2}}", 0, "\"channels\"");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"edit\",\"prompt\":\"x\","
          "\"image\":{\"width\":1,\"height\":1}}", 0, "missing \"channels\"");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"edit\",\"prompt\":\"x\","
          "\"params\":{\"width\":64},\"image\":{\"width\":1,\"height\":1,\"channels\":3}}", 3,
          "does not apply to edit jobs");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"describe\",\"prompt\":\"x\","
          "\"params\":{\"steps\":10},\"image\":{\"width\":1,\"height\":1,\"channels\":3}}", 3,
          "does not apply");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"params\":{\"steps\":1}}", 0, "\"steps\"");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"params\":{\"cfg_interval\":[0.8,0.2]}}", 0, "cfg_interval");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"params\":{\"cfg_interval\":[0.2]}}", 0, "two numbers");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"params\":{\"renorm\":\"weird\"}}", 0, "unknown renorm type");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"params\":{\"cfg_text\":1e999}}", 0, "cfg_text");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"params\":{\"timestep_shift\":0}}", 0, "timestep_shift");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":\"x\","
          "\"params\":{\"think\":1}}", 0, "true or false");
  refused("{\"type\":\"job\",\"id\":1,\"mode\":\"generate\",\"prompt\":7}", 0, "must be a string");
  refused("{\"type\":\"error\",\"code\":\"oops\",\"message\":\"x\"}", 0, "unknown error code");
  refused("{\"type\":\"error\",\"code\":\"io\",\"message\":\"\\ud800\"}", 0, "protocol:");
  refused("{\"type\":\"status\",\"pid\":3}", 0, "missing \"model_loaded\"");
  refused("{\"type\":\"status\",\"a\":[[[[[[[[[[]]]]]]]]]]}", 0, "nests deeper");
  refused("{\"type\":\"status\"\xff}", 0, "UTF-8");
}

static void test_prefix(void) {
  guint8 p[8] = {'B', 'G', 'L', 1, 2, 0, 0, 0};
  guint32 n = 0;
  GError *e = NULL;
  g_assert_true(bagel_proto_parse_prefix(p, &n, &e));
  g_assert_cmpuint(n, ==, 2);
  p[3] = 2;
  g_assert_false(bagel_proto_parse_prefix(p, &n, &e));
  g_assert_nonnull(strstr(e->message, "framing version 2"));
  g_clear_error(&e);
  p[3] = 1;
  p[0] = 'G';
  g_assert_false(bagel_proto_parse_prefix(p, &n, &e));
  g_assert_nonnull(strstr(e->message, "bad magic"));
  g_clear_error(&e);
  p[0] = 'B';
  p[4] = 1;  /* below the smallest header "{}" */
  g_assert_false(bagel_proto_parse_prefix(p, &n, &e));
  g_clear_error(&e);
  guint32 big = BAGEL_PROTO_MAX_HEADER + 1;
  p[4] = big & 0xff, p[5] = (big >> 8) & 0xff, p[6] = (big >> 16) & 0xff, p[7] = big >> 24;
  g_assert_false(bagel_proto_parse_prefix(p, &n, &e));
  g_assert_nonnull(strstr(e->message, "header length"));
  g_clear_error(&e);
  /* a wrong magic is refused before 8 bytes arrived */
  gsize used;
  BagelMsg *m;
  g_assert_cmpint(bagel_proto_decode((const guint8 *)"GET", 3, &used, &m, &e), ==,
                  BAGEL_PROTO_INVALID);
  g_clear_error(&e);
}

/* Every strict prefix of a frame is NEED_MORE; the whole frame decodes; a 1 GiB
 * declared payload is waited for, not allocated. */
static void test_incremental(void) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_JOB);
  m->id = 1;
  m->mode = BAGEL_JOB_DESCRIBE;
  m->prompt = g_strdup("what?");
  guint8 px[4 * 4 * 3] = {0};
  bagel_msg_set_image(m, 4, 4, 3, px, 12, NULL);
  GBytes *b = bagel_proto_encode(m);
  gsize n = 0;
  const guint8 *p = g_bytes_get_data(b, &n);
  for (gsize k = 0; k < n; k++) {
    gsize used = 99;
    BagelMsg *out = NULL;
    GError *e = NULL;
    g_assert_cmpint(bagel_proto_decode(p, k, &used, &out, &e), ==, BAGEL_PROTO_NEED_MORE);
    g_assert_no_error(e);
    g_assert_null(out);
    g_assert_cmpuint(used, ==, 0);
  }
  g_bytes_unref(b);
  bagel_msg_free(m);

  GBytes *huge = frame("{\"type\":\"job\",\"id\":1,\"mode\":\"edit\",\"prompt\":\"x\","
                       "\"image\":{\"width\":16384,\"height\":16384,\"channels\":4}}", 100);
  const guint8 *hp = g_bytes_get_data(huge, &n);
  gsize used;
  BagelMsg *out = NULL;
  g_assert_cmpint(bagel_proto_decode(hp, n, &used, &out, NULL), ==, BAGEL_PROTO_NEED_MORE);
  gsize payload = 0;
  out = bagel_proto_parse_header((const char *)hp + 8, n - 8 - 100, &payload, NULL);
  g_assert_nonnull(out);
  g_assert_cmpuint(payload, ==, (gsize)16384 * 16384 * 4);
  bagel_msg_free(out);
  g_bytes_unref(huge);
}

/* Frames written to a stream read back in order; a clean end is NULL without error; a
 * frame cut short is an error. */
static void test_stream(void) {
  GOutputStream *os = g_memory_output_stream_new_resizable();
  BagelMsg *a = bagel_msg_new(BAGEL_MSG_CANCEL);
  a->id = 4;
  BagelMsg *b = bagel_msg_new(BAGEL_MSG_RESULT);
  b->id = 4;
  b->seed = 1;
  guint8 rgb[3] = {9, 8, 7};
  bagel_msg_set_image(b, 1, 1, 3, rgb, 3, NULL);
  GError *e = NULL;
  g_assert_true(bagel_proto_write(os, a, NULL, &e));
  g_assert_true(bagel_proto_write(os, b, NULL, &e));
  g_output_stream_close(os, NULL, NULL);
  GBytes *all = g_memory_output_stream_steal_as_bytes(G_MEMORY_OUTPUT_STREAM(os));
  GInputStream *in = g_memory_input_stream_new_from_bytes(all);
  BagelMsg *r1 = bagel_proto_read(in, NULL, &e);
  BagelMsg *r2 = bagel_proto_read(in, NULL, &e);
  BagelMsg *r3 = bagel_proto_read(in, NULL, &e);
  g_assert_no_error(e);
  g_assert_nonnull(r1);
  g_assert_nonnull(r2);
  g_assert_null(r3);
  g_assert_cmpint(r1->type, ==, BAGEL_MSG_CANCEL);
  g_assert_cmpint(r2->type, ==, BAGEL_MSG_RESULT);
  g_assert_cmpmem(r2->image.pixels, 3, rgb, 3);
  bagel_msg_free(r1);
  bagel_msg_free(r2);
  g_object_unref(in);

  GBytes *cut = g_bytes_new_from_bytes(all, 0, g_bytes_get_size(all) - 1);
  in = g_memory_input_stream_new_from_bytes(cut);
  r1 = bagel_proto_read(in, NULL, &e);
  g_assert_nonnull(r1);
  g_assert_null(bagel_proto_read(in, NULL, &e));
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_IO);
  g_assert_nonnull(strstr(e->message, "inside a frame"));
  g_clear_error(&e);
  bagel_msg_free(r1);
  g_object_unref(in);
  g_bytes_unref(cut);
  g_bytes_unref(all);
  g_object_unref(os);
  bagel_msg_free(a);

  /* an image without pixels is not written */
  b->image.pixels = (g_free(b->image.pixels), NULL);
  os = g_memory_output_stream_new_resizable();
  g_assert_false(bagel_proto_write(os, b, NULL, &e));
  g_clear_error(&e);
  g_object_unref(os);
  bagel_msg_free(b);
}

static void test_params_apply(void) {
  BagelEditParams ep = {0};
  ep.sampler.steps = 50;
  ep.sampler.cfg_text = 4;
  ep.sampler.cfg_image = 2;
  ep.sampler.renorm = BAGEL_RENORM_TEXT_CHANNEL;
  ep.common.seed = 0;
  BagelJobParams p = {0};
  p.set = BAGEL_P_CFG_IMAGE | BAGEL_P_SEED;
  p.cfg_image = 1.5f;
  p.seed = 42;
  p.steps = 3;  /* not in `set`: ignored */
  bagel_job_params_apply_edit(&p, &ep);
  g_assert_cmpint(ep.sampler.steps, ==, 50);
  g_assert_true(ep.sampler.cfg_text == 4 && ep.sampler.cfg_image == 1.5f);
  g_assert_cmpint(ep.sampler.renorm, ==, BAGEL_RENORM_TEXT_CHANNEL);
  g_assert_cmpint(ep.common.seed, ==, 42);

  BagelGenerateParams gp = {0};
  gp.width = gp.height = 1024;
  p = (BagelJobParams){.set = BAGEL_P_WIDTH, .width = 512, .height = 7};
  bagel_job_params_apply_generate(&p, &gp);
  g_assert_cmpint(gp.width, ==, 512);
  g_assert_cmpint(gp.height, ==, 1024);

  BagelDescribeParams dp = {0};
  dp.answer.max_tokens = 100;
  p = (BagelJobParams){.set = BAGEL_P_MAX_TOKENS | BAGEL_P_THINK | BAGEL_P_THINK_MAX_TOKENS,
                       .max_tokens = 9, .think = TRUE, .think_max_tokens = 77};
  bagel_job_params_apply_describe(&p, &dp);
  g_assert_cmpint(dp.answer.max_tokens, ==, 9);
  g_assert_true(dp.common.think);
  g_assert_cmpint(dp.common.think_decode.max_tokens, ==, 77);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/protocol/round-trip/job", test_round_trip_job);
  g_test_add_func("/protocol/round-trip/others", test_round_trip_others);
  g_test_add_func("/protocol/refused", test_refused);
  g_test_add_func("/protocol/prefix", test_prefix);
  g_test_add_func("/protocol/incremental", test_incremental);
  g_test_add_func("/protocol/stream", test_stream);
  g_test_add_func("/protocol/params-apply", test_params_apply);
  return g_test_run();
}
