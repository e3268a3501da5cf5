/* Unit tests for proxy/transparent.c, SNIFF: an intercepted connection's
 * first bytes in, the phase they call for out (PEEK for a ClientHello,
 * HEAD for a request line, ROUTE on the original destination for anything
 * else, silence or a few bytes and FIN); a connection nobody redirected is
 * refused. */
#include "conn_fixture.h"

TestSuite(transparent, .fini = fx_finish);

/* SNIFF with the original destination a redirect would have given,
 * 127.0.0.2:4000 (the listener is reached directly in these tests). */
static struct phase redirected;

static enum phase_rc redirected_enter(struct conn *c) {
  struct sockaddr_in *dst = (struct sockaddr_in *)&c->ex->orig_dst;
  dst->sin_family = AF_INET;
  dst->sin_port = htons(4000);
  inet_pton(AF_INET, "127.0.0.2", &dst->sin_addr);
  return PHASE_MORE;
}

static struct conn *sniffing(bool through_core) {
  if (through_core) {
    fx_real_table();
    redirected = sniff_phase;
    redirected.enter = redirected_enter;
    fx.table[CONN_ST_SNIFF] = &redirected;
    fx.table[CONN_ST_ROUTE] = fx.table[CONN_ST_HEAD] = fx.table[CONN_ST_PEEK] = &fx_stop;
  } else {
    fx_stop_table();
  }
  fx_start("intercept", FX_AFTER, NULL);
  struct conn *c = fx_connect();
  if (!through_core)
    redirected_enter(c);
  return c;
}

static enum phase_rc feed(struct conn *c, const char *data, size_t len, size_t *used) {
  *used = 99;
  return sniff_phase.client_data(c, data, len, used);
}

Test(transparent, a_connection_nobody_redirected_is_refused) {
  fx_stop_table();
  fx_start("intercept", FX_AFTER, NULL);
  struct conn *c = fx_connect();
  cr_expect(conn_transparent(c));
  cr_expect_eq(sniff_phase.enter(c), PHASE_CLOSE);
}

Test(transparent, a_tls_record_goes_to_peek_and_is_kept) {
  struct conn *c = sniffing(false);
  size_t used;
  cr_assert_eq(feed(c, "\x16\x03\x01\x00", 4, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_PEEK);
  cr_expect_eq(used, 0, "the phase after it reads the bytes");
  cr_expect_eq(c->ex->relay, CONN_RELAY_TUNNEL);
}

Test(transparent, a_request_line_goes_to_head_once_its_method_is_seen) {
  struct conn *c = sniffing(false);
  size_t used;
  cr_expect_eq(feed(c, "GE", 2, &used), PHASE_MORE);
  cr_expect_eq(used, 0);
  cr_assert_eq(feed(c, "GET / HTTP/1.1\r\n", 16, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_HEAD);
}

Test(transparent, other_bytes_are_routed_on_the_original_destination) {
  struct conn *c = sniffing(false);
  size_t used;
  cr_assert_eq(feed(c, "SSH-2.0-OpenSSH_9.2\r\n", 21, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
  cr_expect_eq(c->ex->relay, CONN_RELAY_TUNNEL);
  cr_expect_eq(c->ex->dest.kind, HOST_IPV4);
  cr_expect_str_eq(c->ex->dest.name, "127.0.0.2");
  cr_expect_eq(c->ex->dest.port, 4000);
}

Test(transparent, an_upper_case_run_without_a_space_is_not_http) {
  struct conn *c = sniffing(false);
  size_t used;
  cr_assert_eq(feed(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
}

Test(transparent, silence_until_the_deadline_is_routed_on_the_original_destination) {
  struct conn *c = sniffing(false);
  cr_expect_eq(sniff_phase.deadline(c), c->since + fx.cfg.transparent.timeout);
  cr_assert_eq(sniff_phase.timeout(c), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_ROUTE);
  cr_expect_str_eq(c->ex->dest.name, "127.0.0.2");
}

Test(transparent, a_client_closing_before_any_byte_is_closed) {
  struct conn *c = sniffing(false);
  cr_expect_eq(sniff_phase.client_end(c, UV_EOF), PHASE_CLOSE);
}

static bool spilled_two(void) {
  return fx.c->ex->spill_len == 2;
}

/* Through the core: bytes kept across reads, then FIN. */
Test(transparent, a_few_bytes_then_fin_are_still_judged) {
  struct conn *c = sniffing(true);
  fx_sends("AB");
  cr_assert(fx_run_until(spilled_two));
  cr_expect_eq(c->state, CONN_ST_SNIFF);
  shutdown(fx.client, SHUT_WR);
  cr_assert(fx_reach(CONN_ST_ROUTE));
  cr_expect(c->cli.eof);
  cr_expect_eq(c->ex->spill_len, 2);
  cr_expect_str_eq(c->ex->dest.name, "127.0.0.2");
}

Test(transparent, bytes_over_several_reads_are_classified_together) {
  struct conn *c = sniffing(true);
  fx_sends("GE");
  cr_assert(fx_run_until(spilled_two), "what was read is kept while it says nothing yet");
  cr_expect_eq(c->state, CONN_ST_SNIFF);
  fx_sends("T /x HTTP/1.1\r\n");
  cr_assert(fx_reach(CONN_ST_HEAD));
  cr_expect_eq(fx.entered[CONN_ST_HEAD], 1);
  cr_expect_eq(c->ex->spill_len, 17, "HEAD gets every byte");
}
