/* engine/protocol.h — the wire protocol between the GIMP plug-in and bagel-engine.
 *
 * A connection is a stream of frames in both directions over a Unix-domain socket:
 *
 *   magic    4 bytes   'B' 'G' 'L' 0x01  (the last byte is the framing version)
 *   length   4 bytes   header length, unsigned little-endian, 2 .. 1 MiB
 *   header   length    one JSON object (UTF-8), described below
 *   payload            the pixels of "image" when the header has one:
 *                      width * height * channels bytes, rows packed, no padding
 *
 * The payload size is never sent: it follows from the declared image, whose sides are
 * 1 .. 16384 and channels 3 (RGB) or 4 (RGBA, straight alpha), so a frame is at most
 * 1 MiB + 1 GiB and a reader knows how much to expect before allocating.
 *
 * Header objects (every key is checked; unknown keys, wrong types and out-of-range
 * values are refused):
 *   {"type":"hello","version":1,"software":"gimp-bagel 0.1.0"[,"pid":N]}
 *        first message each way; the server answers with its own hello, or with an
 *        error when the versions differ, and closes.
 *   {"type":"job","id":N,"mode":"edit"|"generate"|"describe","prompt":"…",
 *    "params":{…}[,"image":{"width":W,"height":H,"channels":C}]}
 *        edit and describe carry an image, generate none.  params keys (all optional;
 *        what is absent keeps the engine's default): think, seed, think_max_tokens,
 *        max_tokens, steps, cfg_text, cfg_image, cfg_interval [a,b], timestep_shift,
 *        renorm "global"|"channel"|"text_channel", renorm_min, width, height.
 *   {"type":"accepted","id":N,"position":P}      P jobs are ahead of it (0: runs next)
 *   {"type":"progress","id":N,"stage":"denoise","step":S,"total":T,"elapsed":sec}
 *   {"type":"result","id":N,"seed":S[,"text":"…"][,"reasoning":"…"],
 *    "timings":{…}[,"image":{…}][,"warning":"…"]}
 *        warning: something the user should see once (the first result after the
 *        engine loaded the model: a GPU it found but could not use).
 *   {"type":"error"[,"id":N],"code":"failed"|"io"|"model"|"format"|"invalid-arg"|
 *    "backend"|"cancelled","message":"…"}       (codes mirror BagelErrorCode)
 *   {"type":"cancel","id":N}                      client → server
 *   {"type":"status"}                             client → server, answered by
 *   {"type":"status","pid":N,"model_loaded":b,"model_loads":n,"jobs_done":n,
 *    "jobs_cancelled":n,"queued":n[,"backend":"cpu"]}
 *
 * Ids are chosen by the client (0 .. 2^31−1) and echoed back.  Nothing here allocates
 * more than the frame declares, and nothing aborts on bad input: every function returns
 * a GError (domain BAGEL_ERROR, code BAGEL_ERROR_FORMAT for a malformed frame).
 */
#ifndef BAGEL_PROTOCOL_H
#define BAGEL_PROTOCOL_H

#include <gio/gio.h>
#include <stdint.h>

#include "bagel.h"

G_BEGIN_DECLS

#define BAGEL_PROTO_VERSION 1
#define BAGEL_PROTO_MAGIC "BGL\001"
#define BAGEL_PROTO_PREFIX_SIZE 8
#define BAGEL_PROTO_MAX_HEADER (1u << 20)
#define BAGEL_PROTO_MAX_DIM 16384
#define BAGEL_PROTO_MAX_DEPTH 8        /* JSON nesting; messages need 3 */
#define BAGEL_PROTO_MAX_ID G_MAXINT32

typedef enum {
  BAGEL_MSG_HELLO,
  BAGEL_MSG_JOB,
  BAGEL_MSG_ACCEPTED,
  BAGEL_MSG_PROGRESS,
  BAGEL_MSG_RESULT,
  BAGEL_MSG_ERROR,
  BAGEL_MSG_CANCEL,
  BAGEL_MSG_STATUS,
  BAGEL_MSG_N_TYPES
} BagelMsgType;

typedef enum {
  BAGEL_JOB_EDIT,
  BAGEL_JOB_GENERATE,
  BAGEL_JOB_DESCRIBE
} BagelJobMode;

/* Which optional job parameters were sent (BagelJobParams.set). */
typedef enum {
  BAGEL_P_THINK = 1 << 0,
  BAGEL_P_SEED = 1 << 1,
  BAGEL_P_THINK_MAX_TOKENS = 1 << 2,
  BAGEL_P_MAX_TOKENS = 1 << 3,
  BAGEL_P_STEPS = 1 << 4,
  BAGEL_P_CFG_TEXT = 1 << 5,
  BAGEL_P_CFG_IMAGE = 1 << 6,
  BAGEL_P_CFG_INTERVAL = 1 << 7,
  BAGEL_P_TIMESTEP_SHIFT = 1 << 8,
  BAGEL_P_RENORM = 1 << 9,
  BAGEL_P_RENORM_MIN = 1 << 10,
  BAGEL_P_WIDTH = 1 << 11,
  BAGEL_P_HEIGHT = 1 << 12,
} BagelJobParamBits;

/* The job parameters as sent: a field means something only when its bit is in `set`.
 * Ranges accepted on the wire (the engine may be stricter):
 * think_max_tokens, max_tokens 1..65536; steps 2..1000; cfg_text, cfg_image 0..100;
 * 0 ≤ cfg_interval[0] ≤ cfg_interval[1] ≤ 1; timestep_shift (0, 100]; renorm_min 0..100;
 * width, height 1..16384. */
typedef struct {
  guint32 set;
  gboolean think;
  gint64 seed;
  int think_max_tokens;
  int max_tokens;
  int steps;
  float cfg_text, cfg_image;
  float cfg_interval[2];
  float timestep_shift;
  BagelRenormType renorm;
  float renorm_min;
  int width, height;
} BagelJobParams;

/* An image carried as the frame's payload. */
typedef struct {
  int width, height, channels;   /* 0 when the message has none */
  guint8 *pixels;                /* width*height*channels bytes, g_free */
} BagelProtoImage;

/* One message; the fields that mean something depend on `type` (see the header
 * comment).  Strings are owned (g_free), NULL when absent. */
typedef struct {
  BagelMsgType type;
  gint32 id;                     /* job, accepted, progress, result, error (−1: none), cancel */
  /* hello */
  int version;
  char *software;
  gint64 pid;                    /* hello (server), status; 0 when absent */
  /* job */
  BagelJobMode mode;
  char *prompt;
  BagelJobParams params;
  /* accepted */
  int position;
  /* progress */
  char *stage;
  int step, total;
  double elapsed;
  /* result */
  char *text;
  char *reasoning;
  char *warning;
  gint64 seed;
  BagelTimings timings;
  /* error */
  BagelErrorCode code;
  char *message;
  /* status (reply) */
  gboolean is_reply;             /* status: TRUE for the answer (has the counters) */
  gboolean model_loaded;
  int model_loads, jobs_done, jobs_cancelled, queued;
  char *backend;
  /* job, result */
  BagelProtoImage image;
} BagelMsg;

BagelMsg *bagel_msg_new(BagelMsgType type);
void bagel_msg_free(BagelMsg *msg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BagelMsg, bagel_msg_free)

const char *bagel_msg_type_name(BagelMsgType type);
const char *bagel_job_mode_name(BagelJobMode mode);
gboolean bagel_job_mode_from_string(const char *s, BagelJobMode *out);
const char *bagel_proto_error_code_name(BagelErrorCode code);

/* Convenience constructors. */
BagelMsg *bagel_msg_new_error(gint32 id, BagelErrorCode code, const char *message);
BagelMsg *bagel_msg_new_error_from_gerror(gint32 id, const GError *error);
/* Turn an error message into a GError (domain BAGEL_ERROR, the message's code). */
void bagel_msg_propagate_error(const BagelMsg *msg, GError **error);

/* Set the message's image: copies `height` rows of `width*channels` bytes from rows
 * `stride` bytes apart.  FALSE (and nothing set) when the sizes are out of range or
 * memory runs out. */
gboolean bagel_msg_set_image(BagelMsg *msg, int width, int height, int channels,
                             const guint8 *pixels, int stride, GError **error);

/* --- decoding ------------------------------------------------------------------- */

/* The 8-byte prefix: checks the magic and returns the header length. */
gboolean bagel_proto_parse_prefix(const guint8 prefix[BAGEL_PROTO_PREFIX_SIZE],
                                  guint32 *header_len, GError **error);

/* Parse and validate a header; on success *payload_len is the number of payload bytes
 * that follow (0 without an image) and msg->image has its sizes but no pixels yet. */
BagelMsg *bagel_proto_parse_header(const char *json, gsize len, gsize *payload_len,
                                   GError **error);

typedef enum {
  BAGEL_PROTO_NEED_MORE,         /* the buffer holds a frame's beginning only */
  BAGEL_PROTO_MESSAGE,           /* *msg is a complete message of *consumed bytes */
  BAGEL_PROTO_INVALID            /* *error says why; the connection must be closed */
} BagelProtoStatus;

/* Decode one frame from the start of a buffer. */
BagelProtoStatus bagel_proto_decode(const guint8 *data, gsize len, gsize *consumed,
                                    BagelMsg **msg, GError **error);

/* Read one frame (blocking).  Returns NULL with *error unset at a clean end of stream
 * (the peer closed between frames); NULL with *error set otherwise. */
BagelMsg *bagel_proto_read(GInputStream *in, GCancellable *cancellable, GError **error);

/* --- encoding ------------------------------------------------------------------- */

/* The prefix and header of a frame (the payload is msg->image.pixels, sent after). */
GBytes *bagel_proto_encode_head(const BagelMsg *msg);
/* A whole frame in one buffer (tests, fuzzing; copies the payload). */
GBytes *bagel_proto_encode(const BagelMsg *msg);
/* Write one frame (blocking).  The caller serialises writers. */
gboolean bagel_proto_write(GOutputStream *out, const BagelMsg *msg,
                           GCancellable *cancellable, GError **error);

/* --- job parameters --------------------------------------------------------------- */

/* Copy the parameters that were sent over the engine's defaults (which the caller set
 * with bagel_*_params_init). */
void bagel_job_params_apply_common(const BagelJobParams *p, BagelCommon *common);
void bagel_job_params_apply_sampler(const BagelJobParams *p, BagelSampler *sampler);
void bagel_job_params_apply_describe(const BagelJobParams *p, BagelDescribeParams *out);
void bagel_job_params_apply_generate(const BagelJobParams *p, BagelGenerateParams *out);
void bagel_job_params_apply_edit(const BagelJobParams *p, BagelEditParams *out);

G_END_DECLS
#endif
