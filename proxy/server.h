/* The server: one libuv loop, its listeners, the resolver, the pool of idle
 * upstream connections, the policy snapshot in force and the one clock every
 * cutoff reads. */
#ifndef EMBARGO_PROXY_SERVER_H
#define EMBARGO_PROXY_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "proxy/admit.h"
#include "proxy/destcheck.h"
#include "proxy/listener.h"

struct bump_ctx;
struct resolver;
struct upstream;

struct server {
  uv_loop_t *loop;
  struct config *cfg;        /* borrowed; lives as long as the server */
  struct policy *policy;     /* the snapshot new connections pin */
  struct resolver *resolver;
  struct bump_ctx *bump;     /* the block page over TLS; NULL without a CA */
  struct listener listeners[CONFIG_MAX_LISTEN];
  size_t nlisteners;
  uv_signal_t sigint, sigterm;
  int64_t clock_offset;      /* --now: policy time = wall time + offset */
  uint64_t next_conn_id;
  size_t nconns;
  struct conn *conns;        /* every live client connection */
  struct upstream *idle_head, *idle_tail; /* pooled upstreams, LRU order */
  size_t nidle;
  struct destcheck dest;     /* internal and own-listener refusals */
  struct admit admit;        /* connection limits, descriptor exhaustion */
  char via_host[64];         /* received-by in Via: this host's name */
  char via[96];              /* "HOST (embargo/VERSION)" */
  bool stopping;
};

/* Binds every configured listener and creates the resolver. NOW_OVERRIDE,
 * if non-zero, is the policy time at start-up (seconds since the epoch).
 * Returns 0 or a negative code with a message in ERR. */
int server_init(struct server *srv, uv_loop_t *loop, struct config *cfg, int64_t now_override,
                char *err, size_t errsize);

/* Runs the loop until SIGINT/SIGTERM, then closes everything. Returns 0. */
int server_run(struct server *srv);

/* Releases what server_init acquired, once the loop has no handles of the
 * server left (after server_run, or after server_stop and one uv_run). */
void server_free(struct server *srv);

/* Starts a graceful stop: listeners close, connections are closed. */
void server_stop(struct server *srv);

/* The policy clock: wall-clock seconds, shifted by --now. */
int64_t server_now(const struct server *srv);

#endif
