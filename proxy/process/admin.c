/* The admin endpoint: listener, connections, routing and the pages. It
 * runs on the main thread's loop; figures of the workers are gathered from
 * their loops when a page needs them. */
#include "proxy/process/admin.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "config/config.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/base/freshness.h"
#include "proxy/base/http1.h"
#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/process/admingate.h"
#include "proxy/process/probes.h"
#include "proxy/process/workers.h"
#include "proxy/worker/server.h"

#define ADMIN_MAX_HEAD       8192
#define ADMIN_MAX_CONNS      64
#define ADMIN_MAX_PER_CLIENT 8    /* connections of one client address */
#define ADMIN_HEAD_MS        3000 /* a request head must arrive in this time */
#define ADMIN_LINGER_MS      2000 /* after the response: wait for the client's FIN */

struct admin_conn;

struct admin {
  struct workers *ws; /* borrowed: the process (main thread) */
  uv_tcp_t tcp;
  struct sockaddr_storage addr;
  struct admin_conn *conns;
  size_t nconns;
  int handles; /* the listener plus each connection; freed at 0 */
  bool closing;
};

/* One admin client: one request, one response, then close. */
struct admin_conn {
  struct admin *adm;
  struct admin_conn *prev, *next;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown;
  uv_write_t write;
  struct obuf out; /* the response, alive until the write callback */
  struct http1 *req;
  struct http_head *head;              /* set by on_head; the parser's */
  struct sockaddr_storage peer, local; /* the client's address, and the endpoint's it reached */
  int handles;
  bool answered; /* a response is being written, or was */
  bool written;  /* it was: the connection only waits for the client's FIN */
  bool closing;
  char rbuf[4096];
};

static void admin_release(struct admin *a) {
  if (--a->handles == 0)
    free(a);
}

static void on_conn_closed(uv_handle_t *h) {
  struct admin_conn *ac = h->data;
  if (--ac->handles > 0)
    return;
  http1_free(ac->req);
  obuf_free(&ac->out);
  admin_release(ac->adm);
  free(ac);
}

static void conn_end(struct admin_conn *ac) {
  struct admin *a = ac->adm;
  if (ac->closing)
    return;
  ac->closing = true;
  if (ac->prev != NULL)
    ac->prev->next = ac->next;
  else
    a->conns = ac->next;
  if (ac->next != NULL)
    ac->next->prev = ac->prev;
  a->nconns--;
  uv_close((uv_handle_t *)&ac->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&ac->timer, on_conn_closed);
}

/* ---- pages ---------------------------------------------------------------- */

static void json_str(struct obuf *out, const char *s) {
  char buf[1600];
  size_t n = log_json_escape(buf, 0, sizeof(buf), s, strlen(s), 256);
  obuf_add(out, "\"", 1);
  obuf_add(out, buf, n);
  obuf_add(out, "\"", 1);
}

static void json_time(struct obuf *out, int64_t t) {
  char ts[40];
  if (t == POLICY_TIME_NEVER) {
    obuf_add(out, "null", 4);
    return;
  }
  rfc3339_format(t, ts, sizeof(ts));
  json_str(out, ts);
}

static void policy_vendor_json(struct obuf *out, const struct vendor *v, int64_t now) {
  char age[32];
  struct freshness f;
  freshness_of(v, now, &f);
  obuf_add(out, "{\"id\":", 6);
  json_str(out, v->id);
  obuf_add(out, ",\"name\":", 8);
  json_str(out, v->name != NULL ? v->name : v->id);
  obuf_add(out, ",\"source\":", 10);
  json_str(out, v->where.file != NULL ? v->where.file : "");
  obuf_add(out, ",\"reviewed\":", 12);
  if (v->reviewed != 0)
    json_time(out, v->reviewed);
  else
    obuf_add(out, "null", 4);
  freshness_duration_text(v->max_age, age, sizeof(age));
  obuf_printf(out, ",\"max_age\":");
  if (v->max_age != 0)
    json_str(out, age);
  else
    obuf_add(out, "null", 4);
  if (f.known)
    obuf_printf(out, ",\"age_seconds\":%lld", (long long)f.age);
  else
    obuf_add(out, ",\"age_seconds\":null", 19);
  obuf_add(out, ",\"stale_since\":", 15);
  if (f.stale)
    json_time(out, f.stale_from);
  else
    obuf_add(out, "null", 4);
  obuf_printf(out, ",\"stale\":%s,\"categories\":[", f.stale ? "true" : "false");
  for (size_t c = 0; c < v->ncategories; c++) {
    const struct category *cat = &v->categories[c];
    obuf_add(out, c ? ",{\"name\":" : "{\"name\":", c ? 9 : 8);
    json_str(out, cat->name);
    obuf_add(out, ",\"cutoff\":", 10);
    json_time(out, cat->cutoff);
    obuf_printf(out, ",\"in_force\":%s,\"before\":\"%s\",\"after\":\"%s\",\"action_now\":\"%s\"}",
                now >= cat->cutoff ? "true" : "false", action_name(cat->before),
                action_name(cat->after),
                action_name(now >= cat->cutoff ? cat->after : cat->before));
  }
  obuf_add(out, "]}", 2);
}

static void page_policy(struct obuf *out, const struct workers *ws) {
  const struct policy *p = ws->shared.cfg->policy;
  int64_t now = server_shared_now(&ws->shared);
  size_t i;
  obuf_add(out, "{\"version\":", 11);
  json_str(out, policy_version(p));
  obuf_add(out, ",\"loaded_at\":", 13);
  json_time(out, ws->policy_loaded_at);
  obuf_add(out, ",\"policy_time\":", 15);
  json_time(out, now);
  obuf_add(out, ",\"config\":", 10);
  json_str(out, ws->shared.cfg->source);
  obuf_printf(out, ",\"monitor\":%s,\"vendors\":[", policy_monitor(p) ? "true" : "false");
  for (i = 0; i < policy_vendor_count(p); i++) {
    if (i > 0)
      obuf_add(out, ",", 1);
    policy_vendor_json(out, policy_vendor_at(p, i), now);
  }
  obuf_add(out, "],\"sources\":[", 13);
  for (i = 0; i < policy_source_count(p); i++) {
    const struct policy_source *s = policy_source_at(p, i);
    obuf_add(out, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
    json_str(out, s->name);
    obuf_printf(out, ",\"sha256\":\"%s\"}", s->sha256);
  }
  obuf_printf(out,
              "],\"entries\":{\"host\":%zu,\"network\":%zu,\"ja4\":%zu,\"exception\":%zu},"
              "\"last_reload_error\":",
              policy_host_count(p), policy_network_count(p), policy_ja4_count(p),
              policy_exception_count(p));
  if (ws->reload_error[0] != '\0')
    json_str(out, ws->reload_error);
  else
    obuf_add(out, "null", 4);
  obuf_add(out, "}\n", 2);
}

/* ---- requests ------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the client's FIN, or the linger timer, ends the connection */
}

static void on_written(uv_write_t *req, int status) {
  struct admin_conn *ac = req->data;
  obuf_free(&ac->out);
  ac->written = true;
  if (status < 0 || ac->closing) {
    conn_end(ac);
    return;
  }
  if (uv_shutdown(&ac->shutdown, (uv_stream_t *)&ac->tcp, on_shutdown) != 0)
    conn_end(ac);
}

static void on_timeout(uv_timer_t *t) {
  conn_end(t->data);
}

static void respond(struct admin_conn *ac, int status, const char *reason, const char *ctype,
                    const char *extra, const struct obuf *body) {
  struct obuf *out = &ac->out;
  uv_buf_t buf;
  ac->answered = true;
  obuf_printf(out,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
              status, reason, ctype, body->len, extra != NULL ? extra : "");
  obuf_add(out, body->data, body->len);
  if (out->failed) {
    conn_end(ac);
    return;
  }
  uv_timer_start(&ac->timer, on_timeout, ADMIN_LINGER_MS, 0);
  buf = uv_buf_init(out->data, (unsigned)out->len);
  ac->write.data = ac;
  if (uv_write(&ac->write, (uv_stream_t *)&ac->tcp, &buf, 1, on_written) != 0)
    conn_end(ac);
}

static void respond_text(struct admin_conn *ac, int status, const char *reason, const char *extra,
                         const char *text) {
  struct obuf body = {0};
  obuf_add(&body, text, strlen(text));
  respond(ac, status, reason, "text/plain; charset=utf-8", extra, &body);
  obuf_free(&body);
}

/* Compares without leaking, through timing, how much of a guess was right. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen) {
  unsigned char diff = alen != blen;
  for (size_t i = 0; i < alen && i < blen; i++)
    diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static bool authorised(const struct admin_conn *ac, const struct http_head *h) {
  const char *token = ac->adm->ws->shared.cfg->admin.token;
  int i;
  if (token[0] == '\0')
    return true;
  if ((i = http_head_find(h, "Authorization")) < 0 || h->fields[i].value_len < 7 ||
      strncasecmp(http_head_str(h, h->fields[i].value), "Bearer ", 7) != 0)
    return false;
  return same_secret(http_head_str(h, h->fields[i].value) + 7, h->fields[i].value_len - 7, token,
                     strlen(token));
}

/* Answers a request the gate refuses (proxy/admingate.c); true if it did. */
static bool gate_refuses(struct admin_conn *ac, const struct http_head *h) {
  switch (
      admingate_check(h, (const struct sockaddr *)&ac->local, &ac->adm->ws->shared.cfg->admin)) {
  case ADMINGATE_OK: return false;
  case ADMINGATE_NO_HOST:
    respond_text(ac, 400, "Bad Request", NULL, "a Host header is required\n");
    break;
  case ADMINGATE_FOREIGN_HOST:
    respond_text(ac, 421, "Misdirected Request", NULL,
                 "Host does not name this endpoint: use its address, localhost on loopback, or "
                 "a name listed in admin.names\n");
    break;
  case ADMINGATE_FOREIGN_ORIGIN:
    respond_text(ac, 403, "Forbidden", NULL, "requests from another origin are refused\n");
    break;
  case ADMINGATE_SIMPLE_POST:
    respond_text(ac, 415, "Unsupported Media Type", NULL,
                 "POST needs Content-Type: application/json\n");
    break;
  }
  return true;
}

static void do_reload(struct admin_conn *ac) {
  char err[700];
  struct obuf body = {0};
  int rc = ac->adm->ws->ops->reload(ac->adm->ws, err, sizeof(err));
  obuf_printf(&body, "{\"result\":\"%s\",\"policy_version\":\"%s\",\"%s\":",
              rc == 0 ? "reloaded" : "rejected", policy_version(ac->adm->ws->shared.cfg->policy),
              rc == 0 ? "detail" : "error");
  json_str(&body, err);
  obuf_add(&body, "}\n", 2);
  respond(ac, rc == 0 ? 200 : 422, rc == 0 ? "OK" : "Unprocessable Content", "application/json",
          NULL, &body);
  obuf_free(&body);
}

/* /healthz: liveness (proxy/probes.c). */
static void page_healthz(struct admin_conn *ac) {
  char reason[600], text[700];
  bool live = probes_live(ac->adm->ws, reason, sizeof(reason));
  snprintf(text, sizeof(text), live ? "ok\n" : "not live: %s\n", reason);
  respond_text(ac, live ? 200 : 503, live ? "OK" : "Service Unavailable", NULL, text);
}

/* /readyz: readiness, then the warnings that do not take it away. */
static void page_readyz(struct admin_conn *ac) {
  struct obuf body = {0}, warnings = {0};
  char reason[1200];
  bool ready = probes_ready(ac->adm->ws, reason, sizeof(reason), &warnings);
  if (ready)
    obuf_add(&body, "ready\n", 6);
  else
    obuf_printf(&body, "not ready: %s\n", reason);
  if (warnings.len > 0)
    obuf_add(&body, warnings.data, warnings.len);
  respond(ac, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", "text/plain; charset=utf-8",
          NULL, &body);
  obuf_free(&warnings);
  obuf_free(&body);
}

static void do_get(struct admin_conn *ac, const char *path) {
  struct workers *ws = ac->adm->ws;
  struct metrics_view *view;
  struct obuf body = {0};
  if (strcmp(path, "/healthz") == 0) {
    page_healthz(ac);
  } else if (strcmp(path, "/readyz") == 0) {
    page_readyz(ac);
  } else if (strcmp(path, "/metrics") == 0) {
    if ((view = malloc(sizeof(*view))) == NULL || ws->ops->metrics_view(ws, view) != 0) {
      free(view);
      respond_text(ac, 503, "Service Unavailable", NULL, "out of memory\n");
      return;
    }
    metrics_render(&body, view);
    free(view);
    respond(ac, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, &body);
  } else if (strcmp(path, "/policy") == 0) {
    page_policy(&body, ws);
    respond(ac, 200, "OK", "application/json", NULL, &body);
  } else {
    respond_text(ac, 404, "Not Found", NULL, "not found\n");
  }
  obuf_free(&body);
}

static void handle_request(struct admin_conn *ac) {
  const struct http_head *h = ac->head;
  char path[64];
  size_t n = h->target_len;
  const char *target = http_head_str(h, h->target);
  const char *q = memchr(target, '?', n);
  bool get = strcmp(h->method, "GET") == 0, post = strcmp(h->method, "POST") == 0;

  if (q != NULL)
    n = (size_t)(q - target);
  snprintf(path, sizeof(path), "%.*s", (int)(n < sizeof(path) ? n : sizeof(path) - 1), target);
  if (gate_refuses(ac, h))
    return;
  if (!authorised(ac, h)) {
    respond_text(ac, 401, "Unauthorized", "WWW-Authenticate: Bearer realm=\"embargo\"\r\n",
                 "a bearer token is required\n");
    return;
  }
  if (strcmp(path, "/reload") == 0) {
    if (post)
      do_reload(ac);
    else
      respond_text(ac, 405, "Method Not Allowed", "Allow: POST\r\n", "use POST\n");
    return;
  }
  if (get)
    do_get(ac, path);
  else
    respond_text(ac, 405, "Method Not Allowed", "Allow: GET\r\n", "use GET\n");
}

static int on_head(void *ctx, struct http_head *head) {
  struct admin_conn *ac = ctx;
  ac->head = head;
  return HTTP1_PAUSE;
}

static int on_body(void *ctx, const char *data, size_t len) {
  return HTTP1_CONTINUE; /* no page takes a body */
}

static int on_done(void *ctx) {
  return HTTP1_PAUSE;
}

static const struct http1_callbacks admin_cbs = {on_head, on_body, on_done};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct admin_conn *ac = h->data;
  *buf = uv_buf_init(ac->rbuf, sizeof(ac->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct admin_conn *ac = s->data;
  size_t used = 0;
  enum http1_status st;
  if (nread < 0) {
    conn_end(ac);
    return;
  }
  if (nread == 0 || ac->answered)
    return; /* after the response, input is read and dropped until FIN */
  st = http1_feed(ac->req, buf->base, (size_t)nread, &used);
  if (st == HTTP1_ERROR) {
    respond_text(ac, http1_error_status(ac->req), "Bad Request", NULL, "bad request\n");
    return;
  }
  if (ac->head != NULL)
    handle_request(ac);
}

static bool same_client(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* The connection other than FRESH (of FRESH's client only, with
 * SAME_CLIENT) to close for room: the oldest still waiting for its request,
 * else the oldest whose response is written and which only waits for the
 * client's FIN (a client that never closes holds it as long as the linger
 * timer allows, like an idle one); NULL when every other one is being
 * written to. *COUNT receives how many connections that client has besides
 * FRESH. The list is newest first. */
static struct admin_conn *oldest_idle(struct admin *a, const struct admin_conn *fresh,
                                      bool same_client_only, size_t *count) {
  struct admin_conn *waiting = NULL, *lingering = NULL;
  *count = 0;
  for (struct admin_conn *c = a->conns; c != NULL; c = c->next) {
    if (c == fresh || (same_client_only && !same_client(&c->peer, &fresh->peer)))
      continue;
    (*count)++;
    if (!c->answered)
      waiting = c;
    else if (c->written)
      lingering = c;
  }
  return waiting != NULL ? waiting : lingering;
}

/* Makes room for FRESH (already counted): beyond ADMIN_MAX_PER_CLIENT
 * connections of its client, or ADMIN_MAX_CONNS in all, an idle one
 * (oldest_idle) is closed, so a probe always gets in while neither idle
 * sockets nor answered ones left open can hold the endpoint. False when
 * nothing could be closed (every other connection is being written to):
 * FRESH must go. */
static bool make_room(struct admin *a, struct admin_conn *fresh) {
  size_t count;
  struct admin_conn *victim = oldest_idle(a, fresh, true, &count);
  if (count >= ADMIN_MAX_PER_CLIENT) {
    if (victim == NULL)
      return false;
    conn_end(victim);
  }
  if (a->nconns > ADMIN_MAX_CONNS) {
    if ((victim = oldest_idle(a, fresh, false, &count)) == NULL)
      return false;
    conn_end(victim);
  }
  return true;
}

static void on_connection(uv_stream_t *s, int status) {
  struct admin *a = s->data;
  struct admin_conn *ac;
  int len = sizeof(ac->peer);
  if (status < 0 || a->closing)
    return;
  if ((ac = calloc(1, sizeof(*ac))) == NULL ||
      (ac->req = http1_new(true, ADMIN_MAX_HEAD, &admin_cbs, ac)) == NULL) {
    free(ac);
    return;
  }
  ac->adm = a;
  uv_tcp_init(s->loop, &ac->tcp);
  uv_timer_init(s->loop, &ac->timer);
  ac->tcp.data = ac->timer.data = ac;
  ac->handles = 2;
  a->handles++;
  ac->next = a->conns;
  if (a->conns != NULL)
    a->conns->prev = ac;
  a->conns = ac;
  a->nconns++;
  if (uv_accept(s, (uv_stream_t *)&ac->tcp) != 0 ||
      uv_tcp_getpeername(&ac->tcp, (struct sockaddr *)&ac->peer, &len) != 0 ||
      (len = sizeof(ac->local),
       uv_tcp_getsockname(&ac->tcp, (struct sockaddr *)&ac->local, &len)) != 0 ||
      !make_room(a, ac)) {
    conn_end(ac);
    return;
  }
  uv_timer_start(&ac->timer, on_timeout, ADMIN_HEAD_MS, 0);
  uv_read_start((uv_stream_t *)&ac->tcp, on_alloc, on_read);
}

static void on_listener_closed(uv_handle_t *h) {
  admin_release(h->data);
}

int admin_open(struct workers *ws, struct admin **out, char *err, size_t errsize) {
  const struct config_admin *cfg = &ws->shared.cfg->admin;
  struct admin *a = calloc(1, sizeof(*a));
  int rc, len = sizeof(a->addr);
  *out = a;
  if (a == NULL) {
    snprintf(err, errsize, "out of memory");
    return UV_ENOMEM;
  }
  a->ws = ws;
  a->handles = 1;
  uv_tcp_init(ws->loop, &a->tcp);
  a->tcp.data = a;
  if ((rc = uv_tcp_bind(&a->tcp, (const struct sockaddr *)&cfg->listen,
                        cfg->listen.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&a->tcp, 64, on_connection)) != 0) {
    snprintf(err, errsize, "admin.listen: cannot listen on %s: %s", cfg->listen_text,
             uv_strerror(rc));
    return rc;
  }
  uv_tcp_getsockname(&a->tcp, (struct sockaddr *)&a->addr, &len);
  return 0;
}

const struct sockaddr *admin_address(const struct admin *a) {
  return (const struct sockaddr *)&a->addr;
}

void admin_close(struct admin *a) {
  if (a == NULL || a->closing)
    return;
  a->closing = true;
  while (a->conns != NULL)
    conn_end(a->conns);
  uv_close((uv_handle_t *)&a->tcp, on_listener_closed);
}
