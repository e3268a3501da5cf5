/* The snapshot's sources: the SHA-256 of each file it was built from, and
 * the version derived from them, so a decision line names exactly the rule
 * text that was in force. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "config/load.h"
#include "filters/err.h"
#include "filters/policy.h"

#define VERSION_HEX 16 /* 64 bits of the digest: a short, stable name */

int load_note_source(struct loader *ld, const char *name, const char *data, size_t len) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
    snprintf(ld->err, ld->errsize, "%s: cannot compute its SHA-256", name);
    return EMB_ECONFIG;
  }
  load_hex(md, mdlen, hex);
  if (policy_add_source(ld->cfg->policy, name, hex) < 0) {
    snprintf(ld->err, ld->errsize, "out of memory");
    return -ENOMEM;
  }
  return 0;
}

/* The version is the SHA-256 over each source's name and digest in load
 * order (one "name\tdigest\n" line each), cut to VERSION_HEX hex digits:
 * the same files give the same version on every host and every restart. */
int load_set_version(struct loader *ld) {
  const struct policy *p = ld->cfg->policy;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
  for (size_t i = 0; ok && i < policy_source_count(p); i++) {
    const struct policy_source *s = policy_source_at(p, i);
    ok = EVP_DigestUpdate(ctx, s->name, strlen(s->name)) == 1 &&
         EVP_DigestUpdate(ctx, "\t", 1) == 1 &&
         EVP_DigestUpdate(ctx, s->sha256, strlen(s->sha256)) == 1 &&
         EVP_DigestUpdate(ctx, "\n", 1) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    snprintf(ld->err, ld->errsize, "cannot compute the policy version");
    return EMB_ECONFIG;
  }
  load_hex(md, mdlen, hex);
  hex[VERSION_HEX] = '\0';
  policy_set_version(ld->cfg->policy, hex);
  return 0;
}
