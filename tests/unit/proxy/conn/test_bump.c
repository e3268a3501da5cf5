/* Unit tests for proxy/bump.c, BUMP, through the core with every phase
 * real and a TLS client of the test's own: a denied CONNECT to a TLS port
 * gets its 200, its ClientHello is read, and a TLS server with a leaf
 * minted for the name by the block-page CA answers the first request with
 * the deny page; a client that rejects the certificate is recorded as
 * such; the handshake runs on the block page's threads, the loop serving other
 * connections meanwhile. */
#include "conn_fixture.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certs/blockpage.h"
#include "certs/ca.h"
#include "proxy/base/offload.h"

TestSuite(bump, .fini = fx_finish);

static char ca_dir[64];
static SSL_CTX *ctx;
static SSL *ssl;
static uv_sem_t gate; /* holds the block page's threads while closed */
static bool gate_closed;
static struct offload_req holds[16];
static size_t held; /* threads held at the gate */

static void release(void);

static void done(void) {
  char path[128];
  if (gate_closed) /* a failed test must not leave the threads waiting */
    release();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  fx_finish();
  for (const char *const *f = (const char *const[]){"ca.key", "ca.crt", NULL}; *f != NULL; f++) {
    snprintf(path, sizeof(path), "%s/%s", ca_dir, *f);
    unlink(path);
  }
  rmdir(ca_dir);
}

/* The proxy with a block-page CA, and a denied CONNECT answered 200. */
static void bumping(bool trust_ca) {
  struct ca_init_opts opts = {.subject = "Test", .days = 2, .now = (int64_t)time(NULL)};
  char extra[256], path[128], err[256], got[128];
  snprintf(ca_dir, sizeof(ca_dir), "/tmp/embargo-ca-XXXXXX");
  cr_assert_not_null(mkdtemp(ca_dir));
  rmdir(ca_dir); /* ca_init makes it, 0700 */
  cr_assert_eq(ca_init(ca_dir, &opts, err, sizeof(err)), 0, "%s", err);
  snprintf(extra, sizeof(extra), "tls_inspect:\n  deny_with: page\ncerts:\n  ca_dir: %s\n", ca_dir);
  fx_real_table();
  fx_start("proxy", FX_AFTER, extra);
  fx_connect();
  fx_sends("CONNECT upd.acme.test:443 HTTP/1.1\r\n\r\n");
  fx_recv(got, sizeof(got), "\r\n\r\n");
  cr_assert_str_eq(got, "HTTP/1.1 200 Connection established\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_PEEK));
  cr_assert_not_null(ctx = SSL_CTX_new(TLS_client_method()));
  snprintf(path, sizeof(path), "%s/ca.crt", ca_dir);
  if (trust_ca)
    cr_assert_eq(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  cr_assert_not_null(ssl = SSL_new(ctx));
  SSL_set_tlsext_host_name(ssl, "upd.acme.test");
  SSL_set1_host(ssl, "upd.acme.test");
  fcntl(fx.client, F_SETFL, O_NONBLOCK);
  SSL_set_fd(ssl, fx.client);
}

/* Runs the client's handshake against the loop: 1, or <= 0 when it failed. */
static int handshake(void) {
  for (int i = 0; i < 1500; i++) {
    int rc = SSL_connect(ssl), e = SSL_get_error(ssl, rc);
    if (rc == 1 || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE))
      return rc;
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 2);
  }
  return 0;
}

Test(bump, a_denied_connect_gets_the_page_over_tls_with_a_leaf_for_its_name, .fini = done) {
  static const char req[] = "GET /update HTTP/1.1\r\nHost: upd.acme.test\r\n\r\n";
  char page[4096];
  size_t have = 0;

  bumping(true);
  cr_assert_eq(handshake(), 1, "the client accepts the minted leaf");
  cr_expect_eq(SSL_get_verify_result(ssl), X509_V_OK);
  cr_expect_eq(fx.c->state, CONN_ST_BUMP);
  cr_expect_eq(fx.entered[CONN_ST_CONNECTING], 0, "nothing is dialled");
  cr_assert_eq(SSL_write(ssl, req, sizeof(req) - 1), (int)sizeof(req) - 1);
  for (int i = 0; i < 1500 && have + 1 < sizeof(page); i++) {
    int n = SSL_read(ssl, page + have, (int)(sizeof(page) - 1 - have));
    if (n > 0) {
      have += (size_t)n;
      continue;
    }
    if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
      break; /* close_notify, then FIN */
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 2);
  }
  page[have] = '\0';
  cr_expect(strncmp(page, "HTTP/1.1 403 Forbidden\r\n", 24) == 0, "%s", page);
  cr_expect_not_null(strstr(page, "Destination: upd.acme.test:443\n"), "%s", page);
  cr_expect_not_null(strstr(page, "Rule:        upd.acme.test at "), "%s", page);
  cr_expect(fx_reach(CONN_ST_LINGER));
  cr_expect_not_null(
      strstr(fx_decisions(), "block page over TLS for \\\"GET /update HTTP/1.1\\\""));
}

Test(bump, a_client_rejecting_the_certificate_is_recorded, .fini = done) {
  bumping(false);
  cr_assert_neq(handshake(), 1, "the client does not know the CA");
  SSL_free(ssl); /* its alert went out */
  ssl = NULL;
  close(fx.client);
  fx.client = -1;
  cr_assert(fx_reach(CONN_ST_CLOSED));
  cr_expect_not_null(strstr(fx_decisions(), "\"error\":\"client_rejected_certificate\""));
}

static void hold_thread(struct offload_req *req) {
  uv_sem_wait(&gate);
}

static void held_thread_done(struct offload_req *req) {}

/* Every one of the block page's threads waits at the gate (the queue is
 * first come, first served: each takes one hold). */
static void hold(void) {
  held = offload_threads(fx.sh.offload);
  cr_assert(held > 0 && held <= sizeof(holds) / sizeof(holds[0]));
  cr_assert_eq(uv_sem_init(&gate, 0), 0);
  gate_closed = true;
  for (size_t i = 0; i < held; i++)
    cr_assert_eq(offload_queue(fx.srv.offload, &holds[i], hold_thread, held_thread_done), 0);
}

static void release(void) {
  gate_closed = false;
  for (size_t i = 0; i < held; i++)
    uv_sem_post(&gate);
}

/* What the client socket FD has to read now, without waiting. */
static ssize_t pending_bytes(int fd) {
  char buf[4096];
  return recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_PEEK);
}

/* A denied CONNECT's block page used to be served by a handshake run on
 * the loop whenever the leaf was cached: every other connection of the
 * worker waited for its key exchange and signature. The handshake runs on
 * the block page's threads: with every one of them held, the ClientHello
 * is read, the step waits, and the loop answers another connection (the
 * barrier) before any byte of the TLS server's; released, the handshake
 * completes. */
Test(bump, the_handshake_waits_for_a_thread_while_the_loop_serves_others, .fini = done) {
  static const char other[] = "GET http://upd.acme.test/x HTTP/1.1\r\nHost: upd.acme.test\r\n\r\n";
  const struct sockaddr *lst;
  char got[4096];
  int barrier;

  bumping(true);
  cr_assert_eq(handshake(), 1, "the first connection mints the leaf and caches it");
  SSL_free(ssl);
  ssl = NULL;
  close(fx.client);
  fx.client = -1;
  cr_assert(fx_reach(CONN_ST_CLOSED));

  hold();
  fx_connect();
  fx_sends("CONNECT upd.acme.test:443 HTTP/1.1\r\n\r\n");
  fx_recv(got, sizeof(got), "\r\n\r\n");
  cr_assert_str_eq(got, "HTTP/1.1 200 Connection established\r\n\r\n");
  cr_assert(fx_reach(CONN_ST_PEEK));
  cr_assert_not_null(ssl = SSL_new(ctx));
  SSL_set_tlsext_host_name(ssl, "upd.acme.test");
  SSL_set1_host(ssl, "upd.acme.test");
  fcntl(fx.client, F_SETFL, O_NONBLOCK);
  SSL_set_fd(ssl, fx.client);
  cr_assert_neq(SSL_connect(ssl), 1, "the ClientHello goes out");
  cr_assert(fx_reach(CONN_ST_BUMP), "the hello was read and judged");

  /* The barrier: another client's request, answered by the same loop. */
  lst = (const struct sockaddr *)&fx.srv.listeners[0].addr;
  barrier = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(barrier, 0);
  cr_assert_eq(connect(barrier, lst, sizeof(struct sockaddr_in)), 0);
  cr_assert_eq(send(barrier, other, sizeof(other) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(other) - 1);
  for (int i = 0; i < 1500 && pending_bytes(barrier) <= 0; i++) {
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 2);
  }
  cr_assert_gt(recv(barrier, got, sizeof(got) - 1, MSG_DONTWAIT), 0, "the loop answered");
  cr_expect(strncmp(got, "HTTP/1.1 403", 12) == 0, "%.40s", got);
  close(barrier);
  cr_expect_lt(pending_bytes(fx.client), 0, "no TLS byte before a thread ran the handshake");
  cr_expect_eq(errno, EAGAIN);
  cr_expect_eq(fx.c->state, CONN_ST_BUMP);

  release();
  cr_expect_eq(handshake(), 1, "released, the handshake completes");
  cr_expect_eq(SSL_get_verify_result(ssl), X509_V_OK);
}

static bool client_ended(void) {
  return fx.c != NULL && fx.c->cli.eof;
}

/* A client that rejects the certificate sends its alert and closes at
 * once. The alert is read by a step on a background thread; the close must not
 * be taken for the outcome before that step has read the alert (it used to
 * be: "client closed the connection after the minted certificate", with
 * the alert lost). The block page's threads are held while both arrive. */
Test(bump, an_alert_read_while_the_client_closes_names_the_alert, .fini = done) {
  bumping(false);
  cr_assert_neq(handshake(), 1, "the client does not know the CA: its alert goes out");
  hold();
  SSL_free(ssl);
  ssl = NULL;
  close(fx.client);
  fx.client = -1;
  cr_assert(fx_run_until(client_ended), "the alert and the close were read");
  cr_expect_eq(fx.c->state, CONN_ST_BUMP, "the outcome waits for the step reading the alert");
  release();
  cr_assert(fx_reach(CONN_ST_CLOSED));
  cr_expect_not_null(strstr(fx_decisions(), "\"error\":\"client_rejected_certificate\""));
  cr_expect_not_null(strstr(fx_decisions(), "client sent alert unknown CA after the minted"), "%s",
                     fx_decisions());
}

/* A step whose connection has gone (here the worker stops while every
 * thread is busy) is not run when a thread reaches it: nothing is minted
 * for a client nobody will answer, and what is queued behind it moves on
 * (it used to make the session, mint the leaf and run the handshake all
 * the same, delaying live connections and the worker's exit). */
static void count_open_poll(uv_handle_t *h, void *arg) {
  if (h->type == UV_POLL && !uv_is_closing(h))
    (*(int *)arg)++;
}

/* Once the worker has stopped, its only poll handle is the port to the
 * block page's threads, closed when its last step has come back. */
static bool port_closed(void) {
  int open = 0;
  uv_walk(&fx.loop, count_open_poll, &open);
  return open == 0;
}

Test(bump, a_step_whose_connection_left_is_not_run, .fini = done) {
  struct blockpage_stats st;
  bumping(true);
  hold();
  cr_assert_neq(SSL_connect(ssl), 1, "the ClientHello goes out");
  cr_assert(fx_reach(CONN_ST_BUMP), "the hello was read and judged: its step waits");
  server_stop(&fx.srv);
  cr_assert(!port_closed(), "the step is still out");
  release();
  cr_assert(fx_run_until(port_closed), "the step came back");
  blockpage_stats(fx.sh.blockpage, &st);
  cr_expect_eq(st.minted, 0, "no leaf made for the connection that left");
}
