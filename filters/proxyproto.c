/* PROXY protocol header parser (versions 1 and 2). Every length is checked
 * against the bytes present before it is used; nothing is read past LEN. */
#define _POSIX_C_SOURCE 200809L
#include "filters/proxyproto.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v2_signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_prefix[] = "PROXY ";
#define V1_PREFIX_LEN (sizeof(v1_prefix) - 1)

/* Sets OUT's error; returns PROXYPROTO_ERROR. */
static enum proxyproto_status fail(struct proxyproto_header *out, const char *why) {
  out->error = why;
  return PROXYPROTO_ERROR;
}

/* Whether the N bytes at BUF are a prefix of the N first bytes of WANT. */
static bool starts(const uint8_t *buf, size_t n, const void *want, size_t want_len) {
  return memcmp(buf, want, n < want_len ? n : want_len) == 0;
}

/* ---- version 1 ----------------------------------------------------------------- */

/* A decimal in [0, MAX] without leading zeros, the whole of TEXT[0..LEN). */
static bool parse_decimal(const char *text, size_t len, unsigned max, unsigned *out) {
  unsigned v = 0;
  if (len == 0 || len > 5 || (len > 1 && text[0] == '0'))
    return false;
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '9')
      return false;
    v = v * 10 + (unsigned)(text[i] - '0');
  }
  if (v > max)
    return false;
  *out = v;
  return true;
}

/* A canonical dotted quad: four decimals 0..255 without leading zeros. */
static bool parse_ipv4(const char *text, size_t len, uint8_t *addr) {
  size_t start = 0;
  for (unsigned part = 0; part < 4; part++) {
    size_t end = start;
    unsigned v;
    while (end < len && text[end] != '.')
      end++;
    if (!parse_decimal(text + start, end - start, 255, &v) || (part < 3) != (end < len))
      return false;
    addr[part] = (uint8_t)v;
    start = end + 1;
  }
  return true;
}

/* An IPv6 address of at most 39 characters (eight groups of four). */
static bool parse_ipv6(const char *text, size_t len, uint8_t *addr) {
  char tmp[40];
  if (len == 0 || len >= sizeof(tmp))
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':'))
      return false; /* hex groups and colons only: no zone, no dotted tail */
  }
  memcpy(tmp, text, len);
  tmp[len] = '\0';
  return inet_pton(AF_INET6, tmp, addr) == 1;
}

/* Splits LINE (LEN bytes, no CRLF) at single spaces into at most MAX fields.
 * Returns the number of fields, or -1 for an empty field (two spaces, a
 * leading or trailing one) or too many. */
static int split_fields(const char *line, size_t len, const char **field, size_t *flen, int max) {
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && line[i] != ' ')
      continue;
    if (i == start || n == max)
      return -1;
    field[n] = line + start;
    flen[n++] = i - start;
    start = i + 1;
  }
  return n;
}

static bool field_is(const char *f, size_t len, const char *word) {
  return len == strlen(word) && memcmp(f, word, len) == 0;
}

/* The fields after "PROXY " of a complete line (without its CRLF). */
static enum proxyproto_status parse_v1_fields(const char *line, size_t len,
                                              struct proxyproto_header *out) {
  const char *f[6];
  size_t fl[6];
  unsigned sport, dport;
  if (len >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (len == 7 || line[7] == ' ')) {
    out->command = PROXYPROTO_UNKNOWN; /* the rest of the line is ignored */
    return PROXYPROTO_DONE;
  }
  const char *space = memchr(line, ' ', len);
  size_t plen = space != NULL ? (size_t)(space - line) : len;
  if (!field_is(line, plen, "TCP4") && !field_is(line, plen, "TCP6"))
    return fail(out, "v1: the protocol is not TCP4, TCP6 or UNKNOWN");
  if (split_fields(line, len, f, fl, 6) != 5)
    return fail(out, "v1: expected PROTOCOL SRC DST SPORT DPORT separated by single spaces");
  bool v4 = f[0][3] == '4';
  out->src.family = out->dst.family = v4 ? AF_INET : AF_INET6;
  bool (*parse_ip)(const char *, size_t, uint8_t *) = v4 ? parse_ipv4 : parse_ipv6;
  if (!parse_ip(f[1], fl[1], out->src.addr) || !parse_ip(f[2], fl[2], out->dst.addr))
    return fail(out, v4 ? "v1: an address is not a canonical IPv4 address"
                        : "v1: an address is not an IPv6 address");
  if (!parse_decimal(f[3], fl[3], 65535, &sport) || !parse_decimal(f[4], fl[4], 65535, &dport))
    return fail(out, "v1: a port is not a decimal from 0 to 65535 without leading zeros");
  out->src.port = (uint16_t)sport;
  out->dst.port = (uint16_t)dport;
  out->command = PROXYPROTO_PROXY;
  return PROXYPROTO_DONE;
}

static enum proxyproto_status parse_v1(const uint8_t *buf, size_t len,
                                       struct proxyproto_header *out) {
  size_t limit = len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX;
  out->version = 1;
  if (!starts(buf, len, v1_prefix, V1_PREFIX_LEN))
    return fail(out, "not a PROXY protocol header");
  for (size_t i = 0; i < limit; i++) {
    if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
      return fail(out, "v1: a CR not followed by LF");
    if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
      return fail(out, "v1: an LF not preceded by CR");
    if (buf[i] != '\n')
      continue;
    if (i + 1 < V1_PREFIX_LEN + 2)
      return fail(out, "v1: the line ends before its protocol");
    out->length = i + 1;
    return parse_v1_fields((const char *)buf + V1_PREFIX_LEN, i - 1 - V1_PREFIX_LEN, out);
  }
  if (len >= PROXYPROTO_V1_MAX)
    return fail(out, "v1: no CRLF in the first 107 bytes");
  return PROXYPROTO_NEED_MORE;
}

/* ---- version 2 ----------------------------------------------------------------- */

/* The address families of byte 14's high nibble: the address block's
 * length, and whether the header names a client. */
static const struct {
  int family;    /* AF_INET, AF_INET6, or 0: none named */
  size_t length; /* the addresses and ports */
} v2_families[] = {
    {0, 0},         /* AF_UNSPEC */
    {AF_INET, 12},  /* 2 * 4 + 2 * 2 */
    {AF_INET6, 36}, /* 2 * 16 + 2 * 2 */
    {0, 216},       /* AF_UNIX: 2 * 108 */
};

enum { V2_UNSPEC = 0, V2_STREAM = 1, V2_DGRAM = 2 };

static uint16_t be16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

/* Skips the TLVs in BUF[AT..END), each one's length checked. */
static enum proxyproto_status skip_tlvs(const uint8_t *buf, size_t at, size_t end,
                                        struct proxyproto_header *out) {
  while (at < end) {
    if (end - at < 3)
      return fail(out, "v2: a TLV is cut short by the header's end");
    size_t vlen = be16(buf + at + 1);
    if (vlen > end - at - 3)
      return fail(out, "v2: a TLV is longer than what is left of the header");
    at += 3 + vlen;
    out->ntlvs++;
  }
  return PROXYPROTO_DONE;
}

/* The addresses and ports of a PROXY command's block at A. */
static void read_addresses(const uint8_t *a, int family, struct proxyproto_header *out) {
  size_t n = family == AF_INET ? 4 : 16;
  out->src.family = out->dst.family = family;
  memcpy(out->src.addr, a, n);
  memcpy(out->dst.addr, a + n, n);
  out->src.port = be16(a + 2 * n);
  out->dst.port = be16(a + 2 * n + 2);
}

/* A complete version 2 header of TOTAL bytes. */
static enum proxyproto_status parse_v2_body(const uint8_t *buf, size_t total,
                                            struct proxyproto_header *out) {
  unsigned command = buf[12] & 0x0f, fam = buf[13] >> 4, proto = buf[13] & 0x0f;
  size_t block = total - PROXYPROTO_V2_FIXED;
  out->length = total;
  if (command == 0) { /* LOCAL: the addresses and TLVs are the balancer's; ignored */
    out->command = PROXYPROTO_LOCAL;
    return PROXYPROTO_DONE;
  }
  if ((fam == 1 || fam == 2) && proto == V2_DGRAM)
    return fail(out, "v2: a datagram (UDP) connection on a stream listener");
  if (fam == 0 || proto == V2_UNSPEC) {
    out->command = PROXYPROTO_UNKNOWN; /* no address to read: none is trusted */
    return PROXYPROTO_DONE;
  }
  if (block < v2_families[fam].length)
    return fail(out, "v2: the length is shorter than the family's addresses");
  if (v2_families[fam].family != 0) {
    read_addresses(buf + PROXYPROTO_V2_FIXED, v2_families[fam].family, out);
    out->command = PROXYPROTO_PROXY;
  } else {
    out->command = PROXYPROTO_UNKNOWN; /* AF_UNIX: no network client */
  }
  return skip_tlvs(buf, PROXYPROTO_V2_FIXED + v2_families[fam].length, total, out);
}

static enum proxyproto_status parse_v2(const uint8_t *buf, size_t len,
                                       struct proxyproto_header *out) {
  out->version = 2;
  if (!starts(buf, len, v2_signature, sizeof(v2_signature)))
    return fail(out, "not a PROXY protocol header");
  if (len > 12 && (buf[12] >> 4) != 2)
    return fail(out, "v2: the version is not 2");
  if (len > 12 && (buf[12] & 0x0f) > 1)
    return fail(out, "v2: the command is neither LOCAL nor PROXY");
  /* LOCAL ignores the family byte; PROXY must name a known one. */
  if (len > 13 && (buf[12] & 0x0f) == 1 && ((buf[13] >> 4) > 3 || (buf[13] & 0x0f) > V2_DGRAM))
    return fail(out, "v2: an unknown address family or transport");
  if (len < PROXYPROTO_V2_FIXED)
    return PROXYPROTO_NEED_MORE;
  size_t total = PROXYPROTO_V2_FIXED + (size_t)be16(buf + 14);
  if (total > PROXYPROTO_MAX)
    return fail(out, "v2: the header is longer than 4096 bytes");
  if (len < total)
    return PROXYPROTO_NEED_MORE;
  return parse_v2_body(buf, total, out);
}

enum proxyproto_status proxyproto_parse(const uint8_t *buf, size_t len,
                                        struct proxyproto_header *out) {
  memset(out, 0, sizeof(*out));
  if (len == 0)
    return PROXYPROTO_NEED_MORE;
  if (buf[0] == v1_prefix[0])
    return parse_v1(buf, len, out);
  if (buf[0] == v2_signature[0])
    return parse_v2(buf, len, out);
  return fail(out, "not a PROXY protocol header");
}

const char *proxyproto_command_name(enum proxyproto_command c) {
  static const char *const names[] = {"proxy", "local", "unknown"};
  return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}
