/* Names under vendors' registered domains that the lists miss, counted
 * from decision log lines (unmatched.h). */
#include "proxy/report/unmatched.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "proxy/report/inventory.h"
#include "proxy/report/report.h"

struct um_client {
  char addr[INVENTORY_NAME_MAX];
  uint64_t count;
};

/* One name under one vendor's domains. */
struct um_name {
  const struct vendor *vendor;
  char name[HOST_NAME_MAX_LEN + 1];
  uint64_t count;
  int64_t first_ms, last_ms;
  struct um_client clients[UNMATCHED_MAX_CLIENTS];
  size_t nclients;
  uint64_t clients_not_kept; /* requests from clients beyond the kept ones */
};

struct unmatched {
  struct config cfg; /* owns the policy */
  const struct inventory_filter *filter;
  struct um_name *names; /* in the order first seen */
  size_t n;
  uint32_t *index; /* open addressing: 1 + position in names, 0 empty */
  size_t index_cap;
  uint64_t names_not_kept; /* requests for names beyond UNMATCHED_MAX_NAMES */
};

int unmatched_open(const char *config, const struct inventory_filter *filter,
                   struct unmatched **out, char *err, size_t errsize) {
  struct unmatched *u = calloc(1, sizeof(*u));
  int rc = -ENOMEM;
  *out = NULL;
  if (u == NULL || (u->names = calloc(UNMATCHED_MAX_NAMES, sizeof(*u->names))) == NULL ||
      (u->index = calloc(2 * UNMATCHED_MAX_NAMES, sizeof(*u->index))) == NULL) {
    snprintf(err, errsize, "out of memory");
    goto fail;
  }
  u->index_cap = 2 * UNMATCHED_MAX_NAMES;
  u->filter = filter;
  rc = config != NULL ? config_load_file(&u->cfg, config, err, errsize)
                      : config_load_default(&u->cfg, err, errsize);
  if (rc != 0)
    goto fail;
  *out = u;
  return 0;
fail:
  unmatched_free(u);
  return rc;
}

void unmatched_free(struct unmatched *u) {
  if (u == NULL)
    return;
  config_free(&u->cfg);
  free(u->names);
  free(u->index);
  free(u);
}

/* The vendor under one of whose domains NAME lies, or NULL. */
static const struct vendor *vendor_of(const struct unmatched *u, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < policy_vendor_count(u->cfg.policy); i++) {
    const struct vendor *v = policy_vendor_at(u->cfg.policy, i);
    if (v->domains == NULL || (u->filter->vendor && strcmp(u->filter->vendor, v->id) != 0))
      continue;
    for (const char *d = v->domains; *d;) {
      size_t dlen = strcspn(d, " ");
      if (len == dlen ? memcmp(name, d, dlen) == 0
                      : len > dlen && name[len - dlen - 1] == '.' &&
                            memcmp(name + len - dlen, d, dlen) == 0)
        return v;
      d += dlen + (d[dlen] == ' ');
    }
  }
  return NULL;
}

/* Whether a host rule (or an exception over one) of the lists matches NAME,
 * for any client: every client group's lists count too. */
static bool listed(const struct unmatched *u, const struct host *h) {
  struct facts f = {.host = h, .groups = ~UINT64_C(0)};
  struct verdict v;
  policy_decide(u->cfg.policy, &f, 0, &v);
  return v.reason != VERDICT_NO_MATCH;
}

static uint64_t hash(const char *name, const struct vendor *v) {
  uint64_t x = 1469598103934665603ull ^ (uintptr_t)v;
  for (; *name; name++)
    x = (x ^ (unsigned char)*name) * 1099511628211ull;
  return x;
}

/* The record of (V, NAME), made if there is room; NULL when there is not. */
static struct um_name *find(struct unmatched *u, const struct vendor *v, const char *name) {
  size_t mask = u->index_cap - 1, i = hash(name, v) & mask;
  for (; u->index[i] != 0; i = (i + 1) & mask) {
    struct um_name *r = &u->names[u->index[i] - 1];
    if (r->vendor == v && strcmp(r->name, name) == 0)
      return r;
  }
  if (u->n == UNMATCHED_MAX_NAMES)
    return NULL;
  struct um_name *r = &u->names[u->n++];
  u->index[i] = (uint32_t)u->n;
  r->vendor = v;
  snprintf(r->name, sizeof(r->name), "%s", name);
  r->first_ms = INT64_MAX;
  r->last_ms = INT64_MIN;
  return r;
}

static void count_client(struct um_name *r, const char *client) {
  char addr[INVENTORY_NAME_MAX];
  if (client == NULL || inventory_client_addr(client, addr, sizeof(addr)) != 0)
    snprintf(addr, sizeof(addr), "%s", client ? client : "?");
  for (size_t i = 0; i < r->nclients; i++) {
    if (strcmp(r->clients[i].addr, addr) == 0) {
      r->clients[i].count++;
      return;
    }
  }
  if (r->nclients == UNMATCHED_MAX_CLIENTS) {
    r->clients_not_kept++;
    return;
  }
  snprintf(r->clients[r->nclients].addr, sizeof(r->clients[0].addr), "%s", addr);
  r->clients[r->nclients++].count = 1;
}

int unmatched_add(struct unmatched *u, const struct inventory_fact *f) {
  const struct inventory_filter *flt = u->filter;
  const struct vendor *v;
  struct host h;
  if (f->host == NULL || host_normalise(f->host, strlen(f->host), &h) != 0 || h.kind != HOST_NAME ||
      (v = vendor_of(u, h.name)) == NULL || listed(u, &h))
    return 0;
  if ((flt->since_ms != INVENTORY_TIME_NONE && f->time_ms < flt->since_ms) ||
      (flt->until_ms != INVENTORY_TIME_NONE && f->time_ms >= flt->until_ms))
    return 0;
  struct um_name *r = find(u, v, h.name);
  if (r == NULL) {
    u->names_not_kept++;
    return 0;
  }
  r->count++;
  r->first_ms = f->time_ms < r->first_ms ? f->time_ms : r->first_ms;
  r->last_ms = f->time_ms > r->last_ms ? f->time_ms : r->last_ms;
  count_client(r, f->client);
  return 0;
}

/* ---- writing ---------------------------------------------------------------- */

static int busiest_first(const void *a, const void *b) {
  const struct um_name *x = *(const struct um_name *const *)a;
  const struct um_name *y = *(const struct um_name *const *)b;
  if (x->count != y->count)
    return x->count < y->count ? 1 : -1;
  return strcmp(x->name, y->name);
}

/* The names of V, busiest first, into SORTED; their number. */
static size_t names_of(const struct unmatched *u, const struct vendor *v,
                       const struct um_name **sorted) {
  size_t n = 0;
  for (size_t i = 0; i < u->n; i++)
    if (u->names[i].vendor == v)
      sorted[n++] = &u->names[i];
  qsort(sorted, n, sizeof(*sorted), busiest_first);
  return n;
}

/* The names are normalised hosts; a client is what a log line said, which
 * may be anything when it is not an address: written clean (peer bytes). */
static void write_table_name(const struct um_name *r, FILE *out) {
  char first[40], last[40];
  fprintf(out, "  %8llu  %-24s %-24s ", (unsigned long long)r->count,
          inventory_format_time(r->first_ms, first, sizeof(first)),
          inventory_format_time(r->last_ms, last, sizeof(last)));
  report_put_clean(out, r->name);
  fputc('\n', out);
  for (size_t i = 0; i < r->nclients; i++) {
    fprintf(out, "  %8s  %-24s %-24s   ", "", "", "");
    report_put_clean(out, r->clients[i].addr);
    fprintf(out, " (%llu)\n", (unsigned long long)r->clients[i].count);
  }
  if (r->clients_not_kept > 0)
    fprintf(out, "  %8s  %-24s %-24s   +%llu more from other clients\n", "", "", "",
            (unsigned long long)r->clients_not_kept);
}

static void write_json_name(const struct um_name *r, bool first_one, FILE *out) {
  char first[40], last[40];
  fprintf(out, "%s\n      {\"name\":", first_one ? "" : ",");
  report_put_json_string(out, r->name);
  fprintf(out, ",\"requests\":%llu,\"first_seen\":\"%s\",\"last_seen\":\"%s\",\"clients\":[",
          (unsigned long long)r->count, inventory_format_time(r->first_ms, first, sizeof(first)),
          inventory_format_time(r->last_ms, last, sizeof(last)));
  for (size_t i = 0; i < r->nclients; i++) {
    fprintf(out, "%s{\"client\":", i ? "," : "");
    report_put_json_string(out, r->clients[i].addr);
    fprintf(out, ",\"requests\":%llu}", (unsigned long long)r->clients[i].count);
  }
  fprintf(out, "],\"clients_not_kept\":%llu}", (unsigned long long)r->clients_not_kept);
}

static void write_vendor(const struct unmatched *u, const struct vendor *v, bool json,
                         bool first_vendor, const struct um_name **sorted, FILE *out) {
  size_t n = names_of(u, v, sorted);
  if (json) {
    fprintf(out, "%s\n    {\"vendor\":", first_vendor ? "" : ",");
    report_put_json_string(out, v->id);
    fprintf(out, ",\"domains\":");
    report_put_json_string(out, v->domains);
    fprintf(out, ",\"names\":[");
  } else {
    fprintf(out, "%s: %zu name(s) under ", v->id, n);
    for (const char *d = v->domains; *d; d++)
      fputs(*d == ' ' ? ", " : (char[]){*d, '\0'}, out);
    fprintf(out, " that no category matched\n");
    if (n > 0)
      fprintf(out, "  %8s  %-24s %-24s %s\n", "requests", "first seen", "last seen",
              "name / clients (requests)");
  }
  for (size_t i = 0; i < n; i++) {
    if (json)
      write_json_name(sorted[i], i == 0, out);
    else
      write_table_name(sorted[i], out);
  }
  fprintf(out, json ? "]}" : "\n");
}

int unmatched_write(const struct unmatched *u, bool json, FILE *out) {
  const struct um_name **sorted = calloc(u->n + 1, sizeof(*sorted));
  const struct policy *p = u->cfg.policy;
  bool first = true;
  if (sorted == NULL)
    return -ENOMEM;
  if (json)
    fprintf(out, "{\"policy_version\":\"%s\",\"names_not_kept\":%llu,\"vendors\":[",
            policy_version(p), (unsigned long long)u->names_not_kept);
  for (size_t i = 0; i < policy_vendor_count(p); i++) {
    const struct vendor *v = policy_vendor_at(p, i);
    if (u->filter->vendor != NULL && strcmp(u->filter->vendor, v->id) != 0)
      continue;
    if (v->domains == NULL) {
      if (!json)
        fprintf(out, "%s: its list declares no domains: nothing to look for\n\n", v->id);
      continue;
    }
    write_vendor(u, v, json, first, sorted, out);
    first = false;
  }
  if (json)
    fprintf(out, "\n  ]}\n");
  else if (u->names_not_kept > 0)
    fprintf(out, "+%llu request(s) for names beyond the %d kept\n",
            (unsigned long long)u->names_not_kept, UNMATCHED_MAX_NAMES);
  free(sorted);
  return ferror(out) ? -EIO : 0;
}

/* ---- the command ------------------------------------------------------------ */

static const char unmatched_usage[] =
    "Usage: embargo report --unmatched [options] [LOG...]\n"
    "Names seen in decision logs (plain or .gz; standard input when none or \"-\") under\n"
    "each vendor's registered domains (its list's domains:) that no category of the\n"
    "configuration matches, with the clients that asked and how often. Run the proxy\n"
    "with access_log: true so that requests nothing matched are logged.\n"
    "\n"
    "  -c, --config FILE    the configuration whose lists are used (default: built-in)\n"
    "  --since RFC3339      only lines at or after this time\n"
    "  --until RFC3339      only lines before this time\n"
    "  --vendor ID          only this vendor's domains\n"
    "  --format FORMAT      table (default) or json\n"
    "  -h, --help           this text\n";

bool unmatched_wanted(int argc, char **argv) {
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "--unmatched") == 0)
      return true;
  return false;
}

struct unmatched_opts {
  struct inventory_filter filter;
  const char *config;
  bool json;
};

static int usage(const char *what, const char *arg) {
  fprintf(stderr, "embargo: report: %s \"%s\"\n\n%s", what, arg, unmatched_usage);
  return 2;
}

static int parse_time(const char *option, const char *text, int64_t *out) {
  char what[64];
  if (inventory_parse_time(text, strlen(text), out) == 0)
    return 0;
  snprintf(what, sizeof(what), "%s: expected an RFC 3339 time, got", option);
  return usage(what, text);
}

/* -1 after --help, 0, or the exit status of a usage error. */
static int parse_options(int argc, char **argv, struct unmatched_opts *o) {
  static const struct option longopts[] = {
      {"unmatched", no_argument, NULL, 'U'},    {"config", required_argument, NULL, 'c'},
      {"since", required_argument, NULL, 's'},  {"until", required_argument, NULL, 'u'},
      {"vendor", required_argument, NULL, 'V'}, {"format", required_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
  int ch, rc = 0;
  optind = 0; /* a new argument vector: reinitialise getopt */
  while (rc == 0 && (ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'U': break;
    case 'c': o->config = optarg; break;
    case 's': rc = parse_time("--since", optarg, &o->filter.since_ms); break;
    case 'u': rc = parse_time("--until", optarg, &o->filter.until_ms); break;
    case 'V': o->filter.vendor = optarg; break;
    case 'f':
      if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0)
        return usage("--unmatched --format: expected table or json, got", optarg);
      o->json = strcmp(optarg, "json") == 0;
      break;
    case 'h': fputs(unmatched_usage, stdout); return -1;
    default: fprintf(stderr, "\n%s", unmatched_usage); return 2;
    }
  }
  return rc;
}

static int on_fact(void *arg, const struct inventory_fact *f) {
  return unmatched_add(arg, f);
}

int unmatched_main(const char *config, int argc, char **argv) {
  static const char *const std_in[] = {"-"};
  struct unmatched_opts o = {{INVENTORY_TIME_NONE, INVENTORY_TIME_NONE, NULL}, config, false};
  struct unmatched *u = NULL;
  struct inventory inv;
  char err[1024];
  int rc, status = 0;
  if ((rc = parse_options(argc, argv, &o)) != 0)
    return rc < 0 ? 0 : rc;
  if (unmatched_open(o.config, &o.filter, &u, err, sizeof(err)) != 0) {
    fprintf(stderr, "embargo: %s\n", err);
    return 2;
  }
  inventory_init(&inv, &o.filter, 1);
  inv.also = on_fact;
  inv.also_arg = u;
  rc = optind < argc
           ? report_read_logs(&inv, (const char *const *)argv + optind, (size_t)(argc - optind))
           : report_read_logs(&inv, std_in, 1);
  if (rc == -ENOMEM) {
    fprintf(stderr, "embargo: report: out of memory\n");
    status = 1;
  } else {
    status = rc == 0 ? 0 : 1; /* a log not read whole: what was read is still reported */
    if (unmatched_write(u, o.json, stdout) != 0 || fflush(stdout) != 0) {
      fprintf(stderr, "embargo: report: cannot write the report: %s\n", strerror(errno));
      status = 1;
    }
  }
  fprintf(stderr, "embargo: report: %llu lines read, %llu malformed lines skipped\n",
          (unsigned long long)inv.counts.lines, (unsigned long long)inv.counts.malformed);
  inventory_free(&inv);
  unmatched_free(u);
  return status;
}
