/* The connection core: accept, the phase machine (moves, deadlines, the
 * leftover input, reading with backpressure), writing to the client, the
 * upstream in use, and the single teardown path. What the bytes mean and
 * where they go is the phases'; the dispatcher (dispatch.c) names them and
 * the core reaches them only through the struct phase table it is given. */
#include "proxy/conn/conn.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/netmatch.h"
#include "filters/policy.h"
#include "proxy/base/dns.h"
#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/conn/hello.h"
#include "proxy/worker/listener.h"
#include "proxy/worker/server.h"
#include "proxy/worker/upstream.h"

#define LINGER_MS 2000

static const char *const state_names[] = {[CONN_ST_HEAD] = "HEAD",
                                          [CONN_ST_SNIFF] = "SNIFF",
                                          [CONN_ST_PROXYHDR] = "PROXYHDR",
                                          [CONN_ST_ROUTE] = "ROUTE",
                                          [CONN_ST_CONNECTING] = "CONNECTING",
                                          [CONN_ST_PARENT] = "PARENT",
                                          [CONN_ST_FORWARD] = "FORWARD",
                                          [CONN_ST_PEEK] = "PEEK",
                                          [CONN_ST_BUMP] = "BUMP",
                                          [CONN_ST_TUNNEL] = "TUNNEL",
                                          [CONN_ST_RESPONDING] = "RESPONDING",
                                          [CONN_ST_LINGER] = "LINGER",
                                          [CONN_ST_CLOSED] = "CLOSED"};

#define TO(st) (1u << (st))

/* Legal moves, one bit per target state (CLOSED is always legal). */
static const unsigned legal_moves[CONN_ST_COUNT_] = {
    [CONN_ST_HEAD] = TO(CONN_ST_ROUTE) | TO(CONN_ST_RESPONDING),
    [CONN_ST_SNIFF] = TO(CONN_ST_HEAD) | TO(CONN_ST_PEEK) | TO(CONN_ST_ROUTE),
    /* the listener's first state; a refused client; a LOCAL header */
    [CONN_ST_PROXYHDR] =
        TO(CONN_ST_HEAD) | TO(CONN_ST_SNIFF) | TO(CONN_ST_RESPONDING) | TO(CONN_ST_LINGER),
    [CONN_ST_ROUTE] = TO(CONN_ST_CONNECTING) | TO(CONN_ST_PARENT) | TO(CONN_ST_FORWARD) |
                      TO(CONN_ST_PEEK) | TO(CONN_ST_BUMP) | TO(CONN_ST_RESPONDING),
    [CONN_ST_PEEK] = TO(CONN_ST_ROUTE) | TO(CONN_ST_RESPONDING),
    [CONN_ST_BUMP] = TO(CONN_ST_LINGER) | TO(CONN_ST_RESPONDING),
    [CONN_ST_CONNECTING] = TO(CONN_ST_FORWARD) | TO(CONN_ST_TUNNEL) | TO(CONN_ST_RESPONDING),
    [CONN_ST_PARENT] = TO(CONN_ST_FORWARD) | TO(CONN_ST_TUNNEL) | TO(CONN_ST_RESPONDING),
    [CONN_ST_FORWARD] = TO(CONN_ST_HEAD) | TO(CONN_ST_CONNECTING) | TO(CONN_ST_PARENT) |
                        TO(CONN_ST_RESPONDING) | TO(CONN_ST_LINGER),
    [CONN_ST_TUNNEL] = TO(CONN_ST_RESPONDING), /* a second ClientHello refused */
    [CONN_ST_RESPONDING] = TO(CONN_ST_HEAD) | TO(CONN_ST_LINGER),
    [CONN_ST_LINGER] = 0,
    [CONN_ST_CLOSED] = 0,
};

static const struct phase *phase_of(const struct conn *c) {
  return c->phases[c->state];
}

static void set_state(struct conn *c, enum conn_state st) {
  if (st != CONN_ST_CLOSED && (legal_moves[c->state] & TO(st)) == 0) {
    log_diag(LOG_ERR, c->id, "illegal state change %s -> %s", state_names[c->state],
             state_names[st]);
    assert(!"illegal connection state change");
  }
  log_diag(LOG_DEBUG, c->id, "%s -> %s", state_names[c->state], state_names[st]);
  if (st == CONN_ST_TUNNEL && c->state != CONN_ST_TUNNEL)
    metrics_add(METRIC_TUNNELS, 1);
  c->state = st;
}

enum phase_rc conn_goto(struct conn *c, enum conn_state st) {
  c->goto_state = st;
  return PHASE_NEXT;
}

void conn_set_answer(struct conn *c, enum answer_kind kind, int status, const char *error,
                     const char *detail) {
  struct answer *a = &c->ex->answer;
  a->kind = kind;
  a->status = status;
  a->error = error;
  snprintf(a->detail, sizeof(a->detail), "%s", detail != NULL ? detail : "");
}

enum phase_rc conn_answer(struct conn *c, enum answer_kind kind, int status, const char *error,
                          const char *detail) {
  conn_set_answer(c, kind, status, error, detail);
  return conn_goto(c, CONN_ST_RESPONDING);
}

/* ---- the exchange and the upstream ------------------------------------------- */

/* An exchange and its request parser (with room for a 2 KiB head) share
 * one cell of the loop's exchange pool: a burst of connections being
 * decided takes its memory from slabs of its own, which go back to the
 * system once the burst is over, instead of leaving holes among the
 * tunnels' memory in the heap. */
#define EXCHANGE_HEAD ((sizeof(struct exchange) + 15) & ~(size_t)15)

static size_t exchange_cell(void) {
  return EXCHANGE_HEAD + http1_size();
}

static struct exchange *new_exchange(struct server *srv) {
  return slab_alloc(&srv->exchange_cells, exchange_cell());
}

struct http1 *conn_request_parser(struct conn *c, const struct http1_callbacks *cbs) {
  return http1_init((char *)c->ex + EXCHANGE_HEAD, true, c->srv->cfg->limits.max_head, cbs, c);
}

/* Frees C's exchange (NULL-safe): the parser, answer, ClientHello and spill. */
static void free_exchange(struct conn *c) {
  struct exchange *ex = c->ex;
  if (ex == NULL)
    return;
  http1_release(ex->req);
  free(ex->path);
  dns_answer_unref(ex->addrs);
  free(ex->spill);
  hello_free(ex->hello);
  slab_free(&c->srv->exchange_cells, ex);
  c->ex = NULL;
}

void conn_drop_upstream(struct conn *c) {
  if (c->up != NULL) {
    upstream_close(c->up);
    c->up = NULL;
  }
}

void conn_release_kept(struct conn *c) {
  if (c->kept != NULL) {
    upstream_release(c->kept); /* healthy and idle: the pool may use it */
    c->kept = NULL;
  }
}

/* ---- teardown ---------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles > 0)
    return;
  free_exchange(c);
  policy_unref(c->policy);
  free(c);
}

/* Closes C and everything it owns: the current phase leaves, the handles
 * close, memory is freed from their close callbacks. Idempotent. Only the
 * core calls it, never from inside a handler. */
static void conn_close(struct conn *c) {
  static const struct sockaddr uncounted = {.sa_family = AF_UNSPEC};
  struct server *srv = c->srv;
  const struct phase *p;
  if (c->state == CONN_ST_CLOSED)
    return;
  p = phase_of(c);
  if (p->leave != NULL)
    p->leave(c);
  c->priv = NULL;
  set_state(c, CONN_ST_CLOSED);
  conn_drop_upstream(c);
  conn_release_kept(c);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  srv->nconns--;
  admit_release(&srv->admit, c->capped ? &c->peer.sa : &uncounted);
  uv_close((uv_handle_t *)&c->cli.tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
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

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* One predicate per direction: read from a side only while the other side's
 * queue is under the high-water mark, and only in states that consume it. */
static void update_reading(struct conn *c) {
  size_t high = c->srv->cfg->limits.buffer_high;
  size_t up_pending = c->up != NULL ? c->up->ep.pending : 0;
  bool want_client, want_up;

  switch (c->state) {
  case CONN_ST_HEAD: want_client = c->ex->spill_len == 0; break;
  case CONN_ST_FORWARD:
    /* Once the request is read, reading may go on (as it was) while the
     * response comes: a pipelined request then waits in the spill buffer,
     * and each request spares stopping and restarting the client's read. */
    want_client = c->ex->spill_len == 0 && (c->ex->req_done ? c->cli.reading : up_pending < high);
    break;
  case CONN_ST_TUNNEL: want_client = up_pending < high; break;
  case CONN_ST_SNIFF:
  case CONN_ST_PROXYHDR: /* the header is bounded (PROXYPROTO_MAX) */
  case CONN_ST_PEEK:
  case CONN_ST_BUMP: /* its input and output are bounded (bump.c) */
  case CONN_ST_LINGER: want_client = true; break;
  default: want_client = false; break;
  }
  want_up = c->up != NULL && c->up->connected && c->cli.pending < high &&
            ((c->state == CONN_ST_FORWARD && !c->ex->resp_done) || c->state == CONN_ST_TUNNEL ||
             c->state == CONN_ST_PARENT);
  endpoint_set_reading(&c->cli, want_client, on_client_alloc, on_client_read);
  if (c->up != NULL)
    upstream_set_reading(c->up, want_up);
}

/* ---- leftover input ------------------------------------------------------------ */

/* The phase took USED of the LEN bytes at the start of the spill buffer. */
static void spill_taken(struct exchange *ex, size_t used) {
  ex->spill_off += used;
  ex->spill_len -= used;
  if (ex->spill_len == 0)
    ex->spill_off = 0;
}

/* Keeps LEN bytes at DATA behind whatever still waits, so input is never
 * reordered. 0 or -ENOMEM. */
static int spill_keep(struct exchange *ex, const char *data, size_t len) {
  char *copy;
  if (len == 0)
    return 0;
  if ((copy = malloc(ex->spill_len + len)) == NULL)
    return -ENOMEM;
  if (ex->spill_len > 0)
    memcpy(copy, ex->spill + ex->spill_off, ex->spill_len);
  memcpy(copy + ex->spill_len, data, len);
  free(ex->spill);
  ex->spill = copy;
  ex->spill_off = 0;
  ex->spill_len += len;
  return 0;
}

/* Feeds the spill buffer to the phase. *PROGRESS: whether it took any. */
static enum phase_rc feed_spill(struct conn *c, bool *progress) {
  size_t used = 0;
  enum phase_rc rc =
      phase_of(c)->client_data(c, c->ex->spill + c->ex->spill_off, c->ex->spill_len, &used);
  *progress = used > 0;
  spill_taken(c->ex, used);
  return rc;
}

/* ---- the phase machine ---------------------------------------------------------- */

static void on_timeout(uv_timer_t *t);

/* Leaves the current phase and enters c->next. */
static enum phase_rc move(struct conn *c) {
  const struct phase *p = phase_of(c);
  if (p->leave != NULL)
    p->leave(c);
  c->priv = NULL;
  c->resume_due = false; /* it was for the phase that left */
  set_state(c, c->goto_state);
  c->since = uv_now(c->srv->loop);
  p = phase_of(c);
  return p->enter != NULL ? p->enter(c) : PHASE_MORE;
}

/* Sets the timer to fire at DUE (loop time). */
static void arm(struct conn *c, uint64_t due) {
  uint64_t now = uv_now(c->srv->loop);
  uv_timer_start(&c->timer, on_timeout, due > now ? due - now : 0, 0);
  c->armed = due;
}

/* Once the phase has settled: frees the exchange it no longer needs, arms
 * its deadline, sets reading. The timer is set again only for a deadline
 * earlier than the one it is set for: a deadline that moves later or goes
 * away (every phase of a keep-alive request) costs nothing until the timer
 * fires, which then finds the deadline where it is now. */
static void settle(struct conn *c) {
  const struct phase *p = phase_of(c);
  uint64_t due;

  if (c->ex != NULL && c->ex->spill_len == 0 && p->needs_exchange != NULL &&
      !p->needs_exchange(c)) {
    free_exchange(c);
    if (c->up != NULL)
      upstream_forget_answer(c->up); /* a tunnel's upstream never goes back to the pool */
  }
  due = p->deadline != NULL ? p->deadline(c) : 0;
  c->due = due;
  if (due != 0 && (c->armed == 0 || due < c->armed))
    arm(c, due);
  update_reading(c);
}

/* Acts on what a handler returned (C->running is set): moves, queued
 * events and buffered input, until the phase waits or the connection
 * closes. */
static void run(struct conn *c, enum phase_rc rc) {
  bool stalled = false, progress;

  for (;;) {
    if (rc == PHASE_CLOSE)
      break;
    if (rc == PHASE_NEXT) {
      rc = move(c);
      stalled = false;
    } else if (c->resume_due) { /* a phase without the handler keeps its word */
      c->resume_due = false;
      if (phase_of(c)->resume != NULL)
        rc = phase_of(c)->resume(c, c->resume_status);
    } else if (c->drained_due) {
      c->drained_due = false;
      if (phase_of(c)->drained != NULL)
        rc = phase_of(c)->drained(c);
    } else if (rc == PHASE_MORE && !stalled && c->ex != NULL && c->ex->spill_len > 0 &&
               phase_of(c)->client_data != NULL) {
      rc = feed_spill(c, &progress);
      stalled = !progress;
    } else {
      break;
    }
  }
  c->running = false;
  if (rc == PHASE_CLOSE)
    conn_close(c);
  else
    settle(c);
}

/* ---- events ------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t) {
  struct conn *c = t->data;
  const struct phase *p = phase_of(c);
  c->armed = 0;
  if (c->due == 0)
    return; /* the deadline went away since the timer was set */
  if (c->due > uv_now(c->srv->loop)) {
    arm(c, c->due); /* it moved later */
    return;
  }
  c->due = 0;
  c->running = true;
  run(c, p->timeout != NULL ? p->timeout(c) : PHASE_CLOSE);
}

void conn_resume(struct conn *c, int status) {
  const struct phase *p = phase_of(c);
  if (c->state == CONN_ST_CLOSED)
    return;
  if (c->running) { /* from inside a handler: once it has returned */
    c->resume_due = true;
    c->resume_status = status;
    return;
  }
  c->running = true;
  run(c, p->resume != NULL ? p->resume(c, status) : PHASE_WAIT);
}

static void drained(struct conn *c) {
  const struct phase *p = phase_of(c);
  if (c->running) { /* endpoint_uncork, from inside a handler */
    c->drained_due = true;
    return;
  }
  c->running = true;
  run(c, p->drained != NULL ? p->drained(c) : PHASE_WAIT);
}

static void on_client_drained(struct endpoint *ep, int status) {
  struct conn *c = ep->tcp.data;
  if (status < 0) {
    conn_close(c);
    return;
  }
  drained(c);
}

/* Hands LEN bytes at DATA to the phase, behind any leftover input, and
 * keeps what it did not take. */
static enum phase_rc take_input(struct conn *c, const char *data, size_t len) {
  const struct phase *p = phase_of(c);
  size_t used = 0;
  enum phase_rc rc;

  if (p->client_data == NULL)
    return PHASE_WAIT;
  if (c->ex == NULL) /* a relaying tunnel takes everything */
    return p->client_data(c, data, len, &used);
  if (c->ex->spill_len > 0) /* behind what waits; run() feeds the whole */
    return spill_keep(c->ex, data, len) == 0 ? PHASE_MORE : PHASE_CLOSE;
  rc = p->client_data(c, data, len, &used);
  if (rc != PHASE_CLOSE && c->ex != NULL && spill_keep(c->ex, data + used, len - used) != 0)
    rc = PHASE_CLOSE;
  return rc;
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  const struct phase *p = phase_of(c);

  if (nread == 0)
    return;
  c->running = true;
  if (nread < 0) {
    c->cli.eof = true; /* nothing more comes from the client */
    run(c, p->client_end != NULL ? p->client_end(c, (int)nread) : PHASE_CLOSE);
    return;
  }
  metrics_add(METRIC_BYTES_CLIENT, (uint64_t)nread);
  run(c, take_input(c, buf->base, (size_t)nread));
}

static void upstream_connected(void *owner, struct upstream *up, int status) {
  conn_resume(owner, status);
}

static void upstream_read(void *owner, struct upstream *up, ssize_t nread, const char *data) {
  struct conn *c = owner;
  const struct phase *p = phase_of(c);

  if (nread > 0)
    metrics_add(METRIC_BYTES_UPSTREAM, (uint64_t)nread);
  if (up == c->kept) { /* an idle connection must stay silent: data or EOF retires it */
    c->kept = NULL;
    upstream_close(up);
    return;
  }
  c->running = true;
  if (nread < 0)
    run(c, p->upstream_end != NULL ? p->upstream_end(c, (int)nread) : PHASE_CLOSE);
  else
    run(c, p->upstream_data != NULL ? p->upstream_data(c, data, (size_t)nread) : PHASE_CLOSE);
}

static void upstream_drained(void *owner, struct upstream *up, int status) {
  struct conn *c = owner;
  const struct phase *p = phase_of(c);

  if (up == c->kept) {
    if (status < 0) {
      c->kept = NULL;
      upstream_close(up);
    }
    return;
  }
  if (status < 0 && status != UV_ECANCELED) {
    c->running = true;
    run(c, p->upstream_end != NULL ? p->upstream_end(c, status) : PHASE_CLOSE);
    return;
  }
  drained(c);
}

static uv_buf_t upstream_buffer(const void *owner) {
  const struct conn *c = owner;
  return relays_bytes(c) || streams_response(c)
             ? endpoint_relay_buffer(&c->cli, c->srv->cfg->limits.buffer_high)
             : endpoint_read_buffer();
}

static const struct upstream_events upstream_events = {
    .connected = upstream_connected,
    .read = upstream_read,
    .drained = upstream_drained,
    .buffer = upstream_buffer,
};

/* ---- what the phases ask ------------------------------------------------------- */

int conn_write_client(struct conn *c, const char *data, size_t len) {
  int rc = endpoint_write(&c->cli, data, len);
  if (rc != 0)
    log_diag(LOG_INFO, c->id, "client write failed: %s", err_str(rc));
  return rc;
}

int conn_mode(const struct conn *c) {
  return c->lst->mode;
}

bool conn_transparent(const struct conn *c) {
  return c->lst->mode != LISTEN_PROXY;
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

struct upstream *conn_take_upstream(struct conn *c, const char *key) {
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

void conn_use_upstream(struct conn *c, struct upstream *up) {
  c->up = up;
  upstream_adopt(up, &upstream_events, c);
}

int conn_dial(struct conn *c, const struct sockaddr *addr, const char *key) {
  int err = 0;
  c->up = upstream_dial(c->srv, addr, c->ex->addrs, key, c->srv->cfg->timeouts.connect,
                        &upstream_events, c, &err);
  return c->up != NULL ? 0 : err;
}

int conn_take_client(struct conn *c, const struct sockaddr *addr) {
  if (addr != NULL) {
    memset(&c->peer, 0, sizeof(c->peer));
    memcpy(&c->peer, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    c->relayed = true;
  }
  c->capped = true; /* counted even when refused: admit_release follows */
  return admit_client_add(&c->srv->admit, &c->peer.sa);
}

enum phase_rc conn_refuse_client(struct conn *c) {
  char peer[64];
  if (conn_transparent(c)) {
    log_diag(LOG_INFO, c->id, "%s on %s: client address is not allowed; closing",
             log_fmt_addr(&c->peer.sa, peer, sizeof(peer)), c->lst->name);
    return PHASE_CLOSE;
  }
  c->close_after = true;
  c->ex->req_done = true; /* nothing of a request will be read */
  return conn_answer(c, ANSWER_HTTP, 403, "http_request_denied",
                     "client address is not allowed to use this proxy");
}

bool conn_client_allowed(const struct conn *c) {
  struct sockaddr_in tmp; /* a v4 client on a dual-stack socket is judged as v4 */
  const struct sockaddr *sa = sockaddr_unmapped(&c->peer.sa, &tmp);
  const uint8_t *addr = sa->sa_family == AF_INET
                            ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr
                            : (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  return netmatch_lookup(c->srv->cfg->clients, sa->sa_family, addr, NULL) != NULL;
}

/* ---- LINGER -------------------------------------------------------------------- */

static void on_linger_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->handle->data;
  /* Nothing left to drain once the client has closed its side too. */
  if (c->state == CONN_ST_LINGER && (c->cli.eof || status < 0))
    conn_close(c);
}

static enum phase_rc linger_enter(struct conn *c) {
  conn_drop_upstream(c);
  conn_release_kept(c);
  return endpoint_shutdown(&c->cli, on_linger_shutdown) == 0 ? PHASE_MORE : PHASE_CLOSE;
}

static enum phase_rc linger_data(struct conn *c, const char *data, size_t len, size_t *used) {
  *used = len; /* read so that the client's data does not turn our FIN into a reset */
  return PHASE_MORE;
}

static uint64_t linger_deadline(const struct conn *c) {
  return c->since + LINGER_MS;
}

const struct phase conn_linger_phase = {
    .enter = linger_enter,
    .client_data = linger_data,
    .deadline = linger_deadline,
};

/* ---- accept ------------------------------------------------------------- */

static struct conn *conn_new(struct listener *lst, const struct phase *const *phases) {
  struct server *srv = lst->srv;
  struct conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  if ((c->ex = new_exchange(srv)) == NULL) {
    free(c);
    return NULL;
  }
  /* The first state: behind a load balancer, its PROXY protocol header;
   * else a transparent connection starts by sniffing. */
  c->state = lst->proxy_protocol         ? CONN_ST_PROXYHDR
             : lst->mode == LISTEN_PROXY ? CONN_ST_HEAD
                                         : CONN_ST_SNIFF;
  c->phases = phases;
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

void conn_accept(struct listener *lst, const struct phase *const *phases) {
  struct server *srv = lst->srv;
  struct conn *c = conn_new(lst, phases);
  const struct phase *p;
  int len = sizeof(c->peer), rc;

  if (c == NULL) {
    log_diag(LOG_ERR, 0, "out of memory accepting a connection");
    return;
  }
  if ((rc = uv_accept((uv_stream_t *)&lst->tcp, (uv_stream_t *)&c->cli.tcp)) != 0) {
    log_diag(LOG_WARN, 0, "accept on %s: %s", lst->name, err_str(rc));
    conn_close(c);
    return;
  }
  metrics_count_accept((size_t)(lst - srv->listeners));
  uv_tcp_getpeername(&c->cli.tcp, &c->peer.sa, &len);
  uv_tcp_nodelay(&c->cli.tcp, 1);
  c->since = uv_now(srv->loop);
  c->running = true;
  /* Behind a load balancer the peer is the balancer: the client, its cap
   * and its clients: entry wait for the header (PROXYHDR). */
  if (!lst->proxy_protocol && conn_take_client(c, NULL) != 0) {
    run(c, PHASE_CLOSE); /* over the per-client cap; proxy/admit logged it */
    return;
  }
  if (!lst->proxy_protocol && !conn_client_allowed(c)) {
    run(c, conn_refuse_client(c));
    return;
  }
  p = phase_of(c);
  run(c, p->enter != NULL ? p->enter(c) : PHASE_MORE);
}

/* ---- what the worker asks of its connections ------------------------------- */

/* A connection between requests: nothing read of the next one, nothing
 * owed. Closing it loses nothing. */
static bool is_idle(const struct conn *c) {
  return c->state == CONN_ST_HEAD && c->ex->spill_len == 0 &&
         (c->ex->req == NULL || !http1_in_message(c->ex->req));
}

void conn_close_all(struct server *srv, bool idle_only) {
  for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
    next = c->next;
    if (!idle_only || is_idle(c))
      conn_close(c);
  }
}

void conn_count(const struct server *srv, struct server_stats *out) {
  for (const struct conn *c = srv->conns; c != NULL; c = c->next) {
    size_t li = (size_t)(c->lst - srv->listeners);
    if (li < CONFIG_MAX_LISTEN)
      out->active[li]++;
    out->tunnels += c->state == CONN_ST_TUNNEL;
    out->nconns++;
  }
}

uint64_t conn_oldest(const struct server *srv) {
  uint64_t id = UINT64_MAX;
  for (const struct conn *c = srv->conns; c != NULL; c = c->next)
    if (c->id < id)
      id = c->id;
  return id;
}
