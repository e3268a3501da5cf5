/* BUMP, the block page over TLS: a tunnel Embargo has already decided to
 * deny (a CONNECT, or intercepted TLS, whose ClientHello was read) is
 * answered by a TLS server of its own, with a leaf minted for the requested
 * name by the local CA (certs/blockpage.h), instead of an access_denied
 * alert. OpenSSL runs on memory BIOs fed from the client's reads (the
 * ClientHello read replayed first); ALPN offers http/1.1 only. The costly
 * part, the handshake (its key exchange and signature) and a leaf not in
 * the cache, runs on the block page's background threads below the loops'
 * priority (proxy/base/offload.h), one step per flight of the client's, so that a burst of denied
 * names does not hold up the loop's other connections; a step is the phase's own state and comes
 * back through conn_resume. Reading the request and writing the page (a few records of symmetric
 * crypto) stay on the loop. The first request gets the same 403 deny page, with Proxy-Status, that
 * plain HTTP gets; then close_notify and LINGER. Nothing is ever dialled. If the TLS server cannot
 * even start, RESPONDING gives the usual refusal.
 *
 * One decision line per connection, written when the outcome is known:
 *   page served             error "http_request_denied", status 403;
 *   the client aborted the handshake after Embargo's certificate (unknown
 *   CA, a pinned agent)     error "client_rejected_certificate";
 *   handshake failed before the certificate   error "tls_handshake_failed";
 *   no request after the handshake            error "http_request_error". */
#include "proxy/conn/bump.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certs/blockpage.h"
#include "filters/err.h"
#include "filters/policy.h"
#include "proxy/base/offload.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/conn/hello.h"
#include "proxy/conn/message.h"
#include "proxy/worker/server.h"

#define BUMP_REQ_MAX   8192  /* request head bytes read before answering anyway */
#define BUMP_INPUT_MAX 65536 /* TLS bytes buffered unprocessed before giving up */

/* The TLS server of one connection: the session on memory BIOs, and what
 * its message callback saw. Whoever runs OpenSSL on it owns it: the phase,
 * or a step on a background thread while one runs (which frees it if the phase
 * has left by the time it ends). */
struct bump_tls {
  SSL *ssl;       /* owns both BIOs */
  BIO *in, *out;  /* client bytes to OpenSSL; OpenSSL's bytes to the client */
  bool cert_sent; /* our Certificate message went out */
  int alert;      /* the client's alert (level << 8 | description), or -1 */
};

/* One step on a background thread. The first makes the session (fed the
 * ClientHello read) and presents the leaf, cached or minted; every step
 * then runs the handshake as far as the client's bytes go. */
struct tls_step {
  struct offload_req req; /* first: a step is its request */
  struct conn *c;         /* valid until ABANDONED */
  atomic_bool abandoned;  /* the connection left BUMP: nothing is done, the session freed */
  struct blockpage *bp;   /* the process's: outlives every loop's last callback */
  struct bump_tls *tls;   /* the step's while it runs; made by the first */
  int64_t now;
  bool first;         /* make the session, present the leaf */
  bool no_session;    /* the first step could not make the session */
  bool no_leaf;       /* the leaf could not be minted or presented */
  int ret;            /* SSL_do_handshake's return */
  int err;            /* SSL_get_error of it */
  const char *reason; /* OpenSSL's reason for a failure (static), or NULL */
  size_t hello_len;   /* the first step's: the ClientHello, after NAME */
  char name[];        /* the first step's: the name the leaf is for */
};

/* The phase's own state (c->priv). */
struct bump {
  struct bump_tls *tls;  /* the step's while STEP is set */
  struct tls_step *step; /* the step running, or NULL */
  struct tls_step *done; /* the step that ended, until the phase resumes */
  bool handshaken;
  bool ended; /* the client's side ended while a step ran (END_STATUS) */
  int end_status;
  bool cert_sent; /* tls->cert_sent as last seen on the loop */
  int alert;      /* tls->alert, likewise */
  char *held;     /* client bytes that came while a step ran (owned) */
  size_t held_len;
  char dest[HOST_NAME_MAX_LEN + 10]; /* the name the certificate is for, with the port */
  size_t req_len;
  char req[BUMP_REQ_MAX + 1];
};

static void tls_free(struct bump_tls *t) {
  if (t == NULL)
    return;
  SSL_free(t->ssl);
  free(t);
}

static void bump_leave(struct conn *c) {
  struct bump *b = c->priv;
  if (b == NULL)
    return;
  if (b->step != NULL) { /* it ends on its own, and frees the session */
    atomic_store(&b->step->abandoned, true);
    b->tls = NULL;
  }
  if (b->done != NULL && b->done->tls != b->tls)
    tls_free(b->done->tls); /* a first step's session, not yet the phase's */
  tls_free(b->tls);
  free(b->done);
  free(b->held);
  free(b);
}

/* Records the client's alert and whether our certificate went out (on the
 * thread that runs the session). */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg) {
  struct bump_tls *t = arg;
  const unsigned char *p = buf;
  if (write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 && p[0] == SSL3_MT_CERTIFICATE)
    t->cert_sent = true;
  if (!write_p && content_type == SSL3_RT_ALERT && len >= 2)
    t->alert = p[0] << 8 | p[1];
}

/* The loop owns the session again: what its callback saw becomes the
 * phase's. */
static void seen(struct bump *b) {
  b->cert_sent = b->tls->cert_sent;
  b->alert = b->tls->alert;
}

/* Queues what OpenSSL wrote towards the client. 0, or a negative code. */
static int flush(struct conn *c) {
  struct bump *b = c->priv;
  char buf[16384];
  int n, rc;
  while ((n = BIO_read(b->tls->out, buf, sizeof(buf))) > 0)
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
  if (out.failed || SSL_write(b->tls->ssl, out.data, (int)out.len) != (int)out.len) {
    obuf_free(&out);
    return give_up(c, "cannot write the page");
  }
  obuf_free(&out);
  SSL_shutdown(b->tls->ssl);
  if (flush(c) != 0)
    return PHASE_CLOSE;
  snprintf(detail, sizeof(detail), "block page over TLS for \"%.*s\"",
           (int)(line < 200 ? line : 200), b->req);
  return finish(c, 403, "http_request_denied", detail);
}

static enum phase_rc read_request(struct conn *c) {
  struct bump *b = c->priv;
  SSL *ssl = b->tls->ssl;
  for (int i = 0; i < 64; i++) {
    size_t room = BUMP_REQ_MAX - b->req_len;
    int n = room > 0 ? SSL_read(ssl, b->req + b->req_len, (int)room) : 0;
    seen(b);
    if (room == 0 || (n > 0 && memmem(b->req, b->req_len + (size_t)n, "\r\n\r\n", 4) != NULL)) {
      b->req_len += n > 0 ? (size_t)n : 0;
      b->req[b->req_len] = '\0';
      return answer(c);
    }
    if (n <= 0) {
      int e = SSL_get_error(ssl, n);
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

/* A new session on BP's context; NULL on failure. */
static struct bump_tls *tls_new(struct blockpage *bp) {
  struct bump_tls *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->alert = -1;
  t->ssl = blockpage_ssl_new(bp);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
    BIO_free(t->in);
    BIO_free(t->out);
    SSL_free(t->ssl);
    free(t);
    return NULL;
  }
  SSL_set_bio(t->ssl, t->in, t->out);
  SSL_set_msg_callback(t->ssl, on_msg);
  SSL_set_msg_callback_arg(t->ssl, t);
  SSL_set_accept_state(t->ssl);
  return t;
}

/* ---- steps on the background threads ------------------------------------------ */

/* Presents LEAF (the caller's reference, released here) with the leaves'
 * key. Whether it could. */
static bool present(struct bump_tls *t, struct blockpage *bp, X509 *leaf) {
  bool ok = leaf != NULL && SSL_use_certificate(t->ssl, leaf) == 1 &&
            SSL_use_PrivateKey(t->ssl, blockpage_key(bp)) == 1;
  X509_free(leaf); /* the SSL holds its own reference */
  return ok;
}

/* Background thread (or the loop's, when no step could be queued): the leaf,
 * then the handshake. Touches only the step and its session (the leaf
 * cache under its lock); OpenSSL's error queue is this thread's, so the
 * reason for a failure is read here. */
static void on_step_work(struct offload_req *req) {
  struct tls_step *st = (struct tls_step *)req;
  X509 *leaf;
  if (atomic_load(&st->abandoned)) /* queued behind others, and nobody waits now */
    return;
  if (st->first) {
    if ((st->tls = tls_new(st->bp)) == NULL) {
      st->no_session = true;
      ERR_clear_error();
      return;
    }
    BIO_write(st->tls->in, st->name + strlen(st->name) + 1, (int)st->hello_len);
    if ((leaf = blockpage_lookup(st->bp, st->name, st->now)) == NULL &&
        (leaf = blockpage_mint(st->bp, st->name, st->now)) != NULL)
      leaf = blockpage_insert(st->bp, st->name, st->now, leaf);
    if (!present(st->tls, st->bp, leaf)) {
      st->no_leaf = true;
      ERR_clear_error();
      return;
    }
  }
  st->ret = SSL_do_handshake(st->tls->ssl);
  st->err = st->ret == 1 ? SSL_ERROR_NONE : SSL_get_error(st->tls->ssl, st->ret);
  if (st->ret != 1 && st->err != SSL_ERROR_WANT_READ) {
    unsigned long why = ERR_peek_error();
    st->reason = why != 0 ? ERR_reason_error_string(why) : NULL;
  }
  ERR_clear_error();
}

/* Loop thread: the session is the phase's again, or freed if the phase
 * has left. */
static void on_step_done(struct offload_req *req) {
  struct tls_step *st = (struct tls_step *)req;
  struct conn *c = st->c;
  struct bump *b;
  if (atomic_load(&st->abandoned)) {
    tls_free(st->tls);
    free(st);
    return;
  }
  b = c->priv;
  b->step = NULL;
  b->done = st;
  conn_resume(c, 0);
}

/* Starts a step on C's session; with NAME (the first step), one that
 * makes the session, fed HELLO (LEN bytes, copied), with a leaf for NAME
 * valid at NOW. 0, or a negative code with nothing started. */
static int start_step(struct conn *c, const char *name, const uint8_t *hello, size_t len,
                      int64_t now) {
  struct bump *b = c->priv;
  size_t nlen = name != NULL ? strlen(name) + 1 : 0;
  struct tls_step *st = calloc(1, sizeof(*st) + nlen + len);
  if (st == NULL)
    return -ENOMEM;
  st->c = c;
  st->bp = c->srv->blockpage;
  st->tls = b->tls;
  st->now = now;
  st->first = name != NULL;
  if (st->first) {
    memcpy(st->name, name, nlen);
    memcpy(st->name + nlen, hello, len);
    st->hello_len = len;
  }
  if (c->srv->offload == NULL ||
      offload_queue(c->srv->offload, &st->req, on_step_work, on_step_done) != 0) {
    on_step_work(&st->req); /* no thread for it: here, as the loop's own */
    b->done = st;
    return 0;
  }
  b->step = st;
  return 0;
}

/* Hands what the client sent while a step ran to the session. */
static void release_held(struct bump *b) {
  if (b->held_len > 0)
    BIO_write(b->tls->in, b->held, (int)b->held_len);
  free(b->held);
  b->held = NULL;
  b->held_len = 0;
}

/* How the client's side ended (client_end's STATUS), for give_up. */
static const char *end_reason(int status) {
  return status == UV_EOF ? "client closed the connection" : err_str(status);
}

/* The step that ended: its flight to the client, then the request once the
 * handshake is done, another step if more of the client's flight came
 * meanwhile, or the end (the client's, if it ended while the step ran:
 * what the step read, such as its alert, says more). */
static enum phase_rc after_step(struct conn *c) {
  struct bump *b = c->priv;
  struct tls_step *st = b->done;
  bool no_session = st->no_session, no_leaf = st->no_leaf;
  int ret = st->ret, err = st->err;
  const char *reason = st->reason;
  enum phase_rc rc;

  b->done = NULL;
  b->tls = st->tls; /* the session is the phase's again (or now, after the first) */
  free(st);
  if (no_session) /* the TLS server cannot even start: the usual refusal */
    return conn_goto(c, CONN_ST_RESPONDING);
  seen(b);
  if (no_leaf)
    return give_up(c, "no certificate could be minted");
  if (flush(c) != 0)
    return PHASE_CLOSE;
  release_held(b);
  if (ret == 1) {
    b->handshaken = true;
    rc = read_request(c);
    ERR_clear_error();
    return rc == PHASE_MORE && b->ended ? give_up(c, end_reason(b->end_status)) : rc;
  }
  if (err != SSL_ERROR_WANT_READ)
    return give_up(c, reason != NULL ? reason : "TLS handshake failed");
  if (BIO_ctrl_pending(b->tls->in) == 0) /* the client's next flight, or its end */
    return b->ended ? give_up(c, end_reason(b->end_status)) : PHASE_MORE;
  if (start_step(c, NULL, NULL, 0, 0) != 0)
    return give_up(c, "out of memory");
  return b->done != NULL ? after_step(c) : PHASE_MORE;
}

static enum phase_rc bump_resume(struct conn *c, int status) {
  struct bump *b = c->priv;
  return b->done != NULL ? after_step(c) : PHASE_WAIT;
}

/* ---- the phase ------------------------------------------------------------------- */

/* After a denied ClientHello: a TLS server fed with the hello, and a leaf
 * for the name judged deny (exchange_page_name; cached, or minted), both
 * made by the first step. The usual refusal (RESPONDING, described by the
 * deny) when it cannot start. */
static enum phase_rc bump_enter(struct conn *c) {
  const char *name = exchange_page_name(c);
  /* Certificates are checked against the real clock, not the policy's. */
  int64_t now = (int64_t)time(NULL);
  const uint8_t *hello;
  struct bump *b;
  size_t len = 0;

  if (name == NULL)
    return conn_goto(c, CONN_ST_RESPONDING);
  if ((b = calloc(1, sizeof(*b))) == NULL)
    return conn_goto(c, CONN_ST_RESPONDING);
  c->priv = b;
  b->alert = -1;
  /* The page names what the client asked for: the SNI, as its address bar does. */
  snprintf(b->dest, sizeof(b->dest), strchr(name, ':') ? "[%s]:%u" : "%s:%u", name,
           (unsigned)c->ex->dest.port);
  hello = hello_raw(c->ex->hello, &len);
  if (start_step(c, name, hello, len, now) != 0)
    return conn_goto(c, CONN_ST_RESPONDING);
  return b->done != NULL ? after_step(c) : PHASE_MORE;
}

static enum phase_rc bump_data(struct conn *c, const char *data, size_t len, size_t *used) {
  struct bump *b = c->priv;
  char *grown;
  *used = len;
  if (b->step != NULL) { /* the session is the step's: the bytes wait */
    if (b->held_len + len > BUMP_INPUT_MAX)
      return give_up(c, "client sent too much");
    if ((grown = realloc(b->held, b->held_len + len)) == NULL)
      return give_up(c, "out of memory");
    memcpy(grown + b->held_len, data, len);
    b->held = grown;
    b->held_len += len;
    return PHASE_MORE;
  }
  if (BIO_ctrl_pending(b->tls->in) + len > BUMP_INPUT_MAX)
    return give_up(c, "client sent too much");
  BIO_write(b->tls->in, data, (int)len);
  if (b->handshaken) {
    enum phase_rc rc = read_request(c);
    ERR_clear_error();
    return rc;
  }
  if (start_step(c, NULL, NULL, 0, 0) != 0)
    return give_up(c, "out of memory");
  return b->done != NULL ? after_step(c) : PHASE_MORE;
}

static enum phase_rc bump_end(struct conn *c, int status) {
  struct bump *b = c->priv;
  if (b->step != NULL) { /* what the client sent last is still being read */
    b->ended = true;
    b->end_status = status;
    return PHASE_WAIT;
  }
  return give_up(c, end_reason(status));
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
