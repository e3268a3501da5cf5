/* libFuzzer target for `embargo report`: decision log lines carry peer bytes
 * (escaped by the proxy, but a log file can hold anything). The input is
 * split into lines and fed to the inventory, then every writer runs. The
 * target traps when a contract breaks: every line is counted exactly once,
 * the per-client figures add up to the totals, the bounded lists stay within
 * their bounds, and the JSON writer's output parses as JSON. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/report/inventory.h"
#include "proxy/report/report.h"

#define CHECK(cond)     \
  do {                  \
    if (!(cond))        \
      __builtin_trap(); \
  } while (0)

static void check_client(const struct inventory_client *c) {
  uint64_t sum = 0;
  uint32_t i;
  CHECK(c->after_cutoff <= c->attempts && c->first_ms <= c->last_ms);
  CHECK(c->destinations.n <= INVENTORY_MAX_DESTINATIONS && c->ja4.n <= INVENTORY_MAX_JA4 &&
        c->agents.n <= INVENTORY_MAX_AGENTS && c->ncats <= INVENTORY_MAX_CATEGORIES);
  for (i = 0; i < c->ncats; i++)
    sum += c->cats[i].attempts;
  CHECK(sum <= c->attempts);
  for (i = 0; i < c->agents.n; i++)
    CHECK(strlen(c->agents.items[i]) <= INVENTORY_VALUE_MAX + 3);
}

/* The figures add up: clients to vendors, vendors to the totals. */
static void check_sums(const struct inventory *inv) {
  struct inventory_vendor **vs;
  struct inventory_client **cs;
  uint64_t total = 0, sum;
  size_t nv, nc, i, k;

  vs = inventory_vendors(inv, &nv);
  for (i = 0; i < nv; i++) {
    cs = inventory_clients(vs[i], &nc);
    for (k = 0, sum = 0; k < nc; k++) {
      check_client(cs[k]);
      sum += cs[k]->attempts;
    }
    CHECK(sum == vs[i]->attempts);
    total += sum;
    free(cs);
  }
  free(vs);
  CHECK(total == inv->counts.attempts);
}

static void check_writers(const struct inventory *inv) {
  static const char *const inputs[] = {"-"};
  struct report_meta m = {0, inputs, 1};
  char *text = NULL;
  size_t len = 0;
  json_error_t err;
  json_t *doc;
  FILE *out = fopen("/dev/null", "w");

  CHECK(out != NULL);
  CHECK(report_write_table(inv, &m, out) == 0 && report_write_csv(inv, &m, out) == 0);
  CHECK(report_write_html(inv, &m, out) == 0);
  fclose(out);
  out = open_memstream(&text, &len);
  CHECK(out != NULL && report_write_json(inv, &m, out) == 0);
  fclose(out);
  doc = json_loadb(text, len, 0, &err);
  CHECK(doc != NULL);
  json_decref(doc);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct inventory_filter flt = {INVENTORY_TIME_NONE, INVENTORY_TIME_NONE, NULL};
  struct inventory inv;
  const char *p = (const char *)data, *end = p + size, *nl;
  uint64_t lines = 0;

  inventory_init(&inv, &flt, 1);
  while (p < end) {
    nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
      nl = end;
    CHECK(report_add_line(&inv, p, (size_t)(nl - p)) == 0);
    lines++;
    p = nl + 1;
  }
  CHECK(inv.counts.lines == lines);
  CHECK(inv.counts.attempts + inv.counts.no_vendor + inv.counts.malformed + inv.counts.outside ==
        lines);
  check_sums(&inv);
  check_writers(&inv);
  inventory_free(&inv);
  return 0;
}
