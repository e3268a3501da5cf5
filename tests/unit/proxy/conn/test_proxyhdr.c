/* Unit tests for proxy/conn/proxyhdr.c, PROXYHDR: a connection on a
 * listener behind a load balancer, its PROXY protocol header in, the
 * client it names and the phase that follows out (HEAD, SNIFF on a
 * transparent listener, LINGER for a health check's LOCAL, RESPONDING for
 * a client clients: refuses); a source that is no balancer, a broken
 * header and a late one are closed. */
#include "conn_fixture.h"

TestSuite(proxyhdr, .fini = fx_finish);

#define V1  "PROXY TCP4 10.1.2.3 10.0.0.1 5555 3128\r\n"
#define REQ "GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\n\r\n"

static const char v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* A version 2 header for an IPv6 client fd00::5 port 6000 to fd00::1 port
 * 443 into OUT; its length. */
static size_t v2_ipv6(char *out) {
  size_t n = 0;
  memcpy(out, v2_sig, 12);
  n = 12;
  out[n++] = 0x21; /* version 2, PROXY */
  out[n++] = 0x21; /* AF_INET6, STREAM */
  out[n++] = 0;
  out[n++] = 36;
  inet_pton(AF_INET6, "fd00::5", out + n);
  inet_pton(AF_INET6, "fd00::1", out + n + 16);
  n += 32;
  out[n++] = 6000 >> 8, out[n++] = 6000 & 0xff;
  out[n++] = 443 >> 8, out[n++] = 443 & 0xff;
  return n;
}

/* A worker whose listener (MODE) sits behind a balancer at FROM; EXTRA
 * adds keys. Every state a stop: the test drives the phase's handlers. */
static struct conn *behind(const char *mode, const char *from, const char *extra) {
  char keys[512];
  fx_stop_table();
  snprintf(keys, sizeof(keys), "proxy_protocol_from: [%s]\n%s", from, extra ? extra : "");
  fx_start(mode, FX_AFTER, keys);
  fx.srv.listeners[0].proxy_protocol = true;
  struct conn *c = fx_connect();
  cr_assert_eq(c->state, CONN_ST_PROXYHDR, "a balanced listener's connection starts there");
  cr_assert_eq(fx.entered[CONN_ST_PROXYHDR], 1);
  return c;
}

static enum phase_rc feed(struct conn *c, const char *data, size_t len, size_t *used) {
  *used = 99;
  return proxyhdr_phase.client_data(c, data, len, used);
}

static void expect_client(const struct conn *c, const char *want) {
  char got[64];
  cr_expect_str_eq(log_fmt_addr(&c->peer.sa, got, sizeof(got)), want);
}

Test(proxyhdr, a_source_outside_proxy_protocol_from_is_closed) {
  struct conn *c = behind("proxy", "127.0.0.2/32", NULL);
  cr_expect_eq(proxyhdr_phase.enter(c), PHASE_CLOSE);
}

Test(proxyhdr, a_balancer_waits_for_its_header_and_no_client_is_counted_yet) {
  struct conn *c = behind("proxy", "127.0.0.0/8", NULL);
  cr_expect_eq(proxyhdr_phase.enter(c), PHASE_MORE);
  cr_expect_not(c->capped, "the balancer is not counted against the per-client cap");
  cr_expect_not(c->relayed);
}

Test(proxyhdr, a_prefix_is_kept_until_the_header_is_whole) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  size_t used;
  cr_expect_eq(feed(c, "PROXY TCP4 10.1", 15, &used), PHASE_MORE);
  cr_expect_eq(used, 0);
  cr_expect_eq(c->state, CONN_ST_PROXYHDR);
}

Test(proxyhdr, a_v1_header_names_the_client_and_leaves_the_request) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  size_t used;
  cr_assert_eq(feed(c, V1 REQ, strlen(V1 REQ), &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_HEAD);
  cr_expect_eq(used, strlen(V1), "the request's bytes are the next phase's");
  expect_client(c, "10.1.2.3:5555");
  cr_expect(c->capped);
  cr_expect(c->relayed);
}

Test(proxyhdr, a_v2_header_names_an_ipv6_client) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  char hdr[64];
  size_t n = v2_ipv6(hdr), used;
  cr_assert_eq(feed(c, hdr, n, &used), PHASE_NEXT);
  cr_expect_eq(used, n);
  cr_expect_eq(c->goto_state, CONN_ST_HEAD);
  expect_client(c, "[fd00::5]:6000");
}

Test(proxyhdr, on_a_transparent_listener_the_header_names_the_original_destination) {
  struct conn *c = behind("intercept", "127.0.0.1/32", NULL);
  char hdr[64], dst[64];
  size_t n = v2_ipv6(hdr), used;
  cr_assert_eq(feed(c, hdr, n, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_SNIFF);
  cr_expect_str_eq(log_fmt_addr((const struct sockaddr *)&c->ex->orig_dst, dst, sizeof(dst)),
                   "[fd00::1]:443");
}

Test(proxyhdr, a_local_header_serves_nothing_and_names_no_client) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  char hdr[16];
  size_t used;
  memcpy(hdr, v2_sig, 12);
  hdr[12] = 0x20, hdr[13] = 0, hdr[14] = 0, hdr[15] = 0;
  cr_assert_eq(feed(c, hdr, 16, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_LINGER);
  cr_expect_not(c->capped);
  cr_expect_not(c->relayed);
  char got[64];
  log_fmt_addr(&c->peer.sa, got, sizeof(got));
  cr_expect_eq(strncmp(got, "127.0.0.1:", 10), 0, "the balancer's own connection: %s", got);
}

Test(proxyhdr, an_unknown_header_leaves_the_balancer_as_the_client) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  size_t used;
  cr_assert_eq(feed(c, "PROXY UNKNOWN\r\n", 15, &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_HEAD);
  cr_expect(c->capped, "counted against the cap as the balancer");
  cr_expect_not(c->relayed);
}

Test(proxyhdr, a_client_clients_refuses_gets_a_403) {
  struct conn *c = behind("proxy", "127.0.0.1/32", "clients: [127.0.0.0/8]\n");
  size_t used;
  cr_assert_eq(feed(c, V1 REQ, strlen(V1 REQ), &used), PHASE_NEXT);
  cr_expect_eq(c->goto_state, CONN_ST_RESPONDING);
  cr_expect_eq(c->ex->answer.status, 403);
  cr_expect_str_eq(c->ex->answer.detail, "client address is not allowed to use this proxy");
}

Test(proxyhdr, what_is_not_a_header_is_closed) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  size_t used;
  cr_expect_eq(feed(c, REQ, strlen(REQ), &used), PHASE_CLOSE);
  cr_expect_not(c->capped);
}

Test(proxyhdr, a_late_header_is_closed_at_its_deadline) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  cr_expect_eq(proxyhdr_phase.deadline(c), c->since + 3000);
  cr_expect_eq(proxyhdr_phase.timeout(c), PHASE_CLOSE);
}

Test(proxyhdr, a_close_before_the_header_ends_the_connection) {
  struct conn *c = behind("proxy", "127.0.0.1/32", NULL);
  cr_expect_eq(proxyhdr_phase.client_end(c, UV_EOF), PHASE_CLOSE);
}

/* Through the core: the header over two reads, then the request, which
 * HEAD gets whole. */
static bool spilled(void) {
  return fx.c->ex->spill_len > 0;
}

Test(proxyhdr, a_header_over_two_reads_hands_the_request_to_head) {
  fx_real_table();
  fx.table[CONN_ST_HEAD] = &fx_stop;
  fx_start("proxy", FX_AFTER, "proxy_protocol_from: [127.0.0.1/32]\n");
  fx.srv.listeners[0].proxy_protocol = true;
  struct conn *c = fx_connect();
  fx_sends("PROXY TCP4 10.1.2.3 ");
  cr_assert(fx_run_until(spilled), "what was read is kept while the header is not whole");
  cr_expect_eq(c->state, CONN_ST_PROXYHDR);
  fx_sends("10.0.0.1 5555 3128\r\n" REQ);
  cr_assert(fx_reach(CONN_ST_HEAD));
  cr_expect_eq(c->ex->spill_len, strlen(REQ), "HEAD gets the request, not the header");
  expect_client(c, "10.1.2.3:5555");
}

Test(proxyhdr, through_the_core_a_stranger_is_closed_at_once) {
  fx_real_table();
  fx_start("proxy", FX_AFTER, "proxy_protocol_from: [10.0.0.0/8]\n");
  fx.srv.listeners[0].proxy_protocol = true;
  fx.client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fx.client, 0);
  cr_assert_eq(connect(fx.client, (const struct sockaddr *)&fx.srv.listeners[0].addr,
                       sizeof(struct sockaddr_in)),
               0);
  cr_expect(fx_client_closed(), "closed before a byte is read");
  cr_expect_null(fx.srv.conns);
}
