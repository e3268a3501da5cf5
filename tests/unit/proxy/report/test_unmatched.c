/* A vendor list's `domains:` and `embargo report --unmatched`
 * (proxy/unmatched.c): names under a vendor's domains that no host rule
 * matches are counted per name and client; listed names, names elsewhere
 * and lines outside --since/--until are not. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/report/inventory.h"
#include "proxy/report/report.h"
#include "proxy/report/unmatched.h"
#include "tests/unit/config_fixture.h"

static const char acme[] = "vendor: acme\n"
                           "domains: [acme.example, acme-cdn.example]\n"
                           "categories:\n"
                           "  updates:\n"
                           "    cutoff: 2020-01-01T00:00:00Z\n"
                           "    hosts: [upd.acme.example, \".dl.acme-cdn.example\"]\n";

TestSuite(unmatched, .init = setup, .fini = teardown);

Test(unmatched, domains_are_read_into_the_vendor) {
  put("acme.yaml", acme);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n"), 0, "%s", err);
  cr_assert_str_eq(policy_find_vendor(cfg.policy, "acme")->domains,
                   "acme.example acme-cdn.example");
}

Test(unmatched, the_shipped_kaspersky_list_names_its_domains) {
  cr_assert_eq(load("monitor: false\n"), 0, "%s", err);
  cr_assert_str_eq(policy_find_vendor(cfg.policy, "kaspersky")->domains,
                   "kaspersky.com kaspersky-labs.com kaspersky.ru");
}

Test(unmatched, a_pattern_or_a_repeated_domain_is_an_error) {
  put("a.yaml", "vendor: a\ndomains: [\"*.acme.example\"]\ncategories: {}\n");
  expect_error("vendors:\n  - file: a.yaml\n",
               "@/a.yaml:2:11: domains[0]: expected a registered domain like kaspersky.com "
               "(lowercase, no pattern), got '*.acme.example'");
  put("b.yaml", "vendor: b\ndomains: [acme.example, acme.example]\ncategories: {}\n");
  expect_error("vendors:\n  - file: b.yaml\n",
               "@/b.yaml:2:25: domains[1]: duplicate domain 'acme.example'");
  put("c.yaml", "vendor: c\ndomains: [localhost]\ncategories: {}\n");
  expect_error("vendors:\n  - file: c.yaml\n",
               "@/c.yaml:2:11: domains[0]: expected a registered domain like kaspersky.com "
               "(lowercase, no pattern), got 'localhost'");
}

static int also(void *arg, const struct inventory_fact *f) {
  return unmatched_add(arg, f);
}

static void add(struct inventory *inv, const char *line) {
  cr_assert_eq(report_add_line(inv, line, strlen(line)), 0);
}

Test(unmatched, names_under_the_domains_that_no_rule_matches_are_counted_per_client) {
  static const struct inventory_filter all = {INVENTORY_TIME_NONE, INVENTORY_TIME_NONE, NULL};
  struct unmatched *u = NULL;
  struct inventory inv;
  char *text = NULL;
  size_t len;
  char e[512];
  put("acme.yaml", acme);
  const char *path = put("main.yaml", "vendors:\n  - file: acme.yaml\n");
  cr_assert_eq(unmatched_open(path, &all, &u, e, sizeof(e)), 0, "%s", e);
  inventory_init(&inv, &all, 1);
  inv.also = also;
  inv.also_arg = u;
#define LINE(t, client, host)                                                                      \
  "{\"time\":\"2026-01-01T00:00:0" t ".000Z\",\"event\":\"access\",\"client\":\"" client           \
  "\",\"host\":\"" host "\",\"port\":443}"
  add(&inv, LINE("1", "10.0.0.5:4000", "new.acme.example"));
  add(&inv, LINE("2", "10.0.0.5:4001", "new.acme.example"));
  add(&inv, LINE("3", "10.0.0.6:4000", "new.acme.example"));
  add(&inv, LINE("4", "10.0.0.6:4000", "acme-cdn.example"));
  add(&inv, LINE("5", "10.0.0.6:4000", "upd.acme.example"));      /* listed */
  add(&inv, LINE("6", "10.0.0.6:4000", "x.dl.acme-cdn.example")); /* listed (suffix) */
  add(&inv, LINE("7", "10.0.0.6:4000", "notacme.example"));       /* not under a domain */
  add(&inv, "{\"time\":\"2026-01-01T00:00:08.000Z\",\"event\":\"log\",\"vendor\":\"acme\","
            "\"client\":\"10.0.0.7:1\",\"host\":\"mail.acme.example\",\"matched_on\":\"address\"}");
  FILE *out = open_memstream(&text, &len);
  cr_assert_eq(unmatched_write(u, false, out), 0);
  fclose(out);
  cr_assert_not_null(strstr(text, "acme: 3 name(s) under acme.example, acme-cdn.example that no "
                                  "category matched\n"),
                     "%s", text);
  const char *row = strstr(text, " new.acme.example\n");
  cr_assert_not_null(row, "%s", text);
  cr_assert_not_null(strstr(text, "         3  2026-01-01T00:00:01.000Z 2026-01-01T00:00:03.000Z "
                                  "new.acme.example\n"),
                     "%s", text);
  cr_assert_not_null(strstr(row, "10.0.0.5 (2)\n"), "%s", text);
  cr_assert_not_null(strstr(row, "10.0.0.6 (1)\n"), "%s", text);
  cr_assert_not_null(strstr(text, " acme-cdn.example\n"), "%s", text);
  cr_assert_not_null(strstr(text, " mail.acme.example\n"), "%s", text);
  cr_assert_null(strstr(text, "upd.acme.example"), "%s", text);
  cr_assert_null(strstr(text, "dl.acme-cdn.example"), "%s", text);
  cr_assert_null(strstr(text, "notacme"), "%s", text);
  free(text);
  inventory_free(&inv);
  unmatched_free(u);
}

Test(unmatched, the_time_and_vendor_filters_apply) {
  struct inventory_filter f = {INVENTORY_TIME_NONE, INVENTORY_TIME_NONE, "acme"};
  struct unmatched *u = NULL;
  struct inventory inv;
  char *text = NULL, e[512];
  size_t len;
  put("acme.yaml", acme);
  const char *path = put("main.yaml", "vendors:\n  - file: acme.yaml\n");
  cr_assert_eq(inventory_parse_time("2026-01-01T00:00:02Z", 20, &f.since_ms), 0);
  cr_assert_eq(unmatched_open(path, &f, &u, e, sizeof(e)), 0, "%s", e);
  inventory_init(&inv, &f, 1);
  inv.also = also;
  inv.also_arg = u;
  add(&inv, LINE("1", "10.0.0.5:4000", "early.acme.example"));
  add(&inv, LINE("3", "10.0.0.5:4000", "late.acme.example"));
  FILE *out = open_memstream(&text, &len);
  cr_assert_eq(unmatched_write(u, true, out), 0);
  fclose(out);
  cr_assert_null(strstr(text, "early.acme.example"), "%s", text);
  cr_assert_not_null(strstr(text, "{\"name\":\"late.acme.example\",\"requests\":1,"), "%s", text);
  free(text);
  inventory_free(&inv);
  unmatched_free(u);
}

/* A list in force for some client groups only still lists its names: the
 * blind spots are those of the lists, whoever they are in force for. */
Test(unmatched, a_list_scoped_to_client_groups_still_lists_its_names) {
  static const struct inventory_filter all = {INVENTORY_TIME_NONE, INVENTORY_TIME_NONE, NULL};
  struct unmatched *u = NULL;
  struct inventory inv;
  char *text = NULL, e[512];
  size_t len;
  put("acme.yaml", acme);
  const char *path = put("main.yaml", "client_groups: {lab: [10.9.0.0/16]}\n"
                                      "vendors:\n  - {file: acme.yaml, clients: [lab]}\n");
  cr_assert_eq(unmatched_open(path, &all, &u, e, sizeof(e)), 0, "%s", e);
  inventory_init(&inv, &all, 1);
  inv.also = also;
  inv.also_arg = u;
  add(&inv, LINE("1", "10.0.0.5:4000", "upd.acme.example")); /* listed, for lab */
  add(&inv, LINE("2", "10.0.0.5:4000", "new.acme.example"));
  FILE *out = open_memstream(&text, &len);
  cr_assert_eq(unmatched_write(u, false, out), 0);
  fclose(out);
  cr_assert_not_null(strstr(text, " new.acme.example\n"), "%s", text);
  cr_assert_null(strstr(text, "upd.acme.example"), "%s", text);
  free(text);
  inventory_free(&inv);
  unmatched_free(u);
}
