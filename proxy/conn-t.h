/* The client connection object and its lifecycle states. */
#ifndef EMBARGO_PROXY_CONN_T_H
#define EMBARGO_PROXY_CONN_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "filters/normalise.h"
#include "filters/policy-t.h"
#include "proxy/endpoint.h"
#include "proxy/http1.h"


/* Lifecycle of a client connection. An explicit-proxy connection starts
 * in HEAD; a transparent one (intercept, tproxy) in SNIFF, reading its first
 * bytes without answering: a ClientHello goes to PEEK, a request head to
 * HEAD, anything else (or silence) is judged on the original destination.
 *
 *            +------------------ keep-alive / next pipelined request ----------+
 *            v                                                                 |
 *   ---> HEAD ---> RESOLVING ---> CONNECTING ---> FORWARD ---------------------+
 *        ^  |  \        |   \           \  \--(tunnel)---> TUNNEL ---> (close)
 *        |  |   \       |    \--(CONNECT, TLS port)--> PEEK --> CONNECTING
 *        |  |    \      |                            |  \--(deny)--> LINGER
 *        |  |     \     +--(deny, page)--> PEEK      +--(deny, page)--> BUMP --> LINGER
 *  SNIFF-+--|-----\-----|---(ClientHello)----------->+--(SNI)--> RESOLVING
 *        \  |      \    +--(deny after 200 / hello)--> LINGER
 *         \ |       \--(IP literal, pooled upstream)--> CONNECTING / FORWARD
 *          \+--(deny, bad request, DNS/connect failure)--> RESPONDING --> HEAD
 *           \--(neither TLS nor HTTP)--> CONNECTING | LINGER         \--> LINGER ---> (close)
 * Any state may go to CLOSED through conn_close().
 */
enum conn_state {
  CONN_ST_HEAD,       /* waiting for, or reading, a request head */
  CONN_ST_SNIFF,      /* transparent: reading the first bytes to tell TLS from HTTP */
  CONN_ST_RESOLVING,  /* the destination name is being resolved */
  CONN_ST_CONNECTING, /* dialing the destination's addresses in turn */
  CONN_ST_FORWARD,    /* request and response bodies are streaming */
  CONN_ST_PEEK,       /* reading the ClientHello before dialling */
  CONN_ST_BUMP,       /* denied: TLS with a minted certificate, then the block page */
  CONN_ST_TUNNEL,     /* bytes relayed both ways */
  CONN_ST_RESPONDING, /* a response Embargo generated is being written */
  CONN_ST_LINGER,     /* FIN sent; reading and dropping input until the peer closes */
  CONN_ST_CLOSED      /* conn_close() ran; waiting for handle close callbacks */
};

/* What the connection relays once its destination is dialled. */
enum conn_relay {
  CONN_RELAY_HTTP,  /* requests and responses, parsed and rewritten */
  CONN_RELAY_TUNNEL /* bytes, both ways (CONNECT, intercepted TLS, unidentified) */
};

struct dns_query;
struct peek;
struct bump;
struct hello_watch;
struct tls_evidence;
struct dns_result;
struct listener;
struct server;
struct upstream;

/* What one exchange needs while it is decided and dialled: the request,
 * the destination and its verdict, the lookup, the peeked ClientHello and
 * the input parsed no further yet. A connection has one from accept until
 * its tunnel starts relaying (or until it closes); a tunnel relays with
 * none, so an idle tunnel holds only struct conn and its upstream. Kept
 * across the requests of a keep-alive connection (front.c resets it). */
struct exchange {
  struct http1 *req;         /* request parser (owned) */
  struct http_head *head;    /* the current request head (the parser's) */
  struct host dest;          /* normalised destination of the current request */
  char authority[HOST_NAME_MAX_LEN + 16]; /* Host value and pool key */
  char *path;                /* origin-form target (owned) */
  size_t path_len;
  enum conn_relay relay;     /* what the current exchange becomes once dialled */
  struct sockaddr_storage orig_dst; /* transparent: where the client was going */
  struct verdict verdict;    /* the policy's answer for the current request */
  const char *decided_by;    /* the outcome option that made the verdict stricter, or NULL */
  bool dst_mismatch;         /* transparent: the claimed name does not resolve to orig_dst */
  bool sni_changed;          /* a second ClientHello named other servers than the first */
  struct peek *peek;         /* ClientHello inspection state (owned), PEEK on */
  struct bump *bump;         /* block page over TLS (owned), BUMP on */
  struct hello_watch *watch; /* tunnel after a TLS 1.3 hello: the server's first flight
                                and, after a HelloRetryRequest, the second hello (owned) */
  const char *ps_extra;      /* extra Proxy-Status parameters for the next error */

  struct dns_query *dnsq;    /* pending lookup, cancelled on close */
  struct dns_result *addrs;  /* resolved addresses (owned) */
  size_t addr_next;          /* the next address to try */
  int connect_err;           /* the last dial failure */

  char *spill;               /* input parsed no further yet (owned) */
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
  struct listener *lst;      /* borrowed; outlives its connections */
  struct policy *policy;     /* pinned snapshot (a reference) */
  struct conn *prev, *next;  /* the server's list of connections */
  struct endpoint cli;
  uv_timer_t timer;          /* the deadline of the current phase */
  struct upstream *up;       /* the destination connection in use */
  struct upstream *kept;     /* the last exchange's, kept for the next request to the
                                same destination (affinity); read, so that its close
                                or a stray byte retires it */
  struct exchange *ex;       /* the exchange being decided (owned); NULL in a relaying tunnel */
  int handles;               /* open handles; freed when it drops to 0 */
  enum conn_state state;
  union {                    /* the client's address */
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } peer;
  bool established;          /* "200 Connection established" was sent */
  bool close_after;          /* close once what is queued has been written */
};

#endif
