/* libFuzzer target for the ClientHello parser and JA4, and for the reader
 * of a server's first flight. The first input byte picks the bound and the
 * chunking, the rest is fed as client bytes (and, to the second, as server
 * bytes); the target traps when a contract of tls_hello.h, ja4.h or
 * tls_server.h is broken. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "filters/ja4.h"
#include "filters/tls_hello.h"
#include "filters/tls_server.h"

#define CHECK(cond)          \
  do {                       \
    if (!(cond))             \
      __builtin_trap();      \
  } while (0)

static uint8_t buf[TLS_HELLO_BUF_SIZE(TLS_HELLO_LIMIT_MAX)];
static char text[6 * TLS_HELLO_LIMIT_MAX];

/* Chunk I of the schedule MODE: fixed sizes 1..64, or sizes that vary. */
static size_t chunk_size(unsigned mode, size_t i) {
  size_t base = (mode & 0x3f) + 1;
  if (!(mode & 0x40))
    return base;
  return 1 + (base * (i + 1) * 7) % 97;
}

static void check_facts(const struct tls_hello *h) {
  struct tls_hello_ext ext;
  struct tls_hello_bytes proto;
  size_t pos = 0, n = 0, len;
  while (tls_hello_ext_next(h, &pos, &ext))
    n++;
  CHECK(n == tls_hello_ext_count(h));
  for (pos = 0, n = 0; tls_hello_alpn_next(h, &pos, &proto); n++)
    CHECK(proto.len > 0);
  CHECK(n == tls_hello_alpn_count(h));
  for (size_t i = 0; i < tls_hello_sni_count(h); i++) {
    CHECK(strlen(tls_hello_sni(h, i)) <= TLS_HELLO_NAME_MAX);
    CHECK(tls_hello_sni_raw(h, i, &len) != NULL && len > 0);
  }
  for (int v = JA4_HASHED; v <= JA4_ORIGINAL_RAW; v++) {
    CHECK(ja4_format(h, (enum ja4_variant)v, text, sizeof text) == 0);
    CHECK(strlen(text) + 1 == ja4_size(h, (enum ja4_variant)v));
  }
}

/* The same bytes as a server's first flight, in the same chunking. */
static void check_server(const uint8_t *data, size_t size, unsigned mode) {
  struct tls_server s;
  enum tls_server_status st = TLS_SERVER_ST_NEED_MORE, prev;
  size_t off = 0;
  tls_server_init(&s);
  for (size_t i = 0; off < size; i++) {
    size_t n = chunk_size(mode, i);
    n = n < size - off ? n : size - off;
    prev = st;
    st = tls_server_feed(&s, data + off, n);
    CHECK(prev == TLS_SERVER_ST_NEED_MORE || st == prev); /* final statuses are sticky */
    off += n;
  }
  /* A decision needs a record header and 38 handshake bytes, or a header. */
  CHECK(st == TLS_SERVER_ST_NEED_MORE || size >= 5);
  CHECK(st != TLS_SERVER_ST_HRR || size >= 43);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct tls_hello h;
  enum tls_hello_status st = TLS_HELLO_ST_NEED_MORE;
  size_t off = 0, used, rawlen;
  unsigned mode;
  if (size < 1)
    return 0;
  mode = data[0];
  data++;
  size--;
  CHECK(tls_hello_init(&h, buf, sizeof buf, (mode & 0x80) ? 512 : 0) == 0);
  for (size_t i = 0; off < size && st == TLS_HELLO_ST_NEED_MORE; i++) {
    size_t n = chunk_size(mode, i);
    n = n < size - off ? n : size - off;
    st = tls_hello_feed(&h, data + off, n, &used);
    CHECK(used <= n && (st != TLS_HELLO_ST_NEED_MORE || used == n));
    off += used;
  }
  const uint8_t *raw = tls_hello_raw(&h, &rawlen);
  CHECK(rawlen == off && memcmp(raw, data, off) == 0);
  CHECK((st == TLS_HELLO_ST_MALFORMED) == (tls_hello_reason(&h) != TLS_HELLO_R_NONE));
  if (st == TLS_HELLO_ST_HELLO)
    check_facts(&h);
  if (st != TLS_HELLO_ST_NEED_MORE) /* final statuses are sticky */
    CHECK(tls_hello_feed(&h, data, size, &used) == st && used == 0);
  check_server(data, size, mode);
  return 0;
}
