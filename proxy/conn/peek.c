/* PEEK: the client's first flight read without dialling, for CONNECT
 * tunnels on TLS ports (after their 200) and intercepted TLS connections.
 * The ClientHello goes into the exchange (proxy/hello.h); once it is whole
 * (or malformed, too large, not TLS, or timed out after tls_inspect.timeout)
 * its evidence is gathered and the connection goes back to ROUTE, which
 * judges it with everything else: an intercepted connection by the name
 * the hello claims (or its original destination when it claims none). */
#include "proxy/conn/peek.h"

#include <string.h>

#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/conn/hello.h"
#include "proxy/worker/server.h"

static enum phase_rc peek_enter(struct conn *c) {
  hello_free(c->ex->hello);
  if ((c->ex->hello = hello_new(&c->srv->hello_cells, c->srv->cfg->tls.max_hello)) == NULL)
    return conn_answer(c, ANSWER_REFUSE, 500, "proxy_internal_error",
                       "cannot start ClientHello inspection");
  return PHASE_MORE;
}

/* The hello is in (or will never be): its evidence, then ROUTE (an
 * intercepted connection is routed by the name it claims). */
static enum phase_rc decide(struct conn *c, bool timed_out) {
  struct exchange *ex = c->ex;
  const char *const *names;
  size_t n;

  metrics_observe_ms(METRIC_H_HELLO_WAIT, uv_now(c->srv->loop) - c->since);
  hello_finish(ex->hello, &c->srv->cfg->tls, conn_transparent(c) ? NULL : ex->dest.name, timed_out);
  if (conn_transparent(c)) {
    names = hello_names(ex->hello, &n);
    if (n == 0)
      exchange_dest_from_orig(ex);
    else
      exchange_dest_claimed(ex, names[0]);
  }
  return conn_goto(c, CONN_ST_ROUTE);
}

static enum phase_rc peek_data(struct conn *c, const char *data, size_t len, size_t *used) {
  if (hello_feed(c->ex->hello, data, len, used) == TLS_HELLO_ST_NEED_MORE)
    return PHASE_MORE;
  return decide(c, false);
}

static enum phase_rc peek_end(struct conn *c, int status) {
  log_diag(LOG_INFO, c->id, "client closed before its ClientHello was complete");
  /* Already denied (the page was to follow the hello): record the deny. */
  if (c->ex->verdict.action == ACTION_DENY)
    exchange_log(c, "deny", 0, "tunnel_closed", "client closed before its ClientHello");
  return PHASE_CLOSE;
}

static enum phase_rc peek_timeout(struct conn *c) {
  return decide(c, true);
}

static uint64_t peek_deadline(const struct conn *c) {
  return c->since + c->srv->cfg->tls.timeout;
}

const struct phase peek_phase = {
    .enter = peek_enter,
    .client_data = peek_data,
    .client_end = peek_end,
    .timeout = peek_timeout,
    .deadline = peek_deadline,
};
