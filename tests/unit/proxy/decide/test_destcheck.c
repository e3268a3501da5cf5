/* Unit tests for proxy/destcheck.c: internal destinations, cloud metadata
 * addresses in every family, and translator forms of this host's own
 * addresses. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "filters/netmatch.h"
#include "proxy/decide/destcheck.h"

static struct sockaddr_storage sa(const char *text) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(text, ':') != NULL) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    cr_assert_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1, "%s", text);
  } else {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    in4->sin_family = AF_INET;
    cr_assert_eq(inet_pton(AF_INET, text, &in4->sin_addr), 1, "%s", text);
  }
  return ss;
}

static bool internal(struct destcheck *dc, const char *text) {
  struct sockaddr_storage ss = sa(text);
  return destcheck_is_internal(dc, (const struct sockaddr *)&ss, 1);
}

static struct netmatch *allow_of(const char *const *nets, size_t n) {
  struct netmatch *m = netmatch_new();
  cr_assert_not_null(m);
  for (size_t i = 0; i < n; i++) {
    struct cidr c;
    cr_assert_eq(cidr_parse(nets[i], strlen(nets[i]), &c), 0, "%s", nets[i]);
    cr_assert_eq(netmatch_add(m, &c, (void *)nets[i]), 0);
  }
  return m;
}

/* This host's interface addresses read as none (and not read again within
 * the test), so that every verdict below comes from the tables alone and
 * holds on any machine. */
static void without_host_addresses(struct destcheck *dc) {
  free(dc->ifaddrs);
  dc->ifaddrs = calloc(1, sizeof(*dc->ifaddrs));
  cr_assert_not_null(dc->ifaddrs);
  dc->nifaddrs = 0;
  dc->ifaddrs_at = 1;
}

struct range_case {
  const char *addr;
  bool refused;
  const char *why; /* the range it is in, or the one it lies just outside */
};

/* Every refused range: its first and last address and one inside, and its
 * neighbours just outside (allowed), in each family and in the IPv6 forms
 * that stand for an IPv4 address. Removing any range from destcheck.c turns
 * one of its "refused" rows into a failure. */
static const struct range_case ranges[] = {
    {"0.0.0.0", true, "0.0.0.0/8"},
    {"0.0.0.1", true, "0.0.0.0/8"},
    {"0.1.2.3", true, "0.0.0.0/8"},
    {"0.255.255.255", true, "0.0.0.0/8"},
    {"1.0.0.0", false, "above 0.0.0.0/8"},
    {"126.255.255.255", false, "below 127.0.0.0/8"},
    {"127.0.0.0", true, "127.0.0.0/8"},
    {"127.0.0.1", true, "127.0.0.0/8"},
    {"127.255.255.255", true, "127.0.0.0/8"},
    {"128.0.0.0", false, "above 127.0.0.0/8"},
    {"169.253.255.255", false, "below 169.254.0.0/16"},
    {"169.254.0.0", true, "169.254.0.0/16"},
    {"169.254.1.1", true, "169.254.0.0/16"},
    {"169.254.255.255", true, "169.254.0.0/16"},
    {"169.255.0.0", false, "above 169.254.0.0/16"},
    {"223.255.255.255", false, "below 224.0.0.0/4"},
    {"224.0.0.0", true, "224.0.0.0/4"},
    {"224.0.0.1", true, "224.0.0.0/4"},
    {"239.255.255.255", true, "224.0.0.0/4"},
    {"240.0.0.0", false, "above 224.0.0.0/4"},
    {"255.255.255.254", false, "below 255.255.255.255/32"},
    {"255.255.255.255", true, "255.255.255.255/32"},
    {"::", true, "::/96"},
    {"::1", true, "::/96"},
    {"::2", true, "::/96"},
    {"::ffff:ffff", true, "::/96 (last)"},
    {"::1:0:0", false, "above ::/96"},
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "below fe80::/10"},
    {"fe80::", true, "fe80::/10"},
    {"fe80::1", true, "fe80::/10"},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "fe80::/10"},
    {"fec0::", false, "above fe80::/10"},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "below ff00::/8"},
    {"ff00::", true, "ff00::/8"},
    {"ff02::1", true, "ff00::/8"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "ff00::/8"},
    /* IPv4-mapped: judged as the IPv4 address */
    {"::ffff:0.1.2.3", true, "mapped 0.0.0.0/8"},
    {"::ffff:127.0.0.1", true, "mapped 127.0.0.0/8"},
    {"::ffff:169.254.1.1", true, "mapped 169.254.0.0/16"},
    {"::ffff:224.0.0.1", true, "mapped 224.0.0.0/4"},
    {"::ffff:255.255.255.255", true, "mapped 255.255.255.255/32"},
    {"::ffff:10.0.0.1", false, "mapped, outside every range"},
    /* NAT64 64:ff9b::/96 */
    {"64:ff9b::1:203", true, "NAT64 of 0.1.2.3"},
    {"64:ff9b::7f00:1", true, "NAT64 of 127.0.0.1"},
    {"64:ff9b::a9fe:101", true, "NAT64 of 169.254.1.1"},
    {"64:ff9b::e000:1", true, "NAT64 of 224.0.0.1"},
    {"64:ff9b::ffff:ffff", true, "NAT64 of 255.255.255.255"},
    {"64:ff9b::100:0", false, "NAT64 of 1.0.0.0"},
    {"64:ff9b::a00:1", false, "NAT64 of 10.0.0.1"},
    /* local-use NAT64 64:ff9b:1::/48 (octet 8 is the reserved u octet) */
    {"64:ff9b:1:7f00:0:100::", true, "local NAT64 of 127.0.0.1"},
    {"64:ff9b:1:a9fe:1:100::", true, "local NAT64 of 169.254.1.1"},
    {"64:ff9b:1:e000:0:100::", true, "local NAT64 of 224.0.0.1"},
    {"64:ff9b:1:a00:0:100::", false, "local NAT64 of 10.0.0.1"},
    /* 6to4 2002::/16 */
    {"2002:1:203::", true, "6to4 of 0.1.2.3"},
    {"2002:7f00:1::1", true, "6to4 of 127.0.0.1"},
    {"2002:a9fe:101::1", true, "6to4 of 169.254.1.1"},
    {"2002:e000:1::1", true, "6to4 of 224.0.0.1"},
    {"2002:ffff:ffff::1", true, "6to4 of 255.255.255.255"},
    {"2002:a00:1::1", false, "6to4 of 10.0.0.1"},
    /* SIIT ::ffff:0:a.b.c.d */
    {"::ffff:0:1:203", true, "SIIT of 0.1.2.3"},
    {"::ffff:0:7f00:1", true, "SIIT of 127.0.0.1"},
    {"::ffff:0:e000:1", true, "SIIT of 224.0.0.1"},
    {"::ffff:0:a00:1", false, "SIIT of 10.0.0.1"},
    /* an ordinary global address of each family */
    {"192.0.2.1", false, "TEST-NET-1"},
    {"2001:db8::1", false, "documentation"},
};

Test(destcheck, every_refused_range_from_first_to_last_address_and_not_beyond) {
  struct destcheck dc;
  cr_assert_eq(destcheck_init(&dc, NULL), 0);
  without_host_addresses(&dc);
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
    cr_expect_eq(internal(&dc, ranges[i].addr), ranges[i].refused, "%s (%s): %s", ranges[i].addr,
                 ranges[i].why, ranges[i].refused ? "allowed" : "refused");
  destcheck_free(&dc);
}

/* Each metadata address is refused on its own entry: with internal.allow
 * opening every range around them, they stay refused, their neighbours do
 * not. */
Test(destcheck, every_metadata_address_is_refused_by_its_own_entry) {
  static const char *const around[] = {"169.254.0.0/16", "100.64.0.0/10", "168.63.129.0/24",
                                       "192.0.0.0/24",   "fd00::/8",      "64:ff9b::/96"};
  static const struct range_case meta[] = {
      {"169.254.169.254", true, "IMDS"},
      {"169.254.169.255", false, "next to IMDS"},
      {"169.254.170.2", true, "ECS"},
      {"169.254.170.3", false, "next to ECS"},
      {"169.254.169.253", true, "VPC DNS"},
      {"169.254.169.252", false, "next to VPC DNS"},
      {"169.254.0.23", true, "Tencent"},
      {"169.254.0.24", false, "next to Tencent"},
      {"100.100.100.200", true, "Alibaba"},
      {"100.100.100.201", false, "next to Alibaba"},
      {"168.63.129.16", true, "WireServer"},
      {"168.63.129.17", false, "next to WireServer"},
      {"192.0.0.192", true, "Oracle Classic"},
      {"192.0.0.193", false, "next to Oracle"},
      {"fd00:ec2::254", true, "IMDS v6"},
      {"fd00:ec2::255", false, "next to IMDS v6"},
      {"fd00:ec2::253", true, "VPC DNS v6"},
      {"fd00:ec2::252", false, "next to VPC DNS v6"},
      {"fd00:ec2::23", true, "Pod Identity v6"},
      {"fd00:ec2::24", false, "next to it"},
      {"169.254.170.23", true, "Pod Identity"},
      {"169.254.170.24", false, "next to it"},
      {"64:ff9b::a9fe:a9fe", true, "NAT64 of IMDS"},
  };
  struct netmatch *allow = allow_of(around, sizeof around / sizeof around[0]);
  struct destcheck dc;
  cr_assert_eq(destcheck_init(&dc, allow), 0);
  without_host_addresses(&dc);
  for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++)
    cr_expect_eq(internal(&dc, meta[i].addr), meta[i].refused, "%s (%s): %s", meta[i].addr,
                 meta[i].why, meta[i].refused ? "allowed" : "refused");
  destcheck_free(&dc);
  netmatch_free(allow);
}

Test(destcheck, metadata_addresses_are_internal_in_every_family) {
  static const char *const meta[] = {
      "169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16",
      "fd00:ec2::254",   "fd00:ec2::23",  "192.0.0.192",
      "64:ff9b::6464:64c8",      /* NAT64 of 100.100.100.200 */
      "2002:a83f:8110::1",       /* 6to4 of 168.63.129.16 */
      "::ffff:0:6464:64c8",      /* SIIT of 100.100.100.200 */
      "::ffff:100.100.100.200",  /* v4-mapped */
  };
  struct destcheck dc;
  cr_assert_eq(destcheck_init(&dc, NULL), 0);
  for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++)
    cr_expect(internal(&dc, meta[i]), "%s is not refused", meta[i]);
  /* Their neighbours outside the internal ranges are not. */
  cr_expect(!internal(&dc, "100.100.100.201"));
  cr_expect(!internal(&dc, "fd00:ec2::255"));
  cr_expect(!internal(&dc, "168.63.129.17"));
  destcheck_free(&dc);
}

Test(destcheck, only_an_exact_allow_entry_opens_a_metadata_address) {
  static const char *const broad[] = {"100.64.0.0/10", "169.254.0.0/16", "fd00::/8",
                                      "64:ff9b::/96"};
  static const char *const exact[] = {"100.100.100.200/32", "fd00:ec2::254/128"};
  struct netmatch *b = allow_of(broad, 4), *e = allow_of(exact, 2);
  struct destcheck dc;
  cr_assert_eq(destcheck_init(&dc, b), 0);
  cr_expect(internal(&dc, "100.100.100.200"));
  cr_expect(internal(&dc, "169.254.169.254"));
  cr_expect(internal(&dc, "fd00:ec2::254"));
  cr_expect(internal(&dc, "64:ff9b::a9fe:a9fe"), "NAT64 of 169.254.169.254");
  cr_expect(!internal(&dc, "169.254.1.1"), "the range opens what is not metadata");
  destcheck_free(&dc);
  cr_assert_eq(destcheck_init(&dc, e), 0);
  cr_expect(!internal(&dc, "100.100.100.200"));
  cr_expect(!internal(&dc, "fd00:ec2::254"));
  cr_expect(internal(&dc, "169.254.169.254"));
  cr_expect(internal(&dc, "64:ff9b::6464:64c8"), "the exact entry names the IPv4 form only");
  destcheck_free(&dc);
  netmatch_free(b);
  netmatch_free(e);
}

Test(destcheck, translator_forms_of_own_addresses_are_internal) {
  uv_interface_address_t *ifs;
  int n, i;
  bool found = false;
  struct destcheck dc;
  cr_assert_eq(destcheck_init(&dc, NULL), 0);
  cr_assert_eq(uv_interface_addresses(&ifs, &n), 0);
  for (i = 0; i < n && !found; i++) {
    const struct sockaddr_in *in4 = &ifs[i].address.address4;
    const uint8_t *b = (const uint8_t *)&in4->sin_addr;
    char forms[4][64];
    if (in4->sin_family != AF_INET || b[0] == 127)
      continue;
    found = true;
    snprintf(forms[0], 64, "64:ff9b::%02x%02x:%02x%02x", b[0], b[1], b[2], b[3]);
    snprintf(forms[1], 64, "64:ff9b:1:%02x%02x:%02x:%02x00::", b[0], b[1], b[2], b[3]);
    snprintf(forms[2], 64, "2002:%02x%02x:%02x%02x::1", b[0], b[1], b[2], b[3]);
    snprintf(forms[3], 64, "::ffff:0:%02x%02x:%02x%02x", b[0], b[1], b[2], b[3]);
    for (int k = 0; k < 4; k++)
      cr_expect(internal(&dc, forms[k]), "%s (this host's address) is not refused", forms[k]);
  }
  uv_free_interface_addresses(ifs, n);
  destcheck_free(&dc);
  if (!found)
    cr_skip_test("this host has no IPv4 address outside 127.0.0.0/8");
}
