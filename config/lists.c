/* The `lists` settings and the signed list bundle the vendor lists are read
 * from: the cached one in lists.cache_dir (checked again on every load), or
 * one the caller has just fetched and checked. `builtin: NAME` takes NAME.yaml
 * from that bundle when it has one, and the compiled-in list otherwise. */
#include "config/lists.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/bundle.h"
#include "config/load.h"
#include "filters/err.h"
#include "filters/policy.h"
#include "filters/timefmt.h"

#define DAY_MS (24u * 3600 * 1000)

struct lists_spec {
  const struct ynode *url, *pubkey, *interval, *cache_dir, *ca_file, *proxy;
};

#define NODE(key, field, required, expect)                                                         \
  { key, load_node, offsetof(struct lists_spec, field), 0, 0, required, expect }
static const struct directive lists_keys[] = {
    NODE("url", url, false, "an https:// URL of a bundle made by `embargo lists sign`"),
    NODE("pubkey", pubkey, true, "a file holding the bundle signer's public key"),
    NODE("interval", interval, false, "a duration from 1s to 720h like 6h"),
    NODE("cache_dir", cache_dir, true, "a directory for the last good bundle"),
    NODE("ca_file", ca_file, false, "a file of PEM certificates"),
    NODE("proxy", proxy, false, "an http://host:port URL"),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const struct key_table load_lists_key_tables[] = {
    {KEYS_CONFIG, "lists", lists_keys, COUNT(lists_keys)},
    {KEYS_CONFIG, NULL, NULL, 0},
};

bool lists_cache_path(const char *dir, char *buf, size_t size) {
  return (size_t)snprintf(buf, size, "%s/%s", dir, LISTS_CACHE_FILE) < size;
}

/* ---- URLs ------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static int bad_url(char *why, size_t size, const char *fmt,
                                                         ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, size, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

static bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

/* The authority HOSTPORT (LEN bytes) into OUT's host and port. */
static int split_authority(const char *a, size_t len, struct lists_url *out, char *why,
                           size_t size) {
  const char *host = a, *colon;
  size_t hlen;
  unsigned char buf[16];
  if (memchr(a, '@', len) != NULL)
    return bad_url(why, size, "user information in a URL is not supported");
  if (len > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', len);
    if (close == NULL)
      return bad_url(why, size, "unbalanced '[' in the host");
    host = a + 1;
    hlen = (size_t)(close - host);
    colon = close + 1 < a + len ? close + 1 : NULL;
    if (colon != NULL && *colon != ':')
      return bad_url(why, size, "expected ':' after ']'");
  } else {
    colon = memchr(a, ':', len);
    hlen = colon != NULL ? (size_t)(colon - a) : len;
    for (size_t i = 0; i < hlen; i++)
      if (!is_host_char(a[i]))
        return bad_url(why, size, "invalid character in the host name");
  }
  if (hlen == 0 || hlen >= sizeof(out->host))
    return bad_url(why, size, "missing or overlong host");
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  if (host != a && inet_pton(AF_INET6, out->host, buf) != 1)
    return bad_url(why, size, "'%s' is not an IPv6 address", out->host);
  if (colon != NULL) {
    size_t plen = (size_t)(a + len - colon - 1);
    uint64_t port;
    char text[8];
    if (plen == 0 || plen >= sizeof(text))
      return bad_url(why, size, "invalid port");
    memcpy(text, colon + 1, plen);
    text[plen] = '\0';
    if (load_parse_uint(text, 1, 65535, &port) != 0)
      return bad_url(why, size, "invalid port '%s' (1 to 65535)", text);
    snprintf(out->port, sizeof(out->port), "%u", (unsigned)port);
  }
  return 0;
}

int lists_url_split(const char *url, const char *scheme, struct lists_url *out, char *why,
                    size_t whysize) {
  size_t slen = strlen(scheme), alen;
  const char *authority, *slash;
  memset(out, 0, sizeof(*out));
  if (strncmp(url, scheme, slen) != 0 || strncmp(url + slen, "://", 3) != 0)
    return bad_url(why, whysize, "expected a %s:// URL", scheme);
  out->tls = strcmp(scheme, "https") == 0;
  snprintf(out->port, sizeof(out->port), "%s", out->tls ? "443" : "80");
  authority = url + slen + 3;
  slash = strchr(authority, '/');
  alen = slash != NULL ? (size_t)(slash - authority) : strlen(authority);
  if (alen >= sizeof(out->hostport))
    return bad_url(why, whysize, "host too long");
  memcpy(out->hostport, authority, alen);
  out->hostport[alen] = '\0';
  if (split_authority(authority, alen, out, why, whysize) != 0)
    return -EINVAL;
  if (slash == NULL)
    slash = "/";
  if (!out->tls && strcmp(slash, "/") != 0)
    return bad_url(why, whysize, "a proxy URL has no path");
  for (const char *p = slash; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '#')
      return bad_url(why, whysize,
                     "the path holds a space, a control character, '#' or a "
                     "non-ASCII byte");
  if (strlen(slash) >= sizeof(out->path))
    return bad_url(why, whysize, "path too long");
  snprintf(out->path, sizeof(out->path), "%s", slash);
  return 0;
}

/* ---- the `lists` mapping --------------------------------------------------- */

/* PATH (a config value) resolved against the directory of its file. */
static int resolve(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
                   const char *expect, char *out, size_t size) {
  const char *text = load_text(ld, d, n, path, expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (text[0] != '/' && ld->dir != NULL) {
    if ((size_t)snprintf(out, size, "%s/%s", ld->dir, text) >= size)
      return load_fail(ld, d, n, path, "path too long");
  } else if ((size_t)snprintf(out, size, "%s", text) >= size) {
    return load_fail(ld, d, n, path, "path too long");
  }
  return 0;
}

static int read_pubkey(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                       const char *path, struct config_lists *l) {
  char *data = NULL, why[256];
  size_t len = 0;
  int rc = resolve(ld, d, n, path, lists_keys[1].expect, l->pubkey_file, sizeof(l->pubkey_file));
  if (rc != 0)
    return rc;
  if ((rc = load_read_file(l->pubkey_file, &data, &len)) < 0)
    return load_fail(ld, d, n, path, "cannot read '%s': %s", l->pubkey_file, strerror(-rc));
  rc = bundle_pubkey_parse(data, len, l->pubkey, why, sizeof(why));
  free(data);
  if (rc != 0)
    return load_fail(ld, d, n, path, "'%s': %s", l->pubkey_file, why);
  return 0;
}

static int read_url(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                    const char *path, const char *scheme, char *out, size_t size) {
  struct lists_url u;
  char why[160];
  const char *text = load_text(ld, d, n, path, "a URL");
  if (text == NULL)
    return EMB_ECONFIG;
  if (ynode_len(n) >= size)
    return load_fail(ld, d, n, path, "too long (at most %zu bytes)", size - 1);
  if (lists_url_split(text, scheme, &u, why, sizeof(why)) != 0)
    return load_fail(ld, d, n, path, "'%s': %s", text, why);
  memcpy(out, text, ynode_len(n) + 1);
  return 0;
}

static int read_ca_file(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                        const char *path, struct config_lists *l) {
  int rc = resolve(ld, d, n, path, lists_keys[4].expect, l->ca_file, sizeof(l->ca_file));
  if (rc == 0 && access(l->ca_file, R_OK) != 0)
    rc = load_fail(ld, d, n, path, "cannot read '%s': %s", l->ca_file, strerror(errno));
  return rc;
}

/* Reads SPEC's optional keys into L. */
static int read_optional(struct loader *ld, const struct ydoc *d, const struct lists_spec *spec,
                         const char *path, struct config_lists *l) {
  static const struct directive interval = {
      "interval",  load_duration, offsetof(struct config_lists, interval), 1000,
      30 * DAY_MS, false,         "a duration from 1s to 720h like 6h"};
  char sub[LOAD_PATH_MAX];
  int rc = 0;
  if (spec->url != NULL)
    rc = read_url(ld, d, spec->url, load_path_key(sub, path, "url"), "https", l->url,
                  sizeof(l->url));
  if (rc == 0 && spec->interval != NULL)
    rc = load_duration(ld, d, spec->interval, load_path_key(sub, path, "interval"), l, &interval);
  if (rc == 0 && spec->ca_file != NULL)
    rc = read_ca_file(ld, d, spec->ca_file, load_path_key(sub, path, "ca_file"), l);
  if (rc == 0 && spec->proxy != NULL)
    rc = read_url(ld, d, spec->proxy, load_path_key(sub, path, "proxy"), "http", l->proxy,
                  sizeof(l->proxy));
  return rc;
}

int load_lists(struct loader *ld, const struct ydoc *d, const struct ynode *value, const char *path,
               void *target, const struct directive *dir) {
  struct lists_spec spec = {0};
  struct config_lists *l = &ld->cfg->lists;
  char sub[LOAD_PATH_MAX];
  int rc;
  memset(l, 0, sizeof(*l));
  if (value == NULL || ynode_kind(value) == YNODE_NULL)
    return 0; /* `lists:` with nothing: the compiled-in lists */
  if ((rc = load_map(ld, d, value, path, lists_keys, COUNT(lists_keys), &spec)) < 0)
    return rc;
  l->interval = 6 * 3600 * 1000;
  rc = read_pubkey(ld, d, spec.pubkey, load_path_key(sub, path, "pubkey"), l);
  if (rc == 0)
    rc = resolve(ld, d, spec.cache_dir, load_path_key(sub, path, "cache_dir"), lists_keys[3].expect,
                 l->cache_dir, sizeof(l->cache_dir));
  if (rc == 0)
    rc = read_optional(ld, d, &spec, path, l);
  if (rc != 0)
    return rc;
  struct origin o = ynode_origin(d, value);
  snprintf(l->where, sizeof(l->where), "%s:%u:%u", o.file, o.line, o.col);
  l->enabled = true;
  return 0;
}

/* ---- the bundle the lists come from --------------------------------------- */

int lists_cache_read(const char *dir, const unsigned char *pubkey, struct bundle **out, char *why,
                     size_t whysize) {
  char path[1024];
  char *data = NULL;
  size_t len = 0;
  int rc;
  *out = NULL;
  if (!lists_cache_path(dir, path, sizeof(path))) {
    snprintf(why, whysize, "%.200s...: path too long", dir);
    return -ENAMETOOLONG;
  }
  if ((rc = load_read_file(path, &data, &len)) == 0)
    rc = bundle_parse(data, len, pubkey, out, why, whysize);
  else
    snprintf(why, whysize, "%s", strerror(-rc));
  free(data);
  return rc;
}

/* The cached bundle, checked with lists.pubkey; a missing one is no error,
 * a bad one is not used (lists.note says why: the compiled-in lists then
 * apply until a good bundle comes). */
static int read_cache(struct loader *ld) {
  struct config_lists *l = &ld->cfg->lists;
  char path[sizeof(l->cache_dir) + 16], why[400];
  int rc = lists_cache_read(l->cache_dir, l->pubkey, &ld->own_bundle, why, sizeof(why));
  if (rc == -ENOENT || rc == -ENAMETOOLONG)
    return 0;
  if (rc == -ENOMEM) {
    snprintf(ld->err, ld->errsize, "out of memory");
    return rc;
  }
  if (rc != 0) {
    lists_cache_path(l->cache_dir, path, sizeof(path));
    snprintf(l->note, sizeof(l->note),
             "the cached bundle %s is not used (the compiled-in lists apply): %s", path, why);
  }
  ld->bundle = ld->own_bundle;
  return 0;
}

int load_lists_bundle(struct loader *ld, const struct bundle *fetched) {
  struct config_lists *l = &ld->cfg->lists;
  int rc = 0;
  if (!l->enabled)
    return 0;
  if (fetched != NULL)
    ld->bundle = fetched;
  else
    rc = read_cache(ld);
  if (rc == 0 && ld->bundle != NULL) {
    l->serial = ld->bundle->serial;
    l->created = ld->bundle->created;
    memcpy(l->digest, ld->bundle->digest, sizeof(l->digest));
  }
  return rc;
}

void lists_print_summary(const struct config *cfg, void *file) {
  const struct config_lists *l = &cfg->lists;
  FILE *f = file;
  char created[32];
  if (!l->enabled)
    return;
  fprintf(f, "Lists:          %s%s, every %llus, signed by %s, cached in %s\n",
          l->url[0] ? "fetched from " : "not fetched (no url)", l->url,
          (unsigned long long)(l->interval / 1000), l->pubkey_file, l->cache_dir);
  if (l->serial == 0) {
    fprintf(f, "  bundle:       none yet: the compiled-in lists apply\n");
  } else {
    rfc3339_format(l->created, created, sizeof(created));
    fprintf(f, "  bundle:       serial %llu, created %s\n", (unsigned long long)l->serial, created);
  }
  if (l->note[0] != '\0')
    fprintf(f, "  warning:      %s\n", l->note);
}
