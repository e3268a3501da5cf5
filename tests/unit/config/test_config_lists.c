/* The `lists` settings and the signed bundle the vendor lists are read
 * from: the cached bundle in lists.cache_dir, checked with lists.pubkey on
 * every load; a bad one is not used (the compiled-in lists apply, and the
 * configuration says why); a bundle just fetched can be tried in its place. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/bundle.h"
#include "config/lists.h"
#include "tests/unit/config_fixture.h"

static char *priv, *pub;
static char text[2048];

/* The shipped Kaspersky list with one more update host. */
static char *kaspersky_plus(size_t *len) {
  char path[512], *data;
  FILE *f;
  long n;
  snprintf(path, sizeof(path), "%s/config/vendors/kaspersky.yaml", EMBARGO_SOURCE_DIR);
  cr_assert_not_null(f = fopen(path, "rb"));
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  data = malloc((size_t)n + 64);
  cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  data[n] = '\0';
  char *at = strstr(data, "      - downloads.upd.kaspersky.com");
  cr_assert_not_null(at);
  static const char extra[] = "      - fresh.upd.kaspersky.com\n";
  memmove(at + strlen(extra), at, strlen(at) + 1);
  memcpy(at, extra, strlen(extra));
  *len = strlen(data);
  return data;
}

/* Signs FILES into DIR/NAME with serial SERIAL. */
static void write_bundle(const char *name, uint64_t serial, const struct bundle_file *list,
                         size_t n) {
  struct bundle_input in = {.serial = serial, .created = 1764305432, .files = list, .nfiles = n};
  char *out = NULL, path[128];
  size_t len;
  cr_assert_eq(bundle_sign(&in, priv, strlen(priv), &out, &len, err, sizeof(err)), 0, "%s", err);
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(out, 1, len, f), len);
  fclose(f);
  cr_assert_lt(nfiles, 16);
  memcpy(files[nfiles++], path, sizeof(path));
  free(out);
}

static void write_kaspersky_bundle(uint64_t serial) {
  size_t len;
  char *data = kaspersky_plus(&len);
  struct bundle_file f = {.name = "kaspersky.yaml", .data = data, .len = len};
  write_bundle(LISTS_CACHE_FILE, serial, &f, 1);
  free(data);
}

static void setup_keys(void) {
  char e[256];
  setup();
  cr_assert_eq(bundle_keygen(&priv, &pub, e, sizeof(e)), 0, "%s", e);
  put("lists.pub", pub);
}

static void teardown_keys(void) {
  teardown();
  free(priv);
  free(pub);
}

TestSuite(config_lists, .init = setup_keys, .fini = teardown_keys);

static const char *lists_config(void) {
  snprintf(text, sizeof(text),
           "lists:\n  url: https://lists.example.org/embargo/lists.bundle\n"
           "  pubkey: lists.pub\n  cache_dir: .\n");
  return text;
}

Test(config_lists, the_settings_are_read_with_their_defaults) {
  cr_assert_eq(load(lists_config()), 0, "%s", err);
  cr_assert(cfg.lists.enabled);
  cr_assert_str_eq(cfg.lists.url, "https://lists.example.org/embargo/lists.bundle");
  cr_assert_eq(cfg.lists.interval, 6 * 3600 * 1000);
  cr_assert_str_eq(cfg.lists.ca_file, "");
  cr_assert_str_eq(cfg.lists.proxy, "");
  cr_assert_eq(cfg.lists.serial, 0, "no cached bundle yet");
  cr_assert_str_eq(cfg.lists.note, "");
  expect_action("s07.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  expect_action("fresh.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
}

Test(config_lists, without_lists_there_is_no_bundle) {
  write_kaspersky_bundle(5);
  cr_assert_eq(load("monitor: false\n"), 0, "%s", err);
  cr_assert_not(cfg.lists.enabled);
  expect_action("fresh.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
}

Test(config_lists, builtin_lists_come_from_the_cached_bundle) {
  char src[64];
  write_kaspersky_bundle(77);
  cr_assert_eq(load(lists_config()), 0, "%s", err);
  cr_assert_eq(cfg.lists.serial, 77);
  cr_assert_eq(cfg.lists.created, 1764305432);
  cr_assert_eq(strlen(cfg.lists.digest), 64);
  expect_action("fresh.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  const struct vendor *v = policy_find_vendor(cfg.policy, "kaspersky");
  cr_assert_not_null(v);
  cr_assert_eq(v->bundle_serial, 77);
  cr_assert_eq(v->bundle_created, 1764305432);
  cr_assert_str_eq(v->where.file, "bundle:77/kaspersky.yaml");
  bool found = false;
  for (size_t i = 0; i < policy_source_count(cfg.policy); i++) {
    snprintf(src, sizeof(src), "%s", policy_source_at(cfg.policy, i)->name);
    found = found || strcmp(src, "bundle:77/kaspersky.yaml") == 0;
  }
  cr_assert(found, "the bundle's file is a source of the snapshot");
}

Test(config_lists, a_bundle_changes_the_policy_version) {
  char before[32];
  cr_assert_eq(load(lists_config()), 0, "%s", err);
  snprintf(before, sizeof(before), "%s", policy_version(cfg.policy));
  config_free(&cfg);
  write_kaspersky_bundle(2);
  cr_assert_eq(load(lists_config()), 0, "%s", err);
  cr_assert_str_neq(policy_version(cfg.policy), before);
}

Test(config_lists, a_bundle_signed_by_another_key_is_not_used_and_the_note_says_why) {
  write_kaspersky_bundle(9);
  char *p2, *k2, e[256];
  cr_assert_eq(bundle_keygen(&p2, &k2, e, sizeof(e)), 0);
  put("other.pub", k2);
  snprintf(text, sizeof(text), "lists:\n  pubkey: other.pub\n  cache_dir: .\n");
  cr_assert_eq(load(text), 0, "%s", err);
  cr_assert_eq(cfg.lists.serial, 0);
  cr_assert_not_null(strstr(cfg.lists.note, "/lists.bundle is not used (the compiled-in lists "
                                            "apply): signature does not verify: the bundle "
                                            "names key "),
                     "%s", cfg.lists.note);
  expect_action("fresh.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_ALLOW);
  expect_action("s07.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  free(p2);
  free(k2);
}

Test(config_lists, a_list_the_bundle_lacks_comes_from_the_binary) {
  static const char acme[] = "vendor: acme\ncategories:\n  updates:\n"
                             "    cutoff: 2020-01-01T00:00:00Z\n    hosts: [upd.acme.example]\n";
  struct bundle_file f = {.name = "acme.yaml", .data = acme, .len = strlen(acme)};
  write_bundle(LISTS_CACHE_FILE, 3, &f, 1);
  snprintf(text, sizeof(text),
           "lists:\n  pubkey: lists.pub\n  cache_dir: .\n"
           "vendors:\n  - builtin: kaspersky\n  - builtin: acme\n");
  cr_assert_eq(load(text), 0, "%s", err);
  expect_action("s07.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  expect_action("upd.acme.example", UPDATES_CUTOFF, ACTION_DENY);
  cr_assert_eq(policy_find_vendor(cfg.policy, "kaspersky")->bundle_serial, 0);
  cr_assert_eq(policy_find_vendor(cfg.policy, "acme")->bundle_serial, 3);
}

Test(config_lists, a_bundle_whose_list_does_not_load_fails_the_config_at_the_list) {
  static const char bad[] = "vendor: kaspersky\ncategories:\n  updates:\n"
                            "    cutoff: 2020-01-01T00:00:00Z\n    hosts: [\"Bad Name\"]\n";
  struct bundle_file f = {.name = "kaspersky.yaml", .data = bad, .len = strlen(bad)};
  write_bundle(LISTS_CACHE_FILE, 4, &f, 1);
  expect_error(lists_config(), "bundle:4/kaspersky.yaml:5:13: categories.updates.hosts[0]: "
                               "invalid host pattern 'Bad Name': uppercase letter (patterns are "
                               "lowercase)");
}

Test(config_lists, a_fetched_bundle_takes_the_place_of_the_cached_one) {
  size_t len;
  char *data = kaspersky_plus(&len), *out = NULL;
  struct bundle_file f = {.name = "kaspersky.yaml", .data = data, .len = len};
  struct bundle_input in = {.serial = 12, .created = 1764305432, .files = &f, .nfiles = 1};
  struct bundle *b = NULL;
  unsigned char key[BUNDLE_KEY_LEN];
  size_t outlen;
  cr_assert_eq(bundle_sign(&in, priv, strlen(priv), &out, &outlen, err, sizeof(err)), 0);
  cr_assert_eq(bundle_pubkey_parse(pub, strlen(pub), key, err, sizeof(err)), 0);
  cr_assert_eq(bundle_parse(out, outlen, key, &b, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(config_load_bundle(&cfg, put("main.yaml", lists_config()), b, err, sizeof(err)), 0,
               "%s", err);
  cr_assert_eq(cfg.lists.serial, 12);
  expect_action("fresh.upd.kaspersky.com", UPDATES_CUTOFF, ACTION_DENY);
  bundle_free(b);
  free(out);
  free(data);
}

Test(config_lists, errors_name_the_key) {
  expect_error("lists:\n  cache_dir: .\n",
               "@/main.yaml:2:3: lists.pubkey: missing; expected a file holding the bundle "
               "signer's public key");
  expect_error("lists:\n  pubkey: nowhere.pub\n  cache_dir: .\n",
               "@/main.yaml:2:11: lists.pubkey: cannot read '@/nowhere.pub': No such file or "
               "directory");
  put("not.pub", "hello\n");
  expect_error("lists:\n  pubkey: not.pub\n  cache_dir: .\n",
               "@/main.yaml:2:11: lists.pubkey: '@/not.pub': not a PEM public key (-----BEGIN "
               "PUBLIC KEY-----)");
  expect_error("lists:\n  pubkey: lists.pub\n  cache_dir: .\n  url: http://x.example/b\n",
               "@/main.yaml:4:8: lists.url: 'http://x.example/b': expected a https:// URL");
  expect_error("lists:\n  pubkey: lists.pub\n  cache_dir: .\n  url: https://x.example:0/b\n",
               "@/main.yaml:4:8: lists.url: 'https://x.example:0/b': invalid port '0' (1 to "
               "65535)");
  expect_error("lists:\n  pubkey: lists.pub\n  cache_dir: .\n  proxy: http://p.example:3128/x\n",
               "@/main.yaml:4:10: lists.proxy: 'http://p.example:3128/x': a proxy URL has no "
               "path");
  expect_error("lists:\n  pubkey: lists.pub\n  cache_dir: .\n  interval: 500ms\n",
               "@/main.yaml:4:13: lists.interval: expected a duration from 1s to 720h like 6h");
  expect_error("lists:\n  pubkey: lists.pub\n  cache_dir: .\n  ca_file: none.pem\n",
               "@/main.yaml:4:12: lists.ca_file: cannot read '@/none.pem': No such file or "
               "directory");
}

Test(config_lists, urls_split_into_host_port_and_path) {
  struct lists_url u;
  char why[128];
  cr_assert_eq(lists_url_split("https://[::1]:8443/a/b.bundle?x=1", "https", &u, why, sizeof(why)),
               0, "%s", why);
  cr_assert_str_eq(u.host, "::1");
  cr_assert_str_eq(u.port, "8443");
  cr_assert_str_eq(u.path, "/a/b.bundle?x=1");
  cr_assert_str_eq(u.hostport, "[::1]:8443");
  cr_assert_eq(lists_url_split("https://lists.example.org", "https", &u, why, sizeof(why)), 0);
  cr_assert_str_eq(u.port, "443");
  cr_assert_str_eq(u.path, "/");
  cr_assert_eq(lists_url_split("http://10.0.0.1:3128", "http", &u, why, sizeof(why)), 0);
  cr_assert_not(u.tls);
  cr_assert_eq(lists_url_split("https://[zz]/", "https", &u, why, sizeof(why)), -EINVAL);
  cr_assert_str_eq(why, "'zz' is not an IPv6 address");
  cr_assert_eq(lists_url_split("https://a b/", "https", &u, why, sizeof(why)), -EINVAL);
  cr_assert_eq(lists_url_split("https://u:p@x.example/", "https", &u, why, sizeof(why)), -EINVAL);
  cr_assert_str_eq(why, "user information in a URL is not supported");
  cr_assert_eq(lists_url_split("https://a/b c", "https", &u, why, sizeof(why)), -EINVAL);
}
