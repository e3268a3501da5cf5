/* Tunnels (CONNECT, intercepted TLS and unidentified protocols): bytes relayed both ways under the same backpressure rule
 * as HTTP, with half-close (one side's FIN is passed on while the other
 * direction keeps flowing), an idle deadline, and the ClientHello read while
 * peeking forwarded first and unchanged. */
#include "proxy/conn-int.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

void tunnel_maybe_close(struct conn *c) {
  if (c->cli.eof && c->up->ep.eof && c->cli.pending == 0 && c->up->ep.pending == 0)
    conn_close(c);
}

void tunnel_client_data(struct conn *c, ssize_t nread, const char *data) {
  int rc;
  if (nread < 0) {
    if (nread != UV_EOF) {
      conn_close(c);
      return;
    }
    /* Half-close: pass the client's FIN on, keep relaying the other way. */
    c->cli.eof = true;
    endpoint_shutdown(&c->up->ep, NULL);
    tunnel_maybe_close(c);
    return;
  }
  if (c->ex != NULL && peek_awaiting_second_hello(c)) {
    peek_second_hello(c, nread, data);
    if (c->state == CONN_ST_TUNNEL)
      conn_update_reading(c);
    return;
  }
  /* Bytes the socket takes at once are not copied; a tunnel does not wait
   * for the drain of what went out at once. */
  if ((rc = endpoint_write_now(&c->up->ep, data, (size_t)nread)) != 0) {
    conn_close(c);
    return;
  }
  conn_arm_timer(c, c->srv->cfg->timeouts.tunnel_idle);
  conn_update_reading(c);
}

void tunnel_upstream_data(struct conn *c, ssize_t nread, const char *data) {
  if (nread < 0) {
    if (nread != UV_EOF) {
      conn_close(c);
      return;
    }
    endpoint_shutdown(&c->cli, NULL);
    tunnel_maybe_close(c);
    return;
  }
  if (c->ex != NULL) {
    peek_watch_server(c, data, (size_t)nread);
    conn_tunnel_relaying(c); /* the watch is over: drop what the exchange held */
  }
  if (endpoint_write_now(&c->cli, data, (size_t)nread) != 0) {
    conn_close(c);
    return;
  }
  conn_arm_timer(c, c->srv->cfg->timeouts.tunnel_idle);
  conn_update_reading(c);
}

void tunnel_start(struct conn *c) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  conn_set_state(c, CONN_ST_TUNNEL);
  conn_release_kept(c);
  /* A CONNECT is answered once the destination is there (or before the
   * ClientHello was read); an intercepted connection expects no answer. */
  if (!conn_transparent(c) && !c->established &&
      conn_write_client(c, established, sizeof(established) - 1) != 0)
    return;
  c->established = true;
  if (peek_forward(c, &c->up->ep) != 0) { /* the ClientHello, as it was received */
    conn_close(c);
    return;
  }
  peek_watch_start(c);
  peek_free(c);
  if (c->ex->spill_len > 0) { /* bytes the client sent after its CONNECT head or hello */
    if (endpoint_write(&c->up->ep, c->ex->spill + c->ex->spill_off, c->ex->spill_len) != 0) {
      conn_close(c);
      return;
    }
    c->ex->spill_len = c->ex->spill_off = 0;
  }
  conn_tunnel_relaying(c);
  conn_arm_timer(c, c->srv->cfg->timeouts.tunnel_idle);
  conn_update_reading(c);
}

