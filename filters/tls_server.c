/* Incremental reader of a TLS server's first flight: ServerHello or
 * HelloRetryRequest. See tls_server.h for the contract. */
#include "filters/tls_server.h"

#include <string.h>

#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define HT_SERVER_HELLO 2
#define REC_MAX (16384 + 2048) /* RFC 8446 5.2: the largest record a peer may send */

/* RFC 8446 4.1.3: SHA-256("HelloRetryRequest"). */
static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

void tls_server_init(struct tls_server *s) {
  memset(s, 0, sizeof(*s));
  s->status = TLS_SERVER_ST_NEED_MORE;
}

/* A complete record header: a handshake record of a sane size, or an alert. */
static enum tls_server_status check_header(struct tls_server *s) {
  const uint8_t *h = s->rec_hdr;
  size_t len = (size_t)h[3] << 8 | h[4];
  if (h[1] != 3 || len == 0 || len > REC_MAX)
    return TLS_SERVER_ST_NOT_HELLO;
  if (h[0] == CT_ALERT && s->hs_len == 0)
    return TLS_SERVER_ST_ALERT;
  if (h[0] != CT_HANDSHAKE)
    return TLS_SERVER_ST_NOT_HELLO; /* nothing may interleave with the first message */
  s->rec_left = len;
  return TLS_SERVER_ST_NEED_MORE;
}

/* The first TLS_SERVER_PEEK handshake bytes are in: what are they? */
static enum tls_server_status judge(const struct tls_server *s) {
  const uint8_t *m = s->hs;
  size_t body = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
  if (m[0] != HT_SERVER_HELLO || body < TLS_SERVER_PEEK - 4 || m[4] != 3)
    return TLS_SERVER_ST_NOT_HELLO;
  return memcmp(m + 6, hrr_random, sizeof(hrr_random)) == 0 ? TLS_SERVER_ST_HRR
                                                             : TLS_SERVER_ST_SERVER_HELLO;
}

enum tls_server_status tls_server_feed(struct tls_server *s, const uint8_t *data, size_t len) {
  size_t pos = 0;
  while (s->status == TLS_SERVER_ST_NEED_MORE && pos < len) {
    if (s->rec_left == 0) {
      s->rec_hdr[s->rec_hdr_len++] = data[pos++];
      if (s->rec_hdr_len == sizeof(s->rec_hdr)) {
        s->rec_hdr_len = 0;
        s->status = check_header(s);
      }
      continue;
    }
    size_t n = len - pos < s->rec_left ? len - pos : s->rec_left;
    size_t want = TLS_SERVER_PEEK - s->hs_len;
    size_t take = n < want ? n : want;
    memcpy(s->hs + s->hs_len, data + pos, take);
    s->hs_len += take;
    s->rec_left -= take;
    pos += take;
    if (s->hs_len == TLS_SERVER_PEEK)
      s->status = judge(s);
  }
  return s->status;
}

const char *tls_server_status_str(enum tls_server_status status) {
  static const char *const names[] = {"NEED_MORE", "SERVER_HELLO", "HRR", "ALERT", "NOT_HELLO"};
  return (unsigned)status < sizeof(names) / sizeof(names[0]) ? names[status] : "unknown";
}
