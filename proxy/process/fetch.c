/* A blocking HTTPS GET for list bundles (fetch.h): non-blocking sockets
 * waited on with poll() in short slices, so one deadline bounds the whole
 * fetch and a stop request is noticed within a slice. */
#include "proxy/process/fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config/lists.h"
#include "proxy/base/http1.h"

#ifndef EMBARGO_VERSION
#define EMBARGO_VERSION "0.0.0"
#endif

#define SLICE_MS   200         /* longest single wait: how soon a stop is noticed */
#define HEAD_MAX   (16u << 10) /* response (and CONNECT answer) head */
#define READ_PIECE (64u << 10)

/* One connection: its socket, TLS once set up, the deadline. */
struct io {
  int fd;
  SSL *ssl;
  uint64_t deadline; /* monotonic ms */
  const atomic_bool *stop;
  char *err;
  size_t errsize;
};

__attribute__((format(printf, 3, 4))) static int fail(struct io *io, int code, const char *fmt,
                                                      ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(io->err, io->errsize, fmt, ap);
  va_end(ap);
  ERR_clear_error();
  return code;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* -ECANCELED once asked to stop, -ETIMEDOUT past the deadline, else 0. */
static int give_up(const struct io *io, uint64_t t) {
  if (io->stop != NULL && atomic_load(io->stop))
    return -ECANCELED;
  return t >= io->deadline ? -ETIMEDOUT : 0;
}

/* Waits until FD is ready for EVENTS. 0, -ETIMEDOUT, -ECANCELED or -errno. */
static int wait_fd(const struct io *io, short events) {
  for (;;) {
    uint64_t t = now_ms();
    struct pollfd p = {.fd = io->fd, .events = events};
    int n = give_up(io, t);
    if (n != 0)
      return n;
    n = poll(&p, 1, (int)(io->deadline - t < SLICE_MS ? io->deadline - t : SLICE_MS));
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return -errno;
  }
}

/* "a.b.c.d:port" or "[v6]:port" of AI into BUF. */
static const char *addr_text(const struct addrinfo *ai, char *buf, size_t size) {
  char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
  getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), port, sizeof(port),
              NI_NUMERICHOST | NI_NUMERICSERV);
  snprintf(buf, size, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
  return buf;
}

static int connect_one(struct io *io, const struct addrinfo *ai) {
  int so_error = 0;
  socklen_t slen = sizeof(so_error);
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  io->fd = fd;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return 0;
  if (errno != EINPROGRESS)
    return -errno;
  int rc = wait_fd(io, POLLOUT);
  if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &slen) != 0)
    rc = -errno;
  return rc != 0 ? rc : -so_error;
}

/* Connects to HOST:PORT, each address in turn, within the deadline. */
static int dial(struct io *io, const char *host, const char *port) {
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
  struct addrinfo *res = NULL;
  char where[80] = "";
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0)
    return fail(io, -EHOSTUNREACH, "cannot resolve %s: %s", host, gai_strerror(rc));
  rc = -EHOSTUNREACH;
  for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    if ((rc = connect_one(io, ai)) == 0)
      break;
    addr_text(ai, where, sizeof(where));
    if (io->fd >= 0)
      close(io->fd);
    io->fd = -1;
    if (rc == -ECANCELED || rc == -ETIMEDOUT)
      break;
  }
  freeaddrinfo(res);
  if (rc != 0)
    return fail(io, rc, "connect to %s: %s", where, strerror(-rc));
  return 0;
}

/* ---- reading and writing, plain or TLS -------------------------------------- */

/* After an SSL call returned R: waits as OpenSSL asks (0), or fails. */
static int ssl_wait(struct io *io, int r) {
  switch (SSL_get_error(io->ssl, r)) {
  case SSL_ERROR_WANT_READ: return wait_fd(io, POLLIN);
  case SSL_ERROR_WANT_WRITE: return wait_fd(io, POLLOUT);
  case SSL_ERROR_SYSCALL: return errno != 0 ? -errno : -ECONNRESET;
  default: return -EPROTO;
  }
}

static int io_write(struct io *io, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n;
    int rc;
    if (io->ssl != NULL) {
      int r = SSL_write(io->ssl, buf, (int)len);
      n = r;
      rc = r > 0 ? 0 : ssl_wait(io, r);
    } else {
      n = send(io->fd, buf, len, MSG_NOSIGNAL);
      rc = n >= 0 ? 0 : errno == EAGAIN ? wait_fd(io, POLLOUT) : -errno;
    }
    if (rc != 0)
      return rc;
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
    }
  }
  return 0;
}

/* Reads what is there (at most CAP bytes): their number, 0 at the end of
 * the stream, or a negative code. The deadline and a stop are checked on
 * every call, not only when waiting: a server sending without pause never
 * makes it wait. */
static ssize_t io_read(struct io *io, char *buf, size_t cap) {
  for (;;) {
    int rc = give_up(io, now_ms());
    if (rc != 0)
      return rc;
    if (io->ssl != NULL) {
      int r = SSL_read(io->ssl, buf, (int)cap);
      if (r > 0)
        return r;
      if (SSL_get_error(io->ssl, r) == SSL_ERROR_ZERO_RETURN)
        return 0;
      rc = ssl_wait(io, r);
    } else {
      ssize_t n = recv(io->fd, buf, cap, 0);
      if (n >= 0)
        return n;
      rc = errno == EAGAIN ? wait_fd(io, POLLIN) : -errno;
    }
    if (rc != 0)
      return rc;
  }
}

/* ---- proxy and TLS ------------------------------------------------------------ */

/* CONNECT through the proxy to the URL's host and port. Reads the answer a
 * byte at a time, so nothing of the TLS stream behind it is taken. */
static int proxy_connect(struct io *io, const struct lists_url *u, const char *proxy) {
  char req[700], head[1024], target[300];
  size_t n = 0;
  snprintf(target, sizeof(target), strchr(u->host, ':') ? "[%s]:%s" : "%s:%s", u->host, u->port);
  snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: embargo/%s\r\n\r\n",
           target, target, EMBARGO_VERSION);
  int rc = io_write(io, req, strlen(req));
  while (rc == 0 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
    ssize_t got = n < sizeof(head) - 1 ? io_read(io, head + n, 1) : -EPROTO;
    rc = got > 0 ? 0 : got == 0 ? -ECONNRESET : (int)got;
    n += got > 0 ? 1 : 0;
  }
  if (rc != 0)
    return fail(io, rc, "CONNECT %s through %s: %s", target, proxy,
                rc == -EPROTO ? "answer head too long" : strerror(-rc));
  head[n] = '\0';
  if (strncmp(head, "HTTP/1.", 7) != 0 || strncmp(head + 8, " 200", 4) != 0)
    return fail(io, -EPROTO, "CONNECT %s through %s: %.*s", target, proxy,
                (int)strcspn(head, "\r\n"), head);
  return 0;
}

/* A TLS client context that verifies the server with CA_FILE's anchors
 * (or the system's) into *OUT. 0 or a negative code. */
static int client_ctx(struct io *io, const char *ca_file, SSL_CTX **out) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if ((*out = ctx) == NULL)
    return fail(io, -ENOMEM, "out of memory");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int ok = ca_file != NULL && ca_file[0] != '\0' ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                                 : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1)
    return fail(io, -EPROTO, "cannot load the trust anchors %s",
                ca_file != NULL && ca_file[0] != '\0' ? ca_file : "(system)");
  return 0;
}

/* Why the handshake failed, into io->err. */
static int handshake_error(struct io *io, const char *host, int rc) {
  long v = SSL_get_verify_result(io->ssl);
  char why[256] = "";
  if (v != X509_V_OK)
    return fail(io, -EPROTO, "TLS with %s: certificate verify failed: %s", host,
                X509_verify_cert_error_string(v));
  if (rc == -EPROTO)
    ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
  return fail(io, rc, "TLS with %s: %s", host, why[0] ? why : strerror(-rc));
}

/* TLS over io->fd with the URL's host checked against the certificate
 * (its DNS names, or its IP addresses for an IP literal). */
static int tls_start(struct io *io, SSL_CTX *ctx, const char *host) {
  unsigned char ip[16];
  bool literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
  if ((io->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(io->ssl, io->fd) != 1)
    return fail(io, -ENOMEM, "out of memory");
  SSL_set_hostflags(io->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(io->ssl), host) != 1
              : SSL_set_tlsext_host_name(io->ssl, host) != 1 || SSL_set1_host(io->ssl, host) != 1)
    return fail(io, -EINVAL, "cannot check the certificate against '%s'", host);
  for (;;) {
    int r = SSL_connect(io->ssl), rc;
    if (r == 1)
      return 0;
    if ((rc = ssl_wait(io, r)) != 0)
      return handshake_error(io, host, rc);
  }
}

/* ---- the response ------------------------------------------------------------ */

/* The answer as the parser (proxy/base/http1.c, llhttp) reports it: the
 * status of its head, and its body decoded (chunked or not) into one buffer
 * of at most MAX bytes. Each byte received is parsed once, whatever its
 * framing, so the server's chunking cannot make the work grow faster than
 * what it sends. */
struct response {
  int status;
  char reason[64];
  char *body; /* owned until handed to the caller */
  size_t len, max;
  bool too_big;
  bool done; /* the whole message was parsed */
};

static int on_resp_head(void *ctx, struct http_head *h) {
  struct response *r = ctx;
  r->status = h->status;
  snprintf(r->reason, sizeof(r->reason), "%.*s", (int)h->reason_len, http_head_str(h, h->reason));
  return h->status == 200 ? HTTP1_CONTINUE : HTTP1_PAUSE; /* anything else is refused whole */
}

static int on_resp_body(void *ctx, const char *data, size_t len) {
  struct response *r = ctx;
  if (len > r->max - r->len) {
    r->too_big = true;
    return -1;
  }
  memcpy(r->body + r->len, data, len);
  r->len += len;
  return HTTP1_CONTINUE;
}

static int on_resp_done(void *ctx) {
  struct response *r = ctx;
  r->done = true;
  return HTTP1_PAUSE; /* nothing after the message is looked at */
}

static const struct http1_callbacks response_cbs = {on_resp_head, on_resp_body, on_resp_done};

/* Why the parse of R by P failed, into io->err. */
static int response_error(struct io *io, const struct http1 *p, const struct response *r) {
  if (r->too_big)
    return fail(io, -EFBIG, "the body is larger than %zu bytes", r->max);
  return fail(io, -EPROTO, "not an HTTP/1.x answer: %s", http1_error_reason(p));
}

/* Reads and parses the answer into R until it is whole, its head refuses
 * it, or the stream ends. */
static int read_response(struct io *io, struct response *r) {
  char piece[READ_PIECE];
  size_t used;
  int rc = 0;
  struct http1 *p = http1_new(false, HEAD_MAX, &response_cbs, r);
  if (p == NULL || (r->body = malloc(r->max + 1)) == NULL) {
    http1_free(p);
    return fail(io, -ENOMEM, "out of memory");
  }
  while (rc == 0 && !r->done && (r->status == 0 || r->status == 200)) {
    ssize_t got = io_read(io, piece, sizeof(piece));
    if (got < 0)
      rc = fail(io, (int)got, "reading the answer: %s", strerror((int)-got));
    else if (got == 0 && (http1_finish(p) != HTTP1_OK || r->status == 0))
      rc = fail(io, -EPROTO, "the answer ended %s",
                r->status == 0 ? "before its head" : "inside its body");
    else if (got == 0)
      break; /* a body up to the close: whole (on_resp_done has run) */
    else if (http1_feed(p, piece, (size_t)got, &used) == HTTP1_ERROR)
      rc = response_error(io, p, r);
  }
  if (rc == 0 && r->status != 200)
    rc = fail(io, -EPROTO, "HTTP %d %s", r->status, r->reason);
  http1_free(p);
  return rc;
}

int fetch_https(const struct fetch_opts *o, char **body, size_t *len, char *err, size_t errsize) {
  struct io io = {.fd = -1,
                  .deadline = now_ms() + o->timeout_ms,
                  .stop = o->stop,
                  .err = err,
                  .errsize = errsize};
  struct lists_url u, p;
  struct response r = {.max = o->max_body};
  SSL_CTX *ctx = NULL;
  char why[160], req[1500];
  bool via = o->proxy != NULL && o->proxy[0] != '\0';
  int rc;

  *body = NULL;
  if (lists_url_split(o->url, "https", &u, why, sizeof(why)) != 0 ||
      (via && lists_url_split(o->proxy, "http", &p, why, sizeof(why)) != 0)) {
    rc = fail(&io, -EINVAL, "%s", why);
    goto cleanup;
  }
  if ((rc = client_ctx(&io, o->ca_file, &ctx)) != 0)
    goto cleanup;
  rc = via ? dial(&io, p.host, p.port) : dial(&io, u.host, u.port);
  if (rc == 0 && via)
    rc = proxy_connect(&io, &u, o->proxy);
  if (rc == 0)
    rc = tls_start(&io, ctx, u.host);
  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: embargo/%s\r\nAccept: */*\r\n"
           "Connection: close\r\n\r\n",
           u.path, u.hostport, EMBARGO_VERSION);
  if (rc == 0 && (rc = io_write(&io, req, strlen(req))) != 0)
    fail(&io, rc, "sending the request: %s", strerror(-rc));
  if (rc == 0 && (rc = read_response(&io, &r)) == 0) {
    r.body[r.len] = '\0';
    *body = r.body;
    *len = r.len;
  }
cleanup:
  if (rc != 0)
    free(r.body);
  if (io.ssl != NULL) {
    if (rc == 0)
      SSL_shutdown(io.ssl); /* best effort: the answer is whole */
    SSL_free(io.ssl);
  }
  if (io.fd >= 0)
    close(io.fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return rc;
}
