/* Error codes shared by every module: 0 or a negative code. Negative errno
 * values (and libuv's UV_E*, which are negative errno values on Unix) pass
 * through unchanged; Embargo's own codes follow EMB_ERR_BASE (-10000), far
 * past any errno value. err_str is the one way to turn any of them into
 * text. */
#ifndef EMBARGO_FILTERS_ERR_H
#define EMBARGO_FILTERS_ERR_H

#define EMB_ERR_BASE (-10000)

#define EMB_ERRNO_MAP(XX)                                                    \
  XX(BADHOST, "invalid host name")                                           \
  XX(ULABEL, "non-ASCII host name (send IDNA A-labels)")                     \
  XX(BADIP, "non-canonical IP literal")                                      \
  XX(BADPORT, "invalid port")                                                \
  XX(BADURL, "invalid request target")                                       \
  XX(USERINFO, "user information in request target")                         \
  XX(SCHEME, "unsupported URL scheme")                                       \
  XX(BADPATTERN, "invalid host pattern")                                     \
  XX(DUPLICATE, "duplicate entry")                                           \
  XX(BADCIDR, "invalid network prefix")                                      \
  XX(BADTIME, "invalid RFC 3339 timestamp")                                  \
  XX(CONFIG, "configuration error")                                          \
  XX(DENIED, "denied by policy")                                             \
  XX(TOOBIG, "too large")                                                   \
  XX(CERT, "certificate authority error")                                    \
  XX(BADBUNDLE, "malformed list bundle")                                     \
  XX(BADSIG, "list bundle signature does not verify")                        \
  XX(BADDIGEST, "list bundle file does not match its manifest")

enum {
  EMB_ERR_FIRST_ = EMB_ERR_BASE,
#define XX(code, _) EMB_E##code,
  EMB_ERRNO_MAP(XX)
#undef XX
  EMB_ERR_LAST_
};

/* libuv's UV_EOF, the one libuv code on Unix that is no negative errno. */
#define EMB_UV_EOF (-4095)

/* Short symbolic name: "OK" for 0, "EMB_EBADHOST" for Embargo's codes,
 * the errno name for a negative errno or UV_E* code ("ENOENT",
 * "ECONNREFUSED"), "EOF" for UV_EOF, "ERRNO" for an errno value the C
 * library has no name for, "EUNKNOWN" otherwise. Never NULL. */
const char *err_name(int err);
/* Human-readable message: Embargo's own for its codes, the C library's
 * (strerror) for errno and UV_E* codes, "end of file" for UV_EOF, "unknown
 * error" otherwise. Never NULL. */
const char *err_str(int err);

#endif
