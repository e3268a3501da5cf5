/* The connection core: what the phases (and the dispatcher, which names
 * them) may ask of it. The core owns struct conn, the client socket, the
 * timer, reading with backpressure, the leftover input, the upstream in
 * use and teardown; it calls the phases only through their struct phase.
 * Nothing here closes the connection behind a phase's back. */
#ifndef EMBARGO_PROXY_CONN_H
#define EMBARGO_PROXY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/conn/conn-t.h"

struct listener;
struct server;
struct server_stats;

/* ---- for the dispatcher --------------------------------------------------- */

/* Accepts the connection pending on LST and runs it through PHASES (one
 * per state, indexed by enum conn_state; borrowed, static). Never fails
 * loudly: a refused or failed accept is logged and dropped. */
void conn_accept(struct listener *lst, const struct phase *const *phases);

/* Closes SRV's connections: all, or with IDLE_ONLY those between requests. */
void conn_close_all(struct server *srv, bool idle_only);

/* Adds SRV's connections to OUT (nconns, active by listener, tunnels). */
void conn_count(const struct server *srv, struct server_stats *out);

/* The smallest id among SRV's connections; UINT64_MAX with none. */
uint64_t conn_oldest(const struct server *srv);

/* LINGER, the core's own phase: FIN sent, input read and dropped until the
 * client closes or 2 s pass. */
extern const struct phase conn_linger_phase;

/* ---- for the phases -------------------------------------------------------- */

/* Asks for a move to ST once the handler returns (checked against the
 * legal moves). Returns PHASE_NEXT, for the handler to return. */
enum phase_rc conn_goto(struct conn *c, enum conn_state st);

/* Describes the answer RESPONDING is to give (DETAIL copied, may be NULL)
 * without moving. */
void conn_set_answer(struct conn *c, enum answer_kind kind, int status, const char *error,
                     const char *detail);

/* conn_set_answer, then conn_goto(c, CONN_ST_RESPONDING). */
enum phase_rc conn_answer(struct conn *c, enum answer_kind kind, int status, const char *error,
                          const char *detail);

/* Something the current phase started (a lookup, a dial, a mint) finished:
 * runs its resume handler with STATUS. From a callback of the loop, or
 * from inside a handler (the resume then runs once the handler returned). */
void conn_resume(struct conn *c, int status);

/* Queues DATA for the client. 0, or a negative code (logged): the caller
 * returns PHASE_CLOSE. */
int conn_write_client(struct conn *c, const char *data, size_t len);

/* The listener's mode (enum listen_mode) and whether it is transparent. */
int conn_mode(const struct conn *c);
bool conn_transparent(const struct conn *c);

/* Prepares C's request parser (with CBS, and C as their context) in the
 * room its exchange has for it; it allocates nothing until a head
 * arrives. Once per exchange. */
struct http1 *conn_request_parser(struct conn *c, const struct http1_callbacks *cbs);

/* A request head of C is complete, before it is judged: pins the snapshot
 * in force now (the previous request's stays with it; a reload is adopted
 * first) and counts the request. */
void conn_request_start(struct conn *c);

/* The idle upstream to KEY that C used last (affinity), else one from the
 * pool, or NULL; the caller owns it (conn_use_upstream or
 * upstream_release). A kept upstream to another destination goes back to
 * the pool. */
struct upstream *conn_take_upstream(struct conn *c, const char *key);

/* Makes UP (owned by the caller) the upstream C uses. */
void conn_use_upstream(struct conn *c, struct upstream *up);

/* Dials ADDR for C as c->up, under pool key KEY (the exchange's answer is
 * kept with it, so a reuse from the pool is judged on the same facts); the
 * outcome comes to the phase's resume handler. 0, or a negative code with
 * nothing dialled. */
int conn_dial(struct conn *c, const struct sockaddr *addr, const char *key);

/* Closes C's upstream, if any. */
void conn_drop_upstream(struct conn *c);

/* Gives the upstream kept for the client's next request (c->kept) back to
 * the pool. */
void conn_release_kept(struct conn *c);

/* Whether the client's address may use this proxy (clients:). */
bool conn_client_allowed(const struct conn *c);

/* Makes ADDR (AF_INET or AF_INET6, copied) C's client from now on, the
 * client a PROXY protocol header named (NULL: the connection's own peer
 * stays the client), and counts it against the per-client cap. Returns 0,
 * or UV_EBUSY over the cap (logged by proxy/worker/admit): the caller
 * returns PHASE_CLOSE. Called once per connection: the core calls it at
 * accept, except behind a load balancer, where PROXYHDR does once the
 * header is read. */
int conn_take_client(struct conn *c, const struct sockaddr *addr);

/* Refuses a client the clients: list does not allow: an explicit proxy's
 * gets a 403 (the move to RESPONDING is returned), an intercepted one,
 * which expects no proxy, is logged and closed (PHASE_CLOSE). */
enum phase_rc conn_refuse_client(struct conn *c);

#endif
