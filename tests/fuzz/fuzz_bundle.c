/* libFuzzer target for the signed list bundle parser, the first reader of
 * bytes fetched from lists.url. Each input is parsed twice: as it is (a
 * signature it cannot have is refused), and re-signed, its "signature" line
 * given a valid signature of the bytes before it with the target's own
 * key, so that the checks behind the signature (sizes, digests, what
 * follows the manifest) are reached. The target traps when a contract of
 * bundle.h is broken: a refusal without a reason or with an unknown code, a
 * re-signed manifest refused for its signature, or an accepted bundle
 * whose files are not the manifest's (count, names in ascending order,
 * sizes that cover the bytes after the manifest exactly, digests). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "config/bundle.h"
#include "filters/err.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

#define SIG_B64_LEN 88

static EVP_PKEY *key;
static unsigned char pub[BUNDLE_KEY_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static const unsigned char seed[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                         12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                         23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
  size_t n = sizeof(pub);
  (void)argc;
  (void)argv;
  key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
  CHECK(key != NULL && EVP_PKEY_get_raw_public_key(key, pub, &n) == 1 && n == sizeof(pub));
  return 0;
}

/* Ed25519 of MSG (LEN bytes) in base64 into OUT (SIG_B64_LEN + 1 bytes). */
static void sign_b64(const unsigned char *msg, size_t len, char *out) {
  unsigned char sig[64];
  size_t siglen = sizeof(sig);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  CHECK(ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 && siglen == sizeof(sig));
  EVP_MD_CTX_free(ctx);
  CHECK(EVP_EncodeBlock((unsigned char *)out, sig, sizeof(sig)) == SIG_B64_LEN);
}

/* DATA with its first "signature" line (one at the start of a line) given
 * a valid signature of the bytes before that line; NULL when it has none.
 * *LEN receives the copy's length (caller frees). */
static unsigned char *resign(const uint8_t *data, size_t size, size_t *len) {
  static const char field[] = "\nsignature ";
  const size_t flen = sizeof(field) - 1;
  const uint8_t *at = NULL, *eol;
  unsigned char *out;
  for (size_t i = 0; i + flen <= size && at == NULL; i++)
    if (memcmp(data + i, field, flen) == 0)
      at = data + i + 1;
  if (at == NULL)
    return NULL;
  eol = memchr(at, '\n', size - (size_t)(at - data));
  size_t head = (size_t)(at - data), tail = eol != NULL ? size - (size_t)(eol - data) : 0;
  *len = head + flen - 1 + SIG_B64_LEN + tail;
  CHECK((out = malloc(*len + 1)) != NULL);
  memcpy(out, data, head);
  memcpy(out + head, field + 1, flen - 1);
  sign_b64(data, head, (char *)out + head + flen - 1);
  if (tail > 0)
    memcpy(out + head + flen - 1 + SIG_B64_LEN, eol, tail);
  return out;
}

static bool known_code(int rc) {
  return rc == EMB_EBADBUNDLE || rc == EMB_EBADSIG || rc == EMB_EBADDIGEST || rc == -ENOMEM;
}

/* An accepted bundle is what its manifest says, and its bytes are DATA's. */
static void check_accepted(const struct bundle *b, const unsigned char *data, size_t len) {
  size_t total = 0;
  CHECK(b->len == len && memcmp(b->bytes, data, len) == 0);
  CHECK(b->serial >= 1 && b->serial <= INT64_MAX && b->nfiles <= BUNDLE_MAX_FILES);
  for (size_t i = 0; i < b->nfiles; i++) {
    const struct bundle_file *f = &b->files[i];
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];
    CHECK(bundle_name_ok(f->name));
    CHECK(i == 0 || strcmp(b->files[i - 1].name, f->name) < 0);
    CHECK(f->data >= b->bytes && f->len <= b->len && f->data + f->len <= b->bytes + b->len);
    CHECK(i == 0 || f->data == b->files[i - 1].data + b->files[i - 1].len);
    CHECK(EVP_Digest(f->data, f->len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32);
    for (int k = 0; k < 32; k++) {
      hex[2 * k] = "0123456789abcdef"[md[k] >> 4];
      hex[2 * k + 1] = "0123456789abcdef"[md[k] & 15];
    }
    hex[64] = '\0';
    CHECK(strcmp(hex, f->sha256) == 0);
    total += f->len;
  }
  /* The files end exactly where the bytes do. */
  CHECK(b->nfiles == 0 ||
        b->files[b->nfiles - 1].data + b->files[b->nfiles - 1].len == b->bytes + b->len);
  CHECK(total <= b->len);
}

static void parse(const unsigned char *data, size_t len, bool signed_by_us) {
  struct bundle *b = NULL;
  char err[1200] = "";
  unsigned char *copy = malloc(len ? len : 1); /* exact size: ASan sees a read past it */
  CHECK(copy != NULL);
  memcpy(copy, data, len);
  int rc = bundle_parse((const char *)copy, len, pub, &b, err, sizeof(err));
  if (rc == 0) {
    CHECK(b != NULL);
    check_accepted(b, copy, len);
    bundle_free(b);
  } else {
    CHECK(b == NULL && known_code(rc) && err[0] != '\0');
    CHECK(!signed_by_us || rc != EMB_EBADSIG);
  }
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t len = 0;
  unsigned char *resigned;
  if (size > BUNDLE_MAX_BYTES + 1)
    return 0;
  parse(data, size, false);
  if ((resigned = resign(data, size, &len)) != NULL) {
    parse(resigned, len, true);
    free(resigned);
  }
  return 0;
}
