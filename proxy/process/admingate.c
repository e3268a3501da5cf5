/* Host, Origin and POST checks of the admin endpoint. */
#include "proxy/process/admingate.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "filters/normalise.h"
#include "proxy/base/http1.h"

/* LOCAL's port and address (an IPv4-mapped IPv6 address as IPv4). */
static uint16_t local_port(const struct sockaddr *local) {
  return ntohs(local->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)local)->sin6_port
                                            : ((const struct sockaddr_in *)local)->sin_port);
}

static bool is_local_address(const struct host *h, const struct sockaddr *local) {
  if (local->sa_family == AF_INET)
    return h->kind == HOST_IPV4 &&
           memcmp(h->addr, &((const struct sockaddr_in *)local)->sin_addr, 4) == 0;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)local)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(a))
    return h->kind == HOST_IPV4 && memcmp(h->addr, &a->s6_addr[12], 4) == 0;
  return h->kind == HOST_IPV6 && memcmp(h->addr, a->s6_addr, 16) == 0;
}

/* Whether the authority S (LEN bytes) names this endpoint; DEFAULT_PORT
 * is what no port means (0: any). */
static bool names_endpoint(const char *s, size_t len, uint16_t default_port,
                           const struct sockaddr *local, const struct config_admin *cfg) {
  struct host h;
  if (authority_parse(s, len, default_port, &h) != 0)
    return false;
  if (h.port != 0 && h.port != local_port(local))
    return false;
  if (is_local_address(&h, local))
    return true;
  if (h.kind == HOST_NAME && strcmp(h.name, "localhost") == 0 && config_is_loopback(local))
    return true;
  for (size_t i = 0; i < cfg->nnames; i++)
    if (strcmp(h.name, cfg->names[i]) == 0)
      return true;
  return false;
}

/* The value of field NAME, or NULL; *LEN its length. */
static const char *field(const struct http_head *h, const char *name, size_t *len) {
  int i = http_head_find(h, name);
  if (i < 0)
    return NULL;
  *len = h->fields[i].value_len;
  return http_head_str(h, h->fields[i].value);
}

/* An Origin is "http://authority" of this endpoint; "null" (a sandboxed
 * or opaque origin) and any other scheme are foreign. */
static bool own_origin(const char *v, size_t len, const struct sockaddr *local,
                       const struct config_admin *cfg) {
  if (len < 7 || strncasecmp(v, "http://", 7) != 0)
    return false;
  return names_endpoint(v + 7, len - 7, 80, local, cfg);
}

/* The media type is application/json (parameters such as charset aside):
 * a type no cross-origin page can send without a preflight. */
static bool json_body(const char *v, size_t len) {
  static const char json[] = "application/json";
  size_t n = sizeof(json) - 1;
  return v != NULL && len >= n && strncasecmp(v, json, n) == 0 &&
         (len == n || v[n] == ';' || v[n] == ' ' || v[n] == '\t');
}

enum admingate_verdict admingate_check(const struct http_head *h, const struct sockaddr *local,
                                       const struct config_admin *cfg) {
  size_t len = 0;
  const char *v = field(h, "Host", &len);
  if (v == NULL && (h->major > 1 || (h->major == 1 && h->minor >= 1)))
    return ADMINGATE_NO_HOST;
  if (v != NULL && !names_endpoint(v, len, 0, local, cfg))
    return ADMINGATE_FOREIGN_HOST;
  if ((v = field(h, "Origin", &len)) != NULL && !own_origin(v, len, local, cfg))
    return ADMINGATE_FOREIGN_ORIGIN;
  if (strcmp(h->method, "POST") == 0) {
    v = field(h, "Content-Type", &len);
    if (!json_body(v, len))
      return ADMINGATE_SIMPLE_POST;
  }
  return ADMINGATE_OK;
}
