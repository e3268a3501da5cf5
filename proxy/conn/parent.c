/* PARENT: an allowed exchange on its way through the site's HTTP proxy
 * (upstream_proxy), instead of CONNECTING. ROUTE judged everything before
 * it comes here, so the parent never sees a denied exchange.
 *
 * Plain HTTP takes the connection to the parent the client used last, or
 * an idle pooled one (one pool key for the parent, whatever the
 * destination), or dials one, then goes to FORWARD, which writes the
 * request in absolute form. Everything else (CONNECT tunnels, intercepted
 * TLS and unidentified protocols) dials the parent and asks it for a tunnel
 * to the destination (exchange_parent_target) with a CONNECT; its 2xx
 * answer goes to TUNNEL. The parent's name, when it has one, is resolved
 * first (within timeouts.resolve); each of its addresses is dialled in turn
 * within timeouts.connect; its answer to CONNECT must come within
 * timeouts.response. Every failure of the parent (its name, refused or
 * silent dials, an answer other than 2xx, a close before answering) is a
 * 502 or 504 whose Proxy-Status names it (next-hop). */
#include "proxy/conn/parent.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "proxy/base/dns.h"
#include "proxy/base/http1.h"
#include "proxy/base/log.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/worker/server.h"
#include "proxy/worker/upstream.h"

/* What the phase waits for. */
enum parent_step {
  PARENT_RESOLVING, /* the parent's name */
  PARENT_DIALING,   /* a connection to one of its addresses */
  PARENT_ASKING     /* its answer to CONNECT */
};

/* The phase's own state (c->priv). */
struct parent {
  enum parent_step step;
  struct dns_query *query;                      /* non-NULL while the lookup may be cancelled */
  enum dns_status dns;                          /* the lookup's outcome */
  struct sockaddr_storage addrs[DNS_MAX_ADDRS]; /* the parent's addresses */
  size_t naddrs, next;
  int err;            /* the last dial failure */
  struct http1 *resp; /* its answer to CONNECT (owned) */
  int status;         /* that answer's status, once its head is in */
  bool done;          /* that answer's head is whole */
};

static const struct config_upstream_proxy *parent_of(const struct conn *c) {
  return &c->srv->cfg->upstream_proxy;
}

/* The pool key of connections to the parent: one for every destination. */
static const char *parent_key(const struct conn *c, char *buf, size_t size) {
  snprintf(buf, size, ">%s", parent_of(c)->address);
  return buf;
}

/* ---- the answer to CONNECT (response parser callbacks; ctx is the conn) ----- */

static int on_answer_head(void *ctx, struct http_head *h) {
  struct parent *p = ((struct conn *)ctx)->priv;
  p->status = h->status;
  return h->status < 200 ? HTTP1_CONTINUE : HTTP1_NO_BODY; /* a refusal's body is not read */
}

static int on_answer_body(void *ctx, const char *data, size_t len) {
  return 0;
}

static int on_answer_done(void *ctx) {
  struct parent *p = ((struct conn *)ctx)->priv;
  if (p->status < 200)
    return HTTP1_CONTINUE; /* an interim answer: the final one follows */
  p->done = true;
  return HTTP1_PAUSE; /* what follows is the tunnel's */
}

static const struct http1_callbacks answer_cbs = {
    .on_head = on_answer_head,
    .on_body = on_answer_body,
    .on_done = on_answer_done,
};

/* ---- dialing ------------------------------------------------------------------ */

static enum phase_rc dial_failed(struct conn *c) {
  const struct parent *p = c->priv;
  const char *hop = parent_of(c)->address;
  char detail[ANSWER_DETAIL_MAX];
  if (p->err == UV_ETIMEDOUT) {
    snprintf(detail, sizeof(detail), "connection to the upstream proxy %s timed out", hop);
    return exchange_parent_failed(c, 504, "connection_timeout", 0, detail);
  }
  if (p->err == UV_ECONNREFUSED) {
    snprintf(detail, sizeof(detail), "the upstream proxy %.100s refused the connection", hop);
    return exchange_parent_failed(c, 502, "connection_refused", 0, detail);
  }
  snprintf(detail, sizeof(detail), "the upstream proxy %.100s: %s", hop, err_str(p->err));
  return exchange_parent_failed(c, 502, "destination_unavailable", 0, detail);
}

/* Tries the parent's addresses in turn. */
static enum phase_rc dial_next(struct conn *c) {
  struct parent *p = c->priv;
  char key[UPSTREAM_KEY_MAX];
  p->step = PARENT_DIALING;
  while (p->next < p->naddrs) {
    int rc = conn_dial(c, (const struct sockaddr *)&p->addrs[p->next++],
                       parent_key(c, key, sizeof(key)));
    if (rc == 0)
      return PHASE_WAIT;
    p->err = rc;
  }
  return dial_failed(c);
}

/* Asks the parent for a tunnel to the destination. */
static enum phase_rc ask(struct conn *c) {
  const struct config_upstream_proxy *u = parent_of(c);
  struct parent *p = c->priv;
  char target[HOST_NAME_MAX_LEN + 16];
  struct obuf out = {0};
  int rc;

  if ((p->resp = http1_new(false, c->srv->cfg->limits.max_head, &answer_cbs, c)) == NULL)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "out of memory");
  exchange_parent_target(c, target, sizeof(target));
  obuf_printf(&out, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nVia: 1.1 %s\r\n", target, target,
              c->srv->via);
  if (u->authorization[0] != '\0')
    obuf_printf(&out, "Proxy-Authorization: %s\r\n", u->authorization);
  obuf_add(&out, "\r\n", 2);
  rc = out.failed ? UV_ENOMEM : endpoint_write(&c->up->ep, out.data, out.len);
  obuf_free(&out);
  if (rc != 0)
    return conn_answer(c, ANSWER_REFUSE, 502, "proxy_internal_error", err_str(rc));
  p->step = PARENT_ASKING;
  c->since = uv_now(c->srv->loop);
  return PHASE_WAIT;
}

/* The parent's address of a name or an IP literal, in turn. */
static void on_resolved(void *arg, enum dns_status status, const struct dns_result *res) {
  struct conn *c = arg;
  struct parent *p = c->priv;
  p->dns = status;
  if (status == DNS_OK) {
    p->naddrs = res->naddrs;
    memcpy(p->addrs, res->addrs, res->naddrs * sizeof(res->addrs[0]));
  }
  conn_resume(c, 0);
}

static enum phase_rc resolve(struct conn *c) {
  const struct host *h = &parent_of(c)->host;
  struct parent *p = c->priv;
  struct dns_result lit;

  if (h->kind != HOST_NAME) {
    dns_result_literal(&lit, h);
    p->naddrs = 1;
    memcpy(&p->addrs[0], &lit.addrs[0], sizeof(lit.addrs[0]));
    return dial_next(c);
  }
  p->step = PARENT_RESOLVING;
  if (resolver_lookup(c->srv->resolver, h->name, h->port, on_resolved, c, &p->query) != 0)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "cannot start DNS lookup");
  return PHASE_WAIT; /* a cached answer resumes as soon as this returns */
}

static enum phase_rc parent_enter(struct conn *c) {
  char key[UPSTREAM_KEY_MAX];
  struct upstream *up;
  struct parent *p;

  if (c->ex->relay == CONN_RELAY_HTTP && !c->ex->parent_fresh &&
      (up = conn_take_upstream(c, parent_key(c, key, sizeof(key)))) != NULL) {
    conn_use_upstream(c, up); /* kept from the client's last request, or pooled */
    return conn_goto(c, CONN_ST_FORWARD);
  }
  if ((p = calloc(1, sizeof(*p))) == NULL)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "out of memory");
  c->priv = p;
  p->err = UV_EHOSTUNREACH;
  return resolve(c);
}

/* The lookup ended (RESOLVING), or the dial of c->up (DIALING) with STATUS. */
static enum phase_rc parent_resume(struct conn *c, int status) {
  struct parent *p = c->priv;
  char detail[ANSWER_DETAIL_MAX], ip[64];

  if (p->step == PARENT_RESOLVING) {
    if (p->dns == DNS_OK)
      return dial_next(c);
    snprintf(detail, sizeof(detail), "the upstream proxy's name %s: %s", parent_of(c)->host.name,
             dns_status_name(p->dns));
    return p->dns == DNS_TIMEOUT ? exchange_parent_failed(c, 504, "dns_timeout", 0, detail)
                                 : exchange_parent_failed(c, 502, "dns_error", 0, detail);
  }
  if (status != 0) {
    log_diag(LOG_INFO, c->id, "connect to the upstream proxy %s (%s) failed: %s", c->up->key + 1,
             log_fmt_ip((const struct sockaddr *)&c->up->addr, ip, sizeof(ip)), err_str(status));
    p->err = status;
    conn_drop_upstream(c);
    return dial_next(c);
  }
  if (c->ex->relay == CONN_RELAY_HTTP)
    return conn_goto(c, CONN_ST_FORWARD);
  return ask(c);
}

/* ---- the answer ---------------------------------------------------------------- */

/* A 2xx: the tunnel is open. Bytes that came after the answer's head are
 * the destination's: the client's 200 (explicit, not sent yet) goes first,
 * then they follow it. */
static enum phase_rc tunnel_open(struct conn *c, const char *rest, size_t len) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  if (len > 0 && !conn_transparent(c) && !c->established) {
    if (conn_write_client(c, established, sizeof(established) - 1) != 0)
      return PHASE_CLOSE;
    c->established = true;
  }
  if (len > 0 && conn_write_client(c, rest, len) != 0)
    return PHASE_CLOSE;
  return conn_goto(c, CONN_ST_TUNNEL);
}

/* Anything but a 2xx: the parent refused the tunnel. */
static enum phase_rc refused(struct conn *c, int status) {
  char detail[ANSWER_DETAIL_MAX], target[HOST_NAME_MAX_LEN + 16];
  exchange_parent_target(c, target, sizeof(target));
  snprintf(detail, sizeof(detail), "the upstream proxy %.80s answered %d to CONNECT %.100s%s",
           parent_of(c)->address, status, target,
           status == 407 ? " (it asks for authorization: upstream_proxy.proxy_authorization_file)"
                         : "");
  return exchange_parent_failed(c, 502, "destination_unavailable", status, detail);
}

static enum phase_rc parent_upstream_data(struct conn *c, const char *data, size_t len) {
  struct parent *p = c->priv;
  char detail[ANSWER_DETAIL_MAX];
  size_t used = 0;

  if (p == NULL || p->step != PARENT_ASKING)
    return PHASE_WAIT; /* nothing is expected before the CONNECT */
  if (http1_feed(p->resp, data, len, &used) == HTTP1_ERROR) {
    snprintf(detail, sizeof(detail), "the upstream proxy %.100s answered CONNECT with %s",
             parent_of(c)->address, http1_error_reason(p->resp));
    return exchange_parent_failed(c, 502, "http_protocol_error", 0, detail);
  }
  if (!p->done)
    return PHASE_WAIT;
  if (p->status < 200 || p->status > 299)
    return refused(c, p->status);
  return tunnel_open(c, data + used, len - used);
}

static enum phase_rc parent_upstream_end(struct conn *c, int status) {
  char detail[ANSWER_DETAIL_MAX];
  snprintf(detail, sizeof(detail),
           "the upstream proxy %.100s closed the connection before answering%s",
           parent_of(c)->address, status == UV_EOF ? "" : " (a read or write failed)");
  return exchange_parent_failed(c, 502, "connection_terminated", 0, detail);
}

static enum phase_rc parent_timeout(struct conn *c) {
  const struct parent *p = c->priv;
  char detail[ANSWER_DETAIL_MAX];
  if (p->step == PARENT_RESOLVING) {
    snprintf(detail, sizeof(detail), "the upstream proxy's name %s: timeout",
             parent_of(c)->host.name);
    return exchange_parent_failed(c, 504, "dns_timeout", 0, detail);
  }
  snprintf(detail, sizeof(detail), "the upstream proxy %.100s did not answer CONNECT in time",
           parent_of(c)->address);
  return exchange_parent_failed(c, 504, "connection_read_timeout", 0, detail);
}

/* The lookup and the answer wait; a dial has the upstream's own timer. */
static uint64_t parent_deadline(const struct conn *c) {
  const struct parent *p = c->priv;
  const struct config_timeouts *t = &c->srv->cfg->timeouts;
  if (p == NULL || p->step == PARENT_DIALING)
    return 0;
  return c->since + (p->step == PARENT_RESOLVING ? t->resolve : t->response);
}

static void parent_leave(struct conn *c) {
  struct parent *p = c->priv;
  if (p == NULL)
    return;
  resolver_cancel(&p->query);
  http1_free(p->resp);
  free(p);
}

const struct phase parent_phase = {
    .enter = parent_enter,
    .upstream_data = parent_upstream_data,
    .upstream_end = parent_upstream_end,
    .resume = parent_resume,
    .timeout = parent_timeout,
    .leave = parent_leave,
    .deadline = parent_deadline,
};
