/* PROXYHDR, listeners behind a load balancer (proxy_protocol: true): the
 * PROXY protocol header (version 1 or 2, filters/proxyproto.c) the
 * balancer puts before the client's bytes, read before anything else.
 *
 * Only a source in proxy_protocol_from may send one: a connection from
 * anywhere else, a header that is not valid (missing, malformed, over
 * PROXYPROTO_MAX bytes) or not whole within PROXYHDR_MS is closed with a
 * log line, since otherwise anyone reaching the port could name their own
 * client. A PROXY header's source becomes the client for everything after
 * it (conn_take_client: the per-client cap, then clients:, the log, client
 * groups), and on a transparent listener its destination is the original
 * destination (the balancer intercepted the connection). A LOCAL header is
 * the balancer's own connection, a health check: it names no client and
 * nothing is served on it (LINGER: FIN, what follows dropped). An UNKNOWN
 * one (relayed for a client it cannot name) leaves the balancer as the
 * client, as the protocol says. Bytes after the header are the client's:
 * they wait in the core's spill buffer for the listener's first phase. */
#include "proxy/conn/proxyhdr.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "filters/netmatch.h"
#include "filters/proxyproto.h"
#include "proxy/base/dns.h"
#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/conn/conn.h"
#include "proxy/worker/listener.h"
#include "proxy/worker/server.h"

/* A balancer writes the header as it connects: a source slower than this
 * is not one. */
#define PROXYHDR_MS 3000

/* Whether the connection's source is a balancer the configuration names. */
static bool from_balancer(const struct conn *c) {
  const struct netmatch *from = c->srv->cfg->proxy_protocol_from;
  struct sockaddr_in tmp; /* a v4 source on a dual-stack socket is judged as v4 */
  const struct sockaddr *sa = sockaddr_unmapped(&c->peer.sa, &tmp);
  const uint8_t *addr = sa->sa_family == AF_INET
                            ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr
                            : (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (from == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
    return false;
  return netmatch_lookup(from, sa->sa_family, addr, NULL) != NULL;
}

/* Closes with the log line every refusal gets (and counts it as ID). */
static enum phase_rc refuse(struct conn *c, enum metric_counter id, const char *why) {
  char peer[64];
  metrics_add(id, 1);
  log_diag(LOG_WARN, c->id, "%s on %s: %s; closing", log_fmt_addr(&c->peer.sa, peer, sizeof(peer)),
           c->lst->name, why);
  return PHASE_CLOSE;
}

static enum phase_rc hdr_enter(struct conn *c) {
  if (!from_balancer(c))
    return refuse(c, METRIC_PROXYPROTO_REFUSED_SOURCE,
                  "not in proxy_protocol_from (a PROXY protocol header is taken only from the "
                  "load balancers)");
  return PHASE_MORE;
}

/* The endpoint A of a header as a socket address into OUT. */
static void sockaddr_from(const struct proxyproto_addr *a, struct sockaddr_storage *out) {
  memset(out, 0, sizeof(*out));
  if (a->family == AF_INET) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)out;
    in4->sin_family = AF_INET;
    in4->sin_port = htons(a->port);
    memcpy(&in4->sin_addr, a->addr, 4);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->addr, 16);
  }
}

/* The client the header names (NULL: the balancer stays the client), its
 * cap and its clients: entry, then the listener's first phase. */
static enum phase_rc serve(struct conn *c, const struct sockaddr *client) {
  if (conn_take_client(c, client) != 0)
    return PHASE_CLOSE; /* over the per-client cap; proxy/worker/admit logged it */
  if (!conn_client_allowed(c))
    return conn_refuse_client(c);
  return conn_goto(c, conn_transparent(c) ? CONN_ST_SNIFF : CONN_ST_HEAD);
}

/* A whole header H: what it says decides what follows. */
static enum phase_rc accepted(struct conn *c, const struct proxyproto_header *h) {
  struct sockaddr_storage client, where;
  char bal[64], who[64], dst[64];

  log_fmt_addr(&c->peer.sa, bal, sizeof(bal));
  switch (h->command) {
  case PROXYPROTO_LOCAL:
    metrics_add(METRIC_PROXYPROTO_LOCAL, 1);
    log_diag(LOG_DEBUG, c->id, "%s: LOCAL header (a health check): no client, nothing served", bal);
    return conn_goto(c, CONN_ST_LINGER);
  case PROXYPROTO_UNKNOWN:
    metrics_add(METRIC_PROXYPROTO_UNKNOWN, 1);
    log_diag(LOG_INFO, c->id,
             "%s: PROXY header names no client (UNKNOWN); the balancer is the "
             "client",
             bal);
    return serve(c, NULL);
  default: break;
  }
  metrics_add(METRIC_PROXYPROTO_PROXY, 1);
  sockaddr_from(&h->src, &client);
  sockaddr_from(&h->dst, &where);
  if (conn_transparent(c)) /* where the client was going, as the balancer saw it */
    memcpy(&c->ex->orig_dst, &where, sizeof(where));
  log_diag(LOG_DEBUG, c->id, "%s: PROXY v%u header: client %s, destination %s", bal, h->version,
           log_fmt_addr((const struct sockaddr *)&client, who, sizeof(who)),
           log_fmt_addr((const struct sockaddr *)&where, dst, sizeof(dst)));
  return serve(c, (const struct sockaddr *)&client);
}

/* Everything read so far is parsed again (the parser keeps no state); a
 * prefix of a header is kept (*USED 0) until the rest comes. */
static enum phase_rc hdr_data(struct conn *c, const char *data, size_t len, size_t *used) {
  struct proxyproto_header h;
  char why[160];

  *used = 0;
  switch (proxyproto_parse((const uint8_t *)data, len, &h)) {
  case PROXYPROTO_NEED_MORE: return PHASE_MORE;
  case PROXYPROTO_ERROR:
    /* The parser's reason names the version it read, or says it is none. */
    snprintf(why, sizeof(why), "%s%s", h.error[0] == 'v' ? "invalid PROXY protocol header: " : "",
             h.error);
    return refuse(c, METRIC_PROXYPROTO_INVALID, why);
  default: break;
  }
  *used = h.length; /* what follows is the client's */
  return accepted(c, &h);
}

static enum phase_rc hdr_end(struct conn *c, int status) {
  /* A balancer's bare TCP check opens and closes without a byte. */
  if (c->ex->spill_len == 0) {
    log_diag(LOG_DEBUG, c->id, "closed before its PROXY protocol header");
    return PHASE_CLOSE;
  }
  return refuse(c, METRIC_PROXYPROTO_INVALID, "closed in the middle of its PROXY protocol header");
}

static enum phase_rc hdr_timeout(struct conn *c) {
  return refuse(c, METRIC_PROXYPROTO_TIMEOUT,
                c->ex->spill_len == 0 ? "no PROXY protocol header within 3 s"
                                      : "PROXY protocol header not whole within 3 s");
}

static uint64_t hdr_deadline(const struct conn *c) {
  return c->since + PROXYHDR_MS;
}

const struct phase proxyhdr_phase = {
    .enter = hdr_enter,
    .client_data = hdr_data,
    .client_end = hdr_end,
    .timeout = hdr_timeout,
    .deadline = hdr_deadline,
};
