/* Unit tests for proxy/conn/hello.c, the ClientHello as the exchange keeps
 * it: its buffer starts small and grows with the hello, and a hello read
 * through the growth is the same hello, byte for byte and fact for fact,
 * with the configured bound still the one that refuses. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/config.h"
#include "proxy/base/log.h"
#include "proxy/base/slab.h"
#include "proxy/conn/hello.h"
#include "tests/unit/filters/hello_builder.h"

static struct slab_pool cells; /* the readers read_hello makes */

static void release(void) {
  slab_pool_free(&cells);
}

TestSuite(hello, .fini = release);

/* A padding extension of LEN bytes (RFC 7685): the hello grows by it. */
static size_t padded(size_t len, const size_t *records, size_t nrecords) {
  static uint8_t zeros[BIG];
  struct parts p;
  base_parts(&p);
  parts_set(&p, 21, zeros, len);
  return wrap(build_msg(&p), records, nrecords);
}

/* Reads WIRE[0, N) into a hello bounded to MAX, CHUNK bytes per feed;
 * returns its final status and the hello in *OUT. */
static enum tls_hello_status read_hello(size_t max, size_t n, size_t chunk, struct hello **out) {
  enum tls_hello_status st = TLS_HELLO_ST_NEED_MORE;
  struct hello *h = hello_new(&cells, max);
  size_t off = 0, used;
  cr_assert_not_null(h);
  while (off < n && st == TLS_HELLO_ST_NEED_MORE) {
    size_t len = n - off < chunk ? n - off : chunk;
    st = hello_feed(h, (const char *)wire + off, len, &used);
    if (st == TLS_HELLO_ST_NEED_MORE)
      cr_assert_eq(used, len, "a hello still incomplete takes everything");
    off += used;
  }
  *out = h;
  return st;
}

/* H read WIRE[0, N) whole: the same bytes, and the same JA4 as the
 * parser finds with a buffer for the largest bound at once. */
static void expect_whole(struct hello *h, size_t n, const char *what) {
  struct config_tls tls = {0};
  const struct tls_evidence *ev;
  struct tls_hello direct;
  char ja4[JA4_HASHED_SIZE];
  const uint8_t *raw;
  size_t len = 0;
  cr_assert_eq(parse(&direct, wire, n), TLS_HELLO_ST_HELLO);
  cr_assert_eq(ja4_format(&direct, JA4_HASHED, ja4, sizeof(ja4)), 0);
  hello_finish(h, &tls, NULL, false);
  raw = hello_raw(h, &len);
  cr_expect_eq(len, n, "%s: every byte kept", what);
  cr_expect_eq(memcmp(raw, wire, n), 0, "%s: unchanged", what);
  cr_assert_not_null(ev = hello_evidence(h));
  cr_assert_not_null(ev->ja4, "%s", what);
  cr_expect_str_eq(ev->ja4, ja4, "%s", what);
  cr_expect(hello_ok(h), "%s", what);
}

Test(hello, a_hello_larger_than_the_first_buffer_is_read_whole_in_any_chunking) {
  static const size_t three[] = {3000, 4000};
  size_t n = padded(9000, three, 2);
  static const size_t chunks[] = {1, 7, 100, 2047, 2048, 2049, 5000, 65536};
  cr_assert_gt(n, 9000);
  for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
    struct hello *h;
    char what[64];
    snprintf(what, sizeof(what), "chunks of %zu", chunks[i]);
    cr_expect_eq(read_hello(TLS_HELLO_DEFAULT_MAX, n, chunks[i], &h), TLS_HELLO_ST_HELLO, "%s",
                 what);
    expect_whole(h, n, what);
    hello_free(h);
  }
}

Test(hello, the_configured_bound_still_refuses_after_growing) {
  struct hello *h;
  size_t n = padded(6000, NULL, 0);
  cr_expect_eq(read_hello(n - 1, n, 512, &h), TLS_HELLO_ST_TOO_LARGE);
  hello_free(h);
  cr_expect_eq(read_hello(n, n, 512, &h), TLS_HELLO_ST_HELLO, "exactly the bound is read");
  expect_whole(h, n, "at the bound");
  hello_free(h);
  /* Bounds below the first buffer's are the configured ones too. */
  n = padded(0, NULL, 0);
  cr_expect_eq(read_hello(n - 1, n, n, &h), TLS_HELLO_ST_TOO_LARGE);
  hello_free(h);
  cr_expect_eq(read_hello(n, n, n, &h), TLS_HELLO_ST_HELLO);
  hello_free(h);
}

Test(hello, bytes_after_a_grown_hello_are_not_taken) {
  struct hello *h = hello_new(NULL, TLS_HELLO_DEFAULT_MAX);
  size_t n = padded(5000, NULL, 0), used = 0;
  cr_assert_not_null(h);
  memcpy(wire + n, "\x14\x03\x03\x00\x01\x01", 6); /* change_cipher_spec behind it */
  cr_expect_eq(hello_feed(h, (const char *)wire, n + 6, &used), TLS_HELLO_ST_HELLO);
  cr_expect_eq(used, n);
  expect_whole(h, n, "one feed");
  hello_free(h);
}

Test(hello, bounds_the_parser_refuses_make_no_reader) {
  cr_expect_null(hello_new(NULL, TLS_HELLO_LIMIT_MIN - 1));
  cr_expect_null(hello_new(NULL, TLS_HELLO_LIMIT_MAX + 1));
  hello_free(NULL);
}
