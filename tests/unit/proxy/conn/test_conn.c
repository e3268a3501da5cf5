/* Unit tests for proxy/conn.c, the connection core: input a phase left is
 * fed to the next phase once it is entered; LINGER after a closing answer;
 * what the worker asks of its connections (counting them, the oldest,
 * closing the idle ones for a drain). */
#include "conn_fixture.h"

TestSuite(conn, .fini = fx_finish);

static const char denied[] = "GET http://upd.acme.test/ HTTP/1.1\r\nHost: upd.acme.test\r\n\r\n";

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

Test(conn, a_request_waiting_behind_an_answered_one_is_taken_next) {
  char both[256], got[8192] = "";
  fx_real_table();
  fx_start("proxy", FX_AFTER, NULL);
  fx_connect();
  snprintf(both, sizeof(both), "%s%s", denied, denied);
  fx_sends(both);
  for (int i = 0; i < 20 && count(got, "wrong.\n") < 2; i++)
    fx_recv(got + strlen(got), sizeof(got) - strlen(got), "wrong.\n");
  cr_expect_eq(count(got, "HTTP/1.1 403 Forbidden\r\n"), 2, "%s", got);
  cr_expect(fx_reach(CONN_ST_HEAD));
  cr_expect_eq(fx.c->ex->spill_len, 0);
}

Test(conn, a_closing_answer_is_followed_by_fin_then_the_connection_lingers) {
  char got[2048];
  fx_real_table();
  fx_start("proxy", FX_AFTER, NULL);
  fx_connect();
  fx_sends("GET /origin-form HTTP/1.1\r\n\r\n");
  fx_recv(got, sizeof(got), NULL); /* until the proxy's FIN */
  cr_expect(strncmp(got, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "%s", got);
  cr_expect_not_null(strstr(got, "Connection: close\r\n"), "%s", got);
  cr_assert(fx_reach(CONN_ST_LINGER), "the client has not closed yet");
  cr_expect_eq(conn_linger_phase.deadline(fx.c), fx.c->since + 2000);
  close(fx.client);
  fx.client = -1;
  cr_expect(fx_reach(CONN_ST_CLOSED), "gone once the client closed too");
}

static struct conn *first;

static bool two(void) {
  return fx.srv.nconns == 2;
}

static bool first_mid_head(void) {
  return first->ex->head_timing;
}

Test(conn, a_drain_closes_only_the_connections_between_requests) {
  struct server_stats st;
  int busy;
  fx_real_table();
  fx_start("proxy", FX_AFTER, NULL);
  first = fx_connect();
  busy = fx.client;
  fx.client = -1;
  fx_connect(); /* the second, idle: its client is fx.client */
  cr_assert(fx_run_until(two));
  cr_assert_eq(send(busy, "GET http://pla", 14, 0), 14);
  cr_assert(fx_run_until(first_mid_head));
  memset(&st, 0, sizeof(st));
  conn_count(&fx.srv, &st);
  cr_expect_eq(st.nconns, 2);
  cr_expect_eq(st.active[0], 2);
  cr_expect_eq(conn_oldest(&fx.srv), first->id);
  conn_close_all(&fx.srv, true);
  cr_expect_eq(fx.srv.nconns, 1);
  cr_expect_eq(fx.srv.conns, first, "the one mid-head stays");
  close(busy);
}

/* A phase whose deadline the test sets; its timeout records when it ran. */
static uint64_t timed_due, timed_at;
static int timed_fired;

static uint64_t timed_deadline(const struct conn *c) {
  return timed_due;
}

static enum phase_rc timed_timeout(struct conn *c) {
  timed_fired++;
  timed_at = uv_now(c->srv->loop);
  timed_due = 0; /* as a phase does: the deadline moves on */
  return PHASE_WAIT;
}

static enum phase_rc timed_resume(struct conn *c, int status) {
  return PHASE_WAIT; /* the core settles: the deadline is read again */
}

static const struct phase timed = {.enter = fx_stop_enter,
                                   .resume = timed_resume,
                                   .timeout = timed_timeout,
                                   .deadline = timed_deadline};

static bool timed_out(void) {
  return timed_fired > 0;
}

/* Sets the deadline to MS from now (0: none) and lets the core read it. */
static uint64_t timed_set(uint64_t ms) {
  uv_update_time(&fx.loop);
  timed_due = ms != 0 ? uv_now(&fx.loop) + ms : 0;
  conn_resume(fx.c, 0);
  return timed_due;
}

/* The timer is set again only when a deadline moves earlier (a keep-alive
 * request moves it at every phase, which cost two timer updates each): a
 * deadline moved later still fires at its new time, one moved earlier at
 * its own, and one taken away not at all. */
Test(conn, a_deadline_fires_where_it_is_now_wherever_it_was_when_the_timer_was_set) {
  uint64_t due;
  fx_stop_table();
  fx.table[CONN_ST_HEAD] = &timed;
  fx_start("proxy", FX_AFTER, NULL);
  timed_due = 0;
  fx_connect();

  timed_set(30);
  due = timed_set(250); /* later */
  cr_assert(fx_run_until(timed_out));
  cr_expect_geq(timed_at, due, "fired at %llu, before the deadline moved to %llu",
                (unsigned long long)timed_at, (unsigned long long)due);

  timed_fired = 0;
  timed_set(60 * 1000);
  due = timed_set(30); /* earlier: fx_run_until gives up long before a minute */
  cr_assert(fx_run_until(timed_out), "the earlier deadline was not honoured");
  cr_expect_geq(timed_at, due);

  timed_fired = 0;
  timed_set(30);
  timed_set(0); /* taken away; then a later one is the first to fire */
  due = timed_set(200);
  cr_assert(fx_run_until(timed_out));
  cr_expect_geq(timed_at, due);
  cr_expect_eq(timed_fired, 1);
}
