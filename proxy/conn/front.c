/* HEAD, the HTTP front end: request heads from explicit-proxy clients
 * (absolute-form requests and CONNECT) and from intercepted HTTP
 * connections (origin-form requests judged on their Host). The parser
 * pauses at every head, so each request is judged and routed on its own,
 * in order; a head hands the exchange to ROUTE, a bad one to RESPONDING.
 * Between requests it holds the connection idle (timeouts.idle), and a
 * started head must be complete within timeouts.request_head. */
#include "proxy/conn/front.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/normalise.h"
#include "proxy/base/dns.h"
#include "proxy/base/log.h"
#include "proxy/conn/conn.h"
#include "proxy/worker/server.h"

/* ---- parser callbacks (ctx is the conn) ----------------------------------- */

static int on_head(void *ctx, struct http_head *h) {
  struct conn *c = ctx;
  c->ex->head = h;
  return HTTP1_PAUSE; /* decided outside the parser, in handle_head() */
}

/* A body in HEAD belongs to a request answered locally: it is dropped. */
static int on_body(void *ctx, const char *data, size_t len) {
  return 0;
}

static int on_done(void *ctx) {
  struct conn *c = ctx;
  if (c->ex->discard) { /* the tail of a request answered locally */
    c->ex->discard = false;
    return HTTP1_CONTINUE;
  }
  c->ex->req_done = true;
  return HTTP1_PAUSE;
}

static const struct http1_callbacks head_cbs = {
    .on_head = on_head,
    .on_body = on_body,
    .on_done = on_done,
};

/* ---- request targets --------------------------------------------------------- */

/* An intercepted request names its destination in Host (origin-form) or,
 * from a client that believes it talks to a proxy, in its target
 * (absolute-form). The port defaults to the original destination's. */
static int transparent_target(struct conn *c, const char **path) {
  const struct http_head *h = c->ex->head;
  const char *target = http_head_str(h, h->target);
  uint16_t port = ntohs(c->ex->orig_dst.ss_family == AF_INET6
                            ? ((const struct sockaddr_in6 *)&c->ex->orig_dst)->sin6_port
                            : ((const struct sockaddr_in *)&c->ex->orig_dst)->sin_port);
  int host = http_head_find(h, "host");

  if (h->is_connect)
    return EMB_EBADURL;
  if (h->target_len > 0 && target[0] != '/' && target[0] != '*')
    return url_parse_absolute(target, h->target_len, &c->ex->dest, path, &c->ex->path_len);
  if (host < 0)
    return EMB_EBADHOST;
  *path = target;
  c->ex->path_len = h->target_len;
  return authority_parse(http_head_str(h, h->fields[host].value), h->fields[host].value_len, port,
                         &c->ex->dest);
}

/* An explicit proxy's request: CONNECT authority or absolute-form URL. */
static int proxy_target(struct conn *c, const char **path) {
  const struct http_head *h = c->ex->head;
  const char *target = http_head_str(h, h->target);

  if (h->is_connect) {
    /* authority-form must carry a port (RFC 9110 9.3.6). */
    const char *colon = memrchr(target, ':', h->target_len);
    return colon == NULL || colon == target + h->target_len - 1
               ? EMB_EBADPORT
               : authority_parse(target, h->target_len, 0, &c->ex->dest);
  }
  return url_parse_absolute(target, h->target_len, &c->ex->dest, path, &c->ex->path_len);
}

/* Extracts and normalises the destination. Returns true, or false with
 * *RC the move that answers the request with an error. */
static bool parse_target(struct conn *c, enum phase_rc *rc) {
  const struct http_head *h = c->ex->head;
  const char *path = NULL;
  char detail[160];
  int err;

  if (!conn_transparent(c) && !h->is_connect && h->target_len > 0 &&
      http_head_str(h, h->target)[0] == '/') {
    *rc = conn_answer(c, ANSWER_HTTP, 400, "http_request_error",
                      "origin-form request: configure this host as an HTTP proxy");
    return false;
  }
  err = conn_transparent(c) ? transparent_target(c, &path) : proxy_target(c, &path);
  if (err != 0) {
    snprintf(detail, sizeof(detail), "bad request %s: %s",
             conn_transparent(c) && !h->is_connect ? "Host" : "target", err_str(err));
    *rc = conn_answer(c, ANSWER_HTTP, 400, "http_request_error", detail);
    return false;
  }
  free(c->ex->path);
  c->ex->path = NULL;
  if (path != NULL && (c->ex->path = strndup(path, c->ex->path_len)) == NULL) {
    *rc = conn_answer(c, ANSWER_HTTP, 500, "proxy_internal_error", "out of memory");
    return false;
  }
  host_format(&c->ex->dest, c->ex->authority, sizeof(c->ex->authority));
  if (!h->is_connect && c->ex->dest.port == 80) /* the Host field omits the default port */
    *strrchr(c->ex->authority, ':') = '\0';
  return true;
}

/* ---- heads and input ----------------------------------------------------------- */

/* Forgets everything about the previous exchange: nothing of it may leak
 * into what the next one decides or logs. The one place this is done. */
static void reset_exchange(struct exchange *ex) {
  memset(&ex->dest, 0, sizeof(ex->dest));
  memset(&ex->verdict, 0, sizeof(ex->verdict));
  ex->decided_by = NULL;
  ex->dst_mismatch = false;
  ex->authority[0] = '\0';
  dns_answer_unref(ex->addrs);
  ex->addrs = NULL;
  ex->head_timing = false;
  ex->req_done = ex->resp_started = ex->resp_done = ex->interim = false;
}

/* A head is complete: its destination, then ROUTE. */
static enum phase_rc handle_head(struct conn *c) {
  struct http_head *h = c->ex->head;
  enum phase_rc rc;

  reset_exchange(c->ex);
  c->ex->head = h;
  c->close_after = !h->keep_alive;
  c->ex->relay = h->is_connect ? CONN_RELAY_TUNNEL : CONN_RELAY_HTTP;
  conn_request_start(c);
  if (!parse_target(c, &rc))
    return rc;
  if (http_head_via_has(c->ex->head, c->srv->via_host))
    return conn_answer(c, ANSWER_HTTP, 403, "http_request_denied",
                       "forwarding loop: request already passed Embargo");
  return conn_goto(c, CONN_ST_ROUTE);
}

/* A request the parser refused: its status (400, 431, 501) and reason. */
static enum phase_rc parse_error(struct conn *c) {
  char detail[160];
  snprintf(detail, sizeof(detail), "%s", http1_error_reason(c->ex->req));
  c->close_after = true;
  return conn_answer(c, ANSWER_HTTP, http1_error_status(c->ex->req), "http_request_error", detail);
}

static enum phase_rc head_data(struct conn *c, const char *data, size_t len, size_t *used) {
  /* Paused at the end of a request, the parser takes nothing: a request
   * pipelined behind it waits in the spill buffer. */
  enum http1_status st = http1_feed(c->ex->req, data, len, used);

  if (st == HTTP1_ERROR) {
    *used = len; /* nothing after a broken request is read */
    return parse_error(c);
  }
  if (!c->ex->head_timing && http1_in_message(c->ex->req)) {
    c->ex->head_timing = true; /* the head's deadline runs from its first byte */
    c->since = uv_now(c->srv->loop);
  }
  if (st == HTTP1_OK || c->ex->head == NULL)
    return PHASE_MORE;
  /* Paused at a head (or upgraded for CONNECT): decide on it. */
  return handle_head(c);
}

/* The connection's first request, or the next one on a kept-alive
 * connection (after FORWARD or RESPONDING). */
static enum phase_rc head_enter(struct conn *c) {
  struct exchange *ex = c->ex;
  size_t used = 0;

  if (ex->req == NULL) {
    ex->req = conn_request_parser(c, &head_cbs);
    return PHASE_MORE;
  }
  ex->discard = !ex->req_done; /* a locally answered request: its end is still to parse */
  reset_exchange(ex);
  ex->head = NULL; /* set again by the next head */
  http1_set_callbacks(ex->req, &head_cbs, c);
  http1_resume(ex->req);
  if (ex->spill_len > 0)
    return PHASE_MORE; /* the core feeds what waits */
  /* llhttp completes a message without a body only when it is next run. */
  return head_data(c, "", 0, &used);
}

static enum phase_rc head_end(struct conn *c, int status) {
  if (status == UV_EOF && http1_in_message(c->ex->req))
    log_diag(LOG_INFO, c->id, "client closed in the middle of a request head");
  return PHASE_CLOSE;
}

static enum phase_rc head_timeout(struct conn *c) {
  if (c->ex->head_timing) {
    c->close_after = true;
    return conn_answer(c, ANSWER_HTTP, 408, "http_request_error",
                       "request head not received in time");
  }
  if (c->cli.pending > 0) { /* still taking the last response */
    c->since = uv_now(c->srv->loop);
    return PHASE_WAIT;
  }
  return PHASE_CLOSE; /* idle keep-alive connection */
}

static uint64_t head_deadline(const struct conn *c) {
  const struct config_timeouts *t = &c->srv->cfg->timeouts;
  return c->since + (c->ex->head_timing ? t->request_head : t->idle);
}

const struct phase front_phase = {
    .enter = head_enter,
    .client_data = head_data,
    .client_end = head_end,
    .timeout = head_timeout,
    .deadline = head_deadline,
};
