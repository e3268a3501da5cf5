/* Functions shared by the files that implement struct conn (conn.c,
 * front.c, route.c, transparent.c, peek.c, tunnel.c, forward.c,
 * respond.c). Not for use outside proxy/. */
#ifndef EMBARGO_PROXY_CONN_INT_H
#define EMBARGO_PROXY_CONN_INT_H

#include "proxy/conn-t.h"
#include "proxy/dns.h"
#include "proxy/conn.h"
#include "proxy/judge.h"
#include "proxy/listener.h"

/* ---- conn.c: lifecycle, reading, writing ---- */

/* Frees C's exchange (NULL-safe): the parser, lookup, peek and spill. */
void conn_exchange_free(struct conn *c);
/* In state TUNNEL with no ClientHello watch left, the exchange is of no
 * further use: frees it (and the upstream's kept answer), so a relaying
 * tunnel holds only struct conn and its upstream. Does nothing otherwise. */
void conn_tunnel_relaying(struct conn *c);
/* Gives the upstream kept for the client's next request (c->kept) back to
 * the pool. NULL-safe. */
void conn_release_kept(struct conn *c);
/* Moves C to ST, asserting the move is legal. */
void conn_set_state(struct conn *c, enum conn_state st);
/* Starts or stops reading on both sides as backpressure and state allow. */
void conn_update_reading(struct conn *c);
/* (Re)arms C's timer for the current phase. */
void conn_arm_timer(struct conn *c, uint64_t ms);
/* Sends FIN and drops input until the client closes (or a short deadline). */
void conn_linger(struct conn *c);
/* Writes to the client; on failure the connection is closed and -1 returned. */
int conn_write_client(struct conn *c, const char *data, size_t len);
/* A parser took USED of the LEN bytes at DATA. Advances the spill buffer
 * when DATA is its content (FROM_SPILL), else appends the unparsed rest
 * to it. Returns 0, or -1 after closing C (out of memory). */
int conn_input_consumed(struct conn *c, const char *data, size_t len, size_t used,
                        bool from_spill);
/* The listener's mode (enum listen_mode) and whether it is transparent. */
int conn_mode(const struct conn *c);
bool conn_transparent(const struct conn *c);
/* Writes the log or access line the current verdict calls for, if any. */
void conn_log_verdict(struct conn *c);

/* ---- front.c: the HTTP front end (explicit proxy and intercepted HTTP) ---- */

/* Creates the request parser (if needed) and starts reading requests. */
int front_init(struct conn *c);
/* Client bytes in HEAD/FORWARD; DATA may be the spill buffer (FROM_SPILL). */
void front_parse(struct conn *c, const char *data, size_t len, bool from_spill);
/* Client EOF in HEAD/FORWARD. */
void front_eof(struct conn *c);
/* Parses buffered client input; called when parsing may continue. */
void front_process_spill(struct conn *c);
/* Continues parsing the current request after a pause: lets a request
 * without a body complete, then parses buffered input. */
void front_resume_request(struct conn *c);
/* Starts the next request on a kept-alive connection. */
void front_next_request(struct conn *c);
/* Whether a request head is being timed (HEAD with bytes of one seen). */
bool front_in_head(const struct conn *c);

/* ---- route.c: judge, resolve, judge again, peek, dial ---- */

/* The current exchange's destination is in c->dest (and, transparently,
 * c->orig_dst): judges the name, resolves it, judges the answer, inspects
 * the ClientHello where wanted, then dials. Answers the client itself on a
 * refusal or failure. */
void route_start(struct conn *c);
/* The ClientHello of a CONNECT tunnel was read: judge it with everything
 * else, then dial or refuse. */
void route_after_hello(struct conn *c);
/* The second ClientHello of a tunnel (after a HelloRetryRequest) was read:
 * judges it with everything else, CHANGED adding a deny (its server names
 * differ from the first hello's). Returns true to relay it; false once the
 * client was refused. */
bool route_second_hello(struct conn *c, bool changed);
/* Refuses the current exchange in the way the client can understand: an
 * HTTP response while one can be sent, a TLS alert once a ClientHello was
 * read, else a logged close. */
void route_refuse(struct conn *c, int status, const char *error, const char *detail);
/* The pool key of the current exchange's destination into BUF. */
const char *route_pool_key(const struct conn *c, char *buf, size_t size);
/* Dials ADDR (already checked) for the current request. */
void route_dial_address(struct conn *c, const struct sockaddr *addr);

/* ---- transparent.c: intercepted connections ---- */

/* Recovers the original destination of a connection accepted on a
 * transparent listener. 0, or a negative code (no redirect happened). */
int transparent_original_dst(struct conn *c);
/* Starts reading the first bytes (a new transparent connection is in
 * state SNIFF from the start). */
void transparent_start(struct conn *c);
/* Client bytes or EOF/error while sniffing. */
void transparent_data(struct conn *c, ssize_t nread, const char *data);
/* Nothing usable arrived in time. */
void transparent_timeout(struct conn *c);
/* Sets c->dest to the original destination as an IP literal (what is
 * judged when the connection claims no name). */
void transparent_dest_from_orig(struct conn *c);

/* ---- peek.c ---- */

/* Whether the current CONNECT's tunnel gets ClientHello inspection. */
bool peek_wanted(const struct conn *c);
/* Starts reading the ClientHello (state PEEK), parsing buffered input
 * first. Answers nothing: a CONNECT's 200 is the caller's. */
void peek_start(struct conn *c);
/* Client bytes or EOF/error (NREAD < 0) while peeking. */
void peek_data(struct conn *c, ssize_t nread, const char *data);
/* The hello did not arrive in time. */
void peek_timeout(struct conn *c);
/* Fills IN's server names, fingerprint and the outcome action of the hello. */
void peek_judge_input(const struct conn *c, struct judge_input *in);
/* Whether the client spoke TLS (so a refusal is an access_denied alert). */
bool peek_spoke_tls(const struct conn *c);
/* Sends the fatal access_denied alert. */
void peek_send_alert(struct conn *c);
/* The evidence of the parsed hello for log lines, or NULL. */
const struct tls_evidence *peek_evidence(const struct conn *c);
/* Queues the bytes read while peeking towards UP. 0 or a libuv code. */
int peek_forward(struct conn *c, struct endpoint *up);
/* Releases the inspection state. NULL-safe. */
void peek_free(struct conn *c);
/* A tunnel starts after a hello that offered TLS 1.3: keep watching the
 * server's first flight for a HelloRetryRequest (before peek_free). */
void peek_watch_start(struct conn *c);
/* Server bytes of a watched tunnel, looked at (not kept) before they are
 * relayed. */
void peek_watch_server(struct conn *c, const char *data, size_t len);
/* Whether client bytes must go to peek_second_hello (a HelloRetryRequest
 * was relayed, the second ClientHello is due). */
bool peek_awaiting_second_hello(const struct conn *c);
/* Client bytes after a HelloRetryRequest: held and parsed until the second
 * ClientHello is complete, which is then judged like the first (a
 * different SNI is a deny, tagged sni_changed) before it is relayed. May
 * close C. */
void peek_second_hello(struct conn *c, ssize_t nread, const char *data);
void peek_watch_free(struct conn *c); /* NULL-safe */
/* Whether a whole ClientHello with usable server names was read (so the
 * connection can be answered by a TLS server of Embargo's). */
bool peek_hello_ok(const struct conn *c);
/* The hello bytes read (borrowed, valid while c->peek is). */
const uint8_t *peek_hello(const struct conn *c, size_t *len);
/* The name a block-page certificate may be minted for: a name the verdict
 * (c->verdict, a vendor rule's deny) judged deny itself and the client asks
 * for. The SNI that matched; or the destination (the CONNECT authority, an
 * intercepted connection's claimed name or, without one, its original
 * address) when the rule matched the destination (its name, CNAME chain or
 * addresses) and the hello names no server or names it too. NULL for any
 * other deny (a JA4 rule, a configured outcome, a denied destination
 * behind a hello for another name): that one gets the alert. */
const char *peek_denied_name(const struct conn *c);

/* ---- bump.c: the block page over TLS ---- */

/* Called on every deny (c->verdict) before it is answered: when the page
 * is in effect for the verdict (a CA is loaded; deny_with, the category's
 * or tls_inspect's, is page), takes the connection over and returns true.
 * A CONNECT to a tls_inspect port not answered yet gets its 200 and its
 * ClientHello read (the verdict comes again with the hello); once a hello
 * was read (CONNECT or intercepted), a leaf is minted for its name, the
 * hello replayed into a TLS server, and the state is BUMP. Returns false,
 * changing nothing, when the usual refusal applies. */
bool bump_deny(struct conn *c);
/* Client bytes or EOF/error (NREAD < 0) in state BUMP. */
void bump_data(struct conn *c, ssize_t nread, const char *data);
/* The handshake or the request did not come in time. */
void bump_timeout(struct conn *c);
/* Releases the TLS state. NULL-safe. */
void bump_free(struct conn *c);

/* ---- tunnel.c ---- */

/* The destination is connected: 200 (for a CONNECT not yet answered), the
 * peeked hello and any early bytes, then relaying. */
void tunnel_start(struct conn *c);
/* Bytes or EOF/error (NREAD < 0) from the client or destination. */
void tunnel_client_data(struct conn *c, ssize_t nread, const char *data);
void tunnel_upstream_data(struct conn *c, ssize_t nread, const char *data);
/* Closes C once both sides sent FIN and everything was written. */
void tunnel_maybe_close(struct conn *c);

/* ---- forward.c ---- */

/* An upstream for the current request is ready. */
void forward_start(struct conn *c);
/* Bytes or EOF/error (NREAD < 0) from the destination. */
void forward_response_data(struct conn *c, ssize_t nread, const char *data);
/* The exchange with the destination failed (WHY is logged): retried on a
 * fresh connection when that is safe, else answered with 502 or, once the
 * response has started, by closing the client connection. */
void forward_failed(struct conn *c, const char *why);
/* The client or upstream made progress; finish the exchange if done. */
void forward_maybe_finish(struct conn *c);

/* ---- respond.c ---- */

/* Writes a response Embargo generated (error or deny) and moves to
 * RESPONDING. ERROR is the RFC 9209 Proxy-Status error type; DETAIL goes
 * into the header's details and the body. Logs the event. */
void respond_error(struct conn *c, int status, const char *error, const char *detail);
/* Writes the 403 deny page for c->verdict. */
void respond_deny(struct conn *c);
/* Appends to OUT the whole 403 deny response for c->verdict (Proxy-Status,
 * Connection: close, the same page respond_deny writes), for a caller with
 * its own transport (the block page over TLS). WHY names what denied when
 * no vendor rule did (a tls_inspect option); DEST is the destination the
 * page names, NULL for the requested authority. */
void respond_deny_message(const struct conn *c, const char *why, const char *dest,
                          struct obuf *out);
/* Writes a decision line for the current request. */
void respond_log(struct conn *c, const char *event, int status, const char *error,
                 const char *detail);

#endif
