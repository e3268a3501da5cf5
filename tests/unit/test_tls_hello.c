/* ClientHello parser and JA4: table-driven over real first flights (FoxIO's
 * public JA4 captures and hellos captured from local clients), plus
 * synthetic variants rebuilt from a real hello. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "filters/ja4.h"
#include "filters/tls_hello.h"

#define FIXTURES EMBARGO_SOURCE_DIR "/tests/fixtures"
#define BIG 70000

static uint8_t hello_buf[TLS_HELLO_BUF_SIZE(TLS_HELLO_LIMIT_MAX)];

/* ---- helpers ----------------------------------------------------------- */

static size_t load(const char *path, uint8_t *out, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;
  cr_assert_not_null(f, "cannot open %s", path);
  n = fread(out, 1, cap, f);
  fclose(f);
  return n;
}

static size_t load_fixture(const char *rel, uint8_t *out, size_t cap) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", FIXTURES, rel);
  return load(path, out, cap);
}

/* Feeds DATA in CHUNK-sized pieces; returns the final status and the total
 * consumed in *USED. */
static enum tls_hello_status feed_chunked(struct tls_hello *h, const uint8_t *data, size_t n,
                                          size_t chunk, size_t *used) {
  enum tls_hello_status st = tls_hello_status(h);
  size_t off = 0, c;
  while (off < n && st == TLS_HELLO_ST_NEED_MORE) {
    size_t len = n - off < chunk ? n - off : chunk;
    st = tls_hello_feed(h, data + off, len, &c);
    off += c;
    if (st == TLS_HELLO_ST_NEED_MORE)
      cr_assert_eq(c, len);
  }
  if (used)
    *used = off;
  return st;
}

static enum tls_hello_status parse_max(struct tls_hello *h, const uint8_t *data, size_t n,
                                       size_t max) {
  cr_assert_eq(tls_hello_init(h, hello_buf, sizeof hello_buf, max), 0);
  return feed_chunked(h, data, n, n ? n : 1, NULL);
}

static enum tls_hello_status parse(struct tls_hello *h, const uint8_t *data, size_t n) {
  return parse_max(h, data, n, TLS_HELLO_LIMIT_MAX);
}

static void expect_ja4(const struct tls_hello *h, enum ja4_variant v, const char *want,
                       const char *what) {
  static char got[BIG];
  cr_assert_eq(ja4_format(h, v, got, sizeof got), 0, "%s", what);
  cr_expect_str_eq(got, want, "%s variant %d", what, (int)v);
  cr_expect_eq(ja4_size(h, v), strlen(want) + 1, "%s", what);
}

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

Test(tls_hello, ja4_matches_foxio_for_every_public_capture) {
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

Test(tls_hello, same_answer_for_every_chunk_size) {
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
    {"openssl-tls13.bin", "fixture.example", "", "0304", 0x0303, "t13d041000_16476d049b0b_78f1d400d464",
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
  cr_expect(tls_hello_is_grease(tls_hello_u16_at(&(struct tls_hello_u16s){tls_hello_ciphers(&h).p, 1}, 0)));
  cr_expect_eq(tls_hello_max_version(&h), 0x0304);
}
