/* Incremental TLS ClientHello parser: record reassembly, then one pass over
 * the complete handshake message. See tls_hello.h for the contracts. */
#include "filters/tls_hello.h"

#include <errno.h>
#include <string.h>

#define REC_HDR 5            /* type, version, length */
#define HS_HDR 4             /* msg_type, uint24 length */
#define REC_MAX 16384        /* RFC 8446 5.1: 2^14 */
#define CT_HANDSHAKE 22
#define HT_CLIENT_HELLO 1

#define EXT_SERVER_NAME 0x0000
#define EXT_SIGALGS 0x000d
#define EXT_ALPN 0x0010
#define EXT_PSK 0x0029
#define EXT_VERSIONS 0x002b
#define EXT_ECH 0xfe0d

/* A bounds-checked reader over validated-as-we-go bytes. */
struct rd {
  const uint8_t *p;
  size_t n;
};

static bool rd_take(struct rd *r, size_t n, struct rd *out) {
  if (r->n < n)
    return false;
  out->p = r->p;
  out->n = n;
  r->p += n;
  r->n -= n;
  return true;
}

static bool rd_u8(struct rd *r, unsigned *v) {
  if (r->n < 1)
    return false;
  *v = r->p[0];
  r->p++;
  r->n--;
  return true;
}

static bool rd_u16(struct rd *r, unsigned *v) {
  if (r->n < 2)
    return false;
  *v = (unsigned)r->p[0] << 8 | r->p[1];
  r->p += 2;
  r->n -= 2;
  return true;
}

/* Reads an 8-bit (WIDTH 1) or 16-bit (WIDTH 2) length-prefixed vector. */
static bool rd_vec(struct rd *r, int width, struct rd *out) {
  unsigned n;
  if (!(width == 1 ? rd_u8(r, &n) : rd_u16(r, &n)))
    return false;
  return rd_take(r, n, out);
}

static struct tls_hello_bytes bytes_of(const struct rd *r) {
  return (struct tls_hello_bytes){r->p, r->n};
}

static uint8_t *msg_base(const struct tls_hello *h) {
  return h->buf + h->max;
}

/* ---- server_name ------------------------------------------------------ */

static bool is_host_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.';
}

/* Whether label [P, P+N) reads as a number inet_aton() would accept. */
static bool label_is_numeric(const uint8_t *p, size_t n) {
  size_t i = 0;
  bool hex = n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
  for (i = hex ? 2 : 0; i < n; i++) {
    uint8_t c = p[i];
    bool digit = c >= '0' && c <= '9';
    bool xdigit = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!(hex ? xdigit : digit))
      return false;
  }
  return n > 0;
}

/* Checks the labels of NAME (N octets, trailing dot already removed). A
 * label with bytes >= 0x80 is a U-label candidate: its length is judged once
 * it is converted, not here. A numeric last label makes the name an IP
 * literal candidate. */
static enum tls_hello_reason check_labels(struct tls_hello *h, const uint8_t *name, size_t n) {
  size_t start = 0;
  bool high = false;
  if (n == 0 || n > TLS_HELLO_NAME_MAX)
    return TLS_HELLO_R_SNI_BAD_LABEL;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && name[i] != '.') {
      high |= name[i] >= 0x80;
      continue;
    }
    if (i == start || (i - start > 63 && !high))
      return TLS_HELLO_R_SNI_BAD_LABEL;
    if (i == n && label_is_numeric(name + start, i - start))
      h->flags |= TLS_HELLO_F_SNI_IP_LITERAL;
    start = i + 1;
    high = false;
  }
  return TLS_HELLO_R_NONE;
}

/* An LDH name, a raw UTF-8 candidate (flagged NON_ASCII) or an IP literal
 * candidate (flagged IP_LITERAL: a ':' or a numeric last label). Whether a
 * candidate converts or is canonical is the normaliser's call. */
static enum tls_hello_reason check_host_name(struct tls_hello *h, const uint8_t *name, size_t n) {
  bool colon;
  if (n == 0)
    return TLS_HELLO_R_SNI_EMPTY_NAME;
  colon = memchr(name, ':', n) != NULL;
  for (size_t i = 0; i < n; i++) {
    bool v6 = colon && (name[i] == ':' || name[i] == '[' || name[i] == ']');
    if (name[i] >= 0x80 && !colon)
      h->flags |= TLS_HELLO_F_SNI_NON_ASCII;
    else if (!is_host_char(name[i]) && !v6)
      return TLS_HELLO_R_SNI_BAD_CHAR;
  }
  if (colon) {
    h->flags |= TLS_HELLO_F_SNI_IP_LITERAL;
    return n <= TLS_HELLO_NAME_MAX ? TLS_HELLO_R_NONE : TLS_HELLO_R_SNI_BAD_LABEL;
  }
  return check_labels(h, name, name[n - 1] == '.' ? n - 1 : n);
}

/* Validates one host_name and records it, raw and normalised. */
static enum tls_hello_reason add_host_name(struct tls_hello *h, const struct rd *name) {
  enum tls_hello_reason why = check_host_name(h, name->p, name->n);
  size_t n = name->n;
  char *out;
  if (why != TLS_HELLO_R_NONE)
    return why;
  if (h->sni_count == TLS_HELLO_MAX_NAMES)
    return TLS_HELLO_R_SNI_TOO_MANY;
  if (name->p[n - 1] == '.') {
    h->flags |= TLS_HELLO_F_SNI_TRAILING_DOT;
    n--;
  }
  out = h->sni[h->sni_count];
  for (size_t i = 0; i < n; i++) {
    uint8_t c = name->p[i];
    if (c >= 'A' && c <= 'Z')
      h->flags |= TLS_HELLO_F_SNI_UPPERCASE;
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  out[n] = '\0';
  h->sni_raw[h->sni_count++] = bytes_of(name);
  return TLS_HELLO_R_NONE;
}

static enum tls_hello_reason parse_sni(struct tls_hello *h, struct rd body) {
  struct rd list, name;
  unsigned type;
  if (!rd_vec(&body, 2, &list) || body.n != 0)
    return TLS_HELLO_R_SNI_LIST_LEN;
  if (list.n == 0)
    return TLS_HELLO_R_SNI_EMPTY_LIST;
  while (list.n > 0) {
    enum tls_hello_reason why = TLS_HELLO_R_NONE;
    if (!rd_u8(&list, &type) || !rd_vec(&list, 2, &name))
      return TLS_HELLO_R_SNI_NAME_LEN;
    if (type != 0)
      h->flags |= TLS_HELLO_F_SNI_OTHER_TYPE;
    else
      why = add_host_name(h, &name);
    if (why != TLS_HELLO_R_NONE)
      return why;
  }
  /* OpenSSL and BoringSSL servers refuse a list that is not exactly host
   * names: judging the host name alone would be fooled by a list a server
   * would read differently. */
  if (h->sni_count > 0 && (h->flags & TLS_HELLO_F_SNI_OTHER_TYPE))
    return TLS_HELLO_R_SNI_MIXED_TYPES;
  if (h->sni_count > 1)
    h->flags |= TLS_HELLO_F_SNI_MULTIPLE;
  return TLS_HELLO_R_NONE;
}

/* ---- other extensions -------------------------------------------------- */

static enum tls_hello_reason parse_alpn(struct tls_hello *h, struct rd body) {
  struct rd list, proto;
  if (!rd_vec(&body, 2, &list) || body.n != 0)
    return TLS_HELLO_R_ALPN_LIST_LEN;
  if (list.n == 0)
    return TLS_HELLO_R_ALPN_EMPTY_LIST;
  h->alpn = bytes_of(&list);
  while (list.n > 0) {
    if (!rd_vec(&list, 1, &proto))
      return TLS_HELLO_R_ALPN_PROTO_LEN;
    if (proto.n == 0)
      return TLS_HELLO_R_ALPN_EMPTY_PROTO;
    h->alpn_count++;
  }
  return TLS_HELLO_R_NONE;
}

/* A non-empty, even-sized vector of 16-bit values filling BODY exactly. */
static bool parse_u16_list(struct rd body, int width, struct tls_hello_u16s *out) {
  struct rd list;
  if (!rd_vec(&body, width, &list) || body.n != 0 || list.n == 0 || list.n % 2 != 0)
    return false;
  *out = (struct tls_hello_u16s){list.p, list.n / 2};
  return true;
}

static enum tls_hello_reason parse_versions(struct tls_hello *h, struct rd body) {
  return parse_u16_list(body, 1, &h->versions) ? TLS_HELLO_R_NONE : TLS_HELLO_R_VERSIONS_LEN;
}

static enum tls_hello_reason parse_sigalgs(struct tls_hello *h, struct rd body) {
  return parse_u16_list(body, 2, &h->sigalgs) ? TLS_HELLO_R_NONE : TLS_HELLO_R_SIGALGS_LEN;
}

/* Extensions whose body we read; every other one is only listed. */
static const struct ext_parser {
  uint16_t type;
  unsigned flag;
  enum tls_hello_reason (*parse)(struct tls_hello *h, struct rd body);
} ext_parsers[] = {
    {EXT_SERVER_NAME, TLS_HELLO_F_SNI, parse_sni},
    {EXT_SIGALGS, TLS_HELLO_F_SIGALGS, parse_sigalgs},
    {EXT_ALPN, TLS_HELLO_F_ALPN, parse_alpn},
    {EXT_VERSIONS, TLS_HELLO_F_VERSIONS, parse_versions},
    {EXT_ECH, TLS_HELLO_F_ECH, NULL},
};

static enum tls_hello_reason parse_ext(struct tls_hello *h, uint16_t type, struct rd body) {
  for (size_t i = 0; i < sizeof ext_parsers / sizeof ext_parsers[0]; i++) {
    if (ext_parsers[i].type != type)
      continue;
    h->flags |= ext_parsers[i].flag;
    return ext_parsers[i].parse ? ext_parsers[i].parse(h, body) : TLS_HELLO_R_NONE;
  }
  return TLS_HELLO_R_NONE;
}

/* Walks the extensions block: lengths, duplicates, pre_shared_key last. */
static enum tls_hello_reason parse_exts(struct tls_hello *h, struct rd block) {
  uint64_t seen[65536 / 64] = {0};
  struct rd body;
  unsigned type;
  h->exts = bytes_of(&block);
  while (block.n > 0) {
    enum tls_hello_reason why;
    if (!rd_u16(&block, &type) || !rd_vec(&block, 2, &body))
      return TLS_HELLO_R_EXTENSION_LEN;
    if (seen[type / 64] & (UINT64_C(1) << (type % 64)))
      return type == EXT_SERVER_NAME ? TLS_HELLO_R_DUP_SERVER_NAME : TLS_HELLO_R_DUP_EXTENSION;
    seen[type / 64] |= UINT64_C(1) << (type % 64);
    if (type == EXT_PSK && block.n != 0)
      return TLS_HELLO_R_PSK_NOT_LAST;
    if (tls_hello_is_grease((uint16_t)type))
      h->flags |= TLS_HELLO_F_GREASE;
    h->ext_count++;
    why = parse_ext(h, (uint16_t)type, body);
    if (why != TLS_HELLO_R_NONE)
      return why;
  }
  return TLS_HELLO_R_NONE;
}

/* ---- the ClientHello body ---------------------------------------------- */

static void scan_ciphers(struct tls_hello *h) {
  uint64_t seen[65536 / 64] = {0};
  for (size_t i = 0; i < h->ciphers.n; i++) {
    uint16_t c = tls_hello_u16_at(&h->ciphers, i);
    if (tls_hello_is_grease(c))
      h->flags |= TLS_HELLO_F_GREASE;
    if (seen[c / 64] & (UINT64_C(1) << (c % 64)))
      h->flags |= TLS_HELLO_F_DUP_CIPHER;
    seen[c / 64] |= UINT64_C(1) << (c % 64);
  }
}

/* Reads version, random, session_id, cipher_suites, compression_methods. */
static enum tls_hello_reason parse_fixed(struct tls_hello *h, struct rd *b) {
  struct rd v;
  unsigned version;
  if (!rd_u16(b, &version) || !rd_take(b, 32, &v))
    return TLS_HELLO_R_TRUNCATED;
  if (version >> 8 != 3)
    return TLS_HELLO_R_HELLO_VERSION;
  h->legacy_version = (uint16_t)version;
  h->random = bytes_of(&v);
  if (!rd_vec(b, 1, &v) || v.n > 32)
    return TLS_HELLO_R_SESSION_ID_LEN;
  h->session_id = bytes_of(&v);
  if (!rd_vec(b, 2, &v) || v.n == 0 || v.n % 2 != 0)
    return TLS_HELLO_R_CIPHERS_LEN;
  h->ciphers = (struct tls_hello_u16s){v.p, v.n / 2};
  if (!rd_vec(b, 1, &v) || v.n == 0)
    return TLS_HELLO_R_COMPRESSION_LEN;
  if (!memchr(v.p, 0, v.n))
    return TLS_HELLO_R_NO_NULL_COMPRESSION;
  h->compression = bytes_of(&v);
  scan_ciphers(h);
  return TLS_HELLO_R_NONE;
}

/* Parses the complete ClientHello body (handshake header stripped). */
static enum tls_hello_reason parse_hello(struct tls_hello *h, struct rd b) {
  enum tls_hello_reason why = parse_fixed(h, &b);
  struct rd block;
  if (why != TLS_HELLO_R_NONE || b.n == 0)
    return why; /* no extensions at all: a pre-TLS-1.2 style hello */
  if (!rd_vec(&b, 2, &block))
    return TLS_HELLO_R_EXTENSIONS_LEN;
  if (b.n != 0)
    return TLS_HELLO_R_HELLO_TRAILING;
  return parse_exts(h, block);
}

/* ---- reassembly -------------------------------------------------------- */

static void set_final(struct tls_hello *h, enum tls_hello_status st, enum tls_hello_reason why) {
  h->status = st;
  h->reason = why;
}

static void finish_hello(struct tls_hello *h) {
  struct rd body = {msg_base(h) + HS_HDR, h->msg_need - HS_HDR};
  enum tls_hello_reason why = parse_hello(h, body);
  if (h->records > 1)
    h->flags |= TLS_HELLO_F_FRAGMENTED;
  if (why != TLS_HELLO_R_NONE)
    set_final(h, TLS_HELLO_ST_MALFORMED, why);
  else
    set_final(h, TLS_HELLO_ST_HELLO, TLS_HELLO_R_NONE);
}

/* Classifies a stream whose first byte is not a handshake record. An SSLv2
 * CLIENT-HELLO has the length's top bit set and msg_type 1 in byte 2. */
static void sniff_not_tls(struct tls_hello *h) {
  const uint8_t *b = h->buf;
  if (!(b[0] & 0x80))
    set_final(h, TLS_HELLO_ST_NOT_TLS, TLS_HELLO_R_NONE);
  else if (h->len >= 3 && b[2] == 1)
    set_final(h, TLS_HELLO_ST_MALFORMED, TLS_HELLO_R_SSLV2);
  else if (h->len >= 3)
    set_final(h, TLS_HELLO_ST_NOT_TLS, TLS_HELLO_R_NONE);
}

/* Checks what the current record and the handshake length imply: the
 * record must not carry bytes past the hello, and what is still missing
 * must fit in the bound. */
static void check_extent(struct tls_hello *h) {
  size_t rec_left = h->rec_end - h->len;
  if (h->msg_need == 0)
    return;
  if (h->msg_len + rec_left > h->msg_need)
    set_final(h, TLS_HELLO_ST_MALFORMED, TLS_HELLO_R_TRAILING_DATA);
  else if (h->len + (h->msg_need - h->msg_len) > h->max)
    set_final(h, TLS_HELLO_ST_TOO_LARGE, TLS_HELLO_R_NONE);
}

static enum tls_hello_reason record_defect(const uint8_t *r, size_t n) {
  if (r[0] != CT_HANDSHAKE)
    return TLS_HELLO_R_INTERLEAVED;
  if (r[1] != 3)
    return TLS_HELLO_R_RECORD_VERSION;
  if (n == 0)
    return TLS_HELLO_R_RECORD_EMPTY;
  if (n > REC_MAX)
    return TLS_HELLO_R_RECORD_OVERFLOW;
  return TLS_HELLO_R_NONE;
}

static void on_record_header(struct tls_hello *h) {
  const uint8_t *r = h->buf + h->rec_start;
  size_t n = (size_t)r[3] << 8 | r[4];
  enum tls_hello_reason why = record_defect(r, n);
  if (h->records++ == 0)
    h->record_version = (uint16_t)(r[1] << 8 | r[2]);
  h->rec_end = h->len + n;
  if (why != TLS_HELLO_R_NONE)
    set_final(h, TLS_HELLO_ST_MALFORMED, why);
  else if (h->rec_end > h->max)
    set_final(h, TLS_HELLO_ST_TOO_LARGE, TLS_HELLO_R_NONE);
  else
    check_extent(h);
}

/* After payload bytes arrived: learn the handshake length, and at the end
 * of a record either parse the hello or expect the next record. */
static void on_payload(struct tls_hello *h) {
  const uint8_t *m = msg_base(h);
  if (m[0] != HT_CLIENT_HELLO) {
    set_final(h, TLS_HELLO_ST_MALFORMED, TLS_HELLO_R_HANDSHAKE_TYPE);
    return;
  }
  if (h->msg_need == 0 && h->msg_len >= HS_HDR) {
    h->msg_need = HS_HDR + ((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]);
    check_extent(h);
  }
  if (h->status != TLS_HELLO_ST_NEED_MORE || h->len < h->rec_end)
    return;
  if (h->msg_need != 0 && h->msg_len == h->msg_need) {
    finish_hello(h);
    return;
  }
  h->rec_start = h->rec_end;
  h->rec_end = 0;
}

/* Takes header bytes of the current record; returns how many. */
static size_t take_header(struct tls_hello *h, const uint8_t *data, size_t len) {
  /* Byte by byte until the stream is known to be TLS, so that NOT_TLS
   * consumes exactly the bytes that decided it. */
  size_t want = h->len < 3 ? 1 : h->rec_start + REC_HDR - h->len;
  size_t n = len < want ? len : want;
  if (h->rec_start + REC_HDR > h->max) {
    set_final(h, TLS_HELLO_ST_TOO_LARGE, TLS_HELLO_R_NONE);
    return 0;
  }
  memcpy(h->buf + h->len, data, n);
  h->len += n;
  if (h->rec_start == 0 && h->buf[0] != CT_HANDSHAKE)
    sniff_not_tls(h);
  else if (h->len == h->rec_start + REC_HDR)
    on_record_header(h);
  return n;
}

/* Takes payload bytes of the current record; returns how many. */
static size_t take_payload(struct tls_hello *h, const uint8_t *data, size_t len) {
  size_t want = h->rec_end - h->len;
  size_t n = len < want ? len : want;
  memcpy(h->buf + h->len, data, n);
  memcpy(msg_base(h) + h->msg_len, data, n);
  h->len += n;
  h->msg_len += n;
  on_payload(h);
  return n;
}

/* ---- API --------------------------------------------------------------- */

int tls_hello_init(struct tls_hello *h, uint8_t *buf, size_t size, size_t max_bytes) {
  if (max_bytes == 0)
    max_bytes = TLS_HELLO_DEFAULT_MAX;
  memset(h, 0, sizeof *h);
  if (max_bytes < TLS_HELLO_LIMIT_MIN || max_bytes > TLS_HELLO_LIMIT_MAX || buf == NULL ||
      size < TLS_HELLO_BUF_SIZE(max_bytes)) {
    set_final(h, TLS_HELLO_ST_TOO_LARGE, TLS_HELLO_R_NONE);
    return -EINVAL;
  }
  h->buf = buf;
  h->max = max_bytes;
  h->status = TLS_HELLO_ST_NEED_MORE;
  return 0;
}

enum tls_hello_status tls_hello_feed(struct tls_hello *h, const uint8_t *data, size_t len,
                                     size_t *consumed) {
  size_t used = 0;
  while (h->status == TLS_HELLO_ST_NEED_MORE && used < len) {
    bool in_header = h->rec_end == 0;
    used += in_header ? take_header(h, data + used, len - used)
                      : take_payload(h, data + used, len - used);
  }
  if (consumed)
    *consumed = used;
  return h->status;
}

enum tls_hello_status tls_hello_status(const struct tls_hello *h) {
  return h->status;
}

enum tls_hello_reason tls_hello_reason(const struct tls_hello *h) {
  return h->reason;
}

const char *tls_hello_reason_str(enum tls_hello_reason reason) {
  static const char *const text[] = {
#define XX(name, str) str,
      TLS_HELLO_REASON_MAP(XX)
#undef XX
  };
  return (unsigned)reason < TLS_HELLO_R_COUNT_ ? text[reason] : "unknown reason";
}

const char *tls_hello_reason_name(enum tls_hello_reason reason) {
  static const char *const names[] = {
#define XX(name, _) #name,
      TLS_HELLO_REASON_MAP(XX)
#undef XX
  };
  return (unsigned)reason < TLS_HELLO_R_COUNT_ ? names[reason] : "UNKNOWN";
}

const char *tls_hello_status_str(enum tls_hello_status status) {
  static const char *const names[] = {"NEED_MORE", "HELLO", "NOT_TLS", "MALFORMED",
                                      "TOO_LARGE"};
  return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "UNKNOWN";
}

const uint8_t *tls_hello_raw(const struct tls_hello *h, size_t *len) {
  *len = h->len;
  return h->buf;
}

uint16_t tls_hello_record_version(const struct tls_hello *h) {
  return h->record_version;
}

/* ---- parsed facts ------------------------------------------------------ */

static bool is_hello(const struct tls_hello *h) {
  return h->status == TLS_HELLO_ST_HELLO;
}

unsigned tls_hello_flags(const struct tls_hello *h) {
  return is_hello(h) ? h->flags : 0;
}

uint16_t tls_hello_legacy_version(const struct tls_hello *h) {
  return is_hello(h) ? h->legacy_version : 0;
}

uint16_t tls_hello_max_version(const struct tls_hello *h) {
  uint16_t best = 0;
  for (size_t i = 0; is_hello(h) && i < h->versions.n; i++) {
    uint16_t v = tls_hello_u16_at(&h->versions, i);
    if (!tls_hello_is_grease(v) && v > best)
      best = v;
  }
  return best != 0 ? best : tls_hello_legacy_version(h);
}

size_t tls_hello_sni_count(const struct tls_hello *h) {
  return is_hello(h) ? h->sni_count : 0;
}

const char *tls_hello_sni(const struct tls_hello *h, size_t i) {
  return i < tls_hello_sni_count(h) ? h->sni[i] : NULL;
}

const uint8_t *tls_hello_sni_raw(const struct tls_hello *h, size_t i, size_t *len) {
  if (i >= tls_hello_sni_count(h)) {
    *len = 0;
    return NULL;
  }
  *len = h->sni_raw[i].len;
  return h->sni_raw[i].p;
}

static struct tls_hello_u16s list_if_hello(const struct tls_hello *h,
                                           const struct tls_hello_u16s *list) {
  return is_hello(h) ? *list : (struct tls_hello_u16s){NULL, 0};
}

struct tls_hello_u16s tls_hello_ciphers(const struct tls_hello *h) {
  return list_if_hello(h, &h->ciphers);
}

struct tls_hello_u16s tls_hello_sigalgs(const struct tls_hello *h) {
  return list_if_hello(h, &h->sigalgs);
}

struct tls_hello_u16s tls_hello_versions(const struct tls_hello *h) {
  return list_if_hello(h, &h->versions);
}

size_t tls_hello_ext_count(const struct tls_hello *h) {
  return is_hello(h) ? h->ext_count : 0;
}

/* The block was validated by parse_exts(), so lengths are trusted here. */
bool tls_hello_ext_next(const struct tls_hello *h, size_t *pos, struct tls_hello_ext *ext) {
  const uint8_t *p;
  if (!is_hello(h) || *pos + 4 > h->exts.len)
    return false;
  p = h->exts.p + *pos;
  ext->type = (uint16_t)(p[0] << 8 | p[1]);
  ext->len = (size_t)p[2] << 8 | p[3];
  ext->data = p + 4;
  *pos += 4 + ext->len;
  return true;
}

bool tls_hello_has_ext(const struct tls_hello *h, uint16_t type) {
  struct tls_hello_ext ext;
  size_t pos = 0;
  while (tls_hello_ext_next(h, &pos, &ext))
    if (ext.type == type)
      return true;
  return false;
}

size_t tls_hello_alpn_count(const struct tls_hello *h) {
  return is_hello(h) ? h->alpn_count : 0;
}

/* The list was validated by parse_alpn(). */
bool tls_hello_alpn_next(const struct tls_hello *h, size_t *pos, struct tls_hello_bytes *proto) {
  if (!is_hello(h) || *pos >= h->alpn.len)
    return false;
  proto->len = h->alpn.p[*pos];
  proto->p = h->alpn.p + *pos + 1;
  *pos += 1 + proto->len;
  return true;
}
