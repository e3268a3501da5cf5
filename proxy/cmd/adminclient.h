/* The client side of the admin endpoint, for `embargo reload` and
 * `embargo status`: one blocking HTTP/1.1 request with a timeout. */
#ifndef EMBARGO_PROXY_ADMINCLIENT_H
#define EMBARGO_PROXY_ADMINCLIENT_H

#include <stddef.h>
#include <sys/socket.h>

/* Sends "METHOD PATH" to ADDR (with "Authorization: Bearer TOKEN" unless
 * TOKEN is NULL or empty; a POST as application/json) and reads the whole
 * response within TIMEOUT_MS. The Host header names ADDR; a wildcard ADDR
 * (0.0.0.0, ::) is reached, and named, as the loopback address.
 * On success returns the HTTP status and *BODY (caller frees, NUL-
 * terminated); otherwise a negative errno with a message in ERR. */
int adminclient_request(const struct sockaddr *addr, const char *method, const char *path,
                        const char *token, unsigned timeout_ms, char **body, char *err,
                        size_t errsize);

#endif
