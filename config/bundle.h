/* Signed list bundles: a set of vendor list files and a manifest (a serial
 * that only goes up, a creation time, each file's size and SHA-256), signed
 * with Ed25519, in one file that is fetched, checked and cached whole.
 *
 * Format (text lines end in LF; the manifest is ASCII):
 *
 *   embargo-lists 1                        magic and format version
 *   serial 1764305432                      1 to 2^63-1, decimal
 *   created 2026-11-28T05:10:32Z           RFC 3339, UTC, whole seconds
 *   key 1f0c2a9e5b7d4c13                   id of the signing key (below)
 *   file kaspersky.yaml 10342 3b1f...e9    name, size in bytes, SHA-256 (hex)
 *   file ...                               0 to BUNDLE_MAX_FILES, names in
 *                                          strictly ascending byte order
 *   signature <base64, 88 characters>      Ed25519 over every byte above
 *   <the files' bytes, one after the other in manifest order, nothing after>
 *
 * A file name is [a-z0-9][a-z0-9_-]*.yaml; the part before ".yaml" is the
 * name a config gives to `builtin:`. The key id is the first 16 hex digits
 * of the SHA-256 of the raw 32-byte public key. Anything else (an unknown
 * line, a second magic, a byte after the last file) is a malformed bundle.
 *
 * Checks run in this order, and nothing after the signature line is looked
 * at before the signature verifies: the manifest's syntax (EMB_EBADBUNDLE),
 * the signature with the expected public key (EMB_EBADSIG), then each file's
 * size and digest (EMB_EBADDIGEST). Keys are Ed25519 in PEM: the private key
 * PKCS#8, the public key SubjectPublicKeyInfo (what `openssl pkey` reads). */
#ifndef EMBARGO_CONFIG_BUNDLE_H
#define EMBARGO_CONFIG_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_MAGIC      "embargo-lists 1"
#define BUNDLE_MAX_BYTES  (16u << 20) /* a whole bundle */
#define BUNDLE_MAX_FILES  256
#define BUNDLE_NAME_MAX   64 /* a file name, ".yaml" included, NUL excluded */
#define BUNDLE_KEY_LEN    32 /* raw Ed25519 public key */
#define BUNDLE_KEY_ID_LEN 16

/* One file of a bundle. */
struct bundle_file {
  char name[BUNDLE_NAME_MAX + 1]; /* "kaspersky.yaml" */
  const char *data;               /* borrowed from the bundle's bytes; not NUL-terminated */
  size_t len;
  char sha256[65]; /* lowercase hex */
};

/* A verified bundle. Owns its bytes; files point into them. */
struct bundle {
  uint64_t serial;
  int64_t created;                    /* seconds since the epoch */
  char key_id[BUNDLE_KEY_ID_LEN + 1]; /* of the key that signed it */
  char digest[65];                    /* SHA-256 of the manifest: equal digests, equal bundles */
  struct bundle_file *files;
  size_t nfiles;
  char *bytes;
  size_t len;
};

/* What a signer puts in: files (borrowed) and the manifest's figures. */
struct bundle_input {
  uint64_t serial;
  int64_t created;
  const struct bundle_file *files; /* name, data and len are read; sorted by the signer */
  size_t nfiles;
};

/* Checks DATA (LEN bytes, copied) against PUBKEY and returns the bundle in
 * *OUT (bundle_free). Returns 0, or EMB_EBADBUNDLE (malformed, or larger than
 * BUNDLE_MAX_BYTES), EMB_EBADSIG (a signature PUBKEY does not verify; ERR
 * then names the bundle's key id and PUBKEY's), EMB_EBADDIGEST (a file whose
 * size or SHA-256 is not the manifest's) or -ENOMEM, with the reason in ERR. */
int bundle_parse(const char *data, size_t len, const unsigned char pubkey[BUNDLE_KEY_LEN],
                 struct bundle **out, char *err, size_t errsize);

/* Builds and signs a bundle of IN with the private key KEY_PEM (KEY_LEN
 * bytes). Files are written sorted by name; names must be valid and
 * distinct, and each file at most BUNDLE_MAX_BYTES. *OUT (caller frees)
 * receives the bundle's bytes. Returns 0, EMB_EBADBUNDLE (a bad name, a
 * duplicate, too many files or bytes), EMB_EBADSIG (not an Ed25519 private
 * key) or -ENOMEM, with the reason in ERR. */
int bundle_sign(const struct bundle_input *in, const char *key_pem, size_t key_len, char **out,
                size_t *outlen, char *err, size_t errsize);

/* Makes a new Ed25519 key pair: *PRIV_PEM (PKCS#8) and *PUB_PEM, both
 * NUL-terminated, caller frees. Returns 0 or EMB_EBADSIG with ERR. */
int bundle_keygen(char **priv_pem, char **pub_pem, char *err, size_t errsize);

/* Reads an Ed25519 public key in PEM into OUT. Returns 0 or EMB_EBADSIG
 * with the reason in ERR (not PEM, not a public key, not Ed25519). */
int bundle_pubkey_parse(const char *pem, size_t len, unsigned char out[BUNDLE_KEY_LEN], char *err,
                        size_t errsize);

/* The public key of the private key KEY_PEM into OUT. 0 or EMB_EBADSIG. */
int bundle_privkey_public(const char *key_pem, size_t key_len, unsigned char out[BUNDLE_KEY_LEN],
                          char *err, size_t errsize);

/* The id of PUBKEY: 16 lowercase hex digits and a NUL into OUT. */
void bundle_key_id(const unsigned char pubkey[BUNDLE_KEY_LEN], char out[BUNDLE_KEY_ID_LEN + 1]);

/* True when NAME (NUL-terminated) is a valid bundle file name. */
bool bundle_name_ok(const char *name);

/* The file NAME.yaml of B, or NULL. NULL-safe. */
const struct bundle_file *bundle_find(const struct bundle *b, const char *name);

void bundle_free(struct bundle *b); /* NULL-safe */

#endif
