/* certs/: making and loading the CA (each refusal and its message), and
 * minted leaves (names, validity, extensions, signature, name constraints,
 * the LRU bound). Real OpenSSL objects; files in a temporary directory. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/ca.h"
#include "certs/mint.h"
#include "filters/err.h"

static char dir[64];
static char err[1024];
static struct ca *ca;
static int64_t now;

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/embargo-certs-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  ca = NULL;
  err[0] = '\0';
  now = (int64_t)time(NULL);
}

static void teardown(void) {
  char cmd[128];
  ca_free(ca);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(certs, .init = setup, .fini = teardown);

static const char *path_in(const char *sub, const char *file) {
  static char buf[4][256];
  static int i;
  char *p = buf[i++ % 4];
  snprintf(p, 256, "%s%s%s/%s", dir, sub[0] ? "/" : "", sub, file);
  return p;
}

/* Makes a CA in DIR/SUB; PERMITTED may be NULL. */
static const char *make_ca(const char *sub, const char *const *permitted, size_t n) {
  static char d[128];
  struct ca_init_opts o = {
      .subject = "Example Site", .permitted = permitted, .npermitted = n, .days = 30, .now = now};
  snprintf(d, sizeof(d), "%s/%s", dir, sub);
  cr_assert_eq(ca_init(d, &o, err, sizeof(err)), 0, "%s", err);
  return d;
}

static void expect_load_error(const char *d, const char *want) {
  struct ca *got = NULL;
  cr_assert_eq(ca_load(d, now, &got, err, sizeof(err)), EMB_ECERT, "loaded: %s", d);
  cr_assert_null(got);
  cr_assert(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
}

Test(certs, init_makes_a_private_key_and_a_ca_that_loads) {
  const char *d = make_ca("ca", NULL, 0);
  struct stat st;
  cr_assert_eq(stat(path_in("ca", CA_KEY_FILE), &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  cr_assert_eq(ca_load(d, now, &ca, err, sizeof(err)), 0, "%s", err);
  X509 *x = ca_cert(ca);
  cr_assert(X509_get_extension_flags(x) & EXFLAG_CA);
  cr_assert(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
  cr_assert_eq(EVP_PKEY_get_base_id(ca_key(ca)), EVP_PKEY_EC);
  cr_assert_str_eq(ca_subject(ca), "O = Example Site, CN = Example Site Embargo block-page CA");
  cr_assert_eq(strlen(ca_fingerprint(ca)), 32 * 3 - 1);
}

Test(certs, init_never_overwrites_a_ca) {
  struct ca_init_opts o = {.subject = "Example Site", .days = 30, .now = now};
  const char *d = make_ca("ca", NULL, 0);
  cr_assert_eq(ca_init(d, &o, err, sizeof(err)), EMB_ECERT);
  cr_assert(strstr(err, "a CA is already there") != NULL, "%s", err);
}

Test(certs, init_refuses_a_permitted_name_that_is_not_dns) {
  const char *bad[] = {"Kaspersky.COM/x"};
  struct ca_init_opts o = {
      .subject = "S", .permitted = bad, .npermitted = 1, .days = 1, .now = now};
  cr_assert_eq(ca_init(path_in("", "ca"), &o, err, sizeof(err)), EMB_ECERT);
  cr_assert(strstr(err, "--permit 'Kaspersky.COM/x'") != NULL, "%s", err);
  cr_assert_neq(access(path_in("ca", CA_KEY_FILE), F_OK), 0, "a key was left behind");
}

Test(certs, key_readable_by_others_is_refused) {
  const char *d = make_ca("ca", NULL, 0);
  cr_assert_eq(chmod(path_in("ca", CA_KEY_FILE), 0644), 0);
  expect_load_error(d, "ca.key: private key is accessible to group or others (mode 0644); "
                       "chmod 600 it");
  cr_assert_eq(chmod(path_in("ca", CA_KEY_FILE), 0640), 0);
  expect_load_error(d, "(mode 0640)");
}

Test(certs, expired_and_not_yet_valid_cas_are_refused) {
  const char *d = make_ca("ca", NULL, 0);
  now += 31 * 86400;
  expect_load_error(d, "ca.crt: CA certificate expired at ");
  now -= 2 * 31 * 86400;
  expect_load_error(d, "ca.crt: CA certificate not valid before ");
}

Test(certs, missing_and_garbage_files_are_refused) {
  expect_load_error(path_in("", "nowhere"), "nowhere/ca.crt: cannot read: No such file");
  const char *d = make_ca("ca", NULL, 0); /* static: valid until the next make_ca */
  FILE *f = fopen(path_in("ca", CA_CERT_FILE), "w");
  fputs("not a certificate\n", f);
  fclose(f);
  expect_load_error(d, "ca.crt: not a PEM certificate");
  d = make_ca("ca2", NULL, 0);
  f = fopen(path_in("ca2", CA_KEY_FILE), "w");
  fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
  fclose(f);
  expect_load_error(d, "ca.key: not a PEM private key");
}

Test(certs, key_of_another_ca_is_refused) {
  char d[128];
  snprintf(d, sizeof(d), "%s", make_ca("a", NULL, 0));
  make_ca("b", NULL, 0);
  cr_assert_eq(rename(path_in("b", CA_KEY_FILE), path_in("a", CA_KEY_FILE)), 0);
  expect_load_error(d, "ca.crt: does not match the key in ca.key");
}

/* Writes LEAF and KEY as DIR/SUB's CA files. */
static void write_as_ca(const char *sub, X509 *leaf, EVP_PKEY *key) {
  char d[128];
  snprintf(d, sizeof(d), "%s/%s", dir, sub);
  cr_assert_eq(mkdir(d, 0700), 0);
  FILE *f = fopen(path_in(sub, CA_CERT_FILE), "w");
  PEM_write_X509(f, leaf);
  fclose(f);
  f = fopen(path_in(sub, CA_KEY_FILE), "w");
  PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  chmod(path_in(sub, CA_KEY_FILE), 0600);
}

Test(certs, a_leaf_is_not_a_ca) {
  X509 *leaf = NULL;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 4);
  cr_assert_eq(minter_leaf(m, "leaf.example", now, &leaf), 0);
  write_as_ca("leaf", leaf, minter_key(m));
  minter_free(m);
  expect_load_error(path_in("", "leaf"), "not a CA certificate (basicConstraints CA:TRUE missing)");
}

/* ---- minting ----------------------------------------------------------------- */

static bool has_san(X509 *x, int type, const char *want) {
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  bool found = false;
  for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
    GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (g->type == type && type == GEN_DNS)
      found = strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), want) == 0;
    if (g->type == type && type == GEN_IPADD)
      found = ASN1_STRING_length(g->d.iPAddress) == 4 &&
              memcmp(ASN1_STRING_get0_data(g->d.iPAddress), want, 4) == 0;
  }
  int n = names != NULL ? sk_GENERAL_NAME_num(names) : 0;
  GENERAL_NAMES_free(names);
  return found && n == 1;
}

/* Verifies LEAF for HOST against the CA, as a TLS client would. */
static int verify(X509 *leaf, const char *host) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  X509_STORE_add_cert(store, ca_cert(ca));
  X509_STORE_CTX_init(ctx, store, leaf, NULL);
  X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
  if (host[0] >= '0' && host[0] <= '9')
    X509_VERIFY_PARAM_set1_ip_asc(p, host);
  else
    X509_VERIFY_PARAM_set1_host(p, host, 0);
  int rc = X509_verify_cert(ctx) == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return rc;
}

Test(certs, minted_leaf_names_the_sni_and_verifies_against_the_ca) {
  X509 *leaf = NULL;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 8);
  cr_assert_eq(minter_leaf(m, "s07.upd.kaspersky.com", now, &leaf), 0);
  cr_assert(has_san(leaf, GEN_DNS, "s07.upd.kaspersky.com"));
  cr_assert_eq(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca_cert(ca))), 0);
  cr_assert_eq(verify(leaf, "s07.upd.kaspersky.com"), 0);
  cr_assert_eq(verify(leaf, "s08.upd.kaspersky.com"), X509_V_ERR_HOSTNAME_MISMATCH);
  cr_assert(!(X509_get_extension_flags(leaf) & EXFLAG_CA));
  cr_assert_eq(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
  cr_assert_eq(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
  minter_free(m);
}

Test(certs, minted_leaf_is_short_lived_and_back_dated) {
  X509 *leaf = NULL;
  int day, sec;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 8);
  cr_assert_eq(minter_leaf(m, "a.example", now, &leaf), 0);
  ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)now);
  cr_assert_eq(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(leaf), t), 1);
  cr_assert_eq(day * 86400 + sec, MINT_BACKDATE_SECONDS);
  cr_assert_eq(ASN1_TIME_diff(&day, &sec, t, X509_get0_notAfter(leaf)), 1);
  cr_assert_eq(day * 86400 + sec, MINT_LIFETIME_SECONDS);
  ASN1_TIME_free(t);
  minter_free(m);
}

Test(certs, ip_literal_gets_an_ip_subject_alt_name) {
  X509 *leaf = NULL;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 8);
  cr_assert_eq(minter_leaf(m, "192.0.2.7", now, &leaf), 0);
  cr_assert(has_san(leaf, GEN_IPADD, "\xc0\x00\x02\x07"));
  cr_assert_eq(verify(leaf, "192.0.2.7"), 0);
  minter_free(m);
}

Test(certs, serials_are_random_128_bit_numbers) {
  X509 *a = NULL, *b = NULL;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 8);
  cr_assert_eq(minter_leaf(m, "a.example", now, &a), 0);
  BIGNUM *sa = ASN1_INTEGER_to_BN(X509_get0_serialNumber(a), NULL);
  cr_assert_eq(minter_leaf(m, "b.example", now, &b), 0);
  BIGNUM *sb = ASN1_INTEGER_to_BN(X509_get0_serialNumber(b), NULL);
  cr_assert_eq(BN_num_bytes(sa), 16);
  cr_assert_eq(BN_num_bytes(sb), 16);
  cr_assert_neq(BN_cmp(sa, sb), 0);
  cr_assert(!BN_is_negative(sa));
  BN_free(sa);
  BN_free(sb);
  minter_free(m);
}

Test(certs, name_constraints_bind_the_ca_to_the_permitted_domains) {
  const char *permitted[] = {"kaspersky.com", ".kaspersky-labs.com"};
  X509 *leaf = NULL;
  cr_assert_eq(ca_load(make_ca("ca", permitted, 2), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 8);
  cr_assert_eq(minter_leaf(m, "s07.upd.kaspersky.com", now, &leaf), 0);
  cr_assert_eq(verify(leaf, "s07.upd.kaspersky.com"), 0);
  cr_assert_eq(minter_leaf(m, "products.s.kaspersky-labs.com", now, &leaf), 0);
  cr_assert_eq(verify(leaf, "products.s.kaspersky-labs.com"), 0);
  cr_assert_eq(minter_leaf(m, "www.example.com", now, &leaf), 0);
  cr_assert_eq(verify(leaf, "www.example.com"), X509_V_ERR_PERMITTED_VIOLATION);
  cr_assert_eq(minter_leaf(m, "192.0.2.7", now, &leaf), 0);
  cr_assert_eq(verify(leaf, "192.0.2.7"), X509_V_ERR_EXCLUDED_VIOLATION);
  minter_free(m);
}

Test(certs, cache_returns_the_same_leaf_and_stays_within_its_bound) {
  X509 *first = NULL, *leaf = NULL;
  struct minter_stats st;
  char name[32];
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 3);
  cr_assert_eq(minter_leaf(m, "n0.example", now, &first), 0);
  cr_assert_eq(minter_leaf(m, "n0.example", now, &leaf), 0);
  cr_assert_eq(leaf, first);
  for (int i = 1; i <= 100; i++) {
    snprintf(name, sizeof(name), "n%d.example", i);
    cr_assert_eq(minter_leaf(m, name, now, &leaf), 0);
    minter_stats(m, &st);
    cr_assert_leq(st.entries, 3);
  }
  cr_assert_eq(minter_leaf(m, "n99.example", now, &leaf), 0); /* still cached */
  minter_stats(m, &st);
  cr_assert_eq(st.minted, 101);
  cr_assert_eq(st.hits, 2);
  cr_assert_eq(st.evicted, 98);
  cr_assert_eq(minter_leaf(m, "n0.example", now, &leaf), 0); /* evicted: minted anew */
  minter_stats(m, &st);
  cr_assert_eq(st.minted, 102);
  minter_free(m);
}

Test(certs, least_recently_used_leaf_is_evicted_first) {
  X509 *leaf = NULL;
  struct minter_stats st;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 2);
  minter_leaf(m, "a.example", now, &leaf);
  minter_leaf(m, "b.example", now, &leaf);
  minter_leaf(m, "a.example", now, &leaf); /* a is now the most recent */
  minter_leaf(m, "c.example", now, &leaf); /* evicts b */
  minter_leaf(m, "a.example", now, &leaf);
  minter_stats(m, &st);
  cr_assert_eq(st.minted, 3);
  cr_assert_eq(st.hits, 2);
  minter_free(m);
}

Test(certs, leaf_near_its_end_is_minted_again) {
  X509 *a = NULL, *b = NULL;
  struct minter_stats st;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 4);
  cr_assert_eq(minter_leaf(m, "a.example", now, &a), 0);
  cr_assert_eq(
      minter_leaf(m, "a.example", now + MINT_LIFETIME_SECONDS - MINT_REUSE_MARGIN_SECONDS, &b), 0);
  minter_stats(m, &st);
  cr_assert_eq(st.minted, 2);
  cr_assert_eq(st.entries, 1);
  minter_free(m);
}

Test(certs, a_name_minted_twice_at_once_keeps_the_first_leaf) {
  X509 *leaf = NULL;
  struct minter_stats st;
  cr_assert_eq(ca_load(make_ca("ca", NULL, 0), now, &ca, err, sizeof(err)), 0, "%s", err);
  struct minter *m = minter_new(ca, 4);
  cr_assert(!minter_lookup(m, "a.example", now, &leaf));
  X509 *one = minter_make(m, "a.example", now), *two = minter_make(m, "a.example", now);
  cr_assert(one != NULL && two != NULL);
  cr_assert_eq(minter_insert(m, "a.example", now, one), one);
  cr_assert_eq(minter_insert(m, "a.example", now, two), one); /* two is freed */
  cr_assert(minter_lookup(m, "a.example", now, &leaf));
  cr_assert_eq(leaf, one);
  minter_stats(m, &st);
  cr_assert_eq(st.entries, 1);
  cr_assert_eq(st.minted, 2);
  minter_free(m);
}
