/* Admission of client connections: the connection limit, the per-client
 * cap and file-descriptor exhaustion. A listener that may not accept is
 * paused (the pending connection is left with libuv, which stops watching
 * the listening socket) and resumed when a connection closes or, for
 * descriptors, on a retry timer; nothing spins and every warning is written
 * at most once a second, with a count. One per server. */
#ifndef EMBARGO_PROXY_ADMIT_H
#define EMBARGO_PROXY_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct server;
struct listener;
struct admit_client;

/* A warning written at most once a second. */
struct ratelog {
  uint64_t last_ms;  /* loop time it was last written; 0: never */
};

struct admit {
  struct server *srv;           /* borrowed: the owner */
  uv_timer_t retry;             /* resumes paused listeners */
  int probe_fd;                 /* reserve descriptor, duplicated to measure headroom */
  struct admit_client **table;  /* per-client counts (owned), by address (IPv6 by /64) */
  size_t nbuckets;
  uint64_t fd_pauses;           /* pauses (and failed dials) for lack of descriptors */
  uint64_t limit_pauses;        /* pauses at limits.max_connections */
  uint64_t client_refusals;     /* connections closed at the per-client cap */
  struct ratelog fd_log, limit_log, client_log, resume_log;
  bool closing;
};

/* Prepares A for SRV (whose loop and config must be set). Returns 0 or a
 * negative code; A must then still be closed and freed. */
int admit_init(struct admit *a, struct server *srv);

/* Stops the retry timer (closes its handle) and writes the counters if any
 * is non-zero. Idempotent; no listener is resumed afterwards. */
void admit_close(struct admit *a);

/* Releases the table and the reserve descriptor, once the loop has run the
 * timer's close callback. NULL-safe, idempotent. */
void admit_free(struct admit *a);

/* Asked by LST's connection callback before accepting: true if a
 * connection may be accepted now. Otherwise LST is marked paused (its
 * pending connection stays queued with libuv), the reason is counted and
 * logged (at most once a second) and the listener is retried when a
 * connection closes, or within 250 ms when descriptors ran out. */
bool admit_may_accept(struct admit *a, struct listener *lst);

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

/* Uncounts a connection from PEER (an address family other than IPv4/IPv6
 * is ignored: a connection that never got its peer) and lets paused
 * listeners try again. */
void admit_release(struct admit *a, const struct sockaddr *peer);

#endif
