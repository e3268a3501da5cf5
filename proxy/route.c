/* Where a request or a tunnel goes, and whether it may: the one pipeline
 * every front end feeds. The destination's name is judged first (a name
 * denied by name is never resolved), then its answer and the addresses the
 * connection may go to (internal ones and Embargo's own refused), then,
 * where wanted, the ClientHello; only then is anything dialled, and only
 * the addresses that were judged. A transparent connection is judged on
 * the name it claims and on its original destination together, and always
 * dialled to the original destination. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/policy.h"
#include "proxy/conn-int.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

/* ---- judging ----------------------------------------------------------------- */

/* Whether the client can still be answered with an HTTP response. */
static bool http_face(const struct conn *c) {
  return c->ex->head != NULL && !c->established && c->ex->peek == NULL;
}

/* Everything known of the current exchange's destination. */
static void gather(const struct conn *c, struct judge_input *in) {
  const struct config_transparent *t = &c->srv->cfg->transparent;

  memset(in, 0, sizeof(*in));
  in->host = &c->ex->dest;
  in->client = &c->peer.sa;
  in->connect = !conn_transparent(c) && c->ex->head != NULL && c->ex->head->is_connect;
  if (c->ex->addrs != NULL) {
    in->resolved = c->ex->addrs;
    in->dial = c->ex->addrs->addrs;
    in->ndial = c->ex->addrs->naddrs;
  }
  /* A plain-HTTP request's path names update files whatever the host. */
  if (c->ex->head != NULL && !c->ex->head->is_connect && c->ex->path != NULL) {
    in->path = c->ex->path;
    in->path_len = c->ex->path_len;
  }
  peek_judge_input(c, in);
  /* An intercepted TLS connection's name is its SNI: judged as such (an
   * exception for it must name it), its original destination as the
   * address it is. */
  if (conn_transparent(c) && in->nsni > 0)
    in->host = NULL;
  if (conn_transparent(c) && c->ex->head == NULL && c->ex->peek == NULL)
    judge_add_outcome(in, t->on_unknown, "transparent.on_unknown");
  if (c->ex->dst_mismatch)
    judge_add_outcome(in, t->on_dst_mismatch, "transparent.on_dst_mismatch");
  if (c->ex->sni_changed)
    judge_add_outcome(in, ACTION_DENY, "the second ClientHello changed the server name");
}


/* Judges what is known now. Returns true to go on; false once the client
 * was refused. */
static bool judge_now(struct conn *c) {
  struct judge_input in;
  struct judgement j;

  gather(c, &in);
  judge_destination(c->srv->cfg, c->policy, &c->srv->dest, &in, server_now(c->srv),
                    uv_now(c->srv->loop), &j);
  c->ex->verdict = j.verdict;
  c->ex->decided_by = j.option;
  switch (j.refusal) {
  case JUDGE_PORT:
    route_refuse(c, 403, "http_request_denied", j.detail);
    return false;
  case JUDGE_INTERNAL:
  case JUDGE_SELF:
    route_refuse(c, 403, "destination_ip_prohibited", j.detail);
    return false;
  default:
    break;
  }
  if (c->ex->verdict.action != ACTION_DENY)
    return true;
  if (bump_deny(c)) /* the block page over TLS: it logs the outcome */
    return false;
  if (http_face(c) && c->ex->verdict.rule != NULL) {
    respond_deny(c);
  } else if (http_face(c)) {
    respond_error(c, 403, "http_request_denied", c->ex->decided_by);
  } else {
    bool alert = peek_spoke_tls(c);
    respond_log(c, "deny", 0, alert ? "tls_alert_access_denied" : "tunnel_closed",
                c->ex->decided_by);
    if (alert)
      peek_send_alert(c);
    conn_linger(c);
  }
  return false;
}

void route_refuse(struct conn *c, int status, const char *error, const char *detail) {
  if (c->state == CONN_ST_CLOSED)
    return;
  if (http_face(c)) {
    respond_error(c, status, error, detail);
    return;
  }
  /* After a 200, or on an intercepted connection that is not HTTP, there is
   * no status to send: log, refuse a TLS client with an alert, and close. */
  respond_log(c, "error", 0, error, detail);
  if (status == 403 && peek_spoke_tls(c))
    peek_send_alert(c);
  conn_linger(c);
}

/* ---- dialing ------------------------------------------------------------- */

static void dial_next(struct conn *c);

static void on_upstream_connected(struct upstream *up, int status) {
  struct conn *c = up->conn;
  char ip[64];
  if (status != 0) {
    log_diag(LOG_INFO, c->id, "connect to %s (%s) failed: %s", up->key,
             log_fmt_ip((const struct sockaddr *)&up->addr, ip, sizeof(ip)), uv_strerror(status));
    c->ex->connect_err = status;
    upstream_close(up);
    c->up = NULL;
    dial_next(c);
    return;
  }
  if (c->ex->relay == CONN_RELAY_TUNNEL)
    tunnel_start(c);
  else
    forward_start(c);
}

static void dial_failed(struct conn *c) {
  if (c->ex->connect_err == UV_ETIMEDOUT)
    route_refuse(c, 504, "connection_timeout", "connection to the destination timed out");
  else if (c->ex->connect_err == UV_ECONNREFUSED)
    route_refuse(c, 502, "connection_refused", "the destination refused the connection");
  else
    route_refuse(c, 502, "destination_unavailable", uv_strerror(c->ex->connect_err));
}

const char *route_pool_key(const struct conn *c, char *buf, size_t size) {
  char where[64];
  if (!conn_transparent(c))
    return c->ex->authority;
  /* An intercepted connection always goes to its original destination,
   * whatever Host says: pooled connections are shared by that address. */
  snprintf(buf, size, "=%s", log_fmt_addr((const struct sockaddr *)&c->ex->orig_dst, where,
                                          sizeof(where)));
  return buf;
}

/* Tries the judged addresses in turn. */
static void dial_next(struct conn *c) {
  char key[UPSTREAM_KEY_MAX];
  int err = 0;
  while (c->ex->addr_next < c->ex->addrs->naddrs) {
    const struct sockaddr *sa = (const struct sockaddr *)&c->ex->addrs->addrs[c->ex->addr_next++];
    c->up = upstream_dial(c->srv, c, sa, c->ex->addrs, route_pool_key(c, key, sizeof(key)),
                          c->srv->cfg->timeouts.connect, on_upstream_connected, &err);
    if (c->up != NULL)
      return;
    c->ex->connect_err = err;
  }
  dial_failed(c);
}

/* The idle connection to KEY this client used last (affinity), else one
 * from the pool, or NULL. A kept connection to another destination goes
 * back to the pool. */
static struct upstream *take_upstream(struct conn *c, const char *key) {
  struct upstream *up = c->kept;
  c->kept = NULL;
  if (up != NULL && strcmp(up->key, key) == 0) {
    up->reused = true; /* it may have been closed meanwhile: a safe retry applies */
    return up;
  }
  if (up != NULL)
    upstream_release(up);
  return upstream_take(c->srv, key);
}

static void dial_start(struct conn *c) {
  char key[UPSTREAM_KEY_MAX];
  struct upstream *up;

  conn_set_state(c, CONN_ST_CONNECTING);
  uv_timer_stop(&c->timer); /* each attempt has its own deadline */
  if (conn_transparent(c) && c->ex->relay == CONN_RELAY_HTTP &&
      (up = take_upstream(c, route_pool_key(c, key, sizeof(key)))) != NULL) {
    c->up = up;
    up->conn = c;
    forward_start(c);
    return;
  }
  c->ex->addr_next = 0;
  c->ex->connect_err = UV_EHOSTUNREACH;
  dial_next(c);
}

void route_dial_address(struct conn *c, const struct sockaddr *addr) {
  struct dns_result *one = calloc(1, sizeof(*one));
  if (one == NULL) {
    route_refuse(c, 500, "proxy_internal_error", "out of memory");
    return;
  }
  if (c->ex->addrs != NULL) /* keep the CNAME chain the address came with */
    memcpy(one, c->ex->addrs, sizeof(*one));
  memset(&one->addrs[0], 0, sizeof(one->addrs[0]));
  memcpy(&one->addrs[0], addr,
         addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  one->naddrs = 1;
  free(c->ex->addrs);
  c->ex->addrs = one;
  dial_start(c);
}

/* ---- stages ----------------------------------------------------------------- */

/* The answer and the addresses to dial are known: judge everything, then
 * read the ClientHello of a CONNECT to a TLS port, or dial. */
static void after_resolution(struct conn *c) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  if (!judge_now(c))
    return;
  if (peek_wanted(c)) {
    /* The 200 comes first: a client sends its hello only after it. */
    c->established = true;
    if (conn_write_client(c, established, sizeof(established) - 1) != 0)
      return;
    peek_start(c);
    return;
  }
  conn_log_verdict(c);
  dial_start(c);
}

void route_after_hello(struct conn *c) {
  after_resolution(c);
}

bool route_second_hello(struct conn *c, bool changed) {
  if (changed) { /* a deny whatever the lists say: the first hello was what we judged */
    c->ex->sni_changed = true;
  }
  if (!judge_now(c))
    return false;
  conn_log_verdict(c);
  return true;
}

/* A transparent connection's claimed name resolved (or not): its CNAME
 * chain is kept as evidence, whether it leads to the original destination
 * is recorded, and the original destination is the one address to dial. */
static void transparent_resolved(struct conn *c, enum dns_status status,
                                 const struct dns_result *res) {
  if ((c->ex->addrs = calloc(1, sizeof(*c->ex->addrs))) == NULL) {
    route_refuse(c, 500, "proxy_internal_error", "out of memory");
    return;
  }
  if (status == DNS_OK)
    memcpy(c->ex->addrs, res, sizeof(*res));
  c->ex->dst_mismatch =
      judge_dst_mismatch(status == DNS_OK ? res : NULL, (const struct sockaddr *)&c->ex->orig_dst);
  memset(c->ex->addrs->addrs, 0, sizeof(c->ex->addrs->addrs));
  memcpy(&c->ex->addrs->addrs[0], &c->ex->orig_dst, sizeof(c->ex->orig_dst));
  c->ex->addrs->naddrs = 1;
  after_resolution(c);
}

static void on_resolved(void *arg, enum dns_status status, const struct dns_result *res) {
  struct conn *c = arg;
  char detail[300];

  if (conn_transparent(c)) {
    transparent_resolved(c, status, res);
    return;
  }
  if (status != DNS_OK) {
    snprintf(detail, sizeof(detail), "%s: %s", c->ex->dest.name, dns_status_name(status));
    if (status == DNS_TIMEOUT) {
      route_refuse(c, 504, "dns_timeout", detail);
    } else {
      c->ex->ps_extra = status == DNS_NXDOMAIN ? "rcode=NXDOMAIN"
                    : status == DNS_SERVFAIL ? "rcode=SERVFAIL"
                    : status == DNS_NODATA ? "rcode=NOERROR" : NULL;
      route_refuse(c, 502, "dns_error", detail);
    }
    return;
  }
  if ((c->ex->addrs = malloc(sizeof(*c->ex->addrs))) == NULL) {
    route_refuse(c, 500, "proxy_internal_error", "out of memory");
    return;
  }
  memcpy(c->ex->addrs, res, sizeof(*res));
  after_resolution(c);
}

/* The addresses of an IP-literal destination (for a transparent
 * connection, its original destination, whatever literal it claimed). */
static int literal_addrs(struct conn *c) {
  if ((c->ex->addrs = malloc(sizeof(*c->ex->addrs))) == NULL)
    return -1;
  dns_result_literal(c->ex->addrs, &c->ex->dest);
  if (conn_transparent(c))
    memcpy(&c->ex->addrs->addrs[0], &c->ex->orig_dst, sizeof(c->ex->orig_dst));
  return 0;
}

/* Reuses an idle connection to the destination, judged on the answer it
 * was dialled from, as a new dial would be. Returns false if none fits. */
static bool reuse_pooled(struct conn *c) {
  struct upstream *up = take_upstream(c, c->ex->authority);

  if (up == NULL)
    return false;
  if (up->resolved != NULL && (c->ex->addrs = malloc(sizeof(*c->ex->addrs))) != NULL)
    memcpy(c->ex->addrs, up->resolved, sizeof(*c->ex->addrs));
  if (!judge_now(c)) {
    upstream_release(up); /* it may serve a request that is allowed */
    return true;
  }
  c->up = up;
  up->conn = c;
  conn_log_verdict(c);
  conn_set_state(c, CONN_ST_FORWARD);
  forward_start(c);
  return true;
}

void route_start(struct conn *c) {
  int rc;
  free(c->ex->addrs);
  c->ex->addrs = NULL;
  if (!judge_now(c)) /* the name alone (and a CONNECT's port) */
    return;
  if (!conn_transparent(c) && c->ex->relay == CONN_RELAY_HTTP && reuse_pooled(c))
    return;
  if (c->ex->dest.kind != HOST_NAME) {
    if (literal_addrs(c) != 0)
      route_refuse(c, 500, "proxy_internal_error", "out of memory");
    else
      after_resolution(c);
    return;
  }
  conn_set_state(c, CONN_ST_RESOLVING);
  conn_arm_timer(c, c->srv->cfg->timeouts.resolve);
  rc = resolver_lookup(c->srv->resolver, c->ex->dest.name, c->ex->dest.port, on_resolved, c, &c->ex->dnsq);
  if (rc != 0)
    route_refuse(c, 500, "proxy_internal_error", "cannot start DNS lookup");
}
