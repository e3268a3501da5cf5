/* The responses Embargo writes itself, as bytes: an error with an RFC 9209
 * Proxy-Status field, and the 403 deny page, the same whether it goes over
 * the client's connection or over the block page's TLS. Touches no
 * connection. */
#ifndef EMBARGO_PROXY_MESSAGE_H
#define EMBARGO_PROXY_MESSAGE_H

#include <stdbool.h>

struct exchange;
struct obuf;

/* The reason phrase of STATUS ("Forbidden"); "Error" for one not listed. */
const char *message_reason(int status);

/* Appends to OUT a whole error response: status line, Proxy-Status (ERROR,
 * PS_EXTRA parameters if not NULL, DETAIL), plain-text BODY (NULL: the
 * usual "Embargo: STATUS REASON" and DETAIL), Connection: keep-alive or
 * close per KEEP. */
void message_error(struct obuf *out, int status, const char *error, const char *ps_extra,
                   const char *detail, const char *body, bool keep);

/* Appends to OUT the whole 403 deny response for EX's verdict: the page
 * naming the vendor, category, cutoff, rule and legal basis (or, with no
 * vendor rule, WHY: the option that denied, NULL for "policy"). DEST is
 * the destination the page names, NULL for the requested authority. */
void message_deny(struct obuf *out, const struct exchange *ex, const char *why, const char *dest,
                  bool keep);

#endif
