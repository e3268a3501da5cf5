/* Vendor lists beyond host patterns: `networks` and `ja4` entries, their
 * confidence defaults, the exact text of their errors, and the address
 * space of the shipped Kaspersky list. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "filters/err.h"
#include "tests/unit/config_fixture.h"

#define JA4_CURL "t13d3112h2_e8f1e7e78f70_6bebaf5329ac"
#define JA4_CHROME "t13d1516h2_8daaf6152771_e5627efa2ab1"
#define ACME_CUTOFF INT64_C(1893456000) /* 2030-01-01T00:00:00Z */

TestSuite(vendor_rules, .init = setup, .fini = teardown);

/* The verdict on a connection to IP (a resolved address of "host.example"). */
static struct verdict decide_addr(const char *ip, int64_t now) {
  struct host h;
  struct ip_addr a = {.family = strchr(ip, ':') ? AF_INET6 : AF_INET};
  struct verdict v;
  cr_assert_eq(inet_pton(a.family, ip, a.addr), 1, "%s", ip);
  cr_assert_eq(host_normalise("host.example", 12, &h), 0);
  struct facts f = {.host = &h, .addrs = &a, .naddrs = 1};
  policy_decide(cfg.policy, &f, now, &v);
  return v;
}

static struct verdict decide_ja4(const char *ja4, int64_t now) {
  struct verdict v;
  struct facts f = {.ja4 = ja4};
  policy_decide(cfg.policy, &f, now, &v);
  return v;
}

/* Loads a vendor list "acme" whose `updates` category has BODY. */
static void load_acme(const char *head, const char *body) {
  char text[2048];
  snprintf(text, sizeof(text),
           "vendor: acme\n%scategories:\n  updates:\n    cutoff: 2030-01-01T00:00:00Z\n%s",
           head, body);
  put("acme.yaml", text);
  cr_assert_eq(load("vendors:\n  - file: acme.yaml\n"), 0, "%s", err);
}

/* ---- networks ---------------------------------------------------------- */

Test(vendor_rules, networks_take_the_category_action_by_default) {
  load_acme("", "    networks:\n      - 192.0.2.0/24\n      - \"2001:db8::/32\"\n");
  cr_expect_eq(policy_network_count(cfg.policy), 2);
  struct verdict v = decide_addr("192.0.2.7", ACME_CUTOFF);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_ADDRESS);
  cr_expect_str_eq(v.matched, "192.0.2.7");
  cr_expect_str_eq(v.rule->pattern, "192.0.2.0/24");
  cr_expect_eq(v.rule->confidence, CONFIDENCE_STRONG);
  cr_expect_eq(v.rule->where.line, 6);
  cr_expect_eq(v.rule->where.col, 9);
  cr_expect_eq(decide_addr("2001:db8:1::1", ACME_CUTOFF).action, ACTION_DENY);
  cr_expect_eq(decide_addr("192.0.2.7", ACME_CUTOFF - 1).action, ACTION_LOG);
  cr_expect_eq(decide_addr("198.51.100.1", ACME_CUTOFF).action, ACTION_ALLOW);
}

Test(vendor_rules, entry_confidence_beats_category_and_vendor_defaults) {
  load_acme("confidence: hint\n",
            "    confidence: strong\n"
            "    networks:\n"
            "      - 192.0.2.0/24\n"
            "      - { prefix: 198.51.100.0/24, confidence: hint }\n");
  cr_expect_eq(decide_addr("192.0.2.1", ACME_CUTOFF).action, ACTION_DENY);
  struct verdict v = decide_addr("198.51.100.1", ACME_CUTOFF);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect(v.hint);
  cr_expect_eq(v.rule_action, ACTION_DENY);
}

Test(vendor_rules, vendor_confidence_is_the_default_of_every_category) {
  load_acme("confidence: hint\n", "    networks: [192.0.2.0/24]\n    ja4: [" JA4_CURL "]\n");
  cr_expect_eq(decide_addr("192.0.2.1", ACME_CUTOFF).action, ACTION_LOG);
  struct verdict v = decide_ja4(JA4_CURL, ACME_CUTOFF);
  cr_expect_eq(v.action, ACTION_LOG);
  cr_expect(v.hint);
}

Test(vendor_rules, ja4_entries_match_exactly) {
  load_acme("", "    ja4:\n      - " JA4_CURL "  # curl 8.x\n"
                "      - { fingerprint: " JA4_CHROME ", confidence: hint }\n");
  cr_expect_eq(policy_ja4_count(cfg.policy), 2);
  struct verdict v = decide_ja4(JA4_CURL, ACME_CUTOFF);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_JA4);
  cr_expect_str_eq(v.matched, JA4_CURL);
  cr_expect_eq(decide_ja4(JA4_CHROME, ACME_CUTOFF).action, ACTION_LOG);
  cr_expect_eq(decide_ja4("t13d3112h2_e8f1e7e78f70_6bebaf5329ad", ACME_CUTOFF).action,
               ACTION_ALLOW);
}

Test(vendor_rules, summary_counts_networks_and_fingerprints) {
  char *text = NULL;
  size_t len = 0;
  load_acme("", "    networks: [192.0.2.0/24]\n    ja4: [" JA4_CURL "]\n");
  FILE *f = open_memstream(&text, &len);
  cr_assert_not_null(f);
  config_print_summary(&cfg, f);
  fclose(f);
  cr_expect_not_null(strstr(text, "0 host patterns, 1 networks, 1 JA4 fingerprints\n"), "%s",
                     text);
  cr_expect_not_null(strstr(text, "1, 0 host patterns, 1 networks, 1 JA4, 0 path patterns in all\n"), "%s",
                     text);
  free(text);
}

/* ---- the shipped Kaspersky address space -------------------------------- */

Test(vendor_rules, kaspersky_networks_are_logged_never_denied) {
  static const char *const inside[] = {
    "37.203.129.5",  /* s19.upd.kaspersky.com, AS200107 */
    "79.133.169.139", /* dc1-st.ksn.kaspersky-labs.com, AS200107 */
    "91.103.66.155", /* mx12.kaspersky-labs.com, AS41983 */
    "195.128.247.1", "185.85.15.254", "93.159.224.1",
    "93.191.13.103", /* the documentation's example update source */
  };
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
    struct verdict v = decide_addr(inside[i], UPDATES_CUTOFF + 86400);
    cr_expect_eq(v.action, ACTION_LOG, "%s", inside[i]);
    cr_expect(v.hint, "%s", inside[i]);
    cr_expect_str_eq(v.rule->category->name, "address-space", "%s", inside[i]);
  }
  struct verdict v = decide("93.191.13.103", UPDATES_CUTOFF + 86400);
  cr_expect_eq(v.action, ACTION_LOG, "an IP-literal host is an address too");
  cr_expect_eq(v.on, MATCH_ADDRESS);
}

Test(vendor_rules, kaspersky_list_leaves_as209030_alone) {
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  static const char *const outside[] = {"82.202.186.1", "82.202.188.1", "82.202.191.254",
                                        "82.202.183.255"};
  for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
    cr_expect_eq(decide_addr(outside[i], UPDATES_CUTOFF).reason, VERDICT_NO_MATCH, "%s",
                 outside[i]);
  cr_expect_eq(decide_addr("82.202.185.1", UPDATES_CUTOFF).action, ACTION_LOG);
}

Test(vendor_rules, kaspersky_host_rule_outranks_its_address_hint) {
  struct host h;
  struct ip_addr a = {.family = AF_INET, .addr = {37, 203, 129, 5}};
  struct verdict v;
  cr_assert_eq(config_load_default(&cfg, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(host_normalise("s19.upd.kaspersky.com", 21, &h), 0);
  struct facts f = {.host = &h, .addrs = &a, .naddrs = 1};
  policy_decide(cfg.policy, &f, UPDATES_CUTOFF, &v);
  cr_expect_eq(v.action, ACTION_DENY);
  cr_expect_eq(v.on, MATCH_HOST);
}

/* ---- errors ------------------------------------------------------------ */

#define CUTOFF "    cutoff: 2024-09-29T00:00:00Z\n"

Test(vendor_rules, bad_network) {
  expect_vendor_error(CUTOFF "    networks:\n      - 192.0.2.1/24\n",
                      "@/acme.yaml:6:9: categories.updates.networks[0]: invalid network "
                      "prefix '192.0.2.1/24' (expected a CIDR like 91.198.230.0/24, host bits "
                      "zero)");
}

Test(vendor_rules, bad_network_in_a_mapping) {
  expect_vendor_error(CUTOFF "    networks:\n      - { prefix: 300.0.0.0/8 }\n",
                      "@/acme.yaml:6:19: categories.updates.networks[0].prefix: invalid "
                      "network prefix '300.0.0.0/8' (expected a CIDR like 91.198.230.0/24, "
                      "host bits zero)");
}

Test(vendor_rules, network_mapping_needs_a_prefix) {
  expect_vendor_error(CUTOFF "    networks:\n      - { confidence: hint }\n",
                      "@/acme.yaml:6:9: categories.updates.networks[0].prefix: missing; "
                      "expected a network like 91.198.230.0/24");
}

Test(vendor_rules, network_mapping_unknown_key) {
  expect_vendor_error(CUTOFF "    networks:\n      - { cidr: 192.0.2.0/24 }\n",
                      "@/acme.yaml:6:11: categories.updates.networks[0].cidr: unknown key "
                      "(expected one of: prefix, confidence)");
}

Test(vendor_rules, network_item_of_the_wrong_type) {
  expect_vendor_error(CUTOFF "    networks:\n      - [192.0.2.0/24]\n",
                      "@/acme.yaml:6:9: categories.updates.networks[0]: expected a network "
                      "like 91.198.230.0/24 or { prefix: 91.198.230.0/24, confidence: hint }");
}

Test(vendor_rules, networks_not_a_list) {
  expect_vendor_error(CUTOFF "    networks: 192.0.2.0/24\n",
                      "@/acme.yaml:5:15: categories.updates.networks: expected a list of a "
                      "network like 91.198.230.0/24 or { prefix: 91.198.230.0/24, confidence: "
                      "hint }");
}

Test(vendor_rules, duplicate_network) {
  expect_vendor_error(CUTOFF "    networks:\n      - 192.0.2.0/24\n"
                      "      - { prefix: 192.0.2.0/24, confidence: hint }\n",
                      "@/acme.yaml:7:19: categories.updates.networks[1].prefix: duplicate "
                      "network '192.0.2.0/24' (first at @/acme.yaml:6:9)");
}

Test(vendor_rules, unknown_confidence) {
  expect_vendor_error(CUTOFF "    networks:\n      - { prefix: 192.0.2.0/24, confidence: weak }\n",
                      "@/acme.yaml:6:45: categories.updates.networks[0].confidence: unknown "
                      "confidence 'weak' (expected strong or hint)");
}

Test(vendor_rules, unknown_category_confidence) {
  expect_vendor_error(CUTOFF "    confidence: high\n",
                      "@/acme.yaml:5:17: categories.updates.confidence: unknown confidence "
                      "'high' (expected strong or hint)");
}

Test(vendor_rules, unknown_vendor_confidence) {
  put("acme.yaml", "vendor: acme\nconfidence: [hint]\ncategories: {}\n");
  expect_error("vendors:\n  - file: acme.yaml\n",
               "@/acme.yaml:2:13: confidence: expected strong or hint");
}

/* Each JA4 field is checked on its own and the error says what it must be. */
static const struct {
  const char *ja4;
  const char *why;
} bad_ja4s[] = {
  {"t13d1516h2_8daaf6152771", "expected 36 characters like " JA4_CHROME
                              " (JA4_r, JA4_o and JA4_ro forms are not matched)"},
  {"x13d1516h2_8daaf6152771_e5627efa2ab1",
   "at character 1 'x': expected 't' (TLS over TCP), 'q' (QUIC) or 'd' (DTLS)"},
  {"t14d1516h2_8daaf6152771_e5627efa2ab1",
   "at character 2 '14': expected a version: 13, 12, 11, 10, s3, s2, d1, d2, d3 or 00"},
  {"t13x1516h2_8daaf6152771_e5627efa2ab1",
   "at character 4 'x': expected 'd' (SNI present) or 'i' (no SNI)"},
  {"t13d1a16h2_8daaf6152771_e5627efa2ab1",
   "at character 5 '1a': expected a two-digit cipher suite count"},
  {"t13d15-6h2_8daaf6152771_e5627efa2ab1",
   "at character 7 '-6': expected a two-digit extension count"},
  {"t13d1516H2_8daaf6152771_e5627efa2ab1",
   "at character 9 'H2': expected the first and last ALPN characters (lowercase letters or "
   "digits; 00 without ALPN)"},
  {"t13d1516h2-8daaf6152771_e5627efa2ab1", "at character 11 '-': expected '_'"},
  {"t13d1516h2_8DAAF6152771_e5627efa2ab1",
   "at character 12 '8DAAF6152771': expected 12 lowercase hex digits (cipher suite hash)"},
  {"t13d1516h2_8daaf6152771_e5627efa2abg",
   "at character 25 'e5627efa2abg': expected 12 lowercase hex digits (extension and "
   "signature algorithm hash)"},
};

Test(vendor_rules, bad_ja4_says_which_field_is_wrong) {
  for (size_t i = 0; i < sizeof(bad_ja4s) / sizeof(bad_ja4s[0]); i++) {
    char body[256];
    snprintf(body, sizeof(body), CUTOFF "    ja4:\n      - \"%s\"\n", bad_ja4s[i].ja4);
    expect_vendor_error(body, "@/acme.yaml:6:9: categories.updates.ja4[0]: invalid JA4 '%s': %s",
                        bad_ja4s[i].ja4, bad_ja4s[i].why);
    teardown(); /* a fresh directory: each load writes two files */
    setup();
  }
}

Test(vendor_rules, ja4_accepts_every_field_form) {
  load_acme("", "    ja4:\n"
                "      - q13d0310h3_55b375c5d22e_cd85d2d88918\n"  /* QUIC */
                "      - d12i100800_aaaaaaaaaaaa_000000000000\n"  /* DTLS, no SNI, no ALPN */
                "      - ts3i010099_000000000000_000000000000\n"  /* SSL 3, FoxIO's 99 */
                "      - t00d9999bd_0123456789ab_cdef01234567\n"); /* hex ALPN form */
  cr_expect_eq(policy_ja4_count(cfg.policy), 4);
}

Test(vendor_rules, duplicate_ja4) {
  expect_vendor_error(CUTOFF "    ja4:\n      - " JA4_CURL "\n      - " JA4_CURL "\n",
                      "@/acme.yaml:7:9: categories.updates.ja4[1]: duplicate JA4 '" JA4_CURL
                      "' (first at @/acme.yaml:6:9)");
}

Test(vendor_rules, ja4_mapping_needs_a_fingerprint) {
  expect_vendor_error(CUTOFF "    ja4:\n      - { ja4: " JA4_CURL " }\n",
                      "@/acme.yaml:6:11: categories.updates.ja4[0].ja4: unknown key (expected "
                      "one of: fingerprint, confidence)");
}
