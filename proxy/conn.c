/* Client connections: accept, the state machine, timers, reading with
 * backpressure, writing, and the single teardown path. What the bytes mean
 * is the front ends' (front.c, transparent.c, peek.c); where they go is
 * route.c's. */
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
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

#define LINGER_MS 2000
#define RESPOND_MS 30000

static const char *const state_names[] = {"HEAD",   "SNIFF",      "RESOLVING", "CONNECTING",
                                          "FORWARD", "PEEK",      "BUMP",      "TUNNEL",
                                          "RESPONDING", "LINGER", "CLOSED"};

/* Legal moves, one bit per target state. */
static const unsigned legal_moves[] = {
    [CONN_ST_HEAD] = 1u << CONN_ST_RESOLVING | 1u << CONN_ST_CONNECTING | 1u << CONN_ST_FORWARD |
                     1u << CONN_ST_PEEK | 1u << CONN_ST_RESPONDING | 1u << CONN_ST_LINGER,
    [CONN_ST_SNIFF] = 1u << CONN_ST_HEAD | 1u << CONN_ST_PEEK | 1u << CONN_ST_RESOLVING |
                      1u << CONN_ST_CONNECTING | 1u << CONN_ST_LINGER,
    [CONN_ST_RESOLVING] = 1u << CONN_ST_CONNECTING | 1u << CONN_ST_PEEK | 1u << CONN_ST_RESPONDING |
                          1u << CONN_ST_LINGER | 1u << CONN_ST_BUMP,
    [CONN_ST_PEEK] = 1u << CONN_ST_RESOLVING | 1u << CONN_ST_CONNECTING | 1u << CONN_ST_LINGER |
                     1u << CONN_ST_BUMP,
    [CONN_ST_BUMP] = 1u << CONN_ST_LINGER,
    [CONN_ST_CONNECTING] = 1u << CONN_ST_FORWARD | 1u << CONN_ST_TUNNEL | 1u << CONN_ST_RESPONDING |
                           1u << CONN_ST_LINGER,
    [CONN_ST_FORWARD] = 1u << CONN_ST_HEAD | 1u << CONN_ST_CONNECTING | 1u << CONN_ST_RESPONDING |
                        1u << CONN_ST_LINGER,
    [CONN_ST_TUNNEL] = 1u << CONN_ST_LINGER, /* a second ClientHello refused */
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
  if (st == CONN_ST_TUNNEL && c->state != CONN_ST_TUNNEL)
    metrics_add(METRIC_TUNNELS, 1);
  c->state = st;
}

void conn_exchange_free(struct conn *c) {
  struct exchange *ex = c->ex;
  if (ex == NULL)
    return;
  resolver_cancel(&ex->dnsq);
  http1_free(ex->req);
  free(ex->path);
  free(ex->addrs);
  free(ex->spill);
  peek_free(c);
  bump_free(c);
  peek_watch_free(c);
  free(ex);
  c->ex = NULL;
}

void conn_tunnel_relaying(struct conn *c) {
  if (c->state != CONN_ST_TUNNEL || c->ex == NULL || c->ex->watch != NULL)
    return;
  conn_exchange_free(c);
  if (c->up != NULL)
    upstream_forget_answer(c->up); /* a tunnel's upstream never goes back to the pool */
}

static void on_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles > 0)
    return;
  conn_exchange_free(c);
  policy_unref(c->policy);
  free(c);
}

void conn_release_kept(struct conn *c) {
  if (c->kept != NULL) {
    upstream_release(c->kept); /* healthy and idle: the pool may use it */
    c->kept = NULL;
  }
}

void conn_close(struct conn *c) {
  struct server *srv = c->srv;
  if (c->state == CONN_ST_CLOSED)
    return;
  conn_set_state(c, CONN_ST_CLOSED);
  if (c->ex != NULL)
    resolver_cancel(&c->ex->dnsq);
  if (c->up != NULL) {
    upstream_close(c->up);
    c->up = NULL;
  }
  conn_release_kept(c);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  srv->nconns--;
  admit_release(&srv->admit, &c->peer.sa);
  uv_close((uv_handle_t *)&c->cli.tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* ---- timers ------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t) {
  struct conn *c = t->data;
  switch (c->state) {
  case CONN_ST_SNIFF:
    transparent_timeout(c);
    break;
  case CONN_ST_HEAD:
    if (c->ex->head_timing) {
      c->close_after = true;
      respond_error(c, 408, "http_request_error", "request head not received in time");
    } else if (c->cli.pending > 0) {
      conn_arm_timer(c, c->srv->cfg->timeouts.idle); /* still taking the last response */
    } else {
      conn_close(c); /* idle keep-alive connection */
    }
    break;
  case CONN_ST_RESOLVING:
    resolver_cancel(&c->ex->dnsq);
    respond_error(c, 504, "dns_timeout", "DNS resolution timed out");
    break;
  case CONN_ST_FORWARD:
    if (!c->ex->resp_started) {
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

/* A tunnel that only relays (its exchange is gone: no hello, spill or
 * watch to parse into) reads in larger pieces; every other read is 64 KiB
 * at most, which bounds what a parser may leave in the spill buffer. */
static bool relays_bytes(const struct conn *c) {
  return c->state == CONN_ST_TUNNEL && c->ex == NULL && c->up != NULL;
}

static void on_client_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  struct conn *c = h->data;
  *buf = relays_bytes(c) ? endpoint_relay_buffer(&c->up->ep, c->srv->cfg->limits.buffer_high)
                         : endpoint_read_buffer();
}

/* A response body is streaming: its bytes go to the client as they come. */
static bool streams_response(const struct conn *c) {
  return c->state == CONN_ST_FORWARD && c->ex->resp_started && !c->ex->resp_done;
}

static uv_buf_t upstream_buffer(const void *owner) {
  const struct conn *c = owner;
  return relays_bytes(c) || streams_response(c)
             ? endpoint_relay_buffer(&c->cli, c->srv->cfg->limits.buffer_high)
             : endpoint_read_buffer();
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
    want_client = c->ex->spill_len == 0;
    break;
  case CONN_ST_FORWARD:
    /* Once the request is read, reading may go on (as it was) while the
     * response comes: a pipelined request then waits in the spill buffer,
     * and each request spares stopping and restarting the client's read. */
    want_client = c->ex->spill_len == 0 &&
                  (c->ex->req_done ? c->cli.reading : up_pending < high);
    break;
  case CONN_ST_TUNNEL:
    want_client = up_pending < high;
    break;
  case CONN_ST_SNIFF:
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
            ((c->state == CONN_ST_FORWARD && !c->ex->resp_done) || c->state == CONN_ST_TUNNEL);
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

static void upstream_drained(void *owner, struct upstream *up, int status) {
  struct conn *c = owner;
  if (up == c->kept) {
    if (status < 0) {
      c->kept = NULL;
      upstream_close(up);
    }
    return;
  }
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
        front_next_request(c);
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

int conn_mode(const struct conn *c) {
  return c->lst->mode;
}

bool conn_transparent(const struct conn *c) {
  return c->lst->mode != LISTEN_PROXY;
}

void conn_log_verdict(struct conn *c) {
  if (c->ex->verdict.action == ACTION_LOG)
    respond_log(c, "log", 0, NULL, c->ex->decided_by);
  else if (c->srv->cfg->access_log)
    respond_log(c, "access", 0, NULL, NULL);
}

int conn_input_consumed(struct conn *c, const char *data, size_t len, size_t used,
                        bool from_spill) {
  char *copy;
  if (from_spill) {
    c->ex->spill_off += used;
    c->ex->spill_len -= used;
    return 0;
  }
  if (used >= len)
    return 0;
  /* Behind whatever still waits there, so input is never reordered. */
  if ((copy = malloc(c->ex->spill_len + len - used)) == NULL) {
    conn_close(c);
    return -1;
  }
  if (c->ex->spill_len > 0)
    memcpy(copy, c->ex->spill + c->ex->spill_off, c->ex->spill_len);
  memcpy(copy + c->ex->spill_len, data + used, len - used);
  free(c->ex->spill);
  c->ex->spill = copy;
  c->ex->spill_off = 0;
  c->ex->spill_len += len - used;
  return 0;
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
  conn_release_kept(c);
  if (endpoint_shutdown(&c->cli, on_linger_shutdown) != 0) {
    conn_close(c);
    return;
  }
  conn_arm_timer(c, LINGER_MS);
  conn_update_reading(c);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;

  if (nread == 0)
    return;
  if (nread > 0)
    metrics_add(METRIC_BYTES_CLIENT, (uint64_t)nread);
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
  if (c->state == CONN_ST_PEEK || c->state == CONN_ST_SNIFF) {
    if (c->state == CONN_ST_PEEK)
      peek_data(c, nread, buf->base);
    else
      transparent_data(c, nread, buf->base);
    if (c->state != CONN_ST_CLOSED) /* dialling now, perhaps: stop reading */
      conn_update_reading(c);
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF)
      front_eof(c);
    else
      conn_close(c);
    return;
  }
  front_parse(c, buf->base, (size_t)nread, false);
  if (c->state != CONN_ST_CLOSED)
    conn_update_reading(c);
}

static void upstream_read(void *owner, struct upstream *up, ssize_t nread, const char *data) {
  struct conn *c = owner;
  if (nread > 0)
    metrics_add(METRIC_BYTES_UPSTREAM, (uint64_t)nread);
  if (up == c->kept) { /* an idle connection must stay silent: data or EOF retires it */
    c->kept = NULL;
    upstream_close(up);
    return;
  }
  if (c->state == CONN_ST_TUNNEL) {
    tunnel_upstream_data(c, nread, data);
    return;
  }
  if (c->ex->resp_started) { /* body bytes: written from the read buffer */
    forward_response_data(c, nread, data);
    return;
  }
  /* What the read with the response head makes the client get (the head
   * and the body that came with it) leaves in one write. */
  endpoint_cork(&c->cli);
  forward_response_data(c, nread, data);
  if (endpoint_uncork(&c->cli) != 0 && c->state != CONN_ST_CLOSED) {
    log_diag(LOG_INFO, c->id, "client write failed");
    conn_close(c);
  }
}

static void upstream_connected(void *owner, struct upstream *up, int status) {
  route_connected(owner, up, status);
}

const struct upstream_events conn_upstream_events = {
    .connected = upstream_connected,
    .read = upstream_read,
    .drained = upstream_drained,
    .buffer = upstream_buffer,
};

/* ---- accept ------------------------------------------------------------- */

static bool client_allowed(const struct config *cfg, const struct sockaddr *peer) {
  struct sockaddr_in tmp; /* a v4 client on a dual-stack socket is judged as v4 */
  const struct sockaddr *sa = sockaddr_unmapped(peer, &tmp);
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
  if ((c->ex = calloc(1, sizeof(*c->ex))) == NULL) {
    free(c);
    return NULL;
  }
  /* The first state: a transparent connection starts by sniffing. */
  c->state = lst->mode == LISTEN_PROXY ? CONN_ST_HEAD : CONN_ST_SNIFF;
  c->id = server_next_conn_id(srv);
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

/* An intercepted connection: find where it was going, refuse what must
 * not be served, then read its first bytes. */
static void accept_transparent(struct conn *c) {
  char peer[64], where[64];
  uint64_t now = uv_now(c->srv->loop);

  log_fmt_addr(&c->peer.sa, peer, sizeof(peer));
  if (!client_allowed(c->srv->cfg, &c->peer.sa)) {
    log_diag(LOG_INFO, c->id, "%s on %s: client address is not allowed; closing", peer,
             c->lst->name);
    conn_close(c);
    return;
  }
  if (transparent_original_dst(c) != 0 ||
      destcheck_is_self(&c->srv->dest, (const struct sockaddr *)&c->ex->orig_dst, now)) {
    /* Reached directly, not redirected by the firewall (or redirected to
     * one of our own listeners): there is nowhere to forward it to. */
    log_diag(LOG_WARN, c->id,
             "%s reached %s listener %s directly (no firewall redirect; original destination %s); "
             "refusing",
             peer, listen_mode_name((enum listen_mode)c->lst->mode), c->lst->name,
             c->ex->orig_dst.ss_family ? log_fmt_addr((const struct sockaddr *)&c->ex->orig_dst, where,
                                                  sizeof(where))
                                   : "unknown");
    conn_close(c);
    return;
  }
  transparent_start(c);
}

static void conn_accept(struct listener *lst) {
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
  metrics_count_accept((size_t)(lst - srv->listeners));
  uv_tcp_getpeername(&c->cli.tcp, &c->peer.sa, &len);
  uv_tcp_nodelay(&c->cli.tcp, 1);
  if (admit_client_add(&srv->admit, &c->peer.sa) != 0) {
    conn_close(c); /* over the per-client cap; proxy/admit logged it */
    return;
  }
  if (conn_transparent(c)) {
    accept_transparent(c);
    return;
  }
  if (front_init(c) != 0) {
    log_diag(LOG_ERR, c->id, "out of memory starting a connection");
    conn_close(c);
    return;
  }
  if (!client_allowed(srv->cfg, &c->peer.sa)) {
    c->close_after = true;
    c->ex->req_done = true;
    respond_error(c, 403, "http_request_denied", "client address is not allowed to use this proxy");
    return;
  }
  conn_arm_timer(c, srv->cfg->timeouts.idle);
  conn_update_reading(c);
}

void conn_request_start(struct conn *c) {
  struct server *srv = c->srv;
  server_sync(srv);
  if (c->policy != srv->policy) {
    policy_unref(c->policy);
    c->policy = policy_ref(srv->policy);
  }
  metrics_add(
      c->ex->head != NULL && c->ex->head->is_connect ? METRIC_REQ_CONNECT : METRIC_REQ_FORWARD, 1);
}

/* ---- what the worker asks of its connections ------------------------------- */

/* A connection between requests: nothing read of the next one, nothing
 * owed. Closing it loses nothing. */
static bool is_idle(const struct conn *c) {
  return c->state == CONN_ST_HEAD && c->ex->spill_len == 0 && !http1_in_message(c->ex->req);
}

static void close_all(struct server *srv, bool idle_only) {
  for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
    next = c->next;
    if (!idle_only || is_idle(c))
      conn_close(c);
  }
}

static void count(const struct server *srv, struct server_stats *out) {
  for (const struct conn *c = srv->conns; c != NULL; c = c->next) {
    size_t li = (size_t)(c->lst - srv->listeners);
    if (li < CONFIG_MAX_LISTEN)
      out->active[li]++;
    out->tunnels += c->state == CONN_ST_TUNNEL;
    out->nconns++;
  }
}

static uint64_t oldest(const struct server *srv) {
  uint64_t id = UINT64_MAX;
  for (const struct conn *c = srv->conns; c != NULL; c = c->next)
    if (c->id < id)
      id = c->id;
  return id;
}

const struct server_clients conn_clients = {
    .accept = conn_accept,
    .close = close_all,
    .count = count,
    .oldest = oldest,
};
