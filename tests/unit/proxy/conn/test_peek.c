/* Unit tests for proxy/peek.c, PEEK: ClientHello bytes in (a real client's
 * first flight, tests/fixtures/hellos), the move out (ROUTE, to judge it)
 * with the evidence kept in the exchange; bytes that are not TLS, and a
 * hello that never comes, with their configured outcomes. */
#include "conn_fixture.h"
#include "proxy/conn/hello.h"
#include "proxy/decide/judge.h"

TestSuite(peek, .fini = fx_finish);

static uint8_t curl_hello[4096];
static size_t curl_len;

/* A connection held in PEEK (MODE "proxy": a CONNECT to fixture.example;
 * "intercept": going to 127.0.0.2:443). */
static struct conn *peeking(const char *mode) {
  FILE *f = fopen(EMBARGO_SOURCE_DIR "/tests/fixtures/hellos/curl.bin", "rb");
  cr_assert_not_null(f);
  curl_len = fread(curl_hello, 1, sizeof(curl_hello), f);
  fclose(f);
  fx_stop_table();
  fx_start(mode, FX_AFTER, NULL);
  struct conn *c = fx_connect();
  if (conn_transparent(c)) {
    struct sockaddr_in *dst = (struct sockaddr_in *)&c->ex->orig_dst;
    dst->sin_family = AF_INET;
    dst->sin_port = htons(443);
    inet_pton(AF_INET, "127.0.0.2", &dst->sin_addr);
  } else {
    cr_assert_eq(host_normalise("fixture.example", 15, &c->ex->dest), 0);
    c->ex->dest.port = 443;
  }
  cr_assert_eq(peek_phase.enter(c), PHASE_MORE);
  return c;
}

Test(peek, a_hello_in_pieces_waits_then_goes_to_route_with_its_evidence) {
  struct conn *c = peeking("proxy");
  const struct tls_evidence *ev;
  size_t used = 0, half = curl_len / 2;

  cr_assert_eq(peek_phase.client_data(c, (const char *)curl_hello, half, &used), PHASE_MORE);
  cr_expect_eq(used, half);
  cr_expect_null(hello_evidence(c->ex->hello), "no evidence before the hello is whole");
  cr_assert_eq(peek_phase.client_data(c, (const char *)curl_hello + half, curl_len - half, &used),
               PHASE_NEXT);
  cr_expect_eq(used, curl_len - half);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
  cr_assert_not_null(ev = hello_evidence(c->ex->hello));
  cr_expect_str_eq(ev->outcome, "hello");
  cr_assert_eq(ev->nsni, 1);
  cr_expect_str_eq(ev->sni[0], "fixture.example");
  cr_expect_eq(ev->ntags, 0, "the SNI is the CONNECT's name: no sni_mismatch");
  cr_expect(hello_ok(c->ex->hello));
  cr_expect_str_eq(c->ex->dest.name, "fixture.example", "a CONNECT keeps its own name");
}

Test(peek, an_intercepted_hello_is_routed_by_the_name_it_claims) {
  struct conn *c = peeking("intercept");
  size_t used = 0;
  cr_assert_eq(peek_phase.client_data(c, (const char *)curl_hello, curl_len, &used), PHASE_NEXT);
  cr_expect_eq(c->ex->dest.kind, HOST_NAME);
  cr_expect_str_eq(c->ex->dest.name, "fixture.example");
  cr_expect_eq(c->ex->dest.port, 443, "at the original destination's port");
}

Test(peek, bytes_that_are_not_tls_carry_the_on_not_tls_action) {
  struct conn *c = peeking("proxy");
  struct judge_input in = {0};
  size_t used = 0;
  cr_assert_eq(peek_phase.client_data(c, "GET / HTTP/1.1\r\n", 16, &used), PHASE_NEXT);
  cr_expect_str_eq(hello_evidence(c->ex->hello)->outcome, "not_tls");
  cr_expect(!hello_spoke_tls(c->ex->hello));
  hello_judge_input(c->ex->hello, &in);
  cr_assert_eq(in.noutcomes, 1);
  cr_expect_eq(in.outcomes[0].action, fx.cfg.tls.on_not_tls);
  cr_expect_str_eq(in.outcomes[0].option, "tls_inspect.on_not_tls");
}

Test(peek, a_hello_that_never_comes_times_out_with_on_timeout) {
  struct conn *c = peeking("proxy");
  struct judge_input in = {0};
  size_t used = 0;
  cr_expect_eq(peek_phase.deadline(c), c->since + fx.cfg.tls.timeout);
  cr_assert_eq(peek_phase.client_data(c, (const char *)curl_hello, 20, &used), PHASE_MORE);
  cr_assert_eq(peek_phase.timeout(c), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
  cr_expect_str_eq(hello_evidence(c->ex->hello)->outcome, "timeout");
  hello_judge_input(c->ex->hello, &in);
  cr_expect_str_eq(in.outcomes[0].option, "tls_inspect.on_timeout");
}

Test(peek, a_client_closing_before_its_hello_is_closed) {
  struct conn *c = peeking("proxy");
  cr_expect_eq(peek_phase.client_end(c, UV_EOF), PHASE_CLOSE);
}
