/* The PROXY protocol settings: `proxy_protocol: true` on a listener and the
 * `proxy_protocol_from` networks it needs, with the exact errors. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "filters/err.h"
#include "tests/unit/config_fixture.h"

TestSuite(config_proxyproto, .init = setup, .fini = teardown);

static bool from_allows(const char *ip) {
  uint8_t addr[16] = {0};
  int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
  cr_assert_eq(inet_pton(family, ip, addr), 1);
  return netmatch_lookup(cfg.proxy_protocol_from, family, addr, NULL) != NULL;
}

Test(config_proxyproto, a_listener_behind_a_balancer_is_read_with_its_sources) {
  cr_assert_eq(load("listen:\n"
                    "  - {address: \"0.0.0.0:3128\", proxy_protocol: true}\n"
                    "  - {address: \"[::]:3128\", mode: proxy, proxy_protocol: false}\n"
                    "  - 127.0.0.1:3129\n"
                    "proxy_protocol_from: [10.0.0.0/24, \"fd00:1::/64\"]\n"),
               0, "%s", err);
  cr_expect_eq(cfg.nlisten, 3);
  cr_expect(cfg.listen[0].proxy_protocol);
  cr_expect_not(cfg.listen[1].proxy_protocol);
  cr_expect_not(cfg.listen[2].proxy_protocol);
  cr_expect_str_eq(cfg.proxy_protocol_from_text, "10.0.0.0/24, fd00:1::/64");
  cr_expect(from_allows("10.0.0.7"));
  cr_expect(from_allows("fd00:1::7"));
  cr_expect_not(from_allows("10.0.1.7"));
}

Test(config_proxyproto, the_default_has_no_listener_behind_a_balancer) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  for (size_t i = 0; i < cfg.nlisten; i++)
    cr_expect_not(cfg.listen[i].proxy_protocol);
  cr_expect_null(cfg.proxy_protocol_from);
}

Test(config_proxyproto, sources_without_such_a_listener_are_accepted) {
  cr_assert_eq(load("proxy_protocol_from: [10.0.0.0/24]\n"), 0, "%s", err);
  cr_expect(from_allows("10.0.0.1"));
}

Test(config_proxyproto, a_listener_behind_a_balancer_needs_its_sources) {
  static const char want[] =
      "@/main.yaml:2:5: listen[0].proxy_protocol: needs proxy_protocol_from: the networks of the "
      "load balancers that may send the header (a header from any other source is refused)";
  expect_error("listen:\n  - {address: \"0.0.0.0:3128\", proxy_protocol: true}\n", want);
  expect_error("listen:\n  - {address: \"0.0.0.0:3128\", proxy_protocol: true}\n"
               "proxy_protocol_from: []\n",
               want);
}

Test(config_proxyproto, bad_settings_are_refused_with_their_position) {
  expect_error("listen:\n  - {address: \"0.0.0.0:3128\", proxy_protocol: 1}\n"
               "proxy_protocol_from: [10.0.0.0/24]\n",
               "@/main.yaml:2:47: listen[0].proxy_protocol: expected true or false");
  expect_error("proxy_protocol_from: [10.0.0.1/24]\n",
               "@/main.yaml:1:23: proxy_protocol_from[0]: invalid network prefix '10.0.0.1/24' "
               "(expected a CIDR like 10.0.0.0/8)");
  expect_error("proxy_protocol_from: 10.0.0.0/24\n",
               "@/main.yaml:1:22: proxy_protocol_from: expected a list of networks of the load "
               "balancers like 10.0.0.0/24");
}
