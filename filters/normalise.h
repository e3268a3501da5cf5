/* Host name, IP literal, authority and URL normalisation. Every destination
 * name is normalised here, once, before any policy lookup: lowercase, one
 * trailing dot removed, ASCII only (IDNA A-labels), port separated, and
 * anything that is not a valid host name or a canonical IP literal rejected.
 * Pure: no I/O; no allocation but libidn2's, inside host_normalise_sni. */
#ifndef EMBARGO_FILTERS_NORMALISE_H
#define EMBARGO_FILTERS_NORMALISE_H

#include <stddef.h>
#include <stdint.h>

#define HOST_NAME_MAX_LEN 253

enum host_kind {
  HOST_NAME, /* DNS name: LDH labels (underscore tolerated), 1..63 octets each */
  HOST_IPV4, /* canonical dotted quad */
  HOST_IPV6  /* IPv6 literal (RFC 5952 text form, no brackets, no zone) */
};

struct host {
  enum host_kind kind;
  uint16_t port;   /* 0 when the input carried no port */
  size_t len;      /* strlen(name) */
  char name[HOST_NAME_MAX_LEN + 1]; /* normalised text, NUL-terminated */
  uint8_t addr[16];                 /* HOST_IPV4: first 4 bytes; HOST_IPV6: all 16 */
};

/* Normalises a bare host (no port): a DNS name, a dotted-quad IPv4 address,
 * or an IPv6 address with or without brackets. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) become HOST_IPV4 so address rules cannot be side-stepped.
 * Rejects (out untouched on error):
 *   EMB_EULABEL  any byte >= 0x80;
 *   EMB_EBADIP   a name whose last label is numeric or hex (0x..) but that is
 *                not a canonical dotted quad: 2130706433, 0x7f.1, 127.1,
 *                0177.0.0.1, 127.000.0.1; an invalid IPv6 literal or one with
 *                a zone id;
 *   EMB_EBADHOST empty, too long, empty label, label > 63, a character
 *                outside [A-Za-z0-9-_], a label starting or ending with '-'.
 * out->port is set to 0. */
int host_normalise(const char *in, size_t len, struct host *out);

/* Normalises a TLS server name: like host_normalise, except that a name
 * with bytes >= 0x80 is taken as UTF-8 and converted with IDNA (UTS #46,
 * non-transitional, through libidn2) to its A-label form ("bücher.example"
 * becomes "xn--bcher-kva.example"), which is then normalised as usual.
 * Returns EMB_EULABEL for a name that does not convert (invalid UTF-8,
 * disallowed code points, bad bidi or joiners, over-long labels) or that
 * converts to an IP literal; otherwise what host_normalise returns. An ASCII
 * name never goes through IDNA. libidn2 allocates while converting; nothing
 * is left for the caller to free. Host headers and CONNECT authorities do
 * not use this: a U-label there is refused (host_normalise). */
int host_normalise_sni(const char *in, size_t len, struct host *out);

/* Parses an authority "host", "host:port", "[v6]" or "[v6]:port" (as in a
 * CONNECT target or a Host header). A missing or empty port yields
 * DEFAULT_PORT. Rejects what host_normalise rejects, EMB_EBADPORT for a port
 * that is not 1..65535 in plain decimal, and EMB_EUSERINFO for an '@'. */
int authority_parse(const char *in, size_t len, uint16_t default_port,
                    struct host *out);

/* Parses a destination as an admin types it (`embargo check`): what
 * authority_parse accepts, and a bare IPv6 literal ("fe80::1",
 * "2001:db8::1"), which is the address itself with DEFAULT_PORT: a text
 * with more than one ':' and no brackets is never host:port. Rejects what
 * those reject. Never used for peer bytes: a CONNECT target or a Host
 * header must bracket an IPv6 literal (authority_parse). */
int destination_parse(const char *in, size_t len, uint16_t default_port, struct host *out);

/* Parses an absolute-form request target "http://authority[/path][?query]".
 * The scheme is case-insensitive; only "http" is accepted (EMB_ESCHEME
 * otherwise). On success *path points into IN at the origin-form remainder
 * ("/..." or "?...", or "" when absent, in which case the caller sends "/")
 * and *path_len is its length. Rejects userinfo (EMB_EUSERINFO), fragments
 * and malformed targets (EMB_EBADURL), and whatever authority_parse rejects. */
int url_parse_absolute(const char *in, size_t len, struct host *out,
                       const char **path, size_t *path_len);

/* Formats HOST as "name:port" ("[v6]:port" for IPv6) into BUF. Returns the
 * length written (truncated like snprintf). */
int host_format(const struct host *host, char *buf, size_t size);

#endif
