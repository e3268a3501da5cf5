/* Bounded log queues, one writer thread each: a stalled decision-log reader
 * must not silence the diagnostics, nor the other way round. */
#include "proxy/logq.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define WARN_INTERVAL_S 10
#define DIAG_BOUND      (256u * 1024)
/* How long a writer of a line waits for it to be written. A healthy reader
 * takes microseconds, so a line is normally out before the response it
 * belongs to; past this the reader counts as stalled, and nobody waits
 * again until the queue has drained. */
#define HANDOFF_WAIT_MS 50

/* One stream: lines accumulate in FILL; the writer swaps FILL with its own
 * empty buffer and writes the batch outside the lock. */
struct logq {
  pthread_mutex_t mu;
  pthread_cond_t more; /* something to write, or stop */
  pthread_cond_t done; /* the writer finished a batch */
  pthread_t thread;
  bool running, stop, busy;
  bool exited;         /* the writer returned */
  atomic_bool abandon; /* stopping with a stalled reader: give up the batch */
  bool stalled;        /* a handoff wait timed out; cleared once drained */
  bool syslog_on;
  int kind;               /* S_IFIFO, S_IFSOCK, or 0: how the fast path may write */
  size_t pipe_size;       /* S_IFIFO: the pipe's capacity */
  char *fill, *spare;
  size_t len, cap;
  int fd;
  int new_fd;       /* -1, or the descriptor to switch to */
  uint64_t queued;  /* lines appended so far */
  uint64_t taken;   /* lines in batches the writer took */
  uint64_t written; /* lines in batches the writer finished */
  atomic_uint_fast64_t dropped;
};

static struct logq queues[LOGQ_NSTREAMS] = {
    [LOGQ_DECISION] = {.mu = PTHREAD_MUTEX_INITIALIZER,
                       .more = PTHREAD_COND_INITIALIZER,
                       .done = PTHREAD_COND_INITIALIZER,
                       .fd = STDOUT_FILENO,
                       .new_fd = -1},
    [LOGQ_DIAGNOSTIC] = {.mu = PTHREAD_MUTEX_INITIALIZER,
                         .more = PTHREAD_COND_INITIALIZER,
                         .done = PTHREAD_COND_INITIALIZER,
                         .fd = STDERR_FILENO,
                         .new_fd = -1},
};
static time_t last_warn;        /* monotonic seconds of the last drop warning */
static uint64_t warned_dropped; /* decision lines dropped when it was written */

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= (size_t)w;
  }
}

/* The writer's write: to a pipe or socket in pieces of PIPE_BUF once poll
 * says there is room, so it never sits in write() and notices when it is
 * told to give up; to a file (where poll says nothing) in one go. */
static void write_batch(struct logq *q, int fd, const char *p, size_t n) {
  struct stat st;
  bool piped = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
  while (n > 0 && !atomic_load(&q->abandon)) {
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    size_t chunk = piped && n > PIPE_BUF ? PIPE_BUF : n;
    ssize_t w;
    if (piped && poll(&pf, 1, 200) <= 0)
      continue; /* full (or EINTR): look at the abandon flag, try again */
    w = write(fd, p, chunk);
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

static bool pending(const struct logq *q) {
  return q->len > 0 || q->new_fd >= 0;
}

/* Takes the pending lines (and a pending descriptor switch) under the lock.
 * Returns the batch length; *BUF is the writer's until the next call. */
static size_t take_batch(struct logq *q, char **buf, int *old_fd) {
  size_t n = q->len;
  *old_fd = -1;
  if (q->new_fd >= 0) {
    *old_fd = q->fd;
    q->fd = q->new_fd;
    q->new_fd = -1;
  }
  *buf = q->fill;
  q->fill = q->spare;
  q->spare = *buf;
  q->len = 0;
  q->taken = q->queued;
  return n;
}

static void *writer_main(void *arg) {
  struct logq *q = arg;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    char *buf;
    int old_fd, fd;
    size_t n;
    while (!pending(q) && !q->stop) {
      q->busy = false;
      q->stalled = false;
      pthread_cond_broadcast(&q->done);
      pthread_cond_wait(&q->more, &q->mu);
    }
    if (!pending(q))
      break; /* stopping, and everything is out */
    q->busy = true;
    n = take_batch(q, &buf, &old_fd);
    fd = q->fd;
    pthread_mutex_unlock(&q->mu);
    if (old_fd > STDERR_FILENO)
      close(old_fd);
    if (n > 0 && q->syslog_on)
      send_syslog(buf, n);
    else if (n > 0)
      write_batch(q, fd, buf, n);
    pthread_mutex_lock(&q->mu);
    q->written = q->taken;
    pthread_cond_broadcast(&q->done);
  }
  q->busy = false;
  q->exited = true;
  pthread_cond_broadcast(&q->done);
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

static void free_buffers(struct logq *q) {
  free(q->fill);
  free(q->spare);
  q->fill = q->spare = NULL;
  q->len = q->cap = 0;
}

/* Whether the loop may write to FD itself, knowing it will not block: a
 * pipe whose free space it can measure, or a socket (MSG_DONTWAIT). Files,
 * terminals and syslog always go through the writer thread. */
static void classify(struct logq *q, int fd) {
  struct stat st;
  int size;
  q->kind = 0;
  if (q->syslog_on || fd < 0 || fstat(fd, &st) != 0)
    return;
  if (S_ISSOCK(st.st_mode)) {
    q->kind = S_IFSOCK;
  } else if (S_ISFIFO(st.st_mode) && (size = fcntl(fd, F_GETPIPE_SZ)) > 0) {
    q->kind = S_IFIFO;
    q->pipe_size = (size_t)size;
  }
}

/* The fast path, with Q's lock held and nothing queued: writes what it can
 * of LINE without blocking. Returns the bytes written (0: none, or not a
 * descriptor it can judge). */
static size_t write_now(struct logq *q, const char *line, size_t len) {
  int queued = 0;
  ssize_t w;
  if (q->kind == S_IFSOCK) {
    w = send(q->fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return w > 0 ? (size_t)w : 0;
  }
  /* A pipe takes a write whole, without blocking, when this much is free
   * (two pages of margin for partly filled buffers). */
  if (q->kind != S_IFIFO || ioctl(q->fd, FIONREAD, &queued) != 0 ||
      (size_t)queued + len + 8192 > q->pipe_size)
    return 0;
  w = write(q->fd, line, len);
  return w > 0 ? (size_t)w : 0;
}

static int queue_start(struct logq *q, int fd, bool syslog_on, size_t bound) {
  q->cap = bound;
  q->fd = fd;
  q->new_fd = -1;
  q->len = 0;
  q->stop = false;
  q->exited = false;
  atomic_store(&q->abandon, false);
  q->syslog_on = syslog_on;
  classify(q, fd);
  q->fill = malloc(bound);
  q->spare = malloc(bound);
  if (q->fill == NULL || q->spare == NULL) {
    free_buffers(q);
    return -ENOMEM;
  }
  if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
    free_buffers(q);
    return -EAGAIN;
  }
  q->running = true;
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

/* Flushes within TIMEOUT_MS if the reader allows, then ends the writer. */
static void queue_stop(struct logq *q, unsigned timeout_ms) {
  struct timespec dl;
  bool drained = true;
  if (!q->running)
    return;
  deadline_in(&dl, timeout_ms);
  pthread_mutex_lock(&q->mu);
  while ((pending(q) || q->busy) && drained)
    drained = pthread_cond_timedwait(&q->done, &q->mu, &dl) == 0;
  drained = !pending(q) && !q->busy;
  q->stop = true;
  if (!drained) /* a stalled reader: what is still queued is lost */
    atomic_store(&q->abandon, true);
  pthread_cond_signal(&q->more);
  deadline_in(&dl, 1000);
  while (!q->exited && pthread_cond_timedwait(&q->done, &q->mu, &dl) == 0)
    ;
  pthread_mutex_unlock(&q->mu);
  q->running = false;
  if (!q->exited) {
    /* Stuck in a write to a file on a stalled disk (or in syslog): leave
     * it there with its buffers; the process is ending. */
    pthread_detach(q->thread);
    return;
  }
  pthread_join(q->thread, NULL);
  if (q->new_fd > STDERR_FILENO)
    close(q->new_fd);
  if (q->fd > STDERR_FILENO)
    close(q->fd);
  q->new_fd = -1;
  free_buffers(q);
}

int logq_start(int fd, int syslog_on, size_t bound) {
  int rc;
  if (queues[LOGQ_DECISION].running)
    return -EALREADY;
  if (syslog_on)
    openlog("embargo", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  if ((rc = queue_start(&queues[LOGQ_DIAGNOSTIC], STDERR_FILENO, false, DIAG_BOUND)) != 0)
    return rc;
  if ((rc = queue_start(&queues[LOGQ_DECISION], fd, syslog_on != 0, bound)) != 0)
    queue_stop(&queues[LOGQ_DIAGNOSTIC], 0);
  return rc;
}

static time_t mono_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* Appends under Q's lock; false if the line does not fit. */
static bool append(struct logq *q, const char *line, size_t len) {
  if (len > q->cap - q->len)
    return false;
  memcpy(q->fill + q->len, line, len);
  q->len += len;
  q->queued++;
  pthread_cond_signal(&q->more);
  return true;
}

/* At most once per WARN_INTERVAL_S, tells standard error how many decision
 * lines were lost. Called with the decision queue's lock held (the order is
 * always decision, then diagnostic). */
static void warn_drops(uint64_t dropped) {
  struct logq *diag = &queues[LOGQ_DIAGNOSTIC];
  time_t now = mono_seconds();
  char msg[256];
  int n;
  if (dropped == warned_dropped || (last_warn != 0 && now - last_warn < WARN_INTERVAL_S))
    return;
  n = snprintf(msg, sizeof(msg),
               "embargo: warning: decision log: %llu line(s) dropped so far: its reader is "
               "not keeping up (log_buffer %zu bytes)\n",
               (unsigned long long)dropped, queues[LOGQ_DECISION].cap);
  pthread_mutex_lock(&diag->mu);
  if (n > 0 && (size_t)n < sizeof(msg) && !append(diag, msg, (size_t)n))
    atomic_fetch_add(&diag->dropped, 1);
  pthread_mutex_unlock(&diag->mu);
  last_warn = now;
  warned_dropped = dropped;
}

void logq_write(enum logq_stream stream, const char *line, size_t len) {
  struct logq *q = &queues[stream];
  struct timespec dl;
  uint64_t mine;
  if (!q->running) {
    write_all(stream == LOGQ_DIAGNOSTIC ? STDERR_FILENO : STDOUT_FILENO, line, len);
    return;
  }
  pthread_mutex_lock(&q->mu);
  if (q->kind != 0 && !pending(q) && !q->busy) {
    size_t w = write_now(q, line, len);
    if (w == len) {
      pthread_mutex_unlock(&q->mu);
      return;
    }
    line += w; /* the reader is slow: the rest goes to the writer, no waiting */
    len -= w;
    q->stalled = true;
  }
  if (!append(q, line, len)) {
    uint64_t dropped = atomic_fetch_add(&q->dropped, 1) + 1;
    if (stream == LOGQ_DECISION)
      warn_drops(dropped);
    pthread_mutex_unlock(&q->mu);
    return;
  }
  mine = q->queued;
  if (!q->stalled) {
    deadline_in(&dl, HANDOFF_WAIT_MS);
    while (q->written < mine && !q->stalled)
      if (pthread_cond_timedwait(&q->done, &q->mu, &dl) != 0)
        q->stalled = true;
  }
  pthread_mutex_unlock(&q->mu);
}

int logq_swap_fd(int fd) {
  struct logq *q = &queues[LOGQ_DECISION];
  if (!q->running)
    return -EINVAL;
  pthread_mutex_lock(&q->mu);
  q->kind = 0; /* a reopened log is a file; the fast path is for pipes */
  if (q->new_fd > STDERR_FILENO)
    close(q->new_fd); /* two reopens before the writer ran */
  q->new_fd = fd;
  pthread_cond_signal(&q->more);
  pthread_mutex_unlock(&q->mu);
  return 0;
}

uint64_t logq_dropped(enum logq_stream stream) {
  return atomic_load(&queues[stream].dropped);
}

void logq_stop(unsigned timeout_ms) {
  bool sys = queues[LOGQ_DECISION].syslog_on;
  queue_stop(&queues[LOGQ_DECISION], timeout_ms);
  queue_stop(&queues[LOGQ_DIAGNOSTIC], timeout_ms);
  if (sys)
    closelog();
}
