/* Signed list bundles: building and signing one, and checking one against
 * a public key (format in bundle.h). Ed25519 and SHA-256 through OpenSSL's
 * EVP interface. */
#include "config/bundle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config/load.h"
#include "filters/err.h"
#include "filters/timefmt.h"

#define MANIFEST_MAX (64u << 10)
#define SIG_LEN      64
#define SIG_B64_LEN  88 /* 64 bytes in base64, padded */
#define YAML_EXT     ".yaml"

__attribute__((format(printf, 4, 5))) static int fail(int code, char *err, size_t errsize,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errsize, fmt, ap);
  va_end(ap);
  ERR_clear_error();
  return code;
}

/* SHA-256 of DATA into OUT (65 bytes of hex). False if OpenSSL fails. */
static bool sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
    return false;
  load_hex(md, mdlen, out);
  return true;
}

void bundle_key_id(const unsigned char pubkey[BUNDLE_KEY_LEN], char out[BUNDLE_KEY_ID_LEN + 1]) {
  char hex[65];
  if (!sha256_hex(pubkey, BUNDLE_KEY_LEN, hex))
    memset(hex, '0', sizeof(hex) - 1);
  memcpy(out, hex, BUNDLE_KEY_ID_LEN);
  out[BUNDLE_KEY_ID_LEN] = '\0';
}

bool bundle_name_ok(const char *name) {
  size_t len = strlen(name), elen = strlen(YAML_EXT);
  if (len <= elen || len > BUNDLE_NAME_MAX || strcmp(name + len - elen, YAML_EXT) != 0)
    return false;
  for (size_t i = 0; i < len - elen; i++) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '-' && c != '_')))
      return false;
  }
  return true;
}

const struct bundle_file *bundle_find(const struct bundle *b, const char *name) {
  char file[BUNDLE_NAME_MAX + 8];
  if (b == NULL || (size_t)snprintf(file, sizeof(file), "%s%s", name, YAML_EXT) >= sizeof(file))
    return NULL;
  for (size_t i = 0; i < b->nfiles; i++)
    if (strcmp(b->files[i].name, file) == 0)
      return &b->files[i];
  return NULL;
}

void bundle_free(struct bundle *b) {
  if (b == NULL)
    return;
  free(b->files);
  free(b->bytes);
  free(b);
}

/* ---- keys ------------------------------------------------------------------ */

/* Never prompts for a passphrase: an encrypted key is refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  return 0;
}

static EVP_PKEY *read_private(const char *pem, size_t len) {
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  EVP_PKEY *k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  if (k != NULL && EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(k);
    k = NULL;
  }
  return k;
}

static int raw_public(EVP_PKEY *k, unsigned char out[BUNDLE_KEY_LEN]) {
  size_t n = BUNDLE_KEY_LEN;
  return EVP_PKEY_get_raw_public_key(k, out, &n) == 1 && n == BUNDLE_KEY_LEN ? 0 : -1;
}

int bundle_pubkey_parse(const char *pem, size_t len, unsigned char out[BUNDLE_KEY_LEN], char *err,
                        size_t errsize) {
  BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
  EVP_PKEY *k = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
  int rc = 0;
  BIO_free(bio);
  if (k == NULL)
    rc = fail(EMB_EBADSIG, err, errsize, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
  else if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519)
    rc = fail(EMB_EBADSIG, err, errsize,
              "not an Ed25519 public key (make one with `embargo "
              "lists keygen`)");
  else if (raw_public(k, out) != 0)
    rc = fail(EMB_EBADSIG, err, errsize, "cannot read the Ed25519 public key");
  EVP_PKEY_free(k);
  return rc;
}

int bundle_privkey_public(const char *key_pem, size_t key_len, unsigned char out[BUNDLE_KEY_LEN],
                          char *err, size_t errsize) {
  EVP_PKEY *k = key_len <= INT32_MAX ? read_private(key_pem, key_len) : NULL;
  int rc = 0;
  if (k == NULL || raw_public(k, out) != 0)
    rc = fail(EMB_EBADSIG, err, errsize,
              "not an unencrypted Ed25519 private key in PEM (make one with `embargo lists "
              "keygen`)");
  EVP_PKEY_free(k);
  return rc;
}

/* BIO's contents as a NUL-terminated copy, or NULL. */
static char *bio_text(BIO *bio) {
  char *mem = NULL, *copy;
  long n = BIO_get_mem_data(bio, &mem);
  if (n <= 0 || (copy = malloc((size_t)n + 1)) == NULL)
    return NULL;
  memcpy(copy, mem, (size_t)n);
  copy[n] = '\0';
  return copy;
}

int bundle_keygen(char **priv_pem, char **pub_pem, char *err, size_t errsize) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
  int rc = EMB_EBADSIG;
  *priv_pem = *pub_pem = NULL;
  if (k != NULL && priv != NULL && pub != NULL &&
      PEM_write_bio_PrivateKey(priv, k, NULL, NULL, 0, NULL, NULL) == 1 &&
      PEM_write_bio_PUBKEY(pub, k) == 1) {
    *priv_pem = bio_text(priv);
    *pub_pem = bio_text(pub);
    rc = *priv_pem != NULL && *pub_pem != NULL ? 0 : -ENOMEM;
  }
  if (rc != 0) {
    free(*priv_pem);
    free(*pub_pem);
    *priv_pem = *pub_pem = NULL;
    fail(rc, err, errsize, "cannot make an Ed25519 key pair");
  }
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(k);
  return rc;
}

/* ---- signing ----------------------------------------------------------------- */

static int by_name(const void *a, const void *b) {
  return strcmp((*(const struct bundle_file *const *)a)->name,
                (*(const struct bundle_file *const *)b)->name);
}

/* Checks IN's names and sizes and sorts its files into SORTED. */
static int check_input(const struct bundle_input *in, const struct bundle_file **sorted, char *err,
                       size_t errsize) {
  size_t total = 0;
  if (in->nfiles > BUNDLE_MAX_FILES)
    return fail(EMB_EBADBUNDLE, err, errsize, "%zu files: a bundle holds at most %d", in->nfiles,
                BUNDLE_MAX_FILES);
  if (in->serial == 0 || in->serial > INT64_MAX)
    return fail(EMB_EBADBUNDLE, err, errsize, "serial must be from 1 to %lld",
                (long long)INT64_MAX);
  for (size_t i = 0; i < in->nfiles; i++) {
    sorted[i] = &in->files[i];
    if (!bundle_name_ok(in->files[i].name))
      return fail(EMB_EBADBUNDLE, err, errsize,
                  "%s: a list file name is [a-z0-9][a-z0-9_-]*.yaml, at most %d characters",
                  in->files[i].name, BUNDLE_NAME_MAX);
    total += in->files[i].len;
    if (in->files[i].len > BUNDLE_MAX_BYTES || total > BUNDLE_MAX_BYTES - MANIFEST_MAX)
      return fail(EMB_EBADBUNDLE, err, errsize, "the files add up to more than %u bytes",
                  BUNDLE_MAX_BYTES - MANIFEST_MAX);
  }
  if (in->nfiles > 0)
    qsort(sorted, in->nfiles, sizeof(*sorted), by_name);
  for (size_t i = 1; i < in->nfiles; i++)
    if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
      return fail(EMB_EBADBUNDLE, err, errsize, "%s: named twice", sorted[i]->name);
  return 0;
}

/* Writes the signed part of the manifest into BUF (MANIFEST_MAX bytes).
 * Returns its length, or 0 when a digest cannot be computed. */
static size_t write_manifest(const struct bundle_input *in, const struct bundle_file **sorted,
                             const char *key_id, char *buf) {
  char created[32], hex[65];
  size_t used;
  rfc3339_format(in->created, created, sizeof(created));
  used = (size_t)snprintf(buf, MANIFEST_MAX, "%s\nserial %llu\ncreated %s\nkey %s\n", BUNDLE_MAGIC,
                          (unsigned long long)in->serial, created, key_id);
  for (size_t i = 0; i < in->nfiles; i++) {
    if (!sha256_hex(sorted[i]->data, sorted[i]->len, hex))
      return 0;
    used += (size_t)snprintf(buf + used, MANIFEST_MAX - used, "file %s %zu %s\n", sorted[i]->name,
                             sorted[i]->len, hex);
  }
  return used;
}

static int sign(EVP_PKEY *k, const char *msg, size_t len, unsigned char sig[SIG_LEN]) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  size_t siglen = SIG_LEN;
  int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
           EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)msg, len) == 1 &&
           siglen == SIG_LEN;
  EVP_MD_CTX_free(ctx);
  return ok ? 0 : -1;
}

/* Manifest, signature line and the files into one new buffer. */
static char *assemble(const char *manifest, size_t mlen, const unsigned char sig[SIG_LEN],
                      const struct bundle_file **sorted, size_t n, size_t *outlen) {
  unsigned char b64[SIG_B64_LEN + 1];
  size_t total = mlen + strlen("signature ") + SIG_B64_LEN + 1, used;
  char *out;
  for (size_t i = 0; i < n; i++)
    total += sorted[i]->len;
  if ((out = malloc(total + 1)) == NULL) /* sprintf ends the signature line with a NUL */
    return NULL;
  EVP_EncodeBlock(b64, sig, SIG_LEN);
  memcpy(out, manifest, mlen);
  used = mlen + (size_t)sprintf(out + mlen, "signature %s\n", (const char *)b64);
  for (size_t i = 0; i < n; i++) {
    memcpy(out + used, sorted[i]->data, sorted[i]->len);
    used += sorted[i]->len;
  }
  *outlen = used;
  return out;
}

int bundle_sign(const struct bundle_input *in, const char *key_pem, size_t key_len, char **out,
                size_t *outlen, char *err, size_t errsize) {
  const struct bundle_file **sorted = calloc(in->nfiles + 1, sizeof(*sorted));
  char *manifest = malloc(MANIFEST_MAX), key_id[BUNDLE_KEY_ID_LEN + 1];
  unsigned char pub[BUNDLE_KEY_LEN], sig[SIG_LEN];
  EVP_PKEY *k = NULL;
  size_t mlen;
  int rc = -ENOMEM;

  *out = NULL;
  if (sorted == NULL || manifest == NULL) {
    fail(rc, err, errsize, "out of memory");
    goto cleanup;
  }
  if ((rc = check_input(in, sorted, err, errsize)) != 0)
    goto cleanup;
  rc = EMB_EBADSIG;
  if ((k = key_len <= INT32_MAX ? read_private(key_pem, key_len) : NULL) == NULL ||
      raw_public(k, pub) != 0) {
    fail(rc, err, errsize,
         "not an unencrypted Ed25519 private key in PEM (make one with "
         "`embargo lists keygen`)");
    goto cleanup;
  }
  bundle_key_id(pub, key_id);
  if ((mlen = write_manifest(in, sorted, key_id, manifest)) == 0 ||
      sign(k, manifest, mlen, sig) != 0) {
    fail(rc, err, errsize, "cannot sign the manifest");
    goto cleanup;
  }
  rc = -ENOMEM;
  if ((*out = assemble(manifest, mlen, sig, sorted, in->nfiles, outlen)) == NULL) {
    fail(rc, err, errsize, "out of memory");
    goto cleanup;
  }
  rc = 0;
cleanup:
  EVP_PKEY_free(k);
  free(manifest);
  free(sorted);
  return rc;
}

/* ---- checking -------------------------------------------------------------- */

/* Reads lines of the manifest one at a time. */
struct cursor {
  const char *p, *end;
};

/* The next line (without its LF) into *LINE / *LEN; false at the end or on
 * a line that does not end in LF or holds a byte outside printable ASCII. */
static bool take_line(struct cursor *c, const char **line, size_t *len) {
  const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
  if (nl == NULL)
    return false;
  for (const char *q = c->p; q < nl; q++)
    if (*q < 0x20 || *q > 0x7e)
      return false;
  *line = c->p;
  *len = (size_t)(nl - c->p);
  c->p = nl + 1;
  return true;
}

/* If LINE starts with KEY and a space, the rest into *VALUE / *VLEN. */
static bool field(const char *line, size_t len, const char *key, const char **value, size_t *vlen) {
  size_t klen = strlen(key);
  if (len <= klen + 1 || memcmp(line, key, klen) != 0 || line[klen] != ' ')
    return false;
  *value = line + klen + 1;
  *vlen = len - klen - 1;
  return true;
}

/* A decimal without sign or leading zeros, at most MAX. */
static bool parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
    return false;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > max)
    return false;
  *out = v;
  return true;
}

static bool is_hex(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* "file NAME SIZE SHA256" into F (data not set). */
static bool parse_file_line(const char *v, size_t vlen, struct bundle_file *f) {
  const char *sp1 = memchr(v, ' ', vlen), *sp2;
  uint64_t size;
  if (sp1 == NULL || (size_t)(sp1 - v) > BUNDLE_NAME_MAX)
    return false;
  sp2 = memchr(sp1 + 1, ' ', (size_t)(v + vlen - sp1 - 1));
  if (sp2 == NULL || v + vlen - sp2 - 1 != 64 || !is_hex(sp2 + 1, 64))
    return false;
  memcpy(f->name, v, (size_t)(sp1 - v));
  f->name[sp1 - v] = '\0';
  if (!bundle_name_ok(f->name) ||
      !parse_decimal(sp1 + 1, (size_t)(sp2 - sp1 - 1), BUNDLE_MAX_BYTES, &size))
    return false;
  f->len = (size_t)size;
  memcpy(f->sha256, sp2 + 1, 64);
  f->sha256[64] = '\0';
  return true;
}

/* The header lines: magic, serial, created, key. */
static int parse_head(struct cursor *c, struct bundle *b, char *err, size_t errsize) {
  const char *line, *v;
  size_t len, vlen;
  uint64_t serial;
  char text[40];
  if (!take_line(c, &line, &len) || len != strlen(BUNDLE_MAGIC) ||
      memcmp(line, BUNDLE_MAGIC, len) != 0)
    return fail(EMB_EBADBUNDLE, err, errsize, "not a list bundle (the first line is not \"%s\")",
                BUNDLE_MAGIC);
  if (!take_line(c, &line, &len) || !field(line, len, "serial", &v, &vlen) ||
      !parse_decimal(v, vlen, INT64_MAX, &serial) || serial == 0)
    return fail(EMB_EBADBUNDLE, err, errsize, "line 2: expected \"serial N\" (1 to %lld)",
                (long long)INT64_MAX);
  b->serial = serial;
  if (!take_line(c, &line, &len) || !field(line, len, "created", &v, &vlen) ||
      vlen >= sizeof(text) || rfc3339_parse(v, vlen, &b->created) != 0)
    return fail(EMB_EBADBUNDLE, err, errsize, "line 3: expected \"created\" and an RFC 3339 time");
  if (!take_line(c, &line, &len) || !field(line, len, "key", &v, &vlen) ||
      vlen != BUNDLE_KEY_ID_LEN || !is_hex(v, vlen))
    return fail(EMB_EBADBUNDLE, err, errsize, "line 4: expected \"key\" and %d hex digits",
                BUNDLE_KEY_ID_LEN);
  memcpy(b->key_id, v, vlen);
  b->key_id[vlen] = '\0';
  return 0;
}

/* The file lines up to the signature line; *SIG_B64 receives its value and
 * *MANIFEST_END where the signed part ends. */
static int parse_files(struct cursor *c, struct bundle *b, const char **sig_b64,
                       const char **manifest_end, char *err, size_t errsize) {
  const char *line, *v;
  size_t len, vlen;
  for (unsigned lineno = 5;; lineno++) {
    const char *start = c->p;
    if (!take_line(c, &line, &len))
      return fail(EMB_EBADBUNDLE, err, errsize, "line %u: the manifest ends without a signature",
                  lineno);
    if (field(line, len, "signature", &v, &vlen)) {
      if (vlen != SIG_B64_LEN)
        return fail(EMB_EBADBUNDLE, err, errsize, "line %u: a signature is %d base64 characters",
                    lineno, SIG_B64_LEN);
      *sig_b64 = v;
      *manifest_end = start;
      return 0;
    }
    struct bundle_file *f = &b->files[b->nfiles];
    if (b->nfiles == BUNDLE_MAX_FILES || !field(line, len, "file", &v, &vlen) ||
        !parse_file_line(v, vlen, f))
      return fail(EMB_EBADBUNDLE, err, errsize,
                  "line %u: expected \"file NAME SIZE SHA256\" (at most %d) or \"signature\"",
                  lineno, BUNDLE_MAX_FILES);
    if (b->nfiles > 0 && strcmp(b->files[b->nfiles - 1].name, f->name) >= 0)
      return fail(EMB_EBADBUNDLE, err, errsize,
                  "line %u: %s: file names must be distinct and in ascending order", lineno,
                  f->name);
    b->nfiles++;
  }
}

static bool verify(const unsigned char pubkey[BUNDLE_KEY_LEN], const char *msg, size_t len,
                   const char *sig_b64) {
  unsigned char sig[SIG_B64_LEN]; /* 66 decoded bytes: 64 and the padding's two */
  EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pubkey, BUNDLE_KEY_LEN);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = k != NULL && ctx != NULL && sig_b64[SIG_B64_LEN - 2] == '=' &&
            sig_b64[SIG_B64_LEN - 1] == '=' &&
            EVP_DecodeBlock(sig, (const unsigned char *)sig_b64, SIG_B64_LEN) == SIG_LEN + 2 &&
            EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
            EVP_DigestVerify(ctx, sig, SIG_LEN, (const unsigned char *)msg, len) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(k);
  ERR_clear_error();
  return ok;
}

/* Points each file at its bytes after the signature line and checks them. */
static int check_files(struct bundle *b, const char *payload, char *err, size_t errsize) {
  size_t left = (size_t)(b->bytes + b->len - payload), want = 0;
  char hex[65];
  for (size_t i = 0; i < b->nfiles; i++)
    want += b->files[i].len;
  if (want != left)
    return fail(EMB_EBADDIGEST, err, errsize,
                "the files take %zu bytes after the manifest, which declares %zu", left, want);
  for (size_t i = 0; i < b->nfiles; i++) {
    struct bundle_file *f = &b->files[i];
    f->data = payload;
    payload += f->len;
    if (!sha256_hex(f->data, f->len, hex))
      return fail(-ENOMEM, err, errsize, "cannot compute a SHA-256");
    if (strcmp(hex, f->sha256) != 0)
      return fail(EMB_EBADDIGEST, err, errsize, "%s: SHA-256 %s, the manifest says %s", f->name,
                  hex, f->sha256);
  }
  return 0;
}

/* Checks B's bytes (set) against PUBKEY, filling the rest of B. */
static int check(struct bundle *b, const unsigned char pubkey[BUNDLE_KEY_LEN], char *err,
                 size_t errsize) {
  struct cursor c = {b->bytes, b->bytes + (b->len < MANIFEST_MAX ? b->len : MANIFEST_MAX)};
  const char *sig_b64 = NULL, *manifest_end = NULL;
  char want_id[BUNDLE_KEY_ID_LEN + 1];
  int rc = parse_head(&c, b, err, errsize);
  if (rc == 0)
    rc = parse_files(&c, b, &sig_b64, &manifest_end, err, errsize);
  if (rc != 0)
    return rc;
  bundle_key_id(pubkey, want_id);
  if (!verify(pubkey, b->bytes, (size_t)(manifest_end - b->bytes), sig_b64)) {
    if (strcmp(want_id, b->key_id) != 0)
      return fail(EMB_EBADSIG, err, errsize,
                  "signature does not verify: the bundle names key %s, the public key is %s",
                  b->key_id, want_id);
    return fail(EMB_EBADSIG, err, errsize, "signature does not verify with public key %s", want_id);
  }
  if (!sha256_hex(b->bytes, (size_t)(manifest_end - b->bytes), b->digest))
    return fail(-ENOMEM, err, errsize, "cannot compute a SHA-256");
  return check_files(b, c.p, err, errsize);
}

int bundle_parse(const char *data, size_t len, const unsigned char pubkey[BUNDLE_KEY_LEN],
                 struct bundle **out, char *err, size_t errsize) {
  struct bundle *b = NULL;
  int rc;
  *out = NULL;
  if (len > BUNDLE_MAX_BYTES)
    return fail(EMB_EBADBUNDLE, err, errsize, "%zu bytes: a bundle is at most %u", len,
                BUNDLE_MAX_BYTES);
  if ((b = calloc(1, sizeof(*b))) == NULL || (b->bytes = malloc(len + 1)) == NULL ||
      (b->files = calloc(BUNDLE_MAX_FILES, sizeof(*b->files))) == NULL) {
    bundle_free(b);
    return fail(-ENOMEM, err, errsize, "out of memory");
  }
  memcpy(b->bytes, data, len);
  b->bytes[len] = '\0';
  b->len = len;
  if ((rc = check(b, pubkey, err, errsize)) != 0) {
    bundle_free(b);
    return rc;
  }
  *out = b;
  return 0;
}
