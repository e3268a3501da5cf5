/* RESPONDING: the answers Embargo gives itself, as the phase that refused
 * described them (struct answer): an error with an RFC 9209 Proxy-Status
 * field or the deny page while HTTP can still be spoken, each with its
 * decision line; after a 200 or on an intercepted connection that is not
 * HTTP, the decision line, an access_denied alert for a TLS client and
 * LINGER. Whatever the destination was doing is abandoned. Once the
 * response is written: the next request (HEAD) when nothing of this one is
 * left unread, else LINGER; a client that reads nothing for 30 s is
 * closed. */
#include "proxy/conn/respond.h"

#include <errno.h>
#include <string.h>

#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/conn/hello.h"
#include "proxy/conn/message.h"
#include "proxy/worker/server.h"

#define RESPOND_MS 30000

/* Whether the connection can carry another request after a local response. */
static bool can_keep(const struct conn *c, int status) {
  const struct http_head *h = c->ex->head;
  if (c->close_after || h == NULL || c->cli.eof)
    return false;
  if (status == 400 || status == 408 || status == 431 || status == 500 || h->is_connect)
    return false;
  /* An unread body would be taken for the next request: close instead. */
  return c->ex->req_done || (!h->chunked && (!h->has_length || h->content_length == 0));
}

/* Writes the answer's error response, or with DENY the deny page, then
 * waits for it to be written. */
static enum phase_rc write_answer(struct conn *c, bool deny) {
  const struct answer *a = &c->ex->answer;
  struct obuf out = {0};
  bool keep = can_keep(c, a->status);
  int rc;

  c->close_after = !keep;
  if (deny)
    message_deny(&out, c->ex, NULL, NULL, keep);
  else
    message_error(&out, a->status, a->error, c->ex->ps_extra, a->detail, NULL, keep);
  c->ex->ps_extra = NULL;
  rc = out.failed ? -ENOMEM : conn_write_client(c, out.data, out.len);
  obuf_free(&out);
  return rc == 0 ? PHASE_WAIT : PHASE_CLOSE;
}

/* After a 200, or on an intercepted connection that is not HTTP, there is
 * no status to send: a TLS client gets an access_denied alert (ALERT),
 * then the connection lingers. */
static enum phase_rc close_quietly(struct conn *c, bool alert) {
  char bytes[HELLO_ALERT_LEN];
  if (alert) {
    hello_alert(c->ex->hello, bytes);
    if (conn_write_client(c, bytes, sizeof(bytes)) != 0)
      return PHASE_CLOSE;
  }
  return conn_goto(c, CONN_ST_LINGER);
}

/* The answer's detail for a log line: NULL when there is none. */
static const char *detail(const struct answer *a) {
  return a->detail[0] != '\0' ? a->detail : NULL;
}

static enum phase_rc http_error(struct conn *c) {
  const struct answer *a = &c->ex->answer;
  if (c->ex->resp_started) {
    /* A response is already streaming: an error page would land inside its
     * body. The client sees a truncated message instead. */
    exchange_log(c, "error", 0, a->error, detail(a));
    return PHASE_CLOSE;
  }
  exchange_log(c, "error", a->status, a->error, detail(a));
  return write_answer(c, false);
}

static enum phase_rc refuse(struct conn *c) {
  const struct answer *a = &c->ex->answer;
  if (exchange_http_face(c))
    return http_error(c);
  exchange_log(c, "error", 0, a->error, detail(a));
  return close_quietly(c, a->status == 403 && hello_spoke_tls(c->ex->hello));
}

static enum phase_rc deny(struct conn *c) {
  const char *why = c->ex->decided_by;
  bool alert;
  if (exchange_http_face(c) && c->ex->verdict.rule != NULL) {
    exchange_log(c, "deny", 403, "http_request_denied", NULL);
    return write_answer(c, true);
  }
  if (exchange_http_face(c)) {
    conn_set_answer(c, ANSWER_HTTP, 403, "http_request_denied", why);
    return http_error(c);
  }
  alert = hello_spoke_tls(c->ex->hello);
  exchange_log(c, "deny", 0, alert ? "tls_alert_access_denied" : "tunnel_closed", why);
  return close_quietly(c, alert);
}

static enum phase_rc respond_enter(struct conn *c) {
  if (c->ex->answer.kind == ANSWER_NONE)
    return PHASE_WAIT;   /* the relayed response is being written */
  conn_drop_upstream(c); /* whatever the destination was doing is abandoned */
  switch (c->ex->answer.kind) {
  case ANSWER_HTTP: return http_error(c);
  case ANSWER_REFUSE: return refuse(c);
  default: return deny(c);
  }
}

static enum phase_rc respond_drained(struct conn *c) {
  if (c->cli.pending > 0) {
    c->since = uv_now(c->srv->loop); /* a slow reader, but a reader */
    return PHASE_WAIT;
  }
  return conn_goto(c, c->close_after ? CONN_ST_LINGER : CONN_ST_HEAD);
}

static uint64_t respond_deadline(const struct conn *c) {
  return c->since + RESPOND_MS;
}

const struct phase respond_phase = {
    .enter = respond_enter,
    .drained = respond_drained,
    .deadline = respond_deadline,
};
