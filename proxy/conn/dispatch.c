/* The dispatcher: the phase of each state, handed to the core with every
 * connection it accepts. Only this file names the phases; they never name
 * each other, and the core reaches them only through this table.
 *
 *   state        phase               ends when                      next
 *   PROXYHDR     proxyhdr.c          the PROXY protocol header is   HEAD, SNIFF, RESPONDING
 *                                    read, refused, or late         (client refused), LINGER
 *                                                                   (LOCAL)
 *   SNIFF        transparent.c       first bytes classified, EOF,   PEEK, HEAD, ROUTE
 *                                    transparent.timeout
 *   HEAD         front.c             a request head is complete     ROUTE, RESPONDING
 *   ROUTE        route.c             judged (and resolved)          CONNECTING, PARENT, FORWARD
 *                                                                   (pooled), PEEK, BUMP,
 *                                                                   RESPONDING
 *   PEEK         peek.c              ClientHello in, or timeout     ROUTE, RESPONDING
 *   CONNECTING   dial.c              an address answers, or none    FORWARD, TUNNEL, RESPONDING
 *   PARENT       parent.c            the upstream proxy answers,    FORWARD, TUNNEL, RESPONDING
 *                                    or fails
 *   FORWARD      forward.c           the response is passed on      HEAD, CONNECTING or PARENT
 * (retry), RESPONDING, LINGER TUNNEL       tunnel.c            both sides closed; a second
 * RESPONDING hello refused BUMP         bump.c              the page served, or given up   LINGER,
 * RESPONDING RESPONDING   respond.c           the answer is written          HEAD, LINGER LINGER
 * conn.c (the core)   the client closes, or 2 s      (closed)
 */
#include "proxy/conn/dispatch.h"

#include "proxy/conn/bump.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/dial.h"
#include "proxy/conn/forward.h"
#include "proxy/conn/front.h"
#include "proxy/conn/parent.h"
#include "proxy/conn/peek.h"
#include "proxy/conn/proxyhdr.h"
#include "proxy/conn/respond.h"
#include "proxy/conn/route.h"
#include "proxy/conn/transparent.h"
#include "proxy/conn/tunnel.h"
#include "proxy/worker/server.h"

/* CLOSED: no event reaches a closed connection. */
static const struct phase closed_phase = {0};

static const struct phase *const phases[CONN_ST_COUNT_] = {
    [CONN_ST_HEAD] = &front_phase,         [CONN_ST_SNIFF] = &sniff_phase,
    [CONN_ST_PROXYHDR] = &proxyhdr_phase,  [CONN_ST_ROUTE] = &route_phase,
    [CONN_ST_CONNECTING] = &dial_phase,    [CONN_ST_PARENT] = &parent_phase,
    [CONN_ST_FORWARD] = &forward_phase,    [CONN_ST_PEEK] = &peek_phase,
    [CONN_ST_BUMP] = &bump_phase,          [CONN_ST_TUNNEL] = &tunnel_phase,
    [CONN_ST_RESPONDING] = &respond_phase, [CONN_ST_LINGER] = &conn_linger_phase,
    [CONN_ST_CLOSED] = &closed_phase,
};

static void accept_one(struct listener *lst) {
  conn_accept(lst, phases);
}

const struct server_clients dispatch_clients = {
    .accept = accept_one,
    .close = conn_close_all,
    .count = conn_count,
    .oldest = conn_oldest,
};
