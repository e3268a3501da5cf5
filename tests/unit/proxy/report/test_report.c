/* Unit tests for proxy/inventory.c and the line reader of proxy/report.c:
 * client addresses, times, filtering, aggregation and its bounds. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "proxy/report/inventory.h"
#include "proxy/report/report.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct inventory_filter no_filter = {INVENTORY_TIME_NONE, INVENTORY_TIME_NONE, NULL};

static int64_t at(const char *text) {
  int64_t ms = 0;
  cr_assert_eq(inventory_parse_time(text, strlen(text), &ms), 0, "parse %s", text);
  return ms;
}

static struct inventory_fact fact(const char *time, const char *vendor, const char *client) {
  struct inventory_fact f;
  memset(&f, 0, sizeof(f));
  f.time_ms = at(time);
  f.vendor = vendor;
  f.client = client;
  f.cutoff_ms = INVENTORY_TIME_NONE;
  f.after_cutoff = -1;
  return f;
}

static const struct inventory_vendor *vendor(const struct inventory *inv, const char *id) {
  struct inventory_vendor **vs;
  const struct inventory_vendor *v = NULL;
  size_t n, i;
  vs = inventory_vendors(inv, &n);
  for (i = 0; i < n; i++)
    if (strcmp(vs[i]->id, id) == 0)
      v = vs[i];
  free(vs);
  return v;
}

static const struct inventory_client *client(const struct inventory *inv, const char *id,
                                             const char *addr) {
  const struct inventory_vendor *v = vendor(inv, id);
  struct inventory_client **cs;
  const struct inventory_client *c = NULL;
  size_t n, i;
  cr_assert_not_null(v, "vendor %s", id);
  cs = inventory_clients(v, &n);
  for (i = 0; i < n; i++)
    if (strcmp(cs[i]->addr, addr) == 0)
      c = cs[i];
  free(cs);
  cr_assert_not_null(c, "client %s of %s", addr, id);
  return c;
}

static void add_line(struct inventory *inv, const char *line) {
  cr_assert_eq(report_add_line(inv, line, strlen(line)), 0);
}

struct addr_case {
  const char *in, *want; /* want NULL: not an address */
};

Test(report, client_address_drops_the_port_and_is_canonical) {
  static const struct addr_case cases[] = {
      {"10.0.0.1:5000", "10.0.0.1"},
      {"10.0.0.1", "10.0.0.1"},
      {"[2001:db8::1]:443", "2001:db8::1"},
      {"[2001:DB8:0:0::1]:1", "2001:db8::1"},
      {"[::1]:3128", "::1"},
      {"2001:db8::7", "2001:db8::7"},
      {"[::ffff:10.0.0.9]:80", "10.0.0.9"},
      {"?", NULL},
      {"", NULL},
      {"[2001:db8::1", NULL},
      {"999.0.0.1:1", NULL},
      {"host.example:80", NULL},
      {"10.0.0.1:80:90", NULL},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    char out[64] = "junk";
    int rc = inventory_client_addr(cases[i].in, out, sizeof(out));
    if (cases[i].want == NULL) {
      cr_expect_eq(rc, EMB_EBADIP, "\"%s\" is not an address", cases[i].in);
      cr_expect_str_empty(out);
    } else {
      cr_expect_eq(rc, 0, "\"%s\": %s", cases[i].in, err_name(rc));
      cr_expect_str_eq(out, cases[i].want, "\"%s\"", cases[i].in);
    }
  }
}

Test(report, times_keep_milliseconds_and_honour_zones) {
  char buf[40];
  int64_t ms;
  cr_expect_eq(at("1970-01-01T00:00:00.001Z"), 1);
  cr_expect_eq(at("2024-09-29T04:00:00Z"), 1727582400000LL);
  cr_expect_eq(at("2024-09-29T00:00:00.5-04:00"), 1727582400500LL);
  cr_expect_eq(at("2024-09-29T04:00:00.123456Z"), 1727582400123LL);
  cr_expect_eq(at("1969-12-31T23:59:59.250Z"), -750);
  cr_expect_str_eq(inventory_format_time(1727582400123LL, buf, sizeof(buf)),
                   "2024-09-29T04:00:00.123Z");
  cr_expect_str_eq(inventory_format_time(-750, buf, sizeof(buf)), "1969-12-31T23:59:59.250Z");
  cr_expect_eq(inventory_parse_time("2024-09-29", 10, &ms), EMB_EBADTIME);
  cr_expect_eq(inventory_parse_time("2024-09-29T04:00:00", 19, &ms), EMB_EBADTIME);
  cr_expect_eq(inventory_parse_time("yesterday", 9, &ms), EMB_EBADTIME);
  cr_expect_eq(inventory_day_of(at("2024-09-28T23:59:59.999Z")) + 1,
               inventory_day_of(at("2024-09-29T00:00:00Z")));
  cr_expect_eq(inventory_day_of(-1), -1);
  cr_expect_str_eq(
      inventory_format_day(inventory_day_of(at("2024-09-29T12:00:00Z")), buf, sizeof(buf)),
      "2024-09-29");
}

Test(report, counts_attempts_per_vendor_and_client_address) {
  struct inventory inv;
  struct inventory_fact f;
  const struct inventory_client *c;

  inventory_init(&inv, &no_filter, 42);
  f = fact("2024-10-02T10:00:00Z", "kaspersky", "10.0.0.5:40000");
  f.category = "updates";
  f.cutoff_ms = at("2024-09-29T04:00:00Z");
  f.after_cutoff = 1;
  f.host = "dnl-01.geo.kaspersky.com";
  cr_assert_eq(inventory_add(&inv, &f), 0);
  f = fact("2024-09-01T10:00:00Z", "kaspersky", "10.0.0.5:40001"); /* earlier, other port */
  f.category = "updates";
  f.cutoff_ms = at("2024-09-29T04:00:00Z");
  f.after_cutoff = 0;
  f.host = "s07.upd.kaspersky.com";
  f.sni[0] = "s07.upd.kaspersky.com";
  f.sni[1] = "ksn.kaspersky-labs.com";
  f.nsni = 2;
  f.ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1";
  f.user_agent = "KES/12";
  cr_assert_eq(inventory_add(&inv, &f), 0);
  f = fact("2024-09-15T10:00:00Z", "kaspersky", "[2001:db8::5]:1234");
  cr_assert_eq(inventory_add(&inv, &f), 0);
  f = fact("2024-09-15T10:00:00Z", "othervendor", "10.0.0.5:1");
  cr_assert_eq(inventory_add(&inv, &f), 0);

  cr_expect_eq(inv.counts.attempts, 4);
  cr_expect_eq(inventory_client_count(vendor(&inv, "kaspersky")), 2);
  c = client(&inv, "kaspersky", "10.0.0.5");
  cr_expect_eq(c->attempts, 2);
  cr_expect_eq(c->after_cutoff, 1);
  cr_expect_eq(c->first_ms, at("2024-09-01T10:00:00Z"));
  cr_expect_eq(c->last_ms, at("2024-10-02T10:00:00Z"));
  cr_expect_eq(c->ncats, 1);
  cr_expect_str_eq(c->cats[0].name, "updates");
  cr_expect_eq(c->cats[0].attempts, 2);
  cr_expect_eq(c->cats[0].after_cutoff, 1);
  cr_expect_eq(c->destinations.n, 3, "host and SNI names, each once");
  cr_expect_eq(c->ja4.n, 1);
  cr_expect_str_eq(c->agents.items[0], "KES/12");
  cr_expect_eq(client(&inv, "kaspersky", "2001:db8::5")->attempts, 1);
  cr_expect_eq(client(&inv, "othervendor", "10.0.0.5")->attempts, 1);
  cr_expect_eq(vendor(&inv, "kaspersky")->ncutoffs, 1);
  cr_expect_eq(vendor(&inv, "kaspersky")->ndays, 3);
  inventory_free(&inv);
}

Test(report, after_cutoff_follows_the_line_or_the_cutoff_it_names) {
  struct inventory inv;
  struct inventory_fact f;

  inventory_init(&inv, &no_filter, 1);
  f = fact("2024-10-01T00:00:00Z", "v", "10.0.0.1:1");
  f.category = "updates";
  f.cutoff_ms = at("2024-09-29T04:00:00Z"); /* no after_cutoff field: compared */
  cr_assert_eq(inventory_add(&inv, &f), 0);
  f.time_ms = at("2024-09-29T03:59:59.999Z");
  cr_assert_eq(inventory_add(&inv, &f), 0);
  f.after_cutoff = 0; /* the line says (monitor mode, --now): believed */
  f.time_ms = at("2024-12-01T00:00:00Z");
  cr_assert_eq(inventory_add(&inv, &f), 0);
  cr_expect_eq(client(&inv, "v", "10.0.0.1")->attempts, 3);
  cr_expect_eq(client(&inv, "v", "10.0.0.1")->after_cutoff, 1);
  inventory_free(&inv);
}

Test(report, filter_keeps_since_inclusive_until_exclusive_and_one_vendor) {
  struct inventory_filter flt = {0, 0, "kaspersky"};
  struct inventory inv;
  struct inventory_fact f;

  flt.since_ms = at("2024-09-01T00:00:00Z");
  flt.until_ms = at("2024-10-01T00:00:00Z");
  inventory_init(&inv, &flt, 7);
  f = fact("2024-09-01T00:00:00Z", "kaspersky", "10.0.0.1:1");
  cr_expect_eq(inventory_add(&inv, &f), 0, "since is inclusive");
  f = fact("2024-09-30T23:59:59.999Z", "kaspersky", "10.0.0.1:1");
  cr_expect_eq(inventory_add(&inv, &f), 0);
  f = fact("2024-10-01T00:00:00Z", "kaspersky", "10.0.0.1:1");
  cr_expect_eq(inventory_add(&inv, &f), 1, "until is exclusive");
  f = fact("2024-08-31T23:59:59.999Z", "kaspersky", "10.0.0.1:1");
  cr_expect_eq(inventory_add(&inv, &f), 1);
  f = fact("2024-09-10T00:00:00Z", "other", "10.0.0.1:1");
  cr_expect_eq(inventory_add(&inv, &f), 1, "another vendor");
  cr_expect_eq(inv.counts.attempts, 2);
  cr_expect_eq(inv.counts.outside, 3);
  cr_expect_null(vendor(&inv, "other"));
  inventory_free(&inv);
}

Test(report, values_per_client_are_bounded_and_the_rest_counted) {
  struct inventory inv;
  struct inventory_fact f;
  const struct inventory_client *c;
  char host[64], cat[32], agent[300];
  int i;

  inventory_init(&inv, &no_filter, 3);
  for (i = 0; i < 100; i++) {
    f = fact("2024-10-01T00:00:00Z", "v", "10.0.0.1:1");
    snprintf(host, sizeof(host), "h%d.example", i);
    snprintf(cat, sizeof(cat), "c%d", i % 20);
    memset(agent, 'a' + i % 26, sizeof(agent) - 1);
    agent[sizeof(agent) - 1] = '\0';
    f.host = host;
    f.category = cat;
    f.ja4 = host;
    f.user_agent = agent;
    cr_assert_eq(inventory_add(&inv, &f), 0);
  }
  c = client(&inv, "v", "10.0.0.1");
  cr_expect_eq(c->destinations.n, INVENTORY_MAX_DESTINATIONS);
  cr_expect_eq(c->destinations.not_kept, 100 - INVENTORY_MAX_DESTINATIONS);
  cr_expect_eq(c->ja4.n, INVENTORY_MAX_JA4);
  cr_expect_eq(c->agents.n, INVENTORY_MAX_AGENTS, "26 agents, 16 kept");
  cr_expect_eq(c->agents.not_kept, 36, "the lines naming the 10 agents not kept");
  cr_expect_eq(strlen(c->agents.items[0]), INVENTORY_VALUE_MAX + 3, "cut and marked ...");
  cr_expect_eq(c->ncats, INVENTORY_MAX_CATEGORIES);
  cr_expect_eq(c->cats_not_kept, 100 - 5 * INVENTORY_MAX_CATEGORIES);
  inventory_free(&inv);
}

Test(report, a_cut_value_ends_on_a_character_boundary) {
  struct inventory inv;
  struct inventory_fact f;
  char agent[INVENTORY_VALUE_MAX + 10];
  const char *kept;

  memset(agent, 'x', sizeof(agent));
  memcpy(agent + INVENTORY_VALUE_MAX - 1, "\xc3\xa9", 2); /* é across the limit */
  agent[sizeof(agent) - 1] = '\0';
  inventory_init(&inv, &no_filter, 3);
  f = fact("2024-10-01T00:00:00Z", "v", "10.0.0.1:1");
  f.user_agent = agent;
  cr_assert_eq(inventory_add(&inv, &f), 0);
  kept = client(&inv, "v", "10.0.0.1")->agents.items[0];
  cr_expect_eq(strlen(kept), INVENTORY_VALUE_MAX - 1 + 3);
  cr_expect_str_eq(kept + INVENTORY_VALUE_MAX - 1, "...");
  inventory_free(&inv);
}

Test(report, lines_are_counted_malformed_ignored_or_attempts) {
  static const char *const malformed[] = {
      "not json",
      "[1,2]",
      "{\"time\":\"2024-10-01T00:00:00Z\",\"vendor\":7}",
      "{\"vendor\":\"v\",\"client\":\"10.0.0.1:1\"}",
      "{\"time\":\"yesterday\",\"vendor\":\"v\"}",
      "{\"time\":\"2024-10-01T00:00:00Z\",\"vendor\":\"v\",\"sni\":\"a\"}",
      "{\"time\":\"2024-10-01T00:00:00Z\",\"vendor\":\"v\",\"sni\":[1]}",
      "{\"time\":\"2024-10-01T00:00:00Z\",\"vendor\":\"v\",\"after_cutoff\":\"yes\"}",
      "{\"time\":\"2024-10-01T00:00:00Z\",\"vendor\":\"v\",\"cutoff\":\"soon\"}",
      "{\"time\":\"2024-10-01T00:00:00Z\",\"vendor\":\"v\"} trailing",
      "{\"time\":\"2024-10-01T00:00:00Z\",\"vendor\":\"v\",\"user_agent\":[]}",
      "",
  };
  struct inventory inv;
  size_t i;

  inventory_init(&inv, &no_filter, 3);
  for (i = 0; i < ARRAY_LEN(malformed); i++)
    add_line(&inv, malformed[i]);
  add_line(&inv,
           "{\"time\":\"2024-10-01T00:00:00Z\",\"event\":\"access\",\"client\":\"10.0.0.1:1\"}");
  add_line(&inv, "{\"time\":\"2024-10-01T00:00:00Z\",\"event\":\"error\",\"vendor\":null}");
  add_line(&inv,
           "{\"time\":\"2024-10-01T00:00:00.250Z\",\"event\":\"deny\",\"client\":"
           "\"[2001:db8::1]:9\",\"host\":\"a.example\",\"vendor\":\"v\",\"category\":\"c\","
           "\"cutoff\":\"2024-09-29T04:00:00Z\",\"after_cutoff\":true,\"sni\":[\"b.example\"],"
           "\"ja4\":\"j\",\"user_agent\":\"ua\\u0000hidden\"}\r");
  cr_expect_eq(inv.counts.lines, ARRAY_LEN(malformed) + 3);
  cr_expect_eq(inv.counts.malformed, ARRAY_LEN(malformed));
  cr_expect_eq(inv.counts.no_vendor, 2);
  cr_expect_eq(inv.counts.attempts, 1);
  cr_expect_eq(client(&inv, "v", "2001:db8::1")->first_ms, at("2024-10-01T00:00:00.250Z"));
  cr_expect_eq(client(&inv, "v", "2001:db8::1")->after_cutoff, 1);
  cr_expect_eq(client(&inv, "v", "2001:db8::1")->destinations.n, 2);
  cr_expect_str_eq(client(&inv, "v", "2001:db8::1")->agents.items[0], "ua");
  inventory_free(&inv);
}

Test(report, clients_are_listed_busiest_first_and_vendors_by_name) {
  struct inventory inv;
  struct inventory_fact f;
  struct inventory_vendor **vs;
  struct inventory_client **cs;
  size_t nv, nc;
  int i;

  inventory_init(&inv, &no_filter, 5);
  for (i = 0; i < 6; i++) {
    f = fact("2024-10-01T00:00:00Z", i % 2 ? "zeta" : "alpha", i < 3 ? "10.0.0.2:1" : "10.0.0.1:1");
    cr_assert_eq(inventory_add(&inv, &f), 0);
  }
  f = fact("2024-10-01T00:00:00Z", "alpha", "10.0.0.9:1");
  cr_assert_eq(inventory_add(&inv, &f), 0);
  vs = inventory_vendors(&inv, &nv);
  cr_assert_eq(nv, 2);
  cr_expect_str_eq(vs[0]->id, "alpha");
  cr_expect_str_eq(vs[1]->id, "zeta");
  cs = inventory_clients(vs[0], &nc); /* alpha: .2 twice, .1 once, .9 once */
  cr_assert_eq(nc, 3);
  cr_expect_str_eq(cs[0]->addr, "10.0.0.2");
  cr_expect_str_eq(cs[1]->addr, "10.0.0.1");
  cr_expect_str_eq(cs[2]->addr, "10.0.0.9");
  free(cs);
  free(vs);
  inventory_free(&inv);
}

Test(report, many_clients_grow_the_tables_and_stay_findable) {
  struct inventory inv;
  struct inventory_fact f;
  char addr[32];
  int i;

  inventory_init(&inv, &no_filter, 99);
  for (i = 0; i < 5000; i++) {
    snprintf(addr, sizeof(addr), "10.%d.%d.1:80", i / 256, i % 256);
    f = fact("2024-10-01T00:00:00Z", "v", addr);
    cr_assert_eq(inventory_add(&inv, &f), 0);
    cr_assert_eq(inventory_add(&inv, &f), 0);
  }
  cr_expect_eq(inventory_client_count(vendor(&inv, "v")), 5000);
  cr_expect_eq(client(&inv, "v", "10.19.135.1")->attempts, 2);
  inventory_free(&inv);
}

Test(report, categories_count_denials_and_machines) {
  struct inventory inv;
  static const char *const lines[] = {
      "{\"time\":\"2026-12-01T00:00:00Z\",\"event\":\"deny\",\"client\":\"10.0.0.1:5\","
      "\"vendor\":\"hikvision\",\"category\":\"cloud\",\"cutoff\":\"2020-08-13T04:00:00Z\"}",
      "{\"time\":\"2026-12-01T00:00:01Z\",\"event\":\"deny\",\"client\":\"10.0.0.2:5\","
      "\"vendor\":\"hikvision\",\"category\":\"cloud\",\"cutoff\":\"2020-08-13T04:00:00Z\"}",
      "{\"time\":\"2026-12-01T00:00:02Z\",\"event\":\"log\",\"client\":\"10.0.0.1:6\","
      "\"vendor\":\"hikvision\",\"category\":\"cloud\",\"cutoff\":\"2020-08-13T04:00:00Z\"}",
      "{\"time\":\"2026-12-01T00:00:03Z\",\"event\":\"log\",\"client\":\"10.0.0.1:7\","
      "\"vendor\":\"hikvision\",\"category\":\"firmware\",\"cutoff\":\"2020-08-13T04:00:00Z\"}",
  };
  bool partial = true;

  inventory_init(&inv, &no_filter, 1);
  for (size_t i = 0; i < ARRAY_LEN(lines); i++)
    cr_assert_eq(report_add_line(&inv, lines[i], strlen(lines[i])), 0);
  const struct inventory_vendor *v = vendor(&inv, "hikvision");
  cr_assert_eq(v->ncutoffs, 2);
  cr_expect_str_eq(v->cutoffs[0].category, "cloud");
  cr_expect_eq(v->cutoffs[0].attempts, 3);
  cr_expect_eq(v->cutoffs[0].denied, 2);
  cr_expect_eq(v->cutoffs[1].denied, 0);
  cr_expect_eq(inventory_category_clients(v, "cloud", &partial), 2);
  cr_expect_not(partial);
  cr_expect_eq(inventory_category_clients(v, "firmware", &partial), 1);
  cr_expect_eq(inventory_category_clients(v, "p2p", &partial), 0);
  inventory_free(&inv);
}

/* Regression: the table's "legal basis" line printed a list's reference as
 * it was, escape sequences and line breaks included, to the terminal. */
Test(report, table_writes_a_lists_reference_without_its_controls) {
  static const struct report_vendor_info info[] = {{"kaspersky", "Kaspersky",
                                                    "basis\x1b]0;pwned\x07\nFAKE \xc2\x9b"
                                                    "31m"}};
  const struct report_meta m = {.vendors = info, .nvendors = 1};
  struct inventory inv;
  struct inventory_fact f;
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);

  cr_assert_not_null(out);
  inventory_init(&inv, &no_filter, 42);
  f = fact("2024-10-02T10:00:00Z", "kaspersky", "10.0.0.5:40000");
  cr_assert_eq(inventory_add(&inv, &f), 0);
  cr_assert_eq(report_write_table(&inv, &m, out), 0);
  fclose(out);
  cr_expect_not_null(strstr(text, "  legal basis: basis?]0;pwned??FAKE ?31m\n"), "%s", text);
  cr_expect_null(strchr(text, '\x1b'));
  cr_expect_null(strstr(text, "\nFAKE"));
  free(text);
  inventory_free(&inv);
}
