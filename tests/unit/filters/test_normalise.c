/* Unit tests for filters/normalise.c: host names, IP literals, authorities,
 * absolute-form request targets. */
#include <criterion/criterion.h>
#include <string.h>

#include "filters/err.h"
#include "filters/normalise.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct ok_case {
  const char *in;
  enum host_kind kind;
  const char *name;
};

struct err_case {
  const char *in;
  int err;
};

static void expect_host_ok(const struct ok_case *c) {
  struct host h;
  int err = host_normalise(c->in, strlen(c->in), &h);
  cr_expect_eq(err, 0, "host_normalise(\"%s\") = %s", c->in, err_name(err));
  if (err != 0)
    return;
  cr_expect_eq(h.kind, c->kind, "\"%s\": kind %d", c->in, h.kind);
  cr_expect_str_eq(h.name, c->name, "\"%s\"", c->in);
  cr_expect_eq(h.len, strlen(c->name), "\"%s\": len", c->in);
  cr_expect_eq(h.port, 0, "\"%s\": port", c->in);
}

static void expect_host_err(const struct err_case *c) {
  struct host h;
  memset(&h, 0xAB, sizeof(h));
  int err = host_normalise(c->in, strlen(c->in), &h);
  cr_expect_eq(err, c->err, "host_normalise(\"%s\") = %s, want %s", c->in, err_name(err),
               err_name(c->err));
  cr_expect_eq(h.name[0], (char)0xAB, "\"%s\": out must be untouched on error", c->in);
}

Test(normalise, lowercases_names_and_strips_one_trailing_dot) {
  static const struct ok_case cases[] = {
      {"example.com", HOST_NAME, "example.com"},
      {"DNL-01.Geo.KASPERSKY.com", HOST_NAME, "dnl-01.geo.kaspersky.com"},
      {"example.com.", HOST_NAME, "example.com"},
      {"localhost", HOST_NAME, "localhost"},
      {"_dmarc.example.com", HOST_NAME, "_dmarc.example.com"},
      {"xn--80ak6aa92e.com", HOST_NAME, "xn--80ak6aa92e.com"},
      {"a1.b2-c.d3", HOST_NAME, "a1.b2-c.d3"},
      {"1.2.3.example", HOST_NAME, "1.2.3.example"},
      {"0xdead.com", HOST_NAME, "0xdead.com"},
      {"com1x", HOST_NAME, "com1x"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_ok(&cases[i]);
}

Test(normalise, accepts_canonical_dotted_quads) {
  static const struct ok_case cases[] = {
      {"127.0.0.1", HOST_IPV4, "127.0.0.1"},
      {"0.0.0.0", HOST_IPV4, "0.0.0.0"},
      {"255.255.255.255", HOST_IPV4, "255.255.255.255"},
      {"10.20.30.40.", HOST_IPV4, "10.20.30.40"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_ok(&cases[i]);
  struct host h;
  cr_assert_eq(host_normalise("192.168.1.2", 11, &h), 0);
  const uint8_t want[16] = {192, 168, 1, 2};
  cr_expect_arr_eq(h.addr, want, 16);
}

Test(normalise, rejects_decimal_ipv4_2130706433) {
  struct err_case c = {"2130706433", EMB_EBADIP};
  expect_host_err(&c);
}

Test(normalise, rejects_every_non_canonical_ipv4_form) {
  static const struct err_case cases[] = {
      {"0x7f.1", EMB_EBADIP},         {"0X7F000001", EMB_EBADIP},
      {"127.1", EMB_EBADIP},          {"127.0.1", EMB_EBADIP},
      {"0177.0.0.1", EMB_EBADIP},     {"127.000.0.1", EMB_EBADIP},
      {"01.2.3.4", EMB_EBADIP},       {"1.2.3.4.5", EMB_EBADIP},
      {"256.1.1.1", EMB_EBADIP},      {"1.2.3.256", EMB_EBADIP},
      {"1.2..4", EMB_EBADIP},         {".1.2.3", EMB_EBADIP},
      {"1.2.3.4..", EMB_EBADHOST},    {"example.123", EMB_EBADIP},
      {"example.0x1", EMB_EBADIP},    {"1.2.3.0x4", EMB_EBADIP},
      {"1234.1.1.1", EMB_EBADIP},     {"-1.2.3.4", EMB_EBADIP},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_err(&cases[i]);
}

Test(normalise, rejects_non_ascii_bytes_as_ulabel) {
  static const struct err_case cases[] = {
      {"k\xc3\xa4spersky.com", EMB_EULABEL},
      {"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.com", EMB_EULABEL},
      {"example.com\xff", EMB_EULABEL},
      {"[::1\x80]", EMB_EULABEL},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_err(&cases[i]);
}

Test(normalise, rejects_malformed_names_as_badhost) {
  static const struct err_case cases[] = {
      {"", EMB_EBADHOST},
      {".", EMB_EBADHOST},
      {"..", EMB_EBADHOST},
      {"example..com", EMB_EBADHOST},
      {".example.com", EMB_EBADHOST},
      {"example.com..", EMB_EBADHOST},
      {"-example.com", EMB_EBADHOST},
      {"example-.com", EMB_EBADHOST},
      {"exa mple.com", EMB_EBADHOST},
      {"example.com/", EMB_EBADHOST},
      {"exa*mple.com", EMB_EBADHOST},
      {"example.com\\", EMB_EBADHOST},
      {"ex%41mple.com", EMB_EBADHOST},
      {"[::1", EMB_EBADHOST},
      {"[", EMB_EBADHOST},
      {"::1]", EMB_EBADIP},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_err(&cases[i]);
}

Test(normalise, rejects_embedded_nul) {
  struct host h;
  cr_expect_eq(host_normalise("example.com\0.evil", 17, &h), EMB_EBADHOST);
}

Test(normalise, enforces_label_and_name_length_limits) {
  char buf[400];
  struct host h;

  memset(buf, 'a', 63);
  memcpy(buf + 63, ".com", 5);
  cr_expect_eq(host_normalise(buf, strlen(buf), &h), 0, "63-octet label is valid");
  memset(buf, 'a', 64);
  memcpy(buf + 64, ".com", 5);
  cr_expect_eq(host_normalise(buf, strlen(buf), &h), EMB_EBADHOST, "64-octet label");

  /* 4 x 63 + 3 dots = 255; trim to exactly 253 and 254. */
  for (int i = 0; i < 4; i++) {
    memset(buf + i * 64, 'b', 63);
    buf[i * 64 + 63] = '.';
  }
  buf[253] = '\0';
  cr_expect_eq(host_normalise(buf, 253, &h), 0, "253-octet name is valid");
  cr_expect_eq(h.len, 253);
  buf[253] = '.';
  cr_expect_eq(host_normalise(buf, 254, &h), 0, "253 octets plus the root dot");
  buf[253] = 'b';
  cr_expect_eq(host_normalise(buf, 254, &h), EMB_EBADHOST, "254-octet name");
  memset(buf, 'c', sizeof(buf));
  cr_expect_eq(host_normalise(buf, sizeof(buf), &h), EMB_EBADHOST, "400-octet name");
}

Test(normalise, formats_ipv6_in_inet_ntop_form_with_or_without_brackets) {
  static const struct ok_case cases[] = {
      {"::1", HOST_IPV6, "::1"},
      {"[::1]", HOST_IPV6, "::1"},
      {"[2001:DB8:0:0:0:0:0:1]", HOST_IPV6, "2001:db8::1"},
      {"2001:0db8:0000:0000:0001:0000:0000:0001", HOST_IPV6, "2001:db8::1:0:0:1"},
      {"2001:db8:0:1:1:1:1:1", HOST_IPV6, "2001:db8:0:1:1:1:1:1"},
      {"::", HOST_IPV6, "::"},
      {"FE80::ABCD", HOST_IPV6, "fe80::abcd"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_ok(&cases[i]);
}

Test(normalise, maps_ipv4_mapped_ipv6_to_ipv4) {
  static const struct ok_case cases[] = {
      {"::ffff:127.0.0.1", HOST_IPV4, "127.0.0.1"},
      {"[::FFFF:7f00:1]", HOST_IPV4, "127.0.0.1"},
      {"0:0:0:0:0:ffff:10.1.2.3", HOST_IPV4, "10.1.2.3"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_ok(&cases[i]);
  struct host h;
  cr_assert_eq(host_normalise("::ffff:10.1.2.3", 15, &h), 0);
  const uint8_t want[16] = {10, 1, 2, 3};
  cr_expect_arr_eq(h.addr, want, 16);
}

Test(normalise, rejects_invalid_ipv6_and_zone_ids) {
  static const struct err_case cases[] = {
      {"fe80::1%eth0", EMB_EBADIP},
      {"[fe80::1%25eth0]", EMB_EBADIP},
      {"[fe80::1%eth0]", EMB_EBADIP},
      {"1:2:3:4:5:6:7:8:9", EMB_EBADIP},
      {"[1::2::3]", EMB_EBADIP},
      {"[]", EMB_EBADIP},
      {"[1.2.3.4]", EMB_EBADIP},
      {"[example.com]", EMB_EBADIP},
      {"example.com:80", EMB_EBADIP},
      {"[::g]", EMB_EBADIP},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_host_err(&cases[i]);
}

struct auth_case {
  const char *in;
  enum host_kind kind;
  const char *name;
  uint16_t port;
};

static void expect_authority(const struct auth_case *c, uint16_t default_port) {
  struct host h;
  int err = authority_parse(c->in, strlen(c->in), default_port, &h);
  cr_expect_eq(err, 0, "authority_parse(\"%s\") = %s", c->in, err_name(err));
  if (err != 0)
    return;
  cr_expect_eq(h.kind, c->kind, "\"%s\": kind", c->in);
  cr_expect_str_eq(h.name, c->name, "\"%s\"", c->in);
  cr_expect_eq(h.port, c->port, "\"%s\": port %u", c->in, h.port);
}

Test(normalise, parses_authorities_with_and_without_ports) {
  static const struct auth_case cases[] = {
      {"Example.COM", HOST_NAME, "example.com", 443},
      {"example.com:8080", HOST_NAME, "example.com", 8080},
      {"example.com.:80", HOST_NAME, "example.com", 80},
      {"example.com:", HOST_NAME, "example.com", 443},
      {"example.com:1", HOST_NAME, "example.com", 1},
      {"example.com:65535", HOST_NAME, "example.com", 65535},
      {"example.com:0080", HOST_NAME, "example.com", 80},
      {"10.0.0.1:22", HOST_IPV4, "10.0.0.1", 22},
      {"[::1]", HOST_IPV6, "::1", 443},
      {"[::1]:", HOST_IPV6, "::1", 443},
      {"[2001:db8::1]:8443", HOST_IPV6, "2001:db8::1", 8443},
      {"[::ffff:1.2.3.4]:80", HOST_IPV4, "1.2.3.4", 80},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_authority(&cases[i], 443);
}

static void expect_authority_err(const struct err_case *c) {
  struct host h;
  int err = authority_parse(c->in, strlen(c->in), 443, &h);
  cr_expect_eq(err, c->err, "authority_parse(\"%s\") = %s, want %s", c->in, err_name(err),
               err_name(c->err));
}

Test(normalise, rejects_bad_ports) {
  static const struct err_case cases[] = {
      {"example.com:0", EMB_EBADPORT},      {"example.com:65536", EMB_EBADPORT},
      {"example.com:+80", EMB_EBADPORT},    {"example.com:-80", EMB_EBADPORT},
      {"example.com: 80", EMB_EBADPORT},    {"example.com:80 ", EMB_EBADPORT},
      {"example.com:0x50", EMB_EBADPORT},   {"example.com:99999999999", EMB_EBADPORT},
      {"example.com:8o", EMB_EBADPORT},     {"[::1]:http", EMB_EBADPORT},
      {"[::1]:000000", EMB_EBADPORT},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_authority_err(&cases[i]);
}

Test(normalise, rejects_malformed_authorities) {
  static const struct err_case cases[] = {
      {"user@example.com", EMB_EUSERINFO},
      {"user:pw@example.com:80", EMB_EUSERINFO},
      {"example.com@evil.com", EMB_EUSERINFO},
      {"::1", EMB_EBADIP},
      {"2001:db8::1:443", EMB_EBADIP},
      {"[::1]x", EMB_EBADHOST},
      {"[::1", EMB_EBADHOST},
      {"[::1]]:80", EMB_EBADHOST},
      {"", EMB_EBADHOST},
      {":80", EMB_EBADHOST},
      {"2130706433:80", EMB_EBADIP},
      {"k\xc3\xa4spersky.com:443", EMB_EULABEL},
      {"[fe80::1%25eth0]:80", EMB_EBADIP},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_authority_err(&cases[i]);
}

static void expect_destination(const struct auth_case *c) {
  struct host h;
  int err = destination_parse(c->in, strlen(c->in), 443, &h);
  cr_expect_eq(err, 0, "destination_parse(\"%s\") = %s", c->in, err_name(err));
  if (err != 0)
    return;
  cr_expect_eq(h.kind, c->kind, "\"%s\": kind", c->in);
  cr_expect_str_eq(h.name, c->name, "\"%s\"", c->in);
  cr_expect_eq(h.port, c->port, "\"%s\": port %u", c->in, h.port);
}

Test(destination, a_bare_ipv6_literal_is_an_address_with_the_default_port) {
  static const struct auth_case cases[] = {
      {"fe80::1", HOST_IPV6, "fe80::1", 443},
      {"2001:db8::1", HOST_IPV6, "2001:db8::1", 443},
      {"FF02::1", HOST_IPV6, "ff02::1", 443},
      {"::1", HOST_IPV6, "::1", 443},
      {"::", HOST_IPV6, "::", 443},
      {"64:ff9b::a9fe:a9fe", HOST_IPV6, "64:ff9b::a9fe:a9fe", 443},
      {"::ffff:10.0.0.1", HOST_IPV4, "10.0.0.1", 443},
      /* more than one colon: never host:port, so the last group is not a port */
      {"2001:db8::1:443", HOST_IPV6, "2001:db8::1:443", 443},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_destination(&cases[i]);
}

Test(destination, other_forms_are_authorities) {
  static const struct auth_case cases[] = {
      {"Example.COM", HOST_NAME, "example.com", 443},
      {"example.com:8080", HOST_NAME, "example.com", 8080},
      {"10.0.0.1", HOST_IPV4, "10.0.0.1", 443},
      {"10.0.0.1:22", HOST_IPV4, "10.0.0.1", 22},
      {"[fe80::1]", HOST_IPV6, "fe80::1", 443},
      {"[2001:db8::1]:8443", HOST_IPV6, "2001:db8::1", 8443},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    expect_destination(&cases[i]);
}

Test(destination, rejects_what_is_neither) {
  static const struct err_case cases[] = {
      {"fe80::1%eth0", EMB_EBADIP},    {"a:b:c", EMB_EBADIP},
      {"2001:db8::g", EMB_EBADIP},     {"fe80::1:", EMB_EBADIP},
      {"[fe80::1", EMB_EBADHOST},      {"", EMB_EBADHOST},
      {"example.com:0", EMB_EBADPORT}, {"user@example.com", EMB_EUSERINFO},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    struct host h;
    int err = destination_parse(cases[i].in, strlen(cases[i].in), 443, &h);
    cr_expect_eq(err, cases[i].err, "destination_parse(\"%s\") = %s, want %s", cases[i].in,
                 err_name(err), err_name(cases[i].err));
  }
}

struct url_case {
  const char *in;
  const char *name;
  uint16_t port;
  const char *path;
};

Test(normalise, parses_absolute_http_urls) {
  static const struct url_case cases[] = {
      {"http://example.com/", "example.com", 80, "/"},
      {"http://example.com", "example.com", 80, ""},
      {"HTTP://Example.com:8080/a/b?c=d", "example.com", 8080, "/a/b?c=d"},
      {"hTtP://example.com?q=1", "example.com", 80, "?q=1"},
      {"http://example.com:/x", "example.com", 80, "/x"},
      {"http://[2001:db8::1]:81/p", "2001:db8::1", 81, "/p"},
      {"http://[::1]", "::1", 80, ""},
      {"http://1.2.3.4/x@y", "1.2.3.4", 80, "/x@y"},
      {"http://example.com./diag.exe", "example.com", 80, "/diag.exe"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const struct url_case *c = &cases[i];
    struct host h;
    const char *path = NULL;
    size_t path_len = 99;
    int err = url_parse_absolute(c->in, strlen(c->in), &h, &path, &path_len);
    cr_expect_eq(err, 0, "url_parse_absolute(\"%s\") = %s", c->in, err_name(err));
    if (err != 0)
      continue;
    cr_expect_str_eq(h.name, c->name, "\"%s\"", c->in);
    cr_expect_eq(h.port, c->port, "\"%s\": port", c->in);
    cr_expect_eq(path_len, strlen(c->path), "\"%s\": path_len", c->in);
    cr_expect(path >= c->in && path + path_len == c->in + strlen(c->in),
              "\"%s\": path points into the input", c->in);
    cr_expect(memcmp(path, c->path, path_len) == 0, "\"%s\": path", c->in);
  }
}

Test(normalise, rejects_malformed_and_foreign_urls) {
  static const struct err_case cases[] = {
      {"https://example.com/", EMB_ESCHEME},
      {"ftp://example.com/", EMB_ESCHEME},
      {"httpx://example.com/", EMB_ESCHEME},
      {"ws://example.com/", EMB_ESCHEME},
      {"http:example.com", EMB_EBADURL},
      {"http:/example.com", EMB_EBADURL},
      {"http:", EMB_EBADURL},
      {"//example.com/", EMB_EBADURL},
      {"/index.html", EMB_EBADURL},
      {"example.com:80", EMB_ESCHEME},
      {"", EMB_EBADURL},
      {"http:///path", EMB_EBADURL},
      {"http://?q", EMB_EBADURL},
      {"http://example.com/#frag", EMB_EBADURL},
      {"http://example.com#frag", EMB_EBADURL},
      {"http://example.com/a b", EMB_EBADURL},
      {"http://example.com/\t", EMB_EBADURL},
      {"http://example.com/\r\n", EMB_EBADURL},
      {"http://exa\x7fmple.com/", EMB_EBADURL},
      {" http://example.com/", EMB_EBADURL},
      {"http://user@example.com/", EMB_EUSERINFO},
      {"http://user:pass@example.com/", EMB_EUSERINFO},
      {"http://kaspersky.com@evil.com/", EMB_EUSERINFO},
      {"http://evil.com\\@kaspersky.com/", EMB_EUSERINFO},
      {"http://evil.com\\.kaspersky.com/", EMB_EBADHOST},
      {"http://2130706433/", EMB_EBADIP},
      {"http://0x7f.1/", EMB_EBADIP},
      {"http://::1/", EMB_EBADIP},
      {"http://example.com:99999/", EMB_EBADPORT},
      {"http://k\xc3\xa4spersky.com/", EMB_EULABEL},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const struct err_case *c = &cases[i];
    struct host h;
    const char *path;
    size_t path_len;
    int err = url_parse_absolute(c->in, strlen(c->in), &h, &path, &path_len);
    cr_expect_eq(err, c->err, "url_parse_absolute(\"%s\") = %s, want %s", c->in,
                 err_name(err), err_name(c->err));
  }
}

Test(normalise, formats_host_and_port_with_brackets_for_ipv6) {
  struct host h;
  char buf[300];

  cr_assert_eq(authority_parse("Example.com:8080", 16, 80, &h), 0);
  cr_expect_eq(host_format(&h, buf, sizeof(buf)), 16);
  cr_expect_str_eq(buf, "example.com:8080");
  cr_assert_eq(authority_parse("[2001:DB8::1]", 13, 443, &h), 0);
  host_format(&h, buf, sizeof(buf));
  cr_expect_str_eq(buf, "[2001:db8::1]:443");
  cr_assert_eq(authority_parse("[::ffff:1.2.3.4]:80", 19, 443, &h), 0);
  host_format(&h, buf, sizeof(buf));
  cr_expect_str_eq(buf, "1.2.3.4:80");
}

Test(normalise, truncates_formatted_host_like_snprintf) {
  struct host h;
  char buf[8];

  cr_assert_eq(authority_parse("example.com:443", 15, 80, &h), 0);
  cr_expect_eq(host_format(&h, buf, sizeof(buf)), 15);
  cr_expect_str_eq(buf, "example");
  cr_expect_eq(host_format(&h, NULL, 0), 15);
}

/* ---- TLS server names: IDNA ------------------------------------------------ */

Test(normalise_sni, converts_raw_utf8_to_its_a_label) {
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"b\xc3\xbc" "cher.example.org", "xn--bcher-kva.example.org"},
      {"B\xc3\x9c" "CHER.example.org", "xn--bcher-kva.example.org"}, /* UTS #46 maps case */
      {"m\xc3\xbcnchen.de.", "xn--mnchen-3ya.de"},
      {"\xe4\xbe\x8b\xe5\xad\x90.\xe6\xb5\x8b\xe8\xaf\x95", "xn--fsqu00a.xn--0zwm56d"},
      {"fa\xc3\x9f.de", "xn--fa-hia.de"}, /* non-transitional: sharp s kept */
      {"kaspersky\xef\xbc\x8e" "com", "kaspersky.com"}, /* fullwidth full stop maps to '.' */
      {"plain.example", "plain.example"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct host h;
    int err = host_normalise_sni(cases[i].in, strlen(cases[i].in), &h);
    cr_expect_eq(err, 0, "%s: %s", cases[i].want, err_name(err));
    if (err == 0) {
      cr_expect_eq(h.kind, HOST_NAME);
      cr_expect_str_eq(h.name, cases[i].want);
    }
  }
}

Test(normalise_sni, refuses_what_does_not_convert) {
  static const char *const bad[] = {
      "\xff\xfe.example",             /* not UTF-8 */
      "b\xc3\xbc" "cher\xc3",         /* truncated sequence */
      "a\xe2\x80\x8d" "b.example",    /* ZERO WIDTH JOINER outside its context */
      "\xd7\x90" "a.example",         /* bidi: Hebrew letter then Latin in one label */
      "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97.0.0.1", /* fullwidth digits: an address */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct host h;
    cr_expect_eq(host_normalise_sni(bad[i], strlen(bad[i]), &h), EMB_EULABEL, "case %zu", i);
  }
}

Test(normalise_sni, ascii_names_and_literals_are_normalised_as_usual) {
  struct host h;
  cr_assert_eq(host_normalise_sni("192.0.2.1", 9, &h), 0);
  cr_expect_eq(h.kind, HOST_IPV4);
  cr_assert_eq(host_normalise_sni("[2001:DB8::1]", 13, &h), 0);
  cr_expect_eq(h.kind, HOST_IPV6);
  cr_expect_str_eq(h.name, "2001:db8::1");
  cr_expect_eq(host_normalise_sni("127.1", 5, &h), EMB_EBADIP);
  cr_expect_eq(host_normalise_sni("_srv.Example.ORG", 16, &h), 0);
  cr_expect_str_eq(h.name, "_srv.example.org");
}
