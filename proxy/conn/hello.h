/* The ClientHello a client sent, as the exchange keeps it: the bytes read
 * (forwarded or replayed unchanged), parsed by filters/tls_hello, and the
 * facts the connection is judged and logged on: server names (normalised,
 * IP literals apart), ALPN, versions, JA4, the outcome (hello, not TLS,
 * malformed, too large, timeout) and the action configured for it. PEEK
 * reads the first hello into one, TUNNEL a second one after a
 * HelloRetryRequest; ROUTE, BUMP and RESPONDING read them. Touches no
 * connection. */
#ifndef EMBARGO_PROXY_HELLO_H
#define EMBARGO_PROXY_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/policy-t.h"
#include "filters/tls_hello-t.h"

struct hello;
struct config_tls;
struct judge_input;
struct tls_evidence;

#define HELLO_ALERT_LEN   7
#define HELLO_SNI_SET_MAX 1024

struct slab_pool;

/* A hello reader bounded to MAX bytes, in a cell of CELLS (a loop's pool;
 * NULL: the heap), or NULL (out of memory, or MAX outside what the parser
 * accepts). Its buffer starts small, in the reader's own memory, and grows
 * with the hello up to what MAX needs. */
struct hello *hello_new(struct slab_pool *cells, size_t max);

/* NULL-safe. */
void hello_free(struct hello *h);

/* Feeds LEN client bytes; *USED receives how many belong to the hello (all
 * of them while it is incomplete). Returns the parser's status: NEED_MORE,
 * or the final one. */
enum tls_hello_status hello_feed(struct hello *h, const char *data, size_t len, size_t *used);

/* The hello is in (or never will be: TIMED_OUT): gathers its evidence, why
 * it is malformed if it is, the outcome and the action TLS (the
 * tls_inspect settings) configures for it; counts the outcome. DEST_NAME
 * (may be NULL) is the name the client asked for, for the sni_mismatch
 * tag. */
void hello_finish(struct hello *h, const struct config_tls *tls, const char *dest_name,
                  bool timed_out);

/* Adds H's facts (once finished) to IN: host names, IP-literal names, JA4
 * and the outcome's configured action. */
void hello_judge_input(const struct hello *h, struct judge_input *in);

/* The evidence for log lines once finished, else NULL. Borrowed from H. */
const struct tls_evidence *hello_evidence(const struct hello *h);

/* Whether the client spoke TLS (so a refusal is an access_denied alert). */
bool hello_spoke_tls(const struct hello *h);

/* The fatal access_denied alert at the record version the client used,
 * into OUT. */
void hello_alert(const struct hello *h, char out[HELLO_ALERT_LEN]);

/* Whether a whole hello with usable server names was read (so the client
 * can be answered by a TLS server of Embargo's). */
bool hello_ok(const struct hello *h);

/* The bytes read (borrowed from H). */
const uint8_t *hello_raw(const struct hello *h, size_t *len);

/* The normalised host names the hello claims (not IP literals), and how
 * many. Borrowed from H. */
const char *const *hello_names(const struct hello *h, size_t *n);

/* Whether NAME is among the hello's server names, or it names none. */
bool hello_asks_for(const struct hello *h, const char *name);

/* Whether the hello offers TLS 1.3 (a HelloRetryRequest may follow). */
bool hello_offers_tls13(const struct hello *h);

/* The server names, normalised, joined with commas, into OUT. */
void hello_sni_set(const struct hello *h, char *out, size_t size);

/* Adds TAG (static) to the evidence. */
void hello_add_tag(struct hello *h, const char *tag);

#endif
