/* The log queue: a reader that stops reading costs dropped, counted lines,
 * never a blocked writer; a healthy reader gets every line, in order,
 * without a stop, and a burst of lines in a few writes. A call that blocked
 * would hang its test until ctest's timeout fails it; how long each takes
 * is measured by build/tests/bench_logq, not asserted here. */
#define _DEFAULT_SOURCE

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/base/logq.h"

static char line[200];

static size_t make_line(int i) {
  int n = snprintf(line, sizeof(line), "{\"line\":%06d,\"pad\":\"%0150d\"}\n", i, 0);
  return (size_t)n;
}

Test(logq, stalled_pipe_drops_and_counts_without_blocking) {
  int fds[2];
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(logq_start(fds[1], 0, 8192), 0);
  /* ~330 KiB: five times the pipe plus the queue, and nothing reads: every
   * call returns, and what did not fit is dropped and counted. */
  for (int i = 0; i < 2000; i++)
    logq_write(LOGQ_DECISION, line, make_line(i));
  uint64_t dropped = logq_dropped(LOGQ_DECISION);
  cr_expect_gt(dropped, 1000);
  cr_expect_lt(dropped, 2000);
  logq_stop(300); /* gives up on the stalled reader and returns */
  close(fds[0]);
}

Test(logq, healthy_reader_gets_every_line_in_order) {
  char path[] = "/tmp/embargo-logq-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(logq_start(fd, 0, 1 << 20), 0); /* the queue owns FD now */
  for (int i = 0; i < 5000; i++)
    logq_write(LOGQ_DECISION, line, make_line(i));
  logq_stop(5000);
  cr_expect_eq(logq_dropped(LOGQ_DECISION), 0);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  char buf[256];
  int i = 0;
  while (fgets(buf, sizeof(buf), f) != NULL) {
    make_line(i);
    cr_assert_str_eq(buf, line, "line %d", i);
    i++;
  }
  fclose(f);
  unlink(path);
  cr_expect_eq(i, 5000);
}

Test(logq, each_line_reaches_its_reader_before_the_next_is_queued_without_stop) {
  char path[] = "/tmp/embargo-logq-XXXXXX";
  int fd = mkstemp(path), rd = open(path, O_RDONLY);
  cr_assert_geq(rd, 0);
  cr_assert_eq(logq_start(fd, 0, 1 << 16), 0);
  for (int i = 0; i < 20; i++) {
    size_t n = make_line(i);
    char buf[256];
    ssize_t got = 0;
    logq_write(LOGQ_DECISION, line, n);
    /* The writer lingers 10 ms, then writes: waited for, bounded in count. */
    for (int k = 0; k < 2000 && got == 0; k++) {
      if ((got = read(rd, buf, sizeof(buf))) == 0)
        usleep(5000);
    }
    cr_assert_eq(got, (ssize_t)n, "line %d did not reach the file", i);
    cr_assert(memcmp(buf, line, n) == 0, "line %d", i);
  }
  logq_stop(1000);
  close(rd);
  unlink(path);
}

Test(logq, a_burst_of_lines_leaves_in_few_writes) {
  int sv[2];
  char buf[8192];
  size_t total = 0, expect = 0;
  int writes = 0;
  /* A datagram per write(): the reader sees how the lines were batched. */
  cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  cr_assert_eq(logq_start(sv[1], 0, 1 << 16), 0);
  for (int i = 0; i < 100; i++) {
    size_t n = make_line(i);
    logq_write(LOGQ_DECISION, line, n);
    expect += n;
  }
  logq_stop(1000); /* closes sv[1]: the reader then sees the end */
  for (ssize_t got; (got = recv(sv[0], buf, sizeof(buf), 0)) > 0; writes++) {
    cr_assert_eq(buf[got - 1], '\n', "a write ended inside a line");
    cr_assert_leq(got, PIPE_BUF);
    total += (size_t)got;
  }
  close(sv[0]);
  cr_expect_eq(total, expect);
  /* 17,900 bytes: five writes of whole lines up to PIPE_BUF each, one per
   * line if every line woke the writer. */
  cr_expect_leq(writes, 15, "%d writes for 100 lines", writes);
}
