/* Top-level configuration keys, applied from the built-in default and then
 * from the file given with --config, which overrides only the keys it sets. */
#define _POSIX_C_SOURCE 200809L

#include "config/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs/ca.h"
#include "config/bundle.h"
#include "config/embedded.h"
#include "config/lists.h"
#include "config/load.h"
#include "filters/err.h"
#include "filters/policy.h"

#define DEFAULT_PATH "config/default.yaml"
#define BUILTIN_PREFIX "builtin:"
#define MS(s) ((uint64_t)(s) * 1000)

static int apply_listen(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir);
static int apply_resolvers(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                           const char *path, void *target, const struct directive *dir);
static int apply_clients(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                         const char *path, void *target, const struct directive *dir);
static int apply_ports(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                       const char *path, void *target, const struct directive *dir);
static int apply_timeouts(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                          const char *path, void *target, const struct directive *dir);
static int apply_limits(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir);
static int apply_tls(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                     const char *path, void *target, const struct directive *dir);
static int apply_dns(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                     const char *path, void *target, const struct directive *dir);
static int apply_internal(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                          const char *path, void *target, const struct directive *dir);
static int apply_internal_allow(struct loader *ld, const struct ydoc *d,
                                const struct ynode *value, const char *path, void *target,
                                const struct directive *dir);
static int apply_proxy_protocol_from(struct loader *ld, const struct ydoc *d,
                                     const struct ynode *value, const char *path, void *target,
                                     const struct directive *dir);
static int apply_transparent(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                             const char *path, void *target, const struct directive *dir);
static int apply_mark(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                      const char *path, void *target, const struct directive *dir);
static int apply_tls_ports(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                           const char *path, void *target, const struct directive *dir);
static int record_vendors(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                          const char *path, void *target, const struct directive *dir);
static int apply_certs(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                       const char *path, void *target, const struct directive *dir);
static int record_exceptions(struct loader *ld, const struct ydoc *d,
                             const struct ynode *value, const char *path, void *target,
                             const struct directive *dir);

static const struct directive top_keys[] = {
  {"listen", apply_listen, 0, 0, 0, false,
   "\"ip:port\" strings or {address: \"ip:port\", mode: proxy|intercept|tproxy} mappings"},
  {"resolvers", apply_resolvers, 0, 0, 0, false, "\"ip:port\" or \"[v6]:port\" strings"},
  {"clients", apply_clients, 0, 0, 0, false, "networks like 10.0.0.0/8"},
  {"connect_ports", apply_ports, 0, 0, 0, false, "ports from 1 to 65535"},
  {"timeouts", apply_timeouts, 0, 0, 0, false, "a mapping"},
  {"limits", apply_limits, 0, 0, 0, false, "a mapping"},
  {"tls_inspect", apply_tls, 0, 0, 0, false, "a mapping"},
  {"dns", apply_dns, 0, 0, 0, false, "a mapping"},
  {"transparent", apply_transparent, 0, 0, 0, false, "a mapping"},
  {"mark", apply_mark, 0, 0, 0, false, "a firewall mark from 0 to 4294967295"},
  {"internal", apply_internal, 0, 0, 0, false, "a mapping"},
  {"certs", apply_certs, 0, 0, 0, false, "a mapping"},
  {"log", load_string, offsetof(struct config, log_path), 0,
   sizeof(((struct config *)0)->log_path), false, "a file path or \"-\" for standard output"},
  {"user", load_string, offsetof(struct config, user), 0, sizeof(((struct config *)0)->user),
   false, "a user name (\"root\" to stay root)"},
  {"log_buffer", load_size, offsetof(struct config, log_buffer), 4096, 1u << 30, false,
   "a byte count from 4096 to 1073741824"},
  {"workers", load_size, offsetof(struct config, workers), 1, CONFIG_MAX_WORKERS, false,
   "a count from 1 to 64"},
  {"admin", load_admin, 0, 0, 0, false, "a mapping with listen, token_file and names"},
  {"readiness", load_readiness, 0, 0, 0, false, "a mapping with stale_lists"},
  {"access_log", load_bool, offsetof(struct config, access_log), 0, 0, false, "true or false"},
  {"monitor", load_bool, offsetof(struct config, monitor), 0, 0, false, "true or false"},
  {"profile", load_profile, 0, 0, 0, false, "us-commercial or us-federal"},
  {"vendors", record_vendors, 0, 0, 0, false, "vendor lists"},
  {"exceptions", record_exceptions, 0, 0, 0, false, "exceptions"},
  {"lists", load_lists, 0, 0, 0, false, "a mapping with url, pubkey, interval and cache_dir"},
  {"client_groups", load_record_groups, 0, 0, 0, false,
   "a mapping of group names to networks like lab: [10.9.0.0/16]"},
  {"client_profiles", load_record_client_profiles, 0, 0, 0, false,
   "{ profile: NAME, clients: [GROUP, ...] } entries"},
  {"proxy_protocol_from", apply_proxy_protocol_from, 0, 0, 0, false,
   "networks of the load balancers like 10.0.0.0/24"},
  {"upstream_proxy", load_upstream_proxy, 0, 0, 0, false,
   "a mapping with address, except and proxy_authorization_file"},
};

#define TIMEOUT(key, field)                                                                \
  {key, load_duration, offsetof(struct config_timeouts, field), 1, MS(24 * 3600), false,   \
   "a duration like 10s"}
static const struct directive timeout_keys[] = {
  TIMEOUT("request_head", request_head), TIMEOUT("resolve", resolve),
  TIMEOUT("connect", connect),           TIMEOUT("response", response),
  TIMEOUT("idle", idle),                 TIMEOUT("tunnel_idle", tunnel_idle),
  TIMEOUT("upstream_idle", upstream_idle), TIMEOUT("shutdown_grace", shutdown_grace),
};

#define LIMIT(key, field, lo, hi, expect)                                                  \
  {key, load_size, offsetof(struct config_limits, field), lo, hi, false, expect}
static const struct directive limit_keys[] = {
  LIMIT("max_head", max_head, 1024, 1u << 24, "a byte count from 1024 to 16777216"),
  LIMIT("max_connections", max_connections, 1, 1000000, "a count from 1 to 1000000"),
  LIMIT("max_connections_per_client", max_connections_per_client, 1, 1000000,
        "a count from 1 to 1000000"),
  LIMIT("buffer", buffer_high, 4096, 1u << 30, "a byte count from 4096 to 1073741824"),
  LIMIT("pool_per_host", pool_per_host, 0, 1024, "a count from 0 to 1024"),
  LIMIT("pool_total", pool_total, 0, 65536, "a count from 0 to 65536"),
};

#define TLS_ACTION(key, field)                                                             \
  {key, load_action, offsetof(struct config_tls, field), 0, 0, false, "allow, log or deny"}
static const struct directive tls_keys[] = {
  {"ports", apply_tls_ports, 0, 0, 0, false, "ports from 1 to 65535"},
  {"max_hello", load_size, offsetof(struct config_tls, max_hello), 64, 65536, false,
   "a byte count from 64 to 65536"},
  {"timeout", load_duration, offsetof(struct config_tls, timeout), 1, MS(24 * 3600), false,
   "a duration like 10s"},
  TLS_ACTION("on_no_sni", on_no_sni),       TLS_ACTION("on_ech", on_ech),
  TLS_ACTION("on_not_tls", on_not_tls),     TLS_ACTION("on_malformed", on_malformed),
  TLS_ACTION("on_too_large", on_too_large), TLS_ACTION("on_timeout", on_timeout),
  {"deny_with", load_deny_with, offsetof(struct config_tls, deny_with), 0, 0, false,
   "alert or page"},
};

#define TRANSPARENT_ACTION(key, field)                                                     \
  {key, load_action, offsetof(struct config_transparent, field), 0, 0, false,              \
   "allow, log or deny"}
static const struct directive transparent_keys[] = {
  {"timeout", load_duration, offsetof(struct config_transparent, timeout), 1, MS(24 * 3600),
   false, "a duration like 10s"},
  TRANSPARENT_ACTION("on_unknown", on_unknown),
  TRANSPARENT_ACTION("on_dst_mismatch", on_dst_mismatch),
};

/* One listener entry as a mapping. */
struct listen_spec {
  const struct ynode *address, *mode;
  bool proxy_protocol;
};

static const struct directive listen_keys[] = {
  {"address", load_node, offsetof(struct listen_spec, address), 0, 0, true,
   "\"ip:port\" or \"[v6]:port\""},
  {"mode", load_node, offsetof(struct listen_spec, mode), 0, 0, false,
   "proxy, intercept or tproxy"},
  {"proxy_protocol", load_bool, offsetof(struct listen_spec, proxy_protocol), 0, 0, false,
   "true or false"},
};

#define TTL(key, field, lo)                                                                \
  {key, load_duration, offsetof(struct config_dns, field), lo, MS(24 * 3600), false,       \
   lo ? "a duration from 1ms to 24h like 1h" : "a duration up to 24h like 30s"}
static const struct directive dns_keys[] = {
  TTL("min_ttl", min_ttl, 0), TTL("max_ttl", max_ttl, 1), TTL("negative_ttl", negative_ttl, 0),
  {"cache_entries", load_size, offsetof(struct config_dns, cache_entries), 0, 10000000, false,
   "a count from 0 to 10000000"},
  {"cache_memory", load_size, offsetof(struct config_dns, cache_memory), 0, UINT64_C(1) << 32,
   false, "a byte count from 0 to 4294967296"},
};

static int apply_ca_dir(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir);
static const struct directive certs_keys[] = {
  {"ca_dir", apply_ca_dir, 0, 0, 0, false, "a directory made by `embargo ca init`"},
  {"cache_entries", load_size, offsetof(struct config_certs, cache_entries), 1, 1000000, false,
   "a count from 1 to 1000000"},
};

static const struct directive internal_keys[] = {
  {"allow", apply_internal_allow, 0, 0, 0, false, "networks like 10.20.0.0/16"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define KEYS(path, table)                                                                          \
  { KEYS_CONFIG, path, table, COUNT(table) }
const struct key_table load_config_key_tables[] = {
    KEYS("", top_keys),
    KEYS("listen[]", listen_keys),
    KEYS("timeouts", timeout_keys),
    KEYS("limits", limit_keys),
    KEYS("tls_inspect", tls_keys),
    KEYS("transparent", transparent_keys),
    KEYS("dns", dns_keys),
    KEYS("certs", certs_keys),
    KEYS("internal", internal_keys),
    {KEYS_CONFIG, NULL, NULL, 0},
};

static int apply_timeouts(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                          const char *path, void *target, const struct directive *dir) {
  return load_map(ld, d, value, path, timeout_keys, COUNT(timeout_keys),
                  &ld->cfg->timeouts);
}

static int apply_limits(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir) {
  return load_map(ld, d, value, path, limit_keys, COUNT(limit_keys), &ld->cfg->limits);
}

static int apply_transparent(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                             const char *path, void *target, const struct directive *dir) {
  return load_map(ld, d, value, path, transparent_keys, COUNT(transparent_keys),
                  &ld->cfg->transparent);
}

static int apply_mark(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                      const char *path, void *target, const struct directive *dir) {
  const char *text = load_text(ld, d, value, path, dir->expect);
  uint64_t v;
  if (text == NULL)
    return EMB_ECONFIG;
  if (load_parse_uint(text, 0, UINT32_MAX, &v) != 0)
    return load_fail(ld, d, value, path, "expected %s, got '%s'", dir->expect, text);
  ld->cfg->mark = (uint32_t)v;
  return 0;
}

static int apply_tls(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                     const char *path, void *target, const struct directive *dir) {
  return load_map(ld, d, value, path, tls_keys, COUNT(tls_keys), &ld->cfg->tls);
}

/* TTL bounds are checked once the whole mapping is read, so a file may move
 * both in either order. */
static int apply_dns(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                     const char *path, void *target, const struct directive *dir) {
  const struct config_dns *dns = &ld->cfg->dns;
  int rc = load_map(ld, d, value, path, dns_keys, COUNT(dns_keys), &ld->cfg->dns);
  if (rc < 0 || dns->min_ttl <= dns->max_ttl)
    return rc;
  return load_fail(ld, d, value, path,
                   "min_ttl (%" PRIu64 "ms) is longer than max_ttl (%" PRIu64 "ms)",
                   dns->min_ttl, dns->max_ttl);
}

static int apply_certs(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                       const char *path, void *target, const struct directive *dir) {
  return load_map(ld, d, value, path, certs_keys, COUNT(certs_keys), &ld->cfg->certs);
}

/* Loads the CA at once, so that its errors point at the key. A relative
 * directory is taken from the config file's. */
static int apply_ca_dir(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir) {
  struct config_certs *certs = &ld->cfg->certs;
  char full[sizeof(certs->ca_dir)], why[900];
  struct ca *ca = NULL;
  const char *text = load_text(ld, d, value, path, dir->expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (text[0] == '/' || ld->dir == NULL)
    snprintf(full, sizeof(full), "%s", text);
  else if ((size_t)snprintf(full, sizeof(full), "%s/%s", ld->dir, text) >= sizeof(full))
    return load_fail(ld, d, value, path, "path too long");
  if (ca_load(full, (int64_t)time(NULL), &ca, why, sizeof(why)) != 0)
    return load_fail(ld, d, value, path, "%s", why);
  ca_free(certs->ca);
  certs->ca = ca;
  memcpy(certs->ca_dir, full, sizeof(full));
  return 0;
}

/* `deny_with: page` anywhere needs the CA that signs the page's certificates. */
static int check_page_has_ca(struct loader *ld) {
  if (ld->page_where[0] == '\0' || ld->cfg->certs.ca != NULL)
    return 0;
  snprintf(ld->err, ld->errsize,
           "%s: page needs a CA: set certs.ca_dir (make one with `embargo ca init --dir DIR`)",
           ld->page_where);
  return EMB_ECONFIG;
}

static int apply_internal(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                          const char *path, void *target, const struct directive *dir) {
  return load_map(ld, d, value, path, internal_keys, COUNT(internal_keys), ld->cfg);
}

int config_parse_endpoint(const char *text, struct sockaddr_storage *addr, char *why,
                          size_t size) {
  int rc = config_parse_sockaddr(text, addr);
  if (rc == EMB_EBADPORT)
    snprintf(why, size, "invalid port in '%s' (expected ip:port, port 1 to 65535)", text);
  else if (rc < 0)
    snprintf(why, size, "expected \"ip:port\" or \"[v6]:port\", got '%s'", text);
  return rc;
}

/* Reads item I of a list of "ip:port" strings into ADDR. */
static int read_sockaddr(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                         const char *path, struct sockaddr_storage *addr) {
  char why[LOAD_PATH_MAX + 96];
  const char *text = load_text(ld, d, item, path, "\"ip:port\" or \"[v6]:port\"");
  if (text == NULL)
    return EMB_ECONFIG;
  if (config_parse_endpoint(text, addr, why, sizeof(why)) < 0)
    return load_fail(ld, d, item, path, "%s", why);
  return 0;
}

const char *listen_mode_name(enum listen_mode m) {
  static const char *const names[] = {"proxy", "intercept", "tproxy"};
  return (unsigned)m < COUNT(names) ? names[m] : "?";
}

int listen_mode_parse(const char *s, enum listen_mode *out) {
  for (int m = LISTEN_PROXY; m <= LISTEN_TPROXY; m++) {
    if (strcmp(s, listen_mode_name((enum listen_mode)m)) == 0) {
      *out = (enum listen_mode)m;
      return 0;
    }
  }
  return EMB_ECONFIG;
}

/* A listener: "ip:port" (an explicit proxy) or {address, mode}. */
static int read_listener(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                         const char *path, struct config_listen *l) {
  struct listen_spec spec = {0};
  const struct ynode *addr = item;
  char sub[LOAD_PATH_MAX];

  l->mode = LISTEN_PROXY;
  l->proxy_protocol = false;
  if (ynode_kind(item) == YNODE_MAP) {
    if (load_map(ld, d, item, path, listen_keys, COUNT(listen_keys), &spec) < 0)
      return EMB_ECONFIG;
    addr = spec.address;
    l->proxy_protocol = spec.proxy_protocol;
    if (l->proxy_protocol && ld->proxy_protocol_where[0] == '\0') {
      struct origin o = ynode_origin(d, item);
      snprintf(ld->proxy_protocol_where, sizeof(ld->proxy_protocol_where), "%s:%u:%u: %s",
               o.file, o.line, o.col, load_path_key(sub, path, "proxy_protocol"));
    }
    if (spec.mode != NULL) {
      const char *m = load_text(ld, d, spec.mode, load_path_key(sub, path, "mode"),
                                "proxy, intercept or tproxy");
      if (m == NULL)
        return EMB_ECONFIG;
      if (listen_mode_parse(m, &l->mode) != 0)
        return load_fail(ld, d, spec.mode, load_path_key(sub, path, "mode"),
                         "expected proxy, intercept or tproxy, got '%s'", m);
    }
    path = load_path_key(sub, path, "address");
  }
  if (read_sockaddr(ld, d, addr, path, &l->addr) < 0)
    return EMB_ECONFIG;
  snprintf(l->text, sizeof(l->text), "%s", ynode_text(addr));
  return 0;
}

static int apply_listen(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir) {
  struct config *cfg = ld->cfg;
  char sub[LOAD_PATH_MAX];
  if (load_list(ld, d, value, path, dir->expect) < 0)
    return EMB_ECONFIG;
  size_t n = ynode_count(value);
  if (n == 0)
    return load_fail(ld, d, value, path,
                     "at least one listener is needed (an empty list serves nothing)");
  if (n > CONFIG_MAX_LISTEN)
    return load_fail(ld, d, value, path, "at most %d listeners", CONFIG_MAX_LISTEN);
  ld->proxy_protocol_where[0] = '\0'; /* these listeners replace any read before */
  for (size_t i = 0; i < n; i++) {
    const struct ynode *item = ynode_item(d, value, i);
    if (read_listener(ld, d, item, load_path_index(sub, path, i), &cfg->listen[i]) < 0)
      return EMB_ECONFIG;
  }
  cfg->nlisten = n;
  return 0;
}

static int apply_resolvers(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                           const char *path, void *target, const struct directive *dir) {
  char csv[sizeof(ld->cfg->resolvers)] = "";
  char sub[LOAD_PATH_MAX];
  size_t used = 0;
  if (load_list(ld, d, value, path, dir->expect) < 0)
    return EMB_ECONFIG;
  size_t n = ynode_count(value);
  if (n > CONFIG_MAX_RESOLVERS)
    return load_fail(ld, d, value, path, "at most %d resolvers", CONFIG_MAX_RESOLVERS);
  for (size_t i = 0; i < n; i++) {
    struct sockaddr_storage addr;
    const struct ynode *item = ynode_item(d, value, i);
    if (read_sockaddr(ld, d, item, load_path_index(sub, path, i), &addr) < 0)
      return EMB_ECONFIG;
    /* c-ares reads "ip:port" and "[v6]:port" joined by commas. */
    used += (size_t)snprintf(csv + used, sizeof(csv) - used, "%s%s", i ? "," : "",
                             ynode_text(item));
    if (used >= sizeof(csv))
      return load_fail(ld, d, item, sub, "resolver list too long");
  }
  memcpy(ld->cfg->resolvers, csv, sizeof(csv));
  return 0;
}

/* Adds ITEM of a network list to M; the data is the CIDR text, interned in
 * the policy so it names the matching entry in logs. */
static int add_network(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                       const char *path, struct netmatch *m) {
  struct cidr c;
  const char *text = load_text(ld, d, item, path, "a network like 10.0.0.0/8");
  if (text == NULL)
    return EMB_ECONFIG;
  if (cidr_parse(text, ynode_len(item), &c) < 0)
    return load_fail(ld, d, item, path,
                     "invalid network prefix '%s' (expected a CIDR like 10.0.0.0/8)", text);
  const char *data = policy_strdup(ld->cfg->policy, text);
  int rc = data != NULL ? netmatch_add(m, &c, (void *)data) : -ENOMEM;
  if (rc == EMB_EDUPLICATE)
    return load_fail(ld, d, item, path, "duplicate network '%s'", text);
  return rc;
}

/* Reads the list VALUE of networks into a new matcher that replaces *OUT
 * (owned), and their text, comma-separated, into TEXT (SIZE bytes). On error
 * *OUT and TEXT are untouched. */
static int read_networks(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                         const char *path, const char *expect, struct netmatch **out,
                         char *text, size_t size) {
  char sub[LOAD_PATH_MAX], joined[sizeof(ld->cfg->clients_text)] = "";
  size_t used = 0;
  int rc = 0;
  if (load_list(ld, d, value, path, expect) < 0)
    return EMB_ECONFIG;
  struct netmatch *m = netmatch_new();
  if (m == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < ynode_count(value) && rc == 0; i++) {
    const struct ynode *item = ynode_item(d, value, i);
    rc = add_network(ld, d, item, load_path_index(sub, path, i), m);
    if (rc == 0 && used < sizeof(joined))
      used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s%s", i ? ", " : "",
                               ynode_text(item));
  }
  if (rc < 0) {
    netmatch_free(m);
    return rc;
  }
  netmatch_free(*out);
  *out = m;
  snprintf(text, size, "%s", joined);
  return 0;
}

static int apply_clients(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                         const char *path, void *target, const struct directive *dir) {
  struct config *cfg = ld->cfg;
  return read_networks(ld, d, value, path, dir->expect, &cfg->clients, cfg->clients_text,
                       sizeof(cfg->clients_text));
}

static int apply_proxy_protocol_from(struct loader *ld, const struct ydoc *d,
                                     const struct ynode *value, const char *path, void *target,
                                     const struct directive *dir) {
  struct config *cfg = ld->cfg;
  return read_networks(ld, d, value, path, dir->expect, &cfg->proxy_protocol_from,
                       cfg->proxy_protocol_from_text, sizeof(cfg->proxy_protocol_from_text));
}

/* A listener with proxy_protocol needs the sources that may send it: a
 * header from anyone else would let them pick their own client address. */
static int check_proxy_protocol(struct loader *ld) {
  const struct netmatch *from = ld->cfg->proxy_protocol_from;
  if (ld->proxy_protocol_where[0] == '\0' || (from != NULL && netmatch_count(from) > 0))
    return 0;
  snprintf(ld->err, ld->errsize,
           "%s: needs proxy_protocol_from: the networks of the load balancers that may send "
           "the header (a header from any other source is refused)",
           ld->proxy_protocol_where);
  return EMB_ECONFIG;
}

static int apply_internal_allow(struct loader *ld, const struct ydoc *d,
                                const struct ynode *value, const char *path, void *target,
                                const struct directive *dir) {
  struct config *cfg = ld->cfg;
  return read_networks(ld, d, value, path, dir->expect, &cfg->internal_allow,
                       cfg->internal_allow_text, sizeof(cfg->internal_allow_text));
}

/* Reads a list of distinct ports into PORTS (CONFIG_MAX_PORTS) and *N; on
 * error both are untouched. */
static int read_ports(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                      const char *path, const char *expect, uint16_t *ports, size_t *n) {
  uint16_t tmp[CONFIG_MAX_PORTS];
  char sub[LOAD_PATH_MAX];
  if (load_list(ld, d, value, path, expect) < 0)
    return EMB_ECONFIG;
  size_t count = ynode_count(value);
  if (count > CONFIG_MAX_PORTS)
    return load_fail(ld, d, value, path, "at most %d ports", CONFIG_MAX_PORTS);
  for (size_t i = 0; i < count; i++) {
    uint64_t port;
    const struct ynode *item = ynode_item(d, value, i);
    load_path_index(sub, path, i);
    const char *text = ynode_kind(item) == YNODE_SCALAR ? ynode_text(item) : "";
    if (load_parse_uint(text, 1, 65535, &port) < 0)
      return load_fail(ld, d, item, sub, "expected a port from 1 to 65535");
    for (size_t j = 0; j < i; j++) {
      if (tmp[j] == port)
        return load_fail(ld, d, item, sub, "duplicate port %u", (unsigned)port);
    }
    tmp[i] = (uint16_t)port;
  }
  memcpy(ports, tmp, count * sizeof(tmp[0]));
  *n = count;
  return 0;
}

static int apply_ports(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                       const char *path, void *target, const struct directive *dir) {
  return read_ports(ld, d, value, path, dir->expect, ld->cfg->connect_ports,
                    &ld->cfg->nconnect_ports);
}

static int apply_tls_ports(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                           const char *path, void *target, const struct directive *dir) {
  return read_ports(ld, d, value, path, dir->expect, ld->cfg->tls.ports, &ld->cfg->tls.nports);
}

static int record_vendors(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                          const char *path, void *target, const struct directive *dir) {
  ld->vendors_doc = d;
  ld->vendors = value;
  ld->vendors_dir = ld->dir;
  return 0;
}

static int record_exceptions(struct loader *ld, const struct ydoc *d,
                             const struct ynode *value, const char *path, void *target,
                             const struct directive *dir) {
  ld->exceptions_doc = d;
  ld->exceptions = value;
  return 0;
}

/* Applies the top-level keys of D (an empty document sets nothing). */
static int apply_doc(struct loader *ld, const struct ydoc *d, const char *dir) {
  const struct ynode *root = ydoc_root(d);
  ld->dir = dir;
  if (root == NULL || ynode_kind(root) == YNODE_NULL)
    return 0;
  return load_map(ld, d, root, "", top_keys, COUNT(top_keys), ld->cfg);
}

static int load_builtin_doc(struct ydoc **out, char *err, size_t errsize) {
  const struct embedded_file *f = embedded_find(DEFAULT_PATH);
  if (f == NULL) {
    snprintf(err, errsize, "%s%s: not compiled in", BUILTIN_PREFIX, DEFAULT_PATH);
    return EMB_ECONFIG;
  }
  return ydoc_load(BUILTIN_PREFIX DEFAULT_PATH, f->data, f->len, out, err, errsize);
}

/* The built-in default is a source of every snapshot, like the file. */
static int note_builtin(struct loader *ld) {
  const struct embedded_file *f = embedded_find(DEFAULT_PATH);
  return f != NULL ? load_note_source(ld, BUILTIN_PREFIX DEFAULT_PATH, f->data, f->len) : 0;
}

/* Returns a copy of PATH's directory ("." for a bare name); caller frees. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return strdup(".");
  size_t len = slash == path ? 1 : (size_t)(slash - path);
  char *dir = malloc(len + 1);
  if (dir != NULL) {
    memcpy(dir, path, len);
    dir[len] = '\0';
  }
  return dir;
}

/* Parses PATH and applies it over what LD holds. *doc receives the document,
 * *dir its directory: both must outlive load_policy. */
static int apply_file(struct loader *ld, const char *path, struct ydoc **doc, char **dir) {
  char *data = NULL;
  size_t len = 0;
  int rc = load_read_file(path, &data, &len);
  if (rc < 0) {
    snprintf(ld->err, ld->errsize, "%s: cannot read: %s", path, strerror(-rc));
    return rc;
  }
  rc = load_note_source(ld, path, data, len);
  if (rc == 0)
    rc = ydoc_load(path, data, len, doc, ld->err, ld->errsize);
  free(data);
  if (rc < 0)
    return rc;
  *dir = dir_of(path);
  if (*dir == NULL)
    return -ENOMEM;
  return apply_doc(ld, *doc, *dir);
}

/* Loads the built-in default, then PATH over it if not NULL, into CFG; the
 * vendor lists from FETCHED if not NULL, else from the cached bundle. */
static int load_config(struct config *cfg, const char *path, const struct bundle *fetched,
                       char *err, size_t errsize) {
  struct config tmp = {0};
  struct loader ld = {.cfg = &tmp, .err = err, .errsize = errsize};
  struct ydoc *builtin = NULL, *user = NULL;
  char *dir = NULL;
  int rc = -ENOMEM;
  snprintf(err, errsize, "out of memory");
  tmp.policy = policy_new();
  if (tmp.policy == NULL)
    goto cleanup;
  rc = load_builtin_doc(&builtin, err, errsize);
  if (rc == 0)
    rc = note_builtin(&ld);
  if (rc == 0)
    rc = apply_doc(&ld, builtin, NULL);
  if (rc == 0 && path != NULL)
    rc = apply_file(&ld, path, &user, &dir);
  if (rc == 0)
    rc = load_check_admin(&ld);
  if (rc == 0)
    rc = load_lists_bundle(&ld, fetched);
  if (rc == 0)
    rc = load_policy(&ld);
  if (rc == 0)
    rc = check_page_has_ca(&ld);
  if (rc == 0)
    rc = check_proxy_protocol(&ld);
  if (rc == 0)
    snprintf(tmp.source, sizeof(tmp.source), "%s", path != NULL ? path : "(built-in)");
cleanup:
  ydoc_free(builtin);
  ydoc_free(user);
  bundle_free(ld.own_bundle);
  free(dir);
  if (rc < 0) {
    config_free(&tmp);
    return rc;
  }
  *cfg = tmp;
  if (errsize > 0)
    err[0] = '\0';
  return 0;
}

int config_load_default(struct config *cfg, char *err, size_t errsize) {
  return load_config(cfg, NULL, NULL, err, errsize);
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t errsize) {
  return load_config(cfg, path, NULL, err, errsize);
}

int config_load_bundle(struct config *cfg, const char *path, const struct bundle *bundle,
                       char *err, size_t errsize) {
  return load_config(cfg, path, bundle, err, errsize);
}

int load_policy(struct loader *ld) {
  policy_set_monitor(ld->cfg->policy, ld->cfg->monitor);
  int rc = policy_set_profile(ld->cfg->policy, ld->cfg->profile);
  if (rc == 0)
    rc = load_groups(ld);
  if (rc == 0)
    rc = load_vendors(ld);
  if (rc == 0)
    rc = load_exceptions(ld);
  if (rc == 0)
    rc = load_set_version(ld);
  return rc;
}

int config_check_bundle(const struct bundle *b, char *err, size_t errsize) {
  struct config tmp;
  struct loader ld = {.cfg = &tmp, .err = err, .errsize = errsize, .bundle = b};
  int rc = 0;
  memset(&tmp, 0, sizeof(tmp));
  if ((tmp.policy = policy_new()) == NULL) {
    snprintf(err, errsize, "out of memory");
    return -ENOMEM;
  }
  for (size_t i = 0; rc == 0 && i < b->nfiles; i++)
    rc = load_bundle_list(&ld, &b->files[i], NULL);
  config_free(&tmp);
  return rc;
}

int config_load_catalogue(const char *profile, struct policy **out, char *err, size_t errsize) {
  struct config tmp = {0};
  struct loader ld = {.cfg = &tmp, .err = err, .errsize = errsize};
  int rc = -ENOMEM;
  snprintf(err, errsize, "out of memory");
  snprintf(tmp.profile, sizeof(tmp.profile), "%s", profile != NULL ? profile : profile_default());
  if ((tmp.policy = policy_new()) != NULL)
    rc = policy_set_profile(tmp.policy, tmp.profile);
  if (rc == 0)
    rc = load_builtin_lists(&ld, NULL);
  if (rc < 0) {
    policy_unref(tmp.policy);
    return rc;
  }
  *out = tmp.policy;
  return 0;
}

void config_free(struct config *cfg) {
  if (cfg == NULL)
    return;
  netmatch_free(cfg->clients);
  netmatch_free(cfg->internal_allow);
  netmatch_free(cfg->proxy_protocol_from);
  cfg->proxy_protocol_from = NULL;
  config_upstream_free(&cfg->upstream_proxy);
  ca_free(cfg->certs.ca);
  cfg->certs.ca = NULL;
  policy_unref(cfg->policy);
  cfg->clients = NULL;
  cfg->internal_allow = NULL;
  cfg->policy = NULL;
}
