/* Bounded log queue and its writer thread. */
#include "proxy/logq.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define WARN_INTERVAL_S 10
/* How long a writer of a line waits for it to be written. A healthy reader
 * takes microseconds, so a line is normally out before the response it
 * belongs to; past this the reader counts as stalled, and nobody waits
 * again until the queue has drained. */
#define HANDOFF_WAIT_MS 50
#define DIAG_BOUND (256u * 1024)

/* One stream: lines accumulate in FILL; the writer swaps FILL with its own
 * empty buffer and writes the batch outside the lock. */
struct logq_sink {
  char *fill;
  size_t len, cap;
  char *spare;
  int fd;
  int new_fd;           /* -1, or the descriptor to switch to */
  uint64_t queued;      /* lines appended so far */
  uint64_t taken;       /* lines in batches the writer took */
  uint64_t written;     /* lines in batches the writer finished */
  atomic_uint_fast64_t dropped;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t more;    /* something to write, or stop */
  pthread_cond_t idle;    /* the writer finished a batch */
  pthread_t thread;
  bool running;
  bool stop;
  bool busy;              /* the writer holds a batch */
  bool syslog_on;
  bool stalled;           /* a handoff wait timed out; cleared once drained */
  struct logq_sink sink[LOGQ_NSTREAMS];
  time_t last_warn;       /* monotonic seconds of the last drop warning */
  uint64_t warned_dropped;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .more = PTHREAD_COND_INITIALIZER,
       .idle = PTHREAD_COND_INITIALIZER};

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return; /* a closed pipe or full disk: the batch is lost, nothing to tell */
    p += w;
    n -= (size_t)w;
  }
}

static void send_syslog(const char *p, size_t n) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t len = nl != NULL ? (size_t)(nl - p) : n;
    syslog(LOG_INFO, "%.*s", (int)len, p);
    len += nl != NULL;
    p += len;
    n -= len;
  }
}

static void write_batch(enum logq_stream s, int fd, const char *p, size_t n) {
  if (s == LOGQ_DECISION && q.syslog_on)
    send_syslog(p, n);
  else
    write_all(fd, p, n);
}

/* Takes one stream's pending lines (and a pending descriptor switch) under
 * the lock. Returns the batch length; *buf is the writer's until the next
 * call. */
static size_t take_batch(struct logq_sink *k, char **buf, int *fd, int *old_fd) {
  size_t n = k->len;
  char *tmp = k->fill;
  *old_fd = -1;
  if (k->new_fd >= 0) {
    *old_fd = k->fd;
    k->fd = k->new_fd;
    k->new_fd = -1;
  }
  *fd = k->fd;
  k->fill = k->spare;
  k->spare = tmp;
  k->len = 0;
  k->taken = k->queued;
  *buf = tmp;
  return n;
}

static bool pending(void) {
  for (int s = 0; s < LOGQ_NSTREAMS; s++)
    if (q.sink[s].len > 0 || q.sink[s].new_fd >= 0)
      return true;
  return false;
}

static void *writer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&q.mu);
  for (;;) {
    while (!pending() && !q.stop) {
      q.busy = false;
      q.stalled = false;
      pthread_cond_broadcast(&q.idle);
      pthread_cond_wait(&q.more, &q.mu);
    }
    if (!pending() && q.stop)
      break;
    q.busy = true;
    for (int s = 0; s < LOGQ_NSTREAMS; s++) {
      char *buf;
      int fd, old_fd;
      size_t n = take_batch(&q.sink[s], &buf, &fd, &old_fd);
      pthread_mutex_unlock(&q.mu);
      if (old_fd > STDERR_FILENO)
        close(old_fd);
      if (n > 0)
        write_batch((enum logq_stream)s, fd, buf, n);
      pthread_mutex_lock(&q.mu);
      q.sink[s].written = q.sink[s].taken;
      pthread_cond_broadcast(&q.idle);
    }
  }
  q.busy = false;
  pthread_cond_broadcast(&q.idle);
  pthread_mutex_unlock(&q.mu);
  return NULL;
}

static void free_buffers(void) {
  for (int s = 0; s < LOGQ_NSTREAMS; s++) {
    free(q.sink[s].fill);
    free(q.sink[s].spare);
    q.sink[s].fill = q.sink[s].spare = NULL;
    q.sink[s].len = q.sink[s].cap = 0;
  }
}

int logq_start(int fd, int syslog_on, size_t bound) {
  if (q.running)
    return -EALREADY;
  q.sink[LOGQ_DECISION].cap = bound;
  q.sink[LOGQ_DECISION].fd = fd;
  q.sink[LOGQ_DIAGNOSTIC].cap = DIAG_BOUND;
  q.sink[LOGQ_DIAGNOSTIC].fd = STDERR_FILENO;
  for (int s = 0; s < LOGQ_NSTREAMS; s++) {
    q.sink[s].new_fd = -1;
    q.sink[s].len = 0;
    q.sink[s].fill = malloc(q.sink[s].cap);
    q.sink[s].spare = malloc(q.sink[s].cap);
    if (q.sink[s].fill == NULL || q.sink[s].spare == NULL) {
      free_buffers();
      return -ENOMEM;
    }
  }
  q.syslog_on = syslog_on != 0;
  if (q.syslog_on)
    openlog("embargo", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  q.stop = false;
  if (pthread_create(&q.thread, NULL, writer_main, NULL) != 0) {
    free_buffers();
    return -EAGAIN;
  }
  q.running = true;
  return 0;
}

static void deadline_in(struct timespec *dl, unsigned ms) {
  clock_gettime(CLOCK_REALTIME, dl);
  dl->tv_sec += ms / 1000;
  dl->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl->tv_nsec >= 1000000000L) {
    dl->tv_sec++;
    dl->tv_nsec -= 1000000000L;
  }
}

static time_t mono_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* Appends under the lock; false if the line does not fit. */
static bool append(struct logq_sink *k, const char *line, size_t len) {
  if (len > k->cap - k->len)
    return false;
  memcpy(k->fill + k->len, line, len);
  k->len += len;
  return true;
}

/* At most once per WARN_INTERVAL_S, tells standard error how many decision
 * lines were lost. Called with the lock held. */
static void warn_drops(void) {
  uint64_t dropped = atomic_load(&q.sink[LOGQ_DECISION].dropped);
  time_t now = mono_seconds();
  char msg[256];
  int n;
  if (dropped == q.warned_dropped || (q.last_warn != 0 && now - q.last_warn < WARN_INTERVAL_S))
    return;
  n = snprintf(msg, sizeof(msg),
               "embargo: warning: decision log: %llu line(s) dropped so far: its reader is "
               "not keeping up (log_buffer %zu bytes)\n",
               (unsigned long long)dropped, q.sink[LOGQ_DECISION].cap);
  if (n > 0 && (size_t)n < sizeof(msg))
    append(&q.sink[LOGQ_DIAGNOSTIC], msg, (size_t)n);
  q.last_warn = now;
  q.warned_dropped = dropped;
}

void logq_write(enum logq_stream stream, const char *line, size_t len) {
  if (!q.running) {
    if (stream == LOGQ_DIAGNOSTIC)
      write_all(STDERR_FILENO, line, len);
    else
      write_all(STDOUT_FILENO, line, len);
    return;
  }
  struct logq_sink *k = &q.sink[stream];
  struct timespec dl;
  uint64_t mine;
  pthread_mutex_lock(&q.mu);
  if (!append(k, line, len)) {
    atomic_fetch_add(&k->dropped, 1);
    warn_drops();
    pthread_mutex_unlock(&q.mu);
    return;
  }
  mine = ++k->queued;
  warn_drops();
  pthread_cond_signal(&q.more);
  if (!q.stalled) {
    deadline_in(&dl, HANDOFF_WAIT_MS);
    while (k->written < mine && !q.stalled)
      if (pthread_cond_timedwait(&q.idle, &q.mu, &dl) != 0)
        q.stalled = true;
  }
  pthread_mutex_unlock(&q.mu);
}

int logq_swap_fd(int fd) {
  if (!q.running)
    return -EINVAL;
  pthread_mutex_lock(&q.mu);
  if (q.sink[LOGQ_DECISION].new_fd > STDERR_FILENO)
    close(q.sink[LOGQ_DECISION].new_fd); /* two reopens before the writer ran */
  q.sink[LOGQ_DECISION].new_fd = fd;
  pthread_cond_signal(&q.more);
  pthread_mutex_unlock(&q.mu);
  return 0;
}

uint64_t logq_dropped(enum logq_stream stream) {
  return atomic_load(&q.sink[stream].dropped);
}

/* Waits until the writer is idle with nothing pending, or the deadline. */
static bool wait_drained(unsigned timeout_ms) {
  struct timespec dl;
  bool ok = true;
  deadline_in(&dl, timeout_ms);
  pthread_mutex_lock(&q.mu);
  while ((pending() || q.busy) && ok)
    ok = pthread_cond_timedwait(&q.idle, &q.mu, &dl) == 0;
  ok = !pending() && !q.busy;
  q.stop = true;
  pthread_cond_signal(&q.more);
  pthread_mutex_unlock(&q.mu);
  return ok;
}

void logq_stop(unsigned timeout_ms) {
  int fd;
  if (!q.running)
    return;
  if (!wait_drained(timeout_ms)) {
    /* The reader is stalled: the writer sits in write(), a cancellation
     * point, outside the lock. What it still held is lost. */
    pthread_cancel(q.thread);
  }
  pthread_join(q.thread, NULL);
  q.running = false;
  fd = q.sink[LOGQ_DECISION].new_fd > STDERR_FILENO ? q.sink[LOGQ_DECISION].new_fd : -1;
  if (fd >= 0)
    close(fd);
  fd = q.sink[LOGQ_DECISION].fd;
  if (fd > STDERR_FILENO)
    close(fd);
  if (q.syslog_on)
    closelog();
  free_buffers();
}
