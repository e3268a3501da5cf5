/* Types of the TLS ClientHello parser. See tls_hello.h for the API. */
#ifndef EMBARGO_FILTERS_TLS_HELLO_T_H
#define EMBARGO_FILTERS_TLS_HELLO_T_H

#include <stddef.h>
#include <stdint.h>

#define TLS_HELLO_DEFAULT_MAX (16u * 1024u) /* default bound on buffered bytes */
#define TLS_HELLO_LIMIT_MAX (64u * 1024u)   /* largest bound tls_hello_init accepts */
#define TLS_HELLO_LIMIT_MIN 64u             /* smallest bound tls_hello_init accepts */

/* Bytes of caller storage a parser bounded to MAX_BYTES needs: the raw
 * records as received, then the handshake message with the record headers
 * stripped (a hello may span any number of records). */
#define TLS_HELLO_BUF_SIZE(max_bytes) (2u * (size_t)(max_bytes))

#define TLS_HELLO_MAX_NAMES 4   /* host_name entries reported; more is MALFORMED */
#define TLS_HELLO_NAME_MAX 253  /* longest host name, trailing dot excluded */

/* What tls_hello_feed() knows so far. Every status but NEED_MORE is final.
 *
 *   NEED_MORE ──feed──▶ NEED_MORE
 *       │
 *       └──▶ HELLO | NOT_TLS | MALFORMED | TOO_LARGE   (sticky)
 */
enum tls_hello_status {
  TLS_HELLO_ST_NEED_MORE, /* the ClientHello is not complete yet */
  TLS_HELLO_ST_HELLO,     /* a complete, well-formed ClientHello was parsed */
  TLS_HELLO_ST_NOT_TLS,   /* the first byte is not a TLS handshake record */
  TLS_HELLO_ST_MALFORMED, /* TLS, but broken: see tls_hello_reason() */
  TLS_HELLO_ST_TOO_LARGE  /* the hello's records do not fit in the bound */
};

/* Why a hello is MALFORMED. One constant per distinct defect so that logs
 * and tests can tell them apart. */
#define TLS_HELLO_REASON_MAP(XX)                                                  \
  XX(NONE, "no defect")                                                           \
  XX(SSLV2, "SSLv2-compatible ClientHello")                                       \
  XX(RECORD_VERSION, "record version is not 3.x")                                 \
  XX(RECORD_EMPTY, "zero-length handshake record")                                \
  XX(RECORD_OVERFLOW, "record longer than 2^14 bytes")                            \
  XX(INTERLEAVED, "non-handshake record inside the ClientHello")                  \
  XX(HANDSHAKE_TYPE, "first handshake message is not a ClientHello")              \
  XX(TRAILING_DATA, "handshake bytes after the ClientHello in its last record")   \
  XX(HELLO_VERSION, "ClientHello legacy_version is not 3.x")                      \
  XX(TRUNCATED, "ClientHello ends inside its version or random")                  \
  XX(SESSION_ID_LEN, "session_id longer than 32 bytes or past the hello")         \
  XX(CIPHERS_LEN, "cipher_suites empty, odd-sized or past the hello")             \
  XX(COMPRESSION_LEN, "compression_methods empty or past the hello")              \
  XX(NO_NULL_COMPRESSION, "compression_methods lacks the null method")            \
  XX(EXTENSIONS_LEN, "extensions length runs past the hello")                     \
  XX(HELLO_TRAILING, "bytes after the extensions inside the hello")               \
  XX(EXTENSION_LEN, "extension body runs past the extensions block")              \
  XX(DUP_SERVER_NAME, "server_name extension sent twice")                         \
  XX(DUP_EXTENSION, "extension type sent twice")                                  \
  XX(PSK_NOT_LAST, "pre_shared_key is not the last extension")                    \
  XX(SNI_LIST_LEN, "server_name list length disagrees with its extension")        \
  XX(SNI_EMPTY_LIST, "server_name list is empty")                                 \
  XX(SNI_NAME_LEN, "server name runs past its list")                              \
  XX(SNI_EMPTY_NAME, "empty host name")                                           \
  XX(SNI_TOO_MANY, "more host names than the parser reports")                     \
  XX(SNI_MIXED_TYPES, "server_name list mixes host_name with another name type")  \
  XX(SNI_NON_ASCII, "host name is not UTF-8 that IDNA converts to an A-label")    \
  XX(SNI_BAD_CHAR, "host name has a character outside [A-Za-z0-9._-]")            \
  XX(SNI_BAD_LABEL, "host name too long or with an empty or over-long label")     \
  XX(SNI_IP_LITERAL, "host name is an IP literal that is not canonical")          \
  XX(ALPN_LIST_LEN, "ALPN list length disagrees with its extension")              \
  XX(ALPN_EMPTY_LIST, "ALPN list is empty")                                       \
  XX(ALPN_PROTO_LEN, "ALPN protocol name runs past its list")                     \
  XX(ALPN_EMPTY_PROTO, "empty ALPN protocol name")                                \
  XX(VERSIONS_LEN, "supported_versions empty, odd-sized or inconsistent")         \
  XX(SIGALGS_LEN, "signature_algorithms empty, odd-sized or inconsistent")

enum tls_hello_reason {
#define XX(name, _) TLS_HELLO_R_##name,
  TLS_HELLO_REASON_MAP(XX)
#undef XX
  TLS_HELLO_R_COUNT_
};

/* Orthogonal facts about a parsed hello (tls_hello_flags()). */
enum tls_hello_flag {
  TLS_HELLO_F_SNI = 1u << 0,             /* server_name extension present */
  TLS_HELLO_F_ALPN = 1u << 1,            /* ALPN extension present */
  TLS_HELLO_F_VERSIONS = 1u << 2,        /* supported_versions present */
  TLS_HELLO_F_SIGALGS = 1u << 3,         /* signature_algorithms present */
  TLS_HELLO_F_ECH = 1u << 4,             /* encrypted_client_hello (0xfe0d) present */
  TLS_HELLO_F_SNI_MULTIPLE = 1u << 5,    /* >1 host_name entry (RFC 6066 forbids) */
  TLS_HELLO_F_SNI_UPPERCASE = 1u << 6,   /* a host name had upper-case letters */
  TLS_HELLO_F_SNI_TRAILING_DOT = 1u << 7,/* a host name ended in '.' */
  TLS_HELLO_F_SNI_OTHER_TYPE = 1u << 8,  /* a server_name entry of a type other than host_name */
  TLS_HELLO_F_GREASE = 1u << 9,          /* some RFC 8701 GREASE value was seen */
  TLS_HELLO_F_DUP_CIPHER = 1u << 10,     /* a cipher suite was listed twice */
  TLS_HELLO_F_FRAGMENTED = 1u << 11,     /* the hello spans more than one record */
  TLS_HELLO_F_SNI_NON_ASCII = 1u << 12,  /* a host name had bytes >= 0x80 (raw UTF-8?) */
  TLS_HELLO_F_SNI_IP_LITERAL = 1u << 13  /* a host name looked like an IP literal */
};

/* A borrowed run of bytes inside the parser's buffer. */
struct tls_hello_bytes {
  const uint8_t *p;
  size_t len;
};

/* A borrowed list of N big-endian 16-bit values at P (tls_hello_u16_at()). */
struct tls_hello_u16s {
  const uint8_t *p;
  size_t n;
};

/* One extension, borrowed from the parser's buffer. */
struct tls_hello_ext {
  uint16_t type;
  const uint8_t *data;
  size_t len;
};

/* Parser state and, once HELLO, the parsed facts. Every pointer points into
 * BUF, which the caller owns and must keep alive and unmoved while the
 * struct is used. Read it through tls_hello.h, not directly. */
struct tls_hello {
  uint8_t *buf;       /* borrowed: TLS_HELLO_BUF_SIZE(max) bytes */
  size_t max;         /* bound on raw bytes buffered */
  enum tls_hello_status status;
  enum tls_hello_reason reason;

  /* reassembly: raw records at buf[0, len), message at buf[max, max+msg_len) */
  size_t len;         /* raw bytes buffered */
  size_t rec_start;   /* raw offset of the current record's header */
  size_t rec_end;     /* raw offset just past its payload; 0 until its header is read */
  size_t msg_len;     /* handshake bytes gathered */
  size_t msg_need;    /* 4 + handshake length; 0 until known */
  unsigned records;   /* records whose header was read */
  uint16_t record_version;

  /* parsed facts, valid when status == TLS_HELLO_ST_HELLO */
  unsigned flags;     /* enum tls_hello_flag bits */
  uint16_t legacy_version;
  struct tls_hello_bytes random;
  struct tls_hello_bytes session_id;
  struct tls_hello_u16s ciphers;
  struct tls_hello_bytes compression;
  struct tls_hello_bytes exts;   /* the extensions block, without its length */
  size_t ext_count;
  struct tls_hello_bytes alpn;   /* protocol_name_list, without its length */
  size_t alpn_count;
  struct tls_hello_u16s versions;
  struct tls_hello_u16s sigalgs;
  size_t sni_count;
  struct tls_hello_bytes sni_raw[TLS_HELLO_MAX_NAMES];
  char sni[TLS_HELLO_MAX_NAMES][TLS_HELLO_NAME_MAX + 1];
};

#endif
