/* Unit tests for filters/netmatch.c: CIDR text and longest-prefix lookup. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/err.h"
#include "filters/netmatch.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct parse_case {
  const char *in;
  int family;
  unsigned bits;
  const char *formatted;
};

Test(netmatch, parses_and_formats_canonical_prefixes) {
  static const struct parse_case cases[] = {
      {"10.0.0.0/8", AF_INET, 8, "10.0.0.0/8"},
      {"0.0.0.0/0", AF_INET, 0, "0.0.0.0/0"},
      {"192.168.1.7/32", AF_INET, 32, "192.168.1.7/32"},
      {"192.168.1.7", AF_INET, 32, "192.168.1.7/32"},
      {"77.74.176.0/22", AF_INET, 22, "77.74.176.0/22"},
      {"::/0", AF_INET6, 0, "::/0"},
      {"2001:DB8::/32", AF_INET6, 32, "2001:db8::/32"},
      {"2001:db8:0:0:0:0:0:1", AF_INET6, 128, "2001:db8::1/128"},
      {"2a03:2480:8000::/36", AF_INET6, 36, "2a03:2480:8000::/36"},
      {"::1/128", AF_INET6, 128, "::1/128"},
      {"::ffff:0:0/96", AF_INET6, 96, "::ffff:0.0.0.0/96"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const struct parse_case *c = &cases[i];
    struct cidr out;
    char buf[64];
    int err = cidr_parse(c->in, strlen(c->in), &out);
    cr_expect_eq(err, 0, "cidr_parse(\"%s\") = %s", c->in, err_name(err));
    if (err != 0)
      continue;
    cr_expect_eq(out.family, c->family, "\"%s\": family", c->in);
    cr_expect_eq(out.bits, c->bits, "\"%s\": bits %u", c->in, out.bits);
    cr_expect_eq(cidr_format(&out, buf, sizeof(buf)), (int)strlen(c->formatted));
    cr_expect_str_eq(buf, c->formatted, "\"%s\"", c->in);
  }
}

Test(netmatch, rejects_malformed_and_non_canonical_prefixes) {
  static const char *const bad[] = {
      "",             "/8",           "10.0.0.0/",     "10.0.0.0/33",  "10.0.0.0/-1",
      "10.0.0.0/+8",  "10.0.0.0/08",  "10.0.0.0/8/8",  "10.0.0.0/8 ",  " 10.0.0.0/8",
      "10.0.0.1/8",   "10.1.0.0/8",   "10/8",          "10.0/16",      "010.0.0.0/8",
      "0x0a.0.0.0/8", "167772160/8",  "10.0.0.0./8",   "10.0.0.0.0/8", "256.0.0.0/8",
      "example.com/8", "::/129",      "::1/0",         "2001:db8::1/64", "2001:db8::/1000",
      "fe80::1%eth0/128", "[::1]/128", "1:2:3:4:5:6:7:8:9/128", "::g/16", "10.0.0.0/8x",
      "2001:db8::/032",
  };
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    struct cidr out;
    cr_expect_eq(cidr_parse(bad[i], strlen(bad[i]), &out), EMB_EBADCIDR, "\"%s\" accepted",
                 bad[i]);
  }
}

static struct netmatch *m;

static void setup(void) { cr_assert_not_null(m = netmatch_new()); }
static void teardown(void) { netmatch_free(m); }

/* Adds each prefix with its own text as DATA. */
static void add_all(const char *const *prefixes, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct cidr c;
    cr_assert_eq(cidr_parse(prefixes[i], strlen(prefixes[i]), &c), 0, "%s", prefixes[i]);
    cr_assert_eq(netmatch_add(m, &c, (void *)prefixes[i]), 0, "%s", prefixes[i]);
  }
}

struct lookup_case {
  const char *addr;
  const char *want;
  unsigned bits;
};

static void expect_lookups(const struct lookup_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct lookup_case *c = &cases[i];
    uint8_t addr[16];
    int family = strchr(c->addr, ':') ? AF_INET6 : AF_INET;
    unsigned bits = 999;
    cr_assert_eq(inet_pton(family, c->addr, addr), 1, "%s", c->addr);
    const char *got = netmatch_lookup(m, family, addr, &bits);
    if (!c->want) {
      cr_expect_null(got, "%s matched %s", c->addr, got);
      cr_expect_eq(bits, 0, "%s: bits on no match", c->addr);
      continue;
    }
    cr_expect(got && strcmp(got, c->want) == 0, "%s matched %s, want %s", c->addr,
              got ? got : "(none)", c->want);
    cr_expect_eq(bits, c->bits, "%s: bits %u, want %u", c->addr, bits, c->bits);
  }
}

TestSuite(netmatch_lookup, .init = setup, .fini = teardown);

Test(netmatch_lookup, longest_overlapping_prefix_wins) {
  static const char *const prefixes[] = {
      "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.128/25",
  };
  static const struct lookup_case cases[] = {
      {"10.200.0.1", "10.0.0.0/8", 8},     {"10.1.9.9", "10.1.0.0/16", 16},
      {"10.1.2.4", "10.1.2.0/24", 24},     {"10.1.2.3", "10.1.2.3/32", 32},
      {"10.1.2.200", "10.1.2.128/25", 25}, {"11.0.0.0", NULL, 0},
      {"9.255.255.255", NULL, 0},
  };
  add_all(prefixes, ARRAY_LEN(prefixes));
  expect_lookups(cases, ARRAY_LEN(cases));
  cr_expect_eq(netmatch_count(m), ARRAY_LEN(prefixes));
}

Test(netmatch_lookup, slash_zero_matches_every_address_of_its_family_only) {
  static const char *const prefixes[] = {"0.0.0.0/0", "192.0.2.0/24"};
  static const struct lookup_case cases[] = {
      {"0.0.0.0", "0.0.0.0/0", 0},         {"255.255.255.255", "0.0.0.0/0", 0},
      {"192.0.2.9", "192.0.2.0/24", 24},   {"::1", NULL, 0},
      {"2001:db8::1", NULL, 0},
  };
  add_all(prefixes, ARRAY_LEN(prefixes));
  expect_lookups(cases, ARRAY_LEN(cases));
}

Test(netmatch_lookup, ipv6_host_routes_and_default_route) {
  static const char *const prefixes[] = {
      "::/0", "2001:db8::/32", "2001:db8::1/128", "2001:db8:ffff::/48", "::1/128",
  };
  static const struct lookup_case cases[] = {
      {"2001:db8::1", "2001:db8::1/128", 128},
      {"2001:db8::2", "2001:db8::/32", 32},
      {"2001:db8:ffff:1::1", "2001:db8:ffff::/48", 48},
      {"::1", "::1/128", 128},
      {"::2", "::/0", 0},
      {"fe80::1", "::/0", 0},
  };
  add_all(prefixes, ARRAY_LEN(prefixes));
  expect_lookups(cases, ARRAY_LEN(cases));
  uint8_t v4[4] = {10, 0, 0, 1};
  cr_expect_null(netmatch_lookup(m, AF_INET, v4, NULL), "IPv6 /0 must not match IPv4");
}

Test(netmatch_lookup, rejects_duplicate_prefix_and_keeps_the_first) {
  struct cidr c;
  static const char *const first = "first", *const second = "second";

  cr_assert_eq(cidr_parse("10.0.0.0/8", 10, &c), 0);
  cr_expect_eq(netmatch_add(m, &c, (void *)first), 0);
  cr_expect_eq(netmatch_add(m, &c, (void *)second), EMB_EDUPLICATE);
  cr_assert_eq(cidr_parse("0.0.0.0/0", 9, &c), 0);
  cr_expect_eq(netmatch_add(m, &c, (void *)first), 0);
  cr_expect_eq(netmatch_add(m, &c, (void *)second), EMB_EDUPLICATE);
  cr_expect_eq(netmatch_count(m), 2);
  uint8_t addr[4] = {10, 1, 1, 1};
  cr_expect_eq(netmatch_lookup(m, AF_INET, addr, NULL), first);
}

Test(netmatch_lookup, rejects_invalid_family_and_prefix_length) {
  struct cidr c = {.family = AF_UNIX, .bits = 8};
  uint8_t addr[16] = {0};

  cr_expect_eq(netmatch_add(m, &c, NULL), EMB_EBADCIDR);
  c.family = AF_INET;
  c.bits = 33;
  cr_expect_eq(netmatch_add(m, &c, NULL), EMB_EBADCIDR);
  cr_expect_null(netmatch_lookup(m, AF_UNIX, addr, NULL));
  cr_expect_eq(netmatch_count(m), 0);
}

Test(netmatch_lookup, empty_matcher_matches_nothing) {
  uint8_t addr[16] = {0};
  cr_expect_null(netmatch_lookup(m, AF_INET, addr, NULL));
  cr_expect_null(netmatch_lookup(m, AF_INET6, addr, NULL));
}

Test(netmatch, free_accepts_null) { netmatch_free(NULL); }
