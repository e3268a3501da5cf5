/* The loader's building blocks: error reporting, key paths, the table-driven
 * mapping walk and the scalar readers (durations, sizes, booleans, strings,
 * socket addresses). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/load.h"
#include "filters/err.h"
#include "filters/timefmt.h"

/* YAML 1.2 core-schema booleans; yes/no/on/off are deliberately strings. */
static const struct {
  const char *word;
  bool value;
} bool_words[] = {
  {"true", true}, {"True", true}, {"TRUE", true},
  {"false", false}, {"False", false}, {"FALSE", false},
};

int load_fail(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
              const char *fmt, ...) {
  struct origin o = ynode_origin(d, n);
  int off = snprintf(ld->err, ld->errsize, "%s:%u:%u: %s: ", o.file, o.line, o.col, path);
  if (off >= 0 && (size_t)off < ld->errsize) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err + off, ld->errsize - (size_t)off, fmt, ap);
    va_end(ap);
  }
  return EMB_ECONFIG;
}

const char *load_path_key(char *buf, const char *path, const char *key) {
  snprintf(buf, LOAD_PATH_MAX, "%s%s%s", path, *path ? "." : "", key);
  return buf;
}

const char *load_path_index(char *buf, const char *path, size_t i) {
  snprintf(buf, LOAD_PATH_MAX, "%s[%zu]", path, i);
  return buf;
}

static const struct directive *find_directive(const struct directive *table, size_t n,
                                              const char *key) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(table[i].key, key) == 0)
      return &table[i];
  }
  return NULL;
}

static int unknown_key(struct loader *ld, const struct ydoc *d, const struct ynode *key,
                       const char *path, const struct directive *table, size_t n) {
  char known[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < n && used < sizeof(known); i++) {
    int w = snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "", table[i].key);
    used += w > 0 ? (size_t)w : 0;
  }
  return load_fail(ld, d, key, path, "unknown key (expected one of: %s)", known);
}

/* Checks and applies pair I of MAP; SEEN records the keys met so far. */
static int apply_pair(struct loader *ld, const struct ydoc *d, const struct ynode *map, size_t i,
                      const char *path, const struct directive *table, size_t n,
                      void *target, uint64_t *seen) {
  char sub[LOAD_PATH_MAX];
  const struct ynode *key = ynode_key(d, map, i);
  const char *name = ynode_text(key);
  if (ynode_kind(key) != YNODE_SCALAR)
    return load_fail(ld, d, key, *path ? path : "(top)", "expected a key name");
  load_path_key(sub, path, name);
  const struct directive *dir = find_directive(table, n, name);
  if (dir == NULL)
    return unknown_key(ld, d, key, sub, table, n);
  uint64_t bit = UINT64_C(1) << (dir - table);
  if (*seen & bit)
    return load_fail(ld, d, key, sub, "duplicate key");
  *seen |= bit;
  return dir->apply(ld, d, ynode_value(d, map, i), sub, target, dir);
}

int load_map(struct loader *ld, const struct ydoc *d, const struct ynode *map,
             const char *path, const struct directive *table, size_t n, void *target) {
  uint64_t seen = 0;
  if (ynode_kind(map) != YNODE_MAP)
    return load_fail(ld, d, map, *path ? path : "(top)", "expected a mapping");
  for (size_t i = 0; i < ynode_count(map); i++) {
    int rc = apply_pair(ld, d, map, i, path, table, n, target, &seen);
    if (rc < 0)
      return rc;
  }
  for (size_t i = 0; i < n; i++) {
    char sub[LOAD_PATH_MAX];
    if (table[i].required && !(seen & (UINT64_C(1) << i)))
      return load_fail(ld, d, map, load_path_key(sub, path, table[i].key),
                       "missing; expected %s", table[i].expect);
  }
  return 0;
}

const char *load_text(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                      const char *path, const char *expect) {
  if (ynode_kind(n) == YNODE_SCALAR && ynode_len(n) > 0)
    return ynode_text(n);
  load_fail(ld, d, n, path, "expected %s", expect);
  return NULL;
}

int load_list(struct loader *ld, const struct ydoc *d, const struct ynode *n, const char *path,
              const char *expect) {
  enum ynode_kind k = ynode_kind(n);
  if (k == YNODE_LIST || k == YNODE_NULL)
    return 0;
  return load_fail(ld, d, n, path, "expected a list of %s", expect);
}

void load_hex(const unsigned char *bytes, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[bytes[i] >> 4];
    out[2 * i + 1] = hex[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

int load_action_at(struct loader *ld, const struct ydoc *d, const struct ynode *n,
                   const char *path, enum action *out) {
  if (n == NULL)
    return 0;
  const char *text = load_text(ld, d, n, path, "allow, log or deny");
  if (text == NULL)
    return EMB_ECONFIG;
  if (action_parse(text, out) < 0)
    return load_fail(ld, d, n, path, "unknown action '%s' (expected allow, log or deny)", text);
  return 0;
}

bool load_is_name(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
      return false;
  return true;
}

int load_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (*text == '\0' || (text[0] == '0' && text[1] != '\0'))
    return -EINVAL;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
      return -EINVAL;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (v < min || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

int load_duration(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                  const char *path, void *target, const struct directive *dir) {
  uint64_t ms;
  const char *text = load_text(ld, d, value, path, dir->expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (duration_parse(text, ynode_len(value), &ms) < 0 || ms < dir->min || ms > dir->max)
    return load_fail(ld, d, value, path, "expected %s", dir->expect);
  *(uint64_t *)((char *)target + dir->offset) = ms;
  return 0;
}

int load_size(struct loader *ld, const struct ydoc *d, const struct ynode *value,
              const char *path, void *target, const struct directive *dir) {
  uint64_t v;
  const char *text = load_text(ld, d, value, path, dir->expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (load_parse_uint(text, dir->min, dir->max, &v) < 0)
    return load_fail(ld, d, value, path, "expected %s", dir->expect);
  *(size_t *)((char *)target + dir->offset) = (size_t)v;
  return 0;
}

int load_bool(struct loader *ld, const struct ydoc *d, const struct ynode *value,
              const char *path, void *target, const struct directive *dir) {
  const char *text = ynode_kind(value) == YNODE_SCALAR ? ynode_text(value) : "";
  for (size_t i = 0; i < sizeof(bool_words) / sizeof(bool_words[0]); i++) {
    if (strcmp(text, bool_words[i].word) == 0) {
      *(bool *)((char *)target + dir->offset) = bool_words[i].value;
      return 0;
    }
  }
  return load_fail(ld, d, value, path, "expected true or false");
}

int load_string(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                const char *path, void *target, const struct directive *dir) {
  const char *text = load_text(ld, d, value, path, dir->expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (ynode_len(value) >= dir->max)
    return load_fail(ld, d, value, path, "too long (at most %zu bytes)",
                     (size_t)dir->max - 1);
  memcpy((char *)target + dir->offset, text, ynode_len(value) + 1);
  return 0;
}

int load_action(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                const char *path, void *target, const struct directive *dir) {
  enum action a;
  const char *text = load_text(ld, d, value, path, dir->expect);
  if (text == NULL)
    return EMB_ECONFIG;
  if (action_parse(text, &a) < 0)
    return load_fail(ld, d, value, path, "unknown action '%s' (expected %s)", text, dir->expect);
  *(enum action *)((char *)target + dir->offset) = a;
  return 0;
}

int load_deny_with(struct loader *ld, const struct ydoc *d, const struct ynode *value,
                   const char *path, void *target, const struct directive *dir) {
  enum deny_with w;
  const char *text = load_text(ld, d, value, path, "alert or page");
  if (text == NULL)
    return EMB_ECONFIG;
  if (strcmp(text, "alert") == 0)
    w = DENY_WITH_ALERT;
  else if (strcmp(text, "page") == 0)
    w = DENY_WITH_PAGE;
  else
    return load_fail(ld, d, value, path, "unknown value '%s' (expected alert or page)", text);
  if (w == DENY_WITH_PAGE && ld->page_where[0] == '\0') {
    struct origin o = ynode_origin(d, value);
    snprintf(ld->page_where, sizeof(ld->page_where), "%s:%u:%u: %s", o.file, o.line, o.col, path);
  }
  *(enum deny_with *)((char *)target + dir->offset) = w;
  return 0;
}

int load_node(struct loader *ld, const struct ydoc *d, const struct ynode *value,
              const char *path, void *target, const struct directive *dir) {
  *(const struct ynode **)((char *)target + dir->offset) = value;
  return 0;
}

int load_read_file(const char *path, char **data, size_t *len) {
  int rc = 0;
  char *buf = NULL;
  struct stat st;
  size_t cap = 64 * 1024, n = 0, got;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -errno;
  /* A regular file's size sizes the buffer (one byte more, to see it grow
   * meanwhile); anything else grows it as it comes. */
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
    cap = (uint64_t)st.st_size < LOAD_FILE_MAX ? (size_t)st.st_size + 1 : LOAD_FILE_MAX + 1;
  for (;;) {
    char *grown = realloc(buf, cap + 1);
    if (grown == NULL) {
      rc = -ENOMEM;
      goto cleanup;
    }
    buf = grown;
    n += got = fread(buf + n, 1, cap - n, f);
    if (ferror(f)) {
      rc = -EIO;
      goto cleanup;
    }
    if (n > LOAD_FILE_MAX) {
      rc = -EFBIG;
      goto cleanup;
    }
    if (n < cap || got == 0)
      break;
    cap = cap * 2 < LOAD_FILE_MAX + 1 ? cap * 2 : LOAD_FILE_MAX + 1;
  }
cleanup:
  fclose(f);
  if (rc < 0) {
    free(buf);
    return rc;
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

/* Splits "host:port" or "[v6]:port" into HOST (NUL-terminated) and PORT. */
static int split_hostport(const char *text, char *host, size_t size, const char **port) {
  const char *colon;
  const char *start = text;
  size_t hlen;
  if (*text == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':')
      return EMB_EBADIP;
    start = text + 1;
    hlen = (size_t)(close - start);
    colon = close + 1;
  } else {
    colon = strrchr(text, ':');
    if (colon == NULL)
      return EMB_EBADPORT;
    hlen = (size_t)(colon - text);
  }
  if (hlen == 0 || hlen >= size)
    return EMB_EBADIP;
  memcpy(host, start, hlen);
  host[hlen] = '\0';
  *port = colon + 1;
  return 0;
}

int config_parse_sockaddr(const char *text, struct sockaddr_storage *addr) {
  char host[INET6_ADDRSTRLEN + 1];
  const char *port_text;
  uint64_t port;
  int rc = split_hostport(text, host, sizeof(host), &port_text);
  if (rc < 0)
    return rc;
  if (load_parse_uint(port_text, 1, 65535, &port) < 0)
    return EMB_EBADPORT;
  memset(addr, 0, sizeof(*addr));
  struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
  if (*text != '[' && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    return 0;
  }
  if (*text == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    return 0;
  }
  return EMB_EBADIP;
}
