/* Unit tests for proxy/front.c, HEAD: request heads in, moves out (ROUTE
 * with the destination parsed, or RESPONDING with the answer described),
 * deadlines; and, through the core, pipelined requests taken one at a
 * time. */
#include "conn_fixture.h"

TestSuite(front, .fini = fx_finish);

/* A connection whose every state holds: the test drives HEAD itself. */
static struct conn *held(const char *extra) {
  struct conn *c;
  fx_stop_table();
  fx_start("proxy", FX_AFTER, extra);
  c = fx_connect();
  cr_assert_eq(front_phase.enter(c), PHASE_MORE); /* makes the request parser */
  return c;
}

static enum phase_rc feed(struct conn *c, const char *text, size_t *used) {
  *used = 0;
  return front_phase.client_data(c, text, strlen(text), used);
}

static void expect_answer(const struct conn *c, int status, const char *error, const char *detail) {
  cr_expect_eq(c->goto_state, CONN_ST_RESPONDING);
  cr_expect_eq(c->ex->answer.status, status);
  cr_expect_str_eq(c->ex->answer.error, error);
  cr_expect_str_eq(c->ex->answer.detail, detail);
}

Test(front, a_head_in_pieces_waits_then_goes_to_route_with_its_destination) {
  struct conn *c = held(NULL);
  const char *first = "GET http://plain.test:8080/x?y HTTP/1.1\r\nHo";
  size_t used;

  cr_expect_eq(front_phase.deadline(c), c->since + fx.cfg.timeouts.idle);
  cr_assert_eq(feed(c, first, &used), PHASE_MORE);
  cr_expect_eq(used, strlen(first));
  cr_expect(c->ex->head_timing, "the head's deadline runs from its first byte");
  cr_expect_eq(front_phase.deadline(c), c->since + fx.cfg.timeouts.request_head);
  cr_assert_eq(feed(c, "st: plain.test:8080\r\nUser-Agent: t\r\n\r\n", &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
  cr_expect_str_eq(c->ex->dest.name, "plain.test");
  cr_expect_eq(c->ex->dest.port, 8080);
  cr_expect_str_eq(c->ex->authority, "plain.test:8080");
  cr_expect_str_eq(c->ex->path, "/x?y");
  cr_expect_eq(c->ex->relay, CONN_RELAY_HTTP);
  cr_expect(!c->close_after);
}

Test(front, a_connect_is_routed_as_a_tunnel) {
  struct conn *c = held(NULL);
  size_t used;
  cr_assert_eq(feed(c, "CONNECT plain.test:443 HTTP/1.1\r\nHost: plain.test:443\r\n\r\n", &used),
               PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
  cr_expect_eq(c->ex->relay, CONN_RELAY_TUNNEL);
  cr_expect_eq(c->ex->dest.port, 443);
}

Test(front, a_connect_without_a_port_is_answered_400) {
  struct conn *c = held(NULL);
  size_t used;
  cr_assert_eq(feed(c, "CONNECT plain.test HTTP/1.1\r\n\r\n", &used), PHASE_NEXT);
  expect_answer(c, 400, "http_request_error", "bad request target: invalid port");
  cr_expect_eq(c->ex->answer.kind, ANSWER_HTTP);
}

Test(front, an_origin_form_request_to_the_proxy_is_answered_400) {
  struct conn *c = held(NULL);
  size_t used;
  cr_assert_eq(feed(c, "GET /index.html HTTP/1.1\r\nHost: plain.test\r\n\r\n", &used), PHASE_NEXT);
  expect_answer(c, 400, "http_request_error",
                "origin-form request: configure this host as an HTTP proxy");
}

Test(front, a_malformed_head_is_answered_and_nothing_after_it_is_read) {
  struct conn *c = held(NULL);
  const char *bad = "GET http://plain.test/ HTTP/1.1\r\nBad Header\r\n\r\nGET http://plain.test/ "
                    "HTTP/1.1\r\n\r\n";
  size_t used;
  cr_assert_eq(feed(c, bad, &used), PHASE_NEXT);
  cr_expect_eq(used, strlen(bad), "the input after a broken request is dropped");
  cr_expect_eq(c->goto_state, CONN_ST_RESPONDING);
  cr_expect_eq(c->ex->answer.status, 400);
  cr_expect(c->close_after);
}

Test(front, a_head_over_the_bound_is_answered_431) {
  struct conn *c = held("limits:\n  max_head: 1024\n");
  char big[2048];
  size_t used;
  snprintf(big, sizeof(big), "GET http://plain.test/ HTTP/1.1\r\nX-Big: %01500d\r\n\r\n", 0);
  cr_assert_eq(feed(c, big, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_RESPONDING);
  cr_expect_eq(c->ex->answer.status, 431);
}

Test(front, a_request_that_already_passed_this_proxy_is_refused_as_a_loop) {
  struct conn *c = held(NULL);
  char head[512];
  size_t used;
  snprintf(head, sizeof(head), "GET http://plain.test/ HTTP/1.1\r\nVia: 1.1 %s\r\n\r\n",
           fx.srv.via_host);
  cr_assert_eq(feed(c, head, &used), PHASE_NEXT);
  expect_answer(c, 403, "http_request_denied", "forwarding loop: request already passed Embargo");
}

Test(front, an_idle_connection_times_out_quietly_and_a_started_head_with_408) {
  struct conn *c = held(NULL);
  size_t used;
  cr_expect_eq(front_phase.timeout(c), PHASE_CLOSE);
  cr_assert_eq(feed(c, "GET http://plain.test/ HTTP/1.1\r\n", &used), PHASE_MORE);
  cr_assert_eq(front_phase.timeout(c), PHASE_NEXT);
  expect_answer(c, 408, "http_request_error", "request head not received in time");
  cr_expect(c->close_after);
}

Test(front, the_next_request_drops_the_unread_body_of_one_answered_locally) {
  struct conn *c = held(NULL);
  size_t used;
  /* A request with a body, answered before its body was read (a deny). */
  cr_assert_eq(feed(c, "POST http://plain.test/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &used),
               PHASE_NEXT);
  cr_assert_eq(front_phase.enter(c), PHASE_MORE); /* back in HEAD for the next request */
  cr_expect(c->ex->discard);
  cr_expect_null(c->ex->head);
  cr_assert_eq(feed(c, "hello", &used), PHASE_MORE);
  cr_expect_eq(used, 5);
  cr_assert_eq(feed(c, "GET http://plain.test/next HTTP/1.1\r\n\r\n", &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
  cr_expect_str_eq(c->ex->path, "/next");
  cr_expect(!c->ex->discard);
}

Test(front, a_client_closing_mid_head_is_closed) {
  struct conn *c = held(NULL);
  size_t used;
  cr_assert_eq(feed(c, "GET http://pla", &used), PHASE_MORE);
  cr_expect_eq(front_phase.client_end(c, UV_EOF), PHASE_CLOSE);
}

/* Through the core: HEAD with ROUTE held. */
Test(front, pipelined_requests_are_taken_one_at_a_time) {
  static const char a[] = "GET http://plain.test/a HTTP/1.1\r\nHost: plain.test\r\n\r\n";
  static const char b[] = "GET http://plain.test/b HTTP/1.1\r\nHost: plain.test\r\n\r\n";
  char both[256];
  fx_real_table();
  fx.table[CONN_ST_ROUTE] = &fx_stop;
  fx_start("proxy", FX_AFTER, NULL);
  fx_connect();
  snprintf(both, sizeof(both), "%s%s", a, b);
  fx_sends(both);
  cr_assert(fx_reach(CONN_ST_ROUTE));
  cr_expect_eq(fx.entered[CONN_ST_ROUTE], 1);
  cr_expect_str_eq(fx.c->ex->path, "/a");
  cr_expect_eq(fx.c->ex->spill_len, strlen(b), "the second request waits, whole");
  cr_expect(!fx.c->cli.reading, "nothing more is read while a request waits");
}
