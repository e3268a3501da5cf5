/* Unit tests for proxy/respond.c, RESPONDING: an answer described in the
 * exchange in, the bytes the client reads and the move out: the next
 * request (HEAD) once a response that keeps the connection is written,
 * LINGER after one that does not, and on a connection that cannot be
 * answered in HTTP the access_denied alert for a TLS client. */
#include "conn_fixture.h"
#include "proxy/conn/hello.h"

TestSuite(respond, .fini = fx_finish);

/* A connection held in every state, its request head fed through HEAD. */
static struct conn *answering(const char *head) {
  size_t used = 0;
  fx_stop_table();
  fx_start("proxy", FX_AFTER, NULL);
  struct conn *c = fx_connect();
  cr_assert_eq(front_phase.enter(c), PHASE_MORE);
  if (head != NULL)
    cr_assert_eq(front_phase.client_data(c, head, strlen(head), &used), PHASE_NEXT);
  return c;
}

Test(respond, an_error_is_written_whole_and_the_connection_lingers) {
  static const char want[] =
      "HTTP/1.1 502 Bad Gateway\r\n"
      "Proxy-Status: embargo; error=dns_error; rcode=SERVFAIL; details=\"a.test: \\\"x\\\"\"\r\n"
      "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 37\r\n"
      "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
      "Embargo: 502 Bad Gateway\na.test: \"x\"\n";
  char got[1024];
  struct conn *c = answering("CONNECT a.test:443 HTTP/1.1\r\n\r\n");
  c->ex->ps_extra = "rcode=SERVFAIL";
  conn_set_answer(c, ANSWER_REFUSE, 502, "dns_error", "a.test: \"x\"");
  cr_assert_eq(respond_phase.enter(c), PHASE_WAIT);
  cr_expect(c->close_after, "a CONNECT's connection is not kept");
  cr_expect_null(c->ex->ps_extra, "used once");
  fx_recv(got, sizeof(got), "\"x\"\n");
  cr_expect_str_eq(got, want);
  cr_expect_eq(c->cli.pending, 0);
  cr_assert_eq(respond_phase.drained(c), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_LINGER);
}

Test(respond, a_request_without_a_body_keeps_its_connection) {
  char got[1024];
  struct conn *c = answering("GET http://a.test/ HTTP/1.1\r\n\r\n");
  conn_set_answer(c, ANSWER_HTTP, 403, "http_request_denied", "no");
  cr_assert_eq(respond_phase.enter(c), PHASE_WAIT);
  fx_recv(got, sizeof(got), "no\n");
  cr_expect_not_null(strstr(got, "Connection: keep-alive\r\n"), "%s", got);
  cr_assert_eq(respond_phase.drained(c), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_HEAD);
}

Test(respond, a_request_with_an_unread_body_loses_its_connection) {
  char got[1024];
  struct conn *c = answering("POST http://a.test/ HTTP/1.1\r\nContent-Length: 9\r\n\r\n");
  conn_set_answer(c, ANSWER_HTTP, 403, "http_request_denied", "no");
  cr_assert_eq(respond_phase.enter(c), PHASE_WAIT);
  fx_recv(got, sizeof(got), "no\n");
  cr_expect_not_null(strstr(got, "Connection: close\r\n"), "%s", got);
  cr_assert_eq(respond_phase.drained(c), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_LINGER);
}

Test(respond, a_refusal_after_the_200_is_an_alert_to_a_tls_client) {
  /* A handshake record whose message is no ClientHello: TLS, malformed. */
  static const char not_a_full_hello[] = "\x16\x03\x01\x00\x04\x02\x00\x00\x00";
  char got[64];
  struct conn *c = answering("CONNECT a.test:443 HTTP/1.1\r\n\r\n");
  size_t used = 0;
  c->established = true;
  cr_assert_not_null(c->ex->hello = hello_new(NULL, 1024));
  hello_feed(c->ex->hello, not_a_full_hello, sizeof(not_a_full_hello) - 1, &used);
  cr_assert(hello_spoke_tls(c->ex->hello));
  conn_set_answer(c, ANSWER_REFUSE, 403, "destination_ip_prohibited", "internal address");
  cr_assert_eq(respond_phase.enter(c), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_LINGER);
  cr_assert_eq(fx_recv(got, sizeof(got), "\x31"), 7);
  cr_expect(memcmp(got, "\x15\x03\x01\x00\x02\x02\x31", 7) == 0, "a fatal access_denied alert");
  cr_expect_not_null(strstr(fx_decisions(), "\"error\":\"destination_ip_prohibited\""));
}

Test(respond, a_deny_of_a_tunnel_that_is_not_tls_is_a_logged_close) {
  struct conn *c = answering("CONNECT a.test:9000 HTTP/1.1\r\n\r\n");
  c->established = true;
  c->ex->verdict.action = ACTION_DENY;
  conn_set_answer(c, ANSWER_DENY, 403, "http_request_denied", NULL);
  cr_assert_eq(respond_phase.enter(c), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_LINGER);
  cr_expect_not_null(strstr(fx_decisions(), "\"error\":\"tunnel_closed\""));
}

Test(respond, an_error_once_a_response_streams_closes_instead) {
  struct conn *c = answering("GET http://a.test/ HTTP/1.1\r\n\r\n");
  c->ex->resp_started = true;
  conn_set_answer(c, ANSWER_HTTP, 502, "http_protocol_error", "cut");
  cr_expect_eq(respond_phase.enter(c), PHASE_CLOSE);
}

Test(respond, a_slow_reader_moves_the_deadline) {
  struct conn *c = answering("GET http://a.test/ HTTP/1.1\r\n\r\n");
  conn_set_answer(c, ANSWER_NONE, 0, NULL, NULL);
  cr_assert_eq(respond_phase.enter(c), PHASE_WAIT);
  c->cli.pending = 1; /* as if a write were still queued */
  c->since = 0;
  cr_expect_eq(respond_phase.drained(c), PHASE_WAIT);
  cr_expect_eq(c->since, uv_now(&fx.loop));
  cr_expect_eq(respond_phase.deadline(c), c->since + 30000);
  c->cli.pending = 0;
}
