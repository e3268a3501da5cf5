/* Helpers shared by the ClientHello and JA4 suites: fixture loading,
 * chunked feeding, and a builder that rebuilds the curl fixture from its
 * parts so that tests can edit its extensions and length fields. */
#ifndef EMBARGO_TESTS_UNIT_HELLO_BUILDER_H
#define EMBARGO_TESTS_UNIT_HELLO_BUILDER_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "filters/ja4.h"
#include "filters/tls_hello.h"

#define FIXTURES EMBARGO_SOURCE_DIR "/tests/fixtures"
#define BIG 70000

static uint8_t hello_buf[TLS_HELLO_BUF_SIZE(TLS_HELLO_LIMIT_MAX)];

static inline size_t load(const char *path, uint8_t *out, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;
  cr_assert_not_null(f, "cannot open %s", path);
  n = fread(out, 1, cap, f);
  fclose(f);
  return n;
}

static inline size_t load_fixture(const char *rel, uint8_t *out, size_t cap) {
  char path[512];
  int n = snprintf(path, sizeof path, "%s/%s", FIXTURES, rel);
  cr_assert(n > 0 && (size_t)n < sizeof path, "fixture path too long: %s", rel);
  return load(path, out, cap);
}

/* Feeds DATA in CHUNK-sized pieces; returns the final status and the total
 * consumed in *USED. */
static inline enum tls_hello_status feed_chunked(struct tls_hello *h, const uint8_t *data,
                                                 size_t n, size_t chunk, size_t *used) {
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

static inline enum tls_hello_status parse_max(struct tls_hello *h, const uint8_t *data,
                                              size_t n, size_t max) {
  cr_assert_eq(tls_hello_init(h, hello_buf, sizeof hello_buf, max), 0);
  return feed_chunked(h, data, n, n ? n : 1, NULL);
}

static inline enum tls_hello_status parse(struct tls_hello *h, const uint8_t *data, size_t n) {
  return parse_max(h, data, n, TLS_HELLO_LIMIT_MAX);
}

static inline void expect_ja4(const struct tls_hello *h, enum ja4_variant v, const char *want,
                       const char *what) {
  static char got[BIG];
  cr_assert_eq(ja4_format(h, v, got, sizeof got), 0, "%s", what);
  cr_expect_str_eq(got, want, "%s variant %d", what, (int)v);
  cr_expect_eq(ja4_size(h, v), strlen(want) + 1, "%s", what);
}

/* ---- synthetic hellos rebuilt from a real one --------------------------- */

struct ext_item {
  uint16_t type;
  const uint8_t *data;
  size_t len;
};

/* A ClientHello as parts: the base hello's fixed fields and an editable
 * extension list. */
struct parts {
  const struct tls_hello *base;
  uint16_t version;
  struct ext_item ext[64];
  size_t next;
};

static struct tls_hello base;
static uint8_t base_buf[TLS_HELLO_BUF_SIZE(TLS_HELLO_DEFAULT_MAX)];
static uint8_t wire[BIG], msg[BIG];
static char base_ja4[JA4_HASHED_SIZE];

/* Parses the curl fixture into BASE and P. */
static inline void base_parts(struct parts *p) {
  static uint8_t data[BIG];
  struct tls_hello_ext e;
  size_t pos = 0, n = load_fixture("hellos/curl.bin", data, sizeof data);
  cr_assert_eq(tls_hello_init(&base, base_buf, sizeof base_buf, 0), 0);
  cr_assert_eq(tls_hello_feed(&base, data, n, NULL), TLS_HELLO_ST_HELLO);
  cr_assert_eq(ja4_format(&base, JA4_HASHED, base_ja4, sizeof base_ja4), 0);
  p->base = &base;
  p->version = tls_hello_legacy_version(&base);
  p->next = 0;
  while (tls_hello_ext_next(&base, &pos, &e))
    p->ext[p->next++] = (struct ext_item){e.type, e.data, e.len};
}

/* Replaces the body of extension TYPE, or inserts it first. */
static inline void parts_set(struct parts *p, uint16_t type, const void *data, size_t len) {
  for (size_t i = 0; i < p->next; i++) {
    if (p->ext[i].type == type) {
      p->ext[i] = (struct ext_item){type, data, len};
      return;
    }
  }
  memmove(p->ext + 1, p->ext, p->next++ * sizeof p->ext[0]);
  p->ext[0] = (struct ext_item){type, data, len};
}

static inline void parts_append(struct parts *p, uint16_t type, const void *data, size_t len) {
  p->ext[p->next++] = (struct ext_item){type, data, len};
}

static inline uint8_t *put16(uint8_t *o, size_t v) {
  o[0] = (uint8_t)(v >> 8);
  o[1] = (uint8_t)v;
  return o + 2;
}

static inline uint8_t *put_vec(uint8_t *o, int width, const void *data, size_t len) {
  if (width == 1)
    *o++ = (uint8_t)len;
  else
    o = put16(o, len);
  memcpy(o, data, len);
  return o + len;
}

/* Serialises P as a handshake message into MSG; returns its length. */
static inline size_t build_msg(const struct parts *p) {
  const struct tls_hello *b = p->base;
  uint8_t *o = put16(msg + 4, p->version), *block;
  memcpy(o, b->random.p, 32);
  o = put_vec(o + 32, 1, b->session_id.p, b->session_id.len);
  o = put_vec(o, 2, b->ciphers.p, b->ciphers.n * 2);
  o = put_vec(o, 1, b->compression.p, b->compression.len);
  block = o;
  o += 2;
  for (size_t i = 0; i < p->next; i++)
    o = put_vec(put16(o, p->ext[i].type), 2, p->ext[i].data, p->ext[i].len);
  put16(block, (size_t)(o - block - 2));
  size_t n = (size_t)(o - msg);
  msg[0] = 1;
  msg[1] = (uint8_t)((n - 4) >> 16);
  put16(msg + 2, n - 4);
  return n;
}

/* Wraps MSG[0, N) into handshake records of SIZES[i] payload bytes (the
 * last record takes the rest) in WIRE; returns the wire length. */
static inline size_t wrap(size_t n, const size_t *sizes, size_t nsizes) {
  size_t off = 0, w = 0;
  for (size_t i = 0; off < n; i++) {
    size_t len = i < nsizes && sizes[i] < n - off ? sizes[i] : n - off;
    wire[w] = 22;
    put16(wire + w + 1, 0x0301);
    put16(wire + w + 3, len);
    memcpy(wire + w + 5, msg + off, len);
    w += 5 + len;
    off += len;
  }
  return w;
}

static inline size_t wire_of(const struct parts *p) {
  return wrap(build_msg(p), NULL, 0);
}

static inline void expect_malformed(const uint8_t *data, size_t n, enum tls_hello_reason why,
                             const char *what) {
  struct tls_hello h;
  cr_expect_eq(parse(&h, data, n), TLS_HELLO_ST_MALFORMED, "%s: %s", what,
               tls_hello_status_str(tls_hello_status(&h)));
  cr_expect_eq(tls_hello_reason(&h), why, "%s: got %s, want %s", what,
               tls_hello_reason_name(tls_hello_reason(&h)), tls_hello_reason_name(why));
}

static inline void expect_parts_malformed(const struct parts *p, enum tls_hello_reason why,
                                   const char *what) {
  expect_malformed(wire, wire_of(p), why, what);
}

static inline void expect_same_ja4(const struct tls_hello *h) {
  char got[JA4_HASHED_SIZE];
  cr_assert_eq(ja4_format(h, JA4_HASHED, got, sizeof got), 0);
  cr_expect_str_eq(got, base_ja4);
}

/* Offsets of the length fields of the message in MSG (built by build_msg). */
struct offsets {
  size_t version, sid, ciphers, comp, exts, first_ext;
};

static inline struct offsets offsets_of(void) {
  struct offsets o;
  o.version = 4;
  o.sid = 4 + 2 + 32;
  o.ciphers = o.sid + 1 + msg[o.sid];
  o.comp = o.ciphers + 2 + ((size_t)msg[o.ciphers] << 8 | msg[o.ciphers + 1]);
  o.exts = o.comp + 1 + msg[o.comp];
  o.first_ext = o.exts + 2;
  return o;
}

static inline void set16(size_t at, size_t v) {
  put16(msg + at, v);
}

#endif
