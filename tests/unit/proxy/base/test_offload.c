/* Unit tests for proxy/base/offload.c: work runs on the pool's threads,
 * below the loop's priority, and each piece comes back, once, to the loop
 * of the port it was queued on; a closing port refuses new work, runs
 * the DONE of what was queued, and keeps its loop alive until then. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "proxy/base/offload.h"

#define NREQ 200

struct job {
  struct offload_req req; /* first */
  int index;
  pid_t thread; /* where WORK ran */
  int nice;     /* its priority there */
  bool done_on_loop;
};

static struct offload *pool;
static uv_loop_t loop;
static struct job jobs[NREQ];
static int order[NREQ];
static size_t ndone;
static pid_t loop_thread;
static int own_nice;
static uv_sem_t gate;
static atomic_bool gated;

static void work(struct offload_req *r) {
  struct job *j = (struct job *)r;
  if (atomic_load(&gated))
    uv_sem_wait(&gate);
  j->thread = (pid_t)syscall(SYS_gettid);
  errno = 0;
  j->nice = getpriority(PRIO_PROCESS, (id_t)j->thread);
}

static void done(struct offload_req *r) {
  struct job *j = (struct job *)r;
  j->done_on_loop = (pid_t)syscall(SYS_gettid) == loop_thread;
  cr_assert_lt(ndone, NREQ, "more pieces came back than were queued");
  order[ndone++] = j->index;
}

/* Runs the loop until N pieces have come back, for at most about 5 s. */
static bool run_until_done(size_t n) {
  struct timespec ts = {0, 1000000};
  for (int i = 0; i < 5000 && ndone < n; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    if (ndone < n)
      nanosleep(&ts, NULL);
  }
  return ndone >= n;
}

static void setup(void) {
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(offload_new(2, 10, &pool), 0);
  loop_thread = (pid_t)syscall(SYS_gettid);
  own_nice = getpriority(PRIO_PROCESS, 0);
  ndone = 0;
  memset(jobs, 0, sizeof(jobs));
  for (int i = 0; i < NREQ; i++)
    jobs[i].index = i;
}

static void teardown(void) {
  offload_free(pool);
  pool = NULL;
  cr_expect_eq(uv_loop_close(&loop), 0, "every handle closed");
}

TestSuite(offload, .init = setup, .fini = teardown,
          .timeout = 60); /* a lost piece fails, not hangs */

Test(offload, work_runs_on_the_threads_below_the_loop_and_comes_back_in_order) {
  struct offload_port *port;
  cr_assert_eq(offload_threads(pool), 2);
  cr_assert_eq(offload_port_new(&loop, pool, &port), 0);
  for (int i = 0; i < NREQ; i++)
    cr_assert_eq(offload_queue(port, &jobs[i].req, work, done), 0);
  cr_assert(run_until_done(NREQ), "%zu of %d came back", ndone, NREQ);
  for (int i = 0; i < NREQ; i++) {
    cr_expect(jobs[i].thread != 0 && jobs[i].thread != loop_thread, "job %d off the loop", i);
    /* nice 10, or the test's own when it already runs lower than that */
    cr_expect_eq(jobs[i].nice, own_nice > 10 ? own_nice : 10, "job %d below the loop", i);
    cr_expect(jobs[i].done_on_loop, "job %d back on the loop", i);
  }
  /* Two threads may finish out of order: every job comes back exactly once. */
  for (int i = 0; i < NREQ; i++)
    for (int k = i + 1; k < NREQ; k++)
      cr_assert_neq(order[i], order[k]);
  offload_port_close(port);
  cr_expect_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
}

/* A port closed while work is out: no new work is taken, what was queued
 * still comes back (DONE runs), and the loop runs until it has. */
Test(offload, a_closing_port_waits_for_its_work_and_refuses_more) {
  struct offload_port *port;
  cr_assert_eq(uv_sem_init(&gate, 0), 0);
  atomic_store(&gated, true);
  cr_assert_eq(offload_port_new(&loop, pool, &port), 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(offload_queue(port, &jobs[i].req, work, done), 0);
  offload_port_close(port);
  cr_expect_eq(offload_queue(port, &jobs[4].req, work, done), -ESHUTDOWN);
  cr_expect_neq(uv_run(&loop, UV_RUN_NOWAIT), 0, "the port keeps the loop alive");
  cr_expect_eq(ndone, 0);
  atomic_store(&gated, false);
  for (int i = 0; i < 4; i++)
    uv_sem_post(&gate);
  cr_expect_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_expect_eq(ndone, 4, "each DONE ran before the port closed");
  uv_sem_destroy(&gate);
}

/* Two loops' ports on one pool: each job comes back to its own loop. */
Test(offload, each_port_gets_its_own_work_back) {
  uv_loop_t other;
  struct offload_port *a, *b;
  cr_assert_eq(uv_loop_init(&other), 0);
  cr_assert_eq(offload_port_new(&loop, pool, &a), 0);
  cr_assert_eq(offload_port_new(&other, pool, &b), 0);
  for (int i = 0; i < 20; i++)
    cr_assert_eq(offload_queue(i % 2 == 0 ? a : b, &jobs[i].req, work, done), 0);
  offload_port_close(a);
  cr_expect_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_expect_eq(ndone, 10, "the first loop ran only its own");
  for (size_t i = 0; i < ndone; i++)
    cr_expect_eq(order[i] % 2, 0);
  offload_port_close(b);
  cr_expect_eq(uv_run(&other, UV_RUN_DEFAULT), 0);
  cr_expect_eq(ndone, 20);
  cr_expect_eq(uv_loop_close(&other), 0);
}

/* A port closed with work out, again and again, several pieces at a time
 * from both threads, under the sanitizers: every piece comes back before
 * the port closes, and a thread that rings a port after its loop has taken
 * the last piece and closed it touches memory the pool still owns (closed
 * ports are freed by offload_free, once the threads are joined). */
Test(offload, ports_closed_with_work_out_get_it_all_back) {
  for (int round = 0; round < 500; round++) {
    struct offload_port *port;
    ndone = 0;
    cr_assert_eq(offload_port_new(&loop, pool, &port), 0);
    for (int i = 0; i < 8; i++)
      cr_assert_eq(offload_queue(port, &jobs[i].req, work, done), 0);
    cr_assert(run_until_done(1), "round %d", round);
    offload_port_close(port);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(ndone, 8, "round %d", round);
  }
}
