/* Client groups in the policy engine: a client's groups from nested and
 * shared networks, and exceptions, category scopes and lists scoped to
 * groups, which never open anything for a client outside them. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/policy.h"

#define UPDATES_CUTOFF INT64_C(1727582400) /* 2024-09-29T00:00:00-04:00 */
#define AFTER          (UPDATES_CUTOFF + 86400)
#define BEFORE         (UPDATES_CUTOFF - 86400)

static struct policy *pol;
static struct vendor *kasp;
static size_t lab, ksc;

static struct origin at(unsigned line) {
  return (struct origin){.file = "test.yaml", .line = line, .col = 3};
}

static void add_net(size_t group, const char *text) {
  struct cidr c;
  cr_assert_eq(cidr_parse(text, strlen(text), &c), 0, "%s", text);
  cr_assert_eq(policy_add_group_network(pol, group, &c), 0, "%s", text);
}

static struct category *add_cat(struct vendor *v, const char *name) {
  int err = 1;
  struct category *c =
      policy_add_category(pol, v, name, UPDATES_CUTOFF, ACTION_LOG, ACTION_DENY, at(1), &err);
  cr_assert_not_null(c);
  return c;
}

static void add_host(const struct vendor *v, const char *cat, const char *pattern) {
  const struct category *c = policy_find_category(v, cat);
  cr_assert_not_null(c);
  cr_assert_eq(policy_add_host(pol, v, c, pattern, at(2), NULL), 0, "%s", pattern);
}

/* lab: 10.9.0.0/16 and fd00:9::/32; ksc: 10.9.1.0/24 (inside lab's) and
 * 10.1.2.3/32. Kaspersky's updates: log before the cutoff, deny from it. */
static void setup(void) {
  int err = 1;
  pol = policy_new();
  cr_assert_not_null(pol);
  cr_assert_eq(policy_add_group(pol, "lab", &lab), 0);
  cr_assert_eq(policy_add_group(pol, "ksc", &ksc), 0);
  add_net(ksc, "10.9.1.0/24"); /* the inner one first: the outer must still reach it */
  add_net(lab, "10.9.0.0/16");
  add_net(lab, "fd00:9::/32");
  add_net(ksc, "10.1.2.3/32");
  kasp = policy_add_vendor(pol, "kaspersky", "Kaspersky Lab", NULL, at(1), &err);
  cr_assert_not_null(kasp);
  add_cat(kasp, "updates");
  add_host(kasp, "updates", "s[0-1][0-9].upd.kaspersky.com");
  add_host(kasp, "updates", ".geo.kaspersky.com");
}

static void teardown(void) {
  policy_unref(pol);
  pol = NULL;
}

TestSuite(policy_groups, .init = setup, .fini = teardown);

static uint64_t groups_of(const char *ip) {
  uint8_t addr[16] = {0};
  int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
  cr_assert_eq(inet_pton(family, ip, addr), 1, "%s", ip);
  return policy_client_groups(pol, family, addr);
}

static struct verdict decide_for(const char *client, const char *name, int64_t now) {
  struct host h;
  struct verdict v;
  cr_assert_eq(host_normalise(name, strlen(name), &h), 0);
  struct facts f = {.host = &h, .groups = client != NULL ? groups_of(client) : 0};
  policy_decide(pol, &f, now, &v);
  return v;
}

#define LAB (UINT64_C(1) << lab)
#define KSC (UINT64_C(1) << ksc)

Test(policy_groups, a_client_is_in_every_group_whose_networks_hold_it) {
  cr_expect_eq(groups_of("10.9.1.5"), LAB | KSC);
  cr_expect_eq(groups_of("10.9.200.1"), LAB);
  cr_expect_eq(groups_of("10.1.2.3"), KSC);
  cr_expect_eq(groups_of("10.1.2.4"), 0);
  cr_expect_eq(groups_of("fd00:9::1"), LAB);
  cr_expect_eq(groups_of("fd00:a::1"), 0);
  char names[64];
  policy_format_groups(pol, LAB | KSC, names, sizeof(names));
  cr_expect_str_eq(names, "lab, ksc");
  policy_group_networks(pol, lab, names, sizeof(names));
  cr_expect_str_eq(names, "10.9.0.0/16, fd00:9::/32");
}

Test(policy_groups, a_network_may_be_in_two_groups_but_once_in_each) {
  struct cidr c;
  cr_assert_eq(cidr_parse("10.1.2.3/32", 11, &c), 0);
  cr_expect_eq(policy_add_group_network(pol, lab, &c), 0);
  cr_expect_eq(groups_of("10.1.2.3"), LAB | KSC);
  cr_expect_eq(policy_add_group_network(pol, lab, &c), EMB_EDUPLICATE);
}

Test(policy_groups, names_are_unique_and_at_most_64) {
  size_t i;
  char name[16];
  cr_expect_eq(policy_add_group(pol, "lab", &i), EMB_EDUPLICATE);
  cr_expect_eq(policy_group_find(pol, "ksc"), (int)ksc);
  cr_expect_eq(policy_group_find(pol, "soc"), -1);
  for (int k = 2; k < POLICY_MAX_GROUPS; k++) {
    snprintf(name, sizeof(name), "g%d", k);
    cr_assert_eq(policy_add_group(pol, name, &i), 0);
  }
  cr_expect_eq(policy_add_group(pol, "one-too-many", &i), EMB_ETOOBIG);
  cr_expect_eq(policy_group_count(pol), POLICY_MAX_GROUPS);
}

Test(policy_groups, a_scoped_exception_opens_for_its_group_and_nobody_else) {
  cr_assert_eq(policy_add_exception_for(pol, "s01.upd.kaspersky.com", POLICY_TIME_NEVER,
                                        "malware lab", LAB, at(9), NULL),
               0);
  struct verdict v = decide_for("10.9.200.1", "s01.upd.kaspersky.com", AFTER);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
  cr_expect_str_eq(v.client_group, "lab");
  /* Everyone else: ksc, no group, an unknown client, IPv6 outside. */
  const char *others[] = {"10.1.2.3", "10.1.2.4", "fd00:a::1", NULL};
  for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
    v = decide_for(others[i], "s01.upd.kaspersky.com", AFTER);
    cr_expect_eq(v.action, ACTION_DENY, "client %s", others[i] ? others[i] : "(none)");
    cr_expect_eq(v.reason, VERDICT_VENDOR);
    cr_expect_null(v.client_group);
    cr_expect_null(v.exception);
  }
}

Test(policy_groups, a_scoped_exception_covers_the_chain_and_addresses_only_for_its_group) {
  struct host h;
  const char *chain[] = {"dnl-01.geo.kaspersky.com"};
  cr_assert_eq(policy_add_exception_for(pol, "updates.example.com", POLICY_TIME_NEVER, NULL, LAB,
                                        at(9), NULL),
               0);
  cr_assert_eq(host_normalise("updates.example.com", 19, &h), 0);
  struct facts f = {.host = &h, .cnames = chain, .ncnames = 1, .groups = groups_of("10.9.0.1")};
  struct verdict v;
  policy_decide(pol, &f, AFTER, &v);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_str_eq(v.client_group, "lab");
  f.groups = groups_of("10.1.2.3");
  policy_decide(pol, &f, AFTER, &v);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_CNAME);
}

Test(policy_groups, a_scoped_exception_hides_no_broader_one_from_others) {
  cr_assert_eq(
      policy_add_exception(pol, ".upd.kaspersky.com", POLICY_TIME_NEVER, NULL, at(8), NULL), 0);
  /* Expired for lab: lab's clients still get what everyone gets. */
  cr_assert_eq(
      policy_add_exception_for(pol, "s01.upd.kaspersky.com", BEFORE, NULL, LAB, at(9), NULL), 0);
  struct verdict v = decide_for("10.1.2.4", "s01.upd.kaspersky.com", AFTER);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
  cr_expect_str_eq(v.exception->pattern, ".upd.kaspersky.com");
  cr_expect_null(v.client_group, "an exception for everyone is no group's");
  v = decide_for("10.9.0.1", "s01.upd.kaspersky.com", AFTER);
  cr_expect_eq(v.reason, VERDICT_EXCEPTION);
  cr_expect_null(v.client_group);
}

Test(policy_groups, an_expired_exception_for_everyone_leaves_a_groups_own) {
  cr_assert_eq(policy_add_exception(pol, "s01.upd.kaspersky.com", BEFORE, NULL, at(8), NULL), 0);
  cr_assert_eq(policy_add_exception_for(pol, ".upd.kaspersky.com", POLICY_TIME_NEVER, NULL, KSC,
                                        at(9), NULL),
               0);
  cr_expect_eq(decide_for("10.1.2.4", "s01.upd.kaspersky.com", AFTER).action, ACTION_DENY);
  struct verdict v = decide_for("10.1.2.3", "s01.upd.kaspersky.com", AFTER);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_str_eq(v.client_group, "ksc");
}

Test(policy_groups, the_same_pattern_once_per_set_of_groups) {
  struct origin first = {0};
  cr_expect_eq(
      policy_add_exception_for(pol, "a.example", POLICY_TIME_NEVER, NULL, LAB, at(3), NULL), 0);
  cr_expect_eq(
      policy_add_exception_for(pol, "a.example", POLICY_TIME_NEVER, NULL, KSC, at(4), NULL), 0);
  cr_expect_eq(policy_add_exception(pol, "a.example", POLICY_TIME_NEVER, NULL, at(5), NULL), 0);
  cr_expect_eq(
      policy_add_exception_for(pol, "a.example", POLICY_TIME_NEVER, NULL, KSC, at(6), &first),
      EMB_EDUPLICATE);
  cr_expect_eq(first.line, 4);
}

Test(policy_groups, a_category_scope_gives_its_groups_their_actions) {
  struct category *c = policy_edit_category(kasp, "updates");
  struct category_scope s = {.groups = LAB,
                             .by = SCOPE_BY_OVERRIDE,
                             .before = ACTION_LOG,
                             .after = ACTION_ALLOW,
                             .after_from = ACTION_FROM_OVERRIDE,
                             .override_where = at(12)};
  cr_assert_eq(policy_add_scope(pol, c, 0, &s), 0);
  s = (struct category_scope){.groups = LAB | KSC, .after = ACTION_LOG};
  cr_assert_eq(policy_add_scope(pol, c, 1, &s), 0);
  struct verdict v = decide_for("10.9.1.5", "s01.upd.kaspersky.com", AFTER);
  cr_expect_eq(v.action, ACTION_ALLOW, "the first scope naming one of its groups");
  cr_expect_eq(v.from, ACTION_FROM_OVERRIDE);
  cr_expect_str_eq(v.client_group, "lab");
  cr_expect_eq(verdict_actions(&v).override_where.line, 12);
  v = decide_for("10.1.2.3", "s01.upd.kaspersky.com", AFTER);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_str_eq(v.client_group, "ksc");
  v = decide_for("10.1.2.4", "s01.upd.kaspersky.com", AFTER);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_null(v.scope);
  cr_expect_null(v.client_group);
  cr_expect_eq(verdict_actions(&v).after, ACTION_DENY);
}

Test(policy_groups, a_scoped_list_is_judged_only_for_its_groups_and_hides_nothing) {
  int err = 1;
  struct vendor *all = policy_add_vendor(pol, "wide", NULL, NULL, at(20), &err);
  cr_assert_not_null(all);
  add_cat(all, "cloud");
  add_host(all, "cloud", "*.example.org");
  struct vendor *scoped = policy_add_vendor(pol, "narrow", NULL, NULL, at(30), &err);
  cr_assert_not_null(scoped);
  scoped->groups = KSC;
  struct category *c = add_cat(scoped, "app");
  c->after = ACTION_LOG;
  add_host(scoped, "app", "a.example.org"); /* more specific than wide's */
  add_host(scoped, "app", "only.example.net");
  /* No group: the scoped list is not there, and hides nothing of wide's. */
  struct verdict v = decide_for("10.1.2.4", "a.example.org", AFTER);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_str_eq(v.rule->vendor->id, "wide");
  cr_expect_eq(decide_for("10.1.2.4", "only.example.net", AFTER).reason, VERDICT_NO_MATCH);
  /* ksc: both lists judge, the strictest wins. */
  v = decide_for("10.1.2.3", "a.example.org", AFTER);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_str_eq(v.rule->vendor->id, "wide");
  v = decide_for("10.1.2.3", "only.example.net", AFTER);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect_str_eq(v.rule->vendor->id, "narrow");
  cr_expect_str_eq(v.client_group, "ksc");
}
