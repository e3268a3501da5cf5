/* Client connections: accept, request heads, policy, resolution, dialing,
 * tunnels, and the single teardown path. */
#include "proxy/conn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/netmatch.h"
#include "filters/policy.h"
#include "proxy/conn-int.h"
#include "proxy/dns.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

#define LINGER_MS 2000
#define RESPOND_MS 30000

static const char *const state_names[] = {"HEAD",   "RESOLVING",  "CONNECTING", "FORWARD",
                                          "PEEK",   "BUMP",       "TUNNEL",     "RESPONDING",
                                          "LINGER", "CLOSED"};

/* Legal moves, one bit per target state. */
static const unsigned legal_moves[] = {
    [CONN_ST_HEAD] = 1u << CONN_ST_RESOLVING | 1u << CONN_ST_CONNECTING | 1u << CONN_ST_FORWARD |
                     1u << CONN_ST_PEEK | 1u << CONN_ST_RESPONDING | 1u << CONN_ST_LINGER,
    [CONN_ST_RESOLVING] = 1u << CONN_ST_CONNECTING | 1u << CONN_ST_PEEK | 1u << CONN_ST_RESPONDING,
    [CONN_ST_PEEK] = 1u << CONN_ST_CONNECTING | 1u << CONN_ST_LINGER | 1u << CONN_ST_BUMP,
    [CONN_ST_BUMP] = 1u << CONN_ST_LINGER,
    [CONN_ST_CONNECTING] = 1u << CONN_ST_FORWARD | 1u << CONN_ST_TUNNEL | 1u << CONN_ST_RESPONDING,
    [CONN_ST_FORWARD] = 1u << CONN_ST_HEAD | 1u << CONN_ST_CONNECTING | 1u << CONN_ST_RESPONDING |
                        1u << CONN_ST_LINGER,
    [CONN_ST_TUNNEL] = 0,
    [CONN_ST_RESPONDING] = 1u << CONN_ST_HEAD | 1u << CONN_ST_LINGER,
    [CONN_ST_LINGER] = 0,
    [CONN_ST_CLOSED] = 0,
};

void conn_set_state(struct conn *c, enum conn_state st) {
  if (st != CONN_ST_CLOSED && (legal_moves[c->state] & (1u << st)) == 0) {
    log_diag(LOG_ERR, c->id, "illegal state change %s -> %s", state_names[c->state],
             state_names[st]);
    assert(!"illegal connection state change");
  }
  log_diag(LOG_DEBUG, c->id, "%s -> %s", state_names[c->state], state_names[st]);
  c->state = st;
}

static void on_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles > 0)
    return;
  http1_free(c->req);
  policy_unref(c->policy);
  free(c->path);
  free(c->addrs);
  free(c->spill);
  peek_free(c);
  bump_free(c);
  free(c);
}

void conn_close(struct conn *c) {
  struct server *srv = c->srv;
  if (c->state == CONN_ST_CLOSED)
    return;
  conn_set_state(c, CONN_ST_CLOSED);
  resolver_cancel(&c->dnsq);
  if (c->up != NULL) {
    upstream_close(c->up);
    c->up = NULL;
  }
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  srv->nconns--;
  uv_close((uv_handle_t *)&c->cli.tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* ---- timers ------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t) {
  struct conn *c = t->data;
  switch (c->state) {
  case CONN_ST_HEAD:
    if (c->head_timing) {
      c->close_after = true;
      respond_error(c, 408, "http_request_error", "request head not received in time");
    } else if (c->cli.pending > 0) {
      conn_arm_timer(c, c->srv->cfg->timeouts.idle); /* still taking the last response */
    } else {
      conn_close(c); /* idle keep-alive connection */
    }
    break;
  case CONN_ST_RESOLVING:
    resolver_cancel(&c->dnsq);
    respond_error(c, 504, "dns_timeout", "DNS resolution timed out");
    break;
  case CONN_ST_FORWARD:
    if (!c->resp_started) {
      c->close_after = true;
      respond_error(c, 504, "connection_read_timeout", "destination did not respond in time");
    } else {
      log_diag(LOG_INFO, c->id, "response stalled; closing");
      conn_close(c);
    }
    break;
  case CONN_ST_PEEK:
    peek_timeout(c);
    break;
  case CONN_ST_BUMP:
    bump_timeout(c);
    break;
  default: /* tunnel idle, responding or lingering too long */
    conn_close(c);
    break;
  }
}

void conn_arm_timer(struct conn *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* ---- reading and backpressure --------------------------------------------- */

static void on_client_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  struct conn *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* One predicate per direction: read from a side only while the other side's
 * queue is under the high-water mark, and only in states that consume it. */
void conn_update_reading(struct conn *c) {
  size_t high = c->srv->cfg->limits.buffer_high;
  size_t up_pending = c->up != NULL ? c->up->ep.pending : 0;
  bool want_client, want_up;

  if (c->state == CONN_ST_CLOSED)
    return;
  switch (c->state) {
  case CONN_ST_HEAD:
    want_client = c->spill_len == 0;
    break;
  case CONN_ST_FORWARD:
    want_client = !c->req_done && c->spill_len == 0 && up_pending < high;
    break;
  case CONN_ST_TUNNEL:
    want_client = up_pending < high;
    break;
  case CONN_ST_PEEK:
  case CONN_ST_BUMP: /* its input and output are bounded (bump.c) */
  case CONN_ST_LINGER:
    want_client = true;
    break;
  default:
    want_client = false;
    break;
  }
  want_up = c->up != NULL && c->up->connected && c->cli.pending < high &&
            ((c->state == CONN_ST_FORWARD && !c->resp_done) || c->state == CONN_ST_TUNNEL);
  endpoint_set_reading(&c->cli, want_client, on_client_alloc, on_client_read);
  if (c->up != NULL)
    upstream_set_reading(c->up, want_up);
}

int conn_write_client(struct conn *c, const char *data, size_t len) {
  int rc = endpoint_write(&c->cli, data, len);
  if (rc != 0) {
    log_diag(LOG_INFO, c->id, "client write failed: %s", uv_strerror(rc));
    conn_close(c);
    return -1;
  }
  return 0;
}

/* ---- upstream events ------------------------------------------------------- */

void conn_upstream_drained(struct conn *c, struct upstream *up, int status) {
  if (status < 0 && status != UV_ECANCELED) {
    if (c->state == CONN_ST_FORWARD)
      forward_failed(c, uv_strerror(status));
    else
      conn_close(c);
    return;
  }
  if (c->state == CONN_ST_TUNNEL)
    tunnel_maybe_close(c);
  if (c->state != CONN_ST_CLOSED)
    conn_update_reading(c);
}

static void on_client_drained(struct endpoint *ep, int status) {
  struct conn *c = ep->tcp.data;
  if (status < 0) {
    conn_close(c);
    return;
  }
  switch (c->state) {
  case CONN_ST_RESPONDING:
    if (c->cli.pending == 0) {
      if (c->close_after)
        conn_linger(c);
      else
        conn_next_request(c);
    } else {
      conn_arm_timer(c, RESPOND_MS); /* a slow reader, but a reader */
    }
    break;
  case CONN_ST_TUNNEL:
    tunnel_maybe_close(c);
    if (c->state == CONN_ST_TUNNEL)
      conn_update_reading(c);
    break;
  case CONN_ST_FORWARD:
    forward_maybe_finish(c);
    if (c->state == CONN_ST_FORWARD)
      conn_update_reading(c);
    break;
  default:
    break;
  }
}

/* ---- dialing ------------------------------------------------------------- */

static void dial_next(struct conn *c);
static void dial_start(struct conn *c);

static void on_upstream_connected(struct upstream *up, int status) {
  struct conn *c = up->conn;
  char ip[64];
  if (status != 0) {
    log_diag(LOG_INFO, c->id, "connect to %s (%s) failed: %s", up->key,
             log_fmt_ip((const struct sockaddr *)&up->addr, ip, sizeof(ip)), uv_strerror(status));
    c->connect_err = status;
    upstream_close(up);
    c->up = NULL;
    dial_next(c);
    return;
  }
  if (c->head->is_connect)
    tunnel_start(c);
  else
    forward_start(c);
}

static void dial_failed(struct conn *c) {
  if (c->established) { /* after 200 there is no status to send: log and close */
    respond_log(c, "error", 0, c->connect_err == UV_ETIMEDOUT ? "connection_timeout"
                                                               : "destination_unavailable",
                uv_strerror(c->connect_err));
    conn_close(c);
    return;
  }
  if (c->connect_err == UV_ETIMEDOUT)
    respond_error(c, 504, "connection_timeout", "connection to the destination timed out");
  else if (c->connect_err == UV_ECONNREFUSED)
    respond_error(c, 502, "connection_refused", "the destination refused the connection");
  else
    respond_error(c, 502, "destination_unavailable", uv_strerror(c->connect_err));
}

/* Tries the resolved addresses in turn, skipping this proxy's own sockets. */
static void dial_next(struct conn *c) {
  int err = 0;
  while (c->addr_next < c->addrs->naddrs) {
    const struct sockaddr *sa = (const struct sockaddr *)&c->addrs->addrs[c->addr_next++];
    if (server_is_self(c->srv, sa)) {
      if (c->established) {
        respond_log(c, "error", 0, "destination_ip_prohibited", "the destination is this proxy");
        conn_close(c);
      } else {
        respond_error(c, 403, "destination_ip_prohibited", "the destination is this proxy");
      }
      return;
    }
    c->up = upstream_dial(c->srv, c, sa, c->addrs, c->authority, c->srv->cfg->timeouts.connect,
                          on_upstream_connected, &err);
    if (c->up != NULL)
      return;
    c->connect_err = err;
  }
  dial_failed(c);
}

void conn_dial_address(struct conn *c, const struct sockaddr *addr) {
  struct dns_result *one = calloc(1, sizeof(*one));
  if (one == NULL) {
    respond_error(c, 500, "proxy_internal_error", "out of memory");
    return;
  }
  if (c->addrs != NULL) /* keep the CNAME chain the address came with */
    memcpy(one, c->addrs, sizeof(*one));
  memset(&one->addrs[0], 0, sizeof(one->addrs[0]));
  memcpy(&one->addrs[0], addr,
         addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  one->naddrs = 1;
  free(c->addrs);
  c->addrs = one;
  dial_start(c);
}

static void dial_start(struct conn *c) {
  conn_set_state(c, CONN_ST_CONNECTING);
  uv_timer_stop(&c->timer); /* each attempt has its own deadline */
  c->addr_next = 0;
  c->connect_err = UV_EHOSTUNREACH;
  dial_next(c);
}

void conn_facts(const struct conn *c, struct facts *f, struct fact_store *st) {
  memset(f, 0, sizeof(*f));
  f->host = &c->dest;
  if (c->addrs != NULL)
    dns_result_facts(c->addrs, f, st);
}

void conn_log_verdict(struct conn *c) {
  if (c->verdict.action == ACTION_LOG)
    respond_log(c, "log", 0, NULL, NULL);
  else if (c->srv->cfg->access_log)
    respond_log(c, "access", 0, NULL, NULL);
}

/* A denied request gets 403, unless it is a CONNECT whose verdict calls for
 * the block page over TLS: then 200, the ClientHello (for the name to mint
 * a certificate for), and the page (peek.c, bump.c). Nothing is dialled. */
static void deny_request(struct conn *c) {
  if (bump_wanted(c))
    peek_start(c);
  else
    respond_deny(c);
}

/* The destination's addresses are known (resolved or literal): refuse
 * internal ones, judge the addresses and the CNAME chain, then inspect the
 * ClientHello or dial. */
static void after_resolution(struct conn *c) {
  struct fact_store st;
  struct facts facts;
  char detail[360], ip[64];
  size_t i;

  for (i = 0; i < c->addrs->naddrs; i++) {
    const struct sockaddr *sa = (const struct sockaddr *)&c->addrs->addrs[i];
    if (server_is_internal(c->srv, sa)) {
      snprintf(detail, sizeof(detail), "%s resolves to internal address %s", c->dest.name,
               log_fmt_ip(sa, ip, sizeof(ip)));
      respond_error(c, 403, "destination_ip_prohibited", detail);
      return;
    }
  }
  conn_facts(c, &facts, &st);
  policy_decide(c->policy, &facts, server_now(c->srv), &c->verdict);
  if (c->verdict.action == ACTION_DENY) {
    deny_request(c);
    return;
  }
  if (peek_wanted(c)) {
    peek_start(c);
    return;
  }
  conn_log_verdict(c);
  dial_start(c);
}

static void on_resolved(void *arg, enum dns_status status, const struct dns_result *res) {
  struct conn *c = arg;
  char detail[300];

  if (status != DNS_OK) {
    snprintf(detail, sizeof(detail), "%s: %s", c->dest.name, dns_status_name(status));
    if (status == DNS_TIMEOUT) {
      respond_error(c, 504, "dns_timeout", detail);
    } else {
      c->ps_extra = status == DNS_NXDOMAIN ? "rcode=NXDOMAIN"
                    : status == DNS_SERVFAIL ? "rcode=SERVFAIL"
                    : status == DNS_NODATA ? "rcode=NOERROR" : NULL;
      respond_error(c, 502, "dns_error", detail);
    }
    return;
  }
  if ((c->addrs = malloc(sizeof(*c->addrs))) == NULL) {
    respond_error(c, 500, "proxy_internal_error", "out of memory");
    return;
  }
  memcpy(c->addrs, res, sizeof(*res));
  after_resolution(c);
}

void conn_dial(struct conn *c) {
  dial_start(c);
}

/* Puts the destination's literal address up for dialing. */
static int literal_addrs(struct conn *c) {
  struct sockaddr_storage *ss;
  if ((c->addrs = calloc(1, sizeof(*c->addrs))) == NULL)
    return -1;
  ss = &c->addrs->addrs[0];
  if (c->dest.kind == HOST_IPV4) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(c->dest.port);
    memcpy(&in->sin_addr, c->dest.addr, 4);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(c->dest.port);
    memcpy(&in6->sin6_addr, c->dest.addr, 16);
  }
  c->addrs->naddrs = 1;
  return 0;
}

/* The request passed every check: find it a connection to the destination. */
/* Reuses an idle connection to the destination, judged on the answer it
 * was dialled from, as a new dial would be. Returns false if none fits. */
static bool reuse_pooled(struct conn *c) {
  struct upstream *up = upstream_take(c->srv, c->authority);
  struct fact_store st;
  struct facts facts;

  if (up == NULL)
    return false;
  if (up->resolved != NULL && (c->addrs = malloc(sizeof(*c->addrs))) != NULL)
    memcpy(c->addrs, up->resolved, sizeof(*c->addrs));
  conn_facts(c, &facts, &st);
  policy_decide(c->policy, &facts, server_now(c->srv), &c->verdict);
  if (c->verdict.action == ACTION_DENY) {
    upstream_release(up); /* it may serve a request that is allowed */
    respond_deny(c);
    return true;
  }
  c->up = up;
  up->conn = c;
  conn_log_verdict(c);
  conn_set_state(c, CONN_ST_FORWARD);
  forward_start(c);
  return true;
}

static void route_request(struct conn *c) {
  int rc;
  free(c->addrs);
  c->addrs = NULL;
  if (!c->head->is_connect && reuse_pooled(c))
    return;
  if (c->dest.kind != HOST_NAME) {
    if (literal_addrs(c) != 0)
      respond_error(c, 500, "proxy_internal_error", "out of memory");
    else
      after_resolution(c);
    return;
  }
  conn_set_state(c, CONN_ST_RESOLVING);
  conn_arm_timer(c, c->srv->cfg->timeouts.resolve);
  rc = resolver_lookup(c->srv->resolver, c->dest.name, c->dest.port, on_resolved, c, &c->dnsq);
  if (rc != 0)
    respond_error(c, 500, "proxy_internal_error", "cannot start DNS lookup");
}

/* ---- request heads ---------------------------------------------------------- */

static bool connect_port_allowed(const struct config *cfg, uint16_t port) {
  size_t i;
  for (i = 0; i < cfg->nconnect_ports; i++)
    if (cfg->connect_ports[i] == port)
      return true;
  return false;
}

/* Extracts and normalises the destination. Returns 0, or answers the
 * request with an error and returns -1. */
static int parse_target(struct conn *c) {
  const struct http_head *h = c->head;
  const char *target = http_head_str(h, h->target);
  const char *path = NULL;
  char detail[160];
  int rc;

  if (h->is_connect) {
    /* authority-form must carry a port (RFC 9110 9.3.6). */
    const char *colon = memrchr(target, ':', h->target_len);
    rc = colon == NULL || colon == target + h->target_len - 1 ? EMB_EBADPORT
         : authority_parse(target, h->target_len, 0, &c->dest);
  } else if (h->target_len > 0 && target[0] == '/') {
    respond_error(c, 400, "http_request_error",
                  "origin-form request: configure this host as an HTTP proxy");
    return -1;
  } else {
    rc = url_parse_absolute(target, h->target_len, &c->dest, &path, &c->path_len);
  }
  if (rc != 0) {
    snprintf(detail, sizeof(detail), "bad request target: %s", err_str(rc));
    respond_error(c, 400, "http_request_error", detail);
    return -1;
  }
  free(c->path);
  c->path = NULL;
  if (path != NULL && (c->path = strndup(path, c->path_len)) == NULL) {
    respond_error(c, 500, "proxy_internal_error", "out of memory");
    return -1;
  }
  host_format(&c->dest, c->authority, sizeof(c->authority));
  if (!h->is_connect && c->dest.port == 80) /* the Host field omits the default port */
    *strrchr(c->authority, ':') = '\0';
  return 0;
}

/* Runs the checks that need no network: loops, ports, policy. Returns 0 to
 * go on, -1 if the request was answered. */
static int check_request(struct conn *c) {
  const struct config *cfg = c->srv->cfg;
  struct facts facts = {.host = &c->dest};
  char detail[96];

  if (http_head_via_has(c->head, c->srv->via_host)) {
    respond_error(c, 403, "http_request_denied", "forwarding loop: request already passed Embargo");
    return -1;
  }
  if (c->head->is_connect && !connect_port_allowed(cfg, c->dest.port)) {
    snprintf(detail, sizeof(detail), "CONNECT to port %u is not allowed", c->dest.port);
    respond_error(c, 403, "http_request_denied", detail);
    return -1;
  }
  policy_decide(c->policy, &facts, server_now(c->srv), &c->verdict);
  if (c->verdict.action == ACTION_DENY) {
    deny_request(c);
    return -1;
  }
  /* Log lines wait for the whole verdict: addresses, CNAMEs, SNI. */
  return 0;
}

/* Request parser callbacks (ctx is the conn). */
static int on_request_head(void *ctx, struct http_head *h) {
  struct conn *c = ctx;
  c->head = h;
  return HTTP1_PAUSE; /* decided outside the parser, in handle_head() */
}

static int on_request_body(void *ctx, const char *data, size_t len) {
  struct conn *c = ctx;
  static const char crlf[] = "\r\n";
  char size[24];
  uv_buf_t bufs[3];

  if (c->discard || c->up == NULL)
    return 0;
  /* A request body still arriving keeps the exchange alive. */
  conn_arm_timer(c, c->srv->cfg->timeouts.response);
  if (!c->head->chunked)
    return endpoint_write(&c->up->ep, data, len) == 0 ? 0 : -1;
  bufs[0] = uv_buf_init(size, (unsigned)snprintf(size, sizeof(size), "%zx\r\n", len));
  bufs[1] = uv_buf_init((char *)data, (unsigned)len);
  bufs[2] = uv_buf_init((char *)crlf, 2);
  return endpoint_writev(&c->up->ep, bufs, 3) == 0 ? 0 : -1;
}

static int on_request_done(void *ctx) {
  struct conn *c = ctx;
  if (c->discard) { /* the tail of a request answered locally */
    c->discard = false;
    return HTTP1_CONTINUE;
  }
  c->req_done = true;
  if (c->head->chunked && c->up != NULL && endpoint_write(&c->up->ep, "0\r\n\r\n", 5) != 0)
    c->close_after = true;
  return HTTP1_PAUSE;
}

static const struct http1_callbacks request_cbs = {
    .on_head = on_request_head,
    .on_body = on_request_body,
    .on_done = on_request_done,
};

static void handle_head(struct conn *c) {
  uv_timer_stop(&c->timer);
  c->head_timing = false;
  c->req_done = c->resp_started = c->resp_done = c->interim = false;
  c->close_after = !c->head->keep_alive;
  memset(&c->verdict, 0, sizeof(c->verdict));
  if (parse_target(c) != 0 || check_request(c) != 0)
    return;
  route_request(c);
}

static void handle_parse_error(struct conn *c) {
  char detail[160];
  snprintf(detail, sizeof(detail), "%s", http1_error_reason(c->req));
  c->close_after = true;
  respond_error(c, http1_error_status(c->req), "http_request_error", detail);
}

int conn_input_consumed(struct conn *c, const char *data, size_t len, size_t used,
                        bool from_spill) {
  char *copy;
  if (from_spill) {
    c->spill_off += used;
    c->spill_len -= used;
    return 0;
  }
  if (used >= len)
    return 0;
  if ((copy = malloc(len - used)) == NULL) {
    conn_close(c);
    return -1;
  }
  memcpy(copy, data + used, len - used);
  free(c->spill);
  c->spill = copy;
  c->spill_off = 0;
  c->spill_len = len - used;
  return 0;
}

/* Feeds client bytes to the request parser and acts on where it stopped.
 * DATA is either fresh input or the spill buffer's content (FROM_SPILL). */
static void parse_input(struct conn *c, const char *data, size_t len, bool from_spill) {
  size_t used = 0;
  enum http1_status st = http1_feed(c->req, data, len, &used);

  if (c->state == CONN_ST_CLOSED || conn_input_consumed(c, data, len, used, from_spill) != 0)
    return;
  if (st == HTTP1_ERROR) {
    c->spill_len = 0;
    handle_parse_error(c);
    return;
  }
  if (c->state == CONN_ST_HEAD && !c->head_timing && http1_in_message(c->req)) {
    c->head_timing = true;
    conn_arm_timer(c, c->srv->cfg->timeouts.request_head);
  }
  if (st == HTTP1_OK || c->state != CONN_ST_HEAD)
    return;
  /* Paused at a head (or upgraded for CONNECT): decide on it. */
  handle_head(c);
}

void conn_process_spill(struct conn *c) {
  if (c->spill_len > 0)
    parse_input(c, c->spill + c->spill_off, c->spill_len, true);
  if (c->state != CONN_ST_CLOSED)
    conn_update_reading(c);
}

void conn_next_request(struct conn *c) {
  conn_set_state(c, CONN_ST_HEAD);
  /* Nothing of the last request may leak into what the next one logs. */
  memset(&c->dest, 0, sizeof(c->dest));
  memset(&c->verdict, 0, sizeof(c->verdict));
  c->authority[0] = '\0';
  c->head = NULL; /* set again by the next head */
  c->resp_started = c->resp_done = false;
  free(c->addrs);
  c->addrs = NULL;
  c->head_timing = false;
  c->discard = !c->req_done; /* a locally answered request: its end is still to parse */
  c->req_done = false;
  conn_arm_timer(c, c->srv->cfg->timeouts.idle);
  http1_resume(c->req);
  conn_resume_request(c);
}

void conn_resume_request(struct conn *c) {
  enum conn_state st = c->state;
  /* llhttp completes a message without a body only when it is next run. */
  if (c->spill_len == 0)
    parse_input(c, "", 0, false);
  if (c->state == st)
    conn_process_spill(c);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->handle->data;
  /* Nothing left to drain once the client has closed its side too. */
  if (c->state == CONN_ST_LINGER && (c->cli.eof || status < 0))
    conn_close(c);
}

void conn_linger(struct conn *c) {
  if (c->state == CONN_ST_CLOSED)
    return;
  conn_set_state(c, CONN_ST_LINGER);
  if (c->up != NULL) {
    upstream_close(c->up);
    c->up = NULL;
  }
  if (endpoint_shutdown(&c->cli, on_linger_shutdown) != 0) {
    conn_close(c);
    return;
  }
  conn_arm_timer(c, LINGER_MS);
  conn_update_reading(c);
}

static void client_eof(struct conn *c) {
  c->cli.eof = true;
  switch (c->state) {
  case CONN_ST_FORWARD:
    if (c->req_done) { /* half-closed after its request: finish the response */
      c->close_after = true;
      conn_update_reading(c);
      return;
    }
    break;
  case CONN_ST_HEAD:
    if (http1_in_message(c->req))
      log_diag(LOG_INFO, c->id, "client closed in the middle of a request head");
    break;
  default:
    break;
  }
  conn_close(c);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;

  if (nread == 0)
    return;
  if (c->state == CONN_ST_LINGER) {
    if (nread < 0)
      conn_close(c);
    return;
  }
  if (c->state == CONN_ST_TUNNEL) {
    tunnel_client_data(c, nread, buf->base);
    return;
  }
  if (c->state == CONN_ST_BUMP) {
    bump_data(c, nread, buf->base);
    return;
  }
  if (c->state == CONN_ST_PEEK) {
    peek_data(c, nread, buf->base);
    if (c->state != CONN_ST_CLOSED) /* dialling now, perhaps: stop reading */
      conn_update_reading(c);
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF)
      client_eof(c);
    else
      conn_close(c);
    return;
  }
  parse_input(c, buf->base, (size_t)nread, false);
  if (c->state != CONN_ST_CLOSED)
    conn_update_reading(c);
}

void conn_upstream_read(struct conn *c, struct upstream *up, ssize_t nread, const char *data) {
  if (c->state == CONN_ST_TUNNEL)
    tunnel_upstream_data(c, nread, data);
  else
    forward_response_data(c, nread, data);
}

/* ---- accept ------------------------------------------------------------- */

static bool client_allowed(const struct config *cfg, const struct sockaddr_storage *ss) {
  struct sockaddr_in tmp; /* a v4 client on a dual-stack socket is judged as v4 */
  const struct sockaddr *sa = sockaddr_unmapped((const struct sockaddr *)ss, &tmp);
  const uint8_t *addr = sa->sa_family == AF_INET
                            ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr
                            : (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  return netmatch_lookup(cfg->clients, sa->sa_family, addr, NULL) != NULL;
}

static struct conn *conn_new(struct listener *lst) {
  struct server *srv = lst->srv;
  struct conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  if ((c->req = http1_new(true, srv->cfg->limits.max_head, &request_cbs, c)) == NULL) {
    free(c);
    return NULL;
  }
  c->id = ++srv->next_conn_id;
  c->srv = srv;
  c->lst = lst;
  c->policy = policy_ref(srv->policy);
  uv_tcp_init(srv->loop, &c->cli.tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->handles = 2;
  c->cli.tcp.data = c;
  c->timer.data = c;
  c->cli.drained = on_client_drained;
  c->next = srv->conns;
  if (srv->conns != NULL)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  return c;
}

void conn_accept(struct listener *lst) {
  struct server *srv = lst->srv;
  struct conn *c = conn_new(lst);
  int len = sizeof(c->peer), rc;

  if (c == NULL) {
    log_diag(LOG_ERR, 0, "out of memory accepting a connection");
    return;
  }
  if ((rc = uv_accept((uv_stream_t *)&lst->tcp, (uv_stream_t *)&c->cli.tcp)) != 0) {
    log_diag(LOG_WARN, 0, "accept on %s: %s", lst->name, uv_strerror(rc));
    conn_close(c);
    return;
  }
  uv_tcp_getpeername(&c->cli.tcp, (struct sockaddr *)&c->peer, &len);
  uv_tcp_nodelay(&c->cli.tcp, 1);
  if (srv->nconns > srv->cfg->limits.max_connections) {
    log_diag(LOG_WARN, c->id, "connection limit (%zu) reached; refusing",
             srv->cfg->limits.max_connections);
    conn_close(c);
    return;
  }
  if (!client_allowed(srv->cfg, &c->peer)) {
    c->close_after = true;
    c->req_done = true;
    respond_error(c, 403, "http_request_denied", "client address is not allowed to use this proxy");
    return;
  }
  conn_arm_timer(c, srv->cfg->timeouts.idle);
  conn_update_reading(c);
}
