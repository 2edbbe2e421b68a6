/* tests/fuzz/fuzz_protocol.c — libFuzzer target for the plug-in ↔ bagel-engine frame
 * parser (engine/protocol.c).
 *
 * The input is a byte stream as a peer could send it.  Checked: decoding frames one
 * after the other never crashes or over-reads (ASan), a frame that decodes re-encodes to
 * bytes that decode to a message encoding to the same bytes (decode ∘ encode is the
 * identity on what the parser accepts), the stream reader agrees with the buffer decoder
 * on where frames end, and the header parser alone survives the raw bytes.
 */
#include <gio/gio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static void check_round_trip(const BagelMsg *m) {
  GBytes *enc = bagel_proto_encode(m);
  gsize n = 0;
  const guint8 *p = g_bytes_get_data(enc, &n);
  guint32 hlen = (guint32)p[4] | (guint32)p[5] << 8 | (guint32)p[6] << 16 | (guint32)p[7] << 24;
  if (hlen > BAGEL_PROTO_MAX_HEADER) {  /* escapes can grow a header: the writer refuses it */
    g_bytes_unref(enc);
    return;
  }
  BagelMsg *m2 = NULL;
  gsize used = 0;
  GError *e = NULL;
  if (bagel_proto_decode(p, n, &used, &m2, &e) != BAGEL_PROTO_MESSAGE || used != n) {
    fprintf(stderr, "fuzz_protocol: re-encoded %s frame does not decode: %s\n%.*s\n",
            bagel_msg_type_name(m->type), e ? e->message : "incomplete", (int)MIN(n, 2000), p);
    abort();
  }
  GBytes *enc2 = bagel_proto_encode(m2);
  if (!g_bytes_equal(enc, enc2)) {
    fprintf(stderr, "fuzz_protocol: %s frame changes on a second round trip\n",
            bagel_msg_type_name(m->type));
    abort();
  }
  g_bytes_unref(enc2);
  bagel_msg_free(m2);
  g_bytes_unref(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* 1. the buffer decoder, frame after frame */
  gsize off = 0;
  int frames = 0;
  while (off < size) {
    BagelMsg *m = NULL;
    gsize used = 0;
    GError *e = NULL;
    BagelProtoStatus st = bagel_proto_decode(data + off, size - off, &used, &m, &e);
    if (st != BAGEL_PROTO_MESSAGE) {
      g_clear_error(&e);
      break;
    }
    check_round_trip(m);
    bagel_msg_free(m);
    off += used;
    frames++;
  }

  /* 2. the stream reader must find the same frames */
  GInputStream *in = g_memory_input_stream_new_from_data(data, (gssize)size, NULL);
  for (int i = 0;; i++) {
    GError *e = NULL;
    BagelMsg *m = bagel_proto_read(in, NULL, &e);
    if (!m) {
      if (i < frames) {
        fprintf(stderr, "fuzz_protocol: the stream reader stopped at frame %d of %d: %s\n",
                i, frames, e ? e->message : "end of stream");
        abort();
      }
      g_clear_error(&e);
      break;
    }
    bagel_msg_free(m);
    if (i >= frames) {
      fprintf(stderr, "fuzz_protocol: the stream reader accepts frame %d, the decoder "
              "stopped before it\n", i);
      abort();
    }
  }
  g_object_unref(in);

  /* 3. the header parser on the raw bytes */
  GError *e = NULL;
  gsize payload = 0;
  BagelMsg *m = bagel_proto_parse_header((const char *)data, size, &payload, &e);
  if (m) {
    if (payload != (gsize)m->image.width * m->image.height * m->image.channels) abort();
    bagel_msg_free(m);
  }
  g_clear_error(&e);
  return 0;
}
