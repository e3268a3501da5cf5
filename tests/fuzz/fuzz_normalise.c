/* libFuzzer target for the name normaliser, the parser every destination a
 * client names goes through (absolute-form URLs, CONNECT authorities, Host
 * values). The first input byte picks the entry point; the target traps when
 * a contract of normalise.h is broken: accepted output must be normalised
 * (lowercase, no trailing dot, only LDH/underscore or a canonical IP
 * literal), and normalising it again must give the same host. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "filters/normalise.h"

#define CHECK(cond)          \
  do {                       \
    if (!(cond))             \
      __builtin_trap();      \
  } while (0)

static void check_name(const struct host *h) {
  size_t i;
  CHECK(h->len == strlen(h->name) && h->len > 0 && h->len <= HOST_NAME_MAX_LEN);
  CHECK(h->name[h->len - 1] != '.');
  for (i = 0; i < h->len; i++) {
    unsigned char c = (unsigned char)h->name[i];
    CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
  }
}

static void check_ip(const struct host *h) {
  uint8_t bin[16];
  char text[64];
  int af = h->kind == HOST_IPV4 ? AF_INET : AF_INET6;
  CHECK(inet_pton(af, h->name, bin) == 1);
  CHECK(memcmp(bin, h->addr, af == AF_INET ? 4 : 16) == 0);
  CHECK(inet_ntop(af, bin, text, sizeof(text)) != NULL && strcmp(text, h->name) == 0);
}

/* Whatever was accepted is normalised, and a fixed point. */
static void check_host(const struct host *h) {
  struct host again;
  if (h->kind == HOST_NAME)
    check_name(h);
  else
    check_ip(h);
  CHECK(host_normalise(h->name, h->len, &again) == 0);
  CHECK(again.kind == h->kind && again.len == h->len && strcmp(again.name, h->name) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct host h;
  const char *path = NULL;
  size_t path_len = 0;
  const char *in = (const char *)data + 1;
  size_t len = size > 0 ? size - 1 : 0;

  if (size == 0)
    return 0;
  memset(&h, 0, sizeof(h));
  switch (data[0] % 4) {
  case 0:
    if (host_normalise(in, len, &h) == 0)
      check_host(&h);
    break;
  case 1:
    if (authority_parse(in, len, 443, &h) == 0) {
      CHECK(h.port != 0);
      check_host(&h);
    }
    break;
  case 3:
    /* TLS server names: IDNA for raw UTF-8; the result is always ASCII. */
    if (host_normalise_sni(in, len, &h) == 0) {
      for (size_t i = 0; i < h.len; i++)
        CHECK((unsigned char)h.name[i] < 0x80);
      check_host(&h);
    }
    break;
  default:
    if (url_parse_absolute(in, len, &h, &path, &path_len) == 0) {
      CHECK(h.port != 0);
      CHECK(path != NULL && path >= in && path + path_len <= in + len);
      CHECK(path_len == 0 || path[0] == '/' || path[0] == '?');
      check_host(&h);
    }
    break;
  }
  return 0;
}
