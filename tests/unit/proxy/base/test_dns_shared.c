/* Lookups shared between loops (one resolver per worker, one answer cache):
 * a loop looking up a name another loop is resolving sends no query of its
 * own, and when the loop resolving it stops first, the waiting loop looks
 * the name up itself instead of failing. Two loops in one thread, a DNS
 * server on loopback that reads queries and never answers. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/base/dns.h"
#include "proxy/base/dnscache.h"

static int hole_fd = -1;
static char servers[64];

/* A UDP socket on 127.0.0.1 that never answers. */
static void setup(void) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sin);
  hole_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  cr_assert_geq(hole_fd, 0);
  cr_assert_eq(bind(hole_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  cr_assert_eq(getsockname(hole_fd, (struct sockaddr *)&sin, &len), 0);
  snprintf(servers, sizeof(servers), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
}

static void teardown(void) {
  close(hole_fd);
}

TestSuite(dns_shared, .init = setup, .fini = teardown);

/* Queries that reached the hole since the last call. */
static int hole_drain(void) {
  char buf[1500];
  int n = 0;
  while (recv(hole_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
    n++;
  return n;
}

static void pause_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Runs LOOP without blocking for about MS milliseconds, or until *DONE. */
static void run_for(uv_loop_t *loop, long ms, const int *done) {
  for (long t = 0; t < ms && (done == NULL || !*done); t += 10) {
    uv_run(loop, UV_RUN_NOWAIT);
    pause_ms(10);
  }
}

struct answer {
  int calls;
  enum dns_status status;
};

static void on_answer(void *arg, enum dns_status status, const struct dns_result *r) {
  struct answer *a = arg;
  (void)r;
  a->calls++;
  a->status = status;
}

Test(dns_shared, a_waiting_loop_resolves_the_name_itself_when_the_resolving_loop_stops) {
  struct dnscache_limits lim = {.min_ttl_ms = 1000,
                                .max_ttl_ms = 10000,
                                .negative_ttl_ms = 1000,
                                .max_entries = 100,
                                .max_bytes = 1 << 20};
  struct resolver_cache *shared;
  struct resolver *ra, *rb;
  struct dns_query *qa = NULL, *qb = NULL;
  struct answer aa = {0}, ab = {0};
  uv_loop_t la, lb;
  char err[256];

  cr_assert_eq(uv_loop_init(&la), 0);
  cr_assert_eq(uv_loop_init(&lb), 0);
  cr_assert_eq(resolver_cache_new(&lim, &shared), 0);
  cr_assert_eq(resolver_new(&la, servers, 1000, NULL, shared, &ra, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(resolver_new(&lb, servers, 1000, NULL, shared, &rb, err, sizeof(err)), 0, "%s", err);

  cr_assert_eq(resolver_lookup(ra, "slow.example", 80, on_answer, &aa, &qa), 0);
  run_for(&la, 100, NULL);
  cr_expect_gt(hole_drain(), 0, "loop A sent the query");
  cr_assert_eq(resolver_lookup(rb, "slow.example", 80, on_answer, &ab, &qb), 0);
  run_for(&lb, 100, NULL);
  cr_expect_eq(hole_drain(), 0, "loop B waits for A's query instead of sending its own");
  cr_expect_not_null(qb);
  cr_expect_eq(ab.calls, 0);

  /* A stops (its connections gone first, as in server_stop). */
  resolver_cancel(&qa);
  resolver_close(ra);
  cr_assert_eq(uv_run(&la, UV_RUN_DEFAULT), 0);
  cr_expect_eq(aa.calls, 0, "a cancelled lookup is not answered");

  run_for(&lb, 5000, &ab.calls);
  cr_expect_gt(hole_drain(), 0, "loop B sent a query of its own once A stopped");
  cr_expect_eq(ab.calls, 1);
  cr_expect_eq(ab.status, DNS_TIMEOUT, "got %s instead of the timeout", dns_status_name(ab.status));
  cr_expect_null(qb);

  resolver_close(rb);
  cr_assert_eq(uv_run(&lb, UV_RUN_DEFAULT), 0);
  cr_expect_eq(uv_loop_close(&la), 0);
  cr_expect_eq(uv_loop_close(&lb), 0);
  resolver_cache_free(shared);
}
