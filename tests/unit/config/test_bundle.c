/* Signed list bundles (config/bundle.c): what a signer writes is what a
 * checker accepts, and every change to a signed bundle (a file byte, a
 * manifest byte, a truncation, an extra byte, another key) is refused with
 * the right code before any file is handed out. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/bundle.h"
#include "filters/err.h"

#define CREATED INT64_C(1764305432) /* 2025-11-28T04:50:32Z */

static char *priv, *pub;
static unsigned char pubkey[BUNDLE_KEY_LEN];
static char err[512];

static const char kaspersky[] = "vendor: kaspersky\ncategories: {}\n";
static const char huawei[] = "vendor: huawei\ncategories: {}\n";

static void keys(void) {
  cr_assert_eq(bundle_keygen(&priv, &pub, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(bundle_pubkey_parse(pub, strlen(pub), pubkey, err, sizeof(err)), 0, "%s", err);
}

static void free_keys(void) {
  free(priv);
  free(pub);
}

TestSuite(bundle, .init = keys, .fini = free_keys);

/* Signs the two lists (given in reverse order) with serial SERIAL. */
static char *sign_two(uint64_t serial, size_t *len) {
  struct bundle_file files[2] = {
      {.name = "kaspersky.yaml", .data = kaspersky, .len = strlen(kaspersky)},
      {.name = "huawei.yaml", .data = huawei, .len = strlen(huawei)}};
  struct bundle_input in = {.serial = serial, .created = CREATED, .files = files, .nfiles = 2};
  char *out = NULL;
  cr_assert_eq(bundle_sign(&in, priv, strlen(priv), &out, len, err, sizeof(err)), 0, "%s", err);
  return out;
}

static int parse(const char *data, size_t len) {
  struct bundle *b = NULL;
  int rc = bundle_parse(data, len, pubkey, &b, err, sizeof(err));
  cr_assert((rc == 0) == (b != NULL));
  bundle_free(b);
  return rc;
}

Test(bundle, a_signed_bundle_verifies_with_its_files_sorted_by_name) {
  size_t len;
  char *data = sign_two(42, &len), id[BUNDLE_KEY_ID_LEN + 1];
  struct bundle *b = NULL;
  cr_assert_eq(bundle_parse(data, len, pubkey, &b, err, sizeof(err)), 0, "%s", err);
  bundle_key_id(pubkey, id);
  cr_assert_eq(b->serial, 42);
  cr_assert_eq(b->created, CREATED);
  cr_assert_str_eq(b->key_id, id);
  cr_assert_eq(b->nfiles, 2);
  cr_assert_str_eq(b->files[0].name, "huawei.yaml");
  cr_assert_str_eq(b->files[1].name, "kaspersky.yaml");
  const struct bundle_file *f = bundle_find(b, "kaspersky");
  cr_assert_not_null(f);
  cr_assert_eq(f->len, strlen(kaspersky));
  cr_assert_eq(memcmp(f->data, kaspersky, f->len), 0);
  cr_assert_null(bundle_find(b, "kaspersky.yaml"));
  cr_assert_null(bundle_find(b, "hikvision"));
  cr_assert_eq(strlen(b->digest), 64);
  bundle_free(b);
  free(data);
}

Test(bundle, the_manifest_is_plain_text_ahead_of_the_files) {
  size_t len;
  char *data = sign_two(7, &len);
  static const char head[] = "embargo-lists 1\nserial 7\ncreated 2025-11-28T04:50:32Z\nkey ";
  cr_assert_eq(strncmp(data, head, strlen(head)), 0, "%.*s", 80, data);
  cr_assert_not_null(strstr(data, "\nfile huawei.yaml 30 "));
  cr_assert_not_null(strstr(data, "\nsignature "));
  cr_assert_eq(memcmp(data + len - strlen(kaspersky), kaspersky, strlen(kaspersky)), 0);
  free(data);
}

Test(bundle, signing_the_same_input_twice_gives_the_same_bytes) {
  size_t a_len, b_len;
  char *a = sign_two(9, &a_len), *b = sign_two(9, &b_len);
  cr_assert_eq(a_len, b_len);
  cr_assert_eq(memcmp(a, b, a_len), 0); /* Ed25519 signatures are deterministic */
  free(a);
  free(b);
}

Test(bundle, a_changed_file_byte_is_a_digest_mismatch_naming_the_file) {
  size_t len;
  char *data = sign_two(1, &len);
  data[len - 3] ^= 1; /* inside kaspersky.yaml, the last file */
  cr_assert_eq(parse(data, len), EMB_EBADDIGEST);
  cr_assert_not_null(strstr(err, "kaspersky.yaml: SHA-256 "), "%s", err);
  free(data);
}

Test(bundle, a_changed_manifest_byte_breaks_the_signature) {
  size_t len;
  char *data = sign_two(1, &len);
  char *serial = strstr(data, "serial 1\n");
  serial[7] = '2'; /* a replayed bundle with its serial raised */
  cr_assert_eq(parse(data, len), EMB_EBADSIG);
  cr_assert_not_null(strstr(err, "signature does not verify with public key "), "%s", err);
  free(data);
}

Test(bundle, another_key_is_refused_naming_both_key_ids) {
  size_t len;
  char *data = sign_two(1, &len), *other_priv, *other_pub;
  unsigned char other[BUNDLE_KEY_LEN];
  char want[BUNDLE_KEY_ID_LEN + 1], have[BUNDLE_KEY_ID_LEN + 1], expect[200];
  struct bundle *b = NULL;
  cr_assert_eq(bundle_keygen(&other_priv, &other_pub, err, sizeof(err)), 0);
  cr_assert_eq(bundle_pubkey_parse(other_pub, strlen(other_pub), other, err, sizeof(err)), 0);
  cr_assert_eq(bundle_parse(data, len, other, &b, err, sizeof(err)), EMB_EBADSIG);
  bundle_key_id(other, want);
  bundle_key_id(pubkey, have);
  snprintf(expect, sizeof(expect),
           "signature does not verify: the bundle names key %s, the public key is %s", have, want);
  cr_assert_str_eq(err, expect);
  free(other_priv);
  free(other_pub);
  free(data);
}

Test(bundle, a_byte_after_the_last_file_is_refused) {
  size_t len;
  char *data = sign_two(1, &len);
  char *longer = malloc(len + 1);
  memcpy(longer, data, len);
  longer[len] = '\n';
  cr_assert_eq(parse(longer, len + 1), EMB_EBADDIGEST);
  cr_assert_str_eq(err, "the files take 64 bytes after the manifest, which declares 63");
  free(longer);
  free(data);
}

Test(bundle, every_truncation_and_every_flipped_byte_is_refused) {
  size_t len;
  char *data = sign_two(3, &len);
  char *copy = malloc(len);
  for (size_t n = 0; n < len; n++)
    cr_assert_neq(parse(data, n), 0, "a bundle cut to %zu of %zu bytes was accepted", n, len);
  for (size_t i = 0; i < len; i++) {
    memcpy(copy, data, len);
    copy[i] ^= 0x20;
    cr_assert_neq(parse(copy, len), 0, "byte %zu flipped was accepted", i);
  }
  free(copy);
  free(data);
}

Test(bundle, malformed_manifests_are_refused_by_line) {
  static const struct {
    const char *text, *why;
  } cases[] = {
      {"", "not a list bundle (the first line is not \"embargo-lists 1\")"},
      {"embargo-lists 2\n", "not a list bundle (the first line is not \"embargo-lists 1\")"},
      {"embargo-lists 1\nserial 0\n", "line 2: expected \"serial N\" (1 to 9223372036854775807)"},
      {"embargo-lists 1\nserial 01\n", "line 2: expected \"serial N\" (1 to 9223372036854775807)"},
      {"embargo-lists 1\nserial 9223372036854775808\n",
       "line 2: expected \"serial N\" (1 to 9223372036854775807)"},
      {"embargo-lists 1\nserial 5\ncreated yesterday\n",
       "line 3: expected \"created\" and an RFC 3339 time"},
      {"embargo-lists 1\nserial 5\ncreated 2026-01-01T00:00:00Z\nkey 12\n",
       "line 4: expected \"key\" and 16 hex digits"},
      {"embargo-lists 1\nserial 5\ncreated 2026-01-01T00:00:00Z\nkey 0123456789abcdef\n",
       "line 5: the manifest ends without a signature"},
      {"embargo-lists 1\nserial 5\ncreated 2026-01-01T00:00:00Z\nkey 0123456789abcdef\n"
       "file ../etc.yaml 1 " /* 64 hex digits follow */
       "0000000000000000000000000000000000000000000000000000000000000000\n",
       "line 5: expected \"file NAME SIZE SHA256\" (at most 256) or \"signature\""},
      {"embargo-lists 1\nserial 5\ncreated 2026-01-01T00:00:00Z\nkey 0123456789abcdef\n"
       "file b.yaml 1 0000000000000000000000000000000000000000000000000000000000000000\n"
       "file a.yaml 1 0000000000000000000000000000000000000000000000000000000000000000\n",
       "line 6: a.yaml: file names must be distinct and in ascending order"},
      {"embargo-lists 1\nserial 5\ncreated 2026-01-01T00:00:00Z\nkey 0123456789abcdef\n"
       "signature abc\n",
       "line 5: a signature is 88 base64 characters"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cr_assert_eq(parse(cases[i].text, strlen(cases[i].text)), EMB_EBADBUNDLE, "case %zu", i);
    cr_assert_str_eq(err, cases[i].why, "case %zu", i);
  }
}

Test(bundle, the_signer_refuses_bad_names_duplicates_and_a_zero_serial) {
  struct bundle_file f[2] = {{.name = "Kaspersky.yaml", .data = "x", .len = 1},
                             {.name = "a.yaml", .data = "x", .len = 1}};
  struct bundle_input in = {.serial = 1, .created = CREATED, .files = f, .nfiles = 1};
  char *out = NULL;
  size_t len;
  cr_assert_eq(bundle_sign(&in, priv, strlen(priv), &out, &len, err, sizeof(err)), EMB_EBADBUNDLE);
  cr_assert_str_eq(err, "Kaspersky.yaml: a list file name is [a-z0-9][a-z0-9_-]*.yaml, at most "
                        "64 characters");
  strcpy(f[0].name, "a.yaml");
  in.nfiles = 2;
  cr_assert_eq(bundle_sign(&in, priv, strlen(priv), &out, &len, err, sizeof(err)), EMB_EBADBUNDLE);
  cr_assert_str_eq(err, "a.yaml: named twice");
  in.nfiles = 1;
  in.serial = 0;
  cr_assert_eq(bundle_sign(&in, priv, strlen(priv), &out, &len, err, sizeof(err)), EMB_EBADBUNDLE);
  cr_assert_null(out);
}

Test(bundle, an_empty_bundle_is_valid) {
  struct bundle_input in = {.serial = 5, .created = CREATED};
  struct bundle *b = NULL;
  char *out = NULL;
  size_t len;
  cr_assert_eq(bundle_sign(&in, priv, strlen(priv), &out, &len, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(bundle_parse(out, len, pubkey, &b, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(b->nfiles, 0);
  bundle_free(b);
  free(out);
}

Test(bundle, only_ed25519_keys_are_taken) {
  static const char not_pem[] = "hello\n";
  char *out = NULL;
  size_t len;
  struct bundle_input in = {.serial = 5, .created = CREATED};
  unsigned char k[BUNDLE_KEY_LEN];
  cr_assert_eq(bundle_pubkey_parse(not_pem, strlen(not_pem), k, err, sizeof(err)), EMB_EBADSIG);
  cr_assert_str_eq(err, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
  /* the private key is not a public key, and the public key cannot sign */
  cr_assert_eq(bundle_pubkey_parse(priv, strlen(priv), k, err, sizeof(err)), EMB_EBADSIG);
  cr_assert_eq(bundle_sign(&in, pub, strlen(pub), &out, &len, err, sizeof(err)), EMB_EBADSIG);
  cr_assert_eq(bundle_privkey_public(priv, strlen(priv), k, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(memcmp(k, pubkey, BUNDLE_KEY_LEN), 0);
}

Test(bundle, names_follow_the_builtin_rules) {
  cr_assert(bundle_name_ok("kaspersky.yaml"));
  cr_assert(bundle_name_ok("tp-link.yaml"));
  cr_assert(bundle_name_ok("a_b9.yaml"));
  cr_assert_not(bundle_name_ok(".yaml"));
  cr_assert_not(bundle_name_ok("-a.yaml"));
  cr_assert_not(bundle_name_ok("a.yml"));
  cr_assert_not(bundle_name_ok("a/b.yaml"));
  cr_assert_not(bundle_name_ok("a.b.yaml"));
  cr_assert_not(bundle_name_ok("A.yaml"));
}
