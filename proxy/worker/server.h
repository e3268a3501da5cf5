/* The server: one worker's event loop, its listening sockets (one per
 * configured listener, in an SO_REUSEPORT group with the other workers'),
 * its resolver (the DNS answers are shared), its pool of idle upstream connections, its
 * connections, and the configuration and policy snapshot it serves with.
 * What the workers share (the configuration in force, admission, the
 * connection ids, DNS answers, the block-page CA, the one clock every
 * cutoff reads) is
 * a struct server_shared, owned by the process (proxy/workers.c), which
 * also handles signals, the admin endpoint and reloads on the main thread
 * and reaches each server with server_command. */
#ifndef EMBARGO_PROXY_SERVER_H
#define EMBARGO_PROXY_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "proxy/base/dnscache.h"
#include "proxy/base/slab.h"
#include "proxy/decide/destcheck.h"
#include "proxy/worker/admit.h"
#include "proxy/worker/listener.h"
#include "proxy/worker/upstream.h"

struct blockpage;
struct offload;
struct offload_port;
struct resolver;
struct resolver_cache;
struct upstream;
struct conn;
struct server_retired;

/* Loads a fresh configuration for a reload: the same file and command-line
 * overrides as at start. Returns 0, or a negative code with the error
 * ("file:line:col: key: reason") in ERR; on error OUT holds nothing. */
typedef int (*server_load_fn)(const void *arg, struct config *out, char *err, size_t errsize);

/* A configuration loaded by a reload, shared by the workers and freed by
 * whoever drops the last reference: the process while it is in force, and
 * each worker while a connection accepted under it may still read it
 * (connections read settings at use time). */
struct server_config {
  struct config cfg;
  _Atomic unsigned refs;
};

/* What every worker's server shares. Written by the main thread; workers
 * read the configuration in force under MU when GENERATION moved. */
struct server_shared {
  uv_mutex_t mu;                 /* guards cfg and holder */
  struct config *cfg;            /* in force: the start-up one or holder->cfg */
  struct server_config *holder;  /* a reference; NULL while the start-up one is in force */
  _Atomic uint64_t generation;   /* bumped by each reload */
  _Atomic uint64_t next_conn_id; /* connection ids are unique in the process */
  int64_t clock_offset;          /* --now: policy time = wall time + offset */
  size_t nworkers;
  struct admit_shared admit;   /* connection limits, descriptor exhaustion */
  struct blockpage *blockpage; /* the block page over TLS; NULL without a CA (owned) */
  struct offload *offload;     /* the block page's background threads, with BLOCKPAGE (owned) */
  struct resolver_cache *dns;  /* DNS answers, for every worker's resolver (owned) */
  char via_host[64];           /* received-by in Via: this host's name */
  char via[96];                /* "HOST (embargo/VERSION)" */
  bool mu_ready;
};

/* Commands a server takes from another thread (server_command), run on its
 * loop. */
enum server_command {
  SERVER_CMD_SYNC = 1,   /* a reload happened: adopt the configuration in force */
  SERVER_CMD_RETRY = 2,  /* a connection slot freed: retry paused listeners */
  SERVER_CMD_DRAIN = 4,  /* graceful stop (server_drain) */
  SERVER_CMD_STOP = 8,   /* stop at once (server_stop) */
  SERVER_CMD_REPORT = 16 /* call the report callback */
};

/* One worker's figures, read on its own loop (SERVER_CMD_REPORT). */
struct server_stats {
  size_t nconns;
  size_t active[CONFIG_MAX_LISTEN]; /* client connections open, by listener */
  uint64_t accept_errors[CONFIG_MAX_LISTEN];
  size_t tunnels;
  struct dnscache_stats dns;
  uint64_t dns_last_ok_ms, dns_last_fail_ms; /* monotonic ms (libuv's clock); 0: none */
  int dns_last_fail;                         /* enum dns_status */
  struct upstream_health dial;               /* dial outcomes (proxy/upstream.c) */
  uint64_t generation;                       /* the reload it serves under */
};

/* What a worker asks of the client connections it serves. The layer that
 * makes connections hands these to server_init: the worker reaches its
 * connections through them only, and names nothing of that layer. */
struct server_clients {
  /* Accepts the connection pending on LST (admission granted). */
  void (*accept)(struct listener *lst);
  /* Closes SRV's connections: every one, or with IDLE_ONLY those between
   * requests (nothing of the next one read, nothing owed). */
  void (*close)(struct server *srv, bool idle_only);
  /* Adds SRV's connections to OUT: nconns, active by listener, tunnels. */
  void (*count)(const struct server *srv, struct server_stats *out);
  /* The smallest id among SRV's connections; UINT64_MAX with none. */
  uint64_t (*oldest)(const struct server *srv);
};

struct server {
  uv_loop_t *loop;
  struct server_shared *shared;         /* borrowed: the process's */
  size_t index;                         /* worker number, from 0 */
  const struct server_clients *clients; /* its connections' callbacks (borrowed) */
  struct config *cfg;                   /* the configuration this worker serves with */
  struct server_config *current;        /* a reference, or NULL while the start-up one is cfg */
  struct server_retired *retired;       /* replaced here, waiting for their connections (owned) */
  uint64_t generation;                  /* of cfg */
  uint64_t last_conn_id;                /* the newest id this worker gave a connection */
  struct policy *policy;                /* the snapshot new requests pin */
  struct resolver *resolver;
  struct blockpage *blockpage;  /* shared->blockpage (borrowed) */
  struct offload_port *offload; /* this loop's port to shared->offload, or NULL */
  struct listener listeners[CONFIG_MAX_LISTEN];
  size_t nlisteners;
  uv_timer_t tick;                               /* housekeeping: drain progress, retired configs */
  uv_async_t wake;                               /* server_command's doorbell */
  uv_mutex_t wake_mu;                            /* guards wake_open against the close */
  _Atomic unsigned commands;                     /* enum server_command bits not yet run */
  void (*report)(struct server *srv, void *arg); /* run on SERVER_CMD_REPORT */
  void *report_arg;
  size_t nconns;      /* client connections (kept by the clients' layer) */
  struct conn *conns; /* every live one, opaque here (the clients' layer's list) */
  struct upstream *idle_head, *idle_tail; /* pooled upstreams, LRU order */
  size_t nidle;
  struct upstream_health dial;     /* dial outcomes, for readiness (proxy/upstream.c) */
  struct slab_pool exchange_cells; /* the clients' layer's exchanges being decided */
  struct slab_pool hello_cells;    /* and its ClientHello readers */
  struct destcheck dest;           /* internal and own-listener refusals */
  struct admit admit;              /* this worker's side of admission */
  char via_host[64];               /* copies of shared's */
  char via[96];
  bool wake_open;
  bool wake_mu_ready;
  bool handles_open; /* timers and the doorbell were initialised */
  bool draining;     /* no accepting, connections finishing */
  bool stopping;     /* everything is being closed */
};

/* Prepares SH for CFG (borrowed: it must outlive SH) and NWORKERS workers:
 * the Via name, the clock (NOW_OVERRIDE, if non-zero, is the policy time
 * now, in seconds since the epoch), admission (WAKE as in
 * admit_shared_init), the DNS answer cache and the block-page context. Returns 0 or a negative
 * code with a message in ERR; SH must be freed with server_shared_free
 * whatever the result. */
int server_shared_init(struct server_shared *sh, struct config *cfg, size_t nworkers,
                       int64_t now_override, void (*wake)(void *arg), void *wake_arg, char *err,
                       size_t errsize);

/* Writes the block page's certificate counters and the admission counters
 * (once, when the proxy stops). */
void server_shared_log(const struct server_shared *sh);

/* Releases what server_shared_init acquired and the configuration reloads
 * put in force, once no server uses SH. */
void server_shared_free(struct server_shared *sh);

/* Sets up worker INDEX on LOOP: binds a socket for every configured
 * listener (FIRST: worker 0's server, whose sockets the others join; NULL
 * for worker 0 itself), creates its resolver (its own c-ares channel, the
 * shared answer cache). CLIENTS (borrowed) is how it reaches the
 * connections it accepts. OWN_EXTRA (may be NULL) is one more of Embargo's own addresses
 * (the admin endpoint) refused as a destination. Runs on any thread, the
 * loop not running. Returns 0 or a negative code with a message in ERR;
 * either way the server must be stopped (server_stop, one uv_run) and
 * freed. */
int server_init(struct server *srv, uv_loop_t *loop, struct server_shared *sh, size_t index,
                const struct server *first, const struct server_clients *clients,
                const struct sockaddr *own_extra, char *err, size_t errsize);

/* The worker thread's body: runs the loop until the server has stopped,
 * then lets the close callbacks run. */
void server_run(struct server *srv);

/* Releases what server_init acquired, once the loop has no handles of the
 * server left (after server_run, or after server_stop and one uv_run). */
void server_free(struct server *srv);

/* Stops at once: listeners and every connection are closed. Idempotent.
 * On the server's loop. */
void server_stop(struct server *srv);

/* Starts a graceful stop: listeners close, idle connections are closed,
 * connections in flight may finish; when none is left, server_stop. On the
 * server's loop; the deadline is the caller's (SERVER_CMD_STOP). */
void server_drain(struct server *srv);

/* From any thread: has SRV run CMD (enum server_command bits) on its loop
 * soon. Ignored once the server has stopped. */
void server_command(struct server *srv, unsigned cmd);

/* On the server's loop: its figures into OUT. */
void server_stats_read(const struct server *srv, struct server_stats *out);

/* On the server's loop: if a reload happened since SRV last looked, serve
 * with the configuration now in force (the one it replaces is kept while a
 * connection accepted under it lives). Cheap when nothing changed. */
void server_sync(struct server *srv);

/* A new connection id, unique in the process; remembered as this worker's
 * newest. */
uint64_t server_next_conn_id(struct server *srv);

/* The policy clock: wall-clock seconds, shifted by --now. */
int64_t server_now(const struct server *srv);

/* The same, from the shared state. */
int64_t server_shared_now(const struct server_shared *sh);

#endif
