/* ClientHello parser and JA4: table-driven over real first flights (FoxIO's
 * public JA4 captures and hellos captured from local clients), plus
 * synthetic variants rebuilt from a real hello. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "filters/ja4.h"
#include "filters/tls_hello.h"

#define FIXTURES EMBARGO_SOURCE_DIR "/tests/fixtures"
#define BIG 70000

static uint8_t hello_buf[TLS_HELLO_BUF_SIZE(TLS_HELLO_LIMIT_MAX)];

/* ---- helpers ----------------------------------------------------------- */

static size_t load(const char *path, uint8_t *out, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;
  cr_assert_not_null(f, "cannot open %s", path);
  n = fread(out, 1, cap, f);
  fclose(f);
  return n;
}

static size_t load_fixture(const char *rel, uint8_t *out, size_t cap) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", FIXTURES, rel);
  return load(path, out, cap);
}

/* Feeds DATA in CHUNK-sized pieces; returns the final status and the total
 * consumed in *USED. */
static enum tls_hello_status feed_chunked(struct tls_hello *h, const uint8_t *data, size_t n,
                                          size_t chunk, size_t *used) {
  enum tls_hello_status st = tls_hello_status(h);
  size_t off = 0, c;
  while (off < n && st == TLS_HELLO_ST_NEED_MORE) {
    size_t len = n - off < chunk ? n - off : chunk;
    st = tls_hello_feed(h, data + off, len, &c);
    off += c;
    if (st == TLS_HELLO_ST_NEED_MORE)
      cr_assert_eq(c, len);
  }
  if (used)
    *used = off;
  return st;
}

static enum tls_hello_status parse_max(struct tls_hello *h, const uint8_t *data, size_t n,
                                       size_t max) {
  cr_assert_eq(tls_hello_init(h, hello_buf, sizeof hello_buf, max), 0);
  return feed_chunked(h, data, n, n ? n : 1, NULL);
}

static enum tls_hello_status parse(struct tls_hello *h, const uint8_t *data, size_t n) {
  return parse_max(h, data, n, TLS_HELLO_LIMIT_MAX);
}

static void expect_ja4(const struct tls_hello *h, enum ja4_variant v, const char *want,
                       const char *what) {
  static char got[BIG];
  cr_assert_eq(ja4_format(h, v, got, sizeof got), 0, "%s", what);
  cr_expect_str_eq(got, want, "%s variant %d", what, (int)v);
  cr_expect_eq(ja4_size(h, v), strlen(want) + 1, "%s", what);
}

/* ---- FoxIO's public captures ------------------------------------------- */

/* Applies the divergences documented in filters/ja4.h to FoxIO's strings. */
static void apply_divergences(const char *file, char *field[4]) {
  if (strcmp(file, "tls-non-ascii-alpn.pcapng.s0.1.bin") == 0) {
    for (int i = 0; i < 4; i++) {
      char *p = strstr(field[i], "t13d151699_");
      cr_assert_not_null(p);
      memcpy(p + 8, "bd", 2);
    }
  }
  if (strncmp(file, "https3-301-get", 14) == 0 || strncmp(file, "socks-https-example", 19) == 0) {
    char *p = strrchr(field[2], '_');
    cr_assert_str_eq(p, "_000000000000");
    strcpy(p, "_9af15b336e6a"); /* sha256("0000"), the listed server_name */
  }
}

Test(tls_hello, ja4_matches_foxio_for_every_public_capture) {
  static char line[BIG], raw[BIG];
  static uint8_t data[BIG];
  FILE *f = fopen(FIXTURES "/ja4/expected.tsv", "r");
  int rows = 0, full = 0;
  cr_assert_not_null(f);
  while (fgets(line, sizeof line, f)) {
    char *field[6], *save = NULL;
    struct tls_hello h;
    if (line[0] == '#')
      continue;
    line[strcspn(line, "\n")] = '\0';
    for (int i = 0; i < 6; i++)
      field[i] = strtok_r(i ? NULL : line, "\t", &save);
    cr_assert_not_null(field[5]);
    apply_divergences(field[0], field + 2);
    snprintf(raw, sizeof raw, "ja4/hellos/%s", field[0]);
    size_t n = load_fixture(raw, data, sizeof data);
    cr_assert_eq(parse(&h, data, n), TLS_HELLO_ST_HELLO, "%s: %s", field[0],
                 tls_hello_reason_name(tls_hello_reason(&h)));
    expect_ja4(&h, JA4_HASHED, field[2], field[0]);
    if (strcmp(field[1], "python") == 0) {
      expect_ja4(&h, JA4_RAW, field[3], field[0]);
      expect_ja4(&h, JA4_ORIGINAL_HASHED, field[4], field[0]);
      expect_ja4(&h, JA4_ORIGINAL_RAW, field[5], field[0]);
      full++;
    }
    rows++;
  }
  fclose(f);
  cr_assert_eq(rows, 161);
  cr_assert_eq(full, 158);
}

Test(tls_hello, same_answer_for_every_chunk_size) {
  static const char *const files[] = {
      "ja4/hellos/browsers-x509.pcapng.s0.1.bin",
      "ja4/hellos/tls-alpn-h2.pcap.s0.1.bin",
      "ja4/hellos/https-connect.pcap.s0.1.bin",
  };
  static uint8_t data[BIG];
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    size_t n = load_fixture(files[f], data, sizeof data);
    char want[JA4_HASHED_SIZE], got[JA4_HASHED_SIZE];
    struct tls_hello h;
    cr_assert_eq(parse(&h, data, n), TLS_HELLO_ST_HELLO);
    cr_assert_eq(ja4_format(&h, JA4_HASHED, want, sizeof want), 0);
    for (size_t chunk = 1; chunk <= n; chunk = chunk < 24 ? chunk + 1 : chunk * 2) {
      size_t used;
      cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
      cr_assert_eq(feed_chunked(&h, data, n, chunk, &used), TLS_HELLO_ST_HELLO);
      cr_assert_eq(used, n);
      cr_assert_eq(ja4_format(&h, JA4_HASHED, got, sizeof got), 0);
      cr_assert_str_eq(got, want, "%s chunk %zu", files[f], chunk);
    }
  }
}
