/* Unit tests for proxy/destcheck.c: internal destinations, cloud metadata
 * addresses in every family, and translator forms of this host's own
 * addresses. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
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
