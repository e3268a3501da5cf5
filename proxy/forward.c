/* HTTP forwarding: the request head rewritten towards the destination, the
 * response head rewritten towards the client, both bodies streamed, and the
 * end of an exchange (keep-alive, pooling, closing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/conn-int.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/upstream.h"


static const struct http1_callbacks forward_response_cbs;

void forward_start(struct conn *c) {
  struct upstream *up = c->up;
  struct obuf out = {0};
  int rc;

  if (c->state != CONN_ST_FORWARD)
    conn_set_state(c, CONN_ST_FORWARD);
  if (up->resp == NULL &&
      (up->resp = http1_new(false, c->srv->cfg->limits.max_head, &forward_response_cbs, up)) == NULL) {
    respond_error(c, 500, "proxy_internal_error", "out of memory");
    return;
  }
  http1_resume(up->resp); /* a reused connection's parser paused after its last response */
  http1_expect_head_response(up->resp, c->ex->head->is_head);
  http1_write_request(&out, c->ex->head, c->ex->path ? c->ex->path : "", c->ex->path_len, c->ex->authority, c->srv->via);
  rc = out.failed ? UV_ENOMEM : endpoint_write_now(&up->ep, out.data, out.len);
  obuf_free(&out);
  if (rc != 0) {
    respond_error(c, 502, "destination_unavailable", uv_strerror(rc));
    return;
  }
  conn_arm_timer(c, c->srv->cfg->timeouts.response);
  if (c->ex->req_done) { /* a retry: the request (without a body) was already read */
    conn_update_reading(c);
    return;
  }
  /* Stream the request body, starting with what is already buffered. */
  http1_resume(c->ex->req);
  front_resume_request(c);
}

/* ---- response parser callbacks (ctx: struct upstream) ----------------------- */

static enum http_framing choose_framing(const struct conn *c, const struct http_head *h) {
  if (c->ex->head->is_head || h->status == 204 || h->status == 304)
    return FRAMING_NONE;
  if (h->chunked)
    return c->ex->head->major == 1 && c->ex->head->minor >= 1 ? FRAMING_CHUNKED : FRAMING_CLOSE;
  if (h->has_length)
    return FRAMING_LENGTH;
  return FRAMING_CLOSE;
}

static int on_response_head(void *ctx, struct http_head *h) {
  struct upstream *up = ctx;
  struct conn *c = up->owner;
  struct obuf out = {0};
  int rc;

  if (h->status == 101) { /* Upgrade is stripped from requests; a switch is a protocol error */
    http1_set_error(up->resp, 502, "the destination switched protocols (101) unasked");
    return -1;
  }
  if (h->status < 200) {
    c->ex->interim = true;
    if (c->ex->head->minor == 0) /* HTTP/1.0 clients get no interim responses */
      return HTTP1_CONTINUE;
    http1_write_response(&out, h, FRAMING_NONE, true, c->srv->via);
  } else {
    c->ex->framing = choose_framing(c, h);
    c->ex->client_keep = !c->close_after && c->ex->framing != FRAMING_CLOSE;
    http1_write_response(&out, h, c->ex->framing, c->ex->client_keep, c->srv->via);
    c->ex->resp_started = true;
  }
  rc = out.failed ? -1 : endpoint_write(&c->cli, out.data, out.len);
  obuf_free(&out);
  if (rc != 0) {
    /* The head never reached the client: the exchange fails as a whole. */
    c->ex->resp_started = false;
    http1_set_error(up->resp, 502, "the response head could not be passed on");
    return -1;
  }
  return HTTP1_CONTINUE;
}

static int on_response_body(void *ctx, const char *data, size_t len) {
  struct upstream *up = ctx;
  struct conn *c = up->owner;
  static const char crlf[] = "\r\n";
  char size[24];
  uv_buf_t bufs[3];

  /* Nothing waits for the drain of body bytes the socket took at once:
   * the end of the response is decided on the parser's word. */
  if (c->ex->framing != FRAMING_CHUNKED)
    return endpoint_write_now(&c->cli, data, len) == 0 ? 0 : -1;
  bufs[0] = uv_buf_init(size, (unsigned)snprintf(size, sizeof(size), "%zx\r\n", len));
  bufs[1] = uv_buf_init((char *)data, (unsigned)len);
  bufs[2] = uv_buf_init((char *)crlf, 2);
  return endpoint_writev_now(&c->cli, bufs, 3) == 0 ? 0 : -1;
}

static int on_response_done(void *ctx) {
  struct upstream *up = ctx;
  struct conn *c = up->owner;

  if (c->ex->interim) { /* 1xx: the final response follows on the same connection */
    c->ex->interim = false;
    return HTTP1_CONTINUE;
  }
  if (c->ex->framing == FRAMING_CHUNKED && endpoint_write(&c->cli, "0\r\n\r\n", 5) != 0)
    c->ex->client_keep = false;
  c->ex->resp_done = true;
  return HTTP1_PAUSE;
}

static const struct http1_callbacks forward_response_cbs = {
    .on_head = on_response_head,
    .on_body = on_response_body,
    .on_done = on_response_done,
};

/* ---- response data ------------------------------------------------------- */

/* A pooled connection the destination closed just as it was reused fails
 * before any response byte; a request without a body can safely be sent
 * again on a new connection to the same, already checked address. */
static bool is_idempotent(const char *method) {
  static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
  size_t i;
  for (i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
    if (strcmp(method, safe[i]) == 0)
      return true;
  return false;
}

static bool retry_fresh(struct conn *c) {
  const struct http_head *h = c->ex->head;
  struct sockaddr_storage addr;

  /* The origin may have acted on the request before closing: only an
   * idempotent one (RFC 9110 9.2.2) may be sent again. */
  if (c->up == NULL || !c->up->reused || c->ex->resp_started || c->ex->interim || !c->ex->req_done ||
      h->chunked || (h->has_length && h->content_length > 0) || !is_idempotent(h->method))
    return false;
  memcpy(&addr, &c->up->addr, sizeof(c->up->addr));
  upstream_close(c->up);
  c->up = NULL;
  log_diag(LOG_DEBUG, c->id, "pooled connection to %s was closed; retrying", c->ex->authority);
  route_dial_address(c, (const struct sockaddr *)&addr);
  return true;
}

void forward_failed(struct conn *c, const char *why) {
  if (retry_fresh(c))
    return;
  log_diag(LOG_INFO, c->id, "response from %s failed: %s", c->ex->authority, why);
  if (!c->ex->resp_started) {
    c->close_after = true;
    respond_error(c, 502, "http_protocol_error", why);
  } else {
    conn_close(c); /* the client sees a truncated message, as it must */
  }
}

static void response_eof(struct conn *c, ssize_t nread) {
  if (nread == UV_EOF && c->up->resp != NULL && http1_finish(c->up->resp) == HTTP1_OK &&
      c->ex->resp_done) {
    forward_maybe_finish(c);
    return;
  }
  if (c->ex->resp_done) { /* the server closed after a complete response */
    forward_maybe_finish(c);
    return;
  }
  forward_failed(c, nread == UV_EOF ? "connection closed before the response ended"
                                     : uv_strerror((int)nread));
}

void forward_response_data(struct conn *c, ssize_t nread, const char *data) {
  struct upstream *up = c->up;
  size_t used = 0;
  enum http1_status st;

  if (nread < 0) {
    response_eof(c, nread);
    return;
  }
  if (c->ex->resp_done) { /* bytes after a complete response: unusable connection */
    up->ep.eof = true;
    return;
  }
  conn_arm_timer(c, c->srv->cfg->timeouts.response);
  st = http1_feed(up->resp, data, (size_t)nread, &used);
  if (c->state == CONN_ST_CLOSED)
    return;
  if (st == HTTP1_ERROR) {
    forward_failed(c, http1_error_reason(up->resp));
    return;
  }
  if (used < (size_t)nread)
    up->ep.eof = true; /* trailing garbage: never reuse this connection */
  forward_maybe_finish(c);
  if (c->state == CONN_ST_FORWARD)
    conn_update_reading(c);
}

void forward_maybe_finish(struct conn *c) {
  struct upstream *up = c->up;

  if (c->state != CONN_ST_FORWARD || !c->ex->resp_done)
    return;
  if (!c->ex->req_done) {
    /* The response ended while the request body was still coming. */
    c->close_after = true;
    c->ex->client_keep = false;
  }
  if (up != NULL) {
    bool next = c->ex->client_keep && !c->close_after && !c->cli.eof;
    c->up = NULL;
    if (!c->ex->req_done || !http1_keep_alive(up->resp) || up->ep.eof || up->ep.pending > 0)
      upstream_close(up);
    else if (next)
      c->kept = up; /* for the client's next request, if it goes to the same place */
    else
      upstream_release(up);
  }
  if (!c->ex->client_keep || c->close_after || c->cli.eof) {
    conn_set_state(c, CONN_ST_RESPONDING);
    c->close_after = true;
    if (c->cli.pending == 0)
      conn_linger(c);
    return;
  }
  front_next_request(c);
}
