/* SNIFF, intercepted connections (listeners in intercept or tproxy mode):
 * the original destination, recovered from the kernel, and the first
 * bytes, read without answering, to tell a TLS ClientHello (PEEK, then
 * ROUTE on the name it claims) from an HTTP request (HEAD, judged on its
 * Host) from anything else (ROUTE on the original destination alone, with
 * transparent.on_unknown). Silence until transparent.timeout counts as
 * anything else. */
#include "proxy/conn/transparent.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/base/log.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/exchange.h"
#include "proxy/worker/listener.h"
#include "proxy/worker/server.h"

/* From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h, whose
 * headers clash with the C library's netinet/in.h. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* Bytes enough to tell a request line from anything else: the longest
 * method Embargo forwards plus a space. */
#define SNIFF_MAX 24

/* What the first bytes are. */
enum first_bytes { FIRST_UNKNOWN_YET, FIRST_TLS, FIRST_HTTP, FIRST_OTHER };

/* Recovers where the client was going: the local address under TPROXY,
 * SO_ORIGINAL_DST under a REDIRECT. 0, or a negative code (no redirect
 * happened). */
static int original_dst(struct conn *c) {
  struct sockaddr_storage *dst = &c->ex->orig_dst;
  socklen_t len = sizeof(*dst);
  uv_os_fd_t fd;
  int rc;

  memset(dst, 0, sizeof(*dst));
  if (uv_fileno((const uv_handle_t *)&c->cli.tcp, &fd) != 0)
    return UV_EBADF;
  if (c->lst->mode == LISTEN_TPROXY) /* the socket was accepted for the original address */
    rc = getsockname(fd, (struct sockaddr *)dst, &len);
  else if (c->lst->addr.ss_family == AF_INET6)
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &len);
  else
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len);
  if (rc != 0) {
    memset(dst, 0, sizeof(*dst));
    return -errno;
  }
  return 0;
}

/* Refuses what must not be served: a connection reached directly, not
 * redirected by the firewall (or redirected to one of our own listeners),
 * has nowhere to go. Behind a load balancer the PROXY protocol header
 * named the original destination (PROXYHDR kept it). */
static enum phase_rc sniff_enter(struct conn *c) {
  char peer[64], where[64];
  uint64_t now = uv_now(c->srv->loop);
  const struct sockaddr *dst = (const struct sockaddr *)&c->ex->orig_dst;

  if ((c->relayed || original_dst(c) == 0) && !destcheck_is_self(&c->srv->dest, dst, now))
    return PHASE_MORE;
  log_diag(LOG_WARN, c->id,
           "%s reached %s listener %s directly (no firewall redirect%s; original destination %s); "
           "refusing",
           log_fmt_addr(&c->peer.sa, peer, sizeof(peer)),
           listen_mode_name((enum listen_mode)c->lst->mode), c->lst->name,
           c->lst->proxy_protocol ? " nor PROXY protocol destination" : "",
           dst->sa_family ? log_fmt_addr(dst, where, sizeof(where)) : "unknown");
  return PHASE_CLOSE;
}

/* A request line starts with an upper-case token and a space. */
static enum first_bytes classify(const char *p, size_t n) {
  size_t i;
  if (n == 0)
    return FIRST_UNKNOWN_YET;
  if ((unsigned char)p[0] == 0x16)
    return FIRST_TLS;
  for (i = 0; i < n && i < SNIFF_MAX; i++) {
    if (p[i] == ' ')
      return i > 0 ? FIRST_HTTP : FIRST_OTHER;
    if (p[i] < 'A' || p[i] > 'Z')
      return FIRST_OTHER;
  }
  return n >= SNIFF_MAX ? FIRST_OTHER : FIRST_UNKNOWN_YET;
}

/* Neither TLS nor HTTP (or nothing at all): judged on the original
 * destination with transparent.on_unknown, relayed as bytes if allowed. */
static enum phase_rc route_unknown(struct conn *c) {
  c->ex->relay = CONN_RELAY_TUNNEL;
  exchange_dest_from_orig(c->ex);
  return conn_goto(c, CONN_ST_ROUTE);
}

/* Everything read is kept (*USED 0) for the phase the first bytes call for. */
static enum phase_rc sniff_data(struct conn *c, const char *data, size_t len, size_t *used) {
  *used = 0;
  switch (classify(data, len)) {
  case FIRST_TLS: c->ex->relay = CONN_RELAY_TUNNEL; return conn_goto(c, CONN_ST_PEEK);
  case FIRST_HTTP: return conn_goto(c, CONN_ST_HEAD);
  case FIRST_OTHER: return route_unknown(c);
  default: return PHASE_MORE;
  }
}

static enum phase_rc sniff_end(struct conn *c, int status) {
  /* A few bytes, then FIN: still judged and logged. */
  return status == UV_EOF && c->ex->spill_len > 0 ? route_unknown(c) : PHASE_CLOSE;
}

/* Silent: a protocol where the server speaks first, or nothing. */
static enum phase_rc sniff_timeout(struct conn *c) {
  return route_unknown(c);
}

static uint64_t sniff_deadline(const struct conn *c) {
  return c->since + c->srv->cfg->transparent.timeout;
}

const struct phase sniff_phase = {
    .enter = sniff_enter,
    .client_data = sniff_data,
    .client_end = sniff_end,
    .timeout = sniff_timeout,
    .deadline = sniff_deadline,
};
