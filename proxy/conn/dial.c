/* CONNECTING: the judged addresses dialled in turn, each attempt bounded
 * by timeouts.connect (the upstream's own timer; the phase has no deadline
 * of its own). The first that answers goes to FORWARD or TUNNEL; when none
 * does, the client is refused (502, or 504 when the last attempt timed
 * out). An intercepted HTTP connection first takes an idle pooled
 * upstream to its original destination, if there is one. */
#include "proxy/conn/dial.h"

#include <stdio.h>

#include "filters/err.h"
#include "proxy/base/dns.h"
#include "proxy/base/log.h"
#include "proxy/conn/conn.h"
#include "proxy/worker/upstream.h"

/* The pool key of the current exchange's destination into BUF. */
static const char *pool_key(const struct conn *c, char *buf, size_t size) {
  char where[64];
  if (!conn_transparent(c))
    return c->ex->authority;
  /* An intercepted connection always goes to its original destination,
   * whatever Host says: pooled connections are shared by that address. */
  snprintf(buf, size, "=%s",
           log_fmt_addr((const struct sockaddr *)&c->ex->orig_dst, where, sizeof(where)));
  return buf;
}

static enum phase_rc dial_failed(struct conn *c) {
  int err = c->ex->connect_err;
  if (err == UV_ETIMEDOUT)
    return conn_answer(c, ANSWER_REFUSE, 504, "connection_timeout",
                       "connection to the destination timed out");
  if (err == UV_ECONNREFUSED)
    return conn_answer(c, ANSWER_REFUSE, 502, "connection_refused",
                       "the destination refused the connection");
  return conn_answer(c, ANSWER_REFUSE, 502, "destination_unavailable", err_str(err));
}

/* Tries the judged addresses in turn. */
static enum phase_rc dial_next(struct conn *c) {
  char key[UPSTREAM_KEY_MAX];
  struct exchange *ex = c->ex;
  while (ex->addr_next < ex->addrs->naddrs) {
    const struct sockaddr *sa = (const struct sockaddr *)&ex->addrs->addrs[ex->addr_next++];
    int rc = conn_dial(c, sa, pool_key(c, key, sizeof(key)));
    if (rc == 0)
      return PHASE_WAIT;
    ex->connect_err = rc;
  }
  return dial_failed(c);
}

static enum phase_rc dial_enter(struct conn *c) {
  char key[UPSTREAM_KEY_MAX];
  struct upstream *up;

  if (conn_transparent(c) && c->ex->relay == CONN_RELAY_HTTP &&
      (up = conn_take_upstream(c, pool_key(c, key, sizeof(key)))) != NULL) {
    conn_use_upstream(c, up);
    return conn_goto(c, CONN_ST_FORWARD);
  }
  c->ex->addr_next = 0;
  c->ex->connect_err = UV_EHOSTUNREACH;
  return dial_next(c);
}

/* The dial of c->up ended with STATUS. */
static enum phase_rc dial_resume(struct conn *c, int status) {
  char ip[64];
  if (status != 0) {
    log_diag(LOG_INFO, c->id, "connect to %s (%s) failed: %s", c->up->key,
             log_fmt_ip((const struct sockaddr *)&c->up->addr, ip, sizeof(ip)), err_str(status));
    c->ex->connect_err = status;
    conn_drop_upstream(c);
    return dial_next(c);
  }
  return conn_goto(c, c->ex->relay == CONN_RELAY_TUNNEL ? CONN_ST_TUNNEL : CONN_ST_FORWARD);
}

const struct phase dial_phase = {
    .enter = dial_enter,
    .resume = dial_resume,
};
