/* The block page over TLS ("bump"): a CONNECT tunnel Embargo has already
 * decided to deny is answered by a TLS server of its own, with a leaf minted
 * for the requested name by the local CA, instead of an access_denied alert.
 * OpenSSL runs on memory BIOs fed from the client endpoint's reads (the
 * peeked ClientHello replayed first); ALPN offers http/1.1 only. A leaf not
 * in the cache is signed on libuv's thread pool, so that minting for many
 * new names does not hold up other connections. The first
 * request gets the same 403 deny page, with Proxy-Status, that plain HTTP
 * gets; then close_notify and close. Nothing is ever dialled.
 *
 * One decision line per connection, written when the outcome is known:
 *   page served             error "http_request_denied", status 403;
 *   the client aborted the handshake after Embargo's certificate (unknown
 *   CA, a pinned agent)     error "client_rejected_certificate";
 *   handshake failed before the certificate   error "tls_handshake_failed";
 *   no request after the handshake            error "http_request_error". */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certs/mint.h"
#include "filters/err.h"
#include "filters/policy.h"
#include "proxy/bump.h"
#include "proxy/conn-int.h"
#include "proxy/log.h"
#include "proxy/server.h"

#define BUMP_REQ_MAX   8192  /* request head bytes read before answering anyway */
#define BUMP_INPUT_MAX 65536 /* TLS bytes buffered unprocessed before giving up */

/* Shared by every worker: the minter's cache is used under MU (minting
 * itself, on the thread pool, only reads the minter). */
struct bump_ctx {
  SSL_CTX *ssl;
  struct minter *minter;
  uv_mutex_t mu;
  bool mu_ready;
};

/* A leaf being minted on the thread pool. */
struct mint_job {
  uv_work_t req;
  struct conn *c;        /* NULL once the connection is gone */
  struct bump_ctx *bx;   /* the process's: outlives every loop's last callback */
  int64_t now;
  X509 *leaf; /* made by the worker; handed to the cache */
  char name[];
};

struct bump {
  SSL *ssl;             /* owns both BIOs */
  struct mint_job *job; /* the pending mint, or NULL */
  BIO *in, *out;        /* client bytes to OpenSSL; OpenSSL's bytes to the client */
  bool cert_sent;       /* our Certificate message went out */
  bool handshaken;
  int alert;                         /* the client's alert (level << 8 | description), or -1 */
  char dest[HOST_NAME_MAX_LEN + 10]; /* the name the certificate is for, with the port */
  size_t req_len;
  char req[BUMP_REQ_MAX + 1];
};

/* ---- the server context -------------------------------------------------- */

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  static const unsigned char http11[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, http11, sizeof(http11) - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no http/1.1 offered: go on without ALPN */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

int bump_ctx_new(const struct config *cfg, struct bump_ctx **out, char *err, size_t errsize) {
  struct bump_ctx *bx;
  *out = NULL;
  if (cfg->certs.ca == NULL)
    return 0;
  if ((bx = calloc(1, sizeof(*bx))) == NULL)
    return -ENOMEM;
  bx->mu_ready = uv_mutex_init(&bx->mu) == 0;
  bx->ssl = SSL_CTX_new(TLS_server_method());
  bx->minter = minter_new(cfg->certs.ca, cfg->certs.cache_entries);
  if (bx->ssl == NULL || bx->minter == NULL || !bx->mu_ready) {
    snprintf(err, errsize, "cannot set up the block page over TLS (OpenSSL)");
    bump_ctx_free(bx);
    ERR_clear_error();
    return EMB_ECERT;
  }
  SSL_CTX_set_min_proto_version(bx->ssl, TLS1_2_VERSION);
  /* Every connection is answered once and closed: nothing to resume. */
  SSL_CTX_set_options(bx->ssl, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(bx->ssl, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(bx->ssl, 0);
  SSL_CTX_set_mode(bx->ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(bx->ssl, on_alpn, NULL);
  *out = bx;
  return 0;
}

void bump_ctx_free(struct bump_ctx *bx) {
  if (bx == NULL)
    return;
  SSL_CTX_free(bx->ssl);
  minter_free(bx->minter);
  if (bx->mu_ready)
    uv_mutex_destroy(&bx->mu);
  free(bx);
}

void bump_ctx_log_stats(struct bump_ctx *bx, size_t bound) {
  struct minter_stats ms;
  uv_mutex_lock(&bx->mu);
  minter_stats(bx->minter, &ms);
  uv_mutex_unlock(&bx->mu);
  log_diag(LOG_INFO, 0,
           "block-page certificates: %" PRIu64 " minted, %" PRIu64 " from the cache, %" PRIu64
           " evicted, %zu cached (bound %zu)",
           ms.minted, ms.hits, ms.evicted, ms.entries, bound);
}

/* ---- one connection ------------------------------------------------------ */

/* Whether the page is in effect for c->ex->verdict (a deny). */
static bool page_wanted(const struct conn *c) {
  const struct rule *r = c->ex->verdict.rule;
  enum deny_with w = c->srv->cfg->tls.deny_with;
  if (c->srv->bump == NULL || c->ex->verdict.action != ACTION_DENY)
    return false;
  if (r != NULL && r->category->deny_with != DENY_WITH_DEFAULT)
    w = r->category->deny_with;
  return w == DENY_WITH_PAGE;
}

void bump_free(struct conn *c) {
  if (c->ex->bump == NULL)
    return;
  if (c->ex->bump->job != NULL) /* it finishes on its own, for the cache */
    c->ex->bump->job->c = NULL;
  SSL_free(c->ex->bump->ssl);
  free(c->ex->bump);
  c->ex->bump = NULL;
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

/* Queues what OpenSSL wrote towards the client. 0, or -1 after closing C. */
static int flush(struct conn *c) {
  char buf[16384];
  int n;
  while ((n = BIO_read(c->ex->bump->out, buf, sizeof(buf))) > 0)
    if (conn_write_client(c, buf, (size_t)n) != 0)
      return -1;
  return 0;
}

/* The one decision line, then FIN (or close when the client is gone). */
static void finish(struct conn *c, int status, const char *error, const char *detail) {
  respond_log(c, "deny", status, error, detail);
  if (c->cli.eof)
    conn_close(c);
  else
    conn_linger(c);
}

/* The handshake or the request did not happen; WHAT says how it ended. */
static void give_up(struct conn *c, const char *what) {
  struct bump *b = c->ex->bump;
  char detail[200];
  if (b->handshaken) {
    snprintf(detail, sizeof(detail), "no request after the TLS handshake (%s)", what);
    finish(c, 0, "http_request_error", detail);
  } else if (b->cert_sent && b->alert >= 0) {
    snprintf(detail, sizeof(detail), "client sent alert %s after the minted certificate",
             SSL_alert_desc_string_long(b->alert));
    finish(c, 0, "client_rejected_certificate", detail);
  } else if (b->cert_sent) {
    snprintf(detail, sizeof(detail), "%s after the minted certificate", what);
    finish(c, 0, "client_rejected_certificate", detail);
  } else {
    finish(c, 0, "tls_handshake_failed", what);
  }
}

/* The request head is in (or too long to wait for): the page, close_notify, FIN. */
static void answer(struct conn *c) {
  struct bump *b = c->ex->bump;
  struct obuf out = {0};
  char detail[300];
  size_t line = strcspn(b->req, "\r\n");

  uv_timer_stop(&c->timer);
  respond_deny_message(c, NULL, b->dest, &out);
  if (!out.failed && strncmp(b->req, "HEAD ", 5) == 0) /* the head alone (RFC 9110 9.3.2) */
    out.len = (size_t)((const char *)memmem(out.data, out.len, "\r\n\r\n", 4) + 4 - out.data);
  if (out.failed || SSL_write(b->ssl, out.data, (int)out.len) != (int)out.len) {
    obuf_free(&out);
    give_up(c, "cannot write the page");
    return;
  }
  obuf_free(&out);
  SSL_shutdown(b->ssl);
  if (flush(c) != 0)
    return;
  snprintf(detail, sizeof(detail), "block page over TLS for \"%.*s\"",
           (int)(line < 200 ? line : 200), b->req);
  finish(c, 403, "http_request_denied", detail);
}

static void read_request(struct conn *c) {
  struct bump *b = c->ex->bump;
  for (int i = 0; i < 64; i++) {
    size_t room = BUMP_REQ_MAX - b->req_len;
    int n = room > 0 ? SSL_read(b->ssl, b->req + b->req_len, (int)room) : 0;
    if (room == 0 || (n > 0 && memmem(b->req, b->req_len + (size_t)n, "\r\n\r\n", 4) != NULL)) {
      b->req_len += n > 0 ? (size_t)n : 0;
      b->req[b->req_len] = '\0';
      answer(c);
      return;
    }
    if (n <= 0) {
      int e = SSL_get_error(b->ssl, n);
      if (flush(c) != 0)
        return;
      if (e != SSL_ERROR_WANT_READ)
        give_up(c, e == SSL_ERROR_ZERO_RETURN ? "client sent close_notify" : "TLS error");
      return;
    }
    b->req_len += (size_t)n;
    b->req[b->req_len] = '\0';
  }
}

/* Runs OpenSSL on what has arrived (once there is a certificate). */
static void drive(struct conn *c) {
  struct bump *b = c->ex->bump;
  if (b->job != NULL)
    return;
  if (!b->handshaken) {
    int rc = SSL_do_handshake(b->ssl);
    if (flush(c) != 0)
      return;
    if (rc != 1) {
      int e = SSL_get_error(b->ssl, rc);
      if (e != SSL_ERROR_WANT_READ) {
        unsigned long why = ERR_peek_error();
        give_up(c, why ? ERR_reason_error_string(why) : "TLS handshake failed");
      }
      ERR_clear_error();
      return;
    }
    b->handshaken = true;
  }
  read_request(c);
  ERR_clear_error();
}

/* A new SSL for C, its BIOs in B; NULL on failure. */
static SSL *new_ssl(struct conn *c, struct bump *b) {
  SSL *ssl = SSL_new(c->srv->bump->ssl);
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

/* The minter's cache, shared by the workers, is used under the lock; a
 * leaf leaves it with a reference of its own (the caller frees it), since
 * another worker may evict it meanwhile. */
static X509 *cache_lookup(struct bump_ctx *bx, const char *name, int64_t now) {
  X509 *leaf = NULL;
  uv_mutex_lock(&bx->mu);
  if (minter_lookup(bx->minter, name, now, &leaf))
    X509_up_ref(leaf);
  else
    leaf = NULL;
  uv_mutex_unlock(&bx->mu);
  return leaf;
}

/* Caches LEAF (taken) and returns the leaf to use, with its own reference,
 * or NULL. */
static X509 *cache_insert(struct bump_ctx *bx, const char *name, int64_t now, X509 *leaf) {
  uv_mutex_lock(&bx->mu);
  if ((leaf = minter_insert(bx->minter, name, now, leaf)) != NULL)
    X509_up_ref(leaf);
  uv_mutex_unlock(&bx->mu);
  return leaf;
}

/* The leaf is ready: present it and run the handshake on what arrived.
 * LEAF (may be NULL) is the caller's reference, released here. */
static void present(struct conn *c, X509 *leaf) {
  struct bump *b = c->ex->bump;
  bool ok = leaf != NULL && SSL_use_certificate(b->ssl, leaf) == 1 &&
            SSL_use_PrivateKey(b->ssl, minter_key(c->srv->bump->minter)) == 1;
  X509_free(leaf); /* the SSL holds its own reference */
  if (!ok) {
    ERR_clear_error();
    give_up(c, "no certificate could be minted");
    return;
  }
  drive(c);
}

/* Worker thread: sign the leaf (minter_make only reads the minter). */
static void on_mint_work(uv_work_t *req) {
  struct mint_job *job = req->data;
  job->leaf = minter_make(job->bx->minter, job->name, job->now);
}

/* Loop thread: cache the leaf, then present it if the connection still waits. */
static void on_minted(uv_work_t *req, int status) {
  struct mint_job *job = req->data;
  struct conn *c = job->c;
  X509 *leaf = job->leaf != NULL ? cache_insert(job->bx, job->name, job->now, job->leaf) : NULL;
  free(job);
  if (c == NULL) { /* the connection went away meanwhile */
    X509_free(leaf);
    return;
  }
  c->ex->bump->job = NULL;
  if (c->state == CONN_ST_BUMP)
    present(c, leaf);
  else
    X509_free(leaf);
}

/* Mints NAME's leaf on this thread (no thread pool to do it); a reference
 * of the caller's, or NULL. */
static X509 *mint_here(struct bump_ctx *bx, const char *name, int64_t now) {
  X509 *leaf = minter_make(bx->minter, name, now);
  return leaf != NULL ? cache_insert(bx, name, now, leaf) : NULL;
}

/* Mints NAME's leaf on the thread pool (signing it would hold the loop up
 * for every other connection). 0, or a libuv code with nothing queued. */
static int queue_mint(struct conn *c, const char *name, int64_t now) {
  size_t len = strlen(name);
  struct mint_job *job = calloc(1, sizeof(*job) + len + 1);
  int rc;
  if (job == NULL)
    return UV_ENOMEM;
  job->c = c;
  job->bx = c->srv->bump;
  job->now = now;
  memcpy(job->name, name, len + 1);
  job->req.data = job;
  if ((rc = uv_queue_work(c->srv->loop, &job->req, on_mint_work, on_minted)) != 0) {
    free(job);
    return rc;
  }
  c->ex->bump->job = job;
  return 0;
}

/* After a denied ClientHello: a TLS server fed with the hello, and a leaf
 * for NAME (peek_denied_name; cached, or minted on the thread pool).
 * Returns 0, or a negative code with nothing changed. */
static int bump_start(struct conn *c, const char *name) {
  /* Certificates are checked against the real clock, not the policy's. */
  int64_t now = (int64_t)time(NULL);
  const uint8_t *hello;
  struct bump *b;
  X509 *leaf = NULL;
  size_t len = 0;

  if ((b = calloc(1, sizeof(*b))) == NULL)
    return -ENOMEM;
  if ((b->ssl = new_ssl(c, b)) == NULL) {
    free(b);
    ERR_clear_error();
    return EMB_ECERT;
  }
  b->alert = -1;
  /* The page names what the client asked for: the SNI, as its address bar does. */
  snprintf(b->dest, sizeof(b->dest), strchr(name, ':') ? "[%s]:%u" : "%s:%u", name,
           (unsigned)c->ex->dest.port);
  c->ex->bump = b;
  hello = peek_hello(c, &len);
  BIO_write(b->in, hello, (int)len);
  if (c->ex->spill_len > 0) { /* the client did not wait for our answer */
    BIO_write(b->in, c->ex->spill + c->ex->spill_off, (int)c->ex->spill_len);
    c->ex->spill_len = 0;
  }
  conn_set_state(c, CONN_ST_BUMP);
  conn_arm_timer(c, c->srv->cfg->tls.timeout);
  if ((leaf = cache_lookup(c->srv->bump, name, now)) != NULL)
    present(c, leaf);
  else if (queue_mint(c, name, now) != 0) /* no thread for it: mint here */
    present(c, mint_here(c->srv->bump, name, now));
  if (c->state == CONN_ST_BUMP)
    conn_update_reading(c);
  return 0;
}

void bump_data(struct conn *c, ssize_t nread, const char *data) {
  struct bump *b = c->ex->bump;
  if (nread < 0) {
    c->cli.eof = true;
    give_up(c, nread == UV_EOF ? "client closed the connection" : uv_strerror((int)nread));
    return;
  }
  if (BIO_ctrl_pending(b->in) + (size_t)nread > BUMP_INPUT_MAX) {
    give_up(c, "client sent too much");
    return;
  }
  BIO_write(b->in, data, (int)nread);
  drive(c);
}

void bump_timeout(struct conn *c) {
  give_up(c, "timed out");
}

/* A CONNECT denied before its tunnel opened: 200, then read the hello (the
 * verdict comes again with it, and bump_deny with it). */
static bool accept_tunnel(struct conn *c) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  if (!peek_wanted(c))
    return false;
  c->established = true;
  if (conn_write_client(c, established, sizeof(established) - 1) == 0)
    peek_start(c);
  return true;
}

bool bump_deny(struct conn *c) {
  const char *name;
  /* Only before anything was dialled: a tunnel already relaying the
   * destination's TLS (a second ClientHello) cannot change servers. */
  if (!page_wanted(c) || c->up != NULL ||
      (c->state != CONN_ST_HEAD && c->state != CONN_ST_RESOLVING && c->state != CONN_ST_PEEK))
    return false;
  if (c->ex->peek == NULL)
    return !conn_transparent(c) && c->ex->head != NULL && c->ex->head->is_connect && !c->established &&
           accept_tunnel(c);
  /* A leaf only for a name judged deny itself: the CA never signs for a
   * name Embargo would let through. */
  name = peek_hello_ok(c) ? peek_denied_name(c) : NULL;
  return name != NULL && bump_start(c, name) == 0;
}
