/* Unit tests for proxy/judge.c, the one decision the proxy and `embargo
 * check` share: refusals first (a CONNECT port, internal addresses, the
 * proxy's own listeners, internal server-name literals), then the vendor
 * rules on every fact (the name, the SNI of a CONNECT's ClientHello, the
 * CNAME chain, the addresses), then each configured outcome (a ClientHello
 * outcome, transparent.on_dst_mismatch) where stricter, strictest winning;
 * the destination-mismatch test; and the decision log line written from a
 * judgement, field by field. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "filters/err.h"
#include "filters/netmatch.h"
#include "proxy/decide/destcheck.h"
#include "proxy/base/dns.h"
#include "proxy/decide/judge.h"
#include "proxy/base/log.h"
#include "tests/unit/config_fixture.h"

#define ACME_CUTOFF INT64_C(1893456000) /* 2030-01-01T00:00:00Z */
#define BEFORE      (ACME_CUTOFF - 86400)
#define AFTER       (ACME_CUTOFF + 86400)

static const char acme[] = "vendor: acme\n"
                           "name: Acme Updates\n"
                           "reference: \"unit test\"\n"
                           "categories:\n"
                           "  updates:\n"
                           "    cutoff: 2030-01-01T00:00:00Z\n"
                           "    hosts:\n"
                           "      - upd.acme.test\n"
                           "    networks:\n"
                           "      - 192.0.2.0/24\n";

static struct destcheck dc;
static bool dc_made;
static struct dns_answer *answers[8]; /* made by kept(), dropped at teardown */
static size_t nanswers;

/* The config (acme's list, connect_ports 443 and 563) and a destcheck
 * without internal.allow that knows of a listener on 127.0.0.1:3128. */
static void judge_setup(void) {
  struct sockaddr_in self = {.sin_family = AF_INET, .sin_port = htons(3128)};
  setup();
  put("acme.yaml", acme);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\nconnect_ports: [443, 563]\n"), 0, "%s", err);
  cr_assert_eq(destcheck_init(&dc, NULL), 0);
  dc_made = true;
  inet_pton(AF_INET, "127.0.0.1", &self.sin_addr);
  destcheck_add_self(&dc, (const struct sockaddr *)&self);
}

static void judge_teardown(void) {
  while (nanswers > 0)
    dns_answer_unref(answers[--nanswers]);
  if (dc_made)
    destcheck_free(&dc);
  dc_made = false;
  teardown();
}

TestSuite(judge, .init = judge_setup, .fini = judge_teardown);

static struct host host_of(const char *authority, uint16_t default_port) {
  struct host h;
  cr_assert_eq(authority_parse(authority, strlen(authority), default_port, &h), 0, "%s", authority);
  return h;
}

static struct sockaddr_storage addr_of(const char *ip, uint16_t port) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(ip, ':') != NULL) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    cr_assert_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1, "%s", ip);
  } else {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    cr_assert_eq(inet_pton(AF_INET, ip, &in4->sin_addr), 1, "%s", ip);
  }
  return ss;
}

/* An answer: ADDRS (NULL-terminated), CNAME chain CNAMES (NULL-terminated). */
static struct dns_result answer(const char *const *addrs, const char *const *cnames) {
  struct dns_result r;
  memset(&r, 0, sizeof(r));
  for (; addrs != NULL && *addrs != NULL; addrs++)
    r.addrs[r.naddrs++] = addr_of(*addrs, 443);
  for (; cnames != NULL && *cnames != NULL; cnames++)
    snprintf(r.cnames[r.ncnames++], sizeof(r.cnames[0]), "%s", *cnames);
  return r;
}

/* R as the proxy keeps an answer (dropped at teardown). */
static const struct dns_answer *kept(const struct dns_result *r) {
  cr_assert_lt(nanswers, sizeof(answers) / sizeof(answers[0]));
  cr_assert_not_null(answers[nanswers] = dns_answer_new(r, NULL, true));
  return answers[nanswers++];
}

static struct judgement judge(const struct judge_input *in, int64_t now) {
  struct judgement j;
  memset(&j, 0x5a, sizeof(j)); /* always filled */
  judge_destination(&cfg, cfg.policy, &dc, in, now, 1, &j);
  return j;
}

/* ---- refusals ------------------------------------------------------------ */

Test(judge, connect_to_a_port_outside_connect_ports_is_refused_before_any_rule) {
  struct host h = host_of("upd.acme.test:8443", 443);
  struct judge_input in = {.host = &h, .connect = true};
  struct judgement j = judge(&in, BEFORE);
  cr_expect_eq(j.refusal, JUDGE_PORT);
  cr_expect_str_eq(j.detail, "CONNECT to port 8443 is not allowed");
  cr_expect_eq(j.verdict.action, ACTION_DENY);
  cr_expect_null(j.verdict.rule, "a refusal is a bare deny");
  cr_expect(judge_denies(&j));
  /* The same port without CONNECT (an absolute-form request) is not refused. */
  in.connect = false;
  j = judge(&in, BEFORE);
  cr_expect_eq(j.refusal, JUDGE_PASS);
  cr_expect_eq(j.verdict.action, ACTION_LOG);
  h = host_of("upd.acme.test:563", 443);
  in.connect = true;
  cr_expect_eq(judge(&in, BEFORE).refusal, JUDGE_PASS);
}

Test(judge, an_internal_address_to_dial_is_refused_whatever_the_lists_say) {
  static const char *const loop[] = {"192.0.2.9", "127.0.0.1", NULL};
  struct host h = host_of("www.example.org", 443);
  struct dns_result r = answer(loop, NULL);
  struct judge_input in = {
      .host = &h, .connect = true, .resolved = kept(&r), .dial = r.addrs, .ndial = r.naddrs};
  struct judgement j = judge(&in, AFTER);
  cr_expect_eq(j.refusal, JUDGE_INTERNAL);
  cr_expect_str_eq(j.detail, "www.example.org resolves to internal address 127.0.0.1");
  cr_expect_eq(j.verdict.action, ACTION_DENY);
  cr_expect_null(j.verdict.rule, "192.0.2.9 is acme's, but the refusal comes first");
  h = host_of("[fe80::1]:443", 443);
  dns_result_literal(&r, &h);
  in.resolved = kept(&r);
  in.ndial = r.naddrs;
  j = judge(&in, BEFORE);
  cr_expect_eq(j.refusal, JUDGE_INTERNAL);
  cr_expect_str_eq(j.detail, "internal address fe80::1");
}

Test(judge, a_listener_of_the_proxy_is_refused_as_itself) {
  static const char *const self[] = {"127.0.0.1", NULL};
  struct netmatch *allow = netmatch_new();
  struct cidr c;
  struct host h = host_of("loop.example.org:3128", 443);
  struct dns_result r = answer(self, NULL);
  cr_assert_eq(cidr_parse("127.0.0.0/8", 11, &c), 0);
  cr_assert_eq(netmatch_add(allow, &c, (void *)"127.0.0.0/8"), 0);
  dc.allow = allow; /* loopback allowed: only the own-listener check stands */
  r.addrs[0] = addr_of("127.0.0.1", 3128);
  struct judge_input in = {.host = &h, .resolved = kept(&r), .dial = r.addrs, .ndial = 1};
  struct judgement j = judge(&in, BEFORE);
  cr_expect_eq(j.refusal, JUDGE_SELF);
  cr_expect_str_eq(j.detail, "the destination is this proxy (127.0.0.1:3128)");
  r.addrs[0] = addr_of("127.0.0.1", 3129);
  cr_expect_eq(judge(&in, BEFORE).refusal, JUDGE_PASS, "another port is not the proxy");
  dc.allow = NULL;
  netmatch_free(allow);
}

Test(judge, an_ip_literal_server_name_is_refused_when_internal) {
  static const char *const ok[] = {"198.51.100.7", NULL};
  struct host h = host_of("www.example.org", 443);
  struct dns_result r = answer(ok, NULL);
  struct ip_addr sni = {.family = AF_INET};
  inet_pton(AF_INET, "169.254.169.254", sni.addr);
  struct judge_input in = {.host = &h,
                           .connect = true,
                           .resolved = kept(&r),
                           .dial = r.addrs,
                           .ndial = 1,
                           .sni_addrs = &sni,
                           .nsni_addrs = 1};
  struct judgement j = judge(&in, BEFORE);
  cr_expect_eq(j.refusal, JUDGE_INTERNAL);
  cr_expect_str_eq(j.detail, "server name 169.254.169.254 is an internal address");
}

/* ---- vendor rules on every fact ------------------------------------------ */

Test(judge, the_sni_of_a_connect_is_judged_as_well_as_its_authority) {
  static const char *const ok[] = {"198.51.100.7", NULL};
  static const char *const banned[] = {"upd.acme.test"};
  static const char *const fine[] = {"www.example.org"};
  struct host h = host_of("www.example.org:443", 443);
  struct dns_result r = answer(ok, NULL);
  struct judge_input in = {
      .host = &h, .connect = true, .resolved = kept(&r), .dial = r.addrs, .ndial = 1};
  cr_expect_eq(judge(&in, AFTER).verdict.action, ACTION_ALLOW, "the authority alone");
  in.sni = banned;
  in.nsni = 1;
  struct judgement j = judge(&in, AFTER);
  cr_expect_eq(j.refusal, JUDGE_PASS);
  cr_expect_eq(j.verdict.action, ACTION_DENY, "an allowed CONNECT with a banned SNI");
  cr_expect_eq(j.verdict.on, MATCH_SNI);
  cr_expect_str_eq(j.verdict.matched, "upd.acme.test");
  cr_expect_str_eq(j.verdict.rule->pattern, "upd.acme.test");
  cr_expect(judge_denies(&j));
  cr_expect_eq(judge(&in, BEFORE).verdict.action, ACTION_LOG, "before the cutoff");
  /* A banned authority is not saved by an innocent SNI. */
  h = host_of("upd.acme.test:443", 443);
  in.sni = fine;
  j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_DENY);
  cr_expect_eq(j.verdict.on, MATCH_HOST);
}

Test(judge, the_cname_chain_and_the_addresses_are_judged) {
  static const char *const via[] = {"198.51.100.7", NULL};
  static const char *const chain[] = {"edge.example.net", "upd.acme.test", NULL};
  static const char *const net[] = {"192.0.2.44", NULL};
  struct host h = host_of("alias.example.org", 443);
  struct dns_result r = answer(via, chain);
  struct judge_input in = {.host = &h, .resolved = kept(&r), .dial = r.addrs, .ndial = r.naddrs};
  struct judgement j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_DENY);
  cr_expect_eq(j.verdict.on, MATCH_CNAME);
  cr_expect_str_eq(j.verdict.matched, "upd.acme.test");
  r = answer(net, NULL);
  in.resolved = kept(&r);
  in.ndial = r.naddrs;
  j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_DENY);
  cr_expect_eq(j.verdict.on, MATCH_ADDRESS);
  cr_expect_str_eq(j.verdict.matched, "192.0.2.44");
}

/* ---- outcomes: strictest wins --------------------------------------------- */

Test(judge, an_outcome_stricter_than_the_rules_decides_and_is_named) {
  static const char *const ok[] = {"198.51.100.7", NULL};
  struct host h = host_of("www.example.org", 443);
  struct dns_result r = answer(ok, NULL);
  struct judge_input in = {.host = &h, .resolved = kept(&r), .dial = r.addrs, .ndial = 1};
  judge_add_outcome(&in, ACTION_LOG, "transparent.on_dst_mismatch");
  struct judgement j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_LOG);
  cr_expect_str_eq(j.option, "transparent.on_dst_mismatch");
  cr_expect(!judge_denies(&j));
  judge_add_outcome(&in, ACTION_DENY, "tls_inspect.on_no_sni");
  j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_DENY, "the stricter of two outcomes");
  cr_expect_str_eq(j.option, "tls_inspect.on_no_sni");
  cr_expect(judge_denies(&j));
}

Test(judge, an_outcome_no_stricter_than_the_rules_changes_nothing) {
  struct host h = host_of("upd.acme.test", 443);
  struct judge_input in = {.host = &h};
  judge_add_outcome(&in, ACTION_ALLOW, "transparent.on_unknown");
  struct judgement j = judge(&in, BEFORE);
  cr_expect_eq(j.verdict.action, ACTION_LOG, "the rule's log stands");
  cr_expect_null(j.option);
  judge_add_outcome(&in, ACTION_LOG, "transparent.on_dst_mismatch");
  j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_DENY, "the rule's deny stands");
  cr_expect_null(j.option, "the rule decided, not the outcome");
  cr_expect_str_eq(j.verdict.rule->pattern, "upd.acme.test");
}

Test(judge, outcomes_past_the_limit_are_ignored) {
  struct host h = host_of("www.example.org", 443);
  struct judge_input in = {.host = &h};
  for (int i = 0; i < JUDGE_MAX_OUTCOMES; i++)
    judge_add_outcome(&in, ACTION_ALLOW, "filler");
  judge_add_outcome(&in, ACTION_DENY, "one too many");
  cr_expect_eq(in.noutcomes, JUDGE_MAX_OUTCOMES);
  cr_expect_eq(judge(&in, AFTER).verdict.action, ACTION_ALLOW);
}

Test(judge, monitor_mode_turns_every_deny_into_a_log) {
  struct host h = host_of("upd.acme.test", 443);
  struct judge_input in = {.host = &h};
  policy_set_monitor(cfg.policy, true);
  struct judgement j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_LOG);
  cr_expect(j.verdict.monitor);
  cr_expect_eq(j.verdict.rule_action, ACTION_DENY);
  h = host_of("www.example.org", 443);
  judge_add_outcome(&in, ACTION_DENY, "tls_inspect.on_no_sni");
  j = judge(&in, AFTER);
  cr_expect_eq(j.verdict.action, ACTION_LOG, "an outcome's deny too");
  cr_expect(j.verdict.monitor);
  cr_expect(!judge_denies(&j));
}

/* ---- the destination mismatch of a transparent connection ------------------ */

Test(judge, a_claimed_name_that_does_not_lead_to_the_original_destination_mismatches) {
  static const char *const two[] = {"198.51.100.7", "2001:db8::7", NULL};
  struct dns_result r = answer(two, NULL);
  struct sockaddr_storage orig = addr_of("198.51.100.7", 80);
  cr_expect(!judge_dst_mismatch(&r, (const struct sockaddr *)&orig), "first address");
  orig = addr_of("2001:db8::7", 443);
  cr_expect(!judge_dst_mismatch(&r, (const struct sockaddr *)&orig), "second address");
  orig = addr_of("::ffff:198.51.100.7", 80);
  cr_expect(!judge_dst_mismatch(&r, (const struct sockaddr *)&orig), "IPv4-mapped form");
  orig = addr_of("198.51.100.8", 80);
  cr_expect(judge_dst_mismatch(&r, (const struct sockaddr *)&orig), "elsewhere");
  orig = addr_of("2001:db8::8", 80);
  cr_expect(judge_dst_mismatch(&r, (const struct sockaddr *)&orig), "elsewhere, IPv6");
  cr_expect(judge_dst_mismatch(NULL, (const struct sockaddr *)&orig), "did not resolve");
  r.naddrs = 0;
  cr_expect(judge_dst_mismatch(&r, (const struct sockaddr *)&orig), "no address");
}

/* ---- the decision log line ------------------------------------------------- */

/* Writes D through the log writer into a new file; returns the one line,
 * parsed (caller frees). */
static json_t *logged(const struct decision *d) {
  char path[128], line[8192], why[256];
  json_error_t jerr;
  snprintf(path, sizeof(path), "%s/decisions.jsonl", dir);
  cr_assert_eq(log_open(path, 1 << 16, geteuid(), why, sizeof(why)), 0, "%s", why);
  log_decision(d);
  log_close();
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  cr_assert_not_null(fgets(line, sizeof(line), f));
  cr_expect_null(fgets(line + strlen(line), (int)(sizeof(line) - strlen(line)), f),
                 "one line only");
  fclose(f);
  unlink(path);
  json_t *j = json_loads(line, 0, &jerr);
  cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, line);
  return j;
}

static void expect_field(const json_t *j, const char *key, const char *want) {
  const json_t *v = json_object_get(j, key);
  cr_expect_not_null(v, "no field %s", key);
  if (v != NULL)
    cr_expect_str_eq(json_string_value(v), want, "field %s", key);
}

Test(judge, a_deny_line_names_what_matched_and_the_rule_behind_it) {
  static const char *const ok[] = {"198.51.100.7", NULL};
  static const char *const banned[] = {"upd.acme.test"};
  struct host h = host_of("www.example.org:443", 443);
  struct dns_result r = answer(ok, NULL);
  struct judge_input in = {.host = &h,
                           .connect = true,
                           .resolved = kept(&r),
                           .dial = r.addrs,
                           .ndial = 1,
                           .sni = banned,
                           .nsni = 1};
  struct judgement jd = judge(&in, AFTER);
  struct sockaddr_storage client = addr_of("10.1.2.3", 50000);
  struct tls_evidence tls = {.outcome = "hello",
                             .sni = {"upd.acme.test"},
                             .nsni = 1,
                             .tags = {"sni_mismatch"},
                             .ntags = 1};
  struct decision d = {.event = "deny",
                       .conn_id = 42,
                       .client = (const struct sockaddr *)&client,
                       .listener = "127.0.0.1:3128",
                       .method = "CONNECT",
                       .host = h.name,
                       .port = h.port,
                       .verdict = &jd.verdict,
                       .policy_now = AFTER,
                       .error = "tls_alert_access_denied",
                       .tls = &tls,
                       .resolved = kept(&r),
                       .user_agent = "curl/8.0",
                       .user_agent_len = 8};
  char rule[256];
  json_t *j = logged(&d);

  expect_field(j, "event", "deny");
  cr_expect_eq(json_integer_value(json_object_get(j, "conn")), 42);
  expect_field(j, "client", "10.1.2.3:50000");
  expect_field(j, "listener", "127.0.0.1:3128");
  expect_field(j, "method", "CONNECT");
  expect_field(j, "host", "www.example.org");
  cr_expect_eq(json_integer_value(json_object_get(j, "port")), 443);
  expect_field(j, "user_agent", "curl/8.0");
  expect_field(j, "action", "deny");
  expect_field(j, "matched_on", "sni");
  expect_field(j, "matched", "upd.acme.test");
  expect_field(j, "vendor", "acme");
  expect_field(j, "category", "updates");
  expect_field(j, "pattern", "upd.acme.test");
  snprintf(rule, sizeof(rule), "%s/acme.yaml:8", dir);
  expect_field(j, "rule", rule);
  expect_field(j, "cutoff", "2030-01-01T00:00:00Z");
  cr_expect(json_is_true(json_object_get(j, "after_cutoff")));
  expect_field(j, "rule_action", "deny");
  expect_field(j, "tls", "hello");
  cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "sni"), 0)),
                   "upd.acme.test");
  cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "tags"), 0)),
                   "sni_mismatch");
  cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "addresses"), 0)),
                   "198.51.100.7");
  expect_field(j, "policy_time", "2030-01-02T00:00:00Z");
  expect_field(j, "error", "tls_alert_access_denied");
  cr_expect_null(json_object_get(j, "monitor"), "not in monitor mode");
  cr_expect_null(json_object_get(j, "status"), "no status was sent");
  cr_expect_null(json_object_get(j, "truncated"));
  cr_expect(json_is_string(json_object_get(j, "time")));
  json_decref(j);
}

Test(judge, a_mismatch_line_is_tagged_and_names_the_option_that_decided) {
  static const char *const elsewhere[] = {"198.51.100.7", NULL};
  struct host h = host_of("www.example.org", 80);
  struct dns_result r = answer(elsewhere, NULL);
  struct sockaddr_storage orig = addr_of("203.0.113.5", 80);
  struct judge_input in = {.host = &h, .resolved = kept(&r), .dial = &orig, .ndial = 1};
  cr_assert(judge_dst_mismatch(&r, (const struct sockaddr *)&orig));
  judge_add_outcome(&in, ACTION_LOG, "transparent.on_dst_mismatch");
  struct judgement jd = judge(&in, BEFORE);
  struct decision d = {.event = "log",
                       .host = h.name,
                       .port = h.port,
                       .verdict = &jd.verdict,
                       .mode = "intercept",
                       .original_dst = (const struct sockaddr *)&orig,
                       .dst_mismatch = true,
                       .detail = jd.option,
                       .resolved = kept(&r)};
  json_t *j = logged(&d);

  expect_field(j, "event", "log");
  expect_field(j, "action", "log");
  expect_field(j, "mode", "intercept");
  expect_field(j, "original_dst", "203.0.113.5:80");
  expect_field(j, "detail", "transparent.on_dst_mismatch");
  cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "tags"), 0)),
                   "dst_mismatch");
  cr_expect_null(json_object_get(j, "vendor"), "no vendor rule matched");
  json_decref(j);
  /* Over TLS the tag joins the ClientHello's own. */
  struct tls_evidence tls = {.outcome = "hello",
                             .sni = {"www.example.org"},
                             .nsni = 1,
                             .tags = {"sni_mismatch"},
                             .ntags = 1};
  d.tls = &tls;
  j = logged(&d);
  json_t *tags = json_object_get(j, "tags");
  cr_expect_eq(json_array_size(tags), 2);
  cr_expect_str_eq(json_string_value(json_array_get(tags, 0)), "sni_mismatch");
  cr_expect_str_eq(json_string_value(json_array_get(tags, 1)), "dst_mismatch");
  json_decref(j);
}

Test(judge, a_monitor_line_says_so_and_keeps_the_rule_action) {
  struct host h = host_of("upd.acme.test", 80);
  struct judge_input in = {.host = &h};
  policy_set_monitor(cfg.policy, true);
  struct judgement jd = judge(&in, AFTER);
  struct decision d = {
      .event = "log", .host = h.name, .port = h.port, .verdict = &jd.verdict, .status = 200};
  json_t *j = logged(&d);
  expect_field(j, "action", "log");
  cr_expect(json_is_true(json_object_get(j, "monitor")));
  expect_field(j, "rule_action", "deny");
  expect_field(j, "matched_on", "host");
  cr_expect_eq(json_integer_value(json_object_get(j, "status")), 200);
  json_decref(j);
}
