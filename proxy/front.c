/* The HTTP front end: request heads from explicit-proxy clients
 * (absolute-form requests and CONNECT) and from intercepted HTTP
 * connections (origin-form requests judged on their Host), request bodies
 * streamed towards the destination, and pipelining: the parser pauses at
 * every head and every message end, so each request is judged and routed
 * on its own, in order. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/normalise.h"
#include "proxy/conn-int.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

/* ---- parser callbacks (ctx is the conn) ----------------------------------- */

static int on_request_head(void *ctx, struct http_head *h) {
  struct conn *c = ctx;
  c->ex->head = h;
  return HTTP1_PAUSE; /* decided outside the parser, in handle_head() */
}

static int on_request_body(void *ctx, const char *data, size_t len) {
  struct conn *c = ctx;
  static const char crlf[] = "\r\n";
  char size[24];
  uv_buf_t bufs[3];

  if (c->ex->discard || c->up == NULL)
    return 0;
  /* A request body still arriving keeps the exchange alive. */
  conn_arm_timer(c, c->srv->cfg->timeouts.response);
  if (!c->ex->head->chunked)
    return endpoint_write(&c->up->ep, data, len) == 0 ? 0 : -1;
  bufs[0] = uv_buf_init(size, (unsigned)snprintf(size, sizeof(size), "%zx\r\n", len));
  bufs[1] = uv_buf_init((char *)data, (unsigned)len);
  bufs[2] = uv_buf_init((char *)crlf, 2);
  return endpoint_writev(&c->up->ep, bufs, 3) == 0 ? 0 : -1;
}

static int on_request_done(void *ctx) {
  struct conn *c = ctx;
  if (c->ex->discard) { /* the tail of a request answered locally */
    c->ex->discard = false;
    return HTTP1_CONTINUE;
  }
  c->ex->req_done = true;
  if (c->ex->head->chunked && c->up != NULL && endpoint_write(&c->up->ep, "0\r\n\r\n", 5) != 0)
    c->close_after = true;
  return HTTP1_PAUSE;
}

static const struct http1_callbacks request_cbs = {
    .on_head = on_request_head,
    .on_body = on_request_body,
    .on_done = on_request_done,
};

int front_init(struct conn *c) {
  if (c->ex->req == NULL &&
      (c->ex->req = http1_new(true, c->srv->cfg->limits.max_head, &request_cbs, c)) == NULL)
    return UV_ENOMEM;
  return 0;
}

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

/* Extracts and normalises the destination. Returns 0, or answers the
 * request with an error and returns -1. */
static int parse_target(struct conn *c) {
  const struct http_head *h = c->ex->head;
  const char *path = NULL;
  char detail[160];
  int rc;

  if (!conn_transparent(c) && !h->is_connect && h->target_len > 0 &&
      http_head_str(h, h->target)[0] == '/') {
    respond_error(c, 400, "http_request_error",
                  "origin-form request: configure this host as an HTTP proxy");
    return -1;
  }
  rc = conn_transparent(c) ? transparent_target(c, &path) : proxy_target(c, &path);
  if (rc != 0) {
    snprintf(detail, sizeof(detail), "bad request %s: %s",
             conn_transparent(c) && !h->is_connect ? "Host" : "target", err_str(rc));
    respond_error(c, 400, "http_request_error", detail);
    return -1;
  }
  free(c->ex->path);
  c->ex->path = NULL;
  if (path != NULL && (c->ex->path = strndup(path, c->ex->path_len)) == NULL) {
    respond_error(c, 500, "proxy_internal_error", "out of memory");
    return -1;
  }
  host_format(&c->ex->dest, c->ex->authority, sizeof(c->ex->authority));
  if (!h->is_connect && c->ex->dest.port == 80) /* the Host field omits the default port */
    *strrchr(c->ex->authority, ':') = '\0';
  return 0;
}

/* ---- heads and input ----------------------------------------------------------- */

/* Forgets everything about the previous exchange: nothing of it may leak
 * into what the next one decides or logs. The one place this is done. */
static void reset_exchange(struct conn *c) {
  memset(&c->ex->dest, 0, sizeof(c->ex->dest));
  memset(&c->ex->verdict, 0, sizeof(c->ex->verdict));
  c->ex->decided_by = NULL;
  c->ex->dst_mismatch = false;
  c->ex->authority[0] = '\0';
  free(c->ex->addrs);
  c->ex->addrs = NULL;
  c->ex->head_timing = false;
  c->ex->req_done = c->ex->resp_started = c->ex->resp_done = c->ex->interim = false;
}

static void handle_head(struct conn *c) {
  struct http_head *h = c->ex->head;
  uv_timer_stop(&c->timer);
  reset_exchange(c);
  c->ex->head = h;
  c->close_after = !h->keep_alive;
  c->ex->relay = h->is_connect ? CONN_RELAY_TUNNEL : CONN_RELAY_HTTP;
  conn_request_start(c);
  if (parse_target(c) != 0)
    return;
  if (http_head_via_has(c->ex->head, c->srv->via_host)) {
    respond_error(c, 403, "http_request_denied", "forwarding loop: request already passed Embargo");
    return;
  }
  route_start(c);
}

static void handle_parse_error(struct conn *c) {
  char detail[160];
  snprintf(detail, sizeof(detail), "%s", http1_error_reason(c->ex->req));
  c->close_after = true;
  respond_error(c, http1_error_status(c->ex->req), "http_request_error", detail);
}

void front_parse(struct conn *c, const char *data, size_t len, bool from_spill) {
  size_t used = 0;
  /* Paused at the end of a request, the parser takes nothing: a request
   * pipelined behind it waits in the spill buffer. */
  enum http1_status st = http1_feed(c->ex->req, data, len, &used);

  if (c->state == CONN_ST_CLOSED || conn_input_consumed(c, data, len, used, from_spill) != 0)
    return;
  if (st == HTTP1_ERROR) {
    c->ex->spill_len = 0;
    handle_parse_error(c);
    return;
  }
  if (c->state == CONN_ST_HEAD && !c->ex->head_timing && http1_in_message(c->ex->req)) {
    c->ex->head_timing = true;
    conn_arm_timer(c, c->srv->cfg->timeouts.request_head);
  }
  if (st == HTTP1_OK || c->state != CONN_ST_HEAD)
    return;
  /* Paused at a head (or upgraded for CONNECT): decide on it. */
  handle_head(c);
}

bool front_in_head(const struct conn *c) {
  return c->ex->head_timing;
}

void front_process_spill(struct conn *c) {
  if (c->ex->spill_len > 0)
    front_parse(c, c->ex->spill + c->ex->spill_off, c->ex->spill_len, true);
  if (c->state != CONN_ST_CLOSED)
    conn_update_reading(c);
}

void front_next_request(struct conn *c) {
  conn_set_state(c, CONN_ST_HEAD);
  c->ex->discard = !c->ex->req_done; /* a locally answered request: its end is still to parse */
  reset_exchange(c);
  c->ex->head = NULL; /* set again by the next head */
  conn_arm_timer(c, c->srv->cfg->timeouts.idle);
  http1_resume(c->ex->req);
  front_resume_request(c);
}

void front_resume_request(struct conn *c) {
  enum conn_state st = c->state;
  /* llhttp completes a message without a body only when it is next run. */
  if (c->ex->spill_len == 0)
    front_parse(c, "", 0, false);
  if (c->state == st)
    front_process_spill(c);
}

void front_eof(struct conn *c) {
  c->cli.eof = true;
  switch (c->state) {
  case CONN_ST_FORWARD:
    if (c->ex->req_done) { /* half-closed after its request: finish the response */
      c->close_after = true;
      conn_update_reading(c);
      return;
    }
    break;
  case CONN_ST_HEAD:
    if (http1_in_message(c->ex->req))
      log_diag(LOG_INFO, c->id, "client closed in the middle of a request head");
    break;
  default:
    break;
  }
  conn_close(c);
}
