/* Internal-destination and own-listener refusals. */
#include "proxy/decide/destcheck.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "filters/netmatch.h"
#include "proxy/base/dns.h"

#define IFADDRS_REFRESH_MS 10000

/* Refused as destinations unless internal.allow covers them (besides this
 * host's own addresses, found at lookup time). */
static const char *const internal_ranges[] = {
    "0.0.0.0/8",   "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::/96",       "fe80::/10",   "ff00::/8",
};

/* Cloud instance metadata and host-agent endpoints: they hand out
 * credentials, so they are refused whatever the family or range they sit in
 * (100.64.0.0/10 and fd00::/8 are otherwise routable), and internal.allow
 * opens one only by naming that very address (/32 or /128): a broad range
 * such as 169.254.0.0/16 or 100.64.0.0/10 does not. */
static const char *const metadata_addrs[] = {
    "169.254.169.254", /* AWS, GCP, Azure IMDS, OpenStack, Oracle, DigitalOcean, Hetzner... */
    "169.254.170.2",   /* AWS ECS task metadata and credentials */
    "169.254.169.253", /* AWS VPC DNS (answers the IMDS names) */
    "169.254.0.23",    /* Tencent Cloud metadata */
    "100.100.100.200", /* Alibaba Cloud metadata (inside 100.64.0.0/10) */
    "168.63.129.16",   /* Azure WireServer: host agent, extension settings, certificates */
    "192.0.0.192",     /* Oracle Cloud Classic metadata */
    "fd00:ec2::254",   /* AWS IMDS over IPv6 (a unique-local address) */
    "fd00:ec2::253",   /* AWS VPC DNS over IPv6 */
    "fd00:ec2::23",    /* AWS EKS Pod Identity agent over IPv6 */
    "169.254.170.23",  /* AWS EKS Pod Identity agent */
};

static int add_all(struct netmatch *m, const char *const *texts, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    struct cidr c;
    if (cidr_parse(texts[i], strlen(texts[i]), &c) != 0 ||
        netmatch_add(m, &c, (void *)texts[i]) != 0)
      return UV_EINVAL;
  }
  return 0;
}

int destcheck_init(struct destcheck *dc, const struct netmatch *allow) {
  memset(dc, 0, sizeof(*dc));
  dc->allow = allow;
  if ((dc->internal = netmatch_new()) == NULL || (dc->metadata = netmatch_new()) == NULL)
    return UV_ENOMEM;
  if (add_all(dc->internal, internal_ranges, sizeof(internal_ranges) / sizeof(internal_ranges[0])) != 0)
    return UV_EINVAL;
  return add_all(dc->metadata, metadata_addrs, sizeof(metadata_addrs) / sizeof(metadata_addrs[0]));
}

void destcheck_free(struct destcheck *dc) {
  if (dc == NULL)
    return;
  netmatch_free(dc->internal);
  netmatch_free(dc->metadata);
  dc->internal = NULL;
  dc->metadata = NULL;
  free(dc->ifaddrs);
  dc->ifaddrs = NULL;
  dc->nifaddrs = 0;
}

void destcheck_add_self(struct destcheck *dc, const struct sockaddr *addr) {
  if (dc->nself == sizeof(dc->self) / sizeof(dc->self[0]))
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

/* This host's interface addresses, re-read at most every 10 s: interfaces
 * change rarely, requests come often. Every address counts, whatever its
 * interface's state: the kernel delivers packets for an address of a link
 * without carrier all the same (libuv's list leaves such links out, which
 * let a client reach this host through a link that was down when read). */
static void ifaddrs_refresh(struct destcheck *dc, uint64_t now_ms) {
  struct ifaddrs *all = NULL, *ifa;
  int n = 0;

  if (dc->ifaddrs != NULL && now_ms - dc->ifaddrs_at < IFADDRS_REFRESH_MS)
    return;
  dc->ifaddrs_at = now_ms;
  if (getifaddrs(&all) != 0)
    return; /* keep what was read last */
  for (ifa = all; ifa != NULL; ifa = ifa->ifa_next)
    n += ifa->ifa_addr != NULL &&
         (ifa->ifa_addr->sa_family == AF_INET || ifa->ifa_addr->sa_family == AF_INET6);
  free(dc->ifaddrs);
  dc->nifaddrs = 0;
  if ((dc->ifaddrs = calloc((size_t)n + 1, sizeof(*dc->ifaddrs))) != NULL) {
    for (ifa = all; ifa != NULL; ifa = ifa->ifa_next) {
      int fam = ifa->ifa_addr != NULL ? ifa->ifa_addr->sa_family : AF_UNSPEC;
      if (fam == AF_INET || fam == AF_INET6)
        memcpy(&dc->ifaddrs[dc->nifaddrs++], ifa->ifa_addr,
               fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    }
  }
  freeifaddrs(all);
}

/* Whether SA is bound to one of this host's interfaces. */
static bool is_interface_address(struct destcheck *dc, const struct sockaddr *sa, uint64_t now_ms) {
  int i;
  ifaddrs_refresh(dc, now_ms);
  for (i = 0; i < dc->nifaddrs; i++)
    if (sockaddr_same_ip((const struct sockaddr *)&dc->ifaddrs[i], sa))
      return true;
  return false;
}

/* Whether SA is an address of this host: loopback, unspecified, or bound to
 * one of its interfaces. (The internal check leaves loopback and
 * unspecified to its table of ranges, the one place that refuses them.) */
static bool is_local_address(struct destcheck *dc, const struct sockaddr *sa, uint64_t now_ms) {
  if (sa->sa_family == AF_INET) {
    uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    if ((a >> 24) == 127 || a == 0)
      return true;
  } else if (IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr) ||
             IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
    return true;
  }
  return is_interface_address(dc, sa, now_ms);
}

/* Whether internal.allow names exactly this address (a /32 or /128 entry). */
static bool allow_names_exactly(const struct destcheck *dc, int family, const uint8_t *ip) {
  unsigned bits = 0;
  return dc->allow != NULL && netmatch_lookup(dc->allow, family, ip, &bits) != NULL &&
         bits == (family == AF_INET ? 32u : 128u);
}

/* A metadata address, directly or embedded in a translator form; only an
 * exact internal.allow entry for the address asked for opens it. */
static bool is_metadata(const struct destcheck *dc, int family, const uint8_t *ip,
                        const uint8_t *v4) {
  bool hit = netmatch_lookup(dc->metadata, family, ip, NULL) != NULL ||
             (v4 != NULL && netmatch_lookup(dc->metadata, AF_INET, v4, NULL) != NULL);
  return hit && !allow_names_exactly(dc, family, ip);
}

bool destcheck_is_internal(struct destcheck *dc, const struct sockaddr *addr, uint64_t now_ms) {
  struct sockaddr_in tmp, inner;
  const uint8_t *ip;
  uint8_t v4[4];
  bool embedded;
  int family;

  addr = sockaddr_unmapped(addr, &tmp);
  family = addr->sa_family;
  ip = family == AF_INET ? (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr
                         : (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
  embedded = family == AF_INET6 && embedded_v4(ip, v4);
  if (is_metadata(dc, family, ip, embedded ? v4 : NULL))
    return true;
  if (dc->allow != NULL && netmatch_lookup(dc->allow, family, ip, NULL) != NULL)
    return false;
  if (embedded) {
    /* A translator delivers it to the IPv4 address: judge that address as
     * one, this host's own addresses included. */
    if (netmatch_lookup(dc->internal, AF_INET, v4, NULL) != NULL)
      return true;
    memset(&inner, 0, sizeof(inner));
    inner.sin_family = AF_INET;
    memcpy(&inner.sin_addr, v4, 4);
    if (is_interface_address(dc, (const struct sockaddr *)&inner, now_ms))
      return true;
  }
  return netmatch_lookup(dc->internal, family, ip, NULL) != NULL ||
         is_interface_address(dc, addr, now_ms);
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
                        : sockaddr_same_ip((const struct sockaddr *)la, addr))
      return true;
  }
  return false;
}
