/* Connections to destinations: dialing with a timeout, and the pool of idle
 * keep-alive connections reused per destination (LRU, bounded per
 * destination and in total). */
#ifndef EMBARGO_PROXY_UPSTREAM_H
#define EMBARGO_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "proxy/base/endpoint.h"

#define UPSTREAM_KEY_MAX 300

struct server;
struct http1;
struct upstream;
struct dns_answer;

/* How an upstream reaches its owner (the client connection using it): the
 * owner's layer hands these in with the owner (upstream_dial,
 * upstream_adopt); this module names nothing of the layers above it. OWNER
 * is the pointer given with them. */
struct upstream_events {
  /* The dial ended: STATUS 0 once connected, else a negative code
   * (UV_ETIMEDOUT for the connect timeout). Runs once per dial, unless
   * upstream_close came first. */
  void (*connected)(void *owner, struct upstream *up, int status);
  /* Bytes read, or EOF / a read error (NREAD < 0). */
  void (*read)(void *owner, struct upstream *up, ssize_t nread, const char *data);
  /* Queued bytes went down; STATUS < 0: the write failed. */
  void (*drained)(void *owner, struct upstream *up, int status);
  /* The buffer the next read goes into. */
  uv_buf_t (*buffer)(const void *owner);
};

/* One worker's dial outcomes, for readiness; written on its loop. Times are
 * libuv's monotonic clock in milliseconds, 0 for never. */
struct upstream_health {
  uint64_t last_ok_ms;         /* the last dial that connected */
  uint64_t last_local_fail_ms; /* the last dial that failed for a local reason */
  int last_local_err;          /* its libuv code */
  uint64_t last_warned_ms;     /* the last warning on standard error about one */
};

/* Whether a dial that failed with STATUS (a libuv code) failed for a reason
 * of this host rather than of the destination or the network: a firewall
 * rule or a missing capability (EPERM, EACCES), no descriptor (EMFILE,
 * ENFILE), no local port or address (EADDRNOTAVAIL, EADDRINUSE), no memory
 * or buffers (ENOMEM, ENOBUFS). */
bool upstream_error_is_local(int status);

struct upstream {
  struct endpoint ep;
  uv_timer_t timer;        /* connect timeout, then idle timeout in the pool */
  uv_connect_t connect_req;
  struct server *srv;
  void *owner;             /* the client connection using it; NULL when pooled */
  const struct upstream_events *events; /* the owner's (borrowed) */
  uint64_t dial_started;   /* loop time the dial began, for the metrics */
  struct http1 *resp;      /* response parser, kept across reuses (owned) */
  union {                  /* the address dialled */
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } addr;
  struct dns_answer *resolved;  /* what the name resolved to when dialled (a reference) */
  struct upstream *prev, *next; /* pool list, while pooled */
  int handles;             /* open handles; freed when it reaches 0 */
  bool dialing;            /* the connected event is still owed */
  bool connected;
  bool closing;
  bool reused;             /* taken from the pool at least once */
  char key[];              /* "host:port" it was opened for (at most UPSTREAM_KEY_MAX) */
};

/* Starts connecting to ADDR for OWNER, whose EVENTS (borrowed) it reports
 * to. RESOLVED (may be NULL; the upstream takes a reference of its own) is
 * the answer ADDR came from, kept so a reuse from the pool can be judged
 * on the same facts. Returns the upstream (owned by the caller until
 * upstream_close/upstream_release) or NULL with *err set (a negative code;
 * no event follows). */
struct upstream *upstream_dial(struct server *srv, const struct sockaddr *addr,
                               struct dns_answer *resolved, const char *key, uint64_t timeout_ms,
                               const struct upstream_events *events, void *owner, int *err);

/* Makes OWNER, with its EVENTS (borrowed), the user of UP (one taken from
 * the pool). */
void upstream_adopt(struct upstream *up, const struct upstream_events *events, void *owner);

/* Drops the answer kept for a reuse from the pool: for a connection that
 * will never be pooled (a tunnel's). */
void upstream_forget_answer(struct upstream *up);

/* Whether this process may set MARK (SO_MARK) on its sockets: 0 or a
 * negative errno (UV_EPERM without CAP_NET_ADMIN). */
int upstream_check_mark(uint32_t mark);

/* Closes UP; memory is freed when its handles have closed. Idempotent. */
void upstream_close(struct upstream *up);

/* Returns UP to the pool for KEY reuse, or closes it if the pool is full. */
void upstream_release(struct upstream *up);

/* Takes an idle pooled connection for KEY, or NULL. The caller becomes its
 * owner and must adopt it (upstream_adopt), and set its reading (it is left
 * reading) before returning to the loop. */
struct upstream *upstream_take(struct server *srv, const char *key);

/* Closes every pooled connection (shutdown). */
void upstream_pool_clear(struct server *srv);

/* Reading on behalf of the owning connection. */
void upstream_set_reading(struct upstream *up, bool want);

#endif
