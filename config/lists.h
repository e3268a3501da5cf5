/* Where signed list bundles come from (the `lists` settings) and where the
 * last good one is kept: the URLs the fetcher may use, and the name of the
 * cached bundle in lists.cache_dir. The config loader reads that cache, so
 * every configuration built from the same files (the proxy's, `check`'s,
 * `export`'s) has the same vendor lists. */
#ifndef EMBARGO_CONFIG_LISTS_H
#define EMBARGO_CONFIG_LISTS_H

#include <stdbool.h>
#include <stddef.h>

#define LISTS_CACHE_FILE "lists.bundle"

struct bundle;

/* An http:// or https:// URL taken apart. */
struct lists_url {
  bool tls;           /* https */
  char host[256];     /* a name, an IPv4 address, or an IPv6 address without brackets */
  char port[6];       /* given, or 443 / 80 */
  char path[1024];    /* from the first '/', "/" when absent; no fragment */
  char hostport[270]; /* host[:port] as written after the scheme, for Host and CONNECT */
};

/* Splits URL. SCHEMES is "https" (a bundle URL) or "http" (a proxy, which
 * takes no path). Returns 0, or -EINVAL with the reason in WHY. */
int lists_url_split(const char *url, const char *scheme, struct lists_url *out, char *why,
                    size_t whysize);

/* Reads every file of B as a vendor list into one scratch snapshot, as a
 * configuration naming them all with `builtin:` would: 0, or EMB_ECONFIG
 * with "bundle:SERIAL/NAME.yaml:line:col: key: reason" in ERR (or a
 * duplicate vendor id across files). */
int config_check_bundle(const struct bundle *b, char *err, size_t errsize);

struct config;
/* Writes the `lists` settings and the bundle in force (for `config check`)
 * to F (a FILE *); nothing without `lists`. */
void lists_print_summary(const struct config *cfg, void *file);

/* DIR/lists.bundle into BUF. False if it does not fit. */
bool lists_cache_path(const char *dir, char *buf, size_t size);

/* The bundle cached in DIR, checked against PUBKEY (BUNDLE_KEY_LEN bytes),
 * into *OUT (bundle_free). Returns 0, -ENOENT when there is none, or
 * another negative errno or EMB_E* code (bundle_parse) with WHY set. */
int lists_cache_read(const char *dir, const unsigned char *pubkey, struct bundle **out, char *why,
                     size_t whysize);

#endif
