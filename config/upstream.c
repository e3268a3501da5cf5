/* The `upstream_proxy` settings: the site's HTTP proxy (its parent) that
 * allowed traffic goes through, the destinations that go direct instead
 * (`except`: host patterns and networks), and the Proxy-Authorization
 * value sent to it, read from a file. Which destination goes where is
 * config_upstream_direct's. */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/load.h"
#include "filters/dommatch.h"
#include "filters/err.h"
#include "filters/normalise.h"

#define COUNT(a)   (sizeof(a) / sizeof((a)[0]))
#define EXCEPT_MAX 1024

struct upstream_spec {
  const struct ynode *address, *except, *authorization;
};

static const struct directive upstream_keys[] = {
    {"address", load_node, offsetof(struct upstream_spec, address), 0, 0, true,
     "\"host:port\" like proxy.example.internal:3128 or 10.0.0.8:3128"},
    {"except", load_node, offsetof(struct upstream_spec, except), 0, 0, false,
     "host patterns like .example.internal and networks like 10.0.0.0/8"},
    {"proxy_authorization_file", load_node, offsetof(struct upstream_spec, authorization), 0, 0,
     false, "a file holding the Proxy-Authorization value, like Basic dXNlcjpwYXNz"},
};

const struct key_table load_upstream_key_tables[] = {
    {KEYS_CONFIG, "upstream_proxy", upstream_keys, COUNT(upstream_keys)},
    {KEYS_CONFIG, NULL, NULL, 0},
};

/* The parent's "host:port": a name or an IP literal, and a port. */
static int read_address(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                        const char *path, struct config_upstream_proxy *u) {
  const char *text = load_text(ld, d, n, path, upstream_keys[0].expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (strchr(text, '/') != NULL || authority_parse(text, ynode_len(n), 0, &u->host) != 0 ||
      u->host.port == 0)
    return load_fail(ld, d, n, path, "expected %s, got '%s'", upstream_keys[0].expect, text);
  host_format(&u->host, u->address, sizeof(u->address));
  return 0;
}

/* An `except` network ("10.0.0.0/8"), or an IP address as its own /32 or
 * /128. */
static int add_except_net(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                          const char *path, const char *text, struct config_upstream_proxy *u) {
  char cidr[HOST_NAME_MAX_LEN + 8] = "";
  struct host h;
  struct cidr c;
  int rc;

  if (strchr(text, '/') != NULL)
    snprintf(cidr, sizeof(cidr), "%s", text);
  else if (host_normalise(text, strlen(text), &h) == 0)
    snprintf(cidr, sizeof(cidr), "%s/%d", h.name, h.kind == HOST_IPV6 ? 128 : 32);
  if (cidr_parse(cidr, strlen(cidr), &c) != 0)
    return load_fail(ld, d, item, path, "invalid network '%s' (expected a CIDR like 10.0.0.0/8)",
                     text);
  rc = netmatch_add(u->except_nets, &c, (void *)"except");
  return rc == EMB_EDUPLICATE ? load_fail(ld, d, item, path, "duplicate network '%s'", text) : rc;
}

/* An `except` host pattern, in the syntax of the vendor lists
 * (".example.internal", "*.example.internal", "host.example.internal"). */
static int add_except_host(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                           const char *path, const char *text, struct config_upstream_proxy *u) {
  char pattern[HOST_NAME_MAX_LEN + 2];
  size_t len = strlen(text);
  const char *why = NULL;
  int rc;

  if (len >= sizeof(pattern))
    return load_fail(ld, d, item, path, "pattern too long");
  for (size_t i = 0; i <= len; i++)
    pattern[i] = (char)tolower((unsigned char)text[i]);
  if (dommatch_check(pattern, len, &why) != 0)
    return load_fail(ld, d, item, path, "invalid host pattern '%s': %s", text, why);
  rc = dommatch_add(u->except_hosts, pattern, len, (void *)"except");
  return rc == EMB_EDUPLICATE ? load_fail(ld, d, item, path, "duplicate pattern '%s'", text) : rc;
}

/* Whether TEXT is written as a network or an IP address rather than a
 * host pattern. */
static bool is_network(const char *text) {
  struct host h;
  return strchr(text, '/') != NULL ||
         (host_normalise(text, strlen(text), &h) == 0 && h.kind != HOST_NAME);
}

static int read_except(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                       const char *path, struct config_upstream_proxy *u) {
  char sub[LOAD_PATH_MAX];
  size_t used = 0;
  if (load_list(ld, d, n, path, upstream_keys[1].expect) < 0)
    return EMB_ECONFIG;
  if (ynode_count(n) > EXCEPT_MAX)
    return load_fail(ld, d, n, path, "at most %d entries", EXCEPT_MAX);
  for (size_t i = 0; i < ynode_count(n); i++) {
    const struct ynode *item = ynode_item(d, n, i);
    const char *text =
        load_text(ld, d, item, load_path_index(sub, path, i), upstream_keys[1].expect);
    int rc = text == NULL       ? EMB_ECONFIG
             : is_network(text) ? add_except_net(ld, d, item, sub, text, u)
                                : add_except_host(ld, d, item, sub, text, u);
    if (rc < 0)
      return rc;
    if (used < sizeof(u->except_text))
      used += (size_t)snprintf(u->except_text + used, sizeof(u->except_text) - used, "%s%s",
                               i ? ", " : "", ynode_text(item));
  }
  return 0;
}

/* The Proxy-Authorization value: the file's one line (trailing white space
 * cut), printable ASCII, at most CONFIG_MAX_PROXY_AUTH - 1 characters. */
static int read_authorization(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                              const char *path, struct config_upstream_proxy *u) {
  char *data = NULL;
  size_t len = 0;
  int rc;
  const char *file = load_text(ld, d, n, path, upstream_keys[2].expect);
  if (file == NULL)
    return EMB_ECONFIG;
  if (file[0] != '/' && ld->dir != NULL)
    snprintf(u->authorization_file, sizeof(u->authorization_file), "%s/%s", ld->dir, file);
  else
    snprintf(u->authorization_file, sizeof(u->authorization_file), "%s", file);
  if ((rc = load_read_file(u->authorization_file, &data, &len)) < 0)
    return load_fail(ld, d, n, path, "cannot read '%s': %s", u->authorization_file, strerror(-rc));
  while (len > 0 && isspace((unsigned char)data[len - 1]))
    len--;
  rc = len > 0 && len < sizeof(u->authorization) ? 0 : EMB_ECONFIG;
  for (size_t i = 0; rc == 0 && i < len; i++)
    if ((unsigned char)data[i] < 0x20 || (unsigned char)data[i] > 0x7e)
      rc = EMB_ECONFIG; /* a header value: one line, no control byte */
  if (rc == 0)
    memcpy(u->authorization, data, len), u->authorization[len] = '\0';
  free(data);
  if (rc != 0)
    return load_fail(ld, d, n, path,
                     "'%s' must hold one line of 1 to %zu printable characters, the whole "
                     "Proxy-Authorization value (like Basic dXNlcjpwYXNz)",
                     file, sizeof(u->authorization) - 1);
  return 0;
}

int load_upstream_proxy(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                        const char *path, void *target, const struct directive *dir) {
  struct config_upstream_proxy *u = &ld->cfg->upstream_proxy;
  struct upstream_spec spec = {0};
  char sub[LOAD_PATH_MAX];
  int rc;

  config_upstream_free(u); /* a file's replaces the built-in one */
  if (value == NULL || ynode_kind(value) == YNODE_NULL)
    return 0; /* `upstream_proxy:` with nothing: direct */
  if ((rc = load_map(ld, d, value, path, upstream_keys, COUNT(upstream_keys), &spec)) < 0)
    return rc;
  if ((u->except_hosts = dommatch_new()) == NULL || (u->except_nets = netmatch_new()) == NULL)
    return -ENOMEM;
  if ((rc = read_address(ld, d, spec.address, load_path_key(sub, path, "address"), u)) < 0)
    return rc;
  if (spec.except != NULL &&
      (rc = read_except(ld, d, spec.except, load_path_key(sub, path, "except"), u)) < 0)
    return rc;
  if (spec.authorization != NULL &&
      (rc = read_authorization(ld, d, spec.authorization,
                               load_path_key(sub, path, "proxy_authorization_file"), u)) < 0)
    return rc;
  u->enabled = true;
  return 0;
}

/* Whether ADDR (AF_INET or AF_INET6, an IPv4-mapped address as IPv4) is in
 * an `except` network. */
static bool except_net(const struct config_upstream_proxy *u, int family, const uint8_t *addr) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == AF_INET6 && memcmp(addr, mapped, 12) == 0)
    return netmatch_lookup(u->except_nets, AF_INET, addr + 12, NULL) != NULL;
  return netmatch_lookup(u->except_nets, family, addr, NULL) != NULL;
}

bool config_upstream_direct(const struct config_upstream_proxy *u, const struct host *dest,
                            const struct sockaddr *orig_dst) {
  if (orig_dst != NULL && orig_dst->sa_family == AF_INET &&
      except_net(u, AF_INET, (const uint8_t *)&((const struct sockaddr_in *)orig_dst)->sin_addr))
    return true;
  if (orig_dst != NULL && orig_dst->sa_family == AF_INET6 &&
      except_net(u, AF_INET6, (const uint8_t *)&((const struct sockaddr_in6 *)orig_dst)->sin6_addr))
    return true;
  if (dest == NULL)
    return false;
  if (dest->kind == HOST_NAME)
    return dommatch_lookup(u->except_hosts, dest->name, dest->len) != NULL;
  return except_net(u, dest->kind == HOST_IPV4 ? AF_INET : AF_INET6, dest->addr);
}

void config_upstream_free(struct config_upstream_proxy *u) {
  dommatch_free(u->except_hosts);
  netmatch_free(u->except_nets);
  memset(u, 0, sizeof(*u));
}
