/* Unit tests for proxy/route.c, ROUTE, through the core: a request head in
 * (HEAD is real), the verdict and the move out (CONNECTING, PEEK held, or
 * RESPONDING, whose answer the client reads); a name denied by name is
 * never resolved; the lookup's outcome, its deadline, and an answer that
 * comes before the lookup call returns. */
#include "conn_fixture.h"

TestSuite(route, .fini = fx_finish);

static struct conn *routing(int64_t now, const char *extra) {
  fx_real_table();
  fx.table[CONN_ST_CONNECTING] = fx.table[CONN_ST_PEEK] = &fx_stop;
  fx.table[CONN_ST_FORWARD] = fx.table[CONN_ST_BUMP] = &fx_stop;
  fx_start("proxy", now, extra);
  return fx_connect();
}

Test(route, a_name_denied_by_name_is_answered_with_the_page_and_never_resolved) {
  char resp[4096];
  routing(FX_AFTER, NULL);
  fx_sends("GET http://upd.acme.test/x HTTP/1.1\r\nHost: upd.acme.test\r\n\r\n");
  fx_recv(resp, sizeof(resp), "wrong.\n");
  cr_expect(strncmp(resp, "HTTP/1.1 403 Forbidden\r\n", 24) == 0, "%s", resp);
  cr_expect_not_null(strstr(resp, "Vendor:      Acme (acme)\n"), "%s", resp);
  cr_expect_not_null(strstr(resp, "Rule:        upd.acme.test at "), "%s", resp);
  cr_expect_not_null(strstr(resp, "Connection: keep-alive\r\n"), "%s", resp);
  cr_expect(fx_reach(CONN_ST_HEAD), "a request without a body leaves the connection usable");
  cr_expect_eq(fx.dns_queries, 0, "a name denied by name is not resolved");
  cr_expect_not_null(strstr(fx_decisions(), "\"event\":\"deny\""));
}

Test(route, an_allowed_name_is_resolved_judged_and_dialled_to_its_answer) {
  struct conn *c = routing(FX_BEFORE, NULL);
  char ip[64];
  fx_sends("GET http://upd.acme.test:8080/x HTTP/1.1\r\nHost: upd.acme.test:8080\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_CONNECTING));
  cr_expect_gt(fx.dns_queries, 0);
  cr_expect_eq(c->ex->verdict.action, ACTION_LOG, "before the cutoff the rule logs");
  cr_assert_eq(c->ex->addrs->naddrs, 1);
  cr_expect_str_eq(log_fmt_addr((const struct sockaddr *)&c->ex->addrs->addrs[0], ip, sizeof(ip)),
                   "127.0.0.2:8080");
  cr_expect_not_null(strstr(fx_decisions(), "\"event\":\"log\""));
}

Test(route, a_name_that_does_not_exist_is_answered_502_with_its_rcode) {
  char resp[2048];
  routing(FX_AFTER, NULL);
  fx_sends("GET http://nx.test/ HTTP/1.1\r\nHost: nx.test\r\n\r\n");
  fx_recv(resp, sizeof(resp), "NXDOMAIN\n");
  cr_expect(strncmp(resp, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0, "%s", resp);
  cr_expect_not_null(
      strstr(resp, "Proxy-Status: embargo; error=dns_error; rcode=NXDOMAIN; details=\"nx.test: "
                   "NXDOMAIN\"\r\n"),
      "%s", resp);
}

Test(route, a_name_resolving_to_an_internal_address_is_refused) {
  char resp[2048];
  routing(FX_AFTER, NULL);
  fx_sends("GET http://inside.test/ HTTP/1.1\r\nHost: inside.test\r\n\r\n");
  fx_recv(resp, sizeof(resp), "169.254.169.254\n");
  cr_expect_not_null(strstr(resp, "Proxy-Status: embargo; error=destination_ip_prohibited; "
                                  "details=\"inside.test resolves to internal address "
                                  "169.254.169.254\""),
                     "%s", resp);
}

Test(route, the_proxy_itself_is_no_destination) {
  char req[256], resp[2048];
  unsigned port;
  routing(FX_AFTER, NULL);
  port = ntohs(((struct sockaddr_in *)&fx.srv.listeners[0].addr)->sin_port);
  snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/ HTTP/1.1\r\n\r\n", port);
  fx_sends(req);
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  cr_expect_not_null(strstr(resp, "error=destination_ip_prohibited; details=\"the destination is "
                                  "this proxy (127.0.0.1:"),
                     "%s", resp);
}

Test(route, a_connect_to_a_port_not_allowed_is_refused_before_any_lookup) {
  char resp[2048];
  routing(FX_AFTER, NULL);
  fx_sends("CONNECT plain.test:8443 HTTP/1.1\r\n\r\n");
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  cr_expect_not_null(
      strstr(resp, "error=http_request_denied; details=\"CONNECT to port 8443 is not allowed\""),
      "%s", resp);
  cr_expect_eq(fx.dns_queries, 0);
}

Test(route, a_connect_to_a_tls_port_is_answered_200_then_its_hello_is_read) {
  char resp[256];
  struct conn *c = routing(FX_AFTER, NULL);
  fx_sends("CONNECT plain.test:443 HTTP/1.1\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_PEEK));
  fx_recv(resp, sizeof(resp), "\r\n\r\n");
  cr_expect_str_eq(resp, "HTTP/1.1 200 Connection established\r\n\r\n");
  cr_expect(c->established);
  cr_expect_eq(fx.entered[CONN_ST_CONNECTING], 0, "nothing is dialled before the hello");
}

Test(route, an_answer_from_the_hosts_file_resumes_once_the_lookup_call_returned) {
  struct conn *c = routing(FX_AFTER, NULL);
  char ip[64];
  fx_sends("GET http://localhost:9/ HTTP/1.1\r\nHost: localhost:9\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_CONNECTING));
  cr_expect_eq(fx.dns_queries, 0, "answered from /etc/hosts");
  cr_expect_str_eq(log_fmt_addr((const struct sockaddr *)&c->ex->addrs->addrs[0], ip, sizeof(ip)),
                   "127.0.0.1:9");
}

Test(route, a_lookup_past_its_deadline_is_answered_504_and_cancelled) {
  char resp[2048];
  struct conn *c = routing(FX_AFTER, "timeouts:\n  resolve: 200ms\n");
  fx_sends("GET http://silent.test/ HTTP/1.1\r\nHost: silent.test\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_ROUTE));
  cr_expect_eq(route_phase.deadline(c), c->since + 200);
  fx_recv(resp, sizeof(resp), "in time\n");
  cr_expect_not_null(
      strstr(resp, "Proxy-Status: embargo; error=dns_timeout; details=\"DNS resolution timed "
                   "out\""),
      "%s", resp);
}
