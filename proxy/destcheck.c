/* Internal-destination and own-listener refusals. */
#include "proxy/destcheck.h"

#include <netinet/in.h>
#include <string.h>

#include "filters/netmatch.h"
#include "proxy/dns.h"

#define IFADDRS_REFRESH_MS 10000

/* Refused as destinations unless internal.allow covers them (besides this
 * host's own addresses, found at lookup time). */
static const char *const internal_ranges[] = {
    "0.0.0.0/8",   "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::/96",       "fe80::/10",   "ff00::/8",
};

int destcheck_init(struct destcheck *dc, const struct netmatch *allow) {
  size_t i;
  memset(dc, 0, sizeof(*dc));
  dc->allow = allow;
  if ((dc->internal = netmatch_new()) == NULL)
    return UV_ENOMEM;
  for (i = 0; i < sizeof(internal_ranges) / sizeof(internal_ranges[0]); i++) {
    struct cidr c;
    if (cidr_parse(internal_ranges[i], strlen(internal_ranges[i]), &c) != 0 ||
        netmatch_add(dc->internal, &c, (void *)internal_ranges[i]) != 0)
      return UV_EINVAL;
  }
  return 0;
}

void destcheck_free(struct destcheck *dc) {
  if (dc == NULL)
    return;
  netmatch_free(dc->internal);
  dc->internal = NULL;
  if (dc->ifaddrs != NULL)
    uv_free_interface_addresses(dc->ifaddrs, dc->nifaddrs);
  dc->ifaddrs = NULL;
  dc->nifaddrs = 0;
}

void destcheck_add_self(struct destcheck *dc, const struct sockaddr *addr) {
  if (dc->nself == CONFIG_MAX_LISTEN)
    return;
  memset(&dc->self[dc->nself], 0, sizeof(dc->self[0]));
  memcpy(&dc->self[dc->nself++], addr,
         addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
}

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

/* This host's interface addresses, re-read at most every 10 s: interfaces
 * change rarely, requests come often. */
static void ifaddrs_refresh(struct destcheck *dc, uint64_t now_ms) {
  if (dc->ifaddrs != NULL && now_ms - dc->ifaddrs_at < IFADDRS_REFRESH_MS)
    return;
  if (dc->ifaddrs != NULL)
    uv_free_interface_addresses(dc->ifaddrs, dc->nifaddrs);
  dc->ifaddrs = NULL;
  dc->nifaddrs = 0;
  if (uv_interface_addresses(&dc->ifaddrs, &dc->nifaddrs) != 0) {
    dc->ifaddrs = NULL;
    dc->nifaddrs = 0;
  }
  dc->ifaddrs_at = now_ms;
}

/* Whether SA is an address of this host: loopback, unspecified, or bound to
 * one of its interfaces. */
static bool is_local_address(struct destcheck *dc, const struct sockaddr *sa, uint64_t now_ms) {
  int i;

  if (sa->sa_family == AF_INET) {
    uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    if ((a >> 24) == 127 || a == 0)
      return true;
  } else if (IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr) ||
             IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
    return true;
  }
  ifaddrs_refresh(dc, now_ms);
  for (i = 0; i < dc->nifaddrs; i++)
    if (same_ip((const struct sockaddr *)&dc->ifaddrs[i].address, sa))
      return true;
  return false;
}

bool destcheck_is_internal(struct destcheck *dc, const struct sockaddr *addr, uint64_t now_ms) {
  struct sockaddr_in tmp;
  const uint8_t *ip;
  uint8_t v4[4];
  int family;

  addr = sockaddr_unmapped(addr, &tmp);
  family = addr->sa_family;
  ip = family == AF_INET ? (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr
                         : (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
  if (dc->allow != NULL && netmatch_lookup(dc->allow, family, ip, NULL) != NULL)
    return false;
  if (family == AF_INET6 && embedded_v4(ip, v4) &&
      netmatch_lookup(dc->internal, AF_INET, v4, NULL) != NULL)
    return true;
  return netmatch_lookup(dc->internal, family, ip, NULL) != NULL ||
         is_local_address(dc, addr, now_ms);
}

bool destcheck_is_self(struct destcheck *dc, const struct sockaddr *addr, uint64_t now_ms) {
  struct sockaddr_in tmp;
  size_t i;
  addr = sockaddr_unmapped(addr, &tmp);
  for (i = 0; i < dc->nself; i++) {
    const struct sockaddr_storage *la = &dc->self[i];
    if (port_of((const struct sockaddr *)la) != port_of(addr))
      continue;
    if (is_wildcard(la) ? is_local_address(dc, addr, now_ms)
                        : same_ip((const struct sockaddr *)la, addr))
      return true;
  }
  return false;
}
