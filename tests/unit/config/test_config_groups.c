/* Client groups in the configuration: `client_groups:`, exceptions,
 * `vendors:` entries and client profiles scoped to them with `clients:`,
 * what each opens or closes for whom, and the exact errors. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "filters/err.h"
#include "tests/unit/config_fixture.h"

#define NOW   INT64_C(1796083200) /* 2026-12-01T00:00:00Z */
#define EARLY INT64_C(1577836800) /* 2020-01-01: before Hikvision's cutoff */

#define GROUPS                                                                                     \
  "client_groups:\n"                                                                               \
  "  lab: [10.9.0.0/16, \"fd00:9::/32\"]\n"                                                        \
  "  ksc: [10.9.1.0/24, 10.1.2.3/32]\n"

TestSuite(config_groups, .init = setup, .fini = teardown);

static uint64_t groups_of(const char *ip) {
  uint8_t addr[16] = {0};
  int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
  cr_assert_eq(inet_pton(family, ip, addr), 1, "%s", ip);
  return policy_client_groups(cfg.policy, family, addr);
}

/* The verdict on NAME for a client at IP (NULL: no client). */
static struct verdict decide_for(const char *ip, const char *name, int64_t now) {
  struct host h;
  struct verdict v;
  cr_assert_eq(host_normalise(name, strlen(name), &h), 0);
  struct facts f = {.host = &h, .groups = ip != NULL ? groups_of(ip) : 0};
  policy_decide(cfg.policy, &f, now, &v);
  return v;
}

static void expect_for(const char *ip, const char *name, int64_t now, enum action want,
                       const char *group) {
  struct verdict v = decide_for(ip, name, now);
  cr_expect_eq(v.action, want, "%s for %s: got %s, want %s", name, ip ? ip : "(none)",
               action_name(v.action), action_name(want));
  if (group == NULL)
    cr_expect_null(v.client_group, "%s for %s: decided by group %s", name, ip ? ip : "(none)",
                   v.client_group);
  else
    cr_expect(v.client_group != NULL && strcmp(v.client_group, group) == 0,
              "%s for %s: group %s, want %s", name, ip ? ip : "(none)",
              v.client_group ? v.client_group : "(none)", group);
}

Test(config_groups, groups_are_read_with_their_networks) {
  char nets[128];
  cr_assert_eq(load(GROUPS), 0, "%s", err);
  cr_expect_eq(policy_group_count(cfg.policy), 2);
  cr_expect_str_eq(policy_group_name(cfg.policy, 1), "ksc");
  policy_group_networks(cfg.policy, 1, nets, sizeof(nets));
  cr_expect_str_eq(nets, "10.9.1.0/24, 10.1.2.3/32");
  cr_expect_eq(groups_of("10.9.1.7"), 3);
  cr_expect_eq(groups_of("fd00:9::7"), 1);
  cr_expect_eq(groups_of("192.168.1.1"), 0);
}

Test(config_groups, a_lab_exception_admits_the_lab_and_nobody_else) {
  cr_assert_eq(load(GROUPS "exceptions:\n"
                           "  - host: .upd.kaspersky.com\n"
                           "    clients: [lab]\n"
                           "    reason: malware lab until its migration\n"),
               0, "%s", err);
  expect_for("10.9.200.1", "s07.upd.kaspersky.com", NOW, ACTION_LOG, "lab");
  expect_for("fd00:9::1", "s07.upd.kaspersky.com", NOW, ACTION_LOG, "lab");
  expect_for("10.1.2.3", "s07.upd.kaspersky.com", NOW, ACTION_DENY, NULL);
  expect_for("192.168.1.1", "s07.upd.kaspersky.com", NOW, ACTION_DENY, NULL);
  expect_for(NULL, "s07.upd.kaspersky.com", NOW, ACTION_DENY, NULL);
  struct verdict v = decide_for("10.9.200.1", "s07.upd.kaspersky.com", NOW);
  cr_expect_eq(v.exception->groups, 1);
  cr_expect_str_eq(v.exception->reason, "malware lab until its migration");
}

Test(config_groups, a_vendor_entry_with_clients_overrides_for_its_groups_alone) {
  /* The lab's entry first: every client's override still lies beneath it. */
  cr_assert_eq(load(GROUPS "vendors:\n"
                           "  - builtin: kaspersky\n"
                           "    clients: [lab]\n"
                           "    override: { updates: { before: deny } }\n"
                           "  - builtin: kaspersky\n"
                           "    override: { updates: { after: log } }\n"),
               0, "%s", err);
  cr_expect_eq(policy_vendor_count(cfg.policy), 1, "one list, named twice");
  cr_expect_eq(policy_find_vendor(cfg.policy, "kaspersky")->groups, 0, "for every client");
  expect_for("10.9.200.1", "s07.upd.kaspersky.com", NOW, ACTION_LOG, "lab");
  expect_for("10.9.200.1", "s07.upd.kaspersky.com", UPDATES_CUTOFF - 1, ACTION_DENY, "lab");
  expect_for("10.1.2.3", "s07.upd.kaspersky.com", UPDATES_CUTOFF - 1, ACTION_LOG, NULL);
  expect_for("10.1.2.3", "s07.upd.kaspersky.com", NOW, ACTION_LOG, NULL);
  struct verdict v = decide_for("10.9.200.1", "s07.upd.kaspersky.com", UPDATES_CUTOFF - 1);
  cr_expect_eq(v.from, ACTION_FROM_OVERRIDE);
  cr_expect_eq(verdict_actions(&v).override_where.line, 7);
  cr_expect_eq(verdict_actions(&v).after, ACTION_LOG, "every client's override beneath");
}

Test(config_groups, a_list_named_only_with_clients_is_in_force_for_those_groups) {
  cr_assert_eq(load(GROUPS "vendors:\n"
                           "  - builtin: kaspersky\n"
                           "  - { builtin: hikvision, clients: [ksc] }\n"),
               0, "%s", err);
  cr_expect_eq(policy_find_vendor(cfg.policy, "hikvision")->groups, 2);
  expect_for("10.1.2.3", "api.hik-connect.com", NOW, ACTION_LOG, "ksc");
  expect_for("10.9.200.1", "api.hik-connect.com", NOW, ACTION_ALLOW, NULL);
  expect_for(NULL, "api.hik-connect.com", NOW, ACTION_ALLOW, NULL);
}

Test(config_groups, a_client_profile_loads_and_presets_its_lists_for_its_groups) {
  cr_assert_eq(load(GROUPS "client_profiles:\n"
                           "  - { profile: us-federal, clients: [ksc] }\n"),
               0, "%s", err);
  cr_expect_eq(cfg.nclient_profiles, 1);
  cr_expect_eq(policy_find_vendor(cfg.policy, "kaspersky")->groups, 0);
  cr_expect_eq(policy_find_vendor(cfg.policy, "hikvision")->groups, 2, "us-federal's, for ksc");
  expect_for("10.1.2.3", "api.hik-connect.com", NOW, ACTION_DENY, "ksc");
  expect_for("10.9.200.1", "api.hik-connect.com", NOW, ACTION_ALLOW, NULL);
  expect_for("10.9.200.1", "s07.upd.kaspersky.com", NOW, ACTION_DENY, NULL);
  struct verdict v = decide_for("10.1.2.3", "api.hik-connect.com", NOW);
  cr_expect_eq(v.from, ACTION_FROM_PRESET);
  cr_expect_str_eq(verdict_actions(&v).preset, "us-federal");
}

Test(config_groups, a_groups_override_lies_over_a_client_profiles_preset) {
  cr_assert_eq(load(GROUPS "client_profiles:\n"
                           "  - { profile: us-federal, clients: [ksc] }\n"
                           "vendors:\n"
                           "  - builtin: hikvision\n"
                           "  - builtin: hikvision\n"
                           "    clients: [lab]\n"
                           "    override: { cloud: { before: deny } }\n"),
               0, "%s", err);
  /* no group: the list's own (log, log) */
  expect_for("192.168.1.1", "api.hik-connect.com", EARLY, ACTION_LOG, NULL);
  expect_for("192.168.1.1", "api.hik-connect.com", NOW, ACTION_LOG, NULL);
  /* ksc alone: the us-federal preset denies from the cutoff */
  expect_for("10.1.2.3", "api.hik-connect.com", EARLY, ACTION_LOG, "ksc");
  expect_for("10.1.2.3", "api.hik-connect.com", NOW, ACTION_DENY, "ksc");
  /* lab alone: its override denies before the cutoff */
  expect_for("10.9.200.1", "api.hik-connect.com", EARLY, ACTION_DENY, "lab");
  expect_for("10.9.200.1", "api.hik-connect.com", NOW, ACTION_LOG, "lab");
  /* lab and ksc: the override over the preset, both */
  expect_for("10.9.1.5", "api.hik-connect.com", EARLY, ACTION_DENY, "lab");
  expect_for("10.9.1.5", "api.hik-connect.com", NOW, ACTION_DENY, "lab");
  struct verdict v = decide_for("10.9.1.5", "api.hik-connect.com", NOW);
  cr_expect_eq(v.from, ACTION_FROM_PRESET);
}

Test(config_groups, an_unknown_group_is_refused_where_it_is_named) {
  expect_error(GROUPS "exceptions:\n  - { host: a.example, clients: [lab, soc] }\n",
               "@/main.yaml:5:39: exceptions[0].clients[1]: unknown client group 'soc' "
               "(client_groups has: lab, ksc)");
  expect_error(GROUPS "vendors:\n  - { builtin: kaspersky, clients: [soc] }\n",
               "@/main.yaml:5:37: vendors[0].clients[0]: unknown client group 'soc' "
               "(client_groups has: lab, ksc)");
  expect_error("client_profiles:\n  - { profile: us-federal, clients: [lab] }\n",
               "@/main.yaml:2:38: client_profiles[0].clients[0]: unknown client group 'lab' "
               "(client_groups has: none: client_groups is empty)");
}

Test(config_groups, bad_groups_are_refused_with_their_position) {
  expect_error("client_groups:\n  lab: [10.9.0.0/8]\n",
               "@/main.yaml:2:9: client_groups.lab[0]: invalid network prefix '10.9.0.0/8' "
               "(expected a CIDR like 10.9.0.0/16, host bits zero)");
  expect_error("client_groups:\n  lab: [10.9.0.0/16]\n  lab: [10.8.0.0/16]\n",
               "@/main.yaml:3:3: client_groups.lab: duplicate client group 'lab'");
  expect_error("client_groups:\n  lab: [10.9.0.0/16, 10.9.0.0/16]\n",
               "@/main.yaml:2:22: client_groups.lab[1]: duplicate network '10.9.0.0/16' in "
               "client group lab");
  expect_error("client_groups:\n  lab: []\n",
               "@/main.yaml:2:8: client_groups.lab: expected a list of networks like "
               "10.9.0.0/16 (at least one)");
  expect_error("client_groups:\n  Lab: [10.9.0.0/16]\n",
               "@/main.yaml:2:3: client_groups.Lab: expected a group name of a-z, 0-9, '-' "
               "and '_'");
  expect_error("client_groups: [10.9.0.0/16]\n",
               "@/main.yaml:1:16: client_groups: expected a mapping of group names to "
               "networks like lab: [10.9.0.0/16]");
}

Test(config_groups, bad_clients_lists_are_refused) {
  expect_error(GROUPS "exceptions:\n  - { host: a.example, clients: [] }\n",
               "@/main.yaml:5:33: exceptions[0].clients: expected a list of client group "
               "names of client_groups (at least one)");
  expect_error(GROUPS "exceptions:\n  - { host: a.example, clients: [lab, lab] }\n",
               "@/main.yaml:5:39: exceptions[0].clients[1]: client group 'lab' named twice");
  expect_error(GROUPS "client_profiles:\n  - { profile: us-fed, clients: [lab] }\n",
               "@/main.yaml:5:16: client_profiles[0].profile: unknown profile 'us-fed' "
               "(expected us-commercial or us-federal)");
  expect_error(GROUPS "client_profiles:\n  - { profile: us-federal }\n",
               "@/main.yaml:5:5: client_profiles[0].clients: missing; expected a list of "
               "client group names of client_groups");
}

Test(config_groups, a_pattern_may_be_excepted_once_per_set_of_groups) {
  cr_assert_eq(load(GROUPS "exceptions:\n"
                           "  - { host: a.example, clients: [lab] }\n"
                           "  - { host: a.example, clients: [ksc] }\n"
                           "  - { host: a.example }\n"),
               0, "%s", err);
  config_free(&cfg);
  expect_error(GROUPS "exceptions:\n"
                      "  - { host: a.example, clients: [lab] }\n"
                      "  - { host: a.example, clients: [lab] }\n",
               "@/main.yaml:6:13: exceptions[1].host: duplicate exception 'a.example' (first at "
               "@/main.yaml:5:13)");
}
