/* Metrics: counters and histograms the proxy bumps as it works, and their
 * Prometheus text exposition. Counters live in shards: each thread writes
 * its own shard without locks (shard 0: the main thread, shard 1 + N:
 * worker N), and a reader on another thread sums the shards. Gauges
 * (connections open, cache size, policy figures) come from a view the
 * caller gathers from the workers when the page is rendered. */
#ifndef EMBARGO_PROXY_METRICS_H
#define EMBARGO_PROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "filters/policy-t.h"
#include "proxy/base/dnscache.h"

/* Plain counters. The render table in metrics.c names each one. */
enum metric_counter {
  METRIC_REQ_FORWARD,    /* HTTP requests (absolute-form) */
  METRIC_REQ_CONNECT,    /* CONNECT requests */
  METRIC_TUNNELS,        /* tunnels established (CONNECT, intercepted TLS, ...) */
  METRIC_BYTES_CLIENT,   /* bytes read from clients */
  METRIC_BYTES_UPSTREAM, /* bytes read from destinations */
  METRIC_HELLO_HELLO,    /* ClientHello outcomes, as in the log's "tls" field */
  METRIC_HELLO_NOT_TLS,
  METRIC_HELLO_MALFORMED,
  METRIC_HELLO_TOO_LARGE,
  METRIC_HELLO_TIMEOUT,
  METRIC_DNS_OK, /* DNS queries sent, by outcome */
  METRIC_DNS_NXDOMAIN,
  METRIC_DNS_NODATA,
  METRIC_DNS_TIMEOUT,
  METRIC_DNS_SERVFAIL,
  METRIC_DNS_BADANSWER,
  METRIC_DNS_ERROR,
  METRIC_LISTS_APPLIED, /* list bundle updates, by outcome (enum lists_result's order) */
  METRIC_LISTS_UNCHANGED,
  METRIC_LISTS_FETCH_FAILED,
  METRIC_LISTS_MALFORMED,
  METRIC_LISTS_BAD_SIGNATURE,
  METRIC_LISTS_BAD_DIGEST,
  METRIC_LISTS_ROLLBACK,
  METRIC_LISTS_INVALID,
  METRIC_LISTS_CACHE_FAILED,
  METRIC_LISTS_FUTURE,
  METRIC_CONNECT_OK, /* upstream dials, by outcome */
  METRIC_CONNECT_TIMEOUT,
  METRIC_CONNECT_ERROR,
  METRIC_CONNECT_LOCAL, /* failed for a reason of this host (upstream_error_is_local) */
  METRIC_RELOAD_OK,
  METRIC_RELOAD_FAILED,
  METRIC_PROXYPROTO_PROXY, /* PROXY protocol headers, by outcome */
  METRIC_PROXYPROTO_LOCAL,
  METRIC_PROXYPROTO_UNKNOWN,
  METRIC_PROXYPROTO_REFUSED_SOURCE,
  METRIC_PROXYPROTO_INVALID,
  METRIC_PROXYPROTO_TIMEOUT,
  METRIC_NCOUNTERS
};

enum metric_hist {
  METRIC_H_RESOLVE,    /* one DNS query on the wire, sent to answered */
  METRIC_H_CONNECT,    /* one upstream dial, started to connected or failed */
  METRIC_H_HELLO_WAIT, /* 200 to CONNECT until the ClientHello was judged */
  METRIC_NHISTS
};

/* Adds N to counter ID in this thread's shard. */
void metrics_add(enum metric_counter id, uint64_t n);

/* Records one observation of MS milliseconds in histogram ID. */
void metrics_observe_ms(enum metric_hist id, uint64_t ms);

/* TOTAL - LEFT, or 0 if LEFT is larger: the time spent of a deadline. */
static inline uint64_t metrics_elapsed(uint64_t total, uint64_t left) {
  return total > left ? total - left : 0;
}

/* Counts one accepted client connection on listener LISTENER_INDEX. */
void metrics_count_accept(size_t listener_index);

/* Counts a decision that a vendor rule made (V->rule not NULL); the vendor
 * and category names are copied. Other verdicts are ignored. */
void metrics_count_decision(const struct verdict *v);

/* Counts a ClientHello by its outcome name ("hello", "not_tls", ...). */
void metrics_count_hello(const char *outcome);

/* Sets the number of shards: the main thread's and one per worker (at most
 * CONFIG_MAX_WORKERS). Called once, before any worker thread starts. */
void metrics_set_workers(size_t nworkers);

/* Makes the calling thread count into worker WORKER's shard (a thread that
 * never calls it counts into the main thread's). */
void metrics_use_worker_shard(size_t worker);

/* One listener's gauges, summed over the workers. */
struct metrics_listener {
  const char *name; /* "127.0.0.1:3128" (borrowed) */
  int mode;         /* enum listen_mode */
  size_t active;    /* client connections open */
  uint64_t accept_errors;
};

/* What the page shows besides the counters, gathered by the caller. */
struct metrics_view {
  const struct policy *policy; /* the snapshot in force (borrowed) */
  int64_t policy_loaded_at;
  int64_t now; /* the policy clock, for the vendor lists' ages */
  size_t nlisteners;
  struct metrics_listener listeners[CONFIG_MAX_LISTEN];
  size_t nworkers;
  size_t worker_active[CONFIG_MAX_WORKERS]; /* client connections open, per worker */
  size_t tunnels;
  uint64_t fd_pauses, limit_pauses, client_refusals; /* admission */
  struct dnscache_stats dns;                         /* every worker's cache, summed */
  bool shutting_down;
};

struct obuf;

/* Appends the Prometheus text exposition (format 0.0.4) of every metric,
 * shards summed, gauges from VIEW, to OUT. */
void metrics_render(struct obuf *out, const struct metrics_view *view);

#endif
