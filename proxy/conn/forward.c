/* FORWARD, HTTP forwarding: the request head rewritten towards the
 * destination, the request body streamed after it, the response head
 * rewritten towards the client and its body streamed back, and the end of
 * the exchange: the next request (HEAD, the upstream kept for it or
 * pooled), or a close once the response is written (RESPONDING, LINGER).
 * A pooled connection the destination closed just as it was reused gets
 * one safe retry (CONNECTING); any other failure is a 502, or a truncated
 * response once it has started. The destination must keep answering
 * within timeouts.response.
 *
 * Through the upstream proxy (c->ex->via_parent) the request goes in
 * absolute form, with the Proxy-Authorization of upstream_proxy, over a
 * connection to the parent that is kept and pooled like any other (PARENT
 * retries a stale one). The parent's own refusals, a 5xx or a 407 (it
 * cannot tell the client's need for credentials from its own), become a
 * 502 whose Proxy-Status names it (next-hop, received-status); every other
 * answer is passed on as the destination's. */
#include "proxy/conn/forward.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "proxy/base/dns.h"
#include "proxy/base/log.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/worker/server.h"
#include "proxy/worker/upstream.h"

/* A rewritten head is built on the stack up to this size (the bytes are
 * copied into the write queue if the socket does not take them at once);
 * a larger one is allocated. */
#define FORWARD_HEAD_ROOM 4096

static const struct http1_callbacks response_cbs;
static const struct http1_callbacks request_cbs;

/* ---- the request body (request parser callbacks; ctx is the conn) ---------- */

static int on_request_head(void *ctx, struct http_head *h) {
  return -1; /* the parser pauses at the end of each request: none can start here */
}

static int on_request_body(void *ctx, const char *data, size_t len) {
  struct conn *c = ctx;
  static const char crlf[] = "\r\n";
  char size[24];
  uv_buf_t bufs[3];

  if (c->up == NULL)
    return 0;
  c->since = uv_now(c->srv->loop); /* a request body still arriving keeps the exchange alive */
  if (!c->ex->head->chunked)
    return endpoint_write(&c->up->ep, data, len) == 0 ? 0 : -1;
  bufs[0] = uv_buf_init(size, (unsigned)snprintf(size, sizeof(size), "%zx\r\n", len));
  bufs[1] = uv_buf_init((char *)data, (unsigned)len);
  bufs[2] = uv_buf_init((char *)crlf, 2);
  return endpoint_writev(&c->up->ep, bufs, 3) == 0 ? 0 : -1;
}

static int on_request_done(void *ctx) {
  struct conn *c = ctx;
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

/* A request body the parser refused. */
static enum phase_rc request_error(struct conn *c) {
  char detail[160];
  snprintf(detail, sizeof(detail), "%s", http1_error_reason(c->ex->req));
  c->close_after = true;
  return conn_answer(c, ANSWER_HTTP, http1_error_status(c->ex->req), "http_request_error", detail);
}

/* Parses request bytes: the body towards the destination. */
static enum phase_rc parse_request(struct conn *c, const char *data, size_t len, size_t *used) {
  if (http1_feed(c->ex->req, data, len, used) == HTTP1_ERROR) {
    *used = len;
    return request_error(c);
  }
  /* Once it is read, what follows is a pipelined request: it waits. */
  return c->ex->req_done ? PHASE_WAIT : PHASE_MORE;
}

/* ---- the start ------------------------------------------------------------ */

/* The request head for the upstream proxy: absolute form, then the
 * parent's Proxy-Authorization, if any. */
static void write_parent_request(struct conn *c, struct obuf *out) {
  const struct exchange *ex = c->ex;
  const char *auth = c->srv->cfg->upstream_proxy.authorization;
  const char *path = ex->path != NULL ? ex->path : "";
  char target[HOST_NAME_MAX_LEN + 16];
  struct obuf url = {0};

  exchange_parent_target(c, target, sizeof(target));
  if (ex->dest.port == 80 && (!conn_transparent(c) || ex->parent_by_name))
    *strrchr(target, ':') = '\0'; /* as the client's Host had it */
  obuf_printf(&url, "http://%s%s", target, ex->path_len == 0 || path[0] == '?' ? "/" : "");
  obuf_add(&url, path, ex->path_len);
  if (url.failed) {
    out->failed = true;
    obuf_free(&url);
    return;
  }
  http1_write_request(out, ex->head, url.data, url.len, ex->authority, c->srv->via);
  obuf_free(&url);
  if (auth[0] != '\0' && !out->failed && out->len >= 2) {
    out->len -= 2; /* the blank line goes after the field */
    obuf_printf(out, "Proxy-Authorization: %s\r\n\r\n", auth);
  }
}

/* An upstream for the current request is ready (c->up): the request head
 * goes out, then its body, starting with what is already buffered. */
static enum phase_rc forward_enter(struct conn *c) {
  struct upstream *up = c->up;
  char head[FORWARD_HEAD_ROOM];
  struct obuf out;
  size_t used = 0;
  int rc;

  if (up->resp == NULL &&
      (up->resp = http1_new(false, c->srv->cfg->limits.max_head, &response_cbs, up)) == NULL)
    return conn_answer(c, ANSWER_HTTP, 500, "proxy_internal_error", "out of memory");
  obuf_init(&out, head, sizeof(head));
  http1_resume(up->resp); /* a reused connection's parser paused after its last response */
  http1_expect_head_response(up->resp, c->ex->head->is_head);
  if (c->ex->via_parent)
    write_parent_request(c, &out);
  else
    http1_write_request(&out, c->ex->head, c->ex->path ? c->ex->path : "", c->ex->path_len,
                        c->ex->authority, c->srv->via);
  rc = out.failed ? UV_ENOMEM : endpoint_write_now(&up->ep, out.data, out.len);
  obuf_free(&out);
  if (rc != 0)
    return conn_answer(c, ANSWER_HTTP, 502, "destination_unavailable", err_str(rc));
  if (c->ex->req_done) /* a retry: the request (without a body) was already read */
    return PHASE_WAIT;
  http1_set_callbacks(c->ex->req, &request_cbs, c);
  http1_resume(c->ex->req);
  if (c->ex->spill_len > 0)
    return PHASE_MORE; /* the core feeds what waits */
  /* llhttp completes a message without a body only when it is next run. */
  return parse_request(c, "", 0, &used);
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
  char head[FORWARD_HEAD_ROOM];
  struct obuf out;
  int rc;

  obuf_init(&out, head, sizeof(head));
  if (h->status == 101) { /* Upgrade is stripped from requests; a switch is a protocol error */
    http1_set_error(up->resp, 502, "the destination switched protocols (101) unasked");
    return -1;
  }
  if (c->ex->via_parent && (h->status >= 500 || h->status == 407)) {
    c->ex->parent_status = h->status; /* the parent's refusal: answered by failed() */
    http1_set_error(up->resp, 502, "the upstream proxy refused the request");
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

static const struct http1_callbacks response_cbs = {
    .on_head = on_response_head,
    .on_body = on_response_body,
    .on_done = on_response_done,
};

/* ---- the end of the exchange ------------------------------------------------- */

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

/* The one address to dial again, keeping the CNAME chain it came with.
 * 0 or -ENOMEM. */
static int dial_again(struct exchange *ex, const struct sockaddr *addr) {
  struct dns_answer *one = dns_answer_redial(ex->addrs, addr);
  if (one == NULL)
    return -ENOMEM;
  dns_answer_unref(ex->addrs);
  ex->addrs = one;
  return 0;
}

/* Whether the failed exchange may be sent again; if so, *RC the move. */
static bool retry_fresh(struct conn *c, enum phase_rc *rc) {
  const struct http_head *h = c->ex->head;
  struct sockaddr_storage addr;

  /* The origin may have acted on the request before closing: only an
   * idempotent one (RFC 9110 9.2.2) may be sent again. */
  if (c->up == NULL || !c->up->reused || c->ex->resp_started || c->ex->interim ||
      c->ex->parent_status != 0 || !c->ex->req_done || h->chunked ||
      (h->has_length && h->content_length > 0) || !is_idempotent(h->method))
    return false;
  memcpy(&addr, &c->up->addr, sizeof(c->up->addr));
  conn_drop_upstream(c);
  log_diag(LOG_DEBUG, c->id, "pooled connection to %s was closed; retrying", c->ex->authority);
  if (c->ex->via_parent) { /* a fresh connection to the parent, not another pooled one */
    c->ex->parent_fresh = true;
    *rc = conn_goto(c, CONN_ST_PARENT);
    return true;
  }
  if (dial_again(c->ex, (const struct sockaddr *)&addr) != 0)
    *rc = conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error", "out of memory");
  else
    *rc = conn_goto(c, CONN_ST_CONNECTING);
  return true;
}

/* The upstream proxy answered the request with a refusal of its own. */
static enum phase_rc parent_refused(struct conn *c) {
  char detail[ANSWER_DETAIL_MAX];
  int status = c->ex->parent_status;
  snprintf(detail, sizeof(detail), "the upstream proxy %.80s answered %d to %s http://%.90s%s",
           c->srv->cfg->upstream_proxy.address, status, c->ex->head->method, c->ex->authority,
           status == 407 ? " (it asks for authorization: upstream_proxy.proxy_authorization_file)"
                         : "");
  c->close_after = true; /* the rest of its answer is not read */
  return exchange_parent_failed(c, 502, "destination_unavailable", status, detail);
}

/* The exchange with the destination failed (WHY is logged): retried on a
 * fresh connection when that is safe, else answered with 502 or, once the
 * response has started, by closing the client connection. */
static enum phase_rc failed(struct conn *c, const char *why) {
  enum phase_rc rc;
  if (retry_fresh(c, &rc))
    return rc;
  if (c->ex->parent_status != 0)
    return parent_refused(c);
  log_diag(LOG_INFO, c->id, "response from %s failed: %s", c->ex->authority, why);
  if (c->ex->resp_started)
    return PHASE_CLOSE; /* the client sees a truncated message, as it must */
  c->close_after = true;
  return conn_answer(c, ANSWER_HTTP, 502, "http_protocol_error", why);
}

/* Once the response is passed on: the upstream kept, pooled or closed,
 * then the next request or a close. */
static enum phase_rc finish(struct conn *c) {
  struct upstream *up = c->up;

  if (!c->ex->resp_done)
    return c->ex->req_done ? PHASE_WAIT : PHASE_MORE;
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
    c->close_after = true;
    if (c->cli.pending == 0)
      return conn_goto(c, CONN_ST_LINGER);
    return conn_answer(c, ANSWER_NONE, 0, NULL, NULL); /* close once it is written */
  }
  return conn_goto(c, CONN_ST_HEAD);
}

/* ---- events ----------------------------------------------------------------- */

static enum phase_rc forward_client_end(struct conn *c, int status) {
  if (status == UV_EOF &&
      c->ex->req_done) { /* half-closed after its request: finish the response */
    c->close_after = true;
    return PHASE_WAIT;
  }
  return PHASE_CLOSE;
}

static enum phase_rc upstream_data(struct conn *c, const char *data, size_t len) {
  struct upstream *up = c->up;
  size_t used = 0;
  enum http1_status st;

  if (c->ex->resp_done) { /* bytes after a complete response: unusable connection */
    up->ep.eof = true;
    return PHASE_WAIT;
  }
  c->since = uv_now(c->srv->loop);
  st = http1_feed(up->resp, data, len, &used);
  if (st == HTTP1_ERROR)
    return failed(c, http1_error_reason(up->resp));
  if (used < len)
    up->ep.eof = true; /* trailing garbage: never reuse this connection */
  return finish(c);
}

/* What the read with the response head makes the client get (the head
 * and the body that came with it) leaves in one write. */
static enum phase_rc forward_upstream_data(struct conn *c, const char *data, size_t len) {
  enum phase_rc rc;
  if (c->ex->resp_started) /* body bytes: written from the read buffer */
    return upstream_data(c, data, len);
  endpoint_cork(&c->cli);
  rc = upstream_data(c, data, len);
  if (endpoint_uncork(&c->cli) != 0) {
    log_diag(LOG_INFO, c->id, "client write failed");
    return PHASE_CLOSE;
  }
  return rc;
}

static enum phase_rc forward_upstream_end(struct conn *c, int status) {
  if (status == UV_EOF && c->up->resp != NULL && http1_finish(c->up->resp) == HTTP1_OK &&
      c->ex->resp_done)
    return finish(c);
  if (c->ex->resp_done) /* the server closed after a complete response */
    return finish(c);
  return failed(c,
                status == UV_EOF ? "connection closed before the response ended" : err_str(status));
}

static enum phase_rc forward_drained(struct conn *c) {
  return finish(c);
}

static enum phase_rc forward_timeout(struct conn *c) {
  if (!c->ex->resp_started) {
    c->close_after = true;
    return conn_answer(c, ANSWER_HTTP, 504, "connection_read_timeout",
                       "destination did not respond in time");
  }
  log_diag(LOG_INFO, c->id, "response stalled; closing");
  return PHASE_CLOSE;
}

static uint64_t forward_deadline(const struct conn *c) {
  return c->since + c->srv->cfg->timeouts.response;
}

const struct phase forward_phase = {
    .enter = forward_enter,
    .client_data = parse_request,
    .client_end = forward_client_end,
    .upstream_data = forward_upstream_data,
    .upstream_end = forward_upstream_end,
    .drained = forward_drained,
    .timeout = forward_timeout,
    .deadline = forward_deadline,
};
