/* Policy snapshot and policy_decide: cutoffs, exceptions, monitor mode,
 * specificity, IP literals. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/policy.h"

/* 2024-07-20T00:00:00-04:00 and 2024-09-29T00:00:00-04:00 */
#define NEW_INSTALLS_CUTOFF INT64_C(1721448000)
#define UPDATES_CUTOFF INT64_C(1727582400)
#define DAY INT64_C(86400)

static struct policy *pol;
static struct vendor *kasp;

static struct origin at(unsigned line) {
  return (struct origin){.file = "test.yaml", .line = line, .col = 7};
}

static const struct category *add_cat(struct vendor *v, const char *name, int64_t cutoff,
                                      enum action before, enum action after) {
  int err = 1;
  const struct category *c =
      policy_add_category(pol, v, name, cutoff, before, after, at(1), &err);
  cr_assert_not_null(c);
  cr_assert_eq(err, 0);
  return c;
}

static void add_host(const struct vendor *v, const char *cat, const char *pattern) {
  const struct category *c = policy_find_category(v, cat);
  cr_assert_not_null(c, "category %s", cat);
  cr_assert_eq(policy_add_host(pol, v, c, pattern, at(2), NULL), 0, "%s", pattern);
}

/* Three categories shaped like the shipped Kaspersky list. */
static void setup(void) {
  int err = 1;
  pol = policy_new();
  cr_assert_not_null(pol);
  kasp = policy_add_vendor(pol, "kaspersky", "Kaspersky Lab", "89 FR 52434", at(1), &err);
  cr_assert_not_null(kasp);
  add_cat(kasp, "new-installs", NEW_INSTALLS_CUTOFF, ACTION_LOG, ACTION_DENY);
  add_host(kasp, "new-installs", "activation-v2.kaspersky.com");
  add_cat(kasp, "updates", UPDATES_CUTOFF, ACTION_LOG, ACTION_DENY);
  add_host(kasp, "updates", "s[0-1][0-9].upd.kaspersky.com");
  add_host(kasp, "updates", "dnl-[0-1][0-9].geo.kaspersky.com");
  add_host(kasp, "updates", "cm.k.kaspersky-labs.com");
  add_cat(kasp, "telemetry", UPDATES_CUTOFF, ACTION_LOG, ACTION_DENY);
  add_host(kasp, "telemetry", "ksn-*.kaspersky-labs.com");
  add_host(kasp, "telemetry", ".geoksn.kaspersky.com");
}

static void teardown(void) {
  policy_unref(pol);
  pol = NULL;
}

static struct verdict decide(const char *name, int64_t now) {
  struct host h;
  struct verdict v;
  cr_assert_eq(host_normalise(name, strlen(name), &h), 0, "normalise %s", name);
  struct facts f = {.host = &h};
  policy_decide(pol, &f, now, &v);
  return v;
}

static void expect(const char *name, int64_t now, enum action want) {
  struct verdict v = decide(name, now);
  cr_expect_eq(v.action, want, "%s at %lld: got %s, want %s", name, (long long)now,
               action_name(v.action), action_name(want));
}

TestSuite(policy, .init = setup, .fini = teardown);

Test(policy, each_category_logs_before_its_cutoff) {
  expect("activation-v2.kaspersky.com", NEW_INSTALLS_CUTOFF - 1, ACTION_LOG);
  expect("s07.upd.kaspersky.com", UPDATES_CUTOFF - 1, ACTION_LOG);
  expect("ksn-file-geo.kaspersky-labs.com", UPDATES_CUTOFF - 1, ACTION_LOG);
}

Test(policy, each_category_denies_from_the_cutoff_second) {
  expect("activation-v2.kaspersky.com", NEW_INSTALLS_CUTOFF, ACTION_DENY);
  expect("s07.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  expect("ksn-file-geo.kaspersky-labs.com", UPDATES_CUTOFF, ACTION_DENY);
  expect("ksn-kas.geoksn.kaspersky.com", UPDATES_CUTOFF + DAY, ACTION_DENY);
}

Test(policy, categories_keep_their_own_cutoffs) {
  /* Between the two dates: installs are denied, updates still logged. */
  int64_t between = NEW_INSTALLS_CUTOFF + DAY;
  expect("activation-v2.kaspersky.com", between, ACTION_DENY);
  expect("dnl-01.geo.kaspersky.com", between, ACTION_LOG);
}

Test(policy, verdict_names_the_rule_and_the_cutoff_side) {
  struct verdict v = decide("S07.upd.kaspersky.com.", UPDATES_CUTOFF);
  cr_assert_eq(v.reason, VERDICT_VENDOR);
  cr_assert_not_null(v.rule);
  cr_expect_str_eq(v.rule->pattern, "s[0-1][0-9].upd.kaspersky.com");
  cr_expect_str_eq(v.rule->vendor->id, "kaspersky");
  cr_expect_str_eq(v.rule->category->name, "updates");
  cr_expect_str_eq(v.matched, "s07.upd.kaspersky.com");
  cr_expect(v.after_cutoff);
  cr_expect_eq(v.rule_action, ACTION_DENY);
  cr_expect_null(v.exception);
  cr_expect_not(v.monitor);
  cr_expect_not(decide("s07.upd.kaspersky.com", UPDATES_CUTOFF - 1).after_cutoff);
}

Test(policy, globs_match_only_the_listed_range) {
  expect("s19.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  expect("s20.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
  expect("s7.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
  expect("dnl-00.geo.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  expect("dnl-test.geo.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
}

Test(policy, no_match_allows_and_says_so) {
  struct verdict v = decide("example.com", UPDATES_CUTOFF + DAY);
  cr_expect_eq(v.action, ACTION_ALLOW);
  cr_expect_eq(v.reason, VERDICT_NO_MATCH);
  cr_expect_null(v.rule);
  cr_expect_null(v.exception);
  cr_expect_str_eq(v.matched, "example.com");
  expect("kaspersky.com", UPDATES_CUTOFF + DAY, ACTION_ALLOW);
  expect("opentip.kaspersky.com", UPDATES_CUTOFF + DAY, ACTION_ALLOW);
  expect("upd.kaspersky.com", UPDATES_CUTOFF + DAY, ACTION_ALLOW);
}

Test(policy, dot_suffix_matches_the_name_and_below) {
  expect("geoksn.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  expect("a.b.geoksn.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
}

Test(policy, most_specific_rule_wins) {
  const struct category *other = add_cat(kasp, "other", POLICY_TIME_NEVER, ACTION_ALLOW,
                                         ACTION_DENY);
  cr_assert_eq(policy_add_host(pol, kasp, other, "*.kaspersky-labs.com", at(9), NULL), 0);
  /* exact beats the subdomain wildcard; a glob beats it too */
  struct verdict v = decide("cm.k.kaspersky-labs.com", UPDATES_CUTOFF);
  cr_expect_str_eq(v.rule->pattern, "cm.k.kaspersky-labs.com");
  cr_expect_eq(v.action, ACTION_DENY);
  v = decide("ksn-url-geo.kaspersky-labs.com", UPDATES_CUTOFF);
  cr_expect_str_eq(v.rule->pattern, "ksn-*.kaspersky-labs.com");
  v = decide("touch.kaspersky-labs.com", UPDATES_CUTOFF);
  cr_expect_str_eq(v.rule->category->name, "other");
  cr_expect_eq(v.action, ACTION_ALLOW);
  cr_expect_eq(v.reason, VERDICT_VENDOR);
}

Test(policy, no_cutoff_means_before_forever) {
  const struct category *c = add_cat(kasp, "watch", POLICY_TIME_NEVER, ACTION_LOG, ACTION_DENY);
  cr_assert_eq(policy_add_host(pol, kasp, c, "touch.kaspersky.com", at(9), NULL), 0);
  expect("touch.kaspersky.com", INT64_MAX - 1, ACTION_LOG);
}

Test(policy, exception_without_expiry_overrides_and_logs) {
  cr_assert_eq(policy_add_exception(pol, "s03.upd.kaspersky.com", POLICY_TIME_NEVER,
                                    "lab mirror", at(20), NULL), 0);
  struct verdict v = decide("s03.upd.kaspersky.com", UPDATES_CUTOFF + 365 * DAY);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
  cr_expect_eq(v.rule_action, ACTION_DENY);
  cr_assert_not_null(v.exception);
  cr_expect_str_eq(v.exception->reason, "lab mirror");
  cr_assert_not_null(v.rule);
  cr_expect_str_eq(v.rule->category->name, "updates");
  expect("s04.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
}

Test(policy, exception_holds_until_its_expiry_second) {
  int64_t expires = UPDATES_CUTOFF + 30 * DAY;
  cr_assert_eq(policy_add_exception(pol, "*.upd.kaspersky.com", expires, NULL, at(20), NULL),
               0);
  expect("s03.upd.kaspersky.com", expires - 1, ACTION_LOG);
  cr_expect_eq(decide("s03.upd.kaspersky.com", expires - 1).reason, VERDICT_EXCEPTION);
  /* expired: the vendor rule applies again */
  expect("s03.upd.kaspersky.com", expires, ACTION_DENY);
  cr_expect_eq(decide("s03.upd.kaspersky.com", expires).reason, VERDICT_VENDOR);
  cr_expect_null(decide("s03.upd.kaspersky.com", expires).exception);
}

Test(policy, exception_without_vendor_match_changes_nothing) {
  cr_assert_eq(policy_add_exception(pol, "example.com", POLICY_TIME_NEVER, NULL, at(20), NULL),
               0);
  struct verdict v = decide("example.com", UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_ALLOW);
  cr_expect_eq(v.reason, VERDICT_NO_MATCH);
}

Test(policy, most_specific_exception_decides_even_when_expired) {
  cr_assert_eq(policy_add_exception(pol, ".upd.kaspersky.com", POLICY_TIME_NEVER, NULL,
                                    at(20), NULL), 0);
  cr_assert_eq(policy_add_exception(pol, "s01.upd.kaspersky.com", UPDATES_CUTOFF, NULL,
                                    at(21), NULL), 0);
  expect("s02.upd.kaspersky.com", UPDATES_CUTOFF + DAY, ACTION_LOG);
  expect("s01.upd.kaspersky.com", UPDATES_CUTOFF + DAY, ACTION_DENY);
}

Test(policy, monitor_mode_turns_deny_into_log) {
  policy_set_monitor(pol, true);
  cr_expect(policy_monitor(pol));
  struct verdict v = decide("s07.upd.kaspersky.com", UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.rule_action, ACTION_DENY);
  cr_expect(v.monitor);
  /* a log stays a log and is not flagged */
  v = decide("s07.upd.kaspersky.com", UPDATES_CUTOFF - 1);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_not(v.monitor);
  v = decide("example.com", UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_ALLOW);
  cr_expect_not(v.monitor);
}

Test(policy, ip_literal_matches_only_an_exact_pattern) {
  const struct category *c = policy_find_category(kasp, "updates");
  cr_assert_eq(policy_add_host(pol, kasp, c, "93.191.13.103", at(30), NULL), 0);
  cr_assert_eq(policy_add_host(pol, kasp, c, "*.13.104", at(31), NULL), 0);
  cr_assert_eq(policy_add_host(pol, kasp, c, "9[0-9].191.13.105", at(32), NULL), 0);
  expect("93.191.13.103", UPDATES_CUTOFF, ACTION_DENY);
  expect("93.191.13.104", UPDATES_CUTOFF, ACTION_ALLOW);
  expect("93.191.13.105", UPDATES_CUTOFF, ACTION_ALLOW);
  expect("::ffff:93.191.13.103", UPDATES_CUTOFF, ACTION_DENY);
  expect("2001:db8::1", UPDATES_CUTOFF, ACTION_ALLOW);
}

Test(policy, duplicate_pattern_reports_the_first) {
  struct origin first = {0};
  const struct category *c = policy_find_category(kasp, "telemetry");
  cr_expect_eq(policy_add_host(pol, kasp, c, "cm.k.kaspersky-labs.com", at(40), &first),
               EMB_EDUPLICATE);
  cr_expect_str_eq(first.file, "test.yaml");
  cr_expect_eq(first.line, 2);
  cr_expect_eq(policy_add_exception(pol, "a.com", POLICY_TIME_NEVER, NULL, at(41), NULL), 0);
  cr_expect_eq(policy_add_exception(pol, "a.com", 5, NULL, at(42), &first), EMB_EDUPLICATE);
  cr_expect_eq(first.line, 41);
  cr_expect_eq(policy_host_count(pol), 6);
  cr_expect_eq(policy_exception_count(pol), 1);
}

Test(policy, bad_pattern_is_rejected) {
  const struct category *c = policy_find_category(kasp, "updates");
  cr_expect_eq(policy_add_host(pol, kasp, c, "a..b", at(50), NULL), EMB_EBADPATTERN);
  cr_expect_eq(policy_add_host(pol, kasp, c, "UPPER.com", at(50), NULL), EMB_EBADPATTERN);
  cr_expect_eq(policy_add_exception(pol, "*", POLICY_TIME_NEVER, NULL, at(50), NULL),
               EMB_EBADPATTERN);
  cr_expect_eq(policy_host_count(pol), 6);
}

Test(policy, duplicate_vendor_and_category_are_rejected) {
  int err = 0;
  cr_expect_null(policy_add_vendor(pol, "kaspersky", NULL, NULL, at(60), &err));
  cr_expect_eq(err, EMB_EDUPLICATE);
  cr_expect_null(policy_add_category(pol, kasp, "updates", 0, ACTION_LOG, ACTION_DENY, at(61),
                                     &err));
  cr_expect_eq(err, EMB_EDUPLICATE);
  cr_expect_eq(policy_vendor_count(pol), 1);
  cr_expect_eq(policy_vendor_at(pol, 0), kasp);
  cr_expect_null(policy_vendor_at(pol, 1));
  cr_expect_eq(policy_find_vendor(pol, "kaspersky"), kasp);
  cr_expect_null(policy_find_vendor(pol, "huawei"));
}

Test(policy, rules_follow_their_category_when_categories_grow) {
  char name[32];
  for (int i = 0; i < 40; i++) {
    snprintf(name, sizeof(name), "cat%d", i);
    const struct category *c = add_cat(kasp, name, UPDATES_CUTOFF + i, ACTION_LOG, ACTION_DENY);
    snprintf(name, sizeof(name), "h%d.example.net", i);
    cr_assert_eq(policy_add_host(pol, kasp, c, name, at(70), NULL), 0);
  }
  struct verdict v = decide("h3.example.net", UPDATES_CUTOFF + 3);
  cr_expect_str_eq(v.rule->category->name, "cat3");
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(decide("h3.example.net", UPDATES_CUTOFF + 2).action, ACTION_LOG);
  cr_expect_str_eq(decide("s01.upd.kaspersky.com", 0).rule->category->name, "updates");
  cr_expect_eq(policy_rule_at(pol, 0)->category, policy_find_category(kasp, "new-installs"));
}

Test(policy, strings_are_copied_into_the_snapshot) {
  char buf[32] = "mutable.example.org";
  int err;
  struct vendor *v = policy_add_vendor(pol, "acme", "Acme", NULL, at(80), &err);
  const struct category *c = add_cat(v, "updates", 0, ACTION_LOG, ACTION_DENY);
  cr_assert_eq(policy_add_host(pol, v, c, buf, at(81), NULL), 0);
  memset(buf, 'x', sizeof(buf) - 1);
  struct verdict vd = decide("mutable.example.org", 1);
  cr_expect_str_eq(vd.rule->pattern, "mutable.example.org");
  cr_expect_str_eq(vd.rule->vendor->name, "Acme");
  cr_expect_null(vd.rule->vendor->reference);
  const char *s = policy_strdup(pol, "pooled");
  cr_expect_str_eq(s, "pooled");
}

Test(policy, a_reference_keeps_the_snapshot_alive) {
  struct policy *held = policy_ref(pol);
  policy_unref(pol);
  pol = held; /* teardown drops the last reference */
  expect("s07.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  policy_unref(NULL);
}

Test(policy, action_names_round_trip) {
  enum action a;
  static const enum action all[] = {ACTION_ALLOW, ACTION_LOG, ACTION_DENY};
  for (size_t i = 0; i < 3; i++) {
    cr_expect_eq(action_parse(action_name(all[i]), &a), 0);
    cr_expect_eq(a, all[i]);
  }
  cr_expect_str_eq(action_name(ACTION_DENY), "deny");
  cr_expect_eq(action_parse("block", &a), -EINVAL);
  cr_expect_eq(action_parse("Deny", &a), -EINVAL);
}

/* ---- networks, SNI, CNAMEs, JA4: every fact judged, the strictest wins -- */

#define JA4_CURL "t13d3112h2_e8f1e7e78f70_6bebaf5329ac"

static void add_net(const char *cat, const char *prefix, enum confidence conf) {
  struct cidr net;
  cr_assert_eq(cidr_parse(prefix, strlen(prefix), &net), 0, "%s", prefix);
  const struct category *c = policy_find_category(kasp, cat);
  cr_assert_eq(policy_add_network(pol, kasp, c, &net, conf, at(50), NULL), 0, "%s", prefix);
}

static struct ip_addr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return (struct ip_addr){.family = AF_INET, .addr = {a, b, c, d}};
}

/* A destination "host" with the given other facts (any may be NULL/0). */
static struct verdict decide_facts(const char *host, const char *sni, const char *cname,
                                   const struct ip_addr *addr, const char *ja4, int64_t now) {
  struct host h;
  struct verdict v;
  cr_assert_eq(host_normalise(host, strlen(host), &h), 0, "%s", host);
  struct facts f = {.host = &h, .sni = &sni, .nsni = sni != NULL, .cnames = &cname,
                    .ncnames = cname != NULL, .addrs = addr, .naddrs = addr != NULL,
                    .ja4 = ja4};
  policy_decide(pol, &f, now, &v);
  return v;
}

/* The Kaspersky-like networks: a hint /23 with a strong /32 inside it. */
static void add_networks(void) {
  add_net("updates", "37.203.128.0/23", CONFIDENCE_HINT);
  add_net("updates", "37.203.129.5/32", CONFIDENCE_STRONG);
  add_net("telemetry", "2a03:2480::/32", CONFIDENCE_STRONG);
}

Test(policy, longest_prefix_decides_an_address) {
  add_networks();
  struct ip_addr in_32 = ip4(37, 203, 129, 5), in_23 = ip4(37, 203, 129, 6);
  struct verdict v = decide_facts("example.com", NULL, NULL, &in_32, NULL, UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_str_eq(v.rule->pattern, "37.203.129.5/32");
  cr_expect_str_eq(v.matched, "37.203.129.5");
  cr_expect_eq(v.on, MATCH_ADDRESS);
  v = decide_facts("example.com", NULL, NULL, &in_23, NULL, UPDATES_CUTOFF);
  cr_expect_str_eq(v.rule->pattern, "37.203.128.0/23");
  cr_expect_eq(policy_network_count(pol), 3);
}

Test(policy, hint_network_is_capped_at_log) {
  add_networks();
  struct ip_addr a = ip4(37, 203, 128, 1);
  struct verdict v = decide_facts("example.com", NULL, NULL, &a, NULL, UPDATES_CUTOFF + DAY);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.rule_action, ACTION_DENY, "the rule's own action is kept for the log");
  cr_expect(v.hint);
  cr_expect_eq(v.reason, VERDICT_VENDOR);
}

Test(policy, strong_network_denies_after_the_cutoff_only) {
  add_networks();
  struct ip_addr a = {.family = AF_INET6, .addr = {0x2a, 0x03, 0x24, 0x80, 0, 0x68}};
  cr_expect_eq(decide_facts("example.com", NULL, NULL, &a, NULL, UPDATES_CUTOFF).action,
               ACTION_DENY);
  cr_expect_eq(decide_facts("example.com", NULL, NULL, &a, NULL, UPDATES_CUTOFF - 1).action,
               ACTION_LOG);
  cr_expect_not(decide_facts("example.com", NULL, NULL, &a, NULL, UPDATES_CUTOFF).hint);
}

Test(policy, ip_literal_host_is_matched_against_networks) {
  add_networks();
  struct verdict v = decide("37.203.129.5", UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_ADDRESS);
  cr_expect_str_eq(v.matched, "37.203.129.5");
  v = decide("::ffff:37.203.128.9", UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_LOG, "a mapped IPv4 literal is the IPv4 address");
  cr_expect(v.hint);
  expect("[2a03:2480:68::1]", UPDATES_CUTOFF, ACTION_DENY);
  expect("37.203.130.1", UPDATES_CUTOFF, ACTION_ALLOW);
}

Test(policy, exception_on_the_host_covers_its_addresses_and_cnames) {
  add_networks();
  cr_assert_eq(policy_add_exception(pol, "mirror.example.com", POLICY_TIME_NEVER, "lab mirror",
                                    at(60), NULL), 0);
  struct ip_addr a = ip4(37, 203, 129, 5);
  struct verdict v = decide_facts("mirror.example.com", NULL, "dnl-03.geo.kaspersky.com", &a,
                                  NULL, UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
  cr_expect_str_eq(v.exception->reason, "lab mirror");
  /* without the exception the same facts are denied */
  v = decide_facts("other.example.com", NULL, "dnl-03.geo.kaspersky.com", &a, NULL,
                   UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_CNAME, "at equal strength the CNAME comes before the address");
}

Test(policy, expired_host_exception_covers_nothing) {
  add_networks();
  cr_assert_eq(policy_add_exception(pol, "mirror.example.com", UPDATES_CUTOFF, NULL, at(60),
                                    NULL), 0);
  struct ip_addr a = ip4(37, 203, 129, 5);
  cr_expect_eq(decide_facts("mirror.example.com", NULL, NULL, &a, NULL, UPDATES_CUTOFF).action,
               ACTION_DENY);
}

Test(policy, sni_needs_its_own_exception) {
  cr_assert_eq(policy_add_exception(pol, "mirror.example.com", POLICY_TIME_NEVER, NULL, at(60),
                                    NULL), 0);
  struct verdict v = decide_facts("mirror.example.com", "s01.upd.kaspersky.com", NULL, NULL,
                                  NULL, UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_DENY, "a client chooses its SNI: the host's exception must "
                                      "not carry over");
  cr_expect_eq(v.on, MATCH_SNI);
  cr_assert_eq(policy_add_exception(pol, "s01.upd.kaspersky.com", POLICY_TIME_NEVER, NULL,
                                    at(61), NULL), 0);
  v = decide_facts("mirror.example.com", "s01.upd.kaspersky.com", NULL, NULL, NULL,
                   UPDATES_CUTOFF);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
}

Test(policy, strictest_fact_wins_whichever_it_is) {
  add_networks();
  const struct category *tel = policy_find_category(kasp, "telemetry");
  cr_assert_eq(policy_add_ja4(pol, kasp, tel, JA4_CURL, CONFIDENCE_STRONG, at(70), NULL), 0);
  struct ip_addr hint_addr = ip4(37, 203, 128, 1), strong_addr = ip4(37, 203, 129, 5);
  int64_t between = UPDATES_CUTOFF - DAY; /* new-installs denies, the rest logs */
  /* host logs, SNI denies */
  struct verdict v = decide_facts("s01.upd.kaspersky.com", "activation-v2.kaspersky.com",
                                  NULL, NULL, NULL, between);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_SNI);
  /* host allowed, CNAME denies */
  v = decide_facts("example.com", NULL, "activation-v2.kaspersky.com", NULL, NULL, between);
  cr_expect_eq(v.on, MATCH_CNAME);
  cr_expect_eq(v.action, ACTION_DENY);
  /* a hint address never outranks a denying host */
  v = decide_facts("s01.upd.kaspersky.com", NULL, NULL, &hint_addr, NULL, UPDATES_CUTOFF);
  cr_expect_eq(v.on, MATCH_HOST);
  cr_expect_eq(v.action, ACTION_DENY);
  /* a strong address denies a host nobody listed */
  v = decide_facts("example.com", NULL, NULL, &strong_addr, NULL, UPDATES_CUTOFF);
  cr_expect_eq(v.on, MATCH_ADDRESS);
  /* JA4 alone */
  v = decide_facts("example.com", NULL, NULL, &hint_addr, JA4_CURL, UPDATES_CUTOFF);
  cr_expect_eq(v.on, MATCH_JA4);
  cr_expect_eq(v.action, ACTION_DENY);
  /* at equal strength the first in host, SNI, CNAME, address, JA4 order names it */
  v = decide_facts("s01.upd.kaspersky.com", "s02.upd.kaspersky.com", "s03.upd.kaspersky.com",
                   &strong_addr, JA4_CURL, UPDATES_CUTOFF);
  cr_expect_eq(v.on, MATCH_HOST);
  cr_expect_str_eq(v.matched, "s01.upd.kaspersky.com");
}

Test(policy, hint_ja4_is_capped_at_log) {
  const struct category *c = policy_find_category(kasp, "updates");
  cr_assert_eq(policy_add_ja4(pol, kasp, c, JA4_CURL, CONFIDENCE_HINT, at(70), NULL), 0);
  struct facts f = {.ja4 = JA4_CURL};
  struct verdict v;
  policy_decide(pol, &f, UPDATES_CUTOFF, &v);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect(v.hint);
  cr_expect_eq(policy_ja4_count(pol), 1);
}

Test(policy, duplicate_network_reports_the_first) {
  struct cidr net;
  struct origin first = {0};
  add_networks();
  cr_assert_eq(cidr_parse("37.203.128.0/23", 15, &net), 0);
  const struct category *c = policy_find_category(kasp, "telemetry");
  cr_expect_eq(policy_add_network(pol, kasp, c, &net, CONFIDENCE_STRONG, at(80), &first),
               EMB_EDUPLICATE);
  cr_expect_eq(first.line, 50);
}

/* A list's rules all name its file: the snapshot keeps one copy of the
 * name for them, not one per rule (a million-pattern list would otherwise
 * hold a million copies), and each rule still says where it was written. */
Test(policy, rules_from_one_file_share_one_copy_of_its_name) {
  char file[64], other[64];
  const struct category *c = policy_find_category(kasp, "updates");
  struct verdict v1, v2, v3;
  snprintf(file, sizeof(file), "lists/site.yaml");
  snprintf(other, sizeof(other), "lists/more.yaml");
  cr_assert_eq(policy_add_host(pol, kasp, c, "a.site.test", (struct origin){file, 3, 7}, NULL), 0);
  cr_assert_eq(policy_add_host(pol, kasp, c, "b.site.test", (struct origin){file, 4, 7}, NULL), 0);
  cr_assert_eq(policy_add_host(pol, kasp, c, "c.site.test", (struct origin){other, 2, 7}, NULL), 0);
  memset(file, 'x', sizeof(file) - 1); /* the loader's buffers go away */
  memset(other, 'x', sizeof(other) - 1);
  v1 = decide("a.site.test", UPDATES_CUTOFF);
  v2 = decide("b.site.test", UPDATES_CUTOFF);
  v3 = decide("c.site.test", UPDATES_CUTOFF);
  cr_assert_not_null(v1.rule);
  cr_assert_not_null(v2.rule);
  cr_assert_not_null(v3.rule);
  cr_expect_str_eq(v1.rule->where.file, "lists/site.yaml");
  cr_expect_eq(v1.rule->where.line, 3);
  cr_expect_eq(v2.rule->where.line, 4);
  cr_expect_eq(v1.rule->where.file, v2.rule->where.file, "one copy for the file's rules");
  cr_expect_str_eq(v3.rule->where.file, "lists/more.yaml");
  cr_expect_str_eq(v1.rule->pattern, "a.site.test");
}
