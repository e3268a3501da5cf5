/* Unit tests for proxy/forward.c, FORWARD, through the core with every
 * phase real and an origin on loopback: the request head rewritten and its
 * body streamed out, the response passed back, the exchange ended (the
 * next request, with the upstream kept), and the failures: a destination
 * closing before answering (502), or silent past timeouts.response (504). */
#include "conn_fixture.h"

TestSuite(forward, .fini = fx_finish);

static int origin = -1, upstream = -1;
static uint16_t port;

static void forwarding(const char *extra) {
  origin = fx_origin(&port);
  fx_real_table();
  fx_start("proxy", FX_AFTER, extra);
  fx_connect();
}

static void request(const char *method, const char *path, const char *rest) {
  char req[512];
  snprintf(req, sizeof(req), "%s http://127.0.0.1:%u%s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s",
           method, (unsigned)port, path, (unsigned)port, rest);
  fx_sends(req);
}

static void done(void) {
  if (upstream >= 0)
    close(upstream);
  if (origin >= 0)
    close(origin);
  fx_finish();
}

Test(forward, a_request_and_its_response_are_relayed_and_the_upstream_kept, .fini = done) {
  char got[2048];
  static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  forwarding(NULL);
  request("GET", "/x", "User-Agent: t\r\n\r\n");
  upstream = fx_origin_accept(origin);
  fx_read_fd(upstream, got, sizeof(got), "\r\n\r\n");
  cr_expect(strncmp(got, "GET /x HTTP/1.1\r\n", 17) == 0, "%s", got);
  cr_expect_not_null(strstr(got, "\r\nVia: 1.1 "), "%s", got);
  cr_expect_eq(fx.c->state, CONN_ST_FORWARD);
  cr_expect_eq(forward_phase.deadline(fx.c), fx.c->since + fx.cfg.timeouts.response);
  cr_assert_eq(send(upstream, resp, sizeof(resp) - 1, 0), (ssize_t)sizeof(resp) - 1);
  fx_recv(got, sizeof(got), "\r\n\r\nok");
  cr_expect(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", got);
  cr_expect_not_null(strstr(got, "Connection: keep-alive\r\n"), "%s", got);
  cr_assert(fx_reach(CONN_ST_HEAD), "the next request is awaited");
  cr_expect_not_null(fx.c->kept, "the upstream is kept for the next request");
  cr_expect_null(fx.c->up);
}

Test(forward, a_request_body_is_streamed_as_it_comes, .fini = done) {
  char got[2048];
  forwarding(NULL);
  request("POST", "/up", "Content-Length: 10\r\n\r\nhello");
  upstream = fx_origin_accept(origin);
  fx_read_fd(upstream, got, sizeof(got), "hello");
  cr_expect_not_null(strstr(got, "\r\n\r\nhello"), "the body's start went out: %s", got);
  cr_expect(!fx.c->ex->req_done);
  fx_sends("world");
  fx_read_fd(upstream, got, sizeof(got), "world");
  cr_expect_str_eq(got, "world");
  cr_expect(fx.c->ex->req_done);
}

Test(forward, a_destination_closing_before_it_answers_is_a_502, .fini = done) {
  char got[2048];
  forwarding(NULL);
  request("GET", "/", "\r\n");
  upstream = fx_origin_accept(origin);
  fx_read_fd(upstream, got, sizeof(got), "\r\n\r\n");
  close(upstream);
  upstream = -1;
  fx_recv(got, sizeof(got), "ended\n");
  cr_expect(strncmp(got, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0, "%s", got);
  cr_expect_not_null(strstr(got, "error=http_protocol_error; details=\"connection closed before "
                                 "the response ended\""),
                     "%s", got);
  cr_expect(fx_client_closed(), "the connection closes after the 502");
}

Test(forward, a_silent_destination_is_a_504_after_the_response_timeout, .fini = done) {
  char got[2048];
  forwarding("timeouts:\n  response: 200ms\n");
  request("GET", "/", "\r\n");
  upstream = fx_origin_accept(origin);
  fx_recv(got, sizeof(got), "time\n");
  cr_expect(strncmp(got, "HTTP/1.1 504 Gateway Timeout\r\n", 30) == 0, "%s", got);
  cr_expect_not_null(strstr(got, "error=connection_read_timeout"), "%s", got);
}

Test(forward, a_response_without_length_ends_with_the_connection, .fini = done) {
  char got[2048];
  static const char resp[] = "HTTP/1.1 200 OK\r\n\r\nuntil close";
  forwarding(NULL);
  request("GET", "/", "\r\n");
  upstream = fx_origin_accept(origin);
  fx_read_fd(upstream, got, sizeof(got), "\r\n\r\n");
  cr_assert_eq(send(upstream, resp, sizeof(resp) - 1, 0), (ssize_t)sizeof(resp) - 1);
  close(upstream);
  upstream = -1;
  fx_recv(got, sizeof(got), NULL);
  cr_expect_not_null(strstr(got, "Connection: close\r\n"), "%s", got);
  cr_expect_not_null(strstr(got, "\r\n\r\nuntil close"), "%s", got);
}
