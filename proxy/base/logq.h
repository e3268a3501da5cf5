/* The log writer: lines are queued into a bounded buffer per stream and a
 * writer thread does the write(), so a log reader that stops reading (a
 * full pipe, a stalled disk, a slow syslog daemon) never blocks the event
 * loop, and the loop makes no system call for a line unless the writer is
 * asleep. The writer lets lines gather for 10 ms and writes them in one
 * go: a line reaches its reader that much after it is queued (normally
 * after the response it logs), in queue order, whole, never mixed with
 * another. A line that does not fit is dropped and counted; a warning about
 * drops goes to standard error at most once every ten seconds. */
#ifndef EMBARGO_PROXY_LOGQ_H
#define EMBARGO_PROXY_LOGQ_H

#include <stddef.h>
#include <stdint.h>

enum logq_stream {
  LOGQ_DECISION,   /* the JSON decision log: stdout, a file or syslog */
  LOGQ_DIAGNOSTIC, /* human diagnostics on standard error */
  LOGQ_NSTREAMS
};

/* Starts the writer thread. The decision stream goes to FD (-1 with
 * SYSLOG true: each line is sent with syslog(3), facility daemon, level
 * info); diagnostics to standard error. BOUND is the most bytes each stream
 * queues (the writer may hold one more batch of that size). Returns 0 or a
 * negative errno. Until it is called, and after logq_stop, lines are written
 * directly. */
int logq_start(int fd, int syslog_on, size_t bound);

/* Queues LINE (LEN bytes, ending in '\n') on STREAM, copying it, and wakes
 * the writer if it sleeps (or lingers over a half-full queue). Never waits
 * for the writer nor blocks on I/O; safe from any thread. A line that does
 * not fit is dropped and counted. */
void logq_write(enum logq_stream stream, const char *line, size_t len);

/* Makes FD the decision stream's descriptor from the next batch on; the
 * writer closes the old one (unless it is standard output). Returns 0, or
 * -EINVAL when the queue is not running (FD is then not taken). */
int logq_swap_fd(int fd);

/* Lines dropped on STREAM since start. Thread-safe. */
uint64_t logq_dropped(enum logq_stream stream);

/* Writes what is queued at once (no linger), waiting at most TIMEOUT_MS for
 * a stalled reader, then stops the writer (abandoning what it could not
 * write) and closes the decision descriptor unless it is standard output.
 * Idempotent. */
void logq_stop(unsigned timeout_ms);

#endif
