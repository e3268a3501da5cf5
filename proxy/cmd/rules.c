/* `embargo rules`: nftables and iptables rules for transparent listeners. */
#include "proxy/cmd/rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy/base/log.h"

/* Tproxy divert mark and routing table: a packet the tproxy rule marked is
 * routed to the local host (ip rule fwmark -> table with a local route). */
#define DIVERT_MARK 0x1
#define DIVERT_TABLE 100
#define MAX_RESOLVERS 16

/* The public resolvers Kaspersky products fall back to when the system's
 * cannot reach the vendor (KESWin 11.6 de-DE 202507; KSK pt-PT 237222). */
static const char fallback_note[] =
    "public resolvers the vendor's products fall back to: Google 8.8.8.8, Cloudflare 1.1.1.1, "
    "Alibaba 223.6.6.6, Quad9 9.9.9.9, CleanBrowsing 185.228.168.168";

struct plan {
  uint16_t port;          /* the transparent listener's port */
  bool v4, v6;            /* families it listens on */
  char resolvers[2][MAX_RESOLVERS][INET6_ADDRSTRLEN]; /* [0] IPv4, [1] IPv6 */
  size_t nresolvers[2];
  uint32_t divert;        /* tproxy mark (differs from Embargo's own) */
};

/* Whether the transparent listeners take family F (0 IPv4, 1 IPv6). */
static bool covers(const struct plan *p, int f) {
  return f == 0 ? p->v4 : p->v6;
}

/* "meta nfproto ipv4 " when only IPv4 has a listener (and so on); "" for both. */
static const char *nft_covered(const struct plan *p) {
  return p->v4 && p->v6 ? "" : p->v4 ? "meta nfproto ipv4 " : "meta nfproto ipv6 ";
}

/* Why a family's TCP 80/443 is rejected: nothing would judge it. */
static void note_uncovered(const struct rules_opts *o, const struct plan *p, int f,
                           const char *prefix, FILE *out) {
  fprintf(out,
          "%s# The %s listener has no IPv%c address: IPv%c TCP 80/443 is rejected here rather\n"
          "%s# than let through unjudged (add a listener on %s:%u to judge it).\n",
          prefix, listen_mode_name(o->mode), f ? '6' : '4', f ? '6' : '4', prefix,
          f ? "[::]" : "0.0.0.0", p->port);
}

static uint16_t port_of(const struct sockaddr_storage *ss) {
  return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                         : ((const struct sockaddr_in *)ss)->sin_port);
}

static void add_resolver(struct plan *p, const char *ip) {
  struct in6_addr a6;
  struct in_addr a4;
  int fam = inet_pton(AF_INET, ip, &a4) == 1 ? 0 : inet_pton(AF_INET6, ip, &a6) == 1 ? 1 : -1;
  if (fam < 0 || p->nresolvers[fam] == MAX_RESOLVERS)
    return;
  char *slot = p->resolvers[fam][p->nresolvers[fam]++];
  size_t n = strnlen(ip, INET6_ADDRSTRLEN - 1);
  memcpy(slot, ip, n);
  slot[n] = '\0';
}

/* The site's resolvers: the config's, else /etc/resolv.conf's. */
static void find_resolvers(const struct config *cfg, const char *resolv_conf, struct plan *p) {
  char buf[sizeof(cfg->resolvers)], line[256];
  if (cfg->resolvers[0] != '\0') {
    char *save = NULL, *item;
    snprintf(buf, sizeof(buf), "%s", cfg->resolvers);
    for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
      struct sockaddr_storage ss;
      char ip[INET6_ADDRSTRLEN];
      if (config_parse_sockaddr(item, &ss) == 0)
        add_resolver(p, log_fmt_ip((const struct sockaddr *)&ss, ip, sizeof(ip)));
    }
    return;
  }
  FILE *f = fopen(resolv_conf, "r");
  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    char ip[INET6_ADDRSTRLEN + 1];
    if (sscanf(line, " nameserver %46s", ip) == 1)
      add_resolver(p, ip);
  }
  fclose(f);
}

static int make_plan(const struct config *cfg, const struct rules_opts *o, struct plan *p) {
  size_t i;
  memset(p, 0, sizeof(*p));
  for (i = 0; i < cfg->nlisten; i++) {
    const struct config_listen *l = &cfg->listen[i];
    if (l->mode != o->mode)
      continue;
    if (p->port != 0 && port_of(&l->addr) != p->port) {
      fprintf(stderr, "embargo: rules: %s listeners on different ports; keep one port\n",
              listen_mode_name(o->mode));
      return 2;
    }
    p->port = port_of(&l->addr);
    if (l->addr.ss_family == AF_INET6)
      p->v6 = true;
    else
      p->v4 = true;
  }
  if (p->port == 0) {
    fprintf(stderr,
            "embargo: rules: the configuration has no %s listener; add one to `listen:`, e.g. "
            "{address: 0.0.0.0:%d, mode: %s} (and [::]:%d for IPv6), or pass --%s\n",
            listen_mode_name(o->mode), o->mode == LISTEN_TPROXY ? 3130 : 3129,
            listen_mode_name(o->mode), o->mode == LISTEN_TPROXY ? 3130 : 3129,
            listen_mode_name(o->mode));
    return 2;
  }
  if (o->sidecar && o->uid < 0 && cfg->mark == 0) {
    fprintf(stderr, "embargo: rules: --sidecar needs Embargo's own traffic exempted: give "
                    "--uid UID (the user Embargo runs as) or set `mark:` in the config\n");
    return 2;
  }
  if (o->sidecar && o->uid >= 0 && cfg->mark != 0)
    fprintf(stderr,
            "embargo: rules: --uid %ld is not used: `mark:` is set, so Embargo's own "
            "connections are exempt by their mark\n",
            o->uid);
  find_resolvers(cfg, o->resolv_conf, p);
  p->divert = cfg->mark == DIVERT_MARK ? DIVERT_MARK << 1 : DIVERT_MARK;
  return 0;
}

/* ---- nftables ----------------------------------------------------------- */

/* Matches what is not Embargo's own (sidecar only). */
static const char *nft_not_own(const struct config *cfg, const struct rules_opts *o, char *buf,
                               size_t size) {
  if (!o->sidecar)
    return "";
  if (cfg->mark != 0)
    snprintf(buf, size, "meta mark != 0x%x ", cfg->mark);
  else
    snprintf(buf, size, "meta skuid != %ld ", o->uid);
  return buf;
}

static void nft_set(FILE *out, const char *const *items, size_t n) {
  size_t i;
  fprintf(out, "{ ");
  for (i = 0; i < n; i++)
    fprintf(out, "%s%s", i ? ", " : "", items[i]);
  fprintf(out, " }");
}

static void nft_filter_chain(const struct config *cfg, const struct rules_opts *o,
                             const struct plan *p, FILE *out) {
  static const char *const fam[2] = {"ip", "ip6"};
  char own[64];
  const char *not_own = nft_not_own(cfg, o, own, sizeof(own));
  int f;

  fprintf(out, "  chain embargo_filter {\n    type filter hook %s priority filter; policy accept;\n",
          o->sidecar ? "output" : "forward");
  if (o->sidecar)
    fprintf(out, "    oif \"lo\" accept\n");
  for (f = 0; f < 2; f++) {
    if (covers(p, f))
      continue;
    note_uncovered(o, p, f, "    ", out);
    fprintf(out, "    meta nfproto ipv%c %stcp dport { 80, 443 } reject with tcp reset\n",
            f ? '6' : '4', not_own);
  }
  fprintf(out, "    # QUIC: a TCP proxy cannot see it; refused at once, clients fall back to TCP.\n");
  fprintf(out, "    %smeta l4proto udp udp dport { 80, 443 } reject with icmpx admin-prohibited\n",
          not_own);
  fprintf(out, "    # DNS and DNS over TLS only to the site's resolvers (%s).\n", fallback_note);
  for (f = 0; f < 2; f++) {
    const char *items[MAX_RESOLVERS];
    size_t i;
    if (p->nresolvers[f] == 0)
      continue;
    for (i = 0; i < p->nresolvers[f]; i++)
      items[i] = p->resolvers[f][i];
    fprintf(out, "    %s daddr ", fam[f]);
    nft_set(out, items, p->nresolvers[f]);
    fprintf(out, " meta l4proto { tcp, udp } th dport 53 accept\n");
  }
  if (p->nresolvers[0] + p->nresolvers[1] == 0)
    fprintf(out, "    # no resolvers configured or in resolv.conf: every DNS query is refused\n");
  fprintf(out, "    %smeta l4proto udp udp dport 53 reject with icmpx admin-prohibited\n", not_own);
  fprintf(out, "    %smeta l4proto tcp tcp dport { 53, 853 } reject with tcp reset\n", not_own);
  fprintf(out, "  }\n");
}

static void nft_redirect(const struct config *cfg, const struct rules_opts *o,
                         const struct plan *p, FILE *out) {
  char own[64];
  const char *not_own = nft_not_own(cfg, o, own, sizeof(own));

  /* dstnat (-100) by number: older nft names it only for prerouting. */
  fprintf(out, "  chain embargo_redirect {\n    type nat hook %s priority -100; policy accept;\n",
          o->sidecar ? "output" : "prerouting");
  fprintf(out, "    fib daddr type local return   # traffic for this host itself\n");
  if (o->sidecar)
    fprintf(out, "    oif \"lo\" return\n");
  fprintf(out, "    %s%stcp dport { 80, 443 } redirect to :%u\n", nft_covered(p), not_own, p->port);
  fprintf(out, "  }\n");
}

static void nft_tproxy(const struct config *cfg, const struct rules_opts *o,
                       const struct plan *p, FILE *out) {
  char own[64];
  const char *not_own = nft_not_own(cfg, o, own, sizeof(own));

  if (o->sidecar) {
    /* TPROXY only works on input: the pod's own outgoing packets are marked
     * and routed back in through lo, where the tproxy rule takes them. */
    fprintf(out, "  chain embargo_mark {\n    type route hook output priority mangle; policy accept;\n");
    fprintf(out, "    oif \"lo\" return\n");
    fprintf(out, "    fib daddr type local return\n");
    fprintf(out, "    %s%stcp dport { 80, 443 } meta mark set 0x%x\n", nft_covered(p), not_own,
            p->divert);
    fprintf(out, "  }\n");
  }
  fprintf(out, "  chain embargo_divert {\n    type filter hook prerouting priority mangle; policy accept;\n");
  fprintf(out, "    fib daddr type local return   # traffic for this host itself\n");
  fprintf(out, "    meta l4proto tcp socket transparent 1 meta mark set 0x%x accept\n", p->divert);
  if (p->v4)
    fprintf(out, "    meta nfproto ipv4 tcp dport { 80, 443 } tproxy ip to :%u meta mark set 0x%x accept\n",
            p->port, p->divert);
  if (p->v6)
    fprintf(out, "    meta nfproto ipv6 tcp dport { 80, 443 } tproxy ip6 to :%u meta mark set 0x%x accept\n",
            p->port, p->divert);
  fprintf(out, "  }\n");
}

/* How Embargo's own connections are told apart (sidecar only), and what
 * that costs when it is by user id. */
static void print_exemption(const struct config *cfg, const struct rules_opts *o,
                            const char *prefix, FILE *out) {
  if (cfg->mark != 0) {
    fprintf(out,
            "%sEmbargo's own connections are exempt by their mark 0x%x (`mark:`); any other\n"
            "%sprocess is redirected, whatever user it runs as.\n",
            prefix, cfg->mark, prefix);
    return;
  }
  fprintf(out,
          "%sEmbargo's own connections are exempt by user id %ld (--uid): so is every other\n"
          "%sprocess running as that user, unjudged. Set `mark:` to exempt by mark instead.\n",
          prefix, o->uid, prefix);
}

/* The policy routing TPROXY needs, for the families in WANT (bit 0 IPv4,
 * bit 1 IPv6) that have a listener. */
static void print_policy_routing(const struct plan *p, unsigned want, const char *prefix,
                                 FILE *out) {
  fprintf(out, "%sTPROXY needs packets with mark 0x%x delivered locally; also run:\n", prefix,
          p->divert);
  if (p->v4 && (want & 1))
    fprintf(out, "%s  ip rule add fwmark 0x%x lookup %d\n%s  ip route add local 0.0.0.0/0 dev lo table %d\n",
            prefix, p->divert, DIVERT_TABLE, prefix, DIVERT_TABLE);
  if (p->v6 && (want & 2))
    fprintf(out, "%s  ip -6 rule add fwmark 0x%x lookup %d\n%s  ip -6 route add local ::/0 dev lo table %d\n",
            prefix, p->divert, DIVERT_TABLE, prefix, DIVERT_TABLE);
}

static void print_nft(const struct config *cfg, const struct rules_opts *o, const struct plan *p,
                      FILE *out) {
  fprintf(out, "#!/usr/sbin/nft -f\n");
  fprintf(out, "# Embargo %s rules for %s (%s), from `embargo rules --format nft --mode %s%s`.\n",
          listen_mode_name(o->mode), o->sidecar ? "a pod's own traffic" : "a router",
          cfg->source, listen_mode_name(o->mode), o->sidecar ? " --sidecar" : "");
  fprintf(out, "# Load with: nft -f FILE (replaces the table inet embargo, nothing else).\n");
  if (o->sidecar)
    print_exemption(cfg, o, "# ", out);
  if (o->mode == LISTEN_TPROXY)
    print_policy_routing(p, 3, "# ", out);
  fprintf(out, "table inet embargo\ndelete table inet embargo\ntable inet embargo {\n");
  if (o->mode == LISTEN_INTERCEPT)
    nft_redirect(cfg, o, p, out);
  else
    nft_tproxy(cfg, o, p, out);
  nft_filter_chain(cfg, o, p, out);
  fprintf(out, "}\n");
}

/* ---- iptables ------------------------------------------------------------ */

static const char *ipt_not_own(const struct config *cfg, const struct rules_opts *o, char *buf,
                               size_t size) {
  if (!o->sidecar)
    return "";
  if (cfg->mark != 0)
    snprintf(buf, size, "-m mark ! --mark 0x%x ", cfg->mark);
  else
    snprintf(buf, size, "-m owner ! --uid-owner %ld ", o->uid);
  return buf;
}

static void ipt_filter(const struct config *cfg, const struct rules_opts *o, const struct plan *p,
                       FILE *out) {
  int f = o->ipv6 ? 1 : 0;
  const char *reject = o->ipv6 ? "icmp6-adm-prohibited" : "icmp-admin-prohibited";
  const char *hook = o->sidecar ? "OUTPUT" : "FORWARD";
  char own[64];
  const char *not_own = ipt_not_own(cfg, o, own, sizeof(own));
  size_t i;

  fprintf(out, "*filter\n:EMBARGO_FILTER - [0:0]\n-A %s -j EMBARGO_FILTER\n", hook);
  if (o->sidecar)
    fprintf(out, "-A EMBARGO_FILTER -o lo -j RETURN\n");
  if (!covers(p, f)) {
    note_uncovered(o, p, f, "", out);
    fprintf(out,
            "-A EMBARGO_FILTER %s-p tcp -m multiport --dports 80,443 -j REJECT --reject-with "
            "tcp-reset\n",
            not_own);
  }
  fprintf(out, "# QUIC: a TCP proxy cannot see it; refused at once, clients fall back to TCP.\n");
  fprintf(out, "-A EMBARGO_FILTER %s-p udp -m multiport --dports 80,443 -j REJECT --reject-with %s\n",
          not_own, reject);
  fprintf(out, "# DNS and DNS over TLS only to the site's resolvers (%s).\n", fallback_note);
  for (i = 0; i < p->nresolvers[f]; i++) {
    fprintf(out, "-A EMBARGO_FILTER -d %s -p udp --dport 53 -j RETURN\n", p->resolvers[f][i]);
    fprintf(out, "-A EMBARGO_FILTER -d %s -p tcp --dport 53 -j RETURN\n", p->resolvers[f][i]);
  }
  fprintf(out, "-A EMBARGO_FILTER %s-p udp --dport 53 -j REJECT --reject-with %s\n", not_own,
          reject);
  fprintf(out, "-A EMBARGO_FILTER %s-p tcp -m multiport --dports 53,853 -j REJECT --reject-with tcp-reset\n",
          not_own);
  fprintf(out, "COMMIT\n");
}

static void print_iptables(const struct config *cfg, const struct rules_opts *o,
                           const struct plan *p, FILE *out) {
  const char *local = "-m addrtype --dst-type LOCAL -j RETURN";
  char own[64];
  const char *not_own = ipt_not_own(cfg, o, own, sizeof(own));
  bool covered = covers(p, o->ipv6 ? 1 : 0);

  fprintf(out, "# Embargo %s rules for %s (%s), IPv%c, from `embargo rules --format iptables "
               "--mode %s%s%s`.\n",
          listen_mode_name(o->mode), o->sidecar ? "a pod's own traffic" : "a router", cfg->source,
          o->ipv6 ? '6' : '4', listen_mode_name(o->mode), o->sidecar ? " --sidecar" : "",
          o->ipv6 ? " --ipv6" : "");
  fprintf(out, "# Load with: %s --noflush < FILE (without --noflush the tables it names are\n"
               "# flushed first, as suits a fresh pod network namespace).\n",
          o->ipv6 ? "ip6tables-restore" : "iptables-restore");
  if (o->sidecar)
    print_exemption(cfg, o, "# ", out);
  if (!covered)
    fprintf(out,
            "# No %s listener for this family: nothing is redirected, and the filter\n"
            "# table rejects its TCP 80/443.\n",
            listen_mode_name(o->mode));
  if (o->mode == LISTEN_INTERCEPT) {
    fprintf(out, "*nat\n:EMBARGO_REDIRECT - [0:0]\n-A %s -p tcp -j EMBARGO_REDIRECT\n",
            o->sidecar ? "OUTPUT" : "PREROUTING");
    fprintf(out, "-A EMBARGO_REDIRECT %s\n", local);
    if (o->sidecar)
      fprintf(out, "-A EMBARGO_REDIRECT -o lo -j RETURN\n");
    if (covered)
      fprintf(out, "-A EMBARGO_REDIRECT %s-p tcp -m multiport --dports 80,443 -j REDIRECT --to-ports %u\n",
              not_own, p->port);
    fprintf(out, "COMMIT\n");
  } else {
    if (covered)
      print_policy_routing(p, o->ipv6 ? 2 : 1, "# ", out);
    fprintf(out, "*mangle\n:EMBARGO_DIVERT - [0:0]\n");
    if (o->sidecar && covered) {
      fprintf(out, ":EMBARGO_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j EMBARGO_OUTPUT\n");
      fprintf(out, "-A EMBARGO_OUTPUT -o lo -j RETURN\n-A EMBARGO_OUTPUT %s\n", local);
      fprintf(out, "-A EMBARGO_OUTPUT %s-p tcp -m multiport --dports 80,443 -j MARK --set-mark 0x%x\n",
              not_own, p->divert);
    }
    fprintf(out, "-A PREROUTING -p tcp -m socket --transparent -j EMBARGO_DIVERT\n");
    fprintf(out, "-A EMBARGO_DIVERT -j MARK --set-mark 0x%x\n-A EMBARGO_DIVERT -j ACCEPT\n",
            p->divert);
    if (covered)
      fprintf(out, "-A PREROUTING -p tcp -m multiport --dports 80,443 -j TPROXY --on-port %u "
                   "--tproxy-mark 0x%x/0x%x\n",
              p->port, p->divert, p->divert);
    fprintf(out, "COMMIT\n");
  }
  ipt_filter(cfg, o, p, out);
}

int rules_print(const struct config *cfg, const struct rules_opts *o, FILE *out) {
  struct plan p;
  int rc = make_plan(cfg, o, &p);
  if (rc != 0)
    return rc;
  if (o->format == RULES_NFT)
    print_nft(cfg, o, &p, out);
  else
    print_iptables(cfg, o, &p, out);
  return 0;
}
