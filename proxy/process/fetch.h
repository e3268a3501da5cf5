/* A small blocking HTTPS client for list bundles: one GET, OpenSSL with the
 * system trust store (or a given CA file) and host name verification,
 * directly or through an HTTP proxy (CONNECT). Runs on a thread of its own
 * (never an event loop's): every wait is bounded by one deadline and gives
 * up early when asked to stop. */
#ifndef EMBARGO_PROXY_FETCH_H
#define EMBARGO_PROXY_FETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fetch_opts {
  const char *url;         /* https://host[:port]/path */
  const char *ca_file;     /* PEM trust anchors; NULL or "": the system's */
  const char *proxy;       /* http://host:port to CONNECT through; NULL or "": direct */
  uint64_t timeout_ms;     /* for the whole fetch, name lookup to last byte */
  size_t max_body;         /* a larger body is refused */
  const atomic_bool *stop; /* set by another thread to give up; may be NULL */
};

/* GETs O->url and returns its body in *BODY (caller frees; NUL-terminated,
 * *LEN bytes). Only a 200 answer with a whole body (Content-Length, chunked
 * or up to the close) counts. Returns 0, or a negative code (-ETIMEDOUT,
 * -ECANCELED, -EPROTO, -EFBIG, a connect error, ...) with the reason in ERR
 * ("connect to 10.0.0.5:443: Connection refused", "TLS with lists.example:
 * certificate verify failed: ...", "HTTP 404 Not Found"). */
int fetch_https(const struct fetch_opts *o, char **body, size_t *len, char *err, size_t errsize);

#endif
