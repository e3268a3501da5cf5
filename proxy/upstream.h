/* Connections to destinations: dialing with a timeout, and the pool of idle
 * keep-alive connections reused per destination (LRU, bounded per
 * destination and in total). */
#ifndef EMBARGO_PROXY_UPSTREAM_H
#define EMBARGO_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "proxy/endpoint.h"

#define UPSTREAM_KEY_MAX 300

struct server;
struct conn;
struct http1;
struct upstream;
struct dns_result;

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

/* STATUS is 0 once connected, else a negative libuv code (UV_ETIMEDOUT for
 * the connect timeout). */
typedef void (*upstream_connect_cb)(struct upstream *up, int status);

struct upstream {
  struct endpoint ep;
  uv_timer_t timer;        /* connect timeout, then idle timeout in the pool */
  uv_connect_t connect_req;
  struct server *srv;
  struct conn *conn;       /* the client connection using it; NULL when pooled */
  upstream_connect_cb on_connect;
  uint64_t dial_started;   /* loop time the dial began, for the metrics */
  struct http1 *resp;      /* response parser, kept across reuses (owned) */
  union {                  /* the address dialled */
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } addr;
  struct dns_result *resolved; /* what the name resolved to when dialled (owned) */
  struct upstream *prev, *next; /* pool list, while pooled */
  int handles;             /* open handles; freed when it reaches 0 */
  bool connected;
  bool closing;
  bool reused;             /* taken from the pool at least once */
  char key[];              /* "host:port" it was opened for (at most UPSTREAM_KEY_MAX) */
};

/* Starts connecting to ADDR for CONN. RESOLVED (copied; may be NULL) is the
 * answer ADDR came from, kept so a reuse from the pool can be judged on the
 * same facts. Returns the upstream (owned by the caller until
 * upstream_close/upstream_release) or NULL with *err set. CB runs exactly
 * once unless upstream_close comes first. */
struct upstream *upstream_dial(struct server *srv, struct conn *conn, const struct sockaddr *addr,
                               const struct dns_result *resolved, const char *key,
                               uint64_t timeout_ms, upstream_connect_cb cb, int *err);

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
 * owner and must set up->conn, and set its reading (it is left reading)
 * before returning to the loop. */
struct upstream *upstream_take(struct server *srv, const char *key);

/* Closes every pooled connection (shutdown). */
void upstream_pool_clear(struct server *srv);

/* Reading on behalf of the owning connection. */
void upstream_set_reading(struct upstream *up, bool want);

#endif
