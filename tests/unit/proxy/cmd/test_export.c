/* `embargo export` (proxy/export.c): each format writes exact names,
 * suffixes, expanded globs and networks with Embargo's meaning, carves out
 * (RPZ) or refuses what a more specific rule or an exception judges
 * otherwise, and names what it leaves out. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cmd/export.h"
#include "tests/unit/config_fixture.h"

#define NOW INT64_C(1748736000) /* 2025-06-01T00:00:00Z */

static const char acme[] = "vendor: acme\n"
                           "name: Acme\n"
                           "reference: \"Test reference\"\n"
                           "reviewed: 2026-01-01\n"
                           "categories:\n"
                           "  updates:\n"
                           "    cutoff: 2020-01-01T00:00:00Z\n"
                           "    hosts:\n"
                           "      - upd.acme.example\n"
                           "      - \"*.cdn.acme.example\"\n"
                           "      - .acme-updates.example\n"
                           "      - \"s[0-1].acme.example\"\n"
                           "      - \"mirror-*.acme.example\"\n"
                           "      - \"t??.acme.example\"\n"
                           "    networks:\n"
                           "      - 192.0.2.0/24\n"
                           "      - 2001:db8::/32\n"
                           "  telemetry:\n"
                           "    cutoff: 2020-01-01T00:00:00Z\n"
                           "    after: log\n"
                           "    hosts:\n"
                           "      - t.acme-updates.example\n"
                           "    networks:\n"
                           "      - 192.0.2.128/25\n";

static char *out_text, *err_text;

static void load_acme(bool monitor) {
  char text[512];
  setup();
  put("acme.yaml", acme);
  snprintf(text, sizeof(text),
           "monitor: %s\nvendors:\n  - file: acme.yaml\nexceptions:\n"
           "  - host: ok.cdn.acme.example\n",
           monitor ? "true" : "false");
  cr_assert_eq(load(text), 0, "%s", err);
}

static void init(void) {
  load_acme(false);
}

static void fini(void) {
  free(out_text);
  free(err_text);
  out_text = err_text = NULL;
  teardown();
}

TestSuite(export, .init = init, .fini = fini);

static void run(const char *format, const char *action) {
  struct export_opts o = {.format = export_format_find(format), .now = NOW};
  size_t olen, elen;
  cr_assert_not_null(o.format, "%s", format);
  o.want[ACTION_DENY] = strcmp(action, "log") != 0;
  o.want[ACTION_LOG] = strcmp(action, "deny") != 0;
  free(out_text);
  free(err_text);
  FILE *out = open_memstream(&out_text, &olen), *e = open_memstream(&err_text, &elen);
  cr_assert_eq(export_policy(cfg.policy, &o, out, e), 0);
  fclose(out);
  fclose(e);
}

static void has(const char *line) {
  cr_expect_not_null(strstr(out_text, line), "missing %s in:\n%s", line, out_text);
}

static void lacks(const char *line) {
  cr_expect_null(strstr(out_text, line), "unexpected %s in:\n%s", line, out_text);
}

/* A before B in the output. */
static void ordered(const char *a, const char *b) {
  const char *pa = strstr(out_text, a), *pb = strstr(out_text, b);
  cr_assert(pa != NULL && pb != NULL && pa < pb, "%s not before %s in:\n%s", a, b, out_text);
}

Test(export, every_output_starts_with_the_policy_version_and_each_list) {
  static const char *const formats[] = {"rpz", "unbound", "dnsmasq", "hosts", "nft-set", "squid"};
  char want[128];
  for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
    run(formats[i], "deny");
    snprintf(want, sizeof(want),
             " Embargo policy %s, exported as %s at policy time "
             "2025-06-01T00:00:00Z; actions: deny\n",
             policy_version(cfg.policy), formats[i]);
    cr_expect_eq(strncmp(out_text + 1, want, strlen(want)), 0, "%s", out_text);
    has(" acme (Acme): Test reference; reviewed 2026-01-01; ");
  }
}

Test(export, rpz_carves_out_exceptions_and_more_specific_rules_first) {
  run("rpz", "deny");
  has("$TTL 60\n@ IN SOA localhost. hostmaster.localhost. (1748736000 3600 600 86400 60)\n");
  has("\nupd.acme.example CNAME .\n");
  ordered("\nok.cdn.acme.example CNAME rpz-passthru.\n", "\n*.cdn.acme.example CNAME .\n");
  lacks("\ncdn.acme.example CNAME");
  ordered("\nt.acme-updates.example CNAME rpz-passthru.\n", "\nacme-updates.example CNAME .\n");
  has("\n*.acme-updates.example CNAME .\n");
  has("\ns0.acme.example CNAME .\ns1.acme.example CNAME .\n");
  ordered("\n25.128.2.0.192.rpz-ip CNAME rpz-passthru.\n", "\n24.0.2.0.192.rpz-ip CNAME .\n");
  has("\n32.0.0.0.0.0.0.db8.2001.rpz-ip CNAME .\n");
  has("; 2 entries not expressed in rpz (left out):\n");
  has(";  mirror-*.acme.example (acme/updates, ");
  has(":13:9): a label glob with a '*' or more than 256 names stands for names that cannot be "
      "listed\n");
  has(";  t??.acme.example (acme/updates, ");
  cr_expect_not_null(strstr(err_text, "embargo: export: 2 entries cannot be written as rpz"), "%s",
                     err_text);
}

Test(export, log_entries_are_rpz_passthru_and_only_log_with_action_log) {
  run("rpz", "log");
  has("\nt.acme-updates.example CNAME rpz-passthru.\n");
  has("\n25.128.2.0.192.rpz-ip CNAME rpz-passthru.\n");
  lacks("upd.acme.example");
  lacks("CNAME .\n");
}

Test(export, unbound_writes_exact_names_alone_and_refuses_what_it_cannot_carve_out) {
  run("unbound", "deny");
  has("server:\n");
  has("  local-data: \"upd.acme.example. A 0.0.0.0\"\n  local-data: \"upd.acme.example. AAAA "
      "::\"\n");
  has("  local-data: \"s1.acme.example. A 0.0.0.0\"\n");
  has("#  *.cdn.acme.example (acme/updates, ");
  has("unbound cannot say \"strictly below\" without the name itself\n");
  has("#  .acme-updates.example (acme/updates, ");
  has("unbound cannot leave out t.acme-updates.example below it, which Embargo judges allow or "
      "log\n");
  lacks("local-zone");
  has("# 3 network rule(s) not exported: networks go to --format nft-set (or rpz)\n");
}

Test(export, dnsmasq_and_hosts_write_exact_names) {
  run("dnsmasq", "deny");
  has("\nhost-record=upd.acme.example,0.0.0.0,::\n");
  lacks("address=/");
  run("hosts", "deny");
  has("\n0.0.0.0 upd.acme.example\n:: upd.acme.example\n");
  has("a hosts file holds exact names only, not the names below one\n");
  run("dnsmasq", "log");
  has("dnsmasq cannot log a name without answering for it\n");
}

Test(export, squid_writes_suffixes_and_globs_as_its_own_acls) {
  run("squid", "deny");
  has("\nacl embargo_deny dstdomain upd.acme.example\n");
  has("\nacl embargo_deny_re dstdom_regex -i ^mirror-[^.]*\\.acme\\.example$\n");
  has("\nacl embargo_deny_re dstdom_regex -i ^t[^.][^.]\\.acme\\.example$\n");
  has("#  *.cdn.acme.example (acme/updates, "); /* an exception below it */
  has("squid cannot leave out ok.cdn.acme.example below it");
}

Test(export, nft_sets_hold_the_networks_without_holes) {
  run("nft-set", "deny");
  has("table inet embargo_lists {\n\tset deny_v4 { type ipv4_addr; flags interval; auto-merge; "
      "}\n");
  has("flush set inet embargo_lists deny_v6\nadd element inet embargo_lists deny_v6 { "
      "2001:db8::/32 }\n");
  lacks("192.0.2.0/24 }");
  has("#  192.0.2.0/24 (acme/updates, ");
  has("# 7 host rule(s) not exported: a set holds addresses; names go to the DNS formats\n");
  run("nft-set", "any");
  has("add element inet embargo_lists log_v4 { 192.0.2.128/25 }\n");
}

Test(export, monitor_mode_exports_log_not_deny) {
  fini();
  load_acme(true);
  run("hosts", "deny");
  lacks("0.0.0.0 upd.acme.example");
  run("rpz", "log");
  has("\nupd.acme.example CNAME rpz-passthru.\n");
}

Test(export, the_filters_select_vendor_and_category) {
  struct export_opts o = {.format = export_format_find("rpz"), .now = NOW, .category = "telemetry"};
  size_t len;
  o.want[ACTION_LOG] = true;
  free(out_text);
  FILE *out = open_memstream(&out_text, &len);
  cr_assert_eq(export_policy(cfg.policy, &o, out, stderr), 0);
  fclose(out);
  has("\nt.acme-updates.example CNAME rpz-passthru.\n");
  lacks("upd.acme.example");
}
