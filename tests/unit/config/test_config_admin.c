/* Config keys for running unattended: admin.listen, admin.token_file and
 * admin.names, readiness.stale_lists,
 * timeouts.shutdown_grace, log_buffer, a vendor list's reviewed and
 * max_age, and the snapshot's sources and version. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "filters/err.h"
#include "filters/policy.h"
#include "tests/unit/config_fixture.h"

TestSuite(config_admin, .init = setup, .fini = teardown);

static const char list_head[] = "vendor: acme\n"
                                "categories:\n"
                                "  updates:\n"
                                "    cutoff: 2024-09-29T00:00:00Z\n"
                                "    hosts: [upd.acme.test]\n";

Test(config_admin, admin_is_off_unless_listen_is_given) {
  cr_assert_eq(load("listen: [127.0.0.1:3128]\n"), 0, "%s", err);
  cr_expect(!cfg.admin.enabled);
  cr_expect_eq(cfg.timeouts.shutdown_grace, 10000);
  cr_expect_eq(cfg.log_buffer, 2097152);
}

Test(config_admin, admin_listen_on_loopback_needs_no_token) {
  cr_assert_eq(load("admin: {listen: 127.0.0.1:9090}\ntimeouts: {shutdown_grace: 3s}\n"
                    "log_buffer: 8192\n"),
               0, "%s", err);
  cr_expect(cfg.admin.enabled);
  cr_expect_str_eq(cfg.admin.listen_text, "127.0.0.1:9090");
  cr_expect_eq(ntohs(((struct sockaddr_in *)&cfg.admin.listen)->sin_port), 9090);
  cr_expect_str_eq(cfg.admin.token, "");
  cr_expect_eq(cfg.timeouts.shutdown_grace, 3000);
  cr_expect_eq(cfg.log_buffer, 8192);
}

Test(config_admin, admin_beyond_loopback_needs_a_token) {
  expect_error("admin: {listen: 0.0.0.0:9090}\n",
               "@/main.yaml:1:17: admin.listen: '0.0.0.0:9090' is reachable beyond loopback: set "
               "admin.token_file");
}

Test(config_admin, token_file_is_read_and_trimmed) {
  put("token", "0123456789abcdef0123\n");
  /* A relative path is read from the config file's directory. */
  cr_assert_eq(load("admin:\n  listen: 0.0.0.0:9090\n  token_file: token\n"), 0, "%s", err);
  cr_expect_str_eq(cfg.admin.token, "0123456789abcdef0123");
}

Test(config_admin, short_token_is_refused) {
  char text[256];
  put("token", "short\n");
  snprintf(text, sizeof(text), "admin:\n  listen: 127.0.0.1:9090\n  token_file: %s/token\n", dir);
  cr_assert_eq(load(text), EMB_ECONFIG);
  cr_expect(strstr(err, "must hold one token of 16 to 255 characters") != NULL, "%s", err);
}

Test(config_admin, admin_on_a_proxy_port_is_refused) {
  expect_error("listen: [0.0.0.0:3128]\nadmin: {listen: 127.0.0.1:3128}\n",
               "@/main.yaml:2:17: admin.listen: 127.0.0.1:3128 is the proxy listener 0.0.0.0:3128");
}

Test(config_admin, names_are_kept_normalised) {
  cr_assert_eq(load("admin:\n  listen: 127.0.0.1:9090\n  names: [Embargo.Example.Internal., "
                    "\"::1\", 10.0.0.7]\n"),
               0, "%s", err);
  cr_assert_eq(cfg.admin.nnames, 3);
  cr_expect_str_eq(cfg.admin.names[0], "embargo.example.internal");
  cr_expect_str_eq(cfg.admin.names[1], "::1");
  cr_expect_str_eq(cfg.admin.names[2], "10.0.0.7");
}

Test(config_admin, a_name_with_a_port_is_refused) {
  expect_error("admin:\n  listen: 127.0.0.1:9090\n  names: [embargo.example:9090]\n",
               "@/main.yaml:3:11: admin.names[0]: expected a host name or an IP address without a "
               "port, got 'embargo.example:9090'");
}

Test(config_admin, names_need_listen) {
  expect_error("admin:\n  names: [embargo.example]\n",
               "@/main.yaml:2:3: admin: names needs listen");
}

Test(config_admin, stale_lists_default_to_a_warning) {
  cr_assert_eq(load("listen: [127.0.0.1:3128]\n"), 0, "%s", err);
  cr_expect_eq(cfg.readiness.stale_lists, STALE_LISTS_WARN);
  config_free(&cfg);
  cr_assert_eq(load("readiness: {stale_lists: unready}\n"), 0, "%s", err);
  cr_expect_eq(cfg.readiness.stale_lists, STALE_LISTS_UNREADY);
}

Test(config_admin, stale_lists_takes_warn_or_unready) {
  expect_error("readiness:\n  stale_lists: fail\n",
               "@/main.yaml:2:16: readiness.stale_lists: expected warn or unready, got 'fail'");
  config_free(&cfg);
  expect_error("readiness:\n  stale: warn\n",
               "@/main.yaml:2:3: readiness.stale: unknown key (expected one of: stale_lists)");
}

Test(config_admin, reviewed_and_max_age_in_days) {
  char list[512];
  snprintf(list, sizeof(list), "%sreviewed: 2025-06-01\nmax_age: 90d\n", list_head);
  put("acme.yaml", list);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n"), 0, "%s", err);
  const struct vendor *v = policy_find_vendor(cfg.policy, "acme");
  cr_assert_not_null(v);
  cr_expect_eq(v->reviewed, INT64_C(1748736000));
  cr_expect_eq(v->max_age, 90u * 86400);
}

Test(config_admin, max_age_needs_reviewed) {
  char list[512];
  snprintf(list, sizeof(list), "%smax_age: 90d\n", list_head);
  put("acme.yaml", list);
  expect_error("vendors:\n  - file: acme.yaml\n",
               "@/acme.yaml:6:10: max_age: needs `reviewed`: the date it counts from");
}

Test(config_admin, bad_reviewed_date_is_refused) {
  char list[512];
  snprintf(list, sizeof(list), "%sreviewed: 2025-13-01\n", list_head);
  put("acme.yaml", list);
  expect_error("vendors:\n  - file: acme.yaml\n",
               "@/acme.yaml:6:11: reviewed: expected a date like 2025-06-01 or an RFC 3339 time");
}

Test(config_admin, version_names_the_sources) {
  char v1[32];
  cr_assert_eq(load("monitor: false\n"), 0, "%s", err);
  cr_expect_eq(strlen(policy_version(cfg.policy)), 16);
  snprintf(v1, sizeof(v1), "%s", policy_version(cfg.policy));
  cr_assert_eq(policy_source_count(cfg.policy), 3); /* default, main.yaml, the built-in list */
  cr_expect_str_eq(policy_source_at(cfg.policy, 0)->name, "builtin:config/default.yaml");
  cr_expect_eq(strlen(policy_source_at(cfg.policy, 1)->sha256), 64);
  config_free(&cfg);
  cr_assert_eq(load("monitor: false\n"), 0, "%s", err);
  cr_expect_str_eq(policy_version(cfg.policy), v1, "same files, same version");
  config_free(&cfg);
  cr_assert_eq(load("monitor: true\n"), 0, "%s", err);
  cr_expect_str_neq(policy_version(cfg.policy), v1, "another text, another version");
}
