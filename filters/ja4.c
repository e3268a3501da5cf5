/* JA4 TLS client fingerprint of a parsed ClientHello. The lists are streamed
 * into either the output text or a SHA-256 context, never materialised;
 * sorting goes through a 65536-bit set on the stack. */
#include "filters/ja4.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "filters/tls_hello.h"

#define EXT_SERVER_NAME 0x0000
#define EXT_ALPN 0x0010
#define HASH_HEX 12

/* Where rendered text goes: a bounded string, or a digest. */
struct sink {
  char *out;        /* NULL when only measuring */
  size_t size;
  size_t len;       /* bytes produced, even past SIZE */
  EVP_MD_CTX *md;   /* non-NULL: bytes go to the digest instead */
  bool failed;
};

struct u16set {
  uint64_t bits[65536 / 64];
};

static void sink_put(struct sink *s, const char *p, size_t n) {
  if (s->md != NULL && EVP_DigestUpdate(s->md, p, n) != 1)
    s->failed = true;
  if (s->md == NULL && s->out != NULL && s->len < s->size)
    memcpy(s->out + s->len, p, n < s->size - s->len ? n : s->size - s->len);
  s->len += n;
}

/* Appends ",vvvv" (or "vvvv" for the first value of a list). */
static void sink_put_u16(struct sink *s, uint16_t v, bool *first) {
  static const char hex[] = "0123456789abcdef";
  char t[5] = {',', hex[v >> 12], hex[(v >> 8) & 15], hex[(v >> 4) & 15], hex[v & 15]};
  sink_put(s, *first ? t + 1 : t, *first ? 4 : 5);
  *first = false;
}

static void set_add(struct u16set *set, uint16_t v) {
  set->bits[v / 64] |= UINT64_C(1) << (v % 64);
}

static void set_put_sorted(const struct u16set *set, struct sink *s, bool *first) {
  for (size_t w = 0; w < sizeof set->bits / sizeof set->bits[0]; w++)
    for (uint64_t b = set->bits[w]; b != 0; b &= b - 1)
      sink_put_u16(s, (uint16_t)(w * 64 + (size_t)__builtin_ctzll(b)), first);
}

/* ---- part a ------------------------------------------------------------ */

static const char *version_code(uint16_t v) {
  static const struct { uint16_t v; const char *code; } map[] = {
      {0x0304, "13"}, {0x0303, "12"}, {0x0302, "11"}, {0x0301, "10"}, {0x0300, "s3"},
      {0x0002, "s2"}, {0xfeff, "d1"}, {0xfefd, "d2"}, {0xfefc, "d3"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (map[i].v == v)
      return map[i].code;
  return "00";
}

static bool is_alnum(uint8_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* First and last character of the first ALPN protocol; hex digits when
 * either is not an ASCII alphanumeric (the specification's rule). */
static void alpn_code(const struct tls_hello *h, char code[3]) {
  static const char hex[] = "0123456789abcdef";
  struct tls_hello_bytes proto;
  size_t pos = 0;
  strcpy(code, "00");
  if (!tls_hello_alpn_next(h, &pos, &proto))
    return;
  uint8_t first = proto.p[0], last = proto.p[proto.len - 1];
  bool printable = is_alnum(first) && is_alnum(last);
  code[0] = printable ? (char)first : hex[first >> 4];
  code[1] = printable ? (char)last : hex[last & 15];
}

static size_t count_non_grease_ciphers(const struct tls_hello *h) {
  struct tls_hello_u16s list = tls_hello_ciphers(h);
  size_t n = 0;
  for (size_t i = 0; i < list.n; i++)
    n += !tls_hello_is_grease(tls_hello_u16_at(&list, i));
  return n;
}

static size_t count_non_grease_exts(const struct tls_hello *h) {
  struct tls_hello_ext ext;
  size_t pos = 0, n = 0;
  while (tls_hello_ext_next(h, &pos, &ext))
    n += !tls_hello_is_grease(ext.type);
  return n;
}

static void put_part_a(const struct tls_hello *h, struct sink *s) {
  size_t nc = count_non_grease_ciphers(h), ne = count_non_grease_exts(h);
  char alpn[3], a[16];
  alpn_code(h, alpn);
  snprintf(a, sizeof a, "t%s%c%02zu%02zu%s", version_code(tls_hello_max_version(h)),
           (tls_hello_flags(h) & TLS_HELLO_F_SNI) ? 'd' : 'i', nc > 99 ? 99 : nc,
           ne > 99 ? 99 : ne, alpn);
  sink_put(s, a, strlen(a));
}

/* ---- parts b and c ----------------------------------------------------- */

static void put_ciphers(const struct tls_hello *h, bool sorted, struct sink *s) {
  struct tls_hello_u16s list = tls_hello_ciphers(h);
  struct u16set set;
  bool first = true;
  if (sorted)
    memset(&set, 0, sizeof set);
  for (size_t i = 0; i < list.n; i++) {
    uint16_t v = tls_hello_u16_at(&list, i);
    if (tls_hello_is_grease(v))
      continue;
    if (sorted)
      set_add(&set, v);
    else
      sink_put_u16(s, v, &first);
  }
  if (sorted)
    set_put_sorted(&set, s, &first);
}

static void put_exts(const struct tls_hello *h, bool sorted, struct sink *s) {
  struct tls_hello_ext ext;
  struct u16set set;
  size_t pos = 0;
  bool first = true;
  if (sorted)
    memset(&set, 0, sizeof set);
  while (tls_hello_ext_next(h, &pos, &ext)) {
    if (tls_hello_is_grease(ext.type))
      continue;
    if (!sorted)
      sink_put_u16(s, ext.type, &first);
    else if (ext.type != EXT_SERVER_NAME && ext.type != EXT_ALPN)
      set_add(&set, ext.type);
  }
  if (sorted)
    set_put_sorted(&set, s, &first);
}

static void put_sigalgs(const struct tls_hello *h, struct sink *s) {
  struct tls_hello_u16s list = tls_hello_sigalgs(h);
  bool first = true;
  for (size_t i = 0; i < list.n; i++) {
    uint16_t v = tls_hello_u16_at(&list, i);
    if (tls_hello_is_grease(v))
      continue;
    if (first)
      sink_put(s, "_", 1);
    sink_put_u16(s, v, &first);
  }
}

static void put_part_c(const struct tls_hello *h, bool sorted, struct sink *s) {
  put_exts(h, sorted, s);
  put_sigalgs(h, s);
}

typedef void part_fn(const struct tls_hello *h, bool sorted, struct sink *s);

/* Writes PART in clear, or its truncated SHA-256 when HASHED. */
static void put_part(const struct tls_hello *h, part_fn *part, bool sorted, bool hashed,
                     struct sink *s) {
  static const char hex[] = "0123456789abcdef";
  struct sink hs = {.md = hashed ? EVP_MD_CTX_new() : NULL};
  unsigned char md[EVP_MAX_MD_SIZE];
  char text[HASH_HEX];
  if (!hashed) {
    part(h, sorted, s);
    return;
  }
  if (hs.md == NULL || EVP_DigestInit_ex(hs.md, EVP_sha256(), NULL) != 1)
    hs.failed = true;
  else
    part(h, sorted, &hs);
  if (!hs.failed && EVP_DigestFinal_ex(hs.md, md, NULL) != 1)
    hs.failed = true;
  for (size_t i = 0; i < HASH_HEX; i++) /* a failed digest prints zeros */
    text[i] = hs.len == 0 || hs.failed ? '0' : hex[(md[i / 2] >> (i % 2 ? 0 : 4)) & 15];
  EVP_MD_CTX_free(hs.md);
  s->failed |= hs.failed;
  sink_put(s, text, HASH_HEX);
}

static void put_ja4(const struct tls_hello *h, enum ja4_variant v, struct sink *s) {
  bool sorted = v == JA4_HASHED || v == JA4_RAW;
  bool hashed = v == JA4_HASHED || v == JA4_ORIGINAL_HASHED;
  put_part_a(h, s);
  sink_put(s, "_", 1);
  put_part(h, put_ciphers, sorted, hashed, s);
  sink_put(s, "_", 1);
  put_part(h, put_part_c, sorted, hashed, s);
}

/* ---- API --------------------------------------------------------------- */

int ja4_format(const struct tls_hello *h, enum ja4_variant variant, char *out, size_t size) {
  struct sink s = {.out = out, .size = size};
  if (tls_hello_status(h) != TLS_HELLO_ST_HELLO) {
    if (size > 0)
      out[0] = '\0';
    return -EINVAL;
  }
  put_ja4(h, variant, &s);
  if (size > 0)
    out[s.len < size ? s.len : size - 1] = '\0';
  if (s.failed)
    return -ENOMEM;
  return s.len < size ? 0 : -ENOSPC;
}

size_t ja4_size(const struct tls_hello *h, enum ja4_variant variant) {
  struct sink s = {0};
  if (tls_hello_status(h) != TLS_HELLO_ST_HELLO)
    return 0;
  if (variant == JA4_HASHED || variant == JA4_ORIGINAL_HASHED)
    return JA4_HASHED_SIZE;
  put_ja4(h, variant, &s);
  return s.len + 1;
}
