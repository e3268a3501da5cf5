/* Unit tests for proxy/tunnel.c, TUNNEL, through the core with every phase
 * real and a destination on loopback: the 200, bytes relayed both ways,
 * half-close, the exchange freed once only relaying, the idle deadline. */
#include "conn_fixture.h"

TestSuite(tunnel, .fini = fx_finish);

static int origin = -1, upstream = -1;
static uint16_t port;

static void tunnelling(const char *extra) {
  char cfg[256], req[128], got[256];
  origin = fx_origin(&port);
  snprintf(cfg, sizeof(cfg), "connect_ports: [%u]\n%s", (unsigned)port, extra ? extra : "");
  fx_real_table();
  fx_start("proxy", FX_AFTER, cfg);
  fx_connect();
  snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", (unsigned)port);
  fx_sends(req);
  upstream = fx_origin_accept(origin);
  fx_recv(got, sizeof(got), "\r\n\r\n");
  cr_assert_str_eq(got, "HTTP/1.1 200 Connection established\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_TUNNEL));
}

static void done(void) {
  if (upstream >= 0)
    close(upstream);
  if (origin >= 0)
    close(origin);
  fx_finish();
}

Test(tunnel, bytes_are_relayed_both_ways_and_the_exchange_is_freed, .fini = done) {
  char got[64];
  tunnelling(NULL);
  cr_expect_null(fx.c->ex, "a tunnel that only relays holds no exchange");
  fx_sends("ping");
  fx_read_fd(upstream, got, sizeof(got), "ping");
  cr_expect_str_eq(got, "ping");
  cr_assert_eq(send(upstream, "pong", 4, 0), 4);
  fx_recv(got, sizeof(got), "pong");
  cr_expect_str_eq(got, "pong");
  cr_expect_eq(tunnel_phase.deadline(fx.c), fx.c->since + fx.cfg.timeouts.tunnel_idle);
}

Test(tunnel, a_client_fin_is_passed_on_and_the_other_way_keeps_flowing, .fini = done) {
  char got[64];
  tunnelling(NULL);
  shutdown(fx.client, SHUT_WR);
  cr_expect_eq(fx_read_fd(upstream, got, sizeof(got), NULL), 0, "the destination sees FIN");
  cr_assert_eq(send(upstream, "late", 4, 0), 4);
  fx_recv(got, sizeof(got), "late");
  cr_expect_str_eq(got, "late");
  cr_expect_eq(fx.c->state, CONN_ST_TUNNEL);
  close(upstream);
  upstream = -1;
  cr_expect(fx_client_closed());
  cr_expect(fx_reach(CONN_ST_CLOSED), "both sides closed: the tunnel is gone");
}

Test(tunnel, an_idle_tunnel_is_closed_at_its_deadline, .fini = done) {
  tunnelling("timeouts:\n  tunnel_idle: 200ms\n");
  cr_expect(fx_client_closed());
  cr_expect(fx_reach(CONN_ST_CLOSED));
}
