/* PROXY protocol parser: tables of real wire bytes (versions 1 and 2,
 * valid and broken), every truncation of every valid header, headers fed
 * in pieces, and lengths that lie. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/proxyproto.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

/* One case: the bytes on the wire and what the parser must say. */
struct pp_case {
  const char *name;
  const char *bytes;
  size_t len;
  enum proxyproto_status status;
  enum proxyproto_command command; /* DONE */
  const char *src, *dst;           /* DONE with PROXY: addresses as text */
  unsigned sport, dport;
  size_t ntlvs;
  const char *error; /* ERROR: a part of the reason */
};

#define B(s) .bytes = s, .len = sizeof(s) - 1
/* A valid header relayed for a client, with its TLV count. */
#define PROXY(n, wire, s, d, sp, dp, tlvs)                                                         \
  {                                                                                                \
    .name = n, wire, .status = PROXYPROTO_DONE, .command = PROXYPROTO_PROXY, .src = s, .dst = d,   \
    .sport = sp, .dport = dp, .ntlvs = tlvs                                                        \
  }
/* A valid header that names no client. */
#define NOCLIENT(n, wire, cmd)                                                                     \
  { .name = n, wire, .status = PROXYPROTO_DONE, .command = cmd }
/* A broken header and a part of the reason it is refused for. */
#define BAD(n, wire, why)                                                                          \
  { .name = n, wire, .status = PROXYPROTO_ERROR, .error = why }

static const struct pp_case valid[] = {
    PROXY("v1 TCP4", B("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), "192.168.0.1",
          "192.168.0.11", 56324, 443, 0),
    PROXY("v1 TCP4 at the bounds", B("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n"),
          "255.255.255.255", "0.0.0.0", 65535, 0, 0),
    PROXY("v1 TCP6 compressed", B("PROXY TCP6 2001:db8::1 fd00::a 40000 3128\r\n"), "2001:db8::1",
          "fd00::a", 40000, 3128, 0),
    PROXY("v1 TCP6 the longest",
          B("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
            "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n"),
          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
          65535, 65535, 0),
    NOCLIENT("v1 UNKNOWN short", B("PROXY UNKNOWN\r\n"), PROXYPROTO_UNKNOWN),
    NOCLIENT("v1 UNKNOWN, the longest line (107 bytes)",
             B("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
             PROXYPROTO_UNKNOWN),
    PROXY("v2 TCP4 (HAProxy send-proxy-v2)",
          B(SIG "\x21\x11\x00\x0c\xac\x13\x00\x01\xac\x13\x00\x03\xa6\x52\x00\x50"), "172.19.0.1",
          "172.19.0.3", 42578, 80, 0),
    PROXY("v2 TCP6",
          B(SIG "\x21\x21\x00\x24"
                "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07"
                "\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                "\x9c\x40\x0c\x38"),
          "2001:db8::7", "fd00::1", 40000, 3128, 0),
    PROXY("v2 TCP4 with ALPN, authority and NOOP TLVs",
          B(SIG "\x21\x11\x00\x2a\x0a\x09\x00\x05\x0a\x00\x00\x01\x30\x39\x0c\x38"
                "\x01\x00\x02"
                "h2"
                "\x02\x00\x10"
                "test.example.com"
                "\x04\x00\x03\x00\x00\x00"),
          "10.9.0.5", "10.0.0.1", 12345, 3128, 3),
    PROXY("v2 TCP4 with an empty TLV last",
          B(SIG "\x21\x11\x00\x0f\x0a\x09\x00\x05\x0a\x00\x00\x01\x30\x39\x0c\x38\xe0\x00\x00"),
          "10.9.0.5", "10.0.0.1", 12345, 3128, 1),
    NOCLIENT("v2 LOCAL (a health check)", B(SIG "\x20\x00\x00\x00"), PROXYPROTO_LOCAL),
    NOCLIENT("v2 LOCAL with addresses, ignored",
             B(SIG "\x20\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"),
             PROXYPROTO_LOCAL),
    NOCLIENT("v2 LOCAL with an unassigned family byte, ignored", B(SIG "\x20\xff\x00\x00"),
             PROXYPROTO_LOCAL),
    NOCLIENT("v2 PROXY AF_UNSPEC", B(SIG "\x21\x00\x00\x00"), PROXYPROTO_UNKNOWN),
    NOCLIENT("v2 PROXY AF_INET over an unspecified transport",
             B(SIG "\x21\x10\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"),
             PROXYPROTO_UNKNOWN),
};

static const struct pp_case invalid[] = {
    BAD("an HTTP request", B("GET / HTTP/1.1\r\n"), "not a PROXY"),
    BAD("a TLS ClientHello", B("\x16\x03\x01\x02\x00\x01"), "not a PROXY"),
    BAD("lowercase proxy", B("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "not a PROXY"),
    BAD("PROXY without its space", B("PROXYTCP4"), "not a PROXY"),
    BAD("v1 TCP5", B("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), "not TCP4, TCP6"),
    BAD("v1 UNKNOWNX", B("PROXY UNKNOWNX\r\n"), "not TCP4, TCP6"),
    BAD("v1 empty protocol", B("PROXY \r\n"), "not TCP4, TCP6"),
    BAD("v1 leading zero in an address", B("PROXY TCP4 192.168.0.01 1.2.3.4 1 2\r\n"),
        "canonical IPv4"),
    BAD("v1 octet past 255", B("PROXY TCP4 256.1.1.1 1.2.3.4 1 2\r\n"), "canonical IPv4"),
    BAD("v1 three octets", B("PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n"), "canonical IPv4"),
    BAD("v1 five octets", B("PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n"), "canonical IPv4"),
    BAD("v1 an empty octet", B("PROXY TCP4 1..3.4 1.2.3.4 1 2\r\n"), "canonical IPv4"),
    BAD("v1 TCP4 with IPv6 addresses", B("PROXY TCP4 ::1 ::2 1 2\r\n"), "canonical IPv4"),
    BAD("v1 TCP6 with IPv4 addresses", B("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), "not an IPv6"),
    BAD("v1 TCP6 with a zone", B("PROXY TCP6 fe80::1%eth0 ::2 1 2\r\n"), "not an IPv6"),
    BAD("v1 TCP6 with two ::", B("PROXY TCP6 1::2::3 ::2 1 2\r\n"), "not an IPv6"),
    BAD("v1 port with a leading zero", B("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), "port"),
    BAD("v1 port past 65535", B("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "port"),
    BAD("v1 negative port", B("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), "port"),
    BAD("v1 two spaces", B("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), "single spaces"),
    BAD("v1 a trailing space", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), "single spaces"),
    BAD("v1 a field too many", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), "single spaces"),
    BAD("v1 a field too few", B("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "single spaces"),
    BAD("v1 a lone LF", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "LF not preceded"),
    BAD("v1 a lone CR", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), "CR not followed"),
    BAD("v1 a NUL in the line", B("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), "canonical IPv4"),
    BAD("v1 108 bytes without CRLF",
        B("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n"),
        "no CRLF in the first 107"),
    BAD("v2 a bad signature", B("\r\n\r\n\x01\r\nQUIT\n\x21\x11\x00\x00"), "not a PROXY"),
    BAD("v2 version 1", B(SIG "\x11\x11\x00\x0c"), "version is not 2"),
    BAD("v2 version 3", B(SIG "\x31\x11\x00\x0c"), "version is not 2"),
    BAD("v2 command 2", B(SIG "\x22\x11\x00\x0c"), "neither LOCAL nor PROXY"),
    BAD("v2 family 4", B(SIG "\x21\x41\x00\x0c"), "unknown address family"),
    BAD("v2 transport 3", B(SIG "\x21\x13\x00\x0c"), "unknown address family"),
    BAD("v2 UDP over IPv4",
        B(SIG "\x21\x12\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"), "datagram"),
    BAD("v2 TCP4 whose length is short of its addresses",
        B(SIG "\x21\x11\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08"), "shorter than the family"),
    BAD("v2 TCP6 whose length is short of its addresses",
        B(SIG "\x21\x21\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"),
        "shorter than the family"),
    BAD("v2 AF_UNIX whose length is short of its addresses",
        B(SIG "\x21\x31\x00\x04\x00\x00\x00\x00"), "shorter than the family"),
    BAD("v2 a TLV cut to two bytes",
        B(SIG "\x21\x11\x00\x0e\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02\x01\x00"),
        "cut short"),
    BAD("v2 a TLV whose length lies",
        B(SIG "\x21\x11\x00\x11\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02\x02\x00\x09"
              "ab"),
        "longer than what is left"),
    BAD("v2 a TLV length of 65535",
        B(SIG "\x21\x11\x00\x0f\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02\x04\xff\xff"),
        "longer than what is left"),
    BAD("v2 a header past 4096 bytes", B(SIG "\x21\x11\x0f\xf1"), "longer than 4096"),
    BAD("v2 the longest length", B(SIG "\x21\x11\xff\xff"), "longer than 4096"),
};

TestSuite(proxyproto);

static void addr_text(const struct proxyproto_addr *a, char *buf, size_t size) {
  cr_assert(inet_ntop(a->family, a->addr, buf, (socklen_t)size) != NULL);
}

static void expect_case(const struct pp_case *c, const uint8_t *bytes, size_t len) {
  struct proxyproto_header h;
  char src[64], dst[64];
  enum proxyproto_status st = proxyproto_parse(bytes, len, &h);
  cr_assert_eq(st, c->status, "%s: status %d, want %d (%s)", c->name, st, c->status,
               h.error ? h.error : "");
  if (st == PROXYPROTO_ERROR) {
    cr_assert_not_null(h.error, "%s", c->name);
    cr_expect_not_null(strstr(h.error, c->error), "%s: '%s' does not say '%s'", c->name, h.error,
                       c->error);
    return;
  }
  cr_expect_null(h.error, "%s", c->name);
  cr_expect_eq(h.command, c->command, "%s: command %s", c->name,
               proxyproto_command_name(h.command));
  cr_expect_eq(h.length, c->len, "%s: length %zu", c->name, h.length);
  cr_expect_eq(h.ntlvs, c->ntlvs, "%s: %zu TLVs", c->name, h.ntlvs);
  if (c->command != PROXYPROTO_PROXY)
    return;
  addr_text(&h.src, src, sizeof(src));
  addr_text(&h.dst, dst, sizeof(dst));
  cr_expect_str_eq(src, c->src, "%s", c->name);
  cr_expect_str_eq(dst, c->dst, "%s", c->name);
  cr_expect_eq(h.src.port, c->sport, "%s", c->name);
  cr_expect_eq(h.dst.port, c->dport, "%s", c->name);
}

/* A heap copy of exactly LEN bytes, so that ASan sees any read past them. */
static uint8_t *exact_copy(const char *bytes, size_t len) {
  uint8_t *p = malloc(len ? len : 1);
  cr_assert_not_null(p);
  memcpy(p, bytes, len);
  return p;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

Test(proxyproto, valid_headers_say_who_the_client_is) {
  for (size_t i = 0; i < COUNT(valid); i++) {
    uint8_t *p = exact_copy(valid[i].bytes, valid[i].len);
    expect_case(&valid[i], p, valid[i].len);
    free(p);
  }
}

Test(proxyproto, broken_headers_are_refused_with_a_reason) {
  for (size_t i = 0; i < COUNT(invalid); i++) {
    uint8_t *p = exact_copy(invalid[i].bytes, invalid[i].len);
    expect_case(&invalid[i], p, invalid[i].len);
    free(p);
  }
}

Test(proxyproto, every_truncation_of_a_valid_header_needs_more) {
  for (size_t i = 0; i < COUNT(valid); i++) {
    for (size_t n = 0; n < valid[i].len; n++) {
      struct proxyproto_header h;
      uint8_t *p = exact_copy(valid[i].bytes, n);
      enum proxyproto_status st = proxyproto_parse(p, n, &h);
      cr_expect_eq(st, PROXYPROTO_NEED_MORE, "%s cut at %zu: %d (%s)", valid[i].name, n, st,
                   h.error ? h.error : "");
      free(p);
    }
  }
}

Test(proxyproto, the_clients_bytes_after_the_header_are_left_alone) {
  static const char tail[] = "GET http://a.example/ HTTP/1.1\r\n\r\n";
  for (size_t i = 0; i < COUNT(valid); i++) {
    size_t n = valid[i].len + sizeof(tail) - 1;
    uint8_t *p = malloc(n);
    cr_assert_not_null(p);
    memcpy(p, valid[i].bytes, valid[i].len);
    memcpy(p + valid[i].len, tail, sizeof(tail) - 1);
    expect_case(&valid[i], p, n);
    free(p);
  }
}

Test(proxyproto, a_header_fed_a_byte_at_a_time_is_read_once_whole) {
  /* The caller's loop: append what arrived, parse all of it again. */
  static const char wire[] = SIG "\x21\x11\x00\x0c\x0a\x09\x00\x05\x0a\x00\x00\x01\x30\x39\x0c"
                                 "\x38"
                                 "CONNECT";
  uint8_t buf[sizeof(wire)];
  struct proxyproto_header h;
  size_t have = 0, calls = 0;
  enum proxyproto_status st = PROXYPROTO_NEED_MORE;
  while (st == PROXYPROTO_NEED_MORE && have < sizeof(wire) - 1) {
    buf[have] = (uint8_t)wire[have];
    have++;
    calls++;
    st = proxyproto_parse(buf, have, &h);
  }
  cr_assert_eq(st, PROXYPROTO_DONE);
  cr_expect_eq(calls, 28, "done on the header's last byte, not later");
  cr_expect_eq(h.length, 28);
  cr_expect_eq(h.src.port, 12345);
}

Test(proxyproto, nonsense_is_refused_on_its_first_byte) {
  struct proxyproto_header h;
  cr_expect_eq(proxyproto_parse((const uint8_t *)"G", 1, &h), PROXYPROTO_ERROR);
  cr_expect_eq(proxyproto_parse((const uint8_t *)"\x16", 1, &h), PROXYPROTO_ERROR);
  cr_expect_eq(proxyproto_parse((const uint8_t *)"PX", 2, &h), PROXYPROTO_ERROR);
  cr_expect_eq(proxyproto_parse((const uint8_t *)"\r\n\r\n\x01", 5, &h), PROXYPROTO_ERROR);
  cr_expect_eq(proxyproto_parse((const uint8_t *)SIG "\x10", 13, &h), PROXYPROTO_ERROR,
               "version 1 in a version 2 signature");
  cr_expect_eq(proxyproto_parse((const uint8_t *)"", 0, &h), PROXYPROTO_NEED_MORE);
}

Test(proxyproto, the_largest_header_allowed_is_read_and_one_more_byte_is_not) {
  size_t n = PROXYPROTO_MAX;
  uint8_t *p = calloc(1, n);
  struct proxyproto_header h;
  cr_assert_not_null(p);
  memcpy(p, SIG "\x21\x11", 14);
  p[14] = (uint8_t)((n - 16) >> 8);
  p[15] = (uint8_t)((n - 16) & 0xff);
  /* 12 address bytes, then one NOOP TLV filling the rest. */
  size_t tlv = n - 16 - 12 - 3;
  p[28] = 0x04;
  p[29] = (uint8_t)(tlv >> 8);
  p[30] = (uint8_t)(tlv & 0xff);
  cr_expect_eq(proxyproto_parse(p, n, &h), PROXYPROTO_DONE, "%s", h.error ? h.error : "");
  cr_expect_eq(h.length, PROXYPROTO_MAX);
  cr_expect_eq(h.ntlvs, 1);
  p[15]++;
  cr_expect_eq(proxyproto_parse(p, n, &h), PROXYPROTO_ERROR);
  free(p);
}
