/* Vendor lists and exceptions: reads the `vendors` entries (built-in lists
 * or files) and the `exceptions` entries into the policy snapshot.
 *
 * A vendor list is a YAML mapping:
 *   vendor: kaspersky                 short id used in logs (required)
 *   name: Kaspersky Lab               display name (default: the id)
 *   reference: "..."                  legal basis shown on deny pages
 *   reviewed: 2026-11-28              when the entries were last checked
 *   max_age: 180d                     stale this long after `reviewed`
 *   confidence: strong                default for the lists below (strong|hint)
 *   left_out:                         public-list names deliberately not listed
 *     - { names: [kaspersky.de, ...], reason: "..." }
 *   domains: [kaspersky.com, ...]     registered domains: where to look for names
 *                                     the lists miss (embargo report --unmatched)
 *   categories:                       (required)
 *     updates:                        category name
 *       cutoff: 2024-09-29T00:00:00-04:00   RFC 3339 (required)
 *       before: log                   action before the cutoff (default log)
 *       after: deny                   action from the cutoff on (default deny)
 *       deny_with: page               TLS denies: alert or page (default: tls_inspect.deny_with)
 *       confidence: hint              default for this category's networks and JA4
 *       hosts: [s00.upd.kaspersky.com, ...]  dommatch patterns
 *       networks:                     CIDR prefixes matched against addresses
 *         - 91.198.230.0/24           (the default confidence)
 *         - { prefix: 37.203.128.0/23, confidence: hint }
 *       ja4:                          JA4 client fingerprints, matched exactly
 *         - t13d1516h2_8daaf6152771_e5627efa2ab1
 *         - { fingerprint: t13d1516h2_8daaf6152771_e5627efa2ab1, confidence: hint }
 *       paths: [...]                  request-path patterns (pathmatch.h)
 *       presets:                      actions a regime preset (`profile:`) sets
 *         us-federal: { after: deny, basis: "NDAA FY2019 §889(a)(1)(B)" }
 * A `vendors:` entry of the config names a list (`builtin: NAME` or `file:
 * PATH`) and may override its categories' actions (presets.c), for every
 * client or for some client groups' (entries.c):
 *   - { builtin: hikvision, override: { cloud: { after: deny } } }
 *   - { builtin: kaspersky, clients: [lab], override: { updates: { after: log } } }
 * Without a `vendors:` key, the profiles' lists are loaded.
 * A hint is recorded but never denies (policy.h). Host patterns are always
 * strong: a name is the vendor's own word for the service.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/bundle.h"
#include "config/embedded.h"
#include "config/load.h"
#include "filters/dommatch.h"
#include "filters/err.h"
#include "filters/netmatch.h"
#include "filters/pathmatch.h"
#include "filters/normalise.h"
#include "filters/timefmt.h"

#define VENDOR_DIR "config/vendors/"
#define VENDOR_EXT ".yaml"
#define CUTOFF_EXPECT "an RFC 3339 time like 2024-09-29T00:00:00-04:00"
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define REVIEWED_EXPECT "a date like 2025-06-01 or an RFC 3339 time"

struct vendor_spec {
  const struct ynode *vendor, *name, *reference, *confidence, *categories, *reviewed, *max_age;
  const struct ynode *left_out;
  const struct ynode *domains;
};

struct category_spec {
  const struct ynode *cutoff, *before, *after, *confidence, *hosts, *networks, *ja4, *deny_with;
  const struct ynode *paths, *presets;
};

/* One `left_out` entry. */
struct left_out_spec {
  const struct ynode *names, *reason;
};

/* One `networks` or `ja4` entry written as a mapping. */
struct entry_spec {
  const struct ynode *value, *confidence;
};

/* What a `networks` or `ja4` list holds, for add_entries. */
struct entry_kind {
  const char *what;                   /* "network", in duplicate errors */
  const struct directive *keys;       /* the mapping form's two keys */
  const char *expect;                 /* for a wrong item type */
  int (*add)(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
             const struct vendor *v, const struct category *c, enum confidence conf);
};

struct exception_spec {
  const struct ynode *host, *expires, *reason, *clients;
};

#define NODE(key, type, field, required, expect)                                           \
  {key, load_node, offsetof(struct type, field), 0, 0, required, expect}

static const struct directive vendor_keys[] = {
  NODE("vendor", vendor_spec, vendor, true, "a short lowercase name like kaspersky"),
  NODE("name", vendor_spec, name, false, "a display name"),
  NODE("reference", vendor_spec, reference, false, "a reference to the legal basis"),
  NODE("confidence", vendor_spec, confidence, false, "strong or hint"),
  NODE("categories", vendor_spec, categories, true, "a mapping of category names"),
  NODE("reviewed", vendor_spec, reviewed, false, REVIEWED_EXPECT),
  NODE("max_age", vendor_spec, max_age, false, "a duration like 90d"),
  NODE("left_out", vendor_spec, left_out, false,
       "a list of { names: [NAME, ...], reason: TEXT } entries"),
  NODE("domains", vendor_spec, domains, false, "registered domains like kaspersky.com"),
};

static const struct directive left_out_keys[] = {
  NODE("names", left_out_spec, names, true, "a list of names"),
  NODE("reason", left_out_spec, reason, true, "why these names are not listed"),
};

static const struct directive category_keys[] = {
  NODE("cutoff", category_spec, cutoff, true, CUTOFF_EXPECT),
  NODE("before", category_spec, before, false, "allow, log or deny"),
  NODE("after", category_spec, after, false, "allow, log or deny"),
  NODE("confidence", category_spec, confidence, false, "strong or hint"),
  NODE("hosts", category_spec, hosts, false, "host patterns"),
  NODE("networks", category_spec, networks, false, "network prefixes"),
  NODE("ja4", category_spec, ja4, false, "JA4 fingerprints"),
  NODE("deny_with", category_spec, deny_with, false, "alert or page"),
  NODE("paths", category_spec, paths, false, "request-path patterns like \"**/index/u0607g.xml\""),
  NODE("presets", category_spec, presets, false,
       "a mapping of profile names to { before, after, basis }"),
};

#define NETWORK_EXPECT "a network like 91.198.230.0/24"
#define JA4_EXAMPLE "t13d1516h2_8daaf6152771_e5627efa2ab1"

static const struct directive network_keys[] = {
  NODE("prefix", entry_spec, value, true, NETWORK_EXPECT),
  NODE("confidence", entry_spec, confidence, false, "strong or hint"),
};

static const struct directive ja4_keys[] = {
  NODE("fingerprint", entry_spec, value, true, "a JA4 fingerprint like " JA4_EXAMPLE),
  NODE("confidence", entry_spec, confidence, false, "strong or hint"),
};

static const struct {
  const char *word;
  enum confidence value;
} confidence_words[] = {
  {"strong", CONFIDENCE_STRONG},
  {"hint", CONFIDENCE_HINT},
};

static const struct directive exception_keys[] = {
  NODE("host", exception_spec, host, true, "a host pattern"),
  NODE("expires", exception_spec, expires, false, CUTOFF_EXPECT),
  NODE("reason", exception_spec, reason, false, "a short text"),
  NODE("clients", exception_spec, clients, false, "a list of client group names of client_groups"),
};

const struct key_table load_vendor_key_tables[] = {
    {KEYS_CONFIG, "exceptions[]", exception_keys, COUNT(exception_keys)},
    {KEYS_VENDOR_LIST, "", vendor_keys, COUNT(vendor_keys)},
    {KEYS_VENDOR_LIST, "left_out[]", left_out_keys, COUNT(left_out_keys)},
    {KEYS_VENDOR_LIST, "categories.NAME", category_keys, COUNT(category_keys)},
    {KEYS_VENDOR_LIST, "categories.NAME.networks[]", network_keys, COUNT(network_keys)},
    {KEYS_VENDOR_LIST, "categories.NAME.ja4[]", ja4_keys, COUNT(ja4_keys)},
    {KEYS_CONFIG, NULL, NULL, 0},
};

/* Reads an optional scalar: NULL node or null value gives NULL. */
static int optional_text(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                         const char *path, const char *expect, const char **out) {
  *out = NULL;
  if (n == NULL || ynode_kind(n) == YNODE_NULL)
    return 0;
  *out = load_text(ld, d, n, path, expect);
  return *out != NULL ? 0 : EMB_ECONFIG;
}

static int read_time(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                     const char *path, int64_t *out) {
  const char *text = load_text(ld, d, n, path, CUTOFF_EXPECT);
  if (text == NULL)
    return EMB_ECONFIG;
  if (rfc3339_parse(text, ynode_len(n), out) < 0)
    return load_fail(ld, d, n, path, "expected %s", CUTOFF_EXPECT);
  return 0;
}

/* A duration as duration_parse reads it, or whole days ("90d"): lists are
 * reviewed on a calendar, not a stopwatch. */
static int parse_age(const char *text, size_t len, uint64_t *ms) {
  uint64_t days;
  if (len < 2 || text[len - 1] != 'd')
    return duration_parse(text, len, ms);
  char num[24];
  if (len - 1 >= sizeof(num))
    return -EINVAL;
  memcpy(num, text, len - 1);
  num[len - 1] = '\0';
  if (load_parse_uint(num, 1, 100000, &days) < 0)
    return -EINVAL;
  *ms = days * 86400000u;
  return 0;
}

/* `reviewed` (a date or a time) and `max_age` (a duration; it needs
 * `reviewed`): after reviewed + max_age the list is stale and /readyz says so. */
static int read_review(struct loader *ld, const struct ydoc *d, const struct vendor_spec *spec,
                       struct vendor *v) {
  char buf[40];
  uint64_t ms;
  const char *text;
  if (spec->reviewed != NULL) {
    if ((text = load_text(ld, d, spec->reviewed, "reviewed", REVIEWED_EXPECT)) == NULL)
      return EMB_ECONFIG;
    if (ynode_len(spec->reviewed) == 10)
      snprintf(buf, sizeof(buf), "%.10sT00:00:00Z", text);
    else
      snprintf(buf, sizeof(buf), "%.39s", text);
    if (rfc3339_parse(buf, strlen(buf), &v->reviewed) < 0)
      return load_fail(ld, d, spec->reviewed, "reviewed", "expected %s", REVIEWED_EXPECT);
  }
  if (spec->max_age == NULL)
    return 0;
  if ((text = load_text(ld, d, spec->max_age, "max_age", "a duration like 90d")) == NULL)
    return EMB_ECONFIG;
  if (parse_age(text, ynode_len(spec->max_age), &ms) < 0 || ms < 1000)
    return load_fail(ld, d, spec->max_age, "max_age", "expected a duration like 90d");
  if (spec->reviewed == NULL)
    return load_fail(ld, d, spec->max_age, "max_age", "needs `reviewed`: the date it counts from");
  v->max_age = ms / 1000;
  return 0;
}

/* Checks a host pattern's syntax; returns its text or NULL after the error. */
static const char *read_pattern(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                                const char *path) {
  const char *why = "invalid";
  const char *text = load_text(ld, d, n, path, "a host pattern");
  if (text == NULL)
    return NULL;
  if (dommatch_check(text, ynode_len(n), &why) < 0) {
    load_fail(ld, d, n, path, "invalid host pattern '%s': %s", text, why);
    return NULL;
  }
  return text;
}

static int duplicate(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                     const char *path, const char *what, const char *text, struct origin first) {
  return load_fail(ld, d, n, path, "duplicate %s '%s' (first at %s:%u:%u)", what, text,
                   first.file, first.line, first.col);
}

static int add_hosts(struct loader *ld, const struct ydoc *d, const struct ynode *hosts,
                     const char *path, const struct vendor *v, const struct category *c) {
  char sub[LOAD_PATH_MAX];
  if (hosts == NULL)
    return 0;
  if (load_list(ld, d, hosts, path, "host patterns") < 0)
    return EMB_ECONFIG;
  for (size_t i = 0; i < ynode_count(hosts); i++) {
    struct origin first = {0};
    const struct ynode *item = ynode_item(d, hosts, i);
    const char *pattern = read_pattern(ld, d, item, load_path_index(sub, path, i));
    if (pattern == NULL)
      return EMB_ECONFIG;
    int rc = policy_add_host(ld->cfg->policy, v, c, pattern, ynode_origin(d, item), &first);
    if (rc == EMB_EDUPLICATE)
      return duplicate(ld, d, item, sub, "pattern", pattern, first);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Adds the `paths` list (may be NULL) of V/C, lowercased: matching ignores case. */
static int add_paths(struct loader *ld, const struct ydoc *d, const struct ynode *paths,
                     const char *path, const struct vendor *v, const struct category *c) {
  char sub[LOAD_PATH_MAX], lower[PATHMATCH_MAX_SEGMENTS * (PATHMATCH_MAX_SEGMENT + 1) + 4];
  if (paths == NULL)
    return 0;
  if (load_list(ld, d, paths, path, "request-path patterns") < 0)
    return EMB_ECONFIG;
  for (size_t i = 0; i < ynode_count(paths); i++) {
    struct origin first = {0};
    const char *why = "invalid";
    const struct ynode *item = ynode_item(d, paths, i);
    const char *text = load_text(ld, d, item, load_path_index(sub, path, i), "a path pattern");
    if (text == NULL)
      return EMB_ECONFIG;
    if (pathmatch_check(text, ynode_len(item), &why) < 0 || ynode_len(item) >= sizeof(lower))
      return load_fail(ld, d, item, sub, "invalid path pattern '%s': %s", text, why);
    for (size_t k = 0; k <= ynode_len(item); k++)
      lower[k] = (char)(text[k] >= 'A' && text[k] <= 'Z' ? text[k] - 'A' + 'a' : text[k]);
    int rc = policy_add_path(ld->cfg->policy, v, c, lower, ynode_origin(d, item), &first);
    if (rc == EMB_EDUPLICATE)
      return duplicate(ld, d, item, sub, "path pattern", lower, first);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Reads an optional `confidence`; a missing one leaves *OUT as it is. */
static int read_confidence(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                           const char *path, enum confidence *out) {
  if (n == NULL)
    return 0;
  const char *text = load_text(ld, d, n, path, "strong or hint");
  if (text == NULL)
    return EMB_ECONFIG;
  for (size_t i = 0; i < COUNT(confidence_words); i++) {
    if (strcmp(text, confidence_words[i].word) == 0) {
      *out = confidence_words[i].value;
      return 0;
    }
  }
  return load_fail(ld, d, n, path, "unknown confidence '%s' (expected strong or hint)", text);
}

static int add_network(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                       const char *path, const struct vendor *v, const struct category *c,
                       enum confidence conf) {
  struct cidr net;
  struct origin first = {0};
  const char *text = load_text(ld, d, n, path, NETWORK_EXPECT);
  if (text == NULL)
    return EMB_ECONFIG;
  if (cidr_parse(text, ynode_len(n), &net) < 0)
    return load_fail(ld, d, n, path,
                     "invalid network prefix '%s' (expected a CIDR like 91.198.230.0/24, "
                     "host bits zero)", text);
  int rc = policy_add_network(ld->cfg->policy, v, c, &net, conf, ynode_origin(d, n), &first);
  if (rc == EMB_EDUPLICATE)
    return duplicate(ld, d, n, path, "network", text, first);
  return rc;
}

static bool in_set(const char *set, char ch) {
  return ch != '\0' && strchr(set, ch) != NULL;
}

#define DIGITS "0123456789"
#define HEX DIGITS "abcdef"
#define LOWER_ALNUM DIGITS "abcdefghijklmnopqrstuvwxyz"

/* The fields of a JA4 (FoxIO's JA4 specification, technical_details/JA4.md),
 * each a run of characters from SET, or one of the CODES when CODES is set. */
static const struct ja4_field {
  unsigned len;
  const char *set;
  const char *codes; /* space-separated whole values, or NULL */
  const char *expect;
} ja4_fields[] = {
  {1, "tqd", NULL, "'t' (TLS over TCP), 'q' (QUIC) or 'd' (DTLS)"},
  {2, NULL, "13 12 11 10 s3 s2 d1 d2 d3 00", "a version: 13, 12, 11, 10, s3, s2, d1, d2, d3 or 00"},
  {1, "di", NULL, "'d' (SNI present) or 'i' (no SNI)"},
  {2, DIGITS, NULL, "a two-digit cipher suite count"},
  {2, DIGITS, NULL, "a two-digit extension count"},
  /* ALPN characters may be any ASCII alphanumeric, but the rule matcher is
   * lowercase-only: an uppercase one would never match, so it is refused. */
  {2, LOWER_ALNUM, NULL, "the first and last ALPN characters (lowercase letters or digits; "
                         "00 without ALPN)"},
  {1, "_", NULL, "'_'"},
  {12, HEX, NULL, "12 lowercase hex digits (cipher suite hash)"},
  {1, "_", NULL, "'_'"},
  {12, HEX, NULL, "12 lowercase hex digits (extension and signature algorithm hash)"},
};

static bool ja4_field_ok(const struct ja4_field *f, const char *p) {
  if (f->codes != NULL) {
    for (const char *c = f->codes; *c; c += c[f->len] ? f->len + 1 : f->len) {
      if (strncmp(c, p, f->len) == 0)
        return true;
    }
    return false;
  }
  for (unsigned i = 0; i < f->len; i++) {
    if (!in_set(f->set, p[i]))
      return false;
  }
  return true;
}

/* Checks TEXT (LEN bytes) against the JA4 (hashed) format. Returns 0, or
 * EMB_ECONFIG after writing which field is wrong and what it must be. */
static int check_ja4(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                     const char *path, const char *text, size_t len) {
  unsigned off = 0;
  if (len != strlen(JA4_EXAMPLE))
    return load_fail(ld, d, n, path,
                     "invalid JA4 '%s': expected %zu characters like %s (JA4_r, JA4_o and "
                     "JA4_ro forms are not matched)", text, strlen(JA4_EXAMPLE), JA4_EXAMPLE);
  for (size_t i = 0; i < COUNT(ja4_fields); off += ja4_fields[i++].len) {
    const struct ja4_field *f = &ja4_fields[i];
    if (!ja4_field_ok(f, text + off))
      return load_fail(ld, d, n, path, "invalid JA4 '%s': at character %u '%.*s': expected %s",
                       text, off + 1, (int)f->len, text + off, f->expect);
  }
  return 0;
}

static int add_ja4(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                   const char *path, const struct vendor *v, const struct category *c,
                   enum confidence conf) {
  struct origin first = {0};
  const char *text = load_text(ld, d, n, path, "a JA4 fingerprint like " JA4_EXAMPLE);
  if (text == NULL || check_ja4(ld, d, n, path, text, ynode_len(n)) < 0)
    return EMB_ECONFIG;
  int rc = policy_add_ja4(ld->cfg->policy, v, c, text, conf, ynode_origin(d, n), &first);
  if (rc == EMB_EDUPLICATE)
    return duplicate(ld, d, n, path, "JA4", text, first);
  return rc;
}

static const struct entry_kind network_kind = {
  "network", network_keys,
  "a network like 91.198.230.0/24 or { prefix: 91.198.230.0/24, confidence: hint }",
  add_network};
static const struct entry_kind ja4_kind = {
  "JA4", ja4_keys,
  "a JA4 fingerprint or { fingerprint: " JA4_EXAMPLE ", confidence: hint }", add_ja4};

/* Adds ITEM, a plain value (with confidence CONF) or a mapping with its own
 * confidence, as K describes. */
static int add_entry(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                     const char *path, const struct entry_kind *k, const struct vendor *v,
                     const struct category *c, enum confidence conf) {
  struct entry_spec spec = {0};
  char sub[LOAD_PATH_MAX];
  if (ynode_kind(item) == YNODE_SCALAR)
    return k->add(ld, d, item, path, v, c, conf);
  if (ynode_kind(item) != YNODE_MAP)
    return load_fail(ld, d, item, path, "expected %s", k->expect);
  int rc = load_map(ld, d, item, path, k->keys, 2, &spec);
  if (rc == 0)
    rc = read_confidence(ld, d, spec.confidence, load_path_key(sub, path, "confidence"), &conf);
  if (rc == 0)
    rc = k->add(ld, d, spec.value, load_path_key(sub, path, k->keys[0].key), v, c, conf);
  return rc;
}

/* Adds the `networks` or `ja4` LIST (may be NULL) of V/C. */
static int add_entries(struct loader *ld, const struct ydoc *d, const struct ynode *list,
                       const char *path, const struct entry_kind *k, const struct vendor *v,
                       const struct category *c, enum confidence conf) {
  char sub[LOAD_PATH_MAX];
  if (list == NULL)
    return 0;
  if (load_list(ld, d, list, path, k->expect) < 0)
    return EMB_ECONFIG;
  for (size_t i = 0; i < ynode_count(list); i++) {
    int rc = add_entry(ld, d, ynode_item(d, list, i), load_path_index(sub, path, i), k, v, c,
                       conf);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Reads the actions and the confidence of SPEC (at SUB) into *C. */
static int read_category(struct loader *ld, const struct ydoc *d,
                         const struct category_spec *spec, const char *sub, struct category *c,
                         enum confidence *conf) {
  char key[LOAD_PATH_MAX];
  int rc = read_time(ld, d, spec->cutoff, load_path_key(key, sub, "cutoff"), &c->cutoff);
  if (rc == 0)
    rc = load_action_at(ld, d, spec->before, load_path_key(key, sub, "before"), &c->before);
  if (rc == 0)
    rc = load_action_at(ld, d, spec->after, load_path_key(key, sub, "after"), &c->after);
  if (rc == 0)
    rc = read_confidence(ld, d, spec->confidence, load_path_key(key, sub, "confidence"), conf);
  if (rc == 0 && spec->deny_with != NULL) {
    static const struct directive dw = {"deny_with", load_deny_with, offsetof(struct category,
                                        deny_with), 0, 0, false, "alert or page"};
    rc = load_deny_with(ld, d, spec->deny_with, load_path_key(key, sub, "deny_with"), c, &dw);
  }
  return rc;
}

/* Adds the rules of SPEC to V/C. */
static int add_rules(struct loader *ld, const struct ydoc *d, const struct category_spec *spec,
                     const char *sub, const struct vendor *v, const struct category *c,
                     enum confidence conf) {
  char key[LOAD_PATH_MAX];
  int rc = add_hosts(ld, d, spec->hosts, load_path_key(key, sub, "hosts"), v, c);
  if (rc == 0)
    rc = add_entries(ld, d, spec->networks, load_path_key(key, sub, "networks"), &network_kind,
                     v, c, conf);
  if (rc == 0)
    rc = add_entries(ld, d, spec->ja4, load_path_key(key, sub, "ja4"), &ja4_kind, v, c, conf);
  if (rc == 0)
    rc = add_paths(ld, d, spec->paths, load_path_key(key, sub, "paths"), v, c);
  return rc;
}

static bool same_text(const char *a, const char *b) {
  return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether S sets exactly C's own actions, by the same hands. */
static bool same_actions(const struct category *c, const struct category_scope *s) {
  return c->before == s->before && c->after == s->after && c->before_from == s->before_from &&
         c->after_from == s->after_from && same_text(c->preset, s->preset) &&
         same_text(c->basis, s->basis);
}

/* Adds category pair I of the CATS mapping to V, with its rules; CONF is the
 * vendor's default confidence. */
static int add_category(struct loader *ld, const struct ydoc *d, const struct ynode *cats,
                        size_t i, const char *path, struct vendor *v, enum confidence conf) {
  struct category_spec spec = {0};
  struct category want = {.before = ACTION_LOG, .after = ACTION_DENY};
  struct category_scope scoped[CONFIG_MAX_CLIENT_PROFILES];
  const struct config *cfg = ld->cfg;
  char sub[LOAD_PATH_MAX], key[LOAD_PATH_MAX];
  const struct ynode *name = ynode_key(d, cats, i);
  const char *text = load_text(ld, d, name, path, "a category name");
  if (text == NULL)
    return EMB_ECONFIG;
  load_path_key(sub, path, text);
  if (!load_is_name(text))
    return load_fail(ld, d, name, sub, "expected a category name of a-z, 0-9, '-' and '_'");
  int rc = load_map(ld, d, ynode_value(d, cats, i), sub, category_keys, COUNT(category_keys),
                    &spec);
  if (rc == 0)
    rc = read_category(ld, d, &spec, sub, &want, &conf);
  for (size_t k = 0; rc == 0 && k < cfg->nclient_profiles; k++) {
    scoped[k] = category_actions(&want); /* the list's, unless its preset says otherwise */
    scoped[k].groups = cfg->client_profiles[k].groups;
    scoped[k].by = SCOPE_BY_PROFILE;
  }
  if (rc == 0)
    rc = load_presets(ld, d, spec.presets, load_path_key(key, sub, "presets"), &want, scoped);
  if (rc < 0)
    return rc;
  struct category *c = policy_add_category(ld->cfg->policy, v, text, want.cutoff, want.before,
                                           want.after, ynode_origin(d, name), &rc);
  if (rc == EMB_EDUPLICATE)
    return load_fail(ld, d, name, sub, "duplicate key");
  if (c == NULL)
    return rc;
  c->deny_with = want.deny_with;
  c->before_from = want.before_from;
  c->after_from = want.after_from;
  c->preset = want.preset;
  c->basis = want.basis;
  for (size_t k = 0; k < cfg->nclient_profiles; k++) {
    if (same_actions(c, &scoped[k]))
      continue; /* the profile asks nothing else of this category */
    if ((rc = policy_add_scope(ld->cfg->policy, c, c->nscopes, &scoped[k])) < 0)
      return rc;
  }
  return add_rules(ld, d, &spec, sub, v, c, conf);
}

static int add_categories(struct loader *ld, const struct ydoc *d, const struct ynode *cats,
                          struct vendor *v, enum confidence conf) {
  if (ynode_kind(cats) != YNODE_MAP)
    return load_fail(ld, d, cats, "categories", "expected a mapping of category names");
  for (size_t i = 0; i < ynode_count(cats); i++) {
    int rc = add_category(ld, d, cats, i, "categories", v, conf);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Records the `left_out` list (may be NULL) of V. */
static int add_left_out(struct loader *ld, const struct ydoc *d, const struct ynode *list,
                        struct vendor *v) {
  char sub[LOAD_PATH_MAX], key[LOAD_PATH_MAX];
  if (list == NULL)
    return 0;
  if (load_list(ld, d, list, "left_out", vendor_keys[7].expect) < 0)
    return EMB_ECONFIG;
  for (size_t i = 0; i < ynode_count(list); i++) {
    struct left_out_spec spec = {0};
    const struct ynode *item = ynode_item(d, list, i);
    load_path_index(sub, "left_out", i);
    int rc = load_map(ld, d, item, sub, left_out_keys, COUNT(left_out_keys), &spec);
    const char *reason = rc == 0 ? load_text(ld, d, spec.reason, load_path_key(key, sub, "reason"),
                                             left_out_keys[1].expect)
                                 : NULL;
    if (reason == NULL ||
        load_list(ld, d, spec.names, load_path_key(key, sub, "names"), "names") < 0)
      return EMB_ECONFIG;
    for (size_t k = 0; k < ynode_count(spec.names); k++) {
      char at[LOAD_PATH_MAX];
      const struct ynode *n = ynode_item(d, spec.names, k);
      const char *name = load_text(ld, d, n, load_path_index(at, key, k), "a name");
      if (name == NULL)
        return EMB_ECONFIG;
      if ((rc = policy_add_left_out(ld->cfg->policy, v, name, reason, ynode_origin(d, n))) < 0)
        return rc;
    }
  }
  return 0;
}

/* `domains`: names (not patterns), each once; joined into v->domains. */
static int load_domains(struct loader *ld, const struct ydoc *d, const struct ynode *list,
                        struct vendor *v) {
  char sub[LOAD_PATH_MAX], joined[4096] = " "; /* " a b c ": each name between spaces */
  size_t used = 1;
  if (list == NULL)
    return 0;
  if (load_list(ld, d, list, "domains", "registered domains like kaspersky.com") < 0)
    return EMB_ECONFIG;
  for (size_t i = 0; i < ynode_count(list); i++) {
    const struct ynode *item = ynode_item(d, list, i);
    const char *text = load_text(ld, d, item, load_path_index(sub, "domains", i), "a domain");
    struct host h;
    char padded[HOST_NAME_MAX_LEN + 3];
    if (text == NULL)
      return EMB_ECONFIG;
    if (host_normalise(text, ynode_len(item), &h) != 0 || h.kind != HOST_NAME ||
        strchr(h.name, '.') == NULL || strcmp(h.name, text) != 0)
      return load_fail(ld, d, item, sub,
                       "expected a registered domain like kaspersky.com (lowercase, no "
                       "pattern), got '%s'", text);
    snprintf(padded, sizeof(padded), " %s ", h.name);
    if (strstr(joined, padded) != NULL)
      return load_fail(ld, d, item, sub, "duplicate domain '%s'", text);
    if (used + h.len + 1 >= sizeof(joined))
      return load_fail(ld, d, item, sub, "too many domains (at most %zu bytes in all)",
                       sizeof(joined) - 1);
    used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s ", h.name);
  }
  if (used > 1) {
    joined[used - 1] = '\0'; /* the trailing space */
    if ((v->domains = policy_strdup(ld->cfg->policy, joined + 1)) == NULL)
      return -ENOMEM;
  }
  return 0;
}

/* Loads one vendor list document into the policy; *OUT (if not NULL)
 * receives the vendor. */
static int load_vendor_doc(struct loader *ld, const struct ydoc *d, struct vendor **out) {
  struct vendor_spec spec = {0};
  enum confidence conf = CONFIDENCE_STRONG;
  const char *id, *name, *reference;
  const struct ynode *root = ydoc_root(d);
  if (root == NULL) {
    snprintf(ld->err, ld->errsize, "%s:1:1: (top): empty vendor list", ydoc_file(d));
    return EMB_ECONFIG;
  }
  int rc = load_map(ld, d, root, "", vendor_keys, COUNT(vendor_keys), &spec);
  if (rc < 0)
    return rc;
  id = load_text(ld, d, spec.vendor, "vendor", vendor_keys[0].expect);
  if (id == NULL)
    return EMB_ECONFIG;
  if (!load_is_name(id))
    return load_fail(ld, d, spec.vendor, "vendor", "expected %s", vendor_keys[0].expect);
  if (optional_text(ld, d, spec.name, "name", "a display name", &name) < 0 ||
      optional_text(ld, d, spec.reference, "reference", "a text", &reference) < 0 ||
      read_confidence(ld, d, spec.confidence, "confidence", &conf) < 0)
    return EMB_ECONFIG;
  struct origin where = ynode_origin(d, spec.vendor);
  struct vendor *v = policy_add_vendor(ld->cfg->policy, id, name, reference, where, &rc);
  if (rc == EMB_EDUPLICATE)
    return duplicate(ld, d, spec.vendor, "vendor", "vendor", id,
                     policy_find_vendor(ld->cfg->policy, id)->where);
  if (v == NULL)
    return rc;
  v->groups = ld->doc_groups; /* before its rules: they go to the matchers of its audience */
  if (ld->doc_bundle != NULL) {
    v->bundle_serial = ld->doc_bundle->serial;
    v->bundle_created = ld->doc_bundle->created;
  }
  if (read_review(ld, d, &spec, v) < 0 || add_left_out(ld, d, spec.left_out, v) < 0 ||
      load_domains(ld, d, spec.domains, v) < 0)
    return EMB_ECONFIG;
  if (out != NULL)
    *out = v;
  return add_categories(ld, d, spec.categories, v, conf);
}

/* Lists the built-in vendor names into BUF for error messages. */
static const char *builtin_names(char *buf, size_t size) {
  size_t used = 0, plen = strlen(VENDOR_DIR), elen = strlen(VENDOR_EXT);
  buf[0] = '\0';
  for (const struct embedded_file *f = embedded_files; f->path != NULL; f++) {
    size_t len = strlen(f->path);
    if (strncmp(f->path, VENDOR_DIR, plen) != 0 || len <= plen + elen || used >= size)
      continue;
    used += (size_t)snprintf(buf + used, size - used, "%s%.*s", used ? ", " : "",
                             (int)(len - plen - elen), f->path + plen);
  }
  return buf;
}

/* The embedded file of the built-in list NAME, or NULL. */
static const struct embedded_file *find_builtin(const char *name) {
  char file[LOAD_PATH_MAX + sizeof(VENDOR_DIR) + sizeof(VENDOR_EXT)];
  if (!load_is_name(name))
    return NULL;
  snprintf(file, sizeof(file), "%s%s%s", VENDOR_DIR, name, VENDOR_EXT);
  return embedded_find(file);
}

/* Loads the built-in list in F; *OUT (may be NULL) receives its vendor. */
static int load_embedded(struct loader *ld, const struct embedded_file *f, struct vendor **out) {
  char label[LOAD_PATH_MAX + 16];
  struct ydoc *doc = NULL;
  snprintf(label, sizeof(label), "builtin:%s", f->path);
  int rc = load_note_source(ld, label, f->data, f->len);
  if (rc == 0)
    rc = ydoc_load(label, f->data, f->len, &doc, ld->err, ld->errsize);
  if (rc == 0)
    rc = load_vendor_doc(ld, doc, out);
  ydoc_free(doc);
  return rc;
}

/* Whether a built-in list NAME exists: in the signed bundle in force, or
 * compiled in. */
static bool builtin_exists(const struct loader *ld, const char *name) {
  return load_is_name(name) && (bundle_find(ld->bundle, name) != NULL || find_builtin(name) != NULL);
}

/* Loads the built-in list NAME (builtin_exists): the signed bundle's copy
 * when one is in force, since it has the say over the compiled-in lists;
 * *OUT (may be NULL) receives its vendor. */
static int load_builtin_list(struct loader *ld, const char *name, struct vendor **out) {
  const struct bundle_file *bf = bundle_find(ld->bundle, name);
  return bf != NULL ? load_bundle_list(ld, bf, out) : load_embedded(ld, find_builtin(name), out);
}

int load_builtin_entry(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                       const char *path, struct vendor **out) {
  char names[256];
  const char *name = load_text(ld, d, n, path, "the name of a built-in list like kaspersky");
  if (name == NULL)
    return EMB_ECONFIG;
  if (!builtin_exists(ld, name))
    return load_fail(ld, d, n, path, "no built-in vendor list '%s' (built in: %s)", name,
                     builtin_names(names, sizeof(names)));
  return load_builtin_list(ld, name, out);
}

char *load_resolve_path(const char *dir, const char *path) {
  size_t len = strlen(path) + (dir != NULL ? strlen(dir) + 1 : 0) + 1;
  char *out = malloc(len);
  if (out == NULL)
    return NULL;
  if (path[0] == '/' || dir == NULL)
    snprintf(out, len, "%s", path);
  else
    snprintf(out, len, "%s/%s", dir, path);
  return out;
}

int load_file_entry(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                    const char *path, struct vendor **out) {
  char *full = NULL, *data = NULL;
  size_t len = 0;
  struct ydoc *doc = NULL;
  const char *file = load_text(ld, d, n, path, "a path to a vendor list");
  if (file == NULL)
    return EMB_ECONFIG;
  int rc = -ENOMEM;
  full = load_resolve_path(ld->vendors_dir, file);
  if (full == NULL)
    goto cleanup;
  rc = load_read_file(full, &data, &len);
  if (rc < 0) {
    rc = load_fail(ld, d, n, path, "cannot read '%s': %s", full, strerror(-rc));
    goto cleanup;
  }
  rc = load_note_source(ld, full, data, len);
  if (rc == 0)
    rc = ydoc_load(full, data, len, &doc, ld->err, ld->errsize);
  if (rc == 0)
    rc = load_vendor_doc(ld, doc, out);
cleanup:
  ydoc_free(doc);
  free(data);
  free(full);
  return rc;
}

int load_vendor_data(struct loader *ld, const char *label, const char *data, size_t len,
                     struct vendor **out) {
  struct ydoc *doc = NULL;
  int rc = ydoc_load(label, data, len, &doc, ld->err, ld->errsize);
  if (rc == 0)
    rc = load_vendor_doc(ld, doc, out);
  ydoc_free(doc);
  return rc;
}

int load_bundle_list(struct loader *ld, const struct bundle_file *f, struct vendor **out) {
  char label[BUNDLE_NAME_MAX + 48];
  int rc;
  snprintf(label, sizeof(label), "bundle:%llu/%s", (unsigned long long)ld->bundle->serial, f->name);
  if ((rc = load_note_source(ld, label, f->data, f->len)) != 0)
    return rc;
  ld->doc_bundle = ld->bundle;
  rc = load_vendor_data(ld, label, f->data, f->len, out);
  ld->doc_bundle = NULL;
  return rc;
}

/* Whether WANT (NULL: everything, for every client) takes list NAME, and
 * for which groups: sets ld->doc_groups. */
static bool take(struct loader *ld, load_want_fn want, const char *name) {
  uint64_t groups = 0;
  if (want != NULL && !want(ld, name, &groups))
    return false;
  ld->doc_groups = groups;
  return true;
}

int load_builtin_lists(struct loader *ld, load_want_fn want) {
  size_t plen = strlen(VENDOR_DIR), elen = strlen(VENDOR_EXT);
  char name[LOAD_PATH_MAX];
  int rc = 0;
  for (const struct embedded_file *f = embedded_files; f->path != NULL && rc == 0; f++) {
    size_t len = strlen(f->path);
    if (strncmp(f->path, VENDOR_DIR, plen) != 0 || len <= plen + elen)
      continue;
    snprintf(name, sizeof(name), "%.*s", (int)(len - plen - elen), f->path + plen);
    if (take(ld, want, name))
      rc = load_builtin_list(ld, name, NULL);
  }
  /* The lists a signed bundle adds to the compiled-in ones. */
  for (size_t i = 0; ld->bundle != NULL && i < ld->bundle->nfiles && rc == 0; i++) {
    const struct bundle_file *bf = &ld->bundle->files[i];
    size_t len = strlen(bf->name);
    snprintf(name, sizeof(name), "%.*s", (int)(len > elen ? len - elen : 0), bf->name);
    if (find_builtin(name) == NULL && take(ld, want, name))
      rc = load_bundle_list(ld, bf, NULL);
  }
  ld->doc_groups = 0;
  return rc;
}

static int load_exception(struct loader *ld, const struct ydoc *d, const struct ynode *item,
                          const char *path) {
  struct exception_spec spec = {0};
  struct origin first = {0};
  char sub[LOAD_PATH_MAX];
  int64_t expires = POLICY_TIME_NEVER;
  uint64_t groups = 0;
  const char *reason = NULL;
  int rc = load_map(ld, d, item, path, exception_keys, COUNT(exception_keys), &spec);
  if (rc < 0)
    return rc;
  const char *host = read_pattern(ld, d, spec.host, load_path_key(sub, path, "host"));
  if (host == NULL)
    return EMB_ECONFIG;
  if (spec.expires != NULL &&
      read_time(ld, d, spec.expires, load_path_key(sub, path, "expires"), &expires) < 0)
    return EMB_ECONFIG;
  if (optional_text(ld, d, spec.reason, load_path_key(sub, path, "reason"), "a short text",
                    &reason) < 0)
    return EMB_ECONFIG;
  if (spec.clients != NULL &&
      load_clients(ld, d, spec.clients, load_path_key(sub, path, "clients"), &groups) < 0)
    return EMB_ECONFIG;
  rc = policy_add_exception_for(ld->cfg->policy, host, expires, reason, groups,
                                ynode_origin(d, spec.host), &first);
  if (rc == EMB_EDUPLICATE)
    return duplicate(ld, d, spec.host, load_path_key(sub, path, "host"), "exception", host,
                     first);
  return rc;
}

int load_exceptions(struct loader *ld) {
  const struct ydoc *d = ld->exceptions_doc;
  char sub[LOAD_PATH_MAX];
  if (ld->exceptions == NULL)
    return 0;
  if (load_list(ld, d, ld->exceptions, "exceptions", "entries with host, expires, reason") < 0)
    return EMB_ECONFIG;
  for (size_t i = 0; i < ynode_count(ld->exceptions); i++) {
    const struct ynode *item = ynode_item(d, ld->exceptions, i);
    int rc = load_exception(ld, d, item, load_path_index(sub, "exceptions", i));
    if (rc < 0)
      return rc;
  }
  return 0;
}
