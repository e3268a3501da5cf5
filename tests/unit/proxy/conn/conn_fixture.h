/* The connection suites' fixture: one worker (a real struct server, its
 * listener on 127.0.0.1, its resolver) on a real loop, built from a config
 * text; a client connected to it over loopback; a DNS server on the same
 * loop answering A queries from a small table; a decision log in a
 * temporary file; and the phase table the connection runs with: the real
 * phases, any of which a test may replace with a stop (which records that
 * it was entered and holds the connection there). A phase is driven either
 * through the core (bytes written by the client, the loop run) or by
 * calling its handlers on the accepted connection. */
#ifndef EMBARGO_TESTS_UNIT_CONN_FIXTURE_H
#define EMBARGO_TESTS_UNIT_CONN_FIXTURE_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "filters/err.h"
#include "proxy/base/log.h"
#include "proxy/conn/bump.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/dial.h"
#include "proxy/conn/forward.h"
#include "proxy/conn/front.h"
#include "proxy/conn/parent.h"
#include "proxy/conn/peek.h"
#include "proxy/conn/proxyhdr.h"
#include "proxy/conn/respond.h"
#include "proxy/conn/route.h"
#include "proxy/conn/transparent.h"
#include "proxy/conn/tunnel.h"
#include "proxy/worker/server.h"
#include "proxy/worker/upstream.h"

/* 2024-09-29T00:00:00Z: the test vendor's updates are denied from then. */
#define FX_CUTOFF INT64_C(1727568000)
#define FX_AFTER  (FX_CUTOFF + 86400)
#define FX_BEFORE (FX_CUTOFF - 86400)

/* The test vendor: upd.acme.test and its CDN denied after the cutoff,
 * logged before; anything else allowed. */
#define FX_VENDOR                                                                                  \
  "vendor: acme\n"                                                                                 \
  "name: Acme\n"                                                                                   \
  "reference: \"Test determination\"\n"                                                            \
  "categories:\n"                                                                                  \
  "  updates:\n"                                                                                   \
  "    cutoff: 2024-09-29T00:00:00Z\n"                                                             \
  "    before: log\n"                                                                              \
  "    after: deny\n"                                                                              \
  "    hosts:\n"                                                                                   \
  "      - upd.acme.test\n"                                                                        \
  "      - cdn.acme.test\n"

/* Names the test DNS server knows; every other name is NXDOMAIN. */
static const struct {
  const char *name, *ip;
} fx_names[] = {
    {"upd.acme.test", "127.0.0.2"},
    {"plain.test", "127.0.0.2"},
    {"inside.test", "169.254.169.254"}, /* an internal address: refused */
    {"silent.test", NULL},              /* never answered */
};

struct fx {
  uv_loop_t loop;
  struct config cfg;
  struct server_shared sh;
  struct server srv;
  const struct phase *table[CONN_ST_COUNT_];
  uv_udp_t dns;
  uint16_t dns_port;
  int client;                  /* the test's end of the connection */
  struct conn *c;              /* the connection accepted */
  int entered[CONN_ST_COUNT_]; /* stops entered, by state */
  int dns_queries;             /* queries the test DNS server got */
  char dir[64];
  char log[128];
  bool started;
};

static struct fx fx;

/* ---- stops --------------------------------------------------------------- */

static inline enum phase_rc fx_stop_enter(struct conn *c) {
  fx.entered[c->state]++;
  return PHASE_WAIT;
}

static inline enum phase_rc fx_stop_data(struct conn *c, const char *data, size_t len,
                                         size_t *used) {
  *used = 0;
  return PHASE_WAIT;
}

static inline enum phase_rc fx_stop_wait(struct conn *c) {
  return PHASE_WAIT;
}

/* Holds a connection in its state: nothing is read, nothing times out. */
static const struct phase fx_stop = {
    .enter = fx_stop_enter,
    .client_data = fx_stop_data,
    .timeout = fx_stop_wait,
};

static const struct phase fx_closed = {0};

/* The real phase of every state (the dispatcher's table). */
static inline void fx_real_table(void) {
  fx.table[CONN_ST_HEAD] = &front_phase;
  fx.table[CONN_ST_SNIFF] = &sniff_phase;
  fx.table[CONN_ST_PROXYHDR] = &proxyhdr_phase;
  fx.table[CONN_ST_ROUTE] = &route_phase;
  fx.table[CONN_ST_CONNECTING] = &dial_phase;
  fx.table[CONN_ST_PARENT] = &parent_phase;
  fx.table[CONN_ST_FORWARD] = &forward_phase;
  fx.table[CONN_ST_PEEK] = &peek_phase;
  fx.table[CONN_ST_BUMP] = &bump_phase;
  fx.table[CONN_ST_TUNNEL] = &tunnel_phase;
  fx.table[CONN_ST_RESPONDING] = &respond_phase;
  fx.table[CONN_ST_LINGER] = &conn_linger_phase;
  fx.table[CONN_ST_CLOSED] = &fx_closed;
}

/* Every state a stop: a test then calls the handlers of the phase it
 * drives itself. */
static inline void fx_stop_table(void) {
  for (int i = 0; i < CONN_ST_COUNT_; i++)
    fx.table[i] = &fx_stop;
  fx.table[CONN_ST_CLOSED] = &fx_closed;
}

/* ---- the test DNS server --------------------------------------------------- */

static inline void fx_dns_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  static char mem[1500];
  *buf = uv_buf_init(mem, sizeof(mem));
}

/* The dotted name of the question at Q (lower case) into OUT; the offset
 * past the name, or 0 if malformed. */
static inline size_t fx_dns_qname(const unsigned char *q, size_t n, char *out, size_t size) {
  size_t i = 12, o = 0;
  while (i < n && q[i] != 0) {
    size_t len = q[i++];
    if (i + len > n || o + len + 2 > size)
      return 0;
    if (o > 0)
      out[o++] = '.';
    for (size_t k = 0; k < len; k++)
      out[o++] = (char)(q[i + k] | 0x20);
    i += len;
  }
  out[o] = '\0';
  return i < n ? i + 1 : 0;
}

static inline void fx_dns_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
                               const struct sockaddr *from, unsigned flags) {
  const unsigned char *q = (const unsigned char *)buf->base;
  unsigned char r[600];
  char name[256];
  const char *ip = NULL;
  bool known = false;
  size_t end, len;
  uint16_t type;

  if (n < 17 || from == NULL || (end = fx_dns_qname(q, (size_t)n, name, sizeof(name))) == 0 ||
      end + 4 > (size_t)n || end + 4 + 16 > sizeof(r))
    return;
  type = (uint16_t)(q[end] << 8 | q[end + 1]);
  fx.dns_queries++;
  for (size_t i = 0; i < sizeof(fx_names) / sizeof(fx_names[0]); i++)
    if (strcmp(name, fx_names[i].name) == 0) {
      ip = fx_names[i].ip;
      known = true;
    }
  if (known && ip == NULL)
    return;
  memcpy(r, q, end + 4);
  r[2] = 0x81;
  r[3] = ip != NULL ? 0x80 : 0x83; /* NOERROR or NXDOMAIN */
  r[6] = r[8] = r[9] = r[10] = r[11] = 0;
  r[7] = ip != NULL && type == 1; /* one A record; AAAA: no data */
  len = end + 4;
  if (r[7]) {
    static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
    memcpy(r + len, rr, sizeof(rr));
    len += sizeof(rr);
    inet_pton(AF_INET, ip, r + len);
    len += 4;
  }
  uv_buf_t out = uv_buf_init((char *)r, (unsigned)len);
  uv_udp_try_send(h, &out, 1, from);
}

static inline void fx_dns_start(void) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int len = sizeof(sin);
  cr_assert_eq(uv_udp_init(&fx.loop, &fx.dns), 0);
  cr_assert_eq(uv_udp_bind(&fx.dns, (const struct sockaddr *)&sin, 0), 0);
  cr_assert_eq(uv_udp_getsockname(&fx.dns, (struct sockaddr *)&sin, &len), 0);
  fx.dns_port = ntohs(sin.sin_port);
  cr_assert_eq(uv_udp_recv_start(&fx.dns, fx_dns_alloc, fx_dns_recv), 0);
}

/* ---- the worker -------------------------------------------------------------- */

static inline void fx_accept(struct listener *lst) {
  conn_accept(lst, fx.table);
}

static const struct server_clients fx_clients = {
    .accept = fx_accept,
    .close = conn_close_all,
    .count = conn_count,
    .oldest = conn_oldest,
};

static inline void fx_put(const char *name, const char *text) {
  char path[160];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
  cr_assert_not_null(f = fopen(path, "w"));
  fputs(text, f);
  fclose(f);
}

/* Runs the loop without blocking until DONE() or 3 s. */
static inline bool fx_run_until(bool (*done)(void)) {
  struct timespec ts = {0, 2000000};
  for (int i = 0; i < 1500; i++) {
    if (done != NULL && done())
      return true;
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    nanosleep(&ts, NULL);
  }
  return done != NULL && done();
}

/* Runs the loop without blocking for about 100 ms: for what must not
 * happen, checked after a later event that must come after it. */
static inline void fx_spin(void) {
  struct timespec ts = {0, 2000000};
  for (int i = 0; i < 50; i++) {
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    nanosleep(&ts, NULL);
  }
}

/* A port free on 127.0.0.1 now, for the listener (the config refuses 0). */
static inline uint16_t fx_free_port(void) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  close(fd);
  return ntohs(sin.sin_port);
}

/* Starts the worker at policy time NOW with the config: a listener on
 * 127.0.0.1 (MODE "proxy" or "intercept"), the test DNS server, the test
 * vendor, 127.0.0.0/8 reachable, then EXTRA (more top-level keys). The
 * decision log goes to a file (fx_decisions). */
static inline void fx_start(const char *mode, int64_t now, const char *extra) {
  char text[2048], err[512];
  const struct phase *table[CONN_ST_COUNT_];
  memcpy(table, fx.table, sizeof(table)); /* the test chose it before */
  memset(&fx, 0, sizeof(fx));
  memcpy(fx.table, table, sizeof(table));
  fx.client = -1;
  snprintf(fx.dir, sizeof(fx.dir), "/tmp/embargo-conn-XXXXXX");
  cr_assert_not_null(mkdtemp(fx.dir));
  snprintf(fx.log, sizeof(fx.log), "%s/decisions.log", fx.dir);
  cr_assert_eq(log_open(fx.log, 1 << 20, getuid(), err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(uv_loop_init(&fx.loop), 0);
  fx_dns_start();
  fx_put("acme.yaml", FX_VENDOR);
  snprintf(text, sizeof(text),
           "listen:\n  - {address: \"127.0.0.1:%u\", mode: %s}\n"
           "resolvers: [\"127.0.0.1:%u\"]\n"
           "internal:\n  allow: [127.0.0.0/8]\n"
           "vendors:\n  - file: acme.yaml\n"
           "%s",
           (unsigned)fx_free_port(), mode, (unsigned)fx.dns_port, extra != NULL ? extra : "");
  fx_put("main.yaml", text);
  snprintf(text, sizeof(text), "%s/main.yaml", fx.dir);
  cr_assert_eq(config_load_file(&fx.cfg, text, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(server_shared_init(&fx.sh, &fx.cfg, 1, now, NULL, NULL, err, sizeof(err)), 0, "%s",
               err);
  cr_assert_eq(server_init(&fx.srv, &fx.loop, &fx.sh, 0, NULL, &fx_clients, NULL, err, sizeof(err)),
               0, "%s", err);
  fx.started = true;
}

static inline bool fx_accepted(void) {
  return fx.srv.conns != NULL;
}

/* The client connects; the loop runs until the worker accepted it. */
static inline struct conn *fx_connect(void) {
  const struct sockaddr *lst = (const struct sockaddr *)&fx.srv.listeners[0].addr;
  fx.client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fx.client, 0);
  cr_assert_eq(connect(fx.client, lst, sizeof(struct sockaddr_in)), 0, "%s", strerror(errno));
  cr_assert(fx_run_until(fx_accepted), "the connection was not accepted");
  fx.c = fx.srv.conns;
  return fx.c;
}

static inline void fx_send(const char *data, size_t len) {
  cr_assert_eq(send(fx.client, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static inline void fx_sends(const char *text) {
  fx_send(text, strlen(text));
}

/* Reads what the proxy wrote to the client, running the loop meanwhile,
 * until UNTIL appears (NULL: until EOF), EOF, or 3 s. Returns the bytes
 * read (NUL-terminated). */
static inline size_t fx_recv(char *buf, size_t size, const char *until) {
  size_t have = 0;
  struct pollfd p = {.fd = fx.client, .events = POLLIN};
  buf[0] = '\0';
  for (int i = 0; i < 1500 && have + 1 < size; i++) {
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    if (poll(&p, 1, 2) == 1) {
      ssize_t n = recv(fx.client, buf + have, size - 1 - have, MSG_DONTWAIT);
      if (n == 0)
        break;
      if (n > 0) {
        have += (size_t)n;
        buf[have] = '\0';
      }
    }
    if (until != NULL && strstr(buf, until) != NULL)
      break;
  }
  return have;
}

/* Whether the client's connection was closed by the proxy (EOF seen
 * within 3 s, the loop running). Input before the EOF is skipped. */
static inline bool fx_client_closed(void) {
  char buf[4096];
  struct pollfd p = {.fd = fx.client, .events = POLLIN};
  for (int i = 0; i < 1500; i++) {
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    if (poll(&p, 1, 2) == 1) {
      ssize_t n = recv(fx.client, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN))
        return true;
    }
  }
  return false;
}

static enum conn_state fx_want_state;
static inline bool fx_in_state(void) {
  return fx.srv.conns == NULL ? fx_want_state == CONN_ST_CLOSED
                              : fx.srv.conns->state == fx_want_state;
}

/* Runs the loop until the connection is in ST (CONN_ST_CLOSED: gone). */
static inline bool fx_reach(enum conn_state st) {
  fx_want_state = st;
  return fx_run_until(fx_in_state);
}

/* A listening socket on 127.0.0.1 (the destination), its port in *PORT. */
static inline int fx_origin(uint16_t *port) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  cr_assert_geq(fd, 0);
  cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  cr_assert_eq(listen(fd, 8), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  *port = ntohs(sin.sin_port);
  return fd;
}

/* Accepts the proxy's connection on the origin FD, running the loop. */
static inline int fx_origin_accept(int fd) {
  for (int i = 0; i < 1500; i++) {
    int s = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (s >= 0)
      return s;
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 2);
  }
  cr_assert_fail("the proxy did not connect to the origin");
  return -1;
}

/* Reads from FD (the origin's side) until UNTIL appears or 3 s. */
static inline size_t fx_read_fd(int fd, char *buf, size_t size, const char *until) {
  size_t have = 0;
  buf[0] = '\0';
  for (int i = 0; i < 1500 && have + 1 < size; i++) {
    ssize_t n = recv(fd, buf + have, size - 1 - have, MSG_DONTWAIT);
    if (n == 0)
      break;
    if (n > 0) {
      have += (size_t)n;
      buf[have] = '\0';
      if (until != NULL && strstr(buf, until) != NULL)
        break;
      continue;
    }
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 2);
  }
  return have;
}

/* Everything the decision log holds (the log is closed first). */
static inline const char *fx_decisions(void) {
  static char text[16384];
  FILE *f;
  size_t n;
  log_close();
  cr_assert_not_null(f = fopen(fx.log, "r"));
  n = fread(text, 1, sizeof(text) - 1, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

/* Stops everything the fixture started; the loop must close clean.
 * Idempotent. */
static inline void fx_finish(void) {
  char path[160];
  if (fx.dir[0] == '\0')
    return; /* finished already */
  if (fx.client >= 0)
    close(fx.client);
  fx.client = -1;
  if (fx.started) {
    server_stop(&fx.srv);
    uv_close((uv_handle_t *)&fx.dns, NULL);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    server_free(&fx.srv);
    server_shared_free(&fx.sh);
    cr_expect_eq(uv_loop_close(&fx.loop), 0, "a handle was left open");
    config_free(&fx.cfg);
  }
  log_close();
  for (const char *const *f =
           (const char *const[]){"main.yaml", "acme.yaml", "decisions.log", NULL};
       *f != NULL; f++) {
    snprintf(path, sizeof(path), "%s/%s", fx.dir, *f);
    unlink(path);
  }
  rmdir(fx.dir);
  fx.dir[0] = '\0';
  fx.started = false;
}

#endif
