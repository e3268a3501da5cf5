/* ClientHello parser: hellos captured from local clients, and synthetic
 * variants rebuilt from a real hello to probe reassembly, bounds and every
 * defect reason. */
#include "hello_builder.h"

/* ---- hellos captured from local clients (tests/fixtures/hellos) -------- */

/* Expected values come from tests/fixtures/hellos/ja4_ref.py, an
 * independent implementation of the JA4 specification. */
static const struct captured {
  const char *file, *sni, *alpn, *versions;
  uint16_t legacy;
  const char *ja4, *ja4_r;
} captured[] = {
    {"chromium.bin", "fixture.example", "h2,http/1.1", "9a9a,0304,0303", 0x0303,
     "t13d1517h2_8daaf6152771_cb7bf5808d99",
     "t13d1517h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
     "0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,ca34,fe0d,ff01_0904,0905,"
     "0906,0403,0804,0401,0503,0805,0501,0806,0601"},
    {"curl.bin", "fixture.example", "h2,http/1.1", "0304,0303,0302,0301", 0x0303,
     "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6",
     "t13d3112h2_002f,0033,0035,0039,003c,003d,0067,006b,009c,009d,009e,009f,00ff,1301,1302,"
     "1303,c009,c00a,c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9,ccaa_000a,"
     "000b,000d,0015,0016,0017,002b,002d,0031,0033_0403,0503,0603,0807,0808,0809,080a,080b,"
     "0804,0805,0806,0401,0501,0601,0303,0301,0302,0402,0502,0602"},
    {"openssl-alpn.bin", "fixture.example", "h2,http/1.1", "0304,0303,0302,0301", 0x0303,
     "t13d3111h2_e8f1e7e78f70_1f22a2ca17c4",
     "t13d3111h2_002f,0033,0035,0039,003c,003d,0067,006b,009c,009d,009e,009f,00ff,1301,1302,"
     "1303,c009,c00a,c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9,ccaa_000a,"
     "000b,000d,0016,0017,0023,002b,002d,0033_0403,0503,0603,0807,0808,0809,080a,080b,0804,"
     "0805,0806,0401,0501,0601,0303,0301,0302,0402,0502,0602"},
    {"openssl-groups.bin", "fixture.example", "", "0304,0303,0302,0301", 0x0303,
     "t13d311000_e8f1e7e78f70_1f22a2ca17c4",
     "t13d311000_002f,0033,0035,0039,003c,003d,0067,006b,009c,009d,009e,009f,00ff,1301,1302,"
     "1303,c009,c00a,c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9,ccaa_000a,"
     "000b,000d,0016,0017,0023,002b,002d,0033_0403,0503,0603,0807,0808,0809,080a,080b,0804,"
     "0805,0806,0401,0501,0601,0303,0301,0302,0402,0502,0602"},
    {"openssl-tls12.bin", "fixture.example", "", "", 0x0303, "t12d280700_d943125447b4_e7e480e5a997",
     "t12d280700_002f,0033,0035,0039,003c,003d,0067,006b,009c,009d,009e,009f,00ff,c009,c00a,"
     "c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9,ccaa_000a,000b,000d,0016,"
     "0017,0023_0403,0503,0603,0807,0808,0809,080a,080b,0804,0805,0806,0401,0501,0601,0303,"
     "0301,0302,0402,0502,0602"},
    {"openssl-tls13.bin", "fixture.example", "", "0304", 0x0303,
     "t13d041000_16476d049b0b_78f1d400d464",
     "t13d041000_00ff,1301,1302,1303_000a,000b,000d,0016,0017,0023,002b,002d,0033_0403,0503,"
     "0603,0807,0808,0809,080a,080b,0804,0805,0806,0401,0501,0601"},
    {"python-ssl.bin", "fixture.example", "", "0304,0303", 0x0303,
     "t13d181100_85036bcba153_d41ae481755e",
     "t13d181100_0067,006b,009e,009f,00ff,1301,1302,1303,c023,c024,c027,c028,c02b,c02c,c02f,"
     "c030,cca8,cca9_000a,000b,000d,0015,0016,0017,0023,002b,002d,0033_0403,0503,0603,0807,"
     "0808,0809,080a,080b,0804,0805,0806,0401,0501,0601,0303,0301,0302,0402,0502,0602"},
};

static void join_alpn(const struct tls_hello *h, char *out, size_t size) {
  struct tls_hello_bytes p;
  size_t pos = 0, len = 0;
  out[0] = '\0';
  while (tls_hello_alpn_next(h, &pos, &p))
    len += (size_t)snprintf(out + len, size - len, "%s%.*s", len ? "," : "", (int)p.len,
                            (const char *)p.p);
}

static void join_u16s(struct tls_hello_u16s list, char *out, size_t size) {
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < list.n; i++)
    len += (size_t)snprintf(out + len, size - len, "%s%04x", i ? "," : "",
                            tls_hello_u16_at(&list, i));
}

Test(tls_hello, reports_what_local_clients_sent) {
  static uint8_t data[BIG];
  for (size_t i = 0; i < sizeof captured / sizeof captured[0]; i++) {
    const struct captured *c = &captured[i];
    char path[128], text[512];
    struct tls_hello h;
    snprintf(path, sizeof path, "hellos/%s", c->file);
    size_t n = load_fixture(path, data, sizeof data);
    cr_assert_eq(parse(&h, data, n), TLS_HELLO_ST_HELLO, "%s", c->file);
    cr_expect_eq(tls_hello_sni_count(&h), 1, "%s", c->file);
    cr_expect_str_eq(tls_hello_sni(&h, 0), c->sni, "%s", c->file);
    join_alpn(&h, text, sizeof text);
    cr_expect_str_eq(text, c->alpn, "%s", c->file);
    join_u16s(tls_hello_versions(&h), text, sizeof text);
    cr_expect_str_eq(text, c->versions, "%s", c->file);
    cr_expect_eq(tls_hello_legacy_version(&h), c->legacy, "%s", c->file);
    cr_expect_eq(tls_hello_record_version(&h), 0x0301, "%s", c->file);
    expect_ja4(&h, JA4_HASHED, c->ja4, c->file);
    expect_ja4(&h, JA4_RAW, c->ja4_r, c->file);
  }
}

Test(tls_hello, sees_grease_and_ech_in_a_chromium_hello) {
  static uint8_t data[BIG];
  size_t n = load_fixture("hellos/chromium.bin", data, sizeof data);
  struct tls_hello h;
  cr_assert_eq(parse(&h, data, n), TLS_HELLO_ST_HELLO);
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_ECH);
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_GREASE);
  cr_expect(tls_hello_has_ext(&h, 0xfe0d));
  struct tls_hello_u16s ciphers = tls_hello_ciphers(&h);
  cr_expect(tls_hello_is_grease(tls_hello_u16_at(&ciphers, 0)));
  cr_expect_eq(tls_hello_max_version(&h), 0x0304);
}

/* ---- synthetic hellos rebuilt from a real one --------------------------- */

Test(tls_hello, rebuilds_the_base_hello_byte_for_byte) {
  struct parts p;
  static uint8_t data[BIG];
  base_parts(&p);
  size_t n = load_fixture("hellos/curl.bin", data, sizeof data);
  cr_assert_eq(wire_of(&p), n);
  cr_assert_eq(memcmp(wire, data, n), 0);
}

Test(tls_hello, reassembles_a_hello_split_across_two_and_three_records) {
  static const size_t two[] = {100}, three[] = {1, 300};
  const size_t *splits[] = {two, three};
  size_t nsplits[] = {1, 2};
  struct parts p;
  base_parts(&p);
  size_t n = build_msg(&p);
  for (int s = 0; s < 2; s++) {
    size_t w = wrap(n, splits[s], nsplits[s]), used, rawlen;
    struct tls_hello h;
    cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
    cr_assert_eq(tls_hello_feed(&h, wire, w, &used), TLS_HELLO_ST_HELLO);
    cr_expect_eq(used, w);
    cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_FRAGMENTED);
    cr_expect_str_eq(tls_hello_sni(&h, 0), "fixture.example");
    const uint8_t *raw = tls_hello_raw(&h, &rawlen);
    cr_expect(rawlen == w && memcmp(raw, wire, w) == 0, "raw bytes are the wire bytes");
    expect_same_ja4(&h);
  }
}

Test(tls_hello, reassembles_three_records_fed_one_byte_at_a_time) {
  static const size_t three[] = {3, 250};
  struct parts p;
  struct tls_hello h;
  size_t used;
  base_parts(&p);
  size_t w = wrap(build_msg(&p), three, 2);
  cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
  cr_assert_eq(feed_chunked(&h, wire, w, 1, &used), TLS_HELLO_ST_HELLO);
  cr_expect_eq(used, w);
  expect_same_ja4(&h);
}

Test(tls_hello, every_truncation_needs_more) {
  static const size_t three[] = {2, 200};
  struct parts p;
  base_parts(&p);
  size_t w = wrap(build_msg(&p), three, 2);
  for (size_t k = 0; k < w; k++) {
    struct tls_hello h;
    size_t used;
    cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
    cr_assert_eq(tls_hello_feed(&h, wire, k, &used), TLS_HELLO_ST_NEED_MORE, "prefix %zu", k);
    cr_assert_eq(used, k);
    cr_assert_eq(tls_hello_sni_count(&h), 0);
    cr_assert_eq(ja4_format(&h, JA4_HASHED, NULL, 0), -EINVAL);
  }
}

Test(tls_hello, leaves_bytes_after_the_hello_record_unconsumed) {
  static const uint8_t ccs[] = {20, 3, 3, 0, 1, 1};
  struct parts p;
  struct tls_hello h;
  size_t used, rawlen;
  base_parts(&p);
  size_t w = wire_of(&p);
  memcpy(wire + w, ccs, sizeof ccs);
  cr_assert_eq(parse(&h, wire, w + sizeof ccs), TLS_HELLO_ST_HELLO);
  cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
  cr_assert_eq(tls_hello_feed(&h, wire, w + sizeof ccs, &used), TLS_HELLO_ST_HELLO);
  cr_expect_eq(used, w);
  tls_hello_raw(&h, &rawlen);
  cr_expect_eq(rawlen, w);
  cr_expect_eq(tls_hello_feed(&h, ccs, sizeof ccs, &used), TLS_HELLO_ST_HELLO);
  cr_expect_eq(used, 0);
}

Test(tls_hello, plain_http_is_not_tls) {
  static const char get[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
  struct tls_hello h;
  size_t used, rawlen;
  cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
  cr_assert_eq(tls_hello_feed(&h, (const uint8_t *)get, strlen(get), &used), TLS_HELLO_ST_NOT_TLS);
  cr_expect_eq(used, 1);
  cr_expect_eq(tls_hello_raw(&h, &rawlen)[0], 'G');
  cr_expect_eq(rawlen, 1);
  cr_expect_eq(tls_hello_reason(&h), TLS_HELLO_R_NONE);
}

Test(tls_hello, sslv2_compatible_hello_is_malformed) {
  /* SSLv2 CLIENT-HELLO: 2-byte length with the top bit set, msg_type 1,
   * version 3.1, then cipher specs as sent by old clients. */
  static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00,
                               0x00, 0x10, 0x07, 0x00, 0xc0, 0x05, 0x00, 0x80};
  struct tls_hello h;
  size_t used;
  cr_assert_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
  cr_assert_eq(tls_hello_feed(&h, v2, sizeof v2, &used), TLS_HELLO_ST_MALFORMED);
  cr_expect_eq(tls_hello_reason(&h), TLS_HELLO_R_SSLV2);
  cr_expect_eq(used, 3);
}

Test(tls_hello, a_high_bit_first_byte_that_is_not_sslv2_is_not_tls) {
  static const uint8_t junk[] = {0x81, 0x00, 0x07, 0x00};
  struct tls_hello h;
  cr_expect_eq(parse(&h, junk, sizeof junk), TLS_HELLO_ST_NOT_TLS);
}

Test(tls_hello, hello_larger_than_the_bound_is_too_large) {
  static const size_t tiny[] = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
                                4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
                                4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};
  static const uint8_t huge[] = {22, 3, 1, 0, 4, 1, 0, 0xea, 0x60};
  struct parts p;
  struct tls_hello h;
  base_parts(&p);
  size_t n = build_msg(&p), w = wrap(n, NULL, 0);
  cr_expect_eq(parse_max(&h, wire, w, w - 1), TLS_HELLO_ST_TOO_LARGE);
  cr_expect_eq(parse_max(&h, wire, w, w), TLS_HELLO_ST_HELLO);
  /* Many small records: the headers push the raw bytes past the bound. */
  w = wrap(n, tiny, sizeof tiny / sizeof tiny[0]);
  cr_expect_eq(parse_max(&h, wire, w, n + 100), TLS_HELLO_ST_TOO_LARGE);
  cr_expect_eq(parse_max(&h, wire, w, w), TLS_HELLO_ST_HELLO);
  /* A 60000-byte handshake length is refused as soon as it is read. */
  cr_expect_eq(parse_max(&h, huge, sizeof huge, 0), TLS_HELLO_ST_TOO_LARGE);
  cr_expect_eq(parse_max(&h, huge, sizeof huge, TLS_HELLO_LIMIT_MAX), TLS_HELLO_ST_NEED_MORE);
}

Test(tls_hello, record_layer_defects_have_their_own_reasons) {
  static const struct {
    const char *what;
    uint8_t bytes[16];
    size_t n;
    enum tls_hello_reason why;
  } cases[] = {
      {"record version 2.0", {22, 2, 0, 0, 4, 1, 0, 0, 0}, 9, TLS_HELLO_R_RECORD_VERSION},
      {"empty record", {22, 3, 1, 0, 0}, 5, TLS_HELLO_R_RECORD_EMPTY},
      {"record of 2^14+1", {22, 3, 1, 0x40, 0x01}, 5, TLS_HELLO_R_RECORD_OVERFLOW},
      {"server hello", {22, 3, 1, 0, 4, 2, 0, 0, 0}, 9, TLS_HELLO_R_HANDSHAKE_TYPE},
      {"alert inside the hello", {22, 3, 1, 0, 2, 1, 0, 21, 3, 3, 0, 2, 2, 40}, 14,
       TLS_HELLO_R_INTERLEAVED},
      {"bytes after the hello in its record", {22, 3, 1, 0, 5, 1, 0, 0, 0, 9}, 10,
       TLS_HELLO_R_TRAILING_DATA},
      {"empty hello body", {22, 3, 1, 0, 4, 1, 0, 0, 0}, 9, TLS_HELLO_R_TRUNCATED},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_malformed(cases[i].bytes, cases[i].n, cases[i].why, cases[i].what);
}

Test(tls_hello, reports_the_record_version_for_an_alert) {
  static const uint8_t rec[] = {22, 3, 3, 0, 4, 1, 0, 0, 0};
  struct tls_hello h;
  parse(&h, rec, sizeof rec);
  cr_expect_eq(tls_hello_record_version(&h), 0x0303);
}

Test(tls_hello, every_inconsistent_length_has_its_own_reason) {
  struct parts p;
  base_parts(&p);
  size_t n = build_msg(&p);
  struct offsets o = offsets_of();
  size_t rest_after_ciphers = n - o.ciphers - 2;
  size_t ext_len = (size_t)msg[o.exts] << 8 | msg[o.exts + 1];
  const struct {
    const char *what;
    size_t at, width, value;
    enum tls_hello_reason why;
    size_t cut; /* message length to keep, 0 for all */
  } cases[] = {
      {"legacy_version 2.0", o.version, 2, 0x0200, TLS_HELLO_R_HELLO_VERSION, 0},
      {"session_id of 33 bytes", o.sid, 1, 33, TLS_HELLO_R_SESSION_ID_LEN, 0},
      {"session_id past the hello", o.sid, 1, 255, TLS_HELLO_R_SESSION_ID_LEN, 0},
      {"odd cipher_suites length", o.ciphers, 2, 61, TLS_HELLO_R_CIPHERS_LEN, 0},
      {"empty cipher_suites", o.ciphers, 2, 0, TLS_HELLO_R_CIPHERS_LEN, 0},
      {"cipher_suites past the hello", o.ciphers, 2, rest_after_ciphers + 2,
       TLS_HELLO_R_CIPHERS_LEN, 0},
      {"cipher_suites length 0xffff", o.ciphers, 2, 0xffff, TLS_HELLO_R_CIPHERS_LEN, 0},
      {"empty compression_methods", o.comp, 1, 0, TLS_HELLO_R_COMPRESSION_LEN, 0},
      {"compression_methods past the hello", o.comp, 1, 2, TLS_HELLO_R_COMPRESSION_LEN, o.comp + 2},
      {"no null compression", o.comp + 1, 1, 1, TLS_HELLO_R_NO_NULL_COMPRESSION, 0},
      {"extensions past the hello", o.exts, 2, ext_len + 1, TLS_HELLO_R_EXTENSIONS_LEN, 0},
      {"extensions length 0xffff", o.exts, 2, 0xffff, TLS_HELLO_R_EXTENSIONS_LEN, 0},
      {"bytes after the extensions", o.exts, 2, ext_len - 1, TLS_HELLO_R_HELLO_TRAILING, 0},
      {"extension past the block", o.first_ext + 2, 2, 0xffff, TLS_HELLO_R_EXTENSION_LEN, 0},
      {"handshake shorter than its record", 2, 2, n - 5, TLS_HELLO_R_TRAILING_DATA, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    static uint8_t saved[BIG];
    memcpy(saved, msg, n);
    size_t len = cases[i].cut ? cases[i].cut : n;
    if (cases[i].width == 1)
      msg[cases[i].at] = (uint8_t)cases[i].value;
    else
      set16(cases[i].at, cases[i].value);
    if (cases[i].cut)
      set16(2, len - 4);
    size_t w = wrap(len, NULL, 0);
    expect_malformed(wire, w, cases[i].why, cases[i].what);
    memcpy(msg, saved, n);
  }
}

Test(tls_hello, a_handshake_longer_than_its_records_needs_more) {
  struct parts p;
  struct tls_hello h;
  base_parts(&p);
  size_t n = build_msg(&p);
  set16(2, n - 4 + 1);
  cr_expect_eq(parse(&h, wire, wrap(n, NULL, 0)), TLS_HELLO_ST_NEED_MORE);
}

Test(tls_hello, hello_without_extensions_is_accepted) {
  struct parts p;
  struct tls_hello h;
  base_parts(&p);
  size_t n = build_msg(&p);
  struct offsets o = offsets_of();
  n = o.exts;
  msg[1] = 0;
  set16(2, n - 4);
  cr_assert_eq(parse(&h, wire, wrap(n, NULL, 0)), TLS_HELLO_ST_HELLO);
  cr_expect_eq(tls_hello_ext_count(&h), 0);
  cr_expect_eq(tls_hello_sni_count(&h), 0);
  expect_ja4(&h, JA4_HASHED, "t12i310000_e8f1e7e78f70_000000000000", "no extensions");
}

/* ---- server_name -------------------------------------------------------- */

/* Builds a server_name body listing NAMES (host_name entries) into OUT. */
static size_t sni_body(uint8_t *out, const char *const *names, size_t n) {
  uint8_t *o = out + 2;
  for (size_t i = 0; i < n; i++) {
    *o++ = 0;
    o = put_vec(o, 2, names[i], strlen(names[i]));
  }
  put16(out, (size_t)(o - out - 2));
  return (size_t)(o - out);
}

static enum tls_hello_status parse_with_sni(struct tls_hello *h, const uint8_t *body, size_t len) {
  struct parts p;
  base_parts(&p);
  parts_set(&p, 0x0000, body, len);
  return parse(h, wire, wire_of(&p));
}

Test(tls_hello, two_host_names_are_both_reported_and_flagged) {
  static const char *const names[] = {"allowed.example", "dnl-01.geo.kaspersky.com"};
  uint8_t body[600];
  struct tls_hello h;
  size_t len;
  cr_assert_eq(parse_with_sni(&h, body, sni_body(body, names, 2)), TLS_HELLO_ST_HELLO);
  cr_expect_eq(tls_hello_sni_count(&h), 2);
  cr_expect_str_eq(tls_hello_sni(&h, 0), "allowed.example");
  cr_expect_str_eq(tls_hello_sni(&h, 1), "dnl-01.geo.kaspersky.com");
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_SNI_MULTIPLE);
  cr_expect_null(tls_hello_sni(&h, 2));
  cr_expect_null(tls_hello_sni_raw(&h, 2, &len));
}

Test(tls_hello, more_host_names_than_reported_is_malformed) {
  static const char *const names[] = {"a.example", "b.example", "c.example", "d.example",
                                      "e.example"};
  uint8_t body[600];
  struct tls_hello h;
  cr_assert_eq(parse_with_sni(&h, body, sni_body(body, names, 5)), TLS_HELLO_ST_MALFORMED);
  cr_expect_eq(tls_hello_reason(&h), TLS_HELLO_R_SNI_TOO_MANY);
}

Test(tls_hello, uppercase_and_trailing_dot_are_normalised_and_flagged) {
  static const char *const names[] = {"WWW.Kaspersky.COM."};
  uint8_t body[600];
  struct tls_hello h;
  size_t len;
  cr_assert_eq(parse_with_sni(&h, body, sni_body(body, names, 1)), TLS_HELLO_ST_HELLO);
  cr_expect_str_eq(tls_hello_sni(&h, 0), "www.kaspersky.com");
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_SNI_UPPERCASE);
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_SNI_TRAILING_DOT);
  const uint8_t *raw = tls_hello_sni_raw(&h, 0, &len);
  cr_expect(len == 18 && memcmp(raw, "WWW.Kaspersky.COM.", 18) == 0);
}

Test(tls_hello, a_plain_host_name_sets_no_normalisation_flags) {
  struct tls_hello h;
  struct parts p;
  base_parts(&p);
  cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
  cr_expect_eq(tls_hello_flags(&h) & (TLS_HELLO_F_SNI_UPPERCASE | TLS_HELLO_F_SNI_TRAILING_DOT |
                                      TLS_HELLO_F_SNI_MULTIPLE | TLS_HELLO_F_ECH),
               0);
}

Test(tls_hello, invalid_host_names_have_their_own_reasons) {
  static char long_label[80], long_name[300];
  static const struct {
    const char *name;
    size_t len;
    enum tls_hello_reason why;
  } cases[] = {
      {"", 0, TLS_HELLO_R_SNI_EMPTY_NAME},
      {"a\0b.example", 11, TLS_HELLO_R_SNI_BAD_CHAR},
      {"a/b.example", 11, TLS_HELLO_R_SNI_BAD_CHAR},
      {"a b.example", 11, TLS_HELLO_R_SNI_BAD_CHAR},
      {"*.example", 9, TLS_HELLO_R_SNI_BAD_CHAR},
      {"::1 ", 4, TLS_HELLO_R_SNI_BAD_CHAR},
      {"fe80::1%eth0", 12, TLS_HELLO_R_SNI_BAD_CHAR},
      {"\xc3\xa9:1", 4, TLS_HELLO_R_SNI_BAD_CHAR},
      {"a..example", 10, TLS_HELLO_R_SNI_BAD_LABEL},
      {".example", 8, TLS_HELLO_R_SNI_BAD_LABEL},
      {".", 1, TLS_HELLO_R_SNI_BAD_LABEL},
      {"example..", 9, TLS_HELLO_R_SNI_BAD_LABEL},
      {long_label, 0, TLS_HELLO_R_SNI_BAD_LABEL},
      {long_name, 0, TLS_HELLO_R_SNI_BAD_LABEL},
  };
  memset(long_label, 'a', 64);
  memcpy(long_label + 64, ".example", 9);
  for (int i = 0; i < 254; i++)
    long_name[i] = i % 2 ? '.' : 'a';
  long_name[253] = 'a';
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].name);
    uint8_t body[600], *o = body + 2;
    struct parts p;
    *o++ = 0;
    o = put_vec(o, 2, cases[i].name, len);
    put16(body, (size_t)(o - body - 2));
    base_parts(&p);
    parts_set(&p, 0x0000, body, (size_t)(o - body));
    expect_parts_malformed(&p, cases[i].why, cases[i].name);
  }
}

Test(tls_hello, server_name_framing_defects_have_their_own_reasons) {
  static const struct {
    const char *what;
    uint8_t body[16];
    size_t len;
    enum tls_hello_reason why;
  } cases[] = {
      {"empty extension", {0}, 0, TLS_HELLO_R_SNI_LIST_LEN},
      {"empty list", {0, 0}, 2, TLS_HELLO_R_SNI_EMPTY_LIST},
      {"list longer than extension", {0, 9, 0, 0, 1, 'a'}, 6, TLS_HELLO_R_SNI_LIST_LEN},
      {"list shorter than extension", {0, 4, 0, 0, 1, 'a', 0}, 7, TLS_HELLO_R_SNI_LIST_LEN},
      {"name past the list", {0, 4, 0, 0, 9, 'a'}, 6, TLS_HELLO_R_SNI_NAME_LEN},
      {"name type without length", {0, 1, 0}, 3, TLS_HELLO_R_SNI_NAME_LEN},
      {"empty host name", {0, 3, 0, 0, 0}, 5, TLS_HELLO_R_SNI_EMPTY_NAME},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct parts p;
    base_parts(&p);
    parts_set(&p, 0x0000, cases[i].body, cases[i].len);
    expect_parts_malformed(&p, cases[i].why, cases[i].what);
  }
}

Test(tls_hello, a_host_name_next_to_another_name_type_is_malformed) {
  /* Either order: OpenSSL and BoringSSL servers refuse both lists. */
  static const uint8_t other_first[] = {0, 13, 1, 0, 2, 'x', 'y', 0, 0, 5, 'a', '.', 'c', 'o', 'm'};
  static const uint8_t host_first[] = {0, 13, 0, 0, 5, 'a', '.', 'c', 'o', 'm', 7, 0, 2, 'x', 'y'};
  struct parts p;
  base_parts(&p);
  parts_set(&p, 0x0000, other_first, sizeof other_first);
  expect_parts_malformed(&p, TLS_HELLO_R_SNI_MIXED_TYPES, "other type, then host_name");
  base_parts(&p);
  parts_set(&p, 0x0000, host_first, sizeof host_first);
  expect_parts_malformed(&p, TLS_HELLO_R_SNI_MIXED_TYPES, "host_name, then other type");
}

Test(tls_hello, other_name_types_alone_are_skipped_and_flagged) {
  static const uint8_t body[] = {0, 5, 1, 0, 2, 'x', 'y'};
  struct tls_hello h;
  cr_assert_eq(parse_with_sni(&h, body, sizeof body), TLS_HELLO_ST_HELLO);
  cr_expect_eq(tls_hello_sni_count(&h), 0);
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_SNI_OTHER_TYPE);
}

/* A server_name body holding the one host name NAME (LEN bytes). */
static size_t one_name_body(uint8_t *body, const char *name, size_t len) {
  uint8_t *o = body + 2;
  *o++ = 0;
  o = put_vec(o, 2, name, len);
  put16(body, (size_t)(o - body - 2));
  return (size_t)(o - body);
}

Test(tls_hello, raw_utf8_names_are_reported_for_the_normaliser) {
  /* Node sends the U-label form unconverted; OpenSSL servers accept it. */
  static const char name[] = "B\xc3\xbc" "cher.example.org";
  uint8_t body[300];
  size_t len;
  struct tls_hello h;
  struct parts p;
  base_parts(&p);
  parts_set(&p, 0x0000, body, one_name_body(body, name, sizeof name - 1));
  cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_SNI_NON_ASCII);
  cr_expect_str_eq(tls_hello_sni(&h, 0), "b\xc3\xbc" "cher.example.org");
  cr_expect(memcmp(tls_hello_sni_raw(&h, 0, &len), name, sizeof name - 1) == 0);
}

Test(tls_hello, ip_literal_names_are_reported_for_the_normaliser) {
  static const char *const names[] = {"192.0.2.1", "127.1", "2130706433", "0x7f.0x1",
                                      "::1",       "[2001:DB8::1]", "10.0.0.1."};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    uint8_t body[300];
    struct tls_hello h;
    struct parts p;
    base_parts(&p);
    parts_set(&p, 0x0000, body, one_name_body(body, names[i], strlen(names[i])));
    cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO, "%s", names[i]);
    cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_SNI_IP_LITERAL, "%s", names[i]);
    cr_expect_eq(tls_hello_sni_count(&h), 1, "%s", names[i]);
  }
}

/* ---- other extensions ---------------------------------------------------- */

Test(tls_hello, duplicate_extensions_are_malformed) {
  static const uint8_t empty[1];
  struct parts p;
  base_parts(&p);
  parts_append(&p, 0x0000, p.ext[0].data, p.ext[0].len);
  expect_parts_malformed(&p, TLS_HELLO_R_DUP_SERVER_NAME, "server_name twice");
  base_parts(&p);
  parts_append(&p, 0x0017, empty, 0);
  expect_parts_malformed(&p, TLS_HELLO_R_DUP_EXTENSION, "extended_master_secret twice");
  base_parts(&p);
  parts_append(&p, 0x1a1a, empty, 0);
  parts_append(&p, 0x1a1a, empty, 0);
  expect_parts_malformed(&p, TLS_HELLO_R_DUP_EXTENSION, "one GREASE value twice");
}

Test(tls_hello, pre_shared_key_must_be_last) {
  static const uint8_t psk[] = {0, 0};
  struct parts p;
  struct tls_hello h;
  base_parts(&p);
  parts_set(&p, 0x0029, psk, sizeof psk);
  expect_parts_malformed(&p, TLS_HELLO_R_PSK_NOT_LAST, "psk first");
  base_parts(&p);
  parts_append(&p, 0x0029, psk, sizeof psk);
  cr_expect_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
}

Test(tls_hello, list_extension_defects_have_their_own_reasons) {
  static const struct {
    const char *what;
    uint16_t type;
    uint8_t body[16];
    size_t len;
    enum tls_hello_reason why;
  } cases[] = {
      {"ALPN empty extension", 0x0010, {0}, 0, TLS_HELLO_R_ALPN_LIST_LEN},
      {"ALPN list longer than extension", 0x0010, {0, 4, 2, 'h', '2'}, 5,
       TLS_HELLO_R_ALPN_LIST_LEN},
      {"ALPN empty list", 0x0010, {0, 0}, 2, TLS_HELLO_R_ALPN_EMPTY_LIST},
      {"ALPN name past the list", 0x0010, {0, 3, 5, 'h', '2'}, 5, TLS_HELLO_R_ALPN_PROTO_LEN},
      {"ALPN empty name", 0x0010, {0, 4, 2, 'h', '2', 0}, 6, TLS_HELLO_R_ALPN_EMPTY_PROTO},
      {"versions odd", 0x002b, {3, 3, 4, 3}, 4, TLS_HELLO_R_VERSIONS_LEN},
      {"versions empty", 0x002b, {0}, 1, TLS_HELLO_R_VERSIONS_LEN},
      {"versions past the extension", 0x002b, {4, 3, 4}, 3, TLS_HELLO_R_VERSIONS_LEN},
      {"sigalgs odd", 0x000d, {0, 3, 4, 3, 8}, 5, TLS_HELLO_R_SIGALGS_LEN},
      {"sigalgs empty", 0x000d, {0, 0}, 2, TLS_HELLO_R_SIGALGS_LEN},
      {"sigalgs shorter than extension", 0x000d, {0, 2, 4, 3, 0}, 5, TLS_HELLO_R_SIGALGS_LEN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct parts p;
    base_parts(&p);
    parts_set(&p, cases[i].type, cases[i].body, cases[i].len);
    expect_parts_malformed(&p, cases[i].why, cases[i].what);
  }
}

Test(tls_hello, ech_extension_is_reported) {
  static const uint8_t ech[] = {0, 0, 1, 0, 1, 0x42};
  struct parts p;
  struct tls_hello h;
  base_parts(&p);
  parts_append(&p, 0xfe0d, ech, sizeof ech);
  cr_assert_eq(parse(&h, wire, wire_of(&p)), TLS_HELLO_ST_HELLO);
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_ECH);
  cr_expect(tls_hello_has_ext(&h, 0xfe0d));
}

/* ---- API edges ----------------------------------------------------------- */

Test(tls_hello, every_reason_has_distinct_text) {
  for (int i = 0; i < TLS_HELLO_R_COUNT_; i++) {
    cr_assert_gt(strlen(tls_hello_reason_str((enum tls_hello_reason)i)), 0);
    for (int j = 0; j < i; j++)
      cr_assert_str_neq(tls_hello_reason_str((enum tls_hello_reason)i),
                        tls_hello_reason_str((enum tls_hello_reason)j));
  }
  cr_expect_str_eq(tls_hello_reason_str(TLS_HELLO_R_COUNT_), "unknown reason");
  cr_expect_str_eq(tls_hello_reason_name(TLS_HELLO_R_SNI_IP_LITERAL), "SNI_IP_LITERAL");
  cr_expect_str_eq(tls_hello_status_str(TLS_HELLO_ST_TOO_LARGE), "TOO_LARGE");
}

Test(tls_hello, init_rejects_bad_bounds_and_small_buffers) {
  struct tls_hello h;
  static uint8_t small[TLS_HELLO_BUF_SIZE(TLS_HELLO_DEFAULT_MAX) - 1];
  cr_expect_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, TLS_HELLO_LIMIT_MAX + 1), -EINVAL);
  cr_expect_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, TLS_HELLO_LIMIT_MIN - 1), -EINVAL);
  cr_expect_eq(tls_hello_init(&h, small, sizeof small, 0), -EINVAL);
  cr_expect_eq(tls_hello_init(&h, NULL, 0, 0), -EINVAL);
  cr_expect_neq(tls_hello_feed(&h, (const uint8_t *)"\x16", 1, NULL), TLS_HELLO_ST_NEED_MORE);
  cr_expect_eq(tls_hello_init(&h, hello_buf, sizeof hello_buf, 0), 0);
  cr_expect_eq(h.max, TLS_HELLO_DEFAULT_MAX);
}

Test(tls_hello, facts_read_empty_unless_hello) {
  static const uint8_t partial[] = {22, 3, 1, 0, 10, 1, 0, 0, 6, 3, 3};
  struct tls_hello h;
  size_t pos = 0, len;
  struct tls_hello_ext ext;
  struct tls_hello_bytes proto;
  cr_assert_eq(parse(&h, partial, sizeof partial), TLS_HELLO_ST_NEED_MORE);
  cr_expect_eq(tls_hello_flags(&h), 0);
  cr_expect_eq(tls_hello_legacy_version(&h), 0);
  cr_expect_eq(tls_hello_ciphers(&h).n, 0);
  cr_expect_eq(tls_hello_sigalgs(&h).n, 0);
  cr_expect_eq(tls_hello_versions(&h).n, 0);
  cr_expect_not(tls_hello_ext_next(&h, &pos, &ext));
  cr_expect_not(tls_hello_alpn_next(&h, &pos, &proto));
  cr_expect_null(tls_hello_sni_raw(&h, 0, &len));
  cr_expect_eq(ja4_size(&h, JA4_HASHED), 0);
}
