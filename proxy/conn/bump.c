/* BUMP, the block page over TLS: a tunnel Embargo has already decided to
 * deny (a CONNECT, or intercepted TLS, whose ClientHello was read) is
 * answered by a TLS server of its own, with a leaf minted for the requested
 * name by the local CA (certs/blockpage.h), instead of an access_denied
 * alert. OpenSSL runs on memory BIOs fed from the client's reads (the
 * ClientHello read replayed first); ALPN offers http/1.1 only. A leaf not
 * in the cache is signed on libuv's thread pool, so that minting for many
 * new names does not hold up other connections; it comes back through
 * conn_resume. The first request gets the same 403 deny page, with
 * Proxy-Status, that plain HTTP gets; then close_notify and LINGER.
 * Nothing is ever dialled. If the TLS server cannot even start, RESPONDING
 * gives the usual refusal.
 *
 * One decision line per connection, written when the outcome is known:
 *   page served             error "http_request_denied", status 403;
 *   the client aborted the handshake after Embargo's certificate (unknown
 *   CA, a pinned agent)     error "client_rejected_certificate";
 *   handshake failed before the certificate   error "tls_handshake_failed";
 *   no request after the handshake            error "http_request_error". */
#include "proxy/conn/bump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certs/blockpage.h"
#include "filters/err.h"
#include "filters/policy.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/conn/hello.h"
#include "proxy/conn/message.h"
#include "proxy/worker/server.h"

#define BUMP_REQ_MAX   8192  /* request head bytes read before answering anyway */
#define BUMP_INPUT_MAX 65536 /* TLS bytes buffered unprocessed before giving up */

/* A leaf being minted on the thread pool. */
struct mint_job {
  uv_work_t req;
  struct conn *c;       /* NULL once the connection left BUMP */
  struct blockpage *bp; /* the process's: outlives every loop's last callback */
  int64_t now;
  X509 *leaf; /* made by the worker; handed to the cache */
  char name[];
};

/* The phase's own state (c->priv). */
struct bump {
  SSL *ssl;             /* owns both BIOs */
  struct mint_job *job; /* the pending mint, or NULL */
  X509 *minted;         /* the leaf the mint brought, until the phase resumes */
  BIO *in, *out;        /* client bytes to OpenSSL; OpenSSL's bytes to the client */
  bool cert_sent;       /* our Certificate message went out */
  bool handshaken;
  int alert;                         /* the client's alert (level << 8 | description), or -1 */
  char dest[HOST_NAME_MAX_LEN + 10]; /* the name the certificate is for, with the port */
  size_t req_len;
  char req[BUMP_REQ_MAX + 1];
};

static void bump_leave(struct conn *c) {
  struct bump *b = c->priv;
  if (b == NULL)
    return;
  if (b->job != NULL) /* it finishes on its own, for the cache */
    b->job->c = NULL;
  X509_free(b->minted);
  SSL_free(b->ssl);
  free(b);
}

/* Records the client's alert and whether our certificate went out. */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg) {
  struct bump *b = arg;
  const unsigned char *p = buf;
  if (write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 && p[0] == SSL3_MT_CERTIFICATE)
    b->cert_sent = true;
  if (!write_p && content_type == SSL3_RT_ALERT && len >= 2)
    b->alert = p[0] << 8 | p[1];
}

/* Queues what OpenSSL wrote towards the client. 0, or a negative code. */
static int flush(struct conn *c) {
  struct bump *b = c->priv;
  char buf[16384];
  int n, rc;
  while ((n = BIO_read(b->out, buf, sizeof(buf))) > 0)
    if ((rc = conn_write_client(c, buf, (size_t)n)) != 0)
      return rc;
  return 0;
}

/* The one decision line, then FIN (or close when the client is gone). */
static enum phase_rc finish(struct conn *c, int status, const char *error, const char *detail) {
  exchange_log(c, "deny", status, error, detail);
  return c->cli.eof ? PHASE_CLOSE : conn_goto(c, CONN_ST_LINGER);
}

/* The handshake or the request did not happen; WHAT says how it ended. */
static enum phase_rc give_up(struct conn *c, const char *what) {
  struct bump *b = c->priv;
  char detail[200];
  if (b->handshaken) {
    snprintf(detail, sizeof(detail), "no request after the TLS handshake (%s)", what);
    return finish(c, 0, "http_request_error", detail);
  }
  if (b->cert_sent && b->alert >= 0) {
    snprintf(detail, sizeof(detail), "client sent alert %s after the minted certificate",
             SSL_alert_desc_string_long(b->alert));
    return finish(c, 0, "client_rejected_certificate", detail);
  }
  if (b->cert_sent) {
    snprintf(detail, sizeof(detail), "%s after the minted certificate", what);
    return finish(c, 0, "client_rejected_certificate", detail);
  }
  return finish(c, 0, "tls_handshake_failed", what);
}

/* The request head is in (or too long to wait for): the page, close_notify, FIN. */
static enum phase_rc answer(struct conn *c) {
  struct bump *b = c->priv;
  struct obuf out = {0};
  char detail[300];
  size_t line = strcspn(b->req, "\r\n");

  message_deny(&out, c->ex, NULL, b->dest, false);
  if (!out.failed && strncmp(b->req, "HEAD ", 5) == 0) /* the head alone (RFC 9110 9.3.2) */
    out.len = (size_t)((const char *)memmem(out.data, out.len, "\r\n\r\n", 4) + 4 - out.data);
  if (out.failed || SSL_write(b->ssl, out.data, (int)out.len) != (int)out.len) {
    obuf_free(&out);
    return give_up(c, "cannot write the page");
  }
  obuf_free(&out);
  SSL_shutdown(b->ssl);
  if (flush(c) != 0)
    return PHASE_CLOSE;
  snprintf(detail, sizeof(detail), "block page over TLS for \"%.*s\"",
           (int)(line < 200 ? line : 200), b->req);
  return finish(c, 403, "http_request_denied", detail);
}

static enum phase_rc read_request(struct conn *c) {
  struct bump *b = c->priv;
  for (int i = 0; i < 64; i++) {
    size_t room = BUMP_REQ_MAX - b->req_len;
    int n = room > 0 ? SSL_read(b->ssl, b->req + b->req_len, (int)room) : 0;
    if (room == 0 || (n > 0 && memmem(b->req, b->req_len + (size_t)n, "\r\n\r\n", 4) != NULL)) {
      b->req_len += n > 0 ? (size_t)n : 0;
      b->req[b->req_len] = '\0';
      return answer(c);
    }
    if (n <= 0) {
      int e = SSL_get_error(b->ssl, n);
      if (flush(c) != 0)
        return PHASE_CLOSE;
      if (e != SSL_ERROR_WANT_READ)
        return give_up(c, e == SSL_ERROR_ZERO_RETURN ? "client sent close_notify" : "TLS error");
      return PHASE_MORE;
    }
    b->req_len += (size_t)n;
    b->req[b->req_len] = '\0';
  }
  return PHASE_MORE;
}

/* Runs OpenSSL on what has arrived (once there is a certificate). */
static enum phase_rc drive(struct conn *c) {
  struct bump *b = c->priv;
  enum phase_rc rc;
  if (b->job != NULL)
    return PHASE_MORE;
  if (!b->handshaken) {
    int r = SSL_do_handshake(b->ssl);
    if (flush(c) != 0)
      return PHASE_CLOSE;
    if (r != 1) {
      int e = SSL_get_error(b->ssl, r);
      rc = PHASE_MORE;
      if (e != SSL_ERROR_WANT_READ) {
        unsigned long why = ERR_peek_error();
        rc = give_up(c, why ? ERR_reason_error_string(why) : "TLS handshake failed");
      }
      ERR_clear_error();
      return rc;
    }
    b->handshaken = true;
  }
  rc = read_request(c);
  ERR_clear_error();
  return rc;
}

/* A new SSL for C, its BIOs in B; NULL on failure. */
static SSL *new_ssl(struct conn *c, struct bump *b) {
  SSL *ssl = blockpage_ssl_new(c->srv->blockpage);
  if (ssl == NULL)
    return NULL;
  b->in = BIO_new(BIO_s_mem());
  b->out = BIO_new(BIO_s_mem());
  if (b->in == NULL || b->out == NULL) {
    BIO_free(b->in);
    BIO_free(b->out);
    SSL_free(ssl);
    return NULL;
  }
  SSL_set_bio(ssl, b->in, b->out);
  SSL_set_msg_callback(ssl, on_msg);
  SSL_set_msg_callback_arg(ssl, b);
  SSL_set_accept_state(ssl);
  return ssl;
}

/* The leaf is ready: present it and run the handshake on what arrived.
 * LEAF (may be NULL) is the caller's reference, released here. */
static enum phase_rc present(struct conn *c, X509 *leaf) {
  struct bump *b = c->priv;
  bool ok = leaf != NULL && SSL_use_certificate(b->ssl, leaf) == 1 &&
            SSL_use_PrivateKey(b->ssl, blockpage_key(c->srv->blockpage)) == 1;
  X509_free(leaf); /* the SSL holds its own reference */
  if (!ok) {
    ERR_clear_error();
    return give_up(c, "no certificate could be minted");
  }
  return drive(c);
}

/* Worker thread: sign the leaf (blockpage_mint only reads the context). */
static void on_mint_work(uv_work_t *req) {
  struct mint_job *job = req->data;
  job->leaf = blockpage_mint(job->bp, job->name, job->now);
}

/* Loop thread: cache the leaf, then resume the connection if it still
 * waits for it. */
static void on_minted(uv_work_t *req, int status) {
  struct mint_job *job = req->data;
  struct conn *c = job->c;
  X509 *leaf = job->leaf != NULL ? blockpage_insert(job->bp, job->name, job->now, job->leaf) : NULL;
  free(job);
  if (c == NULL) { /* the connection went away meanwhile */
    X509_free(leaf);
    return;
  }
  ((struct bump *)c->priv)->job = NULL;
  ((struct bump *)c->priv)->minted = leaf;
  conn_resume(c, 0);
}

static enum phase_rc bump_resume(struct conn *c, int status) {
  struct bump *b = c->priv;
  X509 *leaf = b->minted;
  b->minted = NULL;
  return present(c, leaf);
}

/* Mints NAME's leaf on this thread (no thread pool to do it); a reference
 * of the caller's, or NULL. */
static X509 *mint_here(struct blockpage *bp, const char *name, int64_t now) {
  X509 *leaf = blockpage_mint(bp, name, now);
  return leaf != NULL ? blockpage_insert(bp, name, now, leaf) : NULL;
}

/* Mints NAME's leaf on the thread pool (signing it would hold the loop up
 * for every other connection). 0, or a negative code with nothing queued. */
static int queue_mint(struct conn *c, const char *name, int64_t now) {
  struct bump *b = c->priv;
  size_t len = strlen(name);
  struct mint_job *job = calloc(1, sizeof(*job) + len + 1);
  int rc;
  if (job == NULL)
    return -ENOMEM;
  job->c = c;
  job->bp = c->srv->blockpage;
  job->now = now;
  memcpy(job->name, name, len + 1);
  job->req.data = job;
  if ((rc = uv_queue_work(c->srv->loop, &job->req, on_mint_work, on_minted)) != 0) {
    free(job);
    return rc;
  }
  b->job = job;
  return 0;
}

/* After a denied ClientHello: a TLS server fed with the hello, and a leaf
 * for the name judged deny (exchange_page_name; cached, or minted on the
 * thread pool). The usual refusal (RESPONDING, described by the deny) when
 * it cannot start. */
static enum phase_rc bump_enter(struct conn *c) {
  const char *name = exchange_page_name(c);
  /* Certificates are checked against the real clock, not the policy's. */
  int64_t now = (int64_t)time(NULL);
  const uint8_t *hello;
  struct bump *b;
  X509 *leaf;
  size_t len = 0;

  if (name == NULL)
    return conn_goto(c, CONN_ST_RESPONDING);
  if ((b = calloc(1, sizeof(*b))) == NULL)
    return conn_goto(c, CONN_ST_RESPONDING);
  if ((b->ssl = new_ssl(c, b)) == NULL) {
    free(b);
    ERR_clear_error();
    return conn_goto(c, CONN_ST_RESPONDING);
  }
  c->priv = b;
  b->alert = -1;
  /* The page names what the client asked for: the SNI, as its address bar does. */
  snprintf(b->dest, sizeof(b->dest), strchr(name, ':') ? "[%s]:%u" : "%s:%u", name,
           (unsigned)c->ex->dest.port);
  hello = hello_raw(c->ex->hello, &len);
  BIO_write(b->in, hello, (int)len);
  if ((leaf = blockpage_lookup(c->srv->blockpage, name, now)) != NULL)
    return present(c, leaf);
  if (queue_mint(c, name, now) == 0)
    return PHASE_MORE; /* input is kept in the BIO meanwhile */
  return present(c, mint_here(c->srv->blockpage, name, now)); /* no thread for it */
}

static enum phase_rc bump_data(struct conn *c, const char *data, size_t len, size_t *used) {
  struct bump *b = c->priv;
  *used = len;
  if (BIO_ctrl_pending(b->in) + len > BUMP_INPUT_MAX)
    return give_up(c, "client sent too much");
  BIO_write(b->in, data, (int)len);
  return drive(c);
}

static enum phase_rc bump_end(struct conn *c, int status) {
  return give_up(c, status == UV_EOF ? "client closed the connection" : err_str(status));
}

static enum phase_rc bump_timeout(struct conn *c) {
  return give_up(c, "timed out");
}

static uint64_t bump_deadline(const struct conn *c) {
  return c->since + c->srv->cfg->tls.timeout;
}

const struct phase bump_phase = {
    .enter = bump_enter,
    .client_data = bump_data,
    .client_end = bump_end,
    .resume = bump_resume,
    .timeout = bump_timeout,
    .leave = bump_leave,
    .deadline = bump_deadline,
};
