/* Host name, IP literal, authority and absolute-URL normalisation. */
#define _POSIX_C_SOURCE 200809L
#include "filters/normalise.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/err.h"

#define LABEL_MAX_LEN 63

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static char to_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_';
}

static bool has_high_byte(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] >= 0x80)
      return true;
  return false;
}

/* Parses a canonical dotted quad: four decimal parts 0..255, no leading
 * zeros, no empty parts, nothing else. */
static bool parse_dotted_quad(const char *s, size_t len, uint8_t addr[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0 && (i >= len || s[i++] != '.'))
      return false;
    size_t start = i;
    unsigned v = 0;
    while (i < len && is_digit(s[i]) && i - start < 3)
      v = v * 10 + (unsigned)(s[i++] - '0');
    size_t n = i - start;
    if (n == 0 || v > 255 || (n > 1 && s[start] == '0'))
      return false;
    addr[part] = (uint8_t)v;
  }
  return i == len;
}

/* True when the last label looks numeric (all digits, or 0x-prefixed): such a
 * name is an IPv4 literal to a resolver or a URL parser, never a DNS name. */
static bool last_label_is_numeric(const char *s, size_t len) {
  size_t start = len;
  while (start > 0 && s[start - 1] != '.')
    start--;
  const char *label = s + start;
  size_t n = len - start;
  if (n >= 2 && label[0] == '0' && label[1] == 'x')
    return true;
  for (size_t i = 0; i < n; i++)
    if (!is_digit(label[i]))
      return false;
  return n > 0;
}

static int check_labels(const char *s, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.') {
      if (!is_host_char(s[i]))
        return EMB_EBADHOST;
      continue;
    }
    size_t n = i - start;
    if (n == 0 || n > LABEL_MAX_LEN || s[start] == '-' || s[i - 1] == '-')
      return EMB_EBADHOST;
    start = i + 1;
  }
  return 0;
}

/* V in decimal at OUT (at most 10 bytes, no NUL); returns the length.
 * Names are formatted on every request: no printf machinery. */
static size_t put_uint(char *out, unsigned v) {
  char digits[10];
  size_t n = 0, i;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (i = 0; i < n; i++)
    out[i] = digits[n - 1 - i];
  return n;
}

static void set_ipv4(struct host *h, const uint8_t addr[4]) {
  size_t n = 0;
  h->kind = HOST_IPV4;
  memset(h->addr, 0, sizeof(h->addr));
  memcpy(h->addr, addr, 4);
  for (int i = 0; i < 4; i++) {
    if (i > 0)
      h->name[n++] = '.';
    n += put_uint(h->name + n, addr[i]);
  }
  h->name[n] = '\0';
  h->len = n;
}

/* Parses an IPv6 literal without brackets. Zone ids ("%eth0") are refused:
 * they name an interface of the sender, not a destination. */
static int parse_ipv6(const char *s, size_t len, struct host *h) {
  static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char text[INET6_ADDRSTRLEN];
  struct in6_addr a;

  if (len == 0 || len >= sizeof(text) || memchr(s, '%', len))
    return EMB_EBADIP;
  memcpy(text, s, len);
  text[len] = '\0';
  if (inet_pton(AF_INET6, text, &a) != 1)
    return EMB_EBADIP;
  if (memcmp(a.s6_addr, mapped_prefix, sizeof(mapped_prefix)) == 0) {
    set_ipv4(h, a.s6_addr + 12);
    return 0;
  }
  h->kind = HOST_IPV6;
  memcpy(h->addr, a.s6_addr, 16);
  if (!inet_ntop(AF_INET6, &a, h->name, sizeof(h->name)))
    return EMB_EBADIP;
  h->len = strlen(h->name);
  return 0;
}

static int parse_name(const char *in, size_t len, struct host *h) {
  uint8_t quad[4];
  int err;

  /* One trailing dot is the absolute form of the same name. */
  if (len > 0 && in[len - 1] == '.')
    len--;
  if (len == 0 || len > HOST_NAME_MAX_LEN)
    return EMB_EBADHOST;
  for (size_t i = 0; i < len; i++)
    h->name[i] = to_lower(in[i]);
  h->name[len] = '\0';
  h->len = len;
  if (last_label_is_numeric(h->name, len)) {
    if (!parse_dotted_quad(h->name, len, quad))
      return EMB_EBADIP;
    set_ipv4(h, quad);
    return 0;
  }
  if ((err = check_labels(h->name, len)) != 0)
    return err;
  h->kind = HOST_NAME;
  memset(h->addr, 0, sizeof(h->addr));
  return 0;
}

/* A host containing ':' can only be an IPv6 literal, so a failure to parse
 * it is EMB_EBADIP. Brackets must be balanced. */
int host_normalise(const char *in, size_t len, struct host *out) {
  struct host h;
  int err;

  if (len == 0)
    return EMB_EBADHOST;
  if (has_high_byte(in, len))
    return EMB_EULABEL;
  if (in[0] == '[') {
    if (len < 2 || in[len - 1] != ']')
      return EMB_EBADHOST;
    err = parse_ipv6(in + 1, len - 2, &h);
  } else if (memchr(in, ':', len)) {
    err = parse_ipv6(in, len, &h);
  } else {
    err = parse_name(in, len, &h);
  }
  if (err != 0)
    return err;
  h.port = 0;
  *out = h;
  return 0;
}

int host_normalise_sni(const char *in, size_t len, struct host *out) {
  char u8[HOST_NAME_MAX_LEN + 2], *alabel = NULL;
  int err;

  if (!has_high_byte(in, len))
    return host_normalise(in, len, out);
  if (len >= sizeof(u8) || memchr(in, '\0', len) != NULL)
    return EMB_EULABEL;
  memcpy(u8, in, len);
  u8[len] = '\0';
  /* UTS #46 non-transitional processing (lower-cases and maps, then
   * IDNA2008 ToASCII); libidn2 allocates the result, freed here. */
  if (idn2_to_ascii_8z(u8, &alabel, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK) {
    free(alabel);
    return EMB_EULABEL;
  }
  err = host_normalise(alabel, strlen(alabel), out);
  free(alabel);
  if (err == 0 && out->kind != HOST_NAME)
    return EMB_EULABEL; /* a U-label spelling of an address is not a name */
  return err;
}

/* Plain decimal 1..65535; leading zeros are harmless and accepted. */
static int parse_port(const char *s, size_t len, uint16_t *out) {
  unsigned long v = 0;

  if (len == 0)
    return EMB_EBADPORT;
  for (size_t i = 0; i < len; i++) {
    if (!is_digit(s[i]))
      return EMB_EBADPORT;
    v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > 65535)
      return EMB_EBADPORT;
  }
  if (v == 0)
    return EMB_EBADPORT;
  *out = (uint16_t)v;
  return 0;
}

/* Splits IN into host text and port text. Brackets are mandatory around an
 * IPv6 literal here, because its colons would be ambiguous with the port. */
static int split_authority(const char *in, size_t len, size_t *host_len,
                           const char **port, size_t *port_len) {
  bool bracketed = len > 0 && in[0] == '[';

  if (bracketed) {
    const char *close = memchr(in, ']', len);
    if (!close)
      return EMB_EBADHOST;
    *host_len = (size_t)(close - in) + 1;
    if (*host_len < len && in[*host_len] != ':')
      return EMB_EBADHOST;
  } else {
    const char *colon = memchr(in, ':', len);
    *host_len = colon ? (size_t)(colon - in) : len;
  }
  *port = in + *host_len + (*host_len < len);
  *port_len = *host_len < len ? len - *host_len - 1 : 0;
  if (!bracketed && memchr(*port, ':', *port_len))
    return EMB_EBADIP;
  return 0;
}

int authority_parse(const char *in, size_t len, uint16_t default_port, struct host *out) {
  struct host h;
  const char *port;
  size_t host_len, port_len;
  uint16_t port_num = default_port;
  int err;

  if (memchr(in, '@', len))
    return EMB_EUSERINFO;
  if ((err = split_authority(in, len, &host_len, &port, &port_len)) != 0)
    return err;
  if ((err = host_normalise(in, host_len, &h)) != 0)
    return err;
  if (port_len > 0 && (err = parse_port(port, port_len, &port_num)) != 0)
    return err;
  h.port = port_num;
  *out = h;
  return 0;
}

int destination_parse(const char *in, size_t len, uint16_t default_port, struct host *out) {
  const char *colon = memchr(in, ':', len);
  int err;

  if (len == 0 || in[0] == '[' || colon == NULL ||
      memchr(colon + 1, ':', len - (size_t)(colon - in) - 1) == NULL)
    return authority_parse(in, len, default_port, out);
  if ((err = host_normalise(in, len, out)) != 0)
    return err;
  out->port = default_port;
  return 0;
}

static bool is_scheme_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '+' ||
         c == '-' || c == '.';
}

/* Returns the length of the scheme before "://", EMB_ESCHEME for a scheme
 * other than http, or EMB_EBADURL when there is no well-formed scheme. */
static int parse_scheme(const char *in, size_t len) {
  size_t i = 0;

  while (i < len && is_scheme_char(in[i]))
    i++;
  if (i == 0 || i == len || in[i] != ':')
    return EMB_EBADURL;
  if (i != 4 || to_lower(in[0]) != 'h' || to_lower(in[1]) != 't' ||
      to_lower(in[2]) != 't' || to_lower(in[3]) != 'p')
    return EMB_ESCHEME;
  if (len - i < 3 || in[i + 1] != '/' || in[i + 2] != '/')
    return EMB_EBADURL;
  return (int)i;
}

/* Whitespace and control bytes have no place in a request target; a '#'
 * fragment is never sent by a conforming client. */
static bool has_forbidden_url_byte(const char *in, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c <= 0x20 || c == 0x7f || c == '#')
      return true;
  }
  return false;
}

int url_parse_absolute(const char *in, size_t len, struct host *out, const char **path,
                       size_t *path_len) {
  size_t auth_start, auth_end;
  int n;

  if (has_forbidden_url_byte(in, len))
    return EMB_EBADURL;
  if ((n = parse_scheme(in, len)) < 0)
    return n;
  auth_start = (size_t)n + 3;
  auth_end = auth_start;
  while (auth_end < len && in[auth_end] != '/' && in[auth_end] != '?')
    auth_end++;
  if (auth_end == auth_start)
    return EMB_EBADURL;
  if ((n = authority_parse(in + auth_start, auth_end - auth_start, 80, out)) != 0)
    return n;
  *path = in + auth_end;
  *path_len = len - auth_end;
  return 0;
}

int host_format(const struct host *host, char *buf, size_t size) {
  char text[sizeof(host->name) + 16];
  size_t len = strnlen(host->name, sizeof(host->name) - 1), n = 0;
  bool v6 = host->kind == HOST_IPV6;
  if (v6)
    text[n++] = '[';
  memcpy(text + n, host->name, len);
  n += len;
  if (v6)
    text[n++] = ']';
  text[n++] = ':';
  n += put_uint(text + n, host->port);
  if (size > 0) { /* truncated like snprintf */
    size_t k = n < size - 1 ? n : size - 1;
    memcpy(buf, text, k);
    buf[k] = '\0';
  }
  return (int)n;
}
