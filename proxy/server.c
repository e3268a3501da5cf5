/* The server: listeners, signals, the policy clock, and orderly shutdown. */
#include "proxy/server.h"

#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "filters/netmatch.h"
#include "filters/policy.h"
#include "proxy/bump.h"
#include "proxy/conn.h"
#include "proxy/conn-t.h"
#include "proxy/dns.h"
#include "proxy/dnscache.h"
#include "proxy/log.h"
#include "proxy/upstream.h"

#define LISTEN_BACKLOG 511

#ifndef EMBARGO_VERSION
#define EMBARGO_VERSION "0.0.0"
#endif

static void on_connection(uv_stream_t *s, int status) {
  struct listener *lst = s->data;
  if (status < 0) {
    /* Out of descriptors, libuv sheds the pending connection; say so at
     * most once a second rather than once per client. */
    uint64_t now = uv_now(lst->srv->loop);
    lst->accept_errors++;
    if (now - lst->last_error_log >= 1000) {
      log_diag(LOG_WARN, 0, "listener %s: %s (%llu accept errors so far)", lst->name,
               uv_strerror(status), (unsigned long long)lst->accept_errors);
      lst->last_error_log = now;
    }
    return;
  }
  conn_accept(lst);
}

static int listener_open(struct server *srv, struct listener *lst, const struct config_listen *cl,
                         char *err, size_t errsize) {
  int rc, len = sizeof(lst->addr);
  unsigned flags;

  lst->srv = srv;
  uv_tcp_init(srv->loop, &lst->tcp);
  lst->tcp.data = lst;
  srv->nlisteners++; /* counted now so shutdown closes the handle whatever happens */
  /* An IPv6 listener serves IPv6 only, so "0.0.0.0:P" and "[::]:P" can be
   * listed together, each family judged by its own addresses. */
  flags = cl->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  if ((rc = uv_tcp_bind(&lst->tcp, (const struct sockaddr *)&cl->addr, flags)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&lst->tcp, LISTEN_BACKLOG, on_connection)) != 0) {
    snprintf(err, errsize, "cannot listen on %s: %s", cl->text, uv_strerror(rc));
    return rc;
  }
  uv_tcp_getsockname(&lst->tcp, (struct sockaddr *)&lst->addr, &len);
  log_fmt_addr((const struct sockaddr *)&lst->addr, lst->name, sizeof(lst->name));
  return 0;
}

/* Refused as destinations unless internal.allow covers them (besides this
 * host's own addresses, found at lookup time). */
static const char *const internal_ranges[] = {
    "0.0.0.0/8",   "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::/96",       "fe80::/10",   "ff00::/8",
};

/* The IPv4 address an IPv6 address stands for, where a translator or tunnel
 * would deliver it there: NAT64 64:ff9b::/96 (RFC 6052) and the local-use
 * 64:ff9b:1::/48 (RFC 8215, RFC 6052 /48 layout), SIIT ::ffff:0:a.b.c.d, and
 * 6to4 2002:a.b.c.d::/48. */
static bool embedded_v4(const uint8_t ip[16], uint8_t v4[4]) {
  static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
  static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
  static const uint8_t siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};

  if (memcmp(ip, nat64, sizeof(nat64)) == 0 || memcmp(ip, siit, sizeof(siit)) == 0) {
    memcpy(v4, ip + 12, 4);
  } else if (memcmp(ip, nat64_local, sizeof(nat64_local)) == 0) {
    v4[0] = ip[6];
    v4[1] = ip[7]; /* ip[8] is the reserved "u" octet */
    v4[2] = ip[9];
    v4[3] = ip[10];
  } else if (ip[0] == 0x20 && ip[1] == 0x02) {
    memcpy(v4, ip + 2, 4);
  } else {
    return false;
  }
  return true;
}

static int internal_init(struct server *srv) {
  size_t i;
  if ((srv->internal = netmatch_new()) == NULL)
    return UV_ENOMEM;
  for (i = 0; i < sizeof(internal_ranges) / sizeof(internal_ranges[0]); i++) {
    struct cidr c;
    if (cidr_parse(internal_ranges[i], strlen(internal_ranges[i]), &c) != 0 ||
        netmatch_add(srv->internal, &c, (void *)internal_ranges[i]) != 0)
      return UV_EINVAL;
  }
  return 0;
}

static void on_signal(uv_signal_t *h, int signum) {
  struct server *srv = h->data;
  log_diag(LOG_INFO, 0, "received signal %d; shutting down", signum);
  server_stop(srv);
}

/* Via's received-by names this host, so a request that comes back through
 * the same proxy is recognised, while a chain of different Embargo
 * instances (sidecar, then egress) is not mistaken for a loop. */
static void via_init(struct server *srv) {
  char host[64] = "";
  size_t i, n = 0;
  gethostname(host, sizeof(host) - 1);
  for (i = 0; host[i] != '\0' && n + 1 < sizeof(srv->via_host); i++)
    if (isalnum((unsigned char)host[i]) || strchr("-._", host[i]) != NULL)
      srv->via_host[n++] = host[i];
  srv->via_host[n] = '\0';
  if (n == 0)
    snprintf(srv->via_host, sizeof(srv->via_host), "embargo-%08x", (unsigned)getpid());
  snprintf(srv->via, sizeof(srv->via), "%s (embargo/%s)", srv->via_host, EMBARGO_VERSION);
}

int server_init(struct server *srv, uv_loop_t *loop, struct config *cfg, int64_t now_override,
                char *err, size_t errsize) {
  size_t i;
  int rc;

  struct dnscache_limits cache = {.min_ttl_ms = cfg->dns.min_ttl,
                                  .max_ttl_ms = cfg->dns.max_ttl,
                                  .negative_ttl_ms = cfg->dns.negative_ttl,
                                  .max_entries = cfg->dns.cache_entries,
                                  .max_bytes = cfg->dns.cache_memory};

  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->cfg = cfg;
  srv->policy = policy_ref(cfg->policy);
  via_init(srv);
  if (now_override != 0)
    srv->clock_offset = now_override - (int64_t)time(NULL);
  if ((rc = internal_init(srv)) != 0) {
    snprintf(err, errsize, "cannot build the internal address table");
    return rc;
  }
  rc = resolver_new(loop, cfg->resolvers, cfg->timeouts.resolve, &cache, &srv->resolver, err,
                    errsize);
  if (rc != 0 || (rc = bump_ctx_new(cfg, &srv->bump, err, errsize)) != 0)
    return rc;
  for (i = 0; i < cfg->nlisten; i++)
    if ((rc = listener_open(srv, &srv->listeners[i], &cfg->listen[i], err, errsize)) != 0)
      return rc;
  uv_signal_init(loop, &srv->sigint);
  uv_signal_init(loop, &srv->sigterm);
  srv->sigint.data = srv->sigterm.data = srv;
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  return 0;
}

void server_stop(struct server *srv) {
  size_t i;
  if (srv->stopping)
    return;
  srv->stopping = true;
  if (srv->bump != NULL)
    bump_ctx_log_stats(srv->bump, srv->cfg->certs.cache_entries);
  for (i = 0; i < srv->nlisteners; i++)
    if (!uv_is_closing((uv_handle_t *)&srv->listeners[i].tcp))
      uv_close((uv_handle_t *)&srv->listeners[i].tcp, NULL);
  while (srv->conns != NULL)
    conn_close(srv->conns);
  upstream_pool_clear(srv);
  resolver_close(srv->resolver);
  srv->resolver = NULL;
  if (srv->sigint.loop != NULL && !uv_is_closing((uv_handle_t *)&srv->sigint)) {
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
  }
}

int server_run(struct server *srv) {
  size_t i;
  for (i = 0; i < srv->nlisteners; i++)
    log_diag(LOG_INFO, 0, "listening on %s", srv->listeners[i].name);
  uv_run(srv->loop, UV_RUN_DEFAULT);
  server_stop(srv);
  uv_run(srv->loop, UV_RUN_DEFAULT); /* let close callbacks run */
  return 0;
}

void server_free(struct server *srv) {
  bump_ctx_free(srv->bump);
  srv->bump = NULL;
  policy_unref(srv->policy);
  srv->policy = NULL;
  netmatch_free(srv->internal);
  srv->internal = NULL;
  if (srv->ifaddrs != NULL)
    uv_free_interface_addresses(srv->ifaddrs, srv->nifaddrs);
  srv->ifaddrs = NULL;
}

int64_t server_now(const struct server *srv) {
  return (int64_t)time(NULL) + srv->clock_offset;
}

static bool is_wildcard(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static uint16_t port_of(const struct sockaddr *sa) {
  return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                        : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* Compares the IP addresses (not ports) of two socket addresses. */
static bool same_ip(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family)
    return false;
  if (a->sa_family == AF_INET)
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                  &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
  return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

#define IFADDRS_REFRESH_MS 10000

/* This host's interface addresses, re-read at most every 10 s: interfaces
 * change rarely, requests come often. */
static void ifaddrs_refresh(struct server *srv) {
  uint64_t now = uv_now(srv->loop);
  if (srv->ifaddrs != NULL && now - srv->ifaddrs_at < IFADDRS_REFRESH_MS)
    return;
  if (srv->ifaddrs != NULL)
    uv_free_interface_addresses(srv->ifaddrs, srv->nifaddrs);
  srv->ifaddrs = NULL;
  srv->nifaddrs = 0;
  if (uv_interface_addresses(&srv->ifaddrs, &srv->nifaddrs) != 0) {
    srv->ifaddrs = NULL;
    srv->nifaddrs = 0;
  }
  srv->ifaddrs_at = now;
}

/* Whether SA is an address of this host: loopback, unspecified, or bound to
 * one of its interfaces. */
static bool is_local_address(struct server *srv, const struct sockaddr *sa) {
  int i;

  if (sa->sa_family == AF_INET) {
    uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    if ((a >> 24) == 127 || a == 0)
      return true;
  } else if (IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr) ||
             IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
    return true;
  }
  ifaddrs_refresh(srv);
  for (i = 0; i < srv->nifaddrs; i++)
    if (same_ip((const struct sockaddr *)&srv->ifaddrs[i].address, sa))
      return true;
  return false;
}

bool server_is_internal(struct server *srv, const struct sockaddr *addr) {
  struct sockaddr_in tmp;
  const uint8_t *ip;
  uint8_t v4[4];
  int family;

  addr = sockaddr_unmapped(addr, &tmp);
  family = addr->sa_family;
  ip = family == AF_INET ? (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr
                         : (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
  if (srv->cfg->internal_allow != NULL &&
      netmatch_lookup(srv->cfg->internal_allow, family, ip, NULL) != NULL)
    return false;
  if (family == AF_INET6 && embedded_v4(ip, v4) &&
      netmatch_lookup(srv->internal, AF_INET, v4, NULL) != NULL)
    return true;
  return netmatch_lookup(srv->internal, family, ip, NULL) != NULL || is_local_address(srv, addr);
}

bool server_is_self(struct server *srv, const struct sockaddr *addr) {
  struct sockaddr_in tmp;
  size_t i;
  addr = sockaddr_unmapped(addr, &tmp);
  for (i = 0; i < srv->nlisteners; i++) {
    const struct sockaddr_storage *la = &srv->listeners[i].addr;
    if (port_of((const struct sockaddr *)la) != port_of(addr))
      continue;
    if (is_wildcard(la) ? is_local_address(srv, addr) : same_ip((const struct sockaddr *)la, addr))
      return true;
  }
  return false;
}
