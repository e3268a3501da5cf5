/* Unit tests for proxy/dial.c, CONNECTING, through the core: the judged
 * address dialled, the move to FORWARD or TUNNEL once it answers (both
 * held), a refused or unreachable destination answered 502. */
#include "conn_fixture.h"

TestSuite(dial, .fini = fx_finish);

static void dialling(const char *extra) {
  fx_real_table();
  fx.table[CONN_ST_FORWARD] = fx.table[CONN_ST_TUNNEL] = &fx_stop;
  fx_start("proxy", FX_AFTER, extra);
  fx_connect();
}

Test(dial, a_request_goes_to_forward_once_its_destination_answers) {
  char req[128];
  uint16_t port;
  int origin = fx_origin(&port), s;
  dialling(NULL);
  snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/ HTTP/1.1\r\n\r\n", (unsigned)port);
  fx_sends(req);
  cr_assert(fx_reach(CONN_ST_FORWARD));
  cr_expect_eq(fx.entered[CONN_ST_FORWARD], 1);
  cr_assert_not_null(fx.c->up);
  cr_expect(fx.c->up->connected);
  s = fx_origin_accept(origin);
  close(s);
  close(origin);
}

Test(dial, a_connect_goes_to_tunnel_once_its_destination_answers) {
  char extra[64], req[128];
  uint16_t port;
  int origin = fx_origin(&port);
  snprintf(extra, sizeof(extra), "connect_ports: [%u]\n", (unsigned)port);
  dialling(extra);
  snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", (unsigned)port);
  fx_sends(req);
  cr_assert(fx_reach(CONN_ST_TUNNEL));
  cr_expect(fx.c->up->connected);
  close(origin);
}

Test(dial, a_destination_refusing_the_connection_is_answered_502) {
  char req[128], resp[2048];
  uint16_t port = fx_free_port(); /* nothing listens there */
  dialling(NULL);
  snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/ HTTP/1.1\r\n\r\n", (unsigned)port);
  fx_sends(req);
  fx_recv(resp, sizeof(resp), "connection\n");
  cr_expect(strncmp(resp, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0, "%s", resp);
  cr_expect_not_null(strstr(resp, "error=connection_refused; details=\"the destination refused "
                                  "the connection\""),
                     "%s", resp);
  cr_expect_eq(fx.entered[CONN_ST_FORWARD], 0);
  cr_expect_null(fx.c->up, "the failed upstream is gone");
}
