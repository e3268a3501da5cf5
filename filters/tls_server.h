/* Incremental reader of a TLS server's first flight: it says whether the
 * first handshake message is a ServerHello or a HelloRetryRequest (RFC 8446
 * 4.1.3: a ServerHello whose random is SHA-256("HelloRetryRequest")), so
 * that a proxy relaying a tunnel knows a second ClientHello is coming and
 * can inspect it too. It looks at the first 38 handshake bytes only
 * (message header, legacy_version, random), across any number of records
 * and any chunking; it copies nothing else and never allocates, so its
 * memory is bounded whatever the server sends. Pure: no I/O, no clock. */
#ifndef EMBARGO_FILTERS_TLS_SERVER_H
#define EMBARGO_FILTERS_TLS_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* What tls_server_feed() knows so far. Every status but NEED_MORE is final.
 *
 *   NEED_MORE ──feed──▶ NEED_MORE
 *       │
 *       └──▶ SERVER_HELLO | HRR | ALERT | NOT_HELLO   (sticky)
 */
enum tls_server_status {
  TLS_SERVER_ST_NEED_MORE,    /* fewer than 38 handshake bytes seen */
  TLS_SERVER_ST_SERVER_HELLO, /* a ServerHello that is not a HelloRetryRequest */
  TLS_SERVER_ST_HRR,          /* a HelloRetryRequest: a second ClientHello follows */
  TLS_SERVER_ST_ALERT,        /* the server's first record is an alert */
  TLS_SERVER_ST_NOT_HELLO     /* not TLS, a bad record, or another handshake message */
};

#define TLS_SERVER_PEEK 38 /* handshake bytes looked at: header 4, version 2, random 32 */

/* Parser state; read it through the functions below. */
struct tls_server {
  enum tls_server_status status;
  uint8_t rec_hdr[5];      /* the current record's header, as far as read */
  size_t rec_hdr_len;
  size_t rec_left;         /* payload bytes of the current record not yet read */
  uint8_t hs[TLS_SERVER_PEEK];
  size_t hs_len;
};

/* Prepares S for a new flight. */
void tls_server_init(struct tls_server *s);

/* Feeds LEN more bytes the server sent (any chunking, LEN may be 0); the
 * bytes are looked at, not kept, and the caller relays them unchanged.
 * Returns the status, which stays final once reached. */
enum tls_server_status tls_server_feed(struct tls_server *s, const uint8_t *data, size_t len);

/* Static name of STATUS ("HRR", ...); never NULL. */
const char *tls_server_status_str(enum tls_server_status status);

#endif
