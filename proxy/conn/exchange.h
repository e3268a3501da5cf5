/* What the phases share about the exchange being decided: every fact known
 * gathered into one judgement (proxy/judge.c), where a refused exchange
 * goes, the decision lines written for it, and the destination of an
 * intercepted connection. Calls no phase: a refusal is a move the caller
 * returns. */
#ifndef EMBARGO_PROXY_EXCHANGE_H
#define EMBARGO_PROXY_EXCHANGE_H

#include <stdbool.h>

#include "proxy/conn/conn-t.h"

/* Judges what is known of C's exchange now (the name, the answer and the
 * addresses to dial, the ClientHello, the configured outcomes) into
 * c->ex->verdict. Returns true when the exchange may go on; false when it
 * is refused, with *REFUSAL the move that refuses it: RESPONDING with the
 * answer described, or, for a deny the block page serves, BUMP (or PEEK
 * after a 200, for a CONNECT whose hello is still to come), or
 * PHASE_CLOSE when the 200 could not be written. */
bool exchange_judge(struct conn *c, enum phase_rc *refusal);

/* The name a block-page certificate may be minted for: a name the verdict
 * (a vendor rule's deny) judged deny itself and the client asks for. The
 * SNI that matched; or the destination (the CONNECT authority, an
 * intercepted connection's claimed name or, without one, its original
 * address) when the rule matched the destination (its name, CNAME chain or
 * addresses) and the hello names no server or names it too. NULL for any
 * other deny (a JA4 rule, a configured outcome, a denied destination
 * behind a hello for another name): that one gets the alert. */
const char *exchange_page_name(const struct conn *c);

/* Whether the client can still be answered with an HTTP response: a
 * request head was read, no 200 was sent, no ClientHello read. */
bool exchange_http_face(const struct conn *c);

/* Whether the current CONNECT's tunnel gets ClientHello inspection (a TLS
 * port, no hello read yet). */
bool exchange_peek_wanted(const struct conn *c);

/* Writes a decision line for the current exchange: EVENT ("deny", "log",
 * "access", "error"), the HTTP STATUS sent (0: none), the Proxy-Status
 * ERROR type and DETAIL (either may be NULL). */
void exchange_log(struct conn *c, const char *event, int status, const char *error,
                  const char *detail);

/* Writes the log or access line the current verdict calls for, if any. */
void exchange_log_verdict(struct conn *c);

/* Whether C's exchange goes through the upstream proxy: one is configured
 * and neither the destination nor (transparent) the original destination
 * is in its `except` list. */
bool exchange_via_parent(const struct conn *c);

/* The authority the upstream proxy is asked for, into BUF ("name:port",
 * "[v6]:port"): the destination's (a CONNECT's authority, an absolute URL's
 * host), or for an intercepted connection the name it claims when that
 * name's addresses were judged (parent_by_name), else its original
 * destination. */
const char *exchange_parent_target(const struct conn *c, char *buf, size_t size);

/* Refuses the exchange for a failure of the upstream proxy: STATUS (502,
 * 504) with the Proxy-Status ERROR type, `next-hop` naming the parent and,
 * when it answered, `received-status` RECEIVED (0: none), and DETAIL. The
 * move to RESPONDING, for the handler to return. */
enum phase_rc exchange_parent_failed(struct conn *c, int status, const char *error, int received,
                                     const char *detail);

/* Sets the destination to the original one as an IP literal: what is
 * judged when an intercepted connection claims no name. */
void exchange_dest_from_orig(struct exchange *ex);

/* Sets the destination to NAME, at the original destination's port: an
 * intercepted connection is routed by the name it claims. */
void exchange_dest_claimed(struct exchange *ex, const char *name);

#endif
