/* Unit tests for proxy/conn/parent.c, PARENT, through the core with the
 * test as the upstream proxy (a listening socket it answers by hand): an
 * allowed HTTP request goes to the parent in absolute form (with the
 * configured Proxy-Authorization) and its connection is kept for the next
 * request to another destination; a CONNECT becomes a CONNECT to the
 * parent, its 2xx a tunnel, anything else a 502 naming the parent; a
 * parent that refuses the connection, closes before answering or is slow
 * is answered for; a denied request and an `except` destination never
 * come here. */
#include "conn_fixture.h"

TestSuite(parent, .fini = fx_finish);

static int parent_fd = -1;
static uint16_t parent_port;

static void close_parent(void) {
  if (parent_fd >= 0)
    close(parent_fd);
  parent_fd = -1;
  fx_finish();
}

/* The worker with the test's socket as its upstream proxy (or, with
 * REFUSED, a port nothing listens on), then EXTRA. */
static void through_parent(bool refused, const char *extra) {
  char keys[1024];
  parent_fd = refused ? -1 : fx_origin(&parent_port);
  if (refused)
    parent_port = fx_free_port();
  snprintf(keys, sizeof(keys),
           "upstream_proxy:\n  address: \"127.0.0.1:%u\"\n  except: [direct.test, 127.0.0.3]\n"
           "connect_ports: [443, 8443]\n%s",
           (unsigned)parent_port, extra != NULL ? extra : "");
  fx_start("proxy", FX_AFTER, keys);
  fx_connect();
}

TestSuite(parent_ok, .fini = close_parent);

Test(parent_ok, an_http_request_goes_to_the_parent_in_absolute_form_and_stays_pooled) {
  char got[2048], resp[2048], key[64];
  fx_real_table();
  through_parent(false, NULL);
  fx_sends("GET http://plain.test/x?y HTTP/1.1\r\nHost: plain.test\r\n\r\n");
  int s = fx_origin_accept(parent_fd);
  fx_read_fd(s, got, sizeof(got), "\r\n\r\n");
  cr_expect(strncmp(got, "GET http://plain.test/x?y HTTP/1.1\r\nHost: plain.test\r\n", 54) == 0,
            "%s", got);
  cr_expect_null(strstr(got, "Proxy-Authorization"), "none configured");
  cr_expect_eq(fx.c->state, CONN_ST_FORWARD);
  snprintf(key, sizeof(key), ">127.0.0.1:%u", (unsigned)parent_port);
  cr_expect_str_eq(fx.c->up->key, key, "one pool key for the parent, whatever the destination");
  cr_assert_eq(send(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40, 0), 40);
  fx_recv(resp, sizeof(resp), "\r\n\r\nok");
  cr_expect(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", resp);
  cr_assert(fx_reach(CONN_ST_HEAD));
  /* The next request, to another destination, goes over the same connection. */
  fx_sends("GET http://127.0.0.2:8080/z HTTP/1.1\r\nHost: 127.0.0.2:8080\r\n\r\n");
  fx_read_fd(s, got, sizeof(got), "\r\n\r\n");
  cr_expect(strncmp(got, "GET http://127.0.0.2:8080/z HTTP/1.1\r\n", 38) == 0, "%s", got);
  cr_expect_lt(accept4(parent_fd, NULL, NULL, SOCK_NONBLOCK), 0, "no second connection");
  close(s);
}

Test(parent_ok, a_connect_asks_the_parent_and_its_2xx_opens_the_tunnel) {
  char got[2048], resp[256];
  fx_real_table();
  fx.table[CONN_ST_TUNNEL] = &fx_stop;
  through_parent(false, NULL);
  fx_sends("CONNECT plain.test:8443 HTTP/1.1\r\nHost: plain.test:8443\r\n\r\n");
  int s = fx_origin_accept(parent_fd);
  fx_read_fd(s, got, sizeof(got), "\r\n\r\n");
  static const char want[] =
      "CONNECT plain.test:8443 HTTP/1.1\r\nHost: plain.test:8443\r\nVia: 1.1 ";
  cr_expect(strncmp(got, want, sizeof(want) - 1) == 0, "%s", got);
  cr_expect_eq(fx.c->state, CONN_ST_PARENT, "waiting for the parent's answer");
  cr_expect_eq(parent_phase.deadline(fx.c), fx.c->since + fx.cfg.timeouts.response);
  cr_assert_eq(send(s, "HTTP/1.1 200 Connection established\r\n\r\n", 39, 0), 39);
  cr_assert(fx_reach(CONN_ST_TUNNEL));
  cr_expect_eq(fx.entered[CONN_ST_TUNNEL], 1);
  cr_expect_lt(recv(fx.client, resp, sizeof(resp), MSG_DONTWAIT), 0,
               "the client's 200 is TUNNEL's to send");
  close(s);
}

Test(parent_ok, bytes_after_the_parent_s_2xx_follow_the_client_s_200) {
  char resp[256];
  fx_real_table();
  fx.table[CONN_ST_TUNNEL] = &fx_stop;
  through_parent(false, NULL);
  fx_sends("CONNECT plain.test:8443 HTTP/1.1\r\n\r\n");
  int s = fx_origin_accept(parent_fd);
  fx_read_fd(s, resp, sizeof(resp), "\r\n\r\n");
  cr_assert_eq(send(s, "HTTP/1.1 200 OK\r\n\r\nHELLO", 24, 0), 24);
  fx_recv(resp, sizeof(resp), "HELLO");
  cr_expect_str_eq(resp, "HTTP/1.1 200 Connection established\r\n\r\nHELLO");
  cr_expect(fx.c->established);
  close(s);
}

Test(parent_ok, a_refusal_of_the_parent_is_a_502_naming_it) {
  char resp[2048], want[128];
  fx_real_table();
  through_parent(false, NULL);
  fx_sends("CONNECT plain.test:8443 HTTP/1.1\r\n\r\n");
  int s = fx_origin_accept(parent_fd);
  fx_read_fd(s, resp, sizeof(resp), "\r\n\r\n");
  cr_assert_gt(send(s, "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno\n", 49, 0), 0);
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  cr_expect(strncmp(resp, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0, "%s", resp);
  snprintf(want, sizeof(want),
           "Proxy-Status: embargo; error=destination_unavailable; next-hop=\"127.0.0.1:%u\"; "
           "received-status=403; ",
           (unsigned)parent_port);
  cr_expect_not_null(strstr(resp, want), "%s", resp);
  close(s);
}

Test(parent_ok, a_parent_closing_before_it_answers_is_a_502) {
  char resp[2048];
  fx_real_table();
  through_parent(false, NULL);
  fx_sends("CONNECT plain.test:8443 HTTP/1.1\r\n\r\n");
  int s = fx_origin_accept(parent_fd);
  fx_read_fd(s, resp, sizeof(resp), "\r\n\r\n");
  close(s);
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  cr_expect(strncmp(resp, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0, "%s", resp);
  cr_expect_not_null(strstr(resp, "error=connection_terminated; next-hop="), "%s", resp);
}

Test(parent_ok, a_parent_silent_past_its_deadline_is_a_504) {
  char resp[2048];
  fx_real_table();
  through_parent(false, "timeouts:\n  response: 200ms\n");
  fx_sends("CONNECT plain.test:8443 HTTP/1.1\r\n\r\n");
  int s = fx_origin_accept(parent_fd);
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  cr_expect(strncmp(resp, "HTTP/1.1 504 Gateway Timeout\r\n", 30) == 0, "%s", resp);
  cr_expect_not_null(strstr(resp, "error=connection_read_timeout; next-hop="), "%s", resp);
  close(s);
}

Test(parent_ok, the_configured_proxy_authorization_is_sent) {
  char got[2048], path[200];
  fx_real_table();
  snprintf(path, sizeof(path), "/tmp/embargo-parent-auth-%d", (int)getpid());
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("Basic dXNlcjpwYXNz\n", f);
  fclose(f);
  char extra[300];
  parent_fd = fx_origin(&parent_port);
  snprintf(extra, sizeof(extra),
           "upstream_proxy:\n  address: \"127.0.0.1:%u\"\n"
           "  proxy_authorization_file: %s\n",
           (unsigned)parent_port, path);
  fx_start("proxy", FX_AFTER, extra);
  unlink(path);
  fx_connect();
  fx_sends("GET http://plain.test/ HTTP/1.1\r\nProxy-Authorization: Basic client\r\n\r\n");
  int s = fx_origin_accept(parent_fd);
  fx_read_fd(s, got, sizeof(got), "\r\n\r\n");
  cr_expect_not_null(strstr(got, "\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"), "%s", got);
  cr_expect_null(strstr(got, "Basic client"), "the client's own is not passed on");
  close(s);
}

Test(parent, a_parent_refusing_the_connection_is_a_502_naming_it) {
  char resp[2048], want[96];
  fx_real_table();
  through_parent(true, NULL);
  fx_sends("GET http://plain.test/ HTTP/1.1\r\n\r\n");
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  snprintf(want, sizeof(want),
           "error=connection_refused; next-hop=\"127.0.0.1:%u\"; details=", (unsigned)parent_port);
  cr_expect(strncmp(resp, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0, "%s", resp);
  cr_expect_not_null(strstr(resp, want), "%s", resp);
}

Test(parent, a_denied_request_never_comes_here) {
  char resp[2048];
  fx_real_table();
  fx.table[CONN_ST_PARENT] = &fx_stop;
  through_parent(true, NULL);
  fx_sends("GET http://upd.acme.test/ HTTP/1.1\r\n\r\n");
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  cr_expect(strncmp(resp, "HTTP/1.1 403 Forbidden\r\n", 24) == 0, "%s", resp);
  cr_expect_eq(fx.entered[CONN_ST_PARENT], 0);
}

Test(parent, an_address_outside_except_goes_through_the_parent) {
  fx_real_table();
  fx.table[CONN_ST_PARENT] = fx.table[CONN_ST_CONNECTING] = &fx_stop;
  through_parent(true, NULL);
  fx_sends("GET http://127.0.0.2/ HTTP/1.1\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_PARENT));
  cr_expect(fx.c->ex->via_parent);
}

Test(parent, an_except_destination_is_dialled_directly) {
  fx_real_table();
  fx.table[CONN_ST_PARENT] = fx.table[CONN_ST_CONNECTING] = &fx_stop;
  through_parent(true, NULL);
  fx_sends("GET http://127.0.0.3/ HTTP/1.1\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_CONNECTING));
  cr_expect_not(fx.c->ex->via_parent);
  cr_expect_eq(fx.entered[CONN_ST_PARENT], 0);
}
