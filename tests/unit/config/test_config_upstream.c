/* The `upstream_proxy` settings: the parent's address, the destinations
 * that go direct (host patterns, networks, addresses), the
 * Proxy-Authorization file, and the exact errors. */
#include "config_fixture.h"

TestSuite(config_upstream, .init = setup, .fini = teardown);

/* Whether DEST (a name or an IP literal) goes direct. */
static bool direct(const char *dest) {
  struct host h;
  cr_assert_eq(host_normalise(dest, strlen(dest), &h), 0);
  return config_upstream_direct(&cfg.upstream_proxy, &h, NULL);
}

/* Whether an intercepted connection to IP with no name goes direct. */
static bool direct_orig(const char *ip) {
  struct sockaddr_storage ss;
  cr_assert_eq(config_parse_sockaddr(ip, &ss), 0);
  return config_upstream_direct(&cfg.upstream_proxy, NULL, (const struct sockaddr *)&ss);
}

Test(config_upstream, off_by_default) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_expect_not(cfg.upstream_proxy.enabled);
}

Test(config_upstream, a_parent_with_its_exceptions) {
  cr_assert_eq(load("upstream_proxy:\n"
                    "  address: Proxy.Example.Internal:3128\n"
                    "  except: [.corp.example, \"*.lab.example\", 10.0.0.0/8, 192.0.2.7, "
                    "\"fd00::/8\"]\n"),
               0, "%s", err);
  const struct config_upstream_proxy *u = &cfg.upstream_proxy;
  cr_expect(u->enabled);
  cr_expect_eq(u->host.kind, HOST_NAME);
  cr_expect_str_eq(u->address, "proxy.example.internal:3128");
  cr_expect_str_eq(u->except_text, ".corp.example, *.lab.example, 10.0.0.0/8, 192.0.2.7, fd00::/8");
  cr_expect(direct("corp.example"));
  cr_expect(direct("www.corp.example"));
  cr_expect(direct("a.lab.example"));
  cr_expect_not(direct("lab.example"));
  cr_expect_not(direct("example.com"));
  cr_expect(direct("10.1.2.3"));
  cr_expect(direct("192.0.2.7"));
  cr_expect_not(direct("192.0.2.8"));
  cr_expect(direct("fd00::1"));
  cr_expect(direct_orig("10.9.9.9:443"));
  cr_expect(direct_orig("[::ffff:10.9.9.9]:443"));
  cr_expect_not(direct_orig("198.51.100.1:443"));
  cr_expect_str_eq(u->authorization, "");
}

Test(config_upstream, an_ipv6_parent) {
  cr_assert_eq(load("upstream_proxy: {address: \"[fd00::8]:3128\"}\n"), 0, "%s", err);
  cr_expect_eq(cfg.upstream_proxy.host.kind, HOST_IPV6);
  cr_expect_str_eq(cfg.upstream_proxy.address, "[fd00::8]:3128");
}

Test(config_upstream, the_authorization_comes_from_its_file) {
  put("parent.auth", "Basic dXNlcjpwYXNz  \n");
  cr_assert_eq(load("upstream_proxy:\n  address: 10.0.0.8:3128\n"
                    "  proxy_authorization_file: parent.auth\n"),
               0, "%s", err);
  cr_expect_str_eq(cfg.upstream_proxy.authorization, "Basic dXNlcjpwYXNz");
  cr_expect_not_null(strstr(cfg.upstream_proxy.authorization_file, "/parent.auth"));
}

Test(config_upstream, bad_settings_are_refused_with_their_position) {
  expect_error("upstream_proxy:\n  except: [a.example]\n",
               "@/main.yaml:2:3: upstream_proxy.address: missing; expected \"host:port\" like "
               "proxy.example.internal:3128 or 10.0.0.8:3128");
  expect_error("upstream_proxy: {address: proxy.example}\n",
               "@/main.yaml:1:27: upstream_proxy.address: expected \"host:port\" like "
               "proxy.example.internal:3128 or 10.0.0.8:3128, got 'proxy.example'");
  expect_error("upstream_proxy: {address: \"http://p:3128\"}\n",
               "@/main.yaml:1:27: upstream_proxy.address: expected \"host:port\" like "
               "proxy.example.internal:3128 or 10.0.0.8:3128, got 'http://p:3128'");
  expect_error("upstream_proxy: {address: \"p:3128\", except: [10.0.0.1/8]}\n",
               "@/main.yaml:1:46: upstream_proxy.except[0]: invalid network '10.0.0.1/8' "
               "(expected a CIDR like 10.0.0.0/8)");
  expect_error("upstream_proxy: {address: \"p:3128\", except: [\"a..b\"]}\n",
               "@/main.yaml:1:46: upstream_proxy.except[0]: invalid host pattern 'a..b': "
               "empty label");
  put("empty.auth", "\n");
  expect_error("upstream_proxy: {address: \"p:3128\", proxy_authorization_file: empty.auth}\n",
               "@/main.yaml:1:63: upstream_proxy.proxy_authorization_file: 'empty.auth' must "
               "hold one line of 1 to 1023 printable characters, the whole Proxy-Authorization "
               "value (like Basic dXNlcjpwYXNz)");
  expect_error("upstream_proxy: {address: \"p:3128\", proxy_authorization_file: none.auth}\n",
               "@/main.yaml:1:63: upstream_proxy.proxy_authorization_file: cannot read "
               "'@/none.auth': No such file or directory");
}
