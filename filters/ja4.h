/* JA4 TLS client fingerprints (FoxIO, BSD-3-Clause) of a parsed ClientHello:
 * JA4 and its raw (JA4_r) and original-order (JA4_o, JA4_ro) renderings.
 *
 *   a = "t" version ('13','12','11','10','s3','s2','d1','d2','d3' or '00';
 *       highest non-GREASE supported_versions, else legacy_version)
 *       'd' if a server_name extension is present else 'i'
 *       two-digit count of non-GREASE cipher suites, then of extensions (max 99)
 *       first and last character of the first ALPN protocol, "00" without one
 *   b = cipher suites, non-GREASE, 4 hex digits, comma-separated; sorted in
 *       JA4/JA4_r, client order in JA4_o/JA4_ro
 *   c = extensions, non-GREASE, likewise; the sorted form leaves out
 *       server_name (0000) and ALPN (0010); then "_" and the non-GREASE
 *       signature algorithms in client order, when there are any
 *   hashed forms: b and c replaced by the first 12 hex digits of their
 *   SHA-256, or "000000000000" when empty.
 *
 * Choices where implementations differ, pinned by tests/unit/test_ja4.c:
 *   - ALPN bytes that are not ASCII alphanumerics: the written specification
 *     is followed, the first hex digit of the first byte and the last hex
 *     digit of the last byte (0xba 0xad gives "bd"); FoxIO's tools print "99".
 *   - JA4_o of a hello whose only extensions are server_name/ALPN and that
 *     has no signature algorithms: the hash of the listed extensions, as the
 *     Rust tool does; FoxIO's Python tool prints "000000000000".
 *   - A cipher suite listed twice appears once in the sorted forms (as in
 *     FoxIO's Python tool) and is counted twice in a. */
#ifndef EMBARGO_FILTERS_JA4_H
#define EMBARGO_FILTERS_JA4_H

#include <stddef.h>

#include "filters/tls_hello-t.h"

enum ja4_variant {
  JA4_HASHED,          /* JA4:    t13d1516h2_8daaf6152771_e5627efa2ab1 */
  JA4_RAW,             /* JA4_r:  sorted lists in clear */
  JA4_ORIGINAL_HASHED, /* JA4_o:  client order, hashed */
  JA4_ORIGINAL_RAW     /* JA4_ro: client order in clear */
};

#define JA4_HASHED_SIZE 37 /* strlen("t13d1516h2_8daaf6152771_e5627efa2ab1") + 1 */

/* Writes the VARIANT fingerprint of H, NUL-terminated, into OUT (SIZE
 * bytes). Returns 0; -EINVAL if H's status is not HELLO; -ENOSPC if SIZE is
 * smaller than ja4_size() (OUT then holds a truncated, terminated prefix
 * when SIZE > 0); -ENOMEM if OpenSSL could not hash. */
int ja4_format(const struct tls_hello *h, enum ja4_variant variant, char *out, size_t size);

/* Bytes ja4_format() needs for VARIANT, NUL included; 0 if H's status is
 * not HELLO. */
size_t ja4_size(const struct tls_hello *h, enum ja4_variant variant);

#endif
