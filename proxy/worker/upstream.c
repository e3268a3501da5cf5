/* Dialing destinations and pooling idle keep-alive connections. */
#include "proxy/worker/upstream.h"
#include "proxy/base/metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/base/dns.h"
#include "proxy/base/http1.h"
#include "proxy/base/log.h"
#include "proxy/worker/server.h"

static void on_handle_closed(uv_handle_t *h) {
  struct upstream *up = h->data;
  if (--up->handles == 0) {
    http1_free(up->resp);
    dns_answer_unref(up->resolved);
    free(up);
  }
}

static void pool_unlink(struct upstream *up) {
  struct server *srv = up->srv;
  if (up->prev != NULL)
    up->prev->next = up->next;
  else if (srv->idle_head == up)
    srv->idle_head = up->next;
  else
    return; /* not pooled */
  if (up->next != NULL)
    up->next->prev = up->prev;
  else
    srv->idle_tail = up->prev;
  up->prev = up->next = NULL;
  srv->nidle--;
}

void upstream_close(struct upstream *up) {
  if (up == NULL || up->closing)
    return;
  up->closing = true;
  pool_unlink(up);
  up->owner = NULL;
  uv_close((uv_handle_t *)&up->ep.tcp, on_handle_closed);
  uv_close((uv_handle_t *)&up->timer, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  const struct upstream *up = h->data;
  *buf = up->owner != NULL ? up->events->buffer(up->owner) : endpoint_read_buffer();
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct upstream *up = s->data;
  if (nread == 0)
    return;
  if (up->owner == NULL) {
    /* A pooled connection must stay silent: data or EOF retires it. */
    upstream_close(up);
    return;
  }
  if (nread < 0)
    up->ep.eof = nread == UV_EOF;
  up->events->read(up->owner, up, nread, buf->base);
}

void upstream_set_reading(struct upstream *up, bool want) {
  endpoint_set_reading(&up->ep, want, on_alloc, on_read);
}

static void on_drained(struct endpoint *ep, int status) {
  struct upstream *up = ep->tcp.data;
  if (up->owner != NULL)
    up->events->drained(up->owner, up, status);
}

#define LOCAL_WARN_EVERY_MS 10000

bool upstream_error_is_local(int status) {
  static const int local[] = {UV_EPERM,         UV_EACCES,     UV_EMFILE, UV_ENFILE,
                              UV_EADDRNOTAVAIL, UV_EADDRINUSE, UV_ENOMEM, UV_ENOBUFS};
  for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
    if (status == local[i])
      return true;
  return false;
}

/* A dial failed for a local reason: readiness hears of it, and standard
 * error at most every 10 s per worker (descriptor exhaustion has its own
 * warning in proxy/admit.c). */
static void note_local_failure(struct upstream *up, int status, uint64_t now) {
  struct upstream_health *h = &up->srv->dial;
  h->last_local_fail_ms = now;
  h->last_local_err = status;
  if (status == UV_EMFILE || status == UV_ENFILE ||
      (h->last_warned_ms != 0 && now - h->last_warned_ms < LOCAL_WARN_EVERY_MS))
    return;
  h->last_warned_ms = now;
  log_diag(LOG_WARN, 0,
           "cannot connect to %s: %s, a cause on this host (a firewall rule, a missing "
           "capability, no free descriptor or local port); /readyz reports it while it lasts",
           up->key, uv_strerror(status));
}

/* One dial's outcome and duration, for the metrics and readiness. */
static void count_dial(struct upstream *up, int status) {
  uint64_t now = uv_now(up->srv->loop);
  bool local = status != 0 && upstream_error_is_local(status);
  metrics_add(status == 0              ? METRIC_CONNECT_OK
              : status == UV_ETIMEDOUT ? METRIC_CONNECT_TIMEOUT
              : local                  ? METRIC_CONNECT_LOCAL
                                       : METRIC_CONNECT_ERROR,
              1);
  metrics_observe_ms(METRIC_H_CONNECT, now - up->dial_started);
  if (status == 0)
    up->srv->dial.last_ok_ms = now;
  else if (local)
    note_local_failure(up, status, now);
}

static void on_connect_timeout(uv_timer_t *t) {
  struct upstream *up = t->data;
  if (!up->dialing)
    return;
  up->dialing = false;
  count_dial(up, UV_ETIMEDOUT);
  up->events->connected(up->owner, up, UV_ETIMEDOUT);
}

static void on_connected(uv_connect_t *req, int status) {
  struct upstream *up = req->data;

  if (status == UV_ECANCELED || !up->dialing)
    return; /* closed or timed out meanwhile */
  up->dialing = false;
  uv_timer_stop(&up->timer);
  if (status == 0) {
    up->connected = true;
    uv_tcp_nodelay(&up->ep.tcp, 1);
  }
  count_dial(up, status);
  up->events->connected(up->owner, up, status);
}

/* A socket whose packets carry MARK, so the firewall can tell Embargo's own
 * connections from the clients' it intercepts. */
static int open_marked(struct upstream *up, int family, uint32_t mark) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc;
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if ((rc = uv_tcp_open(&up->ep.tcp, fd)) != 0)
    close(fd);
  return rc;
}

int upstream_check_mark(uint32_t mark) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
    rc = -errno;
  close(fd);
  return rc;
}

struct upstream *upstream_dial(struct server *srv, const struct sockaddr *addr,
                               struct dns_answer *resolved, const char *key, uint64_t timeout_ms,
                               const struct upstream_events *events, void *owner, int *err) {
  size_t keylen = strnlen(key, UPSTREAM_KEY_MAX - 1);
  struct upstream *up = calloc(1, sizeof(*up) + keylen + 1);
  int rc;

  if (up == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  up->resolved = dns_answer_ref(resolved);
  up->srv = srv;
  up->owner = owner;
  up->events = events;
  up->dialing = true;
  up->dial_started = uv_now(srv->loop);
  memcpy(&up->addr, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in));
  memcpy(up->key, key, keylen);
  uv_tcp_init(srv->loop, &up->ep.tcp);
  uv_timer_init(srv->loop, &up->timer);
  up->handles = 2;
  up->ep.tcp.data = up;
  up->timer.data = up;
  up->connect_req.data = up;
  up->ep.drained = on_drained;
  if ((srv->cfg->mark != 0 && (rc = open_marked(up, addr->sa_family, srv->cfg->mark)) != 0) ||
      (rc = uv_tcp_connect(&up->connect_req, &up->ep.tcp, addr, on_connected)) != 0) {
    admit_note_error(&srv->admit, rc); /* out of descriptors is said on stderr */
    count_dial(up, rc);
    up->dialing = false;
    upstream_close(up);
    *err = rc;
    return NULL;
  }
  uv_timer_start(&up->timer, on_connect_timeout, timeout_ms, 0);
  return up;
}

void upstream_adopt(struct upstream *up, const struct upstream_events *events, void *owner) {
  up->events = events;
  up->owner = owner;
}

void upstream_forget_answer(struct upstream *up) {
  dns_answer_unref(up->resolved);
  up->resolved = NULL;
}

static void on_idle_timeout(uv_timer_t *t) {
  upstream_close(t->data);
}

/* Worker INDEX's share of TOTAL when it is divided among N workers: the
 * shares add up to TOTAL exactly. */
static size_t share_of(size_t total, size_t n, size_t index) {
  return total / n + (index < total % n ? 1 : 0);
}

/* This worker's share of limits.pool_total: the shares of the workers add
 * up to the configured number. */
static size_t pool_total(const struct server *srv) {
  return share_of(srv->cfg->limits.pool_total, srv->shared->nworkers, srv->index);
}

static size_t pool_count_key(const struct server *srv, const char *key) {
  const struct upstream *u;
  size_t n = 0;
  for (u = srv->idle_head; u != NULL; u = u->next)
    n += strcmp(u->key, key) == 0;
  return n;
}

void upstream_release(struct upstream *up) {
  struct server *srv = up->srv;
  const struct config_limits *lim = &srv->cfg->limits;

  if (up->closing)
    return;
  if (srv->stopping || !up->connected || up->ep.eof || up->ep.pending > 0 ||
      pool_total(srv) == 0 || pool_count_key(srv, up->key) >= lim->pool_per_host) {
    upstream_close(up);
    return;
  }
  if (srv->nidle >= pool_total(srv))
    upstream_close(srv->idle_head); /* evict the least recently used */
  up->owner = NULL;
  up->prev = srv->idle_tail;
  up->next = NULL;
  if (srv->idle_tail != NULL)
    srv->idle_tail->next = up;
  else
    srv->idle_head = up;
  srv->idle_tail = up;
  srv->nidle++;
  upstream_set_reading(up, true);
  uv_timer_start(&up->timer, on_idle_timeout, srv->cfg->timeouts.upstream_idle, 0);
}

struct upstream *upstream_take(struct server *srv, const char *key) {
  struct upstream *up;
  /* Most recently used first: it is the least likely to have been closed. */
  for (up = srv->idle_tail; up != NULL; up = up->prev) {
    if (strcmp(up->key, key) != 0)
      continue;
    pool_unlink(up);
    uv_timer_stop(&up->timer);
    /* Reading stays on: the new owner's conn_update_reading decides before
     * the loop runs again, usually to read on (no epoll change per reuse). */
    up->reused = true;
    return up;
  }
  return NULL;
}

void upstream_pool_clear(struct server *srv) {
  while (srv->idle_head != NULL)
    upstream_close(srv->idle_head);
}
