/* Metrics: counters and histograms the proxy bumps as it works, and their
 * Prometheus text exposition. Counters live in shards: each event loop
 * thread writes its own shard without locks (today there is one), and a
 * reader sums the shards. Gauges (connections open, cache size, policy
 * figures) are read from the server when the page is rendered. */
#ifndef EMBARGO_PROXY_METRICS_H
#define EMBARGO_PROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "filters/policy-t.h"

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
  METRIC_CONNECT_OK, /* upstream dials, by outcome */
  METRIC_CONNECT_TIMEOUT,
  METRIC_CONNECT_ERROR,
  METRIC_RELOAD_OK,
  METRIC_RELOAD_FAILED,
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

struct server;
struct obuf;

/* Appends the Prometheus text exposition (format 0.0.4) of every metric,
 * shards summed, gauges read from SRV, to OUT. */
void metrics_render(struct obuf *out, const struct server *srv);

#endif
