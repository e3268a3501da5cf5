/* Config keys of the block page over TLS: certs.ca_dir (loaded at once, its
 * errors at the key's position), certs.cache_entries, tls_inspect.deny_with
 * and a category's deny_with, and `page` without a CA. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "certs/ca.h"
#include "config/config.h"
#include "filters/err.h"
#include "tests/unit/config_fixture.h"

static char ca_dir[64];
static char text[1024];

static void setup_ca(void) {
  struct ca_init_opts o = {.subject = "Test Site", .days = 10, .now = (int64_t)time(NULL)};
  char e[512];
  setup();
  snprintf(ca_dir, sizeof(ca_dir), "/tmp/embargo-ca-XXXXXX");
  cr_assert_not_null(mkdtemp(ca_dir));
  strcat(ca_dir, "/ca");
  cr_assert_eq(ca_init(ca_dir, &o, e, sizeof(e)), 0, "%s", e);
}

static void teardown_ca(void) {
  char cmd[128];
  teardown();
  *strrchr(ca_dir, '/') = '\0';
  snprintf(cmd, sizeof(cmd), "rm -rf %s", ca_dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(config_certs, .init = setup_ca, .fini = teardown_ca);

Test(config_certs, ca_dir_loads_the_ca_and_page_is_accepted) {
  snprintf(text, sizeof(text),
           "certs:\n  ca_dir: %s\n  cache_entries: 50\ntls_inspect:\n  deny_with: page\n", ca_dir);
  cr_assert_eq(load(text), 0, "%s", err);
  cr_assert_not_null(cfg.certs.ca);
  cr_assert_str_eq(cfg.certs.ca_dir, ca_dir);
  cr_assert_eq(cfg.certs.cache_entries, 50);
  cr_assert_eq(cfg.tls.deny_with, DENY_WITH_PAGE);
}

Test(config_certs, defaults_are_alert_and_no_ca) {
  cr_assert_eq(load("monitor: false\n"), 0, "%s", err);
  cr_assert_null(cfg.certs.ca);
  cr_assert_eq(cfg.certs.cache_entries, 1000);
  cr_assert_eq(cfg.tls.deny_with, DENY_WITH_ALERT);
}

Test(config_certs, page_without_a_ca_is_an_error) {
  expect_error("tls_inspect:\n  deny_with: page\n",
               "@/main.yaml:2:14: tls_inspect.deny_with: page needs a CA: set certs.ca_dir "
               "(make one with `embargo ca init --dir DIR`)");
}

Test(config_certs, category_page_without_a_ca_is_an_error) {
  expect_vendor_error(
      "    cutoff: 2024-09-29T00:00:00Z\n    deny_with: page\n    hosts: [a.example]\n",
      "%s/acme.yaml:5:16: categories.updates.deny_with: page needs a CA: set "
      "certs.ca_dir (make one with `embargo ca init --dir DIR`)",
      dir);
}

Test(config_certs, unknown_deny_with_is_an_error) {
  expect_error("tls_inspect:\n  deny_with: redirect\n",
               "@/main.yaml:2:14: tls_inspect.deny_with: unknown value 'redirect' (expected "
               "alert or page)");
}

Test(config_certs, category_deny_with_overrides) {
  snprintf(text, sizeof(text),
           "vendor: acme\ncategories:\n  updates:\n"
           "    cutoff: 2024-09-29T00:00:00Z\n    deny_with: alert\n    hosts: [a.example]\n");
  put("acme.yaml", text);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n"), 0, "%s", err);
  struct verdict v = decide("a.example", UPDATES_CUTOFF + 1);
  cr_assert_not_null(v.rule);
  cr_assert_eq(v.rule->category->deny_with, DENY_WITH_ALERT);
}

Test(config_certs, key_readable_by_others_is_a_config_error_at_the_key) {
  char key[128];
  snprintf(key, sizeof(key), "%s/ca.key", ca_dir);
  cr_assert_eq(chmod(key, 0644), 0);
  snprintf(text, sizeof(text), "log: \"-\"\ncerts:\n  ca_dir: %s\n", ca_dir);
  expect_error(text,
               "@/main.yaml:3:11: certs.ca_dir: %s/ca.key: private key is accessible to "
               "group or others (mode 0644); chmod 600 it",
               ca_dir);
}

Test(config_certs, missing_ca_dir_is_a_config_error) {
  expect_error("certs:\n  ca_dir: no-such-dir\n",
               "@/main.yaml:2:11: certs.ca_dir: @/no-such-dir/ca.crt: cannot read: No such file "
               "or directory");
}

Test(config_certs, cache_entries_is_bounded) {
  expect_error("certs:\n  cache_entries: 0\n",
               "@/main.yaml:2:18: certs.cache_entries: expected a count from 1 to 1000000");
}
