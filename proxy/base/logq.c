/* Bounded log queues, one writer thread each: a stalled decision-log reader
 * must not silence the diagnostics, nor the other way round. The loop only
 * appends a line and, when the writer sleeps, wakes it; the writer lets a
 * burst gather and writes it with one write(). */
#include "proxy/base/logq.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define WARN_INTERVAL_S 10
#define DIAG_BOUND      (256u * 1024)
/* How long the writer lets lines gather once one is queued: a busy proxy
 * then wakes it at most this often, and a burst of lines leaves in one
 * write(). It is also how late a line normally reaches its reader. */
#define LINGER_MS 10

/* What the writer thread is doing, which tells logq_write whether a line
 * must wake it (a futex call) or not (a memcpy is all the loop pays):
 *
 *   IDLE ──a line (the writer is signalled)──▶ LINGERING
 *    ▲                                             │ LINGER_MS over, the queue
 *    │                                             │ half full (signalled), or stop
 *    │           lines queued meanwhile            ▼
 *    └──nothing queued── WRITING ─────────▶ LINGERING
 */
enum writer_state {
  WRITER_IDLE,      /* waits on MORE: the next line signals it */
  WRITER_LINGERING, /* lets lines gather; only a half-full queue signals it */
  WRITER_WRITING,   /* writes a batch outside the lock; nobody signals it */
};

/* One stream: lines accumulate in FILL; the writer swaps FILL with its own
 * empty buffer and writes the batch outside the lock. */
struct logq {
  pthread_mutex_t mu;
  pthread_cond_t more; /* lines for an idle writer, a half-full queue, a new fd, or stop */
  pthread_cond_t done; /* the writer returned */
  pthread_t thread;
  enum writer_state state;
  bool running, stop;
  bool exited;         /* the writer returned */
  atomic_bool abandon; /* stopping with a stalled reader: give up the batch */
  bool syslog_on;
  char *fill, *spare;
  size_t len, cap;
  int fd;
  int new_fd; /* -1, or the descriptor to switch to */
  atomic_uint_fast64_t dropped;
};

static struct logq queues[LOGQ_NSTREAMS] = {
    [LOGQ_DECISION] = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = STDOUT_FILENO, .new_fd = -1},
    [LOGQ_DIAGNOSTIC] = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = STDERR_FILENO, .new_fd = -1},
};
static pthread_once_t conds_once = PTHREAD_ONCE_INIT;
static time_t last_warn;        /* monotonic seconds of the last drop warning */
static uint64_t warned_dropped; /* decision lines dropped when it was written */

/* The condition variables time out on the monotonic clock: a clock step
 * must not stretch the linger or the stop. */
static void init_conds(void) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  for (int i = 0; i < LOGQ_NSTREAMS; i++) {
    pthread_cond_init(&queues[i].more, &attr);
    pthread_cond_init(&queues[i].done, &attr);
  }
  pthread_condattr_destroy(&attr);
}

static void deadline_in(struct timespec *dl, unsigned ms) {
  clock_gettime(CLOCK_MONOTONIC, dl);
  dl->tv_sec += ms / 1000;
  dl->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl->tv_nsec >= 1000000000L) {
    dl->tv_sec++;
    dl->tv_nsec -= 1000000000L;
  }
}

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

/* The next piece of a batch for a pipe or socket: whole lines, at most
 * PIPE_BUF bytes, which a pipe writes atomically (so lines of the two
 * streams never mix when they share one, as with 2>&1); a single line longer
 * than that goes in PIPE_BUF pieces. */
static size_t next_piece(const char *p, size_t n) {
  const char *nl;
  if (n <= PIPE_BUF)
    return n;
  nl = memrchr(p, '\n', PIPE_BUF);
  return nl != NULL ? (size_t)(nl - p) + 1 : PIPE_BUF;
}

/* The writer's write: to a pipe or socket piece by piece once poll says
 * there is room, so it never sits in write() and notices when it is told to
 * give up; to a file (where poll says nothing) in one go. */
static void write_batch(struct logq *q, int fd, const char *p, size_t n) {
  struct stat st;
  bool piped = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
  while (n > 0 && !atomic_load(&q->abandon)) {
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    size_t chunk = piped ? next_piece(p, n) : n;
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
  return n;
}

/* Lets lines gather for LINGER_MS, with Q's lock held; cut short by a
 * half-full queue or stop. */
static void linger(struct logq *q) {
  struct timespec dl;
  q->state = WRITER_LINGERING;
  deadline_in(&dl, LINGER_MS);
  while (q->state == WRITER_LINGERING && !q->stop && q->len < q->cap / 2)
    if (pthread_cond_timedwait(&q->more, &q->mu, &dl) != 0)
      break;
}

static void *writer_main(void *arg) {
  struct logq *q = arg;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    char *buf;
    int old_fd, fd;
    size_t n;
    while (!pending(q) && !q->stop) {
      q->state = WRITER_IDLE;
      pthread_cond_wait(&q->more, &q->mu);
    }
    if (!pending(q))
      break; /* stopping, and everything is out */
    linger(q);
    q->state = WRITER_WRITING;
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
  }
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

static int queue_start(struct logq *q, int fd, bool syslog_on, size_t bound) {
  q->cap = bound;
  q->fd = fd;
  q->new_fd = -1;
  q->len = 0;
  q->stop = false;
  q->exited = false;
  q->state = WRITER_WRITING; /* until the writer runs, nobody signals it */
  atomic_store(&q->abandon, false);
  q->syslog_on = syslog_on;
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

/* Waits for the writer to return until DL; whether it did. Q's lock held. */
static bool wait_exit(struct logq *q, const struct timespec *dl) {
  while (!q->exited && pthread_cond_timedwait(&q->done, &q->mu, dl) == 0)
    ;
  return q->exited;
}

/* Tells the writer to write what is queued and return; past TIMEOUT_MS (a
 * stalled reader) it gives up the rest. */
static void queue_stop(struct logq *q, unsigned timeout_ms) {
  struct timespec dl;
  if (!q->running)
    return;
  pthread_mutex_lock(&q->mu);
  q->stop = true;
  pthread_cond_signal(&q->more);
  deadline_in(&dl, timeout_ms);
  if (!wait_exit(q, &dl)) { /* a stalled reader: what is still queued is lost */
    atomic_store(&q->abandon, true);
    deadline_in(&dl, 1000);
    wait_exit(q, &dl);
  }
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
  pthread_once(&conds_once, init_conds);
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

/* Appends under Q's lock; false if the line does not fit. *WAKE tells the
 * caller to signal the writer once the lock is released: it sleeps, or it
 * lingers over a queue now half full. */
static bool append(struct logq *q, const char *line, size_t len, bool *wake) {
  *wake = false;
  if (len > q->cap - q->len)
    return false;
  memcpy(q->fill + q->len, line, len);
  q->len += len;
  if (q->state == WRITER_IDLE) {
    q->state = WRITER_LINGERING;
    *wake = true;
  } else if (q->state == WRITER_LINGERING && q->len >= q->cap / 2) {
    q->state = WRITER_WRITING;
    *wake = true;
  }
  return true;
}

/* At most once per WARN_INTERVAL_S, tells standard error how many decision
 * lines were lost. Called with the decision queue's lock held (the order is
 * always decision, then diagnostic). */
static void warn_drops(uint64_t dropped) {
  struct logq *diag = &queues[LOGQ_DIAGNOSTIC];
  time_t now = mono_seconds();
  char msg[256];
  bool wake = false;
  int n;
  if (dropped == warned_dropped || (last_warn != 0 && now - last_warn < WARN_INTERVAL_S))
    return;
  n = snprintf(msg, sizeof(msg),
               "embargo: warning: decision log: %llu line(s) dropped so far: its reader is "
               "not keeping up (log_buffer %zu bytes)\n",
               (unsigned long long)dropped, queues[LOGQ_DECISION].cap);
  pthread_mutex_lock(&diag->mu);
  if (n > 0 && (size_t)n < sizeof(msg) && !append(diag, msg, (size_t)n, &wake))
    atomic_fetch_add(&diag->dropped, 1);
  pthread_mutex_unlock(&diag->mu);
  if (wake)
    pthread_cond_signal(&diag->more);
  last_warn = now;
  warned_dropped = dropped;
}

void logq_write(enum logq_stream stream, const char *line, size_t len) {
  struct logq *q = &queues[stream];
  bool wake;
  if (!q->running) {
    write_all(stream == LOGQ_DIAGNOSTIC ? STDERR_FILENO : STDOUT_FILENO, line, len);
    return;
  }
  pthread_mutex_lock(&q->mu);
  if (!append(q, line, len, &wake)) {
    uint64_t dropped = atomic_fetch_add(&q->dropped, 1) + 1;
    if (stream == LOGQ_DECISION)
      warn_drops(dropped);
  }
  pthread_mutex_unlock(&q->mu);
  /* After the unlock, so the writer does not wake only to wait for it. */
  if (wake)
    pthread_cond_signal(&q->more);
}

int logq_swap_fd(int fd) {
  struct logq *q = &queues[LOGQ_DECISION];
  if (!q->running)
    return -EINVAL;
  pthread_mutex_lock(&q->mu);
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
