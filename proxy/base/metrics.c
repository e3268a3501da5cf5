/* Counters, histograms and their Prometheus exposition. */
#include "proxy/base/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "filters/policy.h"
#include "proxy/base/freshness.h"
#include "proxy/base/http1.h"
#include "proxy/base/logq.h"

#define METRICS_MAX_SHARDS    (CONFIG_MAX_WORKERS + 1)
#define METRICS_MAX_DECISIONS 512 /* distinct vendor/category/action/matched_on sets */
#define NBUCKETS              14

/* Upper bounds in milliseconds; the last bucket is +Inf. */
static const uint64_t bucket_ms[NBUCKETS - 1] = {1,   2,   5,    10,   25,   50,   100,
                                                 250, 500, 1000, 2500, 5000, 10000};

/* Every cell is atomic because a reader on another thread sums it while
 * its owner writes; the owner, the only writer, adds with a relaxed load
 * and store (no locked instruction). */
struct metrics_histogram {
  _Atomic uint64_t buckets[NBUCKETS]; /* not cumulative; summed when rendered */
  _Atomic uint64_t count;
  _Atomic uint64_t sum_ms;
};

/* A label set: written once before it is published (ndecisions), then only
 * its count changes. */
struct decision_key {
  char vendor[64];
  char category[64];
  enum action action;
  enum match_on on;
  _Atomic uint64_t count;
};

/* Everything one thread counts. Only its own thread writes a shard. */
struct metrics_shard {
  _Atomic uint64_t counters[METRIC_NCOUNTERS];
  _Atomic uint64_t accepted[CONFIG_MAX_LISTEN];
  struct metrics_histogram hist[METRIC_NHISTS];
  struct decision_key decisions[METRICS_MAX_DECISIONS];
  _Atomic size_t ndecisions;          /* published with release */
  _Atomic uint64_t decisions_dropped; /* label sets beyond METRICS_MAX_DECISIONS */
};

static struct metrics_shard shards[METRICS_MAX_SHARDS];
static size_t nshards = 1;
static _Thread_local struct metrics_shard *local = &shards[0];

static inline void bump(_Atomic uint64_t *cell, uint64_t n) {
  atomic_store_explicit(cell, atomic_load_explicit(cell, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

static inline uint64_t get(const _Atomic uint64_t *cell) {
  return atomic_load_explicit(cell, memory_order_relaxed);
}

static inline size_t decisions_published(const struct metrics_shard *s) {
  return atomic_load_explicit(&s->ndecisions, memory_order_acquire);
}

void metrics_set_workers(size_t nworkers) {
  nshards = 1 + (nworkers < CONFIG_MAX_WORKERS ? nworkers : CONFIG_MAX_WORKERS);
}

void metrics_use_worker_shard(size_t worker) {
  if (worker + 1 < METRICS_MAX_SHARDS)
    local = &shards[worker + 1];
}

void metrics_add(enum metric_counter id, uint64_t n) {
  bump(&local->counters[id], n);
}

void metrics_observe_ms(enum metric_hist id, uint64_t ms) {
  struct metrics_histogram *h = &local->hist[id];
  size_t b = 0;
  while (b < NBUCKETS - 1 && ms > bucket_ms[b])
    b++;
  bump(&h->buckets[b], 1);
  bump(&h->count, 1);
  bump(&h->sum_ms, ms);
}

void metrics_count_accept(size_t listener_index) {
  if (listener_index < CONFIG_MAX_LISTEN)
    bump(&local->accepted[listener_index], 1);
}

void metrics_count_decision(const struct verdict *v) {
  struct metrics_shard *s = local;
  const char *vendor, *category;
  size_t i, n = atomic_load_explicit(&s->ndecisions, memory_order_relaxed);
  if (v == NULL || v->rule == NULL)
    return;
  vendor = v->rule->vendor->id;
  category = v->rule->category->name;
  for (i = 0; i < n; i++) {
    struct decision_key *k = &s->decisions[i];
    if (k->action == v->action && k->on == v->on && strcmp(k->vendor, vendor) == 0 &&
        strcmp(k->category, category) == 0) {
      bump(&k->count, 1);
      return;
    }
  }
  if (n == METRICS_MAX_DECISIONS) {
    bump(&s->decisions_dropped, 1);
    return;
  }
  struct decision_key *k = &s->decisions[n];
  snprintf(k->vendor, sizeof(k->vendor), "%s", vendor);
  snprintf(k->category, sizeof(k->category), "%s", category);
  k->action = v->action;
  k->on = v->on;
  atomic_store_explicit(&k->count, 1, memory_order_relaxed);
  atomic_store_explicit(&s->ndecisions, n + 1, memory_order_release);
}

void metrics_count_hello(const char *outcome) {
  static const struct {
    const char *name;
    enum metric_counter id;
  } map[] = {{"hello", METRIC_HELLO_HELLO},
             {"not_tls", METRIC_HELLO_NOT_TLS},
             {"malformed", METRIC_HELLO_MALFORMED},
             {"too_large", METRIC_HELLO_TOO_LARGE},
             {"timeout", METRIC_HELLO_TIMEOUT}};
  for (size_t i = 0; outcome != NULL && i < sizeof(map) / sizeof(map[0]); i++)
    if (strcmp(outcome, map[i].name) == 0)
      metrics_add(map[i].id, 1);
}

/* ---- rendering ---------------------------------------------------------- */

/* One series of a counter family; consecutive rows of one family share the
 * HELP and TYPE lines. */
static const struct {
  enum metric_counter id;
  const char *family;
  const char *labels;
  const char *help;
} counter_rows[] = {
    {METRIC_REQ_FORWARD, "embargo_requests_total", "kind=\"forward\"",
     "Requests read from clients, by kind (forward: absolute-form HTTP; connect: CONNECT)."},
    {METRIC_REQ_CONNECT, "embargo_requests_total", "kind=\"connect\"", NULL},
    {METRIC_TUNNELS, "embargo_tunnels_total", NULL,
     "Tunnels established: bytes relayed both ways (CONNECT, intercepted TLS, ...)."},
    {METRIC_BYTES_CLIENT, "embargo_bytes_received_total", "from=\"client\"",
     "Bytes read from clients and from destinations (each is relayed the other way)."},
    {METRIC_BYTES_UPSTREAM, "embargo_bytes_received_total", "from=\"upstream\"", NULL},
    {METRIC_HELLO_HELLO, "embargo_tls_hello_total", "outcome=\"hello\"",
     "ClientHellos inspected (CONNECT tunnels and intercepted TLS), by outcome."},
    {METRIC_HELLO_NOT_TLS, "embargo_tls_hello_total", "outcome=\"not_tls\"", NULL},
    {METRIC_HELLO_MALFORMED, "embargo_tls_hello_total", "outcome=\"malformed\"", NULL},
    {METRIC_HELLO_TOO_LARGE, "embargo_tls_hello_total", "outcome=\"too_large\"", NULL},
    {METRIC_HELLO_TIMEOUT, "embargo_tls_hello_total", "outcome=\"timeout\"", NULL},
    {METRIC_DNS_OK, "embargo_dns_queries_total", "status=\"ok\"",
     "DNS lookups sent to the resolvers (cache misses), by outcome."},
    {METRIC_DNS_NXDOMAIN, "embargo_dns_queries_total", "status=\"nxdomain\"", NULL},
    {METRIC_DNS_NODATA, "embargo_dns_queries_total", "status=\"nodata\"", NULL},
    {METRIC_DNS_TIMEOUT, "embargo_dns_queries_total", "status=\"timeout\"", NULL},
    {METRIC_DNS_SERVFAIL, "embargo_dns_queries_total", "status=\"servfail\"", NULL},
    {METRIC_DNS_BADANSWER, "embargo_dns_queries_total", "status=\"bad_answer\"", NULL},
    {METRIC_DNS_ERROR, "embargo_dns_queries_total", "status=\"error\"", NULL},
#define LISTS_ROW(id, result)                                                                      \
  { id, "embargo_lists_fetch_total", "result=\"" result "\"", NULL }
    {METRIC_LISTS_APPLIED, "embargo_lists_fetch_total", "result=\"applied\"",
     "Updates of the vendor lists from lists.url, by outcome (only applied changes the lists)."},
    LISTS_ROW(METRIC_LISTS_UNCHANGED, "unchanged"),
    LISTS_ROW(METRIC_LISTS_FETCH_FAILED, "fetch_failed"),
    LISTS_ROW(METRIC_LISTS_MALFORMED, "malformed"),
    LISTS_ROW(METRIC_LISTS_BAD_SIGNATURE, "bad_signature"),
    LISTS_ROW(METRIC_LISTS_BAD_DIGEST, "bad_digest"),
    LISTS_ROW(METRIC_LISTS_ROLLBACK, "rollback"),
    LISTS_ROW(METRIC_LISTS_INVALID, "invalid"),
    LISTS_ROW(METRIC_LISTS_CACHE_FAILED, "cache_failed"),
    LISTS_ROW(METRIC_LISTS_FUTURE, "future"),
#undef LISTS_ROW
    {METRIC_CONNECT_OK, "embargo_upstream_connects_total", "result=\"ok\"",
     "Connections dialled to destinations, by result (local_error: failed for a reason of "
     "this host, such as EPERM, EACCES, EMFILE or EADDRNOTAVAIL)."},
    {METRIC_CONNECT_TIMEOUT, "embargo_upstream_connects_total", "result=\"timeout\"", NULL},
    {METRIC_CONNECT_ERROR, "embargo_upstream_connects_total", "result=\"error\"", NULL},
    {METRIC_CONNECT_LOCAL, "embargo_upstream_connects_total", "result=\"local_error\"", NULL},
    {METRIC_RELOAD_OK, "embargo_reloads_total", "result=\"success\"",
     "Configuration reloads (SIGHUP or POST /reload), by result."},
    {METRIC_RELOAD_FAILED, "embargo_reloads_total", "result=\"failure\"", NULL},
#define PP_ROW(id, outcome)                                                                        \
  { id, "embargo_proxy_protocol_total", "outcome=\"" outcome "\"", NULL }
    {METRIC_PROXYPROTO_PROXY, "embargo_proxy_protocol_total", "outcome=\"proxy\"",
     "Connections on listeners behind a load balancer, by what their PROXY protocol header "
     "did (proxy: named a client; local: a health check; unknown: named none; the others "
     "closed the connection)."},
    PP_ROW(METRIC_PROXYPROTO_LOCAL, "local"),
    PP_ROW(METRIC_PROXYPROTO_UNKNOWN, "unknown"),
    PP_ROW(METRIC_PROXYPROTO_REFUSED_SOURCE, "refused_source"),
    PP_ROW(METRIC_PROXYPROTO_INVALID, "invalid"),
    PP_ROW(METRIC_PROXYPROTO_TIMEOUT, "timeout"),
#undef PP_ROW
};

static const struct {
  const char *family;
  const char *help;
} hist_rows[METRIC_NHISTS] = {
    [METRIC_H_RESOLVE] = {"embargo_dns_resolve_seconds",
                          "Time from sending a DNS lookup to its answer or failure."},
    [METRIC_H_CONNECT] = {"embargo_upstream_connect_seconds",
                          "Time to connect to a destination address (or fail)."},
    [METRIC_H_HELLO_WAIT] = {"embargo_tls_hello_wait_seconds",
                             "Time from the 200 to a CONNECT until its ClientHello was judged."},
};

static uint64_t sum_counter(enum metric_counter id) {
  uint64_t n = 0;
  for (size_t i = 0; i < nshards; i++)
    n += get(&shards[i].counters[id]);
  return n;
}

static void family(struct obuf *out, const char *name, const char *type, const char *help) {
  obuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_counters(struct obuf *out) {
  for (size_t i = 0; i < sizeof(counter_rows) / sizeof(counter_rows[0]); i++) {
    if (counter_rows[i].help != NULL)
      family(out, counter_rows[i].family, "counter", counter_rows[i].help);
    if (counter_rows[i].labels == NULL)
      obuf_printf(out, "%s %" PRIu64 "\n", counter_rows[i].family, sum_counter(counter_rows[i].id));
    else
      obuf_printf(out, "%s{%s} %" PRIu64 "\n", counter_rows[i].family, counter_rows[i].labels,
                  sum_counter(counter_rows[i].id));
  }
}

static void render_histogram(struct obuf *out, enum metric_hist id) {
  uint64_t buckets[NBUCKETS] = {0}, count = 0, sum_ms = 0, cum = 0;
  for (size_t s = 0; s < nshards; s++) {
    const struct metrics_histogram *h = &shards[s].hist[id];
    for (size_t b = 0; b < NBUCKETS; b++)
      buckets[b] += get(&h->buckets[b]);
    count += get(&h->count);
    sum_ms += get(&h->sum_ms);
  }
  family(out, hist_rows[id].family, "histogram", hist_rows[id].help);
  for (size_t b = 0; b < NBUCKETS; b++) {
    cum += buckets[b];
    if (b < NBUCKETS - 1)
      obuf_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", hist_rows[id].family,
                  (double)bucket_ms[b] / 1000.0, cum);
    else
      obuf_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", hist_rows[id].family, cum);
  }
  obuf_printf(out, "%s_sum %.3f\n%s_count %" PRIu64 "\n", hist_rows[id].family,
              (double)sum_ms / 1000.0, hist_rows[id].family, count);
}

/* Label values come from config files (vendor ids, category names are
 * restricted to [a-z0-9_-]) or from this program; escape anyway. */
static void label_value(struct obuf *out, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      obuf_printf(out, "\\%c", *s);
    else if (*s == '\n')
      obuf_add(out, "\\n", 2);
    else
      obuf_add(out, s, 1);
  }
}

static bool same_key(const struct decision_key *a, const struct decision_key *b) {
  return a->action == b->action && a->on == b->on && strcmp(a->vendor, b->vendor) == 0 &&
         strcmp(a->category, b->category) == 0;
}

/* Shard T's count for K's label set; *SEEN set if it has one. */
static uint64_t shard_count(size_t t, const struct decision_key *k, bool *seen) {
  for (size_t j = 0, n = decisions_published(&shards[t]); j < n; j++) {
    if (same_key(&shards[t].decisions[j], k)) {
      *seen = true;
      return get(&shards[t].decisions[j].count);
    }
  }
  return 0;
}

static void render_decisions(struct obuf *out) {
  family(out, "embargo_decisions_total", "counter",
         "Verdicts a vendor rule made, by vendor, category, action and the fact that matched "
         "(allow verdicts are counted only with access_log).");
  for (size_t s = 0; s < nshards; s++) {
    for (size_t i = 0, nd = decisions_published(&shards[s]); i < nd; i++) {
      const struct decision_key *k = &shards[s].decisions[i];
      uint64_t n = get(&k->count);
      bool seen = false;
      /* A label set is printed once, at the first shard that has it. */
      for (size_t t = 0; t < s && !seen; t++)
        shard_count(t, k, &seen);
      if (seen)
        continue;
      for (size_t t = s + 1; t < nshards; t++)
        n += shard_count(t, k, &seen);
      obuf_add(out, "embargo_decisions_total{vendor=\"", 32);
      label_value(out, k->vendor);
      obuf_add(out, "\",category=\"", 12);
      label_value(out, k->category);
      obuf_printf(out, "\",action=\"%s\",matched_on=\"%s\"} %" PRIu64 "\n", action_name(k->action),
                  match_on_name(k->on), n);
    }
  }
}

static void render_connections(struct obuf *out, const struct metrics_view *v) {
  size_t i;
  family(out, "embargo_client_connections_active", "gauge",
         "Client connections open now, by listener and mode.");
  for (i = 0; i < v->nlisteners; i++)
    obuf_printf(out, "embargo_client_connections_active{listener=\"%s\",mode=\"%s\"} %zu\n",
                v->listeners[i].name, listen_mode_name(v->listeners[i].mode),
                v->listeners[i].active);
  family(out, "embargo_client_connections_total", "counter",
         "Client connections accepted, by listener and mode.");
  for (i = 0; i < v->nlisteners; i++) {
    uint64_t n = 0;
    for (size_t s = 0; s < nshards; s++)
      n += get(&shards[s].accepted[i]);
    obuf_printf(out, "embargo_client_connections_total{listener=\"%s\",mode=\"%s\"} %" PRIu64 "\n",
                v->listeners[i].name, listen_mode_name(v->listeners[i].mode), n);
  }
  family(out, "embargo_accept_errors_total", "counter",
         "Accepts that failed (out of descriptors, ...), by listener.");
  for (i = 0; i < v->nlisteners; i++)
    obuf_printf(out, "embargo_accept_errors_total{listener=\"%s\"} %" PRIu64 "\n",
                v->listeners[i].name, v->listeners[i].accept_errors);
  family(out, "embargo_accept_pauses_total", "counter",
         "Times accepting paused, by reason (out of descriptors, at limits.max_connections).");
  obuf_printf(out, "embargo_accept_pauses_total{reason=\"descriptors\"} %" PRIu64 "\n",
              v->fd_pauses);
  obuf_printf(out, "embargo_accept_pauses_total{reason=\"max_connections\"} %" PRIu64 "\n",
              v->limit_pauses);
  family(out, "embargo_client_cap_refusals_total", "counter",
         "Connections closed at limits.max_connections_per_client.");
  obuf_printf(out, "embargo_client_cap_refusals_total %" PRIu64 "\n", v->client_refusals);
  family(out, "embargo_tunnels_active", "gauge", "Tunnels relaying bytes now.");
  obuf_printf(out, "embargo_tunnels_active %zu\n", v->tunnels);
}

/* Each worker's share of the work: the kernel spreads new connections over
 * the workers' listening sockets. */
static void render_workers(struct obuf *out, const struct metrics_view *v) {
  size_t w, n = v->nworkers < nshards - 1 ? v->nworkers : nshards - 1;
  family(out, "embargo_workers", "gauge", "Event loops (worker threads) serving clients.");
  obuf_printf(out, "embargo_workers %zu\n", v->nworkers);
  family(out, "embargo_worker_connections_active", "gauge",
         "Client connections open now, by worker.");
  for (w = 0; w < n; w++)
    obuf_printf(out, "embargo_worker_connections_active{worker=\"%zu\"} %zu\n", w,
                v->worker_active[w]);
  family(out, "embargo_worker_connections_total", "counter",
         "Client connections accepted, by worker.");
  for (w = 0; w < n; w++) {
    uint64_t sum = 0;
    for (size_t i = 0; i < CONFIG_MAX_LISTEN; i++)
      sum += get(&shards[w + 1].accepted[i]);
    obuf_printf(out, "embargo_worker_connections_total{worker=\"%zu\"} %" PRIu64 "\n", w, sum);
  }
  family(out, "embargo_worker_requests_total", "counter",
         "Requests read from clients (forward and CONNECT), by worker.");
  for (w = 0; w < n; w++)
    obuf_printf(out, "embargo_worker_requests_total{worker=\"%zu\"} %" PRIu64 "\n", w,
                get(&shards[w + 1].counters[METRIC_REQ_FORWARD]) +
                    get(&shards[w + 1].counters[METRIC_REQ_CONNECT]));
}

static void gauge(struct obuf *out, const char *name, const char *help, uint64_t v) {
  family(out, name, "gauge", help);
  obuf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void counter(struct obuf *out, const char *name, const char *help, uint64_t v) {
  family(out, name, "counter", help);
  obuf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void render_dns(struct obuf *out, const struct metrics_view *v) {
  const struct dnscache_stats st = v->dns;
  counter(out, "embargo_dns_cache_hits_total", "Lookups answered from the DNS cache.", st.hits);
  counter(out, "embargo_dns_cache_misses_total", "Lookups the cache could not answer.", st.misses);
  counter(out, "embargo_dns_cache_joins_total", "Lookups that waited on a query already running.",
          st.joins);
  counter(out, "embargo_dns_cache_expired_total", "Entries found past their expiry.", st.expired);
  counter(out, "embargo_dns_cache_evictions_total", "Entries dropped to stay within the bounds.",
          st.evictions);
  gauge(out, "embargo_dns_cache_entries", "Answers held in the DNS cache.", st.entries);
  gauge(out, "embargo_dns_cache_bytes", "Bytes held by the DNS cache.", st.bytes + st.table_bytes);
  gauge(out, "embargo_dns_queries_in_flight", "DNS queries running now.", st.pending);
}

static void render_policy(struct obuf *out, const struct metrics_view *v) {
  const struct policy *p = v->policy;
  family(out, "embargo_policy_info", "gauge",
         "The policy snapshot in force: its version (a hash of its sources).");
  obuf_printf(out, "embargo_policy_info{version=\"%s\"} 1\n", policy_version(p));
  gauge(out, "embargo_policy_loaded_timestamp_seconds",
        "When the policy in force was loaded (policy clock, seconds since the epoch).",
        (uint64_t)v->policy_loaded_at);
  family(out, "embargo_policy_entries", "gauge", "Entries of the policy in force, by kind.");
  obuf_printf(out, "embargo_policy_entries{kind=\"vendor\"} %zu\n", policy_vendor_count(p));
  obuf_printf(out, "embargo_policy_entries{kind=\"host\"} %zu\n", policy_host_count(p));
  obuf_printf(out, "embargo_policy_entries{kind=\"network\"} %zu\n", policy_network_count(p));
  obuf_printf(out, "embargo_policy_entries{kind=\"ja4\"} %zu\n", policy_ja4_count(p));
  obuf_printf(out, "embargo_policy_entries{kind=\"exception\"} %zu\n", policy_exception_count(p));
  gauge(out, "embargo_monitor_mode", "1 when nothing is denied (monitor mode).",
        policy_monitor(p) ? 1 : 0);
}

/* One series per vendor list with a `reviewed` date (AGE), with a max_age
 * (MAX_AGE, STALE). */
enum freshness_series { FRESH_AGE, FRESH_MAX_AGE, FRESH_STALE };

static void render_freshness_series(struct obuf *out, const struct metrics_view *v,
                                    enum freshness_series which) {
  static const struct {
    const char *name, *help;
  } rows[] = {
      [FRESH_AGE] = {"embargo_vendor_list_age_seconds",
                     "Seconds since each vendor list was reviewed (its reviewed date, policy "
                     "clock)."},
      [FRESH_MAX_AGE] = {"embargo_vendor_list_max_age_seconds",
                         "Each vendor list's max_age: past it the list is stale (still "
                         "enforced)."},
      [FRESH_STALE] = {"embargo_vendor_list_stale",
                       "1 when a vendor list is past its max_age (still enforced)."},
  };
  const struct policy *p = v->policy;
  family(out, rows[which].name, "gauge", rows[which].help);
  for (size_t i = 0; i < policy_vendor_count(p); i++) {
    const struct vendor *vd = policy_vendor_at(p, i);
    struct freshness f;
    freshness_of(vd, v->now, &f);
    if (!f.known || (which != FRESH_AGE && !f.limited))
      continue;
    obuf_printf(out, "%s{vendor=\"", rows[which].name);
    label_value(out, vd->id);
    obuf_printf(out, "\"} %" PRId64 "\n",
                which == FRESH_AGE       ? f.age
                : which == FRESH_MAX_AGE ? (int64_t)vd->max_age
                                         : (int64_t)f.stale);
  }
}

static void render_log(struct obuf *out) {
  family(out, "embargo_log_lines_dropped_total", "counter",
         "Log lines dropped because the log reader did not keep up, by stream.");
  obuf_printf(out, "embargo_log_lines_dropped_total{stream=\"decision\"} %" PRIu64 "\n",
              logq_dropped(LOGQ_DECISION));
  obuf_printf(out, "embargo_log_lines_dropped_total{stream=\"diagnostic\"} %" PRIu64 "\n",
              logq_dropped(LOGQ_DIAGNOSTIC));
}

void metrics_render(struct obuf *out, const struct metrics_view *view) {
  render_connections(out, view);
  render_workers(out, view);
  render_counters(out);
  render_decisions(out);
  for (int h = 0; h < METRIC_NHISTS; h++)
    render_histogram(out, (enum metric_hist)h);
  render_dns(out, view);
  render_policy(out, view);
  render_freshness_series(out, view, FRESH_AGE);
  render_freshness_series(out, view, FRESH_MAX_AGE);
  render_freshness_series(out, view, FRESH_STALE);
  render_log(out);
  gauge(out, "embargo_shutting_down", "1 once a stop signal was received.",
        view->shutting_down ? 1 : 0);
}
