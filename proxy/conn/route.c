/* ROUTE: where a request or a tunnel goes, and whether it may, for every
 * front end. The destination's name is judged first (a name denied by name
 * is never resolved), then its answer and the addresses the connection may
 * go to (internal ones and Embargo's own refused); a CONNECT to a TLS port
 * then gets its 200 and its ClientHello read (PEEK, which comes back here
 * to judge it with everything else). Only then CONNECTING, to the
 * addresses that were judged; an idle pooled upstream to the same
 * destination, judged on the answer it was dialled from, goes straight to
 * FORWARD. A transparent connection is judged on the name it claims and on
 * its original destination together, and always dialled to the original
 * destination. The lookup is the phase's own and is cancelled when it
 * leaves; timeouts.resolve bounds it.
 *
 * Through an upstream proxy (exchange_via_parent) nothing changes in what
 * is judged: the name is still resolved here, its CNAME chain and
 * addresses judged, before PARENT (instead of CONNECTING) asks the parent,
 * which connects by the name itself. An intercepted connection that claims
 * a name the parent is to be asked for has that name's addresses judged
 * with its original destination, since the parent may reach any of them;
 * a claimed name that does not resolve is asked for by the original
 * destination instead. */
#include "proxy/conn/route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/base/dns.h"
#include "proxy/base/log.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/decide/judge.h"
#include "proxy/worker/server.h"
#include "proxy/worker/upstream.h"

/* A lookup in flight (c->priv while resolving). */
struct route {
  struct dns_query *query; /* non-NULL while it may be cancelled */
  enum dns_status status;  /* its outcome, once in */
  bool no_memory;          /* the answer could not be kept */
};

/* The answer and the addresses to dial are known: judge everything, then
 * read the ClientHello of a CONNECT to a TLS port, or dial. */
static enum phase_rc after_resolution(struct conn *c) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  enum phase_rc rc;

  if (!exchange_judge(c, &rc))
    return rc;
  if (exchange_peek_wanted(c)) {
    /* The 200 comes first: a client sends its hello only after it. */
    c->established = true;
    if (conn_write_client(c, established, sizeof(established) - 1) != 0)
      return PHASE_CLOSE;
    return conn_goto(c, CONN_ST_PEEK);
  }
  exchange_log_verdict(c);
  return conn_goto(c, c->ex->via_parent ? CONN_ST_PARENT : CONN_ST_CONNECTING);
}

/* The lookup ended: the answer is kept (RES is valid only during this
 * call), then the phase resumes. A transparent connection keeps its
 * claimed name's CNAME chain as evidence and whether it leads to the
 * original destination, which is the one address to dial; through the
 * upstream proxy, which is asked for the name, the name's own addresses
 * follow it, so that every address the parent may reach is judged (all of
 * them beside the original destination, or the parent is asked for the
 * original destination instead). */
static void on_resolved(void *arg, enum dns_status status, const struct dns_result *res) {
  struct conn *c = arg;
  struct route *rt = c->priv;
  struct exchange *ex = c->ex;
  const struct sockaddr *orig = (const struct sockaddr *)&ex->orig_dst;

  rt->status = status;
  if (conn_transparent(c)) {
    ex->dst_mismatch = judge_dst_mismatch(status == DNS_OK ? res : NULL, orig);
    ex->parent_by_name =
        ex->via_parent && status == DNS_OK && res->naddrs > 0 && res->naddrs < DNS_MAX_ADDRS;
    ex->addrs = dns_answer_new(status == DNS_OK ? res : NULL, orig, ex->parent_by_name);
  } else if (status == DNS_OK) {
    ex->addrs = dns_answer_new(res, NULL, true);
  }
  rt->no_memory = ex->addrs == NULL && (status == DNS_OK || conn_transparent(c));
  conn_resume(c, 0);
}

static enum phase_rc route_resume(struct conn *c, int status) {
  struct route *rt = c->priv;
  char detail[300];

  if (rt->no_memory)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "out of memory");
  if (conn_transparent(c) || rt->status == DNS_OK)
    return after_resolution(c);
  snprintf(detail, sizeof(detail), "%s: %s", c->ex->dest.name, dns_status_name(rt->status));
  if (rt->status == DNS_TIMEOUT)
    return conn_answer(c, ANSWER_REFUSE, 504, "dns_timeout", detail);
  c->ex->ps_extra = rt->status == DNS_NXDOMAIN   ? "rcode=NXDOMAIN"
                    : rt->status == DNS_SERVFAIL ? "rcode=SERVFAIL"
                    : rt->status == DNS_NODATA   ? "rcode=NOERROR"
                                                 : NULL;
  return conn_answer(c, ANSWER_REFUSE, 502, "dns_error", detail);
}

/* The addresses of an IP-literal destination (for a transparent
 * connection, its original destination, whatever literal it claimed). */
static int literal_addrs(struct conn *c) {
  struct exchange *ex = c->ex;
  ex->addrs = conn_transparent(c)
                  ? dns_answer_new(NULL, (const struct sockaddr *)&ex->orig_dst, false)
                  : dns_answer_literal(&ex->dest);
  return ex->addrs != NULL ? 0 : -ENOMEM;
}

/* Reuses an idle connection to the destination, judged on the answer it
 * was dialled from, as a new dial would be. Returns false if none fits;
 * else true with *RC the move. */
static bool reuse_pooled(struct conn *c, enum phase_rc *rc) {
  struct upstream *up = conn_take_upstream(c, c->ex->authority);

  if (up == NULL)
    return false;
  c->ex->addrs = dns_answer_ref(up->resolved); /* shared: no copy per request */
  if (!exchange_judge(c, rc)) {
    upstream_release(up); /* it may serve a request that is allowed */
    return true;
  }
  conn_use_upstream(c, up);
  exchange_log_verdict(c);
  *rc = conn_goto(c, CONN_ST_FORWARD);
  return true;
}

static enum phase_rc resolve(struct conn *c) {
  struct route *rt = calloc(1, sizeof(*rt));
  if (rt == NULL)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "out of memory");
  c->priv = rt;
  if (resolver_lookup(c->srv->resolver, c->ex->dest.name, c->ex->dest.port, on_resolved, c,
                      &rt->query) != 0)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "cannot start DNS lookup");
  return PHASE_WAIT; /* a cached answer resumes as soon as this returns */
}

static enum phase_rc route_enter(struct conn *c) {
  enum phase_rc rc;

  if (c->ex->hello != NULL && !conn_transparent(c))
    return after_resolution(c); /* back from PEEK: judge the hello with the rest */
  dns_answer_unref(c->ex->addrs);
  c->ex->addrs = NULL;
  c->ex->via_parent = exchange_via_parent(c);
  c->ex->parent_by_name = c->ex->parent_fresh = false;
  c->ex->parent_status = 0;
  if (!exchange_judge(c, &rc)) /* the name alone (and a CONNECT's port) */
    return rc;
  /* A pooled upstream is a destination's; through the parent, PARENT
   * takes the parent's. */
  if (!conn_transparent(c) && !c->ex->via_parent && c->ex->relay == CONN_RELAY_HTTP &&
      reuse_pooled(c, &rc))
    return rc;
  if (c->ex->dest.kind == HOST_NAME)
    return resolve(c);
  if (literal_addrs(c) != 0)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "out of memory");
  return after_resolution(c);
}

static enum phase_rc route_timeout(struct conn *c) {
  return conn_answer(c, ANSWER_REFUSE, 504, "dns_timeout", "DNS resolution timed out");
}

static void route_leave(struct conn *c) {
  struct route *rt = c->priv;
  if (rt == NULL)
    return;
  resolver_cancel(&rt->query);
  free(rt);
}

/* Only a lookup waits. */
static uint64_t route_deadline(const struct conn *c) {
  return c->priv != NULL ? c->since + c->srv->cfg->timeouts.resolve : 0;
}

const struct phase route_phase = {
    .enter = route_enter,
    .resume = route_resume,
    .timeout = route_timeout,
    .leave = route_leave,
    .deadline = route_deadline,
};
