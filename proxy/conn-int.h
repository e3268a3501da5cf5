/* Functions shared by the files that implement struct conn (conn.c,
 * forward.c, respond.c). Not for use outside proxy/. */
#ifndef EMBARGO_PROXY_CONN_INT_H
#define EMBARGO_PROXY_CONN_INT_H

#include "proxy/conn-t.h"
#include "proxy/dns.h"
#include "proxy/conn.h"

/* Fills F with what C knows of its destination: the requested host and,
 * once resolved, the CNAME chain and addresses (kept in ST). */
void conn_facts(const struct conn *c, struct facts *f, struct fact_store *st);
/* Writes the log or access line the current verdict calls for, if any. */
void conn_log_verdict(struct conn *c);

/* Moves C to ST, asserting the move is legal. */
void conn_set_state(struct conn *c, enum conn_state st);
/* Starts or stops reading on both sides as backpressure and state allow. */
void conn_update_reading(struct conn *c);
/* (Re)arms C's timer for the current phase. */
void conn_arm_timer(struct conn *c, uint64_t ms);
/* Parses buffered client input; called when parsing may continue. */
void conn_process_spill(struct conn *c);
/* Continues parsing the current request after a pause: lets a request
 * without a body complete, then parses buffered input. */
void conn_resume_request(struct conn *c);
/* Starts the next request on a kept-alive connection. */
void conn_next_request(struct conn *c);
/* Sends FIN and drops input until the client closes (or a short deadline). */
void conn_linger(struct conn *c);
/* Writes to the client; on failure the connection is closed and -1 returned. */
int conn_write_client(struct conn *c, const char *data, size_t len);

/* conn.c: a parser took USED of the LEN bytes at DATA. Advances the spill
 * buffer when DATA is its content (FROM_SPILL), else keeps the unparsed
 * rest there. Returns 0, or -1 after closing C (out of memory). */
int conn_input_consumed(struct conn *c, const char *data, size_t len, size_t used,
                        bool from_spill);
/* conn.c: dials the addresses in c->addrs for the current request. */
void conn_dial(struct conn *c);

/* peek.c: whether the current CONNECT's tunnel gets ClientHello inspection. */
bool peek_wanted(const struct conn *c);
/* peek.c: answers 200 and starts reading the ClientHello (state PEEK). */
void peek_start(struct conn *c);
/* peek.c: client bytes or EOF/error (NREAD < 0) while peeking. */
void peek_data(struct conn *c, ssize_t nread, const char *data);
/* peek.c: the hello did not arrive in time. */
void peek_timeout(struct conn *c);
/* peek.c: queues the bytes read while peeking towards UP. 0 or a libuv code. */
int peek_forward(struct conn *c, struct endpoint *up);
/* peek.c: releases the inspection state. NULL-safe. */
void peek_free(struct conn *c);
/* peek.c: a decision line carrying the ClientHello evidence. */
void peek_log(struct conn *c, const char *event, int status, const char *error,
              const char *detail);
/* peek.c: the hello bytes read (borrowed, valid while c->peek is). */
const uint8_t *peek_hello(const struct conn *c, size_t *len);
/* peek.c: the server name to present a certificate for: the SNI that
 * matched, else the first one; NULL without SNI. */
const char *peek_server_name(const struct conn *c);

/* bump.c: whether c->verdict (a deny) is answered with the block page over
 * TLS: a CA is loaded, the CONNECT port is inspected, and deny_with (the
 * category's, else tls_inspect's) is page. */
bool bump_wanted(const struct conn *c);
/* bump.c: after a denied ClientHello (state PEEK): mints a leaf for the
 * SNI (or the CONNECT authority), replays the hello into a TLS server and
 * moves to BUMP. WHY names the tls_inspect option that denied, or NULL.
 * Returns 0, or a negative code with nothing changed (send the alert). */
int bump_start(struct conn *c, const char *why);
/* bump.c: client bytes or EOF/error (NREAD < 0) in state BUMP. */
void bump_data(struct conn *c, ssize_t nread, const char *data);
/* bump.c: the handshake or the request did not come in time. */
void bump_timeout(struct conn *c);
/* bump.c: releases the TLS state. NULL-safe. */
void bump_free(struct conn *c);

/* tunnel.c: the destination of a CONNECT is connected: 200 (unless sent
 * already), the peeked hello and any early bytes, then relaying. */
void tunnel_start(struct conn *c);
/* tunnel.c: bytes or EOF/error (NREAD < 0) from the client or destination. */
void tunnel_client_data(struct conn *c, ssize_t nread, const char *data);
void tunnel_upstream_data(struct conn *c, ssize_t nread, const char *data);
/* tunnel.c: closes C once both sides sent FIN and everything was written. */
void tunnel_maybe_close(struct conn *c);

/* forward.c: an upstream for the current request is ready. */
void forward_start(struct conn *c);
/* forward.c: response parser callbacks (ctx is the struct upstream). */
extern const struct http1_callbacks forward_response_cbs;
/* forward.c: bytes or EOF/error (NREAD < 0) from the destination. */
void forward_response_data(struct conn *c, ssize_t nread, const char *data);
/* forward.c: the exchange with the destination failed (WHY is logged):
 * retried on a fresh connection when that is safe, else answered with 502
 * or, once the response has started, by closing the client connection. */
void forward_failed(struct conn *c, const char *why);
/* conn.c: dials ADDR (already checked) for the current request. */
void conn_dial_address(struct conn *c, const struct sockaddr *addr);
/* forward.c: the client or upstream made progress; finish the exchange if done. */
void forward_maybe_finish(struct conn *c);

/* respond.c: writes a response Embargo generated (error or deny) and moves
 * to RESPONDING. ERROR is the RFC 9209 Proxy-Status error type; DETAIL goes
 * into the header's details and the body. Logs the event. */
void respond_error(struct conn *c, int status, const char *error, const char *detail);
/* respond.c: writes the 403 deny page for c->verdict. */
void respond_deny(struct conn *c);
/* respond.c: appends to OUT the whole 403 deny response for c->verdict
 * (Proxy-Status, Connection: close, the same page respond_deny writes),
 * for a caller with its own transport (the block page over TLS). WHY names
 * what denied when no vendor rule did (a tls_inspect option); DEST is the
 * destination the page names, NULL for the requested authority. */
void respond_deny_message(const struct conn *c, const char *why, const char *dest,
                          struct obuf *out);
/* respond.c: writes a decision line for the current request. */
void respond_log(struct conn *c, const char *event, int status, const char *error,
                 const char *detail);

#endif
