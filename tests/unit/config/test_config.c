/* Config loader: the built-in default, overrides from a file, vendor lists,
 * and the exact text of every error. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/embedded.h"
#include "filters/dommatch.h"
#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/timefmt.h"
#include "tests/unit/config_fixture.h"

TestSuite(config, .init = setup, .fini = teardown);

/* ---- the built-in default -------------------------------------------- */

Test(config, builtin_default_loads_the_documented_settings) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(cfg.source, "(built-in)");
  cr_assert_eq(cfg.nlisten, 1);
  cr_expect_str_eq(cfg.listen[0].text, "0.0.0.0:3128");
  cr_expect_eq(cfg.listen[0].addr.ss_family, AF_INET);
  cr_expect_str_eq(cfg.resolvers, "");
  cr_expect_eq(cfg.timeouts.request_head, 10000);
  cr_expect_eq(cfg.timeouts.resolve, 5000);
  cr_expect_eq(cfg.timeouts.connect, 10000);
  cr_expect_eq(cfg.timeouts.tunnel_idle, 300000);
  cr_expect_eq(cfg.timeouts.upstream_idle, 30000);
  cr_expect_eq(cfg.limits.max_head, 65536);
  cr_expect_eq(cfg.limits.buffer_high, 262144);
  cr_expect_eq(cfg.limits.pool_total, 256);
  cr_assert_eq(cfg.nconnect_ports, 1);
  cr_expect_eq(cfg.connect_ports[0], 443);
  cr_expect_str_eq(cfg.log_path, "-");
  cr_expect_not(cfg.access_log);
  cr_expect_not(cfg.monitor);
  cr_expect_not(policy_monitor(cfg.policy));
  cr_expect_eq(policy_exception_count(cfg.policy), 0);
  cr_assert_eq(cfg.tls.nports, 1);
  cr_expect_eq(cfg.tls.ports[0], 443);
  cr_expect_eq(cfg.tls.max_hello, 16384);
  cr_expect_eq(cfg.tls.timeout, 10000);
  cr_expect_eq(cfg.tls.on_no_sni, ACTION_LOG);
  cr_expect_eq(cfg.tls.on_ech, ACTION_LOG);
  cr_expect_eq(cfg.tls.on_not_tls, ACTION_DENY);
  cr_expect_eq(cfg.tls.on_malformed, ACTION_DENY);
  cr_expect_eq(cfg.tls.on_too_large, ACTION_DENY);
  cr_expect_eq(cfg.tls.on_timeout, ACTION_DENY);
  cr_expect_eq(cfg.dns.min_ttl, 5000);
  cr_expect_eq(cfg.dns.max_ttl, 3600000);
  cr_expect_eq(cfg.dns.negative_ttl, 30000);
  cr_expect_eq(cfg.dns.cache_entries, 10000);
  cr_expect_eq(cfg.dns.cache_memory, 16777216);
  cr_assert_not_null(cfg.internal_allow, "an empty matcher, so lookups need no NULL check");
  cr_expect_eq(netmatch_count(cfg.internal_allow), 0);
  cr_expect_str_eq(cfg.internal_allow_text, "");
}

Test(config, memory_bound_is_the_documented_figure) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  /* 2 x (256 KiB + 64 KiB) + 64 KiB head per connection, 4096 of them, and 16 MiB of DNS cache. */
  cr_expect_eq(config_connection_memory(&cfg), 2 * (262144 + 65536) + 65536);
  cr_expect_eq(config_memory_bound(&cfg), 4096ull * (2 * (262144 + 65536) + 65536) + 16777216);
  cfg.limits.max_connections = 100;
  cfg.limits.buffer_high = 65536;
  cfg.tls.max_hello = 65536;
  cfg.limits.max_head = 8192;
  cr_expect_eq(config_memory_bound(&cfg), 100ull * (2 * (65536 + 65536) + 65536) + 16777216);
}

Test(config, builtin_clients_are_private_networks_only) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_expect_eq(netmatch_count(cfg.clients), 6);
  cr_expect_not_null(client("127.0.0.1"));
  cr_expect_not_null(client("10.20.30.40"));
  cr_expect_not_null(client("172.31.255.255"));
  cr_expect_not_null(client("192.168.1.1"));
  cr_expect_not_null(client("::1"));
  cr_expect_not_null(client("fd00::5"));
  cr_expect_null(client("8.8.8.8"));
  cr_expect_null(client("172.32.0.1"));
  cr_expect_null(client("2001:db8::1"));
  cr_expect_str_eq(client("10.1.1.1"), "10.0.0.0/8");
}

Test(config, builtin_kaspersky_list_has_the_determination_cutoffs) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(policy_vendor_count(cfg.policy), 1);
  const struct vendor *v = policy_find_vendor(cfg.policy, "kaspersky");
  cr_assert_not_null(v);
  cr_expect_str_eq(v->name, "Kaspersky Lab");
  cr_expect_not_null(strstr(v->reference, "89 FR 52434"));
  cr_expect_str_eq(v->where.file, "builtin:config/vendors/kaspersky.yaml");
  cr_expect_eq(v->ncategories, 4);
  expect_cutoff(policy_find_category(v, "new-installs"), "2024-07-20T04:00:00Z");
  expect_cutoff(policy_find_category(v, "updates"), "2024-09-29T04:00:00Z");
  expect_cutoff(policy_find_category(v, "telemetry"), "2024-09-29T04:00:00Z");
  cr_expect_eq(policy_find_category(v, "updates")->cutoff, UPDATES_CUTOFF);
  cr_expect_eq(policy_find_category(v, "new-installs")->cutoff, NEW_INSTALLS_CUTOFF);
  cr_expect_gt(policy_host_count(cfg.policy), 20);
}

/* One name per sourced family: each is logged before its category's cutoff
 * and denied from it. */
static const struct {
  const char *host;
  const char *category;
} kaspersky_hosts[] = {
  {"activation-v2.kaspersky.com", "new-installs"},
  {"activate.activation-v2.kaspersky.com", "new-installs"},
  {"refresh-bkg.activation-v2.kaspersky.com", "new-installs"},
  {"activation-v2.geo.kaspersky.com", "new-installs"},
  {"products.s.kaspersky-labs.com", "new-installs"},
  {"aes.s.kaspersky-labs.com", "new-installs"},
  {"aes.kaspersky-labs.com", "new-installs"},
  {"rescuedisk.kaspersky-labs.com", "new-installs"},
  {"crl.kaspersky.com", "new-installs"},
  {"s00.upd.kaspersky.com", "updates"},
  {"s07.upd.kaspersky.com", "updates"},
  {"s19.upd.kaspersky.com", "updates"},
  {"p11.upd.kaspersky.com", "updates"},
  {"downloads.upd.kaspersky.com", "updates"},
  {"cm.k.kaspersky-labs.com", "updates"},
  {"dnl-01.geo.kaspersky.com", "updates"},
  {"dnl-19.geo.kaspersky.com", "updates"},
  {"ds.kaspersky.com", "updates"},
  {"downloads.kaspersky-labs.com", "updates"},
  {"downloads2.kaspersky-labs.com", "updates"},
  {"edge.geo.kaspersky.com", "updates"},
  {"dnl-test.kaspersky-labs.com", "updates"},
  {"ksn-file-geo.kaspersky-labs.com", "telemetry"},
  {"ksn-crypto-wifiplus-geo.kaspersky-labs.com", "telemetry"},
  {"ksn-dc1-cert.geoksn.kaspersky.com", "telemetry"},
  {"ksn-verdict.geoksn.kaspersky.com", "telemetry"},
  {"dc1.ksn.kaspersky-labs.com", "telemetry"},
  {"dc1-st.ksn.kaspersky-labs.com", "telemetry"},
  {"mdr.ksn.kaspersky-labs.com", "telemetry"},
};

Test(config, builtin_list_logs_before_and_denies_after_each_cutoff) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  for (size_t i = 0; i < sizeof(kaspersky_hosts) / sizeof(kaspersky_hosts[0]); i++) {
    const char *host = kaspersky_hosts[i].host;
    struct verdict v = decide(host, 0);
    cr_assert_not_null(v.rule, "%s has no rule", host);
    cr_expect_str_eq(v.rule->category->name, kaspersky_hosts[i].category, "%s", host);
    int64_t cutoff = v.rule->category->cutoff;
    expect_action(host, cutoff - 1, ACTION_LOG);
    expect_action(host, cutoff, ACTION_DENY);
  }
}

Test(config, builtin_list_leaves_the_vendor_web_and_threat_intel_alone) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  static const char *const allowed[] = {
    "kaspersky.com", "www.kaspersky.com", "opentip.kaspersky.com", "usa.kaspersky.com",
    "support.kaspersky.com", "kaspersky-labs.com", "touch.kaspersky.com",
    "s20.upd.kaspersky.com", "dnl-20.geo.kaspersky.com", "telemetry.kaspersky.com",
    "kasperskyupdate.com", "82.202.186.1", "82.202.190.1",
  };
  for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
    struct verdict v = decide(allowed[i], UPDATES_CUTOFF + 86400);
    cr_expect_eq(v.action, ACTION_ALLOW, "%s", allowed[i]);
    cr_expect_eq(v.reason, VERDICT_NO_MATCH, "%s", allowed[i]);
  }
}

Test(config, summary_names_the_resolver_cutoffs_and_counts) {
  char *text = NULL;
  size_t len = 0;
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  FILE *f = open_memstream(&text, &len);
  cr_assert_not_null(f);
  config_print_summary(&cfg, f);
  fclose(f);
  static const char *const parts[] = {
    "Configuration:  (built-in)\n", "Listeners:      0.0.0.0:3128\n",
    "Resolvers:      system (/etc/resolv.conf)\n", "CONNECT ports:  443\n",
    "connect 10s", "tunnel_idle 5m", "buffer 262144", "Monitor:        off",
    "kaspersky (Kaspersky Lab), from builtin:config/vendors/kaspersky.yaml",
    "new-installs   cutoff 2024-07-20T04:00:00Z  before: log, after: deny, 9 host patterns",
    "updates        cutoff 2024-09-29T04:00:00Z  before: log, after: deny, 10 host patterns",
    "telemetry      cutoff 2024-09-29T04:00:00Z",
    "address-space  cutoff 2024-09-29T04:00:00Z  before: log, after: deny, 0 host patterns, "
    "17 networks\n",
    "TLS inspection: ports 443; hello up to 16384 bytes within 10s\n",
    "  when:         no SNI log, ECH log, not TLS deny, malformed deny, too large deny, "
    "timeout deny\n",
    "DNS cache:      10000 entries, 16777216 bytes, TTL 5s..1h, negative 30s\n",
    "Internal allow: none (internal destinations are refused)\n", "Exceptions:     0\n",
  };
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
    cr_expect_not_null(strstr(text, parts[i]), "missing \"%s\" in:\n%s", parts[i], text);
  free(text);
}

/* ---- overriding from a file ------------------------------------------ */

Test(config, file_overrides_only_the_keys_it_sets) {
  cr_assert_eq(load("monitor: true\ntimeouts:\n  connect: 3s\n"), 0, "%s", err);
  cr_expect_eq(cfg.timeouts.connect, 3000);
  cr_expect_eq(cfg.timeouts.resolve, 5000);
  cr_expect(cfg.monitor);
  cr_expect(policy_monitor(cfg.policy));
  cr_expect_str_eq(cfg.listen[0].text, "0.0.0.0:3128");
  cr_expect_not_null(policy_find_vendor(cfg.policy, "kaspersky"));
  cr_expect_str_eq(cfg.source, files[0]);
  /* monitor mode: logged, not denied */
  struct verdict v = decide("s07.upd.kaspersky.com", UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect(v.monitor);
}

Test(config, empty_file_keeps_every_default) {
  cr_assert_eq(load("# nothing here\n"), 0, "%s", err);
  cr_expect_eq(cfg.timeouts.connect, 10000);
  cr_expect_eq(policy_vendor_count(cfg.policy), 1);
}

Test(config, network_lists_replace_the_defaults) {
  cr_assert_eq(load("listen: [\"127.0.0.1:8080\", \"[::1]:8081\"]\n"
                    "resolvers: [\"127.0.0.1:5353\", \"[::1]:53\"]\n"
                    "clients: [192.0.2.0/24]\n"
                    "connect_ports: [443, 8443]\n"
                    "limits: {buffer: 65536, pool_per_host: 0}\n"
                    "log: /var/log/embargo.log\naccess_log: true\n"),
               0, "%s", err);
  cr_assert_eq(cfg.nlisten, 2);
  cr_expect_eq(cfg.listen[1].addr.ss_family, AF_INET6);
  cr_expect_eq(ntohs(((struct sockaddr_in6 *)&cfg.listen[1].addr)->sin6_port), 8081);
  cr_expect_str_eq(cfg.resolvers, "127.0.0.1:5353,[::1]:53");
  cr_expect_null(client("10.0.0.1"));
  cr_expect_not_null(client("192.0.2.9"));
  cr_expect_str_eq(cfg.clients_text, "192.0.2.0/24");
  cr_assert_eq(cfg.nconnect_ports, 2);
  cr_expect_eq(cfg.connect_ports[1], 8443);
  cr_expect_eq(cfg.limits.buffer_high, 65536);
  cr_expect_eq(cfg.limits.pool_per_host, 0);
  cr_expect_eq(cfg.limits.max_head, 65536);
  cr_expect_str_eq(cfg.log_path, "/var/log/embargo.log");
  cr_expect(cfg.access_log);
}

Test(config, tls_dns_and_internal_keys_override_only_what_they_set) {
  cr_assert_eq(load("tls_inspect:\n"
                    "  ports: [443, 8443]\n"
                    "  max_hello: 64\n"
                    "  timeout: 250ms\n"
                    "  on_no_sni: deny\n"
                    "  on_ech: allow\n"
                    "  on_timeout: log\n"
                    "dns: {min_ttl: 0s, max_ttl: 5m, negative_ttl: 0s, cache_entries: 0}\n"
                    "internal:\n"
                    "  allow: [10.20.0.0/16, \"fd00:1::/64\"]\n"),
               0, "%s", err);
  cr_assert_eq(cfg.tls.nports, 2);
  cr_expect_eq(cfg.tls.ports[1], 8443);
  cr_expect_eq(cfg.tls.max_hello, 64);
  cr_expect_eq(cfg.tls.timeout, 250);
  cr_expect_eq(cfg.tls.on_no_sni, ACTION_DENY);
  cr_expect_eq(cfg.tls.on_ech, ACTION_ALLOW);
  cr_expect_eq(cfg.tls.on_timeout, ACTION_LOG);
  cr_expect_eq(cfg.tls.on_not_tls, ACTION_DENY, "unset keys keep the default");
  cr_expect_eq(cfg.dns.min_ttl, 0);
  cr_expect_eq(cfg.dns.max_ttl, 300000);
  cr_expect_eq(cfg.dns.negative_ttl, 0);
  cr_expect_eq(cfg.dns.cache_entries, 0);
  cr_expect_eq(cfg.dns.cache_memory, 16777216);
  cr_expect_str_eq(cfg.internal_allow_text, "10.20.0.0/16, fd00:1::/64");
  uint8_t a4[4] = {10, 20, 3, 4}, b4[4] = {10, 21, 0, 1};
  cr_expect_str_eq(netmatch_lookup(cfg.internal_allow, AF_INET, a4, NULL), "10.20.0.0/16");
  cr_expect_null(netmatch_lookup(cfg.internal_allow, AF_INET, b4, NULL));
}

Test(config, empty_tls_port_list_turns_inspection_off) {
  cr_assert_eq(load("tls_inspect: {ports: []}\n"), 0, "%s", err);
  cr_expect_eq(cfg.tls.nports, 0);
}

Test(config, summary_names_tls_dns_and_internal_settings) {
  char *text = NULL;
  size_t len = 0;
  cr_assert_eq(load("tls_inspect: {ports: []}\ndns: {min_ttl: 0s, negative_ttl: 1500ms}\n"
                    "internal: {allow: [10.20.0.0/16]}\n"),
               0, "%s", err);
  FILE *f = open_memstream(&text, &len);
  cr_assert_not_null(f);
  config_print_summary(&cfg, f);
  fclose(f);
  cr_expect_not_null(strstr(text, "TLS inspection: off (no ports)\n"), "%s", text);
  cr_expect_not_null(strstr(text, "TTL 0s..1h, negative 1500ms\n"), "%s", text);
  cr_expect_not_null(strstr(text, "Internal allow: 10.20.0.0/16\n"), "%s", text);
  free(text);
}

static const char acme[] =
  "vendor: acme\n"
  "name: Acme Corp\n"
  "categories:\n"
  "  updates:\n"
  "    cutoff: 2030-01-01T00:00:00Z\n"
  "    before: allow\n"
  "    hosts:\n"
  "      - update.acme.example\n"
  "      - \"*.cdn.acme.example\"\n";

Test(config, vendors_in_a_file_replace_the_default_list) {
  put("acme.yaml", acme);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n"), 0, "%s", err);
  cr_assert_eq(policy_vendor_count(cfg.policy), 1);
  const struct vendor *v = policy_vendor_at(cfg.policy, 0);
  cr_expect_str_eq(v->id, "acme");
  cr_expect_null(v->reference);
  const struct category *c = policy_find_category(v, "updates");
  cr_assert_not_null(c);
  cr_expect_eq(c->before, ACTION_ALLOW);
  cr_expect_eq(c->after, ACTION_DENY);
  expect_action("s07.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
  expect_action("a.cdn.acme.example", 1893456000 - 1, ACTION_ALLOW);
  expect_action("a.cdn.acme.example", 1893456000, ACTION_DENY);
  struct verdict vd = decide("update.acme.example", 0);
  cr_expect_str_eq(vd.rule->where.file, files[0]);
  cr_expect_eq(vd.rule->where.line, 8);
  cr_expect_eq(vd.rule->where.col, 9);
}

Test(config, builtin_and_file_vendors_combine) {
  put("acme.yaml", acme);
  cr_assert_eq(load("vendors:\n  - builtin: kaspersky\n  - file: ./acme.yaml\n"), 0, "%s",
               err);
  cr_expect_eq(policy_vendor_count(cfg.policy), 2);
  expect_action("dnl-01.geo.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
}

Test(config, empty_vendor_list_allows_everything) {
  cr_assert_eq(load("vendors: []\n"), 0, "%s", err);
  cr_expect_eq(policy_vendor_count(cfg.policy), 0);
  expect_action("s07.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
}

Test(config, exceptions_override_until_they_expire) {
  cr_assert_eq(load("exceptions:\n"
                    "  - host: rescuedisk.kaspersky-labs.com\n"
                    "    expires: 2025-06-30T00:00:00Z\n"
                    "    reason: removal tool download\n"
                    "  - host: \"*.upd.kaspersky.com\"\n"),
               0, "%s", err);
  cr_assert_eq(policy_exception_count(cfg.policy), 2);
  struct verdict v = decide("rescuedisk.kaspersky-labs.com", 1751241600 - 1);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
  cr_expect_str_eq(v.exception->reason, "removal tool download");
  cr_expect_eq(v.exception->where.line, 2);
  expect_action("rescuedisk.kaspersky-labs.com", 1751241600, ACTION_DENY);
  v = decide("s01.upd.kaspersky.com", INT64_C(4102444800));
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_null(v.exception->reason);
  cr_expect_eq(v.exception->expires, POLICY_TIME_NEVER);
}

/* ---- errors ------------------------------------------------------------ */

Test(config, missing_config_file) {
  char path[128];
  snprintf(path, sizeof(path), "%s/absent.yaml", dir);
  cr_assert_eq(config_load_file(&cfg, path, err, sizeof(err)), -ENOENT);
  char want[256];
  snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
  cr_expect_str_eq(err, want);
  cr_expect_null(cfg.policy);
}

Test(config, yaml_syntax_error) {
  expect_error("timeouts:\n  connect: 5s\n resolve: 1s\n",
               "@/main.yaml:3:2: syntax error: did not find expected key "
               "(while parsing a block mapping)");
}

Test(config, unclosed_flow_list) {
  expect_error("listen: [\"0.0.0.0:3128\"\n",
               "@/main.yaml:2:1: syntax error: did not find expected ',' or ']' "
               "(while parsing a flow sequence)");
}

Test(config, second_document) {
  expect_error("monitor: true\n---\nmonitor: false\n",
               "@/main.yaml:3:1: syntax error: expected a single YAML document");
}

Test(config, top_level_not_a_mapping) {
  expect_error("- listen\n", "@/main.yaml:1:1: (top): expected a mapping");
}

Test(config, unknown_key) {
  expect_error("lisen: [\"0.0.0.0:3128\"]\n",
               "@/main.yaml:1:1: lisen: unknown key (expected one of: listen, resolvers, "
               "clients, connect_ports, timeouts, limits, tls_inspect, dns, transparent, mark, "
               "internal, certs, log, user, log_buffer, workers, admin, readiness, access_log, "
               "monitor, profile, vendors, exceptions, lists, client_groups, client_profiles, "
               "proxy_protocol_from, upstream_proxy)");
}

Test(config, unknown_nested_key) {
  expect_error("timeouts:\n  conect: 5s\n",
               "@/main.yaml:2:3: timeouts.conect: unknown key (expected one of: request_head, "
               "resolve, connect, response, idle, tunnel_idle, upstream_idle, shutdown_grace)");
}

Test(config, duplicate_key) {
  expect_error("monitor: true\nlog: \"-\"\nmonitor: false\n",
               "@/main.yaml:3:1: monitor: duplicate key");
}

Test(config, wrong_type_mapping) {
  expect_error("timeouts: 5\n", "@/main.yaml:1:11: timeouts: expected a mapping");
}

Test(config, wrong_type_list) {
  expect_error("listen: 0.0.0.0:3128\n",
               "@/main.yaml:1:9: listen: expected a list of \"ip:port\" strings or {address: \"ip:port\", mode: proxy|intercept|tproxy} mappings");
}

Test(config, wrong_type_bool) {
  expect_error("monitor: yes\n", "@/main.yaml:1:10: monitor: expected true or false");
}

Test(config, wrong_type_string) {
  expect_error("log: [a]\n",
               "@/main.yaml:1:6: log: expected a file path or \"-\" for standard output");
}

Test(config, bad_duration) {
  expect_error("timeouts:\n  connect: 10 seconds\n",
               "@/main.yaml:2:12: timeouts.connect: expected a duration like 10s");
}

Test(config, zero_duration) {
  expect_error("timeouts:\n  idle: 0s\n",
               "@/main.yaml:2:9: timeouts.idle: expected a duration like 10s");
}

Test(config, bad_limit) {
  expect_error("limits:\n  buffer: 12\n",
               "@/main.yaml:2:11: limits.buffer: expected a byte count from 4096 to 1073741824");
}

Test(config, bad_cidr) {
  expect_error("clients:\n  - 10.0.0.0/8\n  - 10.0.0.1/8\n",
               "@/main.yaml:3:5: clients[1]: invalid network prefix '10.0.0.1/8' "
               "(expected a CIDR like 10.0.0.0/8)");
}

Test(config, bad_port) {
  expect_error("connect_ports: [443, 70000]\n",
               "@/main.yaml:1:22: connect_ports[1]: expected a port from 1 to 65535");
}

Test(config, bad_listen_address) {
  expect_error("listen:\n  - localhost:3128\n",
               "@/main.yaml:2:5: listen[0]: expected \"ip:port\" or \"[v6]:port\", got "
               "'localhost:3128'");
}

Test(config, bad_listen_port) {
  expect_error("listen: [\"127.0.0.1:0\"]\n",
               "@/main.yaml:1:10: listen[0]: invalid port in '127.0.0.1:0' "
               "(expected ip:port, port 1 to 65535)");
}

Test(config, unbracketed_ipv6_resolver) {
  expect_error("resolvers: [\"::1:53\"]\n",
               "@/main.yaml:1:13: resolvers[0]: expected \"ip:port\" or \"[v6]:port\", got "
               "'::1:53'");
}

Test(config, tls_inspect_unknown_key) {
  expect_error("tls_inspect:\n  on_no_alpn: log\n",
               "@/main.yaml:2:3: tls_inspect.on_no_alpn: unknown key (expected one of: ports, "
               "max_hello, timeout, on_no_sni, on_ech, on_not_tls, on_malformed, on_too_large, "
               "on_timeout, deny_with)");
}

Test(config, tls_inspect_not_a_mapping) {
  expect_error("tls_inspect: [443]\n", "@/main.yaml:1:14: tls_inspect: expected a mapping");
}

Test(config, tls_inspect_unknown_action) {
  expect_error("tls_inspect:\n  on_ech: block\n",
               "@/main.yaml:2:11: tls_inspect.on_ech: unknown action 'block' (expected allow, "
               "log or deny)");
}

Test(config, tls_inspect_action_not_a_scalar) {
  expect_error("tls_inspect:\n  on_not_tls: [deny]\n",
               "@/main.yaml:2:15: tls_inspect.on_not_tls: expected allow, log or deny");
}

Test(config, tls_inspect_max_hello_out_of_range) {
  expect_error("tls_inspect:\n  max_hello: 63\n",
               "@/main.yaml:2:14: tls_inspect.max_hello: expected a byte count from 64 to 65536");
  config_free(&cfg);
  expect_error("tls_inspect:\n  max_hello: 65537\n",
               "@/main.yaml:2:14: tls_inspect.max_hello: expected a byte count from 64 to 65536");
}

Test(config, tls_inspect_zero_timeout) {
  expect_error("tls_inspect:\n  timeout: 0s\n",
               "@/main.yaml:2:12: tls_inspect.timeout: expected a duration like 10s");
}

Test(config, tls_inspect_bad_port) {
  expect_error("tls_inspect:\n  ports: [443, 0]\n",
               "@/main.yaml:2:16: tls_inspect.ports[1]: expected a port from 1 to 65535");
}

Test(config, duplicate_port) {
  expect_error("tls_inspect:\n  ports: [443, 8443, 443]\n",
               "@/main.yaml:2:22: tls_inspect.ports[2]: duplicate port 443");
  config_free(&cfg);
  expect_error("connect_ports: [443, 443]\n",
               "@/main.yaml:1:22: connect_ports[1]: duplicate port 443");
}

Test(config, dns_unknown_key) {
  expect_error("dns:\n  ttl: 5s\n",
               "@/main.yaml:2:3: dns.ttl: unknown key (expected one of: min_ttl, max_ttl, "
               "negative_ttl, cache_entries, cache_memory)");
}

Test(config, dns_bad_ttl) {
  expect_error("dns:\n  negative_ttl: soon\n",
               "@/main.yaml:2:17: dns.negative_ttl: expected a duration up to 24h like 30s");
  config_free(&cfg);
  expect_error("dns:\n  max_ttl: 0s\n",
               "@/main.yaml:2:12: dns.max_ttl: expected a duration from 1ms to 24h like 1h");
  config_free(&cfg);
  expect_error("dns:\n  min_ttl: 25h\n",
               "@/main.yaml:2:12: dns.min_ttl: expected a duration up to 24h like 30s");
}

Test(config, dns_min_ttl_longer_than_max_ttl) {
  /* The built-in min_ttl (5s) counts too. */
  expect_error("dns:\n  max_ttl: 2s\n",
               "@/main.yaml:2:3: dns: min_ttl (5000ms) is longer than max_ttl (2000ms)");
}

Test(config, dns_bad_cache_sizes) {
  expect_error("dns:\n  cache_entries: -1\n",
               "@/main.yaml:2:18: dns.cache_entries: expected a count from 0 to 10000000");
  config_free(&cfg);
  expect_error("dns:\n  cache_memory: 16M\n",
               "@/main.yaml:2:17: dns.cache_memory: expected a byte count from 0 to 4294967296");
}

Test(config, internal_unknown_key) {
  expect_error("internal:\n  deny: []\n",
               "@/main.yaml:2:3: internal.deny: unknown key (expected one of: allow)");
}

Test(config, internal_allow_bad_cidr) {
  expect_error("internal:\n  allow: [10.20.0.1/16]\n",
               "@/main.yaml:2:11: internal.allow[0]: invalid network prefix '10.20.0.1/16' "
               "(expected a CIDR like 10.0.0.0/8)");
}

Test(config, internal_allow_duplicate) {
  expect_error("internal:\n  allow:\n    - 10.20.0.0/16\n    - 10.20.0.0/16\n",
               "@/main.yaml:4:7: internal.allow[1]: duplicate network '10.20.0.0/16'");
}

Test(config, internal_allow_not_a_list) {
  expect_error("internal:\n  allow: 10.20.0.0/16\n",
               "@/main.yaml:2:10: internal.allow: expected a list of networks like "
               "10.20.0.0/16");
}

Test(config, vendor_entry_needs_builtin_or_file) {
  expect_error("vendors:\n  - {builtin: kaspersky, file: k.yaml}\n",
               "@/main.yaml:2:5: vendors[0]: expected one of `builtin: NAME` or `file: PATH`");
}

Test(config, unknown_builtin_vendor) {
  expect_error("vendors:\n  - builtin: huawai\n",
               "@/main.yaml:2:14: vendors[0].builtin: no built-in vendor list 'huawai' "
               "(built in: kaspersky, autel, dahua, deepseek, dji, hikvision, huawei, hytera, "
               "tiktok, tp-link, zte)");
}

Test(config, missing_vendor_file) {
  expect_error("vendors:\n  - file: nope.yaml\n",
               "@/main.yaml:2:11: vendors[0].file: cannot read '@/nope.yaml': "
               "No such file or directory");
}

/* Line of the `vendor:` key in the shipped Kaspersky list. */
static unsigned kaspersky_vendor_line(void) {
  const struct embedded_file *f = embedded_find("config/vendors/kaspersky.yaml");
  cr_assert_not_null(f);
  const char *at = strstr(f->data, "\nvendor:");
  cr_assert_not_null(at);
  unsigned line = 2;
  for (const char *p = f->data; p < at; p++)
    line += *p == '\n';
  return line;
}

Test(config, same_vendor_twice) {
  unsigned line = kaspersky_vendor_line();
  expect_error("vendors:\n  - builtin: kaspersky\n  - builtin: kaspersky\n",
               "builtin:config/vendors/kaspersky.yaml:%u:9: vendor: duplicate vendor "
               "'kaspersky' (first at builtin:config/vendors/kaspersky.yaml:%u:9)",
               line, line);
}

Test(config, bad_cutoff) {
  expect_vendor_error("    cutoff: 2024-13-01T00:00:00Z\n",
                      "@/acme.yaml:4:13: categories.updates.cutoff: expected an RFC 3339 "
                      "time like 2024-09-29T00:00:00-04:00");
}

Test(config, cutoff_without_zone) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00\n",
                      "@/acme.yaml:4:13: categories.updates.cutoff: expected an RFC 3339 "
                      "time like 2024-09-29T00:00:00-04:00");
}

Test(config, missing_cutoff) {
  expect_vendor_error("    hosts: [a.example]\n",
                      "@/acme.yaml:4:5: categories.updates.cutoff: missing; expected an RFC "
                      "3339 time like 2024-09-29T00:00:00-04:00");
}

Test(config, unknown_action) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n    after: block\n",
                      "@/acme.yaml:5:12: categories.updates.after: unknown action 'block' "
                      "(expected allow, log or deny)");
}

Test(config, unknown_category_key) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n    host: [a.example]\n",
                      "@/acme.yaml:5:5: categories.updates.host: unknown key (expected one "
                      "of: cutoff, before, after, confidence, hosts, networks, ja4, deny_with, paths, "
                      "presets)");
}

Test(config, bad_pattern) {
  const char *why = NULL;
  cr_assert_eq(dommatch_check("a..example", 10, &why), EMB_EBADPATTERN);
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n    hosts:\n      - ok.example\n"
                      "      - a..example\n",
                      "@/acme.yaml:7:9: categories.updates.hosts[1]: invalid host pattern "
                      "'a..example': %s", why);
}

Test(config, duplicate_pattern) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n    hosts:\n      - a.example\n"
                      "      - b.example\n      - a.example\n",
                      "@/acme.yaml:8:9: categories.updates.hosts[2]: duplicate pattern "
                      "'a.example' (first at @/acme.yaml:6:9)");
}

Test(config, duplicate_category) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n  updates:\n"
                      "    cutoff: 2024-09-29T00:00:00Z\n",
                      "@/acme.yaml:5:3: categories.updates: duplicate key");
}

Test(config, vendor_file_syntax_error) {
  expect_vendor_error("    cutoff: [2024\n",
                      "@/acme.yaml:5:1: syntax error: did not find expected ',' or ']' "
                      "(while parsing a flow sequence)");
}

Test(config, vendor_without_categories) {
  put("acme.yaml", "vendor: acme\nname: Acme\n");
  expect_error("vendors:\n  - file: acme.yaml\n",
               "@/acme.yaml:1:1: categories: missing; expected a mapping of category names");
}

Test(config, bad_vendor_id) {
  put("acme.yaml", "vendor: Acme Corp\ncategories: {}\n");
  expect_error("vendors:\n  - file: acme.yaml\n",
               "@/acme.yaml:1:9: vendor: expected a short lowercase name like kaspersky");
}

Test(config, exception_needs_a_host) {
  expect_error("exceptions:\n  - reason: forgot the host\n",
               "@/main.yaml:2:5: exceptions[0].host: missing; expected a host pattern");
}

Test(config, exception_bad_expiry) {
  expect_error("exceptions:\n  - host: a.example\n    expires: next week\n",
               "@/main.yaml:3:14: exceptions[0].expires: expected an RFC 3339 time like "
               "2024-09-29T00:00:00-04:00");
}

Test(config, duplicate_exception) {
  expect_error("exceptions:\n  - host: a.example\n  - host: a.example\n",
               "@/main.yaml:3:11: exceptions[1].host: duplicate exception 'a.example' "
               "(first at @/main.yaml:2:11)");
}

Test(config, parse_sockaddr_forms) {
  struct sockaddr_storage a;
  cr_expect_eq(config_parse_sockaddr("0.0.0.0:3128", &a), 0);
  cr_expect_eq(a.ss_family, AF_INET);
  cr_expect_eq(config_parse_sockaddr("[::]:3128", &a), 0);
  cr_expect_eq(a.ss_family, AF_INET6);
  cr_expect_eq(config_parse_sockaddr("127.0.0.1:65536", &a), EMB_EBADPORT);
  cr_expect_eq(config_parse_sockaddr("127.0.0.1:080", &a), EMB_EBADPORT);
  cr_expect_eq(config_parse_sockaddr("127.0.0.1", &a), EMB_EBADPORT);
  cr_expect_eq(config_parse_sockaddr("127.0.0.1:", &a), EMB_EBADPORT);
  cr_expect_eq(config_parse_sockaddr("[::1]3128", &a), EMB_EBADIP);
  cr_expect_eq(config_parse_sockaddr("[127.0.0.1]:80", &a), EMB_EBADIP);
  cr_expect_eq(config_parse_sockaddr("example.com:80", &a), EMB_EBADIP);
  cr_expect_eq(config_parse_sockaddr(":80", &a), EMB_EBADIP);
}

Test(config, empty_listener_list_is_an_error) {
  expect_error("# nothing to serve\nlisten: []\n",
               "@/main.yaml:2:9: listen: at least one listener is needed (an empty list "
               "serves nothing)");
}

Test(config, resolver_port_out_of_range_is_an_error) {
  expect_error("resolvers: [\"127.0.0.1:99999\"]\n",
               "@/main.yaml:1:13: resolvers[0]: invalid port in '127.0.0.1:99999' (expected "
               "ip:port, port 1 to 65535)");
}

Test(config, user_and_per_client_cap_have_defaults) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(cfg.user, "nobody");
  cr_expect_eq(cfg.limits.max_connections_per_client, 1024);
  config_free(&cfg);
  cr_assert_eq(load("user: proxy\nlimits:\n  max_connections_per_client: 7\n"), 0, "%s", err);
  cr_expect_str_eq(cfg.user, "proxy");
  cr_expect_eq(cfg.limits.max_connections_per_client, 7);
}

Test(config, workers_default_to_the_cpus_online_and_take_a_count) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_expect_eq(cfg.workers, 0, "not set: one per CPU online");
  cr_expect_eq(config_workers(&cfg), cpus < 1 ? 1 : cpus > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS
                                                                                : (size_t)cpus);
  config_free(&cfg);
  memset(&cfg, 0, sizeof(cfg));
  cr_assert_eq(load("workers: 3\n"), 0, "%s", err);
  cr_expect_eq(config_workers(&cfg), 3);
  config_free(&cfg);
  memset(&cfg, 0, sizeof(cfg));
  expect_error("workers: 0\n", "@/main.yaml:1:10: workers: expected a count from 1 to 64");
  expect_error("workers: 65\n", "@/main.yaml:1:10: workers: expected a count from 1 to 64");
  expect_error("workers: two\n", "@/main.yaml:1:10: workers: expected a count from 1 to 64");
}

Test(config, summary_names_the_workers) {
  char *text = NULL;
  size_t len = 0;
  cr_assert_eq(load("workers: 2\n"), 0, "%s", err);
  FILE *f = open_memstream(&text, &len);
  cr_assert_not_null(f);
  config_print_summary(&cfg, f);
  fclose(f);
  cr_expect(strstr(text, "Workers:        2 event loop(s), one thread each (workers)") != NULL,
            "%s", text);
  cr_expect(strstr(text, "whatever the number of workers") != NULL, "%s", text);
  free(text);
}
