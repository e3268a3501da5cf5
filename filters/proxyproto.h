/* The PROXY protocol, versions 1 and 2 (HAProxy's doc/proxy-protocol.txt):
 * the header an L4 load balancer puts before a client's first byte to say
 * whom it relays. A pure parser of peer bytes: no sockets, no state kept
 * between calls, nothing allocated.
 *
 * Incremental by re-reading: the caller keeps the bytes received so far
 * and calls proxyproto_parse on all of them after each read. A prefix of a
 * valid header gives PROXYPROTO_NEED_MORE; anything that cannot become one
 * gives PROXYPROTO_ERROR at once, without waiting for more. A header is at
 * most PROXYPROTO_MAX bytes, so a caller never buffers more than that. */
#ifndef EMBARGO_FILTERS_PROXYPROTO_H
#define EMBARGO_FILTERS_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>

/* A version 1 line, "PROXY UNKNOWN" with two IPv6 addresses and ports at
 * worst, with its CRLF. */
#define PROXYPROTO_V1_MAX 107
/* The 16 fixed bytes of a version 2 header. */
#define PROXYPROTO_V2_FIXED 16
/* The longest header accepted: a version 2 header's 16 bytes, addresses
 * and TLVs. The format allows 65551; a balancer's header (addresses, an
 * ALPN, an authority, a unique id of up to 128 bytes, TLS details) is far
 * shorter, and the bound caps what one connection makes Embargo hold. */
#define PROXYPROTO_MAX 4096

enum proxyproto_status {
  PROXYPROTO_NEED_MORE, /* the bytes so far begin a valid header: read more */
  PROXYPROTO_DONE,      /* a whole, valid header: out->length bytes of it */
  PROXYPROTO_ERROR      /* not a valid header: out->error says why */
};

/* What a valid header says of the connection. */
enum proxyproto_command {
  PROXYPROTO_PROXY,  /* relayed for a client: out->src is the client, out->dst
                        where it connected (AF_INET or AF_INET6 over TCP) */
  PROXYPROTO_LOCAL,  /* version 2 LOCAL: the balancer's own connection (a
                        health check); no client */
  PROXYPROTO_UNKNOWN /* relayed, but for no client the header can name:
                        version 1 UNKNOWN, version 2 AF_UNSPEC, AF_UNIX or an
                        unspecified transport */
};

/* An endpoint a header names. */
struct proxyproto_addr {
  int family;       /* AF_INET or AF_INET6 */
  uint8_t addr[16]; /* AF_INET: the first 4 bytes */
  uint16_t port;
};

struct proxyproto_header {
  unsigned version;                /* 1 or 2, once known */
  enum proxyproto_command command; /* DONE only */
  struct proxyproto_addr src, dst; /* DONE with PROXYPROTO_PROXY only */
  size_t length;                   /* DONE: the header's bytes, to skip */
  size_t ntlvs;                    /* DONE, version 2: TLVs skipped */
  const char *error;               /* ERROR: why, a static string */
};

/* Reads the header at the start of BUF (LEN bytes received so far; bytes
 * past the header are the client's and are not looked at). Always fills
 * OUT. Version 1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with canonical
 * addresses of the named family and decimal ports without leading zeros,
 * or "PROXY UNKNOWN" and anything up to the CRLF; at most
 * PROXYPROTO_V1_MAX bytes; a lone CR or LF is an error. Version 2: the
 * 12-byte signature, version 2, command LOCAL or PROXY, a known family and
 * transport, an address block at least as long as the family's, then TLVs,
 * each one's length checked against the header's, skipped; DGRAM over
 * AF_INET or AF_INET6 is an error (a stream listener relays streams). */
enum proxyproto_status proxyproto_parse(const uint8_t *buf, size_t len,
                                        struct proxyproto_header *out);

/* "proxy", "local", "unknown". */
const char *proxyproto_command_name(enum proxyproto_command c);

#endif
