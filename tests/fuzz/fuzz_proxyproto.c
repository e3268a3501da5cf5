/* libFuzzer target for the PROXY protocol parser, the first reader of a
 * load balancer's bytes on a listener with proxy_protocol. The target traps
 * when a contract of proxyproto.h is broken: a whole header is never longer
 * than the input or PROXYPROTO_MAX (a version 1 line than
 * PROXYPROTO_V1_MAX), the bytes after it change nothing, every shorter
 * prefix of it needs more, and an error always says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "filters/proxyproto.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

/* Parses an exact heap copy of DATA[0..LEN), so that ASan sees any read
 * past it. */
static enum proxyproto_status parse_copy(const uint8_t *data, size_t len,
                                         struct proxyproto_header *h) {
  uint8_t *copy = malloc(len ? len : 1);
  CHECK(copy != NULL);
  memcpy(copy, data, len);
  enum proxyproto_status st = proxyproto_parse(copy, len, h);
  free(copy);
  return st;
}

static void check_done(const uint8_t *data, size_t size, const struct proxyproto_header *h) {
  struct proxyproto_header again;
  CHECK(h->error == NULL);
  CHECK(h->length > 0 && h->length <= size && h->length <= PROXYPROTO_MAX);
  CHECK(h->version == 2 || h->length <= PROXYPROTO_V1_MAX);
  if (h->command == PROXYPROTO_PROXY)
    CHECK(h->src.family == h->dst.family &&
          (h->src.family == AF_INET || h->src.family == AF_INET6));
  /* The header alone says the same; one byte less of it needs more. */
  CHECK(parse_copy(data, h->length, &again) == PROXYPROTO_DONE);
  CHECK(again.length == h->length && again.command == h->command && again.ntlvs == h->ntlvs);
  CHECK(memcmp(&again.src, &h->src, sizeof(h->src)) == 0);
  CHECK(parse_copy(data, h->length - 1, &again) == PROXYPROTO_NEED_MORE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct proxyproto_header h;
  switch (parse_copy(data, size, &h)) {
  case PROXYPROTO_DONE: check_done(data, size, &h); break;
  case PROXYPROTO_ERROR: CHECK(h.error != NULL && h.error[0] != '\0'); break;
  case PROXYPROTO_NEED_MORE:
    CHECK(size < PROXYPROTO_MAX); /* never asks to buffer past the bound */
    break;
  }
  return 0;
}
