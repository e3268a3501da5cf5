/* Log queue micro-benchmark: how soon a line reaches a reading file (the
 * writer lingers 10 ms to batch lines), how long 2,000 lines take to queue
 * into a pipe nobody reads (they are dropped, never waited for), and how
 * long a stop takes to give up on that reader. Prints figures only;
 * asserts nothing about time. */
#define _DEFAULT_SOURCE

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/base/logq.h"

#define LINES 200

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t make_line(char *buf, size_t size, int i) {
  return (size_t)snprintf(buf, size, "{\"line\":%06d,\"pad\":\"%0150d\"}\n", i, 0);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Seconds from queueing each of LINES lines to reading it back; sorted. */
static int latencies(double *out) {
  char path[] = "/tmp/embargo-bench-logq-XXXXXX", line[200], buf[256];
  int fd = mkstemp(path), rd = open(path, O_RDONLY);
  if (fd < 0 || rd < 0 || logq_start(fd, 0, 1 << 16) != 0)
    return -1;
  for (int i = 0; i < LINES; i++) {
    size_t n = make_line(line, sizeof(line), i);
    double t0 = now_s();
    ssize_t got = 0;
    logq_write(LOGQ_DECISION, line, n);
    for (int k = 0; k < 100000 && got <= 0; k++)
      if ((got = read(rd, buf, sizeof(buf))) <= 0)
        usleep(200);
    out[i] = now_s() - t0;
  }
  logq_stop(1000);
  close(rd);
  unlink(path);
  qsort(out, LINES, sizeof(out[0]), cmp_double);
  return 0;
}

int main(void) {
  static double lat[LINES];
  char line[200];
  int fds[2];
  double t0, queued, stopped;

  if (latencies(lat) != 0) {
    perror("bench_logq");
    return 1;
  }
  printf("line to reader: median %.1f ms, p90 %.1f ms, worst %.1f ms (%d lines)\n",
         lat[LINES / 2] * 1e3, lat[LINES * 9 / 10] * 1e3, lat[LINES - 1] * 1e3, LINES);
  signal(SIGPIPE, SIG_IGN);
  if (pipe(fds) != 0 || logq_start(fds[1], 0, 8192) != 0) {
    perror("bench_logq");
    return 1;
  }
  t0 = now_s();
  for (int i = 0; i < 2000; i++)
    logq_write(LOGQ_DECISION, line, make_line(line, sizeof(line), i));
  queued = now_s() - t0;
  t0 = now_s();
  logq_stop(300);
  stopped = now_s() - t0;
  close(fds[0]);
  printf("stalled pipe: 2000 lines queued in %.1f ms (%llu dropped); stop gave up in %.0f ms\n",
         queued * 1e3, (unsigned long long)logq_dropped(LOGQ_DECISION), stopped * 1e3);
  return 0;
}
