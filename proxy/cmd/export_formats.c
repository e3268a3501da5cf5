/* The writers of `embargo export`: an RPZ zone, an Unbound local-zone file,
 * dnsmasq options, a hosts file, nftables sets and Squid ACLs. Each says
 * which items it cannot write with Embargo's meaning, and why. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/netmatch.h"
#include "proxy/cmd/export-int.h"
#include "proxy/cmd/export.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const glob_why =
    "a label glob with a '*' or more than 256 names stands for names that cannot be listed";

/* ---- RPZ ------------------------------------------------------------------ */

/* Owner names written so far: a name is written once (the first writer
 * wins; carved-out names are written before the item around them). */
static struct {
  char **names;
  size_t n, cap;
} rpz_seen;

static bool rpz_claim(const char *owner) {
  for (size_t i = 0; i < rpz_seen.n; i++)
    if (strcmp(rpz_seen.names[i], owner) == 0)
      return false;
  if (rpz_seen.n == rpz_seen.cap) {
    size_t cap = rpz_seen.cap ? 2 * rpz_seen.cap : 64;
    char **grown = realloc(rpz_seen.names, cap * sizeof(*grown));
    if (grown == NULL)
      return true; /* out of memory: a duplicate is better than a hole */
    rpz_seen.names = grown;
    rpz_seen.cap = cap;
  }
  char *copy = strdup(owner);
  if (copy != NULL)
    rpz_seen.names[rpz_seen.n++] = copy;
  return true;
}

/* A network as an rpz-ip owner name: "24.0.2.0.192.rpz-ip", IPv6 groups
 * reversed and written whole. False for text that is not a prefix. */
static bool rpz_ip_owner(const char *prefix, char *out, size_t size) {
  struct cidr c;
  size_t used;
  if (cidr_parse(prefix, strlen(prefix), &c) != 0)
    return false;
  used = (size_t)snprintf(out, size, "%u", c.bits);
  if (c.family == AF_INET) {
    for (int i = 3; i >= 0; i--)
      used += (size_t)snprintf(out + used, size - used, ".%u", c.addr[i]);
  } else {
    for (int i = 7; i >= 0; i--)
      used += (size_t)snprintf(out + used, size - used, ".%x",
                               (unsigned)(c.addr[2 * i] << 8 | c.addr[2 * i + 1]));
  }
  snprintf(out + used, size - used, ".rpz-ip");
  return true;
}

static const char *rpz_target(enum action a) {
  return a == ACTION_DENY ? "." : "rpz-passthru.";
}

static void rpz_entry(FILE *out, enum item_kind kind, const char *text, enum action a) {
  char owner[300];
  if (kind == ITEM_NET) {
    if (rpz_ip_owner(text, owner, sizeof(owner)) && rpz_claim(owner))
      fprintf(out, "%s CNAME %s\n", owner, rpz_target(a));
    return;
  }
  if ((kind == ITEM_EXACT || kind == ITEM_INCL) && rpz_claim(text))
    fprintf(out, "%s CNAME %s\n", text, rpz_target(a));
  snprintf(owner, sizeof(owner), "*.%s", text);
  if ((kind == ITEM_STRICT || kind == ITEM_INCL) && rpz_claim(owner))
    fprintf(out, "%s CNAME %s\n", owner, rpz_target(a));
}

static const char *rpz_refuse(const struct item *it) {
  if (it->kind == ITEM_GLOB)
    return glob_why;
  for (size_t i = 0; i < it->nholes; i++)
    if (it->holes[i].kind == ITEM_GLOB)
      return "a rule below it with a '*' inside a label cannot be carved out";
  return it->holes_overflow ? "too many rules and exceptions below it to carve out" : NULL;
}

static void rpz_begin(FILE *out, int64_t now) {
  rpz_seen.n = 0;
  fprintf(out,
          "$TTL 60\n@ IN SOA localhost. hostmaster.localhost. (%u 3600 600 86400 60)\n"
          "  IN NS localhost.\n",
          (unsigned)(uint32_t)now);
}

static void rpz_write(FILE *out, const struct item *it) {
  for (size_t i = 0; i < it->nholes; i++) /* first: they are more specific */
    rpz_entry(out, it->holes[i].kind, it->holes[i].text, it->holes[i].action);
  rpz_entry(out, it->kind, it->text, it->action);
}

static void rpz_end(FILE *out) {
  for (size_t i = 0; i < rpz_seen.n; i++)
    free(rpz_seen.names[i]);
  free(rpz_seen.names);
  memset(&rpz_seen, 0, sizeof(rpz_seen));
}

/* ---- shared refusals -------------------------------------------------------- */

/* The reason a name-only format that cannot carve out cannot write IT, or
 * NULL; KINDS says which item kinds it writes, WHY_KIND why not the rest. */
static const char *name_refuse(const struct item *it, unsigned kinds, const char *format,
                               const char *why_kind) {
  static char why[400];
  if (!(kinds & (1u << it->kind)))
    return it->kind == ITEM_GLOB ? glob_why : why_kind;
  if (it->nholes > 0) {
    snprintf(why, sizeof(why), "%s cannot leave out %s%s below it, which Embargo judges %s", format,
             it->holes[0].kind == ITEM_STRICT ? "*." : "", it->holes[0].text,
             it->holes[0].action == ACTION_DENY ? "deny" : "allow or log");
    return why;
  }
  return NULL;
}

#define BIT(k) (1u << (k))

/* ---- Unbound ------------------------------------------------------------------ */

static const char *unbound_refuse(const struct item *it) {
  if (it->action == ACTION_LOG && it->kind == ITEM_EXACT)
    return "unbound logs a name only together with the names below it (local-zone inform)";
  return name_refuse(it, BIT(ITEM_EXACT) | BIT(ITEM_INCL), "unbound",
                     "unbound cannot say \"strictly below\" without the name itself");
}

static void unbound_begin(FILE *out, int64_t now) {
  fprintf(out, "server:\n");
}

static void unbound_write(FILE *out, const struct item *it) {
  if (it->kind == ITEM_INCL)
    fprintf(out, "  local-zone: \"%s.\" %s\n", it->text,
            it->action == ACTION_DENY ? "always_nxdomain" : "inform");
  else /* a transparent zone of its own: the name only, the names below resolve */
    fprintf(out, "  local-data: \"%s. A 0.0.0.0\"\n  local-data: \"%s. AAAA ::\"\n", it->text,
            it->text);
}

static void no_end(FILE *out) {}

/* ---- dnsmasq -------------------------------------------------------------------- */

static const char *dnsmasq_refuse(const struct item *it) {
  if (it->action == ACTION_LOG)
    return "dnsmasq cannot log a name without answering for it";
  return name_refuse(it, BIT(ITEM_EXACT) | BIT(ITEM_INCL), "dnsmasq",
                     "dnsmasq cannot say \"strictly below\" without the name itself");
}

static void no_begin(FILE *out, int64_t now) {}

static void dnsmasq_write(FILE *out, const struct item *it) {
  if (it->kind == ITEM_INCL)
    fprintf(out, "address=/%s/\n", it->text);
  else /* answers A and AAAA for exactly this name */
    fprintf(out, "host-record=%s,0.0.0.0,::\n", it->text);
}

/* ---- hosts ---------------------------------------------------------------------- */

static const char *hosts_refuse(const struct item *it) {
  if (it->action == ACTION_LOG)
    return "a hosts file cannot log a name";
  return name_refuse(it, BIT(ITEM_EXACT), "a hosts file",
                     "a hosts file holds exact names only, not the names below one");
}

static void hosts_write(FILE *out, const struct item *it) {
  fprintf(out, "0.0.0.0 %s\n:: %s\n", it->text, it->text);
}

/* ---- nftables ------------------------------------------------------------------- */

/* Elements gathered per set, written at the end as one "add element" each. */
static struct {
  char *elems[2][2]; /* [deny, log][v4, v6], comma-separated */
  size_t len[2][2];
} nft;

static const char *nft_refuse(const struct item *it) {
  return it->nholes > 0 ? "a more specific network inside it is judged otherwise, which a "
                          "set cannot leave out"
                        : NULL;
}

static void nft_begin(FILE *out, int64_t now) {
  memset(&nft, 0, sizeof(nft));
}

static void nft_write(FILE *out, const struct item *it) {
  int a = it->action == ACTION_DENY ? 0 : 1, f = strchr(it->text, ':') != NULL;
  size_t add = strlen(it->text) + 2;
  char *grown = realloc(nft.elems[a][f], nft.len[a][f] + add + 1);
  if (grown == NULL)
    return;
  nft.len[a][f] +=
      (size_t)sprintf(grown + nft.len[a][f], "%s%s", nft.len[a][f] ? ", " : "", it->text);
  nft.elems[a][f] = grown;
}

static void nft_end(FILE *out) {
  static const char *const sets[2][2] = {{"deny_v4", "deny_v6"}, {"log_v4", "log_v6"}};
  fprintf(out, "table inet embargo_lists {\n");
  for (int a = 0; a < 2; a++)
    for (int f = 0; f < 2; f++)
      fprintf(out, "\tset %s { type %s; flags interval; auto-merge; }\n", sets[a][f],
              f ? "ipv6_addr" : "ipv4_addr");
  fprintf(out, "}\n");
  for (int a = 0; a < 2; a++) {
    for (int f = 0; f < 2; f++) {
      fprintf(out, "flush set inet embargo_lists %s\n", sets[a][f]);
      if (nft.len[a][f] > 0)
        fprintf(out, "add element inet embargo_lists %s { %s }\n", sets[a][f], nft.elems[a][f]);
      free(nft.elems[a][f]);
    }
  }
}

/* ---- Squid ---------------------------------------------------------------------- */

static const char *squid_refuse(const struct item *it) {
  return name_refuse(it, BIT(ITEM_EXACT) | BIT(ITEM_STRICT) | BIT(ITEM_INCL) | BIT(ITEM_GLOB),
                     "squid", NULL);
}

/* A label glob (or a name) as the body of a POSIX extended regular
 * expression, escaped; '*' stays within a label. */
static void squid_regex(FILE *out, const char *p) {
  for (; *p; p++) {
    if (*p == '*')
      fputs("[^.]*", out);
    else if (*p == '?')
      fputs("[^.]", out);
    else if (*p == '[') {
      size_t n = strcspn(p, "]");
      fprintf(out, "%.*s", (int)n + 1, p); /* [a-z0-9] sets read the same in a regex */
      p += n;
    } else if (*p == '.')
      fputs("\\.", out);
    else
      fputc(*p, out);
  }
}

static void squid_write(FILE *out, const struct item *it) {
  const char *acl = it->action == ACTION_DENY ? "embargo_deny" : "embargo_log";
  switch (it->kind) {
  case ITEM_EXACT: fprintf(out, "acl %s dstdomain %s\n", acl, it->text); break;
  case ITEM_INCL: fprintf(out, "acl %s dstdomain .%s\n", acl, it->text); break;
  case ITEM_STRICT:
    fprintf(out, "acl %s_re dstdom_regex -i \\.", acl);
    squid_regex(out, it->text);
    fputs("$\n", out);
    break;
  default:
    fprintf(out, "acl %s_re dstdom_regex -i ^", acl);
    squid_regex(out, it->text);
    fputs("$\n", out);
    break;
  }
}

/* ---- the table ------------------------------------------------------------------ */

static const struct export_format formats[] = {
    {"rpz", ";", true, true, rpz_refuse, rpz_begin, rpz_write, rpz_end},
    {"unbound", "#", true, false, unbound_refuse, unbound_begin, unbound_write, no_end},
    {"dnsmasq", "#", true, false, dnsmasq_refuse, no_begin, dnsmasq_write, no_end},
    {"hosts", "#", true, false, hosts_refuse, no_begin, hosts_write, no_end},
    {"nft-set", "#", false, true, nft_refuse, nft_begin, nft_write, nft_end},
    {"squid", "#", true, false, squid_refuse, no_begin, squid_write, no_end},
};

const struct export_format *export_format_find(const char *name) {
  for (size_t i = 0; i < COUNT(formats); i++)
    if (strcmp(formats[i].name, name) == 0)
      return &formats[i];
  return NULL;
}

const char *export_format_names(void) {
  return "rpz|unbound|dnsmasq|hosts|nft-set|squid";
}
