/* Incremental TLS ClientHello parser: reassembles the first handshake
 * message from bytes fed in any chunking, across any number of handshake
 * records, within a fixed caller-provided buffer, and answers what the
 * proxy needs to decide on a tunnel: host names (SNI), ALPN, versions,
 * cipher suites, extensions, signature algorithms, ECH presence. The raw
 * bytes stay available, unchanged, for forwarding. Pure: no I/O, no clock,
 * no allocation.
 *
 * Decisions a reader of the wire might not expect:
 *   - A hello whose server_name lists two host_name entries (RFC 6066
 *     forbids it) is reported as HELLO with TLS_HELLO_F_SNI_MULTIPLE and
 *     every name readable, so policy can deny if any of them matches; more
 *     than TLS_HELLO_MAX_NAMES names is MALFORMED, since policy could not
 *     see them all.
 *   - Host names are reported lower-cased with one trailing dot removed
 *     (tls_hello_sni()); TLS_HELLO_F_SNI_UPPERCASE / _TRAILING_DOT record
 *     that the client sent otherwise, and tls_hello_sni_raw() gives the
 *     bytes as sent.
 *   - Host names are ASCII LDH names (underscore tolerated), at most 253
 *     octets, labels 1..63. Two kinds of candidates are reported rather than
 *     refused, for the caller's normaliser to judge (real clients send
 *     them): a name with bytes >= 0x80 (raw UTF-8, as Node sends; flagged
 *     TLS_HELLO_F_SNI_NON_ASCII, label lengths not checked) and an IP
 *     literal (any ':', or a numeric or 0x-hex last label, which RFC 6066
 *     forbids; flagged TLS_HELLO_F_SNI_IP_LITERAL). The reasons
 *     SNI_NON_ASCII and SNI_IP_LITERAL name the caller's refusals of them.
 *   - server_name entries of another name_type are flagged
 *     TLS_HELLO_F_SNI_OTHER_TYPE; alone they are skipped, as Go's crypto/tls
 *     does, but next to a host_name they are MALFORMED (SNI_MIXED_TYPES):
 *     OpenSSL and BoringSSL servers refuse such a list.
 *   - Any extension type sent twice is MALFORMED (RFC 8446 4.2); GREASE
 *     values (RFC 8701) are accepted everywhere.
 *   - Handshake bytes after the ClientHello in its last record are
 *     MALFORMED: a client's first flight holds nothing else. Bytes after that
 *     record (early data, change_cipher_spec) are not consumed. */
#ifndef EMBARGO_FILTERS_TLS_HELLO_H
#define EMBARGO_FILTERS_TLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/tls_hello-t.h"

/* Prepares H to parse one ClientHello into BUF (borrowed; SIZE bytes, at
 * least TLS_HELLO_BUF_SIZE(max_bytes)). MAX_BYTES bounds the raw bytes
 * buffered, record headers included; 0 means TLS_HELLO_DEFAULT_MAX.
 * Returns 0, or -EINVAL if BUF is NULL, MAX_BYTES is outside
 * [TLS_HELLO_LIMIT_MIN, TLS_HELLO_LIMIT_MAX] or SIZE is too small; H then
 * answers TOO_LARGE to every feed and never touches BUF. */
int tls_hello_init(struct tls_hello *h, uint8_t *buf, size_t size, size_t max_bytes);

/* Feeds LEN bytes the client sent next (any chunking, LEN may be 0).
 * Copies what it consumes into the buffer and sets *CONSUMED (may be NULL)
 * to that count: all of DATA while NEED_MORE; for HELLO, the bytes up to the
 * end of the record that completed the hello; for NOT_TLS, exactly the
 * bytes that decided (the first byte, or the first three when its top bit
 * is set); for MALFORMED and TOO_LARGE, a prefix that includes the deciding
 * byte. Bytes past *CONSUMED were not looked at and belong to the stream
 * after the hello. Once a final status is reached it is returned again and
 * nothing more is consumed. */
enum tls_hello_status tls_hello_feed(struct tls_hello *h, const uint8_t *data, size_t len,
                                     size_t *consumed);

/* The current status (what the last tls_hello_feed() returned). */
enum tls_hello_status tls_hello_status(const struct tls_hello *h);

/* Why the hello is MALFORMED; TLS_HELLO_R_NONE for any other status. */
enum tls_hello_reason tls_hello_reason(const struct tls_hello *h);

/* Static, human-readable text for REASON; never NULL. */
const char *tls_hello_reason_str(enum tls_hello_reason reason);

/* Static symbolic name for REASON ("SNI_EMPTY_NAME"); never NULL. */
const char *tls_hello_reason_name(enum tls_hello_reason reason);

/* Static name for STATUS ("HELLO", "NOT_TLS", ...); never NULL. */
const char *tls_hello_status_str(enum tls_hello_status status);

/* Every byte consumed so far, exactly as received, in order: what the proxy
 * forwards upstream before relaying the rest. Borrowed from the buffer;
 * *LEN gets its length. Valid in every status. */
const uint8_t *tls_hello_raw(const struct tls_hello *h, size_t *len);

/* Record-layer version of the first record (for an alert at that version),
 * 0 before a record header was read. */
uint16_t tls_hello_record_version(const struct tls_hello *h);

/* The facts below are meaningful only when the status is HELLO; they read
 * as empty (0, NULL, empty lists) otherwise. Borrowed pointers live as long
 * as the buffer. */

/* enum tls_hello_flag bits. */
unsigned tls_hello_flags(const struct tls_hello *h);

/* ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3 clients). */
uint16_t tls_hello_legacy_version(const struct tls_hello *h);

/* Highest non-GREASE supported_versions entry, else legacy_version. */
uint16_t tls_hello_max_version(const struct tls_hello *h);

/* Number of host_name entries in server_name (0 without SNI). */
size_t tls_hello_sni_count(const struct tls_hello *h);

/* Host name I (< tls_hello_sni_count()), normalised: lower case, no
 * trailing dot, NUL-terminated. NULL when I is out of range. */
const char *tls_hello_sni(const struct tls_hello *h, size_t i);

/* Host name I exactly as sent; *LEN gets its length. NULL when out of range. */
const uint8_t *tls_hello_sni_raw(const struct tls_hello *h, size_t i, size_t *len);

/* Cipher suites in the client's order, GREASE included. */
struct tls_hello_u16s tls_hello_ciphers(const struct tls_hello *h);

/* signature_algorithms in the client's order; empty when absent. */
struct tls_hello_u16s tls_hello_sigalgs(const struct tls_hello *h);

/* supported_versions in the client's order; empty when absent. */
struct tls_hello_u16s tls_hello_versions(const struct tls_hello *h);

/* Value I of LIST (I < LIST->n). */
static inline uint16_t tls_hello_u16_at(const struct tls_hello_u16s *list, size_t i) {
  return (uint16_t)(list->p[2 * i] << 8 | list->p[2 * i + 1]);
}

/* Number of extensions, GREASE included. */
size_t tls_hello_ext_count(const struct tls_hello *h);

/* Iterates extensions in the client's order: start with *POS = 0; each
 * call fills *EXT and returns true, false when none is left. */
bool tls_hello_ext_next(const struct tls_hello *h, size_t *pos, struct tls_hello_ext *ext);

/* Whether an extension of TYPE is present. */
bool tls_hello_has_ext(const struct tls_hello *h, uint16_t type);

/* Number of ALPN protocol names (0 without ALPN). */
size_t tls_hello_alpn_count(const struct tls_hello *h);

/* Iterates ALPN protocol names in order: start with *POS = 0; each call
 * fills *PROTO (borrowed, not NUL-terminated) and returns true, false at
 * the end. */
bool tls_hello_alpn_next(const struct tls_hello *h, size_t *pos, struct tls_hello_bytes *proto);

/* Whether V is an RFC 8701 GREASE value (0x?a?a with equal bytes). */
static inline bool tls_hello_is_grease(uint16_t v) {
  return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

#endif
