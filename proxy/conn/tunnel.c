/* TUNNEL (CONNECT, intercepted TLS and unidentified protocols): the 200
 * for a CONNECT not answered yet, the ClientHello read and any early bytes
 * forwarded first and unchanged, then bytes relayed both ways under the
 * core's backpressure rule, with half-close (one side's FIN is passed on
 * while the other direction keeps flowing) and an idle deadline
 * (timeouts.tunnel_idle). It closes once both sides sent FIN and
 * everything was written.
 *
 * A HelloRetryRequest and the second ClientHello: a TLS 1.3 server that
 * wants another key share answers the first hello with a
 * HelloRetryRequest, and the client sends a second ClientHello. After a
 * hello that offered TLS 1.3 the tunnel watches the server's first flight
 * (a few dozen bytes of state, the phase's own); after an HRR it holds the
 * client's next bytes until the second hello is whole, judges it like the
 * first (its server names must be the first hello's: a change is a deny,
 * tagged sni_changed, answered by RESPONDING), and only then relays it.
 * Once nothing is watched the exchange is freed: a relaying tunnel holds
 * only struct conn and its upstream. */
#include "proxy/conn/tunnel.h"

#include <stdlib.h>
#include <string.h>

#include "filters/tls_server.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/conn/hello.h"
#include "proxy/worker/server.h"
#include "proxy/worker/upstream.h"

/* The watch on the server's first flight (c->priv, while there is one). */
struct hello_watch {
  struct tls_server server;
  bool awaiting;                     /* an HRR went to the client: the second hello is due */
  char first_sni[HELLO_SNI_SET_MAX]; /* the first hello's server names, joined */
};

static enum phase_rc maybe_close(struct conn *c) {
  if (c->cli.eof && c->up->ep.eof && c->cli.pending == 0 && c->up->ep.pending == 0)
    return PHASE_CLOSE;
  return PHASE_MORE;
}

/* Watches for a HelloRetryRequest after a hello offering TLS 1.3. */
static void watch_start(struct conn *c) {
  struct hello_watch *w;
  if (!hello_offers_tls13(c->ex->hello) || (w = calloc(1, sizeof(*w))) == NULL)
    return; /* without memory for the watch the tunnel still works, unwatched */
  tls_server_init(&w->server);
  hello_sni_set(c->ex->hello, w->first_sni, sizeof(w->first_sni));
  c->priv = w;
}

static void tunnel_leave(struct conn *c) {
  free(c->priv);
}

static enum phase_rc tunnel_enter(struct conn *c) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  const uint8_t *raw;
  size_t len = 0;

  conn_release_kept(c);
  /* A CONNECT is answered once the destination is there (or before the
   * ClientHello was read); an intercepted connection expects no answer. */
  if (!conn_transparent(c) && !c->established &&
      conn_write_client(c, established, sizeof(established) - 1) != 0)
    return PHASE_CLOSE;
  c->established = true;
  if (c->ex->hello != NULL) { /* the ClientHello, as it was received */
    raw = hello_raw(c->ex->hello, &len);
    if (len > 0 && endpoint_write(&c->up->ep, (const char *)raw, len) != 0)
      return PHASE_CLOSE;
    watch_start(c);
    hello_free(c->ex->hello);
    c->ex->hello = NULL;
  }
  return PHASE_MORE; /* bytes the client sent after its CONNECT head or hello follow */
}

/* Bytes of a ChangeCipherSpec record at the start of the held input (TLS
 * 1.3 middlebox compatibility: a client may send one before its second
 * hello), or 0. */
static size_t leading_ccs(const char *p, size_t n) {
  if (n >= 6 && p[0] == 0x14 && p[1] == 0x03 && p[3] == 0x00 && p[4] == 0x01)
    return 6;
  return 0;
}

/* The second hello is whole (or will never be): judge it, then relay it
 * and the LEN bytes after it at REST, or refuse. */
static enum phase_rc second_decide(struct conn *c, const char *rest, size_t len) {
  struct hello_watch *w = c->priv;
  struct hello *h = c->ex->hello;
  char second[HELLO_SNI_SET_MAX];
  const uint8_t *raw;
  size_t n = 0;
  enum phase_rc rc;

  hello_finish(h, &c->srv->cfg->tls, conn_transparent(c) ? NULL : c->ex->dest.name, false);
  hello_sni_set(h, second, sizeof(second));
  if (strcmp(second, w->first_sni) != 0) {
    /* A deny whatever the lists say: the first hello was what was judged. */
    hello_add_tag(h, "sni_changed");
    c->ex->sni_changed = true;
  }
  free(w);
  c->priv = NULL; /* the watch is over */
  if (!exchange_judge(c, &rc))
    return rc;
  exchange_log_verdict(c);
  raw = hello_raw(h, &n);
  if ((n > 0 && endpoint_write(&c->up->ep, (const char *)raw, n) != 0) ||
      (len > 0 && endpoint_write(&c->up->ep, rest, len) != 0))
    return PHASE_CLOSE;
  hello_free(h);
  c->ex->hello = NULL;
  return PHASE_MORE;
}

/* Client bytes after a HelloRetryRequest: held and parsed until the second
 * ClientHello is complete. */
static enum phase_rc second_hello(struct conn *c, const char *data, size_t len, size_t *used) {
  size_t ccs = 0, taken = 0;

  *used = 0;
  if (c->ex->hello == NULL) {
    ccs = leading_ccs(data, len);
    if (ccs > 0 && endpoint_write(&c->up->ep, data, ccs) != 0)
      return PHASE_CLOSE;
    if ((c->ex->hello = hello_new(&c->srv->hello_cells, c->srv->cfg->tls.max_hello)) == NULL)
      return PHASE_CLOSE;
  }
  if (hello_feed(c->ex->hello, data + ccs, len - ccs, &taken) == TLS_HELLO_ST_NEED_MORE) {
    *used = len;
    return PHASE_MORE;
  }
  *used = len; /* the rest goes out with the hello, if it may */
  return second_decide(c, data + ccs + taken, len - ccs - taken);
}

static enum phase_rc tunnel_client_data(struct conn *c, const char *data, size_t len,
                                        size_t *used) {
  struct hello_watch *w = c->priv;
  if (w != NULL && w->awaiting)
    return second_hello(c, data, len, used);
  /* Bytes the socket takes at once are not copied; a tunnel does not wait
   * for the drain of what went out at once. */
  *used = len;
  if (endpoint_write_now(&c->up->ep, data, len) != 0)
    return PHASE_CLOSE;
  c->since = uv_now(c->srv->loop);
  return PHASE_MORE;
}

/* Server bytes of a watched tunnel are looked at (not kept) before they
 * are relayed. */
static void watch_server(struct conn *c, const char *data, size_t len) {
  struct hello_watch *w = c->priv;
  enum tls_server_status st;
  if (w == NULL || w->awaiting)
    return;
  st = tls_server_feed(&w->server, (const uint8_t *)data, len);
  if (st == TLS_SERVER_ST_HRR) {
    w->awaiting = true;
  } else if (st != TLS_SERVER_ST_NEED_MORE) {
    free(w); /* a ServerHello (or anything else): no second hello comes */
    c->priv = NULL;
  }
}

static enum phase_rc tunnel_upstream_data(struct conn *c, const char *data, size_t len) {
  watch_server(c, data, len);
  if (endpoint_write_now(&c->cli, data, len) != 0)
    return PHASE_CLOSE;
  c->since = uv_now(c->srv->loop);
  return PHASE_MORE;
}

/* Half-close: a side's FIN is passed on, the other way keeps relaying. */
static enum phase_rc tunnel_client_end(struct conn *c, int status) {
  if (status != UV_EOF)
    return PHASE_CLOSE;
  endpoint_shutdown(&c->up->ep, NULL);
  return maybe_close(c);
}

static enum phase_rc tunnel_upstream_end(struct conn *c, int status) {
  if (status != UV_EOF)
    return PHASE_CLOSE;
  endpoint_shutdown(&c->cli, NULL);
  return maybe_close(c);
}

static enum phase_rc tunnel_drained(struct conn *c) {
  return maybe_close(c);
}

static uint64_t tunnel_deadline(const struct conn *c) {
  return c->since + c->srv->cfg->timeouts.tunnel_idle;
}

/* The exchange is kept while the server's first flight is watched. */
static bool tunnel_needs_exchange(const struct conn *c) {
  return c->priv != NULL;
}

const struct phase tunnel_phase = {
    .enter = tunnel_enter,
    .client_data = tunnel_client_data,
    .client_end = tunnel_client_end,
    .upstream_data = tunnel_upstream_data,
    .upstream_end = tunnel_upstream_end,
    .drained = tunnel_drained,
    .leave = tunnel_leave,
    .deadline = tunnel_deadline,
    .needs_exchange = tunnel_needs_exchange,
};
