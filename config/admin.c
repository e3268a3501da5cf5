/* The `admin` settings: where the admin endpoint listens, the bearer token
 * it requires and the names it answers to; and the `readiness` settings
 * its /readyz applies. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/load.h"
#include "filters/err.h"
#include "filters/normalise.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct admin_spec {
  const struct ynode *listen, *token_file, *names;
};

static const struct directive admin_keys[] = {
    {"listen", load_node, offsetof(struct admin_spec, listen), 0, 0, false,
     "\"ip:port\" like 127.0.0.1:9090"},
    {"token_file", load_node, offsetof(struct admin_spec, token_file), 0, 0, false,
     "a file holding the bearer token"},
    {"names", load_node, offsetof(struct admin_spec, names), 0, 0, false,
     "host names (or addresses) clients reach the endpoint by, like embargo.example.internal"},
};

/* Reads admin.names: each a host name or IP address, kept normalised. */
static int read_names(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                      const char *path, struct config_admin *a) {
  char sub[LOAD_PATH_MAX];
  if (load_list(ld, d, n, path, admin_keys[2].expect) < 0)
    return EMB_ECONFIG;
  if (ynode_count(n) > CONFIG_MAX_ADMIN_NAMES)
    return load_fail(ld, d, n, path, "at most %d names", CONFIG_MAX_ADMIN_NAMES);
  for (size_t i = 0; i < ynode_count(n); i++) {
    const struct ynode *item = ynode_item(d, n, i);
    const char *text = load_text(ld, d, item, load_path_index(sub, path, i), admin_keys[2].expect);
    struct host h;
    if (text == NULL)
      return EMB_ECONFIG;
    if (host_normalise(text, ynode_len(item), &h) != 0)
      return load_fail(ld, d, item, sub,
                       "expected a host name or an IP address without a port, "
                       "got '%s'",
                       text);
    snprintf(a->names[a->nnames++], sizeof(a->names[0]), "%s", h.name);
  }
  return 0;
}

/* Reads the token: the file's content less trailing white space. */
static int read_token(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                      const char *path, struct config_admin *a) {
  char *data = NULL;
  size_t len = 0;
  const char *file = load_text(ld, d, n, path, admin_keys[1].expect);
  if (file == NULL)
    return EMB_ECONFIG;
  char full[1024];
  if (file[0] != '/' && ld->dir != NULL)
    snprintf(full, sizeof(full), "%s/%s", ld->dir, file);
  else
    snprintf(full, sizeof(full), "%s", file);
  int rc = load_read_file(full, &data, &len);
  if (rc < 0)
    return load_fail(ld, d, n, path, "cannot read '%s': %s", full, strerror(-rc));
  while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ' ||
                     data[len - 1] == '\t'))
    len--;
  rc = 0;
  if (len < 16 || len >= sizeof(a->token) || memchr(data, '\n', len) != NULL)
    rc = load_fail(ld, d, n, path, "'%s' must hold one token of 16 to %zu characters", file,
                   sizeof(a->token) - 1);
  else
    memcpy(a->token, data, len), a->token[len] = '\0';
  snprintf(a->token_file, sizeof(a->token_file), "%s", full);
  free(data);
  return rc;
}

int load_admin(struct loader *ld, const struct ydoc *d, const struct ynode *value, const char *path,
               void *target, const struct directive *dir) {
  struct admin_spec spec = {0};
  struct config_admin *a = &ld->cfg->admin;
  char sub[LOAD_PATH_MAX];
  int rc;
  memset(a, 0, sizeof(*a));
  if (value == NULL || ynode_kind(value) == YNODE_NULL)
    return 0; /* `admin:` with nothing: off */
  if ((rc = load_map(ld, d, value, path, admin_keys, COUNT(admin_keys), &spec)) < 0)
    return rc;
  if (spec.names != NULL && read_names(ld, d, spec.names, load_path_key(sub, path, "names"), a) < 0)
    return EMB_ECONFIG;
  if (spec.token_file != NULL &&
      read_token(ld, d, spec.token_file, load_path_key(sub, path, "token_file"), a) < 0)
    return EMB_ECONFIG;
  if (spec.listen == NULL && (spec.token_file != NULL || spec.names != NULL))
    return load_fail(ld, d, value, path, "%s needs listen",
                     spec.token_file != NULL ? "token_file" : "names");
  if (spec.listen == NULL)
    return 0;
  const char *text =
      load_text(ld, d, spec.listen, load_path_key(sub, path, "listen"), admin_keys[0].expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (config_parse_sockaddr(text, &a->listen) < 0)
    return load_fail(ld, d, spec.listen, sub, "expected %s, got '%s'", admin_keys[0].expect, text);
  struct origin o = ynode_origin(d, spec.listen);
  snprintf(a->where, sizeof(a->where), "%s:%u:%u", o.file, o.line, o.col);
  snprintf(a->listen_text, sizeof(a->listen_text), "%s", text);
  a->enabled = true;
  if (!config_is_loopback((const struct sockaddr *)&a->listen) && a->token[0] == '\0')
    return load_fail(ld, d, spec.listen, sub,
                     "'%s' is reachable beyond loopback: set admin.token_file", text);
  return 0;
}

/* A `stale_lists` value. */
static int load_stale_lists(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                            const char *path, void *target, const struct directive *dir) {
  static const struct {
    const char *name;
    enum stale_lists value;
  } names[] = {{"warn", STALE_LISTS_WARN}, {"unready", STALE_LISTS_UNREADY}};
  const char *text = load_text(ld, d, value, path, dir->expect);
  if (text == NULL)
    return EMB_ECONFIG;
  for (size_t i = 0; i < COUNT(names); i++) {
    if (strcmp(text, names[i].name) == 0) {
      *(enum stale_lists *)((char *)target + dir->offset) = names[i].value;
      return 0;
    }
  }
  return load_fail(ld, d, value, path, "expected %s, got '%s'", dir->expect, text);
}

static const struct directive readiness_keys[] = {
    {"stale_lists", load_stale_lists, offsetof(struct config_readiness, stale_lists), 0, 0, false,
     "warn or unready"},
};

const struct key_table load_admin_key_tables[] = {
    {KEYS_CONFIG, "admin", admin_keys, COUNT(admin_keys)},
    {KEYS_CONFIG, "readiness", readiness_keys, COUNT(readiness_keys)},
    {KEYS_CONFIG, NULL, NULL, 0},
};

int load_readiness(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                   const char *path, void *target, const struct directive *dir) {
  if (value == NULL || ynode_kind(value) == YNODE_NULL)
    return 0;
  return load_map(ld, d, value, path, readiness_keys, COUNT(readiness_keys), &ld->cfg->readiness);
}

int load_check_admin(struct loader *ld) {
  const struct config *cfg = ld->cfg;
  for (size_t i = 0; cfg->admin.enabled && i < cfg->nlisten; i++) {
    if (config_same_socket((const struct sockaddr *)&cfg->admin.listen,
                           (const struct sockaddr *)&cfg->listen[i].addr)) {
      snprintf(ld->err, ld->errsize, "%s: admin.listen: %s is the proxy listener %s",
               cfg->admin.where, cfg->admin.listen_text, cfg->listen[i].text);
      return EMB_ECONFIG;
    }
  }
  return 0;
}

bool config_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

static bool is_any(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

bool config_same_socket(const struct sockaddr *a, const struct sockaddr *b) {
  uint16_t pa = a->sa_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port
                                        : ((const struct sockaddr_in6 *)a)->sin6_port;
  uint16_t pb = b->sa_family == AF_INET ? ((const struct sockaddr_in *)b)->sin_port
                                        : ((const struct sockaddr_in6 *)b)->sin6_port;
  if (pa != pb || a->sa_family != b->sa_family)
    return false;
  if (is_any(a) || is_any(b))
    return true;
  if (a->sa_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}
