/* Regime presets (`profile:`), per-site overrides of category actions,
 * `left_out:` and `paths:` in vendor lists: what each loads, who set each
 * action, and the exact errors for an unknown profile, vendor or category. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "filters/err.h"
#include "tests/unit/config_fixture.h"

#define NOW INT64_C(1796083200) /* 2026-12-01T00:00:00Z */

TestSuite(presets, .init = setup, .fini = teardown);

static const struct category *category_of(const char *vendor, const char *name) {
  const struct vendor *v = policy_find_vendor(cfg.policy, vendor);
  cr_assert_not_null(v, "vendor %s not loaded", vendor);
  const struct category *c = policy_find_category(v, name);
  cr_assert_not_null(c, "%s has no category %s", vendor, name);
  return c;
}

/* The verdict on a plain-HTTP request for PATH on HOST. */
static struct verdict decide_path(const char *host, const char *path, int64_t now) {
  struct host h;
  struct verdict v;
  cr_assert_eq(host_normalise(host, strlen(host), &h), 0);
  struct facts f = {.host = &h, .path = path, .path_len = strlen(path)};
  policy_decide(cfg.policy, &f, now, &v);
  return v;
}

Test(presets, the_default_profile_loads_only_kaspersky) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(cfg.profile, "us-commercial");
  cr_expect_str_eq(policy_profile(cfg.policy), "us-commercial");
  cr_expect_eq(policy_vendor_count(cfg.policy), 1);
  cr_expect_not_null(policy_find_vendor(cfg.policy, "kaspersky"));
  expect_action("api.hik-connect.com", NOW, ACTION_ALLOW);
  expect_action("www.tiktok.com", NOW, ACTION_ALLOW);
  expect_action("s07.upd.kaspersky.com", NOW, ACTION_DENY);
}

Test(presets, us_federal_loads_every_list_and_denies_covered_clouds) {
  static const char *const all[] = {"kaspersky", "autel",  "dahua",  "deepseek", "dji", "hikvision",
                                    "huawei",    "hytera", "tiktok", "tp-link",  "zte"};
  cr_assert_eq(load("profile: us-federal\n"), 0, "%s", err);
  cr_expect_eq(policy_vendor_count(cfg.policy), 11);
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
    cr_expect_not_null(policy_find_vendor(cfg.policy, all[i]), "%s", all[i]);
  struct verdict v = decide("api.hik-connect.com", NOW);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.from, ACTION_FROM_PRESET);
  cr_expect_str_eq(v.rule->category->preset, "us-federal");
  cr_expect_str_eq(v.rule->category->basis, "NDAA FY2019 §889(a)(1)(B); FAR 52.204-25");
  cr_expect_eq(v.rule->category->before_from, ACTION_FROM_LIST, "the preset sets only after");
  expect_action("www.easy4ipcloud.com", NOW, ACTION_DENY); /* dahua p2p */
  expect_action("open.imoulife.com", NOW, ACTION_DENY);    /* dahua app */
  expect_action("www.tiktok.com", NOW, ACTION_DENY);
  expect_action("chat.deepseek.com", NOW, ACTION_DENY);
  expect_action("query.hicloud.com", NOW, ACTION_LOG);     /* huawei firmware */
  expect_action("api-docs.deepseek.com", NOW, ACTION_LOG); /* docs */
  expect_action("flysafe-api.dji.com", NOW, ACTION_LOG);   /* not §889 */
  expect_action("wap.tplinkcloud.com", NOW, ACTION_LOG);   /* not §889 */
  expect_action("www.hikvision.com", NOW, ACTION_LOG);     /* unclassified */
  expect_action("s07.upd.kaspersky.com", NOW, ACTION_DENY);
  cr_expect_eq(decide("www.hikvision.com", NOW).from, ACTION_FROM_LIST);
}

Test(presets, a_preset_applies_from_its_cutoff) {
  /* hikvision cloud: before log, after deny (us-federal); cutoff 2020-08-13T04:00:00Z */
  cr_assert_eq(load("profile: us-federal\n"), 0, "%s", err);
  expect_action("api.hik-connect.com", INT64_C(1597291199), ACTION_LOG);
  expect_action("api.hik-connect.com", INT64_C(1597291200), ACTION_DENY);
}

Test(presets, a_named_builtin_list_logs_under_us_commercial) {
  cr_assert_eq(load("vendors:\n  - builtin: hikvision\n"), 0, "%s", err);
  cr_expect_eq(policy_vendor_count(cfg.policy), 1, "vendors replaces the profile's lists");
  struct verdict v = decide("api.hik-connect.com", NOW);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.from, ACTION_FROM_LIST);
  cr_expect_null(v.rule->category->preset);
  expect_action("vtmvirginia.ezvizlife.com", NOW, ACTION_LOG);
}

Test(presets, an_override_sets_one_category_without_copying_the_list) {
  cr_assert_eq(load("vendors:\n"
                    "  - builtin: kaspersky\n"
                    "  - builtin: hikvision\n"
                    "    override:\n"
                    "      cloud: { after: deny }\n"),
               0, "%s", err);
  struct verdict v = decide("api.hik-connect.com", NOW);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.from, ACTION_FROM_OVERRIDE);
  const struct category *c = category_of("hikvision", "cloud");
  cr_expect_eq(c->override_where.line, 5);
  cr_expect_eq(c->override_where.col, 14);
  cr_expect_not_null(strstr(c->override_where.file, "main.yaml"));
  expect_action("vtmvirginia.ezvizlife.com", NOW, ACTION_LOG); /* p2p untouched */
  expect_action("s07.upd.kaspersky.com", NOW, ACTION_DENY);
}

Test(presets, an_override_beats_the_preset) {
  cr_assert_eq(load("profile: us-federal\n"
                    "vendors:\n"
                    "  - builtin: hikvision\n"
                    "    override:\n"
                    "      cloud: { before: deny, after: log }\n"),
               0, "%s", err);
  const struct category *c = category_of("hikvision", "cloud");
  cr_expect_eq(c->before, ACTION_DENY);
  cr_expect_eq(c->after, ACTION_LOG);
  cr_expect_eq(c->after_from, ACTION_FROM_OVERRIDE);
  expect_action("api.hik-connect.com", NOW, ACTION_LOG);
  expect_action("vtmvirginia.ezvizlife.com", NOW, ACTION_DENY); /* p2p: the preset */
}

Test(presets, overrides_apply_to_file_lists_too) {
  put("acme.yaml", "vendor: acme\ncategories:\n  cloud:\n    cutoff: 2020-01-01T00:00:00Z\n"
                   "    after: log\n    hosts: [cloud.acme.example]\n");
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n    override: {cloud: {after: deny}}\n"), 0,
               "%s", err);
  expect_action("cloud.acme.example", NOW, ACTION_DENY);
}

Test(presets, unknown_profile) {
  expect_error("profile: us-fed\n",
               "@/main.yaml:1:10: profile: unknown profile 'us-fed' (expected us-commercial or "
               "us-federal)");
}

Test(presets, unknown_category_in_an_override) {
  expect_error("vendors:\n  - builtin: hikvision\n    override:\n      clod: {after: deny}\n",
               "@/main.yaml:4:7: vendors[0].override.clod: no category 'clod' in vendor list "
               "hikvision (it has: firmware, cloud, p2p, unclassified)");
}

Test(presets, unknown_vendor) {
  expect_error("profile: us-federal\nvendors:\n  - builtin: hikvison\n",
               "@/main.yaml:3:14: vendors[0].builtin: no built-in vendor list 'hikvison' "
               "(built in: kaspersky, autel, dahua, deepseek, dji, hikvision, huawei, hytera, "
               "tiktok, tp-link, zte)");
}

Test(presets, override_errors) {
  expect_error("vendors:\n  - builtin: dji\n    override:\n      cloud: {after: block}\n",
               "@/main.yaml:4:22: vendors[0].override.cloud.after: unknown action 'block' "
               "(expected allow, log or deny)");
  config_free(&cfg);
  expect_error("vendors:\n  - builtin: dji\n    override:\n      cloud: {}\n",
               "@/main.yaml:4:14: vendors[0].override.cloud: sets no action (expected before, "
               "after or both)");
  config_free(&cfg);
  expect_error("vendors:\n  - builtin: dji\n    override:\n      cloud: {basis: x}\n",
               "@/main.yaml:4:15: vendors[0].override.cloud.basis: unknown key (expected one of: "
               "before, after)");
  config_free(&cfg);
  expect_error("vendors:\n  - builtin: dji\n    override: [cloud]\n",
               "@/main.yaml:3:15: vendors[0].override: expected a mapping of category names");
  config_free(&cfg);
  expect_error("vendors:\n  - builtin: dji\n    override:\n      cloud: {after: deny}\n"
               "      cloud: {after: log}\n",
               "@/main.yaml:5:7: vendors[0].override.cloud: duplicate key");
}

Test(presets, presets_in_a_file_list_are_checked_and_applied) {
  put("acme.yaml", "vendor: acme\ncategories:\n  cloud:\n    cutoff: 2020-01-01T00:00:00Z\n"
                   "    after: log\n    presets:\n"
                   "      us-federal: { after: deny, basis: \"a rule\" }\n"
                   "    hosts: [cloud.acme.example]\n");
  cr_assert_eq(load("profile: us-federal\nvendors:\n  - file: acme.yaml\n"), 0, "%s", err);
  expect_action("cloud.acme.example", NOW, ACTION_DENY);
  cr_expect_str_eq(category_of("acme", "cloud")->basis, "a rule");
  config_free(&cfg);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n"), 0, "%s", err);
  expect_action("cloud.acme.example", NOW, ACTION_LOG);
  cr_expect_null(category_of("acme", "cloud")->preset, "not the profile in force");
}

Test(presets, a_preset_for_an_unknown_profile_is_an_error) {
  expect_vendor_error(
      "    cutoff: 2024-09-29T00:00:00Z\n    presets:\n      us-texas: {after: deny}\n",
      "@/acme.yaml:6:7: categories.updates.presets.us-texas: unknown profile "
      "'us-texas' (expected us-commercial or us-federal)");
}

/* ---- left_out ---------------------------------------------------------------- */

Test(presets, left_out_names_are_kept_with_their_reason) {
  cr_assert_eq(load("profile: us-federal\n"), 0, "%s", err);
  const struct vendor *h = policy_find_vendor(cfg.policy, "huawei");
  cr_assert_eq(h->nleft_out, 1);
  cr_expect_str_eq(h->left_out[0].name, "include:huaweicloud");
  cr_expect_not_null(strstr(h->left_out[0].reason, "tenants"));
  const struct vendor *k = policy_find_vendor(cfg.policy, "kaspersky");
  cr_expect_eq(k->nleft_out, 36);
  cr_expect_str_eq(k->left_out[35].name, "kaspersky.se");
}

Test(presets, left_out_errors) {
  put("acme.yaml", "vendor: acme\nleft_out:\n  - names: [a.example]\n"
                   "categories:\n  c:\n    cutoff: 2020-01-01T00:00:00Z\n");
  expect_error("vendors:\n  - file: acme.yaml\n",
               "@/acme.yaml:3:5: left_out[0].reason: missing; expected why these names are not "
               "listed");
}

/* ---- paths ------------------------------------------------------------------- */

Test(presets, kaspersky_update_files_are_denied_on_any_host) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_expect_gt(policy_path_count(cfg.policy), 10);
  struct verdict v = decide_path("mirror.example.org", "/kav/Updates/index/u0607g.xml", NOW);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_PATH);
  cr_expect_str_eq(v.matched, "/kav/Updates/index/u0607g.xml");
  cr_expect_str_eq(v.rule->category->name, "updates");
  cr_expect_str_eq(v.rule->pattern, "**/index/u0607g.xml");
  v = decide_path("mirror.example.org", "/bases/av/kdb/i386/dailyc.kdc", UPDATES_CUTOFF - 1);
  cr_expect_eq(v.action, ACTION_LOG, "before the cutoff: logged");
  v = decide_path("mirror.example.org", "/index.html", NOW);
  cr_expect_eq(v.action, ACTION_ALLOW);
  cr_expect_eq(v.reason, VERDICT_NO_MATCH);
}

Test(presets, the_host_verdict_comes_first) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  struct verdict v = decide_path("s07.upd.kaspersky.com", "/index/u0607g.xml", NOW);
  cr_expect_eq(v.on, MATCH_HOST, "at equal strength the host decides");
}

Test(presets, a_host_exception_covers_its_paths) {
  cr_assert_eq(load("exceptions:\n  - host: mirror.example.org\n    reason: migration\n"), 0, "%s",
               err);
  struct verdict v = decide_path("mirror.example.org", "/index/u0607g.xml", NOW);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
}

Test(presets, bad_path_pattern) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n    paths: [\"**/bases/*\"]\n",
                      "@/acme.yaml:5:13: categories.updates.paths[0]: invalid path pattern "
                      "'**/bases/*': too broad: give the tree's layout and the file's name (at "
                      "least two segments, a literal one before the last, and 4 literal "
                      "characters in the last), like **/index/u0607g.xml");
}

Test(presets, duplicate_path_pattern) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n"
                      "    paths: [\"**/index/u0607g.xml\", \"**/INDEX/U0607G.XML\"]\n",
                      "@/acme.yaml:5:36: categories.updates.paths[1]: duplicate path pattern "
                      "'**/index/u0607g.xml' (first at @/acme.yaml:5:13)");
}

/* ---- summary ----------------------------------------------------------------- */

static char *summary(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  cr_assert_not_null(f);
  config_print_summary(&cfg, f);
  fclose(f);
  return text;
}

Test(presets, the_summary_says_who_set_each_action) {
  cr_assert_eq(load("profile: us-federal\n"
                    "vendors:\n"
                    "  - builtin: kaspersky\n"
                    "  - builtin: hikvision\n"
                    "    override:\n"
                    "      p2p: { after: log }\n"),
               0, "%s", err);
  char *text = summary(), line[512];
  cr_expect_not_null(strstr(text, "Profile:        us-federal\n"), "%s", text);
  cr_expect_not_null(strstr(text, "before: log, after: deny (preset us-federal), 11 host "
                                  "patterns\n"),
                     "%s", text);
  snprintf(line, sizeof(line),
           "before: log, after: log (override at %s/main.yaml:6:12), 1 host "
           "patterns\n",
           dir);
  cr_expect_not_null(strstr(text, line), "%s", text);
  cr_expect_not_null(strstr(text, "preset us-federal: NDAA FY2019 §889(a)(1)(B); FAR 52.204-25"),
                     "%s", text);
  cr_expect_not_null(strstr(text, "10 host patterns, 22 path patterns\n"), "%s", text);
  cr_expect_not_null(strstr(text, "left out:      36 names of public lists"), "%s", text);
  free(text);
}

Test(presets, a_path_pattern_whose_set_breaks_when_folded_is_refused_with_its_position) {
  expect_vendor_error("    cutoff: 2024-09-29T00:00:00Z\n    paths: [\"**/index/u[T-g]0607g.xml\"]\n",
                      "@/acme.yaml:5:13: categories.updates.paths[0]: invalid path pattern "
                      "'**/index/u[T-g]0607g.xml': malformed set (expected like [a-z0-9])");
}
