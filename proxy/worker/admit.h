/* Admission of client connections: the connection limit, the per-client
 * cap and file-descriptor exhaustion, for the whole process. The counts
 * live in one struct admit_shared that every worker's struct admit uses:
 * limits.max_connections is a pool of slots a worker takes before it
 * accepts (never more than the limit, whatever the number of workers), the
 * per-client counts sit in one table under a lock. A listener that may not
 * accept is paused (the pending connection is left with libuv, which stops
 * watching the listening socket) and resumed when a connection closes on
 * any worker or, for descriptors, on a retry timer; nothing spins and every
 * warning is written at most once a second, with a count. */
#ifndef EMBARGO_PROXY_ADMIT_H
#define EMBARGO_PROXY_ADMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct server;
struct listener;
struct admit_client;

/* A warning written at most once a second, by whichever worker is first. */
struct ratelog {
  _Atomic uint64_t last_ms; /* monotonic ms it was last written; 0: never */
};

/* What every worker's admission shares (owned by the process). */
struct admit_shared {
  _Atomic size_t nconns;        /* slots taken: client connections open (or being opened) */
  _Atomic size_t npaused;       /* listeners paused, over every worker */
  uv_mutex_t mu;                /* guards the table */
  struct admit_client **table;  /* per-client counts (owned), by address (IPv6 by /64) */
  size_t nbuckets;
  int probe_fd;                 /* reserve descriptor, duplicated to measure headroom */
  _Atomic uint64_t fd_pauses;   /* pauses (and failed dials) for lack of descriptors */
  _Atomic uint64_t limit_pauses; /* pauses at limits.max_connections */
  _Atomic uint64_t client_refusals; /* connections closed at the per-client cap */
  struct ratelog fd_log, limit_log, client_log, resume_log;
  void (*wake)(void *arg);      /* asks every worker to retry its paused listeners */
  void *wake_arg;
  bool mu_ready;
};

/* One worker's admission (one per server). */
struct admit {
  struct server *srv;           /* borrowed: the owner */
  struct admit_shared *shared;  /* borrowed: the process's */
  uv_timer_t retry;             /* resumes this worker's paused listeners */
  uint64_t releases;            /* connections this worker released */
  bool closing;
};

/* Prepares SH. WAKE (may be NULL) is called, from any worker, when a slot
 * frees while listeners are paused; it must make every worker call
 * admit_retry. Returns 0 or a negative code; SH must then still be freed. */
int admit_shared_init(struct admit_shared *sh, void (*wake)(void *arg), void *wake_arg);

/* Writes the counters if any is non-zero (once, when the proxy stops). */
void admit_shared_log(const struct admit_shared *sh);

/* Releases the table and the reserve descriptor, once no worker uses SH.
 * Idempotent. */
void admit_shared_free(struct admit_shared *sh);

/* Prepares A for SRV (whose loop and config must be set), sharing SH.
 * Returns 0 or a negative code; A must then still be closed and freed. */
int admit_init(struct admit *a, struct server *srv, struct admit_shared *sh);

/* Stops the retry timer (closes its handle). Idempotent; no listener is
 * resumed afterwards. */
void admit_close(struct admit *a);

/* Forgets SRV, once the loop has run the timer's close callback. NULL-safe,
 * idempotent. */
void admit_free(struct admit *a);

/* LST's connection callback: accepts the pending connection (the server's
 * clients' accept) if a slot is free and descriptors are left. Otherwise LST is marked
 * paused (its pending connection stays queued with libuv), the reason is
 * counted and logged (at most once a second) and the listener is retried
 * when a connection closes, or within 250 ms when descriptors ran out. */
void admit_accept(struct admit *a, struct listener *lst);

/* Lets this worker's paused listeners try again soon (from its loop). */
void admit_retry(struct admit *a);

/* Counts a new connection from PEER. Returns 0, or UV_EBUSY when PEER now
 * holds more than limits.max_connections_per_client connections (counted
 * and logged at most once a second): the caller closes it. Either way the
 * connection is counted and admit_release must follow when it closes. */
int admit_client_add(struct admit *a, const struct sockaddr *peer);

/* Told of an error opening a socket (a dial): UV_EMFILE or UV_ENFILE is
 * counted with the descriptor pauses and warned about (at most once a
 * second), so that failing dials are never silent; other codes are
 * ignored. */
void admit_note_error(struct admit *a, int err);

/* A connection accepted by admit_accept closed: gives its slot back,
 * uncounts it from PEER (an address family other than IPv4/IPv6 is ignored:
 * a connection that never got its peer) and lets paused listeners, on every
 * worker, try again. */
void admit_release(struct admit *a, const struct sockaddr *peer);

#endif
