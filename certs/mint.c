/* Minting leaf certificates for denied names, and their bounded LRU cache.
 *
 * Every leaf carries the same key, made once per process. A key per leaf
 * would cost a key generation per name and buy nothing: the leaves exist
 * only to show a block page for connections already denied, they live a few
 * hours, and their key sits in the same process memory as the CA key that
 * could mint any number of them. What protects clients is the CA key's
 * secrecy (and its name constraints), not the leaf key's. */
#include "certs/mint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "certs/certs-int.h"
#include "filters/err.h"

struct leaf {
  char *name;
  X509 *cert;
  int64_t reuse_until; /* minted again from this time on */
  uint32_t hash;
  struct leaf *chain;       /* next in the same bucket */
  struct leaf *prev, *next; /* LRU order: head is the most recently used */
};

/* Extensions every leaf carries, built once: constraints, key usages and
 * the authority key identifier. */
#define MINT_COMMON_EXTS 4

struct minter {
  const struct ca *ca;
  EVP_PKEY *key;
  X509_EXTENSION *common[MINT_COMMON_EXTS];
  struct leaf **buckets;
  size_t nbuckets; /* a power of two >= 2 * max */
  size_t max;
  struct leaf *head, *tail;
  struct minter_stats stats;
};

static uint32_t hash_name(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static int make_common(struct minter *m) {
  static const struct {
    int nid;
    const char *value;
  } exts[MINT_COMMON_EXTS] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_authority_key_identifier, "keyid"},
  };
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert(m->ca), NULL, NULL, NULL, 0);
  for (int i = 0; i < MINT_COMMON_EXTS; i++)
    if ((m->common[i] = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value)) == NULL)
      return -1;
  return 0;
}

struct minter *minter_new(const struct ca *ca, size_t max_entries) {
  struct minter *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return NULL;
  m->ca = ca;
  m->max = max_entries > 0 ? max_entries : 1;
  for (m->nbuckets = 16; m->nbuckets < 2 * m->max; m->nbuckets *= 2)
    ;
  m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
  m->key = EVP_EC_gen("P-256");
  if (m->buckets == NULL || m->key == NULL || make_common(m) != 0) {
    minter_free(m);
    return NULL;
  }
  return m;
}

static void leaf_free(struct leaf *l) {
  X509_free(l->cert);
  free(l->name);
  free(l);
}

void minter_free(struct minter *m) {
  if (m == NULL)
    return;
  for (struct leaf *l = m->head, *next; l != NULL; l = next) {
    next = l->next;
    leaf_free(l);
  }
  free(m->buckets);
  for (int i = 0; i < MINT_COMMON_EXTS; i++)
    X509_EXTENSION_free(m->common[i]);
  EVP_PKEY_free(m->key);
  free(m);
}

EVP_PKEY *minter_key(const struct minter *m) {
  return m->key;
}

void minter_stats(const struct minter *m, struct minter_stats *out) {
  *out = m->stats;
}

/* ---- the LRU ------------------------------------------------------------- */

static void lru_unlink(struct minter *m, struct leaf *l) {
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    m->head = l->next;
  if (l->next != NULL)
    l->next->prev = l->prev;
  else
    m->tail = l->prev;
  l->prev = l->next = NULL;
}

static void lru_push(struct minter *m, struct leaf *l) {
  l->next = m->head;
  if (m->head != NULL)
    m->head->prev = l;
  m->head = l;
  if (m->tail == NULL)
    m->tail = l;
}

static struct leaf **bucket_of(struct minter *m, uint32_t hash) {
  return &m->buckets[hash & (m->nbuckets - 1)];
}

static void cache_remove(struct minter *m, struct leaf *l) {
  struct leaf **p = bucket_of(m, l->hash);
  while (*p != l)
    p = &(*p)->chain;
  *p = l->chain;
  lru_unlink(m, l);
  m->stats.entries--;
  leaf_free(l);
}

static struct leaf *cache_find(struct minter *m, const char *name, uint32_t hash) {
  for (struct leaf *l = *bucket_of(m, hash); l != NULL; l = l->chain)
    if (l->hash == hash && strcmp(l->name, name) == 0)
      return l;
  return NULL;
}

/* Takes ownership of L; evicts the least recently used leaf beyond the bound. */
static void cache_insert(struct minter *m, struct leaf *l) {
  struct leaf **b = bucket_of(m, l->hash);
  l->chain = *b;
  *b = l;
  lru_push(m, l);
  if (++m->stats.entries > m->max) {
    cache_remove(m, m->tail);
    m->stats.evicted++;
  }
}

/* ---- minting ------------------------------------------------------------- */

static bool set_validity(X509 *x, const struct ca *ca, int64_t now) {
  int64_t until = now + MINT_LIFETIME_SECONDS;
  if (until > ca_not_after(ca))
    until = ca_not_after(ca);
  return ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now - MINT_BACKDATE_SECONDS)) != NULL &&
         ASN1_TIME_set(X509_getm_notAfter(x), (time_t)until) != NULL;
}

/* The subjectAltName: NAME alone, as a dNSName or an iPAddress. */
static bool add_san(X509 *x, const char *name) {
  unsigned char addr[16];
  int len = inet_pton(AF_INET, name, addr) == 1 ? 4 : inet_pton(AF_INET6, name, addr) == 1 ? 16 : 0;
  GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
  GENERAL_NAME *g = GENERAL_NAME_new();
  ASN1_STRING *s = len ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
  bool ok = names != NULL && g != NULL && s != NULL &&
            ASN1_STRING_set(s, len ? (const void *)addr : (const void *)name,
                            len ? len : (int)strlen(name));
  if (ok) {
    GENERAL_NAME_set0_value(g, len ? GEN_IPADD : GEN_DNS, s);
    s = NULL;
    ok = sk_GENERAL_NAME_push(names, g) > 0;
    if (ok)
      g = NULL;
  }
  ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_APPEND) == 1;
  ASN1_STRING_free(s);
  GENERAL_NAME_free(g);
  GENERAL_NAMES_free(names);
  return ok;
}

/* Subject O=Embargo block page, CN=NAME when it fits (64 characters); the
 * subjectAltName is what clients match. */
static bool set_names(X509 *x, X509 *issuer, const char *name) {
  X509_NAME *subj = X509_get_subject_name(x);

  if (!X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_ASC,
                                  (const unsigned char *)"Embargo block page", -1, -1, 0))
    return false;
  if (strlen(name) <= 64 &&
      !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0))
    return false;
  return X509_set_issuer_name(x, X509_get_subject_name(issuer)) && add_san(x, name);
}

X509 *minter_make(const struct minter *m, const char *name, int64_t now) {
  X509 *issuer = ca_cert(m->ca);
  X509 *x = X509_new();
  bool ok = x != NULL && X509_set_version(x, 2) && certs_random_serial(x) == 0 &&
            set_validity(x, m->ca, now) && set_names(x, issuer, name) && X509_set_pubkey(x, m->key);
  for (int i = 0; ok && i < MINT_COMMON_EXTS; i++)
    ok = X509_add_ext(x, m->common[i], -1) == 1;
  ok = ok && X509_sign(x, ca_key(m->ca), EVP_sha256()) > 0;
  if (!ok) {
    ERR_clear_error();
    X509_free(x);
    return NULL;
  }
  return x;
}

bool minter_lookup(struct minter *m, const char *name, int64_t now, X509 **leaf) {
  struct leaf *l = cache_find(m, name, hash_name(name));
  if (l == NULL)
    return false;
  if (now >= l->reuse_until) {
    cache_remove(m, l); /* too close to its notAfter */
    return false;
  }
  lru_unlink(m, l);
  lru_push(m, l);
  m->stats.hits++;
  *leaf = l->cert;
  return true;
}

X509 *minter_insert(struct minter *m, const char *name, int64_t now, X509 *cert) {
  uint32_t hash = hash_name(name);
  struct leaf *l = cache_find(m, name, hash);

  m->stats.minted++;
  if (l != NULL) { /* minted twice at once: keep the first */
    X509_free(cert);
    return l->cert;
  }
  if ((l = calloc(1, sizeof(*l))) == NULL || (l->name = strdup(name)) == NULL) {
    free(l);
    X509_free(cert);
    return NULL;
  }
  l->cert = cert;
  l->hash = hash;
  l->reuse_until = now + MINT_LIFETIME_SECONDS - MINT_REUSE_MARGIN_SECONDS;
  cache_insert(m, l);
  return cert;
}

int minter_leaf(struct minter *m, const char *name, int64_t now, X509 **leaf) {
  X509 *x;
  if (minter_lookup(m, name, now, leaf))
    return 0;
  if ((x = minter_make(m, name, now)) == NULL)
    return EMB_ECERT;
  if ((*leaf = minter_insert(m, name, now, x)) == NULL)
    return -ENOMEM;
  return 0;
}
