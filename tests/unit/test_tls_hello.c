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
  struct tls_hello_u16s ciphers = tls_hello_ciphers(&h);
  cr_expect(tls_hello_is_grease(tls_hello_u16_at(&ciphers, 0)));
  cr_expect_eq(tls_hello_max_version(&h), 0x0304);
}

/* ---- synthetic hellos rebuilt from a real one --------------------------- */

struct ext_item {
  uint16_t type;
  const uint8_t *data;
  size_t len;
};

/* A ClientHello as parts: the base hello's fixed fields and an editable
 * extension list. */
struct parts {
  const struct tls_hello *base;
  uint16_t version;
  struct ext_item ext[64];
  size_t next;
};

static struct tls_hello base;
static uint8_t base_buf[TLS_HELLO_BUF_SIZE(TLS_HELLO_DEFAULT_MAX)];
static uint8_t wire[BIG], msg[BIG];
static char base_ja4[JA4_HASHED_SIZE];

/* Parses the curl fixture into BASE and P. */
static void base_parts(struct parts *p) {
  static uint8_t data[BIG];
  struct tls_hello_ext e;
  size_t pos = 0, n = load_fixture("hellos/curl.bin", data, sizeof data);
  cr_assert_eq(tls_hello_init(&base, base_buf, sizeof base_buf, 0), 0);
  cr_assert_eq(tls_hello_feed(&base, data, n, NULL), TLS_HELLO_ST_HELLO);
  cr_assert_eq(ja4_format(&base, JA4_HASHED, base_ja4, sizeof base_ja4), 0);
  p->base = &base;
  p->version = tls_hello_legacy_version(&base);
  p->next = 0;
  while (tls_hello_ext_next(&base, &pos, &e))
    p->ext[p->next++] = (struct ext_item){e.type, e.data, e.len};
}

/* Replaces the body of extension TYPE, or inserts it first. */
static void parts_set(struct parts *p, uint16_t type, const void *data, size_t len) {
  for (size_t i = 0; i < p->next; i++) {
    if (p->ext[i].type == type) {
      p->ext[i] = (struct ext_item){type, data, len};
      return;
    }
  }
  memmove(p->ext + 1, p->ext, p->next++ * sizeof p->ext[0]);
  p->ext[0] = (struct ext_item){type, data, len};
}

static void parts_append(struct parts *p, uint16_t type, const void *data, size_t len) {
  p->ext[p->next++] = (struct ext_item){type, data, len};
}

static uint8_t *put16(uint8_t *o, size_t v) {
  o[0] = (uint8_t)(v >> 8);
  o[1] = (uint8_t)v;
  return o + 2;
}

static uint8_t *put_vec(uint8_t *o, int width, const void *data, size_t len) {
  if (width == 1)
    *o++ = (uint8_t)len;
  else
    o = put16(o, len);
  memcpy(o, data, len);
  return o + len;
}

/* Serialises P as a handshake message into MSG; returns its length. */
static size_t build_msg(const struct parts *p) {
  const struct tls_hello *b = p->base;
  uint8_t *o = put16(msg + 4, p->version), *block;
  memcpy(o, b->random.p, 32);
  o = put_vec(o + 32, 1, b->session_id.p, b->session_id.len);
  o = put_vec(o, 2, b->ciphers.p, b->ciphers.n * 2);
  o = put_vec(o, 1, b->compression.p, b->compression.len);
  block = o;
  o += 2;
  for (size_t i = 0; i < p->next; i++)
    o = put_vec(put16(o, p->ext[i].type), 2, p->ext[i].data, p->ext[i].len);
  put16(block, (size_t)(o - block - 2));
  size_t n = (size_t)(o - msg);
  msg[0] = 1;
  msg[1] = (uint8_t)((n - 4) >> 16);
  put16(msg + 2, n - 4);
  return n;
}

/* Wraps MSG[0, N) into handshake records of SIZES[i] payload bytes (the
 * last record takes the rest) in WIRE; returns the wire length. */
static size_t wrap(size_t n, const size_t *sizes, size_t nsizes) {
  size_t off = 0, w = 0;
  for (size_t i = 0; off < n; i++) {
    size_t len = i < nsizes && sizes[i] < n - off ? sizes[i] : n - off;
    wire[w] = 22;
    put16(wire + w + 1, 0x0301);
    put16(wire + w + 3, len);
    memcpy(wire + w + 5, msg + off, len);
    w += 5 + len;
    off += len;
  }
  return w;
}

static size_t wire_of(const struct parts *p) {
  return wrap(build_msg(p), NULL, 0);
}

static void expect_malformed(const uint8_t *data, size_t n, enum tls_hello_reason why,
                             const char *what) {
  struct tls_hello h;
  cr_expect_eq(parse(&h, data, n), TLS_HELLO_ST_MALFORMED, "%s: %s", what,
               tls_hello_status_str(tls_hello_status(&h)));
  cr_expect_eq(tls_hello_reason(&h), why, "%s: got %s, want %s", what,
               tls_hello_reason_name(tls_hello_reason(&h)), tls_hello_reason_name(why));
}

static void expect_parts_malformed(const struct parts *p, enum tls_hello_reason why,
                                   const char *what) {
  expect_malformed(wire, wire_of(p), why, what);
}

static void expect_same_ja4(const struct tls_hello *h) {
  char got[JA4_HASHED_SIZE];
  cr_assert_eq(ja4_format(h, JA4_HASHED, got, sizeof got), 0);
  cr_expect_str_eq(got, base_ja4);
}

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

/* Offsets of the length fields of the message in MSG (built by build_msg). */
struct offsets {
  size_t version, sid, ciphers, comp, exts, first_ext;
};

static struct offsets offsets_of(void) {
  struct offsets o;
  o.version = 4;
  o.sid = 4 + 2 + 32;
  o.ciphers = o.sid + 1 + msg[o.sid];
  o.comp = o.ciphers + 2 + ((size_t)msg[o.ciphers] << 8 | msg[o.ciphers + 1]);
  o.exts = o.comp + 1 + msg[o.comp];
  o.first_ext = o.exts + 2;
  return o;
}

static void set16(size_t at, size_t v) {
  put16(msg + at, v);
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
      {"cipher_suites past the hello", o.ciphers, 2, rest_after_ciphers + 2, TLS_HELLO_R_CIPHERS_LEN, 0},
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
      {"caf\xc3\xa9.example", 13, TLS_HELLO_R_SNI_NON_ASCII},
      {"192.0.2.1", 9, TLS_HELLO_R_SNI_IP_LITERAL},
      {"127.1", 5, TLS_HELLO_R_SNI_IP_LITERAL},
      {"2130706433", 10, TLS_HELLO_R_SNI_IP_LITERAL},
      {"0x7f.0x1", 8, TLS_HELLO_R_SNI_IP_LITERAL},
      {"::1", 3, TLS_HELLO_R_SNI_IP_LITERAL},
      {"[2001:db8::1]", 13, TLS_HELLO_R_SNI_IP_LITERAL},
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

Test(tls_hello, other_name_types_are_skipped_and_flagged) {
  static const uint8_t body[] = {0, 13, 1, 0, 2, 'x', 'y', 0, 0, 5, 'a', '.', 'c', 'o', 'm'};
  struct tls_hello h;
  cr_assert_eq(parse_with_sni(&h, body, sizeof body), TLS_HELLO_ST_HELLO);
  cr_expect_eq(tls_hello_sni_count(&h), 1);
  cr_expect_str_eq(tls_hello_sni(&h, 0), "a.com");
  cr_expect(tls_hello_flags(&h) & TLS_HELLO_F_SNI_OTHER_TYPE);
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
      {"ALPN list longer than extension", 0x0010, {0, 4, 2, 'h', '2'}, 5, TLS_HELLO_R_ALPN_LIST_LEN},
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

Test(tls_hello, grease_is_accepted_and_left_out_of_ja4) {
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

Test(tls_hello, only_grease_versions_fall_back_to_legacy_version) {
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

Test(tls_hello, ja4_alpn_code_follows_the_specification) {
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

Test(tls_hello, ja4_reports_a_short_output_buffer) {
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
