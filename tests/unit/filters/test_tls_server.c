/* Unit tests for filters/tls_server.c over real server first flights
 * (tests/fixtures/server/): ServerHello or HelloRetryRequest, in any
 * chunking and record framing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "filters/tls_server.h"

#define FIXTURES EMBARGO_SOURCE_DIR "/tests/fixtures/server"

static size_t load(const char *name, uint8_t *out, size_t cap) {
  char path[512];
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
  f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  n = fread(out, 1, cap, f);
  fclose(f);
  return n;
}

static enum tls_server_status feed_chunked(const uint8_t *data, size_t n, size_t chunk) {
  struct tls_server s;
  enum tls_server_status st = TLS_SERVER_ST_NEED_MORE;
  tls_server_init(&s);
  for (size_t off = 0; off < n; off += chunk)
    st = tls_server_feed(&s, data + off, n - off < chunk ? n - off : chunk);
  return st;
}

Test(tls_server, recognises_a_real_hello_retry_request_in_any_chunking) {
  uint8_t data[8192];
  size_t n = load("hrr.bin", data, sizeof data);
  cr_assert_gt(n, 43);
  for (size_t chunk = 1; chunk <= n; chunk++)
    cr_expect_eq(feed_chunked(data, n, chunk), TLS_SERVER_ST_HRR, "chunk %zu", chunk);
}

Test(tls_server, recognises_a_real_server_hello_in_any_chunking) {
  uint8_t data[8192];
  size_t n = load("server-hello.bin", data, sizeof data);
  for (size_t chunk = 1; chunk <= 64; chunk++)
    cr_expect_eq(feed_chunked(data, n, chunk), TLS_SERVER_ST_SERVER_HELLO, "chunk %zu", chunk);
  cr_expect_eq(feed_chunked(data, n, n), TLS_SERVER_ST_SERVER_HELLO);
}

Test(tls_server, decides_after_38_handshake_bytes_and_not_before) {
  uint8_t data[8192];
  struct tls_server s;
  load("hrr.bin", data, sizeof data);
  tls_server_init(&s);
  cr_expect_eq(tls_server_feed(&s, data, 5 + 37), TLS_SERVER_ST_NEED_MORE);
  cr_expect_eq(tls_server_feed(&s, data + 42, 1), TLS_SERVER_ST_HRR);
  cr_expect_str_eq(tls_server_status_str(TLS_SERVER_ST_HRR), "HRR");
}

/* Re-frames the first record's handshake bytes of FLIGHT into records of
 * at most STEP payload bytes each; returns the new length. */
static size_t reframe(const uint8_t *flight, uint8_t *out, size_t step) {
  size_t len = (size_t)flight[3] << 8 | flight[4], off = 0, w = 0;
  while (off < len) {
    size_t n = len - off < step ? len - off : step;
    memcpy(out + w, flight, 3);
    out[w + 3] = (uint8_t)(n >> 8);
    out[w + 4] = (uint8_t)n;
    memcpy(out + w + 5, flight + 5 + off, n);
    w += 5 + n;
    off += n;
  }
  return w;
}

Test(tls_server, reads_a_hello_retry_request_split_over_records) {
  uint8_t data[8192], split[16384];
  load("hrr.bin", data, sizeof data);
  for (size_t step = 1; step <= 40; step++) {
    size_t n = reframe(data, split, step);
    cr_expect_eq(feed_chunked(split, n, 1), TLS_SERVER_ST_HRR, "records of %zu bytes", step);
    cr_expect_eq(feed_chunked(split, n, n), TLS_SERVER_ST_HRR, "records of %zu bytes", step);
  }
}

Test(tls_server, a_changed_random_byte_is_a_plain_server_hello) {
  uint8_t data[8192];
  size_t n = load("hrr.bin", data, sizeof data);
  for (size_t i = 11; i < 43; i++) {
    data[i] ^= 1;
    cr_expect_eq(feed_chunked(data, n, n), TLS_SERVER_ST_SERVER_HELLO, "random byte %zu", i - 11);
    data[i] ^= 1;
  }
}

Test(tls_server, other_first_flights_are_not_hellos) {
  static const struct {
    const char *what;
    uint8_t bytes[48];
    size_t len;
    enum tls_server_status want;
  } cases[] = {
      {"alert", {21, 3, 3, 0, 2, 2, 40}, 7, TLS_SERVER_ST_ALERT},
      {"plain HTTP", "HTTP/1.1 200 OK\r\n", 17, TLS_SERVER_ST_NOT_HELLO},
      {"application data first", {23, 3, 3, 0, 1, 0}, 6, TLS_SERVER_ST_NOT_HELLO},
      {"empty handshake record", {22, 3, 3, 0, 0}, 5, TLS_SERVER_ST_NOT_HELLO},
      {"oversized record", {22, 3, 3, 0x48, 1}, 5, TLS_SERVER_ST_NOT_HELLO},
      {"record version 2.0", {22, 2, 0, 0, 1}, 5, TLS_SERVER_ST_NOT_HELLO},
      {"certificate first", {22, 3, 3, 0, 42, 11, 0, 0, 38}, 47, TLS_SERVER_ST_NOT_HELLO},
      {"server hello too short", {22, 3, 3, 0, 42, 2, 0, 0, 10}, 47, TLS_SERVER_ST_NOT_HELLO},
      {"truncated", {22, 3, 3, 0, 42, 2, 0, 0, 38, 3, 3}, 11, TLS_SERVER_ST_NEED_MORE},
      {"nothing", {0}, 0, TLS_SERVER_ST_NEED_MORE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (size_t chunk = 1; chunk <= 5; chunk += 4)
      cr_expect_eq(feed_chunked(cases[i].bytes, cases[i].len, chunk), cases[i].want,
                   "%s (chunk %zu): %s", cases[i].what, chunk,
                   tls_server_status_str(feed_chunked(cases[i].bytes, cases[i].len, chunk)));
}

Test(tls_server, an_alert_after_handshake_bytes_interleaves) {
  /* Nothing may come between the fragments of the first message. */
  static const uint8_t flight[] = {22, 3, 3, 0, 2, 2, 0, 21, 3, 3, 0, 2, 2, 40};
  cr_expect_eq(feed_chunked(flight, sizeof flight, 1), TLS_SERVER_ST_NOT_HELLO);
}

Test(tls_server, the_status_is_sticky_and_memory_bounded) {
  uint8_t data[8192], junk[65536];
  struct tls_server s;
  size_t n = load("hrr.bin", data, sizeof data);
  memset(junk, 0xff, sizeof junk);
  tls_server_init(&s);
  cr_assert_eq(tls_server_feed(&s, data, n), TLS_SERVER_ST_HRR);
  for (int i = 0; i < 32; i++)
    cr_expect_eq(tls_server_feed(&s, junk, sizeof junk), TLS_SERVER_ST_HRR);
  cr_expect_eq(sizeof(s) < 128, 1, "state is %zu bytes", sizeof(s));
}
