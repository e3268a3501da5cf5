/* JA4 fingerprints: FoxIO's public captures, the ALPN code rule, GREASE,
 * and output sizing. */
#include "hello_builder.h"

/* ---- FoxIO's public captures ------------------------------------------- */

/* Applies the divergences documented in filters/ja4.h to FoxIO's strings. */
static void apply_divergences(const char *file, char *field[4]) {
  if (strcmp(file, "tls-non-ascii-alpn.pcapng.s0.1.bin") == 0) {
    for (int i = 0; i < 4; i++) {
      char *p = strstr(field[i], "t13d151699_");
      cr_assert_not_null(p);
      memcpy(p + 8, "bd", 2);
    }
  }
  if (strncmp(file, "https3-301-get", 14) == 0 || strncmp(file, "socks-https-example", 19) == 0) {
    char *p = strrchr(field[2], '_');
    cr_assert_str_eq(p, "_000000000000");
    strcpy(p, "_9af15b336e6a"); /* sha256("0000"), the listed server_name */
  }
}

Test(ja4, matches_foxio_for_every_public_capture) {
  static char line[BIG], raw[BIG];
  static uint8_t data[BIG];
  FILE *f = fopen(FIXTURES "/ja4/expected.tsv", "r");
  int rows = 0, full = 0;
  cr_assert_not_null(f);
  while (fgets(line, sizeof line, f)) {
    char *field[6], *save = NULL;
    struct tls_hello h;
    if (line[0] == '#')
      continue;
    line[strcspn(line, "\n")] = '\0';
    for (int i = 0; i < 6; i++)
      field[i] = strtok_r(i ? NULL : line, "\t", &save);
    cr_assert_not_null(field[5]);
    apply_divergences(field[0], field + 2);
    snprintf(raw, sizeof raw, "ja4/hellos/%s", field[0]);
    size_t n = load_fixture(raw, data, sizeof data);
    cr_assert_eq(parse(&h, data, n), TLS_HELLO_ST_HELLO, "%s: %s", field[0],
                 tls_hello_reason_name(tls_hello_reason(&h)));
    expect_ja4(&h, JA4_HASHED, field[2], field[0]);
    if (strcmp(field[1], "python") == 0) {
      expect_ja4(&h, JA4_RAW, field[3], field[0]);
      expect_ja4(&h, JA4_ORIGINAL_HASHED, field[4], field[0]);
      expect_ja4(&h, JA4_ORIGINAL_RAW, field[5], field[0]);
      full++;
    }
    rows++;
  }
  fclose(f);
  cr_assert_eq(rows, 161);
  cr_assert_eq(full, 158);
}

Test(ja4, same_answer_for_every_chunk_size) {
  static const char *const files[] = {
      "ja4/hellos/browsers-x509.pcapng.s0.1.bin",
      "ja4/hellos/tls-alpn-h2.pcap.s0.1.bin",
      "ja4/hellos/https-connect.pcap.s0.1.bin",
  };
  static uint8_t data[BIG];
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    size_t n = load_fixture(files[f], data, sizeof data);
    char want[JA4_HASHED_SIZE], got[JA4_HASHED_SIZE];
    struct tls_hello h;
    cr_assert_eq(parse(&h, data, n), TLS_HELLO_ST_HELLO);
    cr_assert_eq(ja4_format(&h, JA4_HASHED, want, sizeof want), 0);
    for (size_t chunk = 1; chunk <= n; chunk = chunk < 24 ? chunk + 1 : chunk * 2) {
      size_t used;
      cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
      cr_assert_eq(feed_chunked(&h, data, n, chunk, &used), TLS_HELLO_ST_HELLO);
      cr_assert_eq(used, n);
      cr_assert_eq(ja4_format(&h, JA4_HASHED, got, sizeof got), 0);
      cr_assert_str_eq(got, want, "%s chunk %zu", files[f], chunk);
    }
  }
}

/* ---- synthetic hellos ---------------------------------------------------- */

Test(ja4, grease_is_accepted_and_left_out_of_ja4) {
  static const uint8_t one[] = {0}, versions[] = {8, 0x5a, 0x5a, 3, 4, 3, 3, 3, 2};
  static uint8_t sigalgs[600];
  struct parts p;
  struct tls_hello h;
  base_parts(&p);
  struct tls_hello_u16s base_sigs = tls_hello_sigalgs(&base);
  put16(sigalgs, base_sigs.n * 2 + 2);
  put16(sigalgs + 2, 0x1a1a);
  memcpy(sigalgs + 4, base_sigs.p, base_sigs.n * 2);
  parts_set(&p, 0x0a0a, one, 0);
  parts_append(&p, 0xfafa, one, 1);
  parts_set(&p, 0x002b, versions, sizeof versions);
  parts_set(&p, 0x000d, sigalgs, base_sigs.n * 2 + 4);
  cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_GREASE);
  cr_expect_eq(tls_hello_ext_count(&h), tls_hello_ext_count(&base) + 2);
  cr_expect_eq(tls_hello_max_version(&h), 0x0304);
  expect_same_ja4(&h);
}


Test(ja4, only_grease_versions_fall_back_to_legacy_version) {
  static const uint8_t versions[] = {2, 0x7a, 0x7a};
  struct parts p;
  struct tls_hello h;
  char got[JA4_HASHED_SIZE];
  base_parts(&p);
  parts_set(&p, 0x002b, versions, sizeof versions);
  cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
  cr_expect_eq(tls_hello_max_version(&h), 0x0303);
  cr_assert_eq(ja4_format(&h, JA4_HASHED, got, sizeof got), 0);
  cr_expect_eq(strncmp(got, "t12d", 4), 0, "%s", got);
}


Test(ja4, alpn_code_follows_the_specification) {
  static const struct {
    uint8_t body[16];
    size_t len;
    const char *code;
  } cases[] = {
      {{0, 3, 2, 'h', '2'}, 5, "h2"},
      {{0, 2, 1, 'h'}, 4, "hh"},
      {{0, 9, 8, 'h', 't', 't', 'p', '/', '1', '.', '1'}, 11, "h1"},
      {{0, 3, 2, 0xba, 0xad}, 5, "bd"},  /* FoxIO's tools print "99" */
      {{0, 4, 3, 'h', '2', '-'}, 6, "6d"},
      {{0, 4, 3, 0x01, 'a', 'z'}, 6, "0a"}, /* either end non-alphanumeric: hex */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct parts p;
    struct tls_hello h;
    char got[JA4_HASHED_SIZE];
    base_parts(&p);
    parts_set(&p, 0x0010, cases[i].body, cases[i].len);
    cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
    cr_assert_eq(ja4_format(&h, JA4_HASHED, got, sizeof got), 0);
    cr_expect_eq(strncmp(got + 8, cases[i].code, 2), 0, "case %zu: %s", i, got);
  }
}


Test(ja4, reports_a_short_output_buffer) {
  struct parts p;
  struct tls_hello h;
  char got[20];
  base_parts(&p);
  cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
  cr_expect_eq(ja4_format(&h, JA4_HASHED, got, sizeof got), -ENOSPC);
  cr_expect_eq(strlen(got), sizeof got - 1);
  cr_expect_eq(strncmp(got, base_ja4, sizeof got - 1), 0);
  cr_expect_gt(ja4_size(&h, JA4_RAW), JA4_HASHED_SIZE);
}

