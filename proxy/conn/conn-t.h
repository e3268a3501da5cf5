/* The client connection, its lifecycle states and the phase interface.
 *
 * Error convention of the connection code. A function that can fail
 * returns 0 or a negative code: a negative errno value, one of libuv's
 * UV_E* (the same on Unix) or one of Embargo's from filters/err.h, and
 * err_str() is the one way to turn a code into text. There is no other
 * negative: -1 never means "already closed". A phase handler returns an
 * enum phase_rc, never a code, and never closes the connection itself: it
 * returns PHASE_CLOSE and the core closes it once the handler has
 * returned, so no caller ever asks "was it closed meanwhile?". A phase
 * does not answer the client with an error by writing one: it describes
 * the answer in the exchange and moves to RESPONDING (conn_answer).
 * Booleans are for predicates only; a function that may hand the
 * connection on returns the phase_rc that says so. Parser callbacks keep
 * their parser's own contract (proxy/http1.h). */
#ifndef EMBARGO_PROXY_CONN_T_H
#define EMBARGO_PROXY_CONN_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "filters/normalise.h"
#include "filters/policy-t.h"
#include "proxy/base/endpoint.h"
#include "proxy/base/http1.h"

/* Lifecycle of a client connection: one state per phase. An explicit-proxy
 * connection starts in HEAD; a transparent one (intercept, tproxy) in
 * SNIFF, reading its first bytes without answering: a ClientHello goes to
 * PEEK, a request head to HEAD, anything else (or silence) is routed on
 * the original destination. On a listener behind a load balancer
 * (proxy_protocol) every connection starts in PROXYHDR, which reads the
 * PROXY protocol header naming the client, then goes on to the listener's
 * first state (or, for a LOCAL header, a health check, to LINGER; for a
 * client the clients: list refuses, to RESPONDING).
 *
 *   PROXYHDR --> HEAD | SNIFF | RESPONDING | LINGER
 *
 * With an upstream proxy (upstream_proxy), an allowed exchange that goes
 * through it is dialled by PARENT instead of CONNECTING: a pooled or new
 * connection to the parent, then FORWARD (plain HTTP in absolute form), or
 * a CONNECT to the parent and then TUNNEL; its failures go to RESPONDING.
 *
 *   ROUTE --> PARENT --> FORWARD | TUNNEL | RESPONDING;  FORWARD --(retry)--> PARENT
 *
 *        +----------------- keep-alive / next pipelined request ------------+
 *        v                                                                  |
 *   --> HEAD --> ROUTE --> CONNECTING --> FORWARD -------------------------+
 *        ^         | \  \        ^   \-----------------> TUNNEL             |
 *        |         |  \  \--(pooled upstream)-> FORWARD     |               |
 *  SNIFF-+-(TLS)--> PEEK \--(deny, page)--> BUMP --> LINGER  |               |
 *    \      |  ^     |                                      |  (retry) --> CONNECTING
 *     \     |  +-----+ (CONNECT to a TLS port: 200, then the hello;         |
 *      \    |          the hello read, ROUTE judges it)                     |
 *       \---+---(other)--> ROUTE                                            |
 *           v                                                               v
 *   any refusal, error or failure (HEAD, ROUTE, PEEK, CONNECTING, FORWARD,
 *   TUNNEL's second hello, BUMP's fallback) --> RESPONDING --> HEAD | LINGER
 *
 * Any state may go to CLOSED through conn_close(). */
enum conn_state {
  CONN_ST_HEAD,       /* waiting for, or reading, a request head */
  CONN_ST_SNIFF,      /* transparent: reading the first bytes to tell TLS from HTTP */
  CONN_ST_PROXYHDR,   /* behind a load balancer: reading the PROXY protocol header */
  CONN_ST_ROUTE,      /* judging the destination, resolving its name, judging the answer */
  CONN_ST_CONNECTING, /* dialing the destination's addresses in turn */
  CONN_ST_PARENT,     /* through the upstream proxy: dialing it, asking it for a tunnel */
  CONN_ST_FORWARD,    /* request and response bodies are streaming */
  CONN_ST_PEEK,       /* reading the ClientHello before dialling */
  CONN_ST_BUMP,       /* denied: TLS with a minted certificate, then the block page */
  CONN_ST_TUNNEL,     /* bytes relayed both ways */
  CONN_ST_RESPONDING, /* an answer Embargo gives is being written */
  CONN_ST_LINGER,     /* FIN sent; reading and dropping input until the peer closes */
  CONN_ST_CLOSED,     /* conn_close() ran; waiting for handle close callbacks */
  CONN_ST_COUNT_
};

/* What a phase handler asks the core to do next. */
enum phase_rc {
  PHASE_MORE, /* stay; it can take more client input (buffered input is fed to it) */
  PHASE_WAIT, /* stay; it waits for something else (an answer, a write, a timer) */
  PHASE_NEXT, /* move to the state conn_goto named */
  PHASE_CLOSE /* close the connection */
};

struct conn;

/* A phase: the handlers of one state. The core calls them (and only them)
 * for the events of a connection in that state, then acts on what they
 * return: it leaves the old phase and enters the new one after a move,
 * feeds buffered input to a phase that returned PHASE_MORE, re-arms the
 * timer to the phase's deadline, and sets reading once. A NULL handler:
 * enter counts as PHASE_MORE; drained and resume as PHASE_WAIT (queued
 * behind another handler, they leave its word standing); client_end,
 * upstream_data, upstream_end and timeout as PHASE_CLOSE; a phase without
 * client_data is given no input. A phase's
 * own state (c->priv) is made by its enter and freed by its leave, which
 * also runs when the connection closes in that state (c->priv may then be
 * NULL). */
struct phase {
  enum phase_rc (*enter)(struct conn *c);
  /* Client bytes: everything not taken yet, in order. *USED receives how
   * many were taken; the core keeps the rest for later. */
  enum phase_rc (*client_data)(struct conn *c, const char *data, size_t len, size_t *used);
  /* The client sent FIN (STATUS UV_EOF) or its read failed. */
  enum phase_rc (*client_end)(struct conn *c, int status);
  /* Bytes from the destination (all are taken). */
  enum phase_rc (*upstream_data)(struct conn *c, const char *data, size_t len);
  /* The destination sent FIN (UV_EOF), or a read or write towards it failed. */
  enum phase_rc (*upstream_end)(struct conn *c, int status);
  /* Queued bytes towards the client or the destination went down. */
  enum phase_rc (*drained)(struct conn *c);
  /* Something the phase started finished (a lookup, a dial, a mint):
   * conn_resume's STATUS. */
  enum phase_rc (*resume)(struct conn *c, int status);
  /* The deadline passed. */
  enum phase_rc (*timeout)(struct conn *c);
  void (*leave)(struct conn *c);
  /* The loop time (ms) the phase times out at, 0 for none. */
  uint64_t (*deadline)(const struct conn *c);
  /* Whether it still needs the exchange; NULL: always. Once it does not,
   * and no input is left over, the core frees the exchange. */
  bool (*needs_exchange)(const struct conn *c);
};

/* What the connection relays once its destination is dialled. */
enum conn_relay {
  CONN_RELAY_HTTP,  /* requests and responses, parsed and rewritten */
  CONN_RELAY_TUNNEL /* bytes, both ways (CONNECT, intercepted TLS, unidentified) */
};

/* How RESPONDING answers (struct answer). */
enum answer_kind {
  ANSWER_NONE,   /* nothing to write: the relayed response is on its way; close once written */
  ANSWER_HTTP,   /* an error response (or, once a response is streaming, a logged close) */
  ANSWER_REFUSE, /* an error response while HTTP can still be spoken; else a logged close,
                    with an access_denied alert for a 403 to a TLS client */
  ANSWER_DENY    /* the verdict's deny: the deny page (a rule) or a 403 (an outcome option)
                    while HTTP can be spoken; else logged, with the alert for a TLS client */
};

#define ANSWER_DETAIL_MAX 320

/* The answer a phase asked RESPONDING to give. */
struct answer {
  enum answer_kind kind;
  int status;                     /* HTTP status */
  const char *error;              /* RFC 9209 Proxy-Status error type (static) */
  char detail[ANSWER_DETAIL_MAX]; /* why, for the header, the body and the log ("" none) */
};

struct hello;
struct dns_answer;
struct listener;
struct server;
struct upstream;

/* The facts of one exchange, shared by the phases that decide and serve
 * it: the request, the destination and its verdict, the lookup's answer,
 * the ClientHello read, the answer to give, and the input parsed no
 * further yet. A connection has one from accept until its tunnel only
 * relays (or until it closes); a tunnel relays with none, so an idle
 * tunnel holds only struct conn and its upstream. Kept across the
 * requests of a keep-alive connection (HEAD resets it). */
struct exchange {
  struct http1 *req;                      /* request parser (owned) */
  struct http_head *head;                 /* the current request head (the parser's) */
  struct host dest;                       /* normalised destination of the current request */
  char authority[HOST_NAME_MAX_LEN + 16]; /* Host value and pool key */
  char *path;                             /* origin-form target (owned) */
  size_t path_len;
  enum conn_relay relay;            /* what the current exchange becomes once dialled */
  struct sockaddr_storage orig_dst; /* transparent: where the client was going */
  struct verdict verdict;           /* the policy's answer for the current request */
  const char *decided_by;           /* the outcome option that made the verdict stricter, or NULL */
  bool dst_mismatch;                /* transparent: the claimed name does not resolve to orig_dst */
  bool sni_changed;                 /* a second ClientHello named other servers than the first */
  struct hello *hello;              /* the ClientHello read, its bytes and evidence (owned) */
  struct answer answer;             /* what RESPONDING answers */
  const char *ps_extra;             /* extra Proxy-Status parameters for the next error */
  char ps_buf[ANSWER_DETAIL_MAX];   /* room for ps_extra's text when it is not static */
  bool via_parent;                  /* goes through the upstream proxy (set by ROUTE) */
  bool parent_by_name;              /* transparent: the parent is asked for the claimed
                                       name, whose addresses were judged too */
  bool parent_fresh;                /* a retry: dial the parent anew, no pooled connection */
  int parent_status;                /* the parent answered this status, refused (0: none) */

  struct dns_answer *addrs; /* the answer and addresses judged (a reference) */
  size_t addr_next;         /* the next address to try */
  int connect_err;          /* the last dial failure */

  char *spill; /* input parsed no further yet (owned; the core's) */
  size_t spill_off, spill_len;

  enum http_framing framing; /* of the response towards the client */
  bool head_timing;          /* the request-head deadline is running */
  bool discard;              /* the request was answered locally: drop its end */
  bool req_done;             /* the request (with body) was fully read */
  bool resp_started;         /* the response head went to the client */
  bool resp_done;            /* the response was fully passed on */
  bool interim;              /* the response parsed last was 1xx */
  bool client_keep;          /* the client connection survives this exchange */
};

struct conn {
  uint64_t id;
  struct server *srv;
  struct listener *lst;              /* borrowed; outlives its connections */
  struct policy *policy;             /* pinned snapshot (a reference) */
  struct conn *prev, *next;          /* the server's list of connections */
  const struct phase *const *phases; /* the phase of each state (borrowed) */
  void *priv;                        /* the current phase's own state (its enter and leave) */
  struct endpoint cli;
  uv_timer_t timer;      /* the current phase's deadline */
  uint64_t since;        /* loop time the current wait began: set on entering a
                            phase, moved by the phase when it makes progress */
  uint64_t due;          /* the current phase's deadline; 0: none */
  uint64_t armed;        /* when the timer fires (at or before DUE); 0: not set */
  struct upstream *up;   /* the destination connection in use */
  struct upstream *kept; /* the last exchange's, kept for the next request to the
                            same destination (affinity); read, so that its close
                            or a stray byte retires it */
  struct exchange *ex;   /* the exchange being decided (owned); NULL in a relaying tunnel */
  int handles;           /* open handles; freed when it drops to 0 */
  int resume_status;     /* a resume that came while a handler ran */
  enum conn_state state;
  enum conn_state goto_state; /* where conn_goto asked to go */
  union {                     /* the client's address: the connection's peer, or the
                                 client a PROXY protocol header named */
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } peer;
  bool capped;                  /* the per-client cap counts PEER (admit_release owed) */
  bool relayed;                 /* a PROXY protocol header named PEER (and, for a
                                   transparent listener, EX->orig_dst) */
  bool established;             /* "200 Connection established" was sent */
  bool close_after;             /* close once what is queued has been written */
  bool running;                 /* a handler is on the stack: events are queued */
  bool resume_due, drained_due; /* events queued while a handler ran */
};

#endif
