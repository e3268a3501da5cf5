/* Embargo's local certificate authority: a directory holding ca.key (an EC
 * P-256 private key, mode 0600) and ca.crt (its self-signed CA certificate).
 * The CA signs the leaves minted for block pages (certs/mint.h) and nothing
 * else. This header does not include OpenSSL: the key and certificate are
 * reached through the OpenSSL struct tags, for the TLS modules only. */
#ifndef EMBARGO_CERTS_CA_H
#define EMBARGO_CERTS_CA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CA_KEY_FILE      "ca.key"
#define CA_CERT_FILE     "ca.crt"
#define CA_MAX_PERMITTED 32
#define CA_DEFAULT_DAYS  3650

struct x509_st;     /* OpenSSL's X509 */
struct evp_pkey_st; /* OpenSSL's EVP_PKEY */

/* A loaded CA (opaque; owned by whoever loaded it). */
struct ca;

/* What `embargo ca init` makes. */
struct ca_init_opts {
  const char *subject;          /* the site's name: O=SUBJECT, CN="SUBJECT Embargo block-page CA" */
  const char *const *permitted; /* DNS subtrees the CA may sign for (name constraints), or NULL */
  size_t npermitted;            /* 0: no constraints; at most CA_MAX_PERMITTED */
  unsigned days;                /* validity from now, 1..36500 */
  int64_t now;                  /* wall-clock seconds since the epoch */
};

/* Creates DIR (0700) if missing, then DIR/ca.key (EC P-256, created 0600
 * with O_EXCL: an existing key is never overwritten) and DIR/ca.crt, a
 * self-signed certificate with basicConstraints CA:TRUE pathlen:0 and
 * keyUsage keyCertSign, cRLSign (both critical), and, with permitted
 * subtrees, critical nameConstraints that also exclude every IP address.
 * Returns 0, or a negative code with a message in ERR (nothing is left
 * behind on error). */
int ca_init(const char *dir, const struct ca_init_opts *opts, char *err, size_t errsize);

/* Loads DIR/ca.key and DIR/ca.crt. Refuses, with a message in ERR naming
 * the file: a key file readable or writable by group or others, a key or
 * certificate that is not PEM, a certificate that is not a CA
 * (basicConstraints CA:TRUE, keyUsage keyCertSign when present), one not
 * valid at NOW (wall-clock seconds: expired or not yet valid), and a key
 * that does not match the certificate. Returns 0 and *OUT (caller frees
 * with ca_free), or EMB_ECERT / a negative errno. The key is never logged. */
int ca_load(const char *dir, int64_t now, struct ca **out, char *err, size_t errsize);

/* Releases CA. NULL-safe. */
void ca_free(struct ca *ca);

/* The CA certificate and private key (borrowed, valid until ca_free). */
struct x509_st *ca_cert(const struct ca *ca);
struct evp_pkey_st *ca_key(const struct ca *ca);

/* One-line subject ("O=Example, CN=Example Embargo block-page CA") and
 * SHA-256 fingerprint ("AB:CD:..."), for summaries. Borrowed. */
const char *ca_subject(const struct ca *ca);
const char *ca_fingerprint(const struct ca *ca);
/* The certificate's notAfter, seconds since the epoch. */
int64_t ca_not_after(const struct ca *ca);

/* `embargo ca show DIR`: prints DIR/ca.crt's fingerprint, subject,
 * validity, name constraints and key file mode, then how to install it in
 * the usual trust stores, to OUT. Returns 0, or a negative code with a
 * message in ERR. Reads only the certificate (and stats the key). */
int ca_show(const char *dir, int64_t now, FILE *out, char *err, size_t errsize);

#endif
