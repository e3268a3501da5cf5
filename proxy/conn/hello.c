/* A client's ClientHello: its bytes, its parse and the evidence taken from
 * it. */
#include "proxy/conn/hello.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "filters/err.h"
#include "filters/ja4.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/tls_hello.h"
#include "proxy/base/log.h"
#include "proxy/base/metrics.h"
#include "proxy/base/slab.h"
#include "proxy/decide/judge.h"

struct hello {
  struct tls_hello parse;
  char ja4[JA4_HASHED_SIZE];
  char sni[TLS_HELLO_MAX_NAMES][HOST_NAME_MAX_LEN + 1]; /* normalised server names */
  const char *names[TLS_HELLO_MAX_NAMES];               /* the host names among them, for policy */
  size_t nnames;
  struct ip_addr sni_ip[TLS_HELLO_MAX_NAMES]; /* IP-literal server names, judged as addresses */
  size_t nsni_ip;
  bool sni_bad;       /* a server name the normaliser refused */
  bool decided;       /* the hello is in (or will never be): evidence gathered */
  enum action action; /* the outcome's configured action */
  const char *option; /* the option that sets it */
  const char *sni_bad_reason;
  struct tls_evidence ev;
  size_t max;   /* the configured bound */
  size_t bound; /* the parser's bound, up to MAX */
  size_t fed;   /* bytes the parser has taken */
  uint8_t *buf; /* the parser's: FIRST, or allocated for a larger bound (owned) */
  struct slab_pool *cells; /* the pool H's memory came from, or NULL (malloc) */
  uint8_t first[];         /* the buffer of the first bound */
};

/* The parser's first bound: most hellos are under 2 KiB, so a reader holds
 * 4 KiB of buffer, in its own memory, rather than twice the configured
 * bound (32 KiB by default). A larger hello moves to a larger buffer. */
#define HELLO_FIRST_BOUND 2048
#define HELLO_FIRST_BUF   TLS_HELLO_BUF_SIZE(HELLO_FIRST_BOUND)
#define HELLO_GROWTH      4

/* A parser bounded to BOUND bytes, in a new buffer (the first one while it
 * fits), fed the FED bytes taken so far. 0 or -ENOMEM (H unchanged). */
static int parser_bound(struct hello *h, size_t bound) {
  bool first = h->buf == NULL && TLS_HELLO_BUF_SIZE(bound) <= HELLO_FIRST_BUF;
  uint8_t *buf = first ? h->first : malloc(TLS_HELLO_BUF_SIZE(bound));
  size_t used = 0;
  if (buf == NULL)
    return -ENOMEM;
  tls_hello_init(&h->parse, buf, TLS_HELLO_BUF_SIZE(bound), bound);
  /* Bytes a smaller bound took are taken again: the parse does not depend
   * on the bound until it is reached. */
  if (h->fed > 0)
    tls_hello_feed(&h->parse, h->buf, h->fed, &used);
  if (h->buf != h->first)
    free(h->buf);
  h->buf = buf;
  h->bound = bound;
  return 0;
}

struct hello *hello_new(struct slab_pool *cells, size_t max) {
  size_t size = sizeof(struct hello) + HELLO_FIRST_BUF;
  struct hello *h;
  if (max < TLS_HELLO_LIMIT_MIN || max > TLS_HELLO_LIMIT_MAX)
    return NULL;
  if ((h = cells != NULL ? slab_alloc(cells, size) : calloc(1, size)) == NULL)
    return NULL;
  h->cells = cells;
  h->max = max;
  parser_bound(h, max < HELLO_FIRST_BOUND ? max : HELLO_FIRST_BOUND); /* the first buffer */
  return h;
}

void hello_free(struct hello *h) {
  if (h == NULL)
    return;
  if (h->buf != h->first)
    free(h->buf);
  if (h->cells != NULL)
    slab_free(h->cells, h);
  else
    free(h);
}

enum tls_hello_status hello_feed(struct hello *h, const char *data, size_t len, size_t *used) {
  enum tls_hello_status st;
  for (;;) {
    size_t next = h->bound * HELLO_GROWTH < h->max ? h->bound * HELLO_GROWTH : h->max;
    *used = 0;
    st = tls_hello_feed(&h->parse, (const uint8_t *)data, len, used);
    if (st != TLS_HELLO_ST_TOO_LARGE || h->bound >= h->max || parser_bound(h, next) != 0)
      break;
  }
  h->fed += *used;
  return st;
}

static const char *version_name(uint16_t v) {
  switch (v) {
  case 0x0304: return "TLS1.3";
  case 0x0303: return "TLS1.2";
  case 0x0302: return "TLS1.1";
  case 0x0301: return "TLS1.0";
  case 0x0300: return "SSL3.0";
  default: return "other";
  }
}

void hello_add_tag(struct hello *h, const char *tag) {
  if (h->ev.ntags < TLS_EVIDENCE_MAX)
    h->ev.tags[h->ev.ntags++] = tag;
}

/* Server name I goes through the normaliser every name goes through, with
 * IDNA for raw UTF-8; an IP literal is kept as an address to judge. */
static void gather_sni(struct hello *h, size_t i, const char *dest_name) {
  const char *raw = tls_hello_sni(&h->parse, i);
  struct tls_evidence *ev = &h->ev;
  struct host sh;
  int err = host_normalise_sni(raw, strlen(raw), &sh);

  if (err != 0) {
    h->sni_bad = true;
    h->sni_bad_reason = tls_hello_reason_str(err == EMB_EBADIP    ? TLS_HELLO_R_SNI_IP_LITERAL
                                             : err == EMB_EULABEL ? TLS_HELLO_R_SNI_NON_ASCII
                                                                  : TLS_HELLO_R_SNI_BAD_CHAR);
    return;
  }
  memcpy(h->sni[i], sh.name, sh.len + 1);
  ev->sni[ev->nsni++] = h->sni[i];
  if (sh.kind == HOST_NAME) {
    h->names[h->nnames++] = h->sni[i];
  } else {
    struct ip_addr *a = &h->sni_ip[h->nsni_ip++];
    a->family = sh.kind == HOST_IPV4 ? AF_INET : AF_INET6;
    memcpy(a->addr, sh.addr, sh.kind == HOST_IPV4 ? 4 : 16);
    if (h->nsni_ip == 1)
      hello_add_tag(h, "sni_ip");
  }
  if (dest_name != NULL && strcmp(h->sni[i], dest_name) != 0)
    hello_add_tag(h, "sni_mismatch");
}

/* Collects the evidence of a parsed hello. */
static void gather_hello(struct hello *h, const char *dest_name) {
  const struct tls_hello *p = &h->parse;
  struct tls_evidence *ev = &h->ev;
  struct tls_hello_u16s versions = tls_hello_versions(p);
  struct tls_hello_bytes proto;
  size_t i, pos = 0;

  for (i = 0; i < tls_hello_sni_count(p) && i < TLS_HELLO_MAX_NAMES; i++)
    gather_sni(h, i, dest_name);
  while (ev->nalpn < TLS_EVIDENCE_MAX && tls_hello_alpn_next(p, &pos, &proto)) {
    ev->alpn[ev->nalpn] = (const char *)proto.p;
    ev->alpn_len[ev->nalpn++] = proto.len;
  }
  for (i = 0; i < versions.n && ev->nversions < TLS_EVIDENCE_MAX; i++)
    if (!tls_hello_is_grease(tls_hello_u16_at(&versions, i)))
      ev->versions[ev->nversions++] = version_name(tls_hello_u16_at(&versions, i));
  if (versions.n == 0)
    ev->versions[ev->nversions++] = version_name(tls_hello_legacy_version(p));
  ev->ech = (tls_hello_flags(p) & TLS_HELLO_F_ECH) != 0;
  if (ja4_format(p, JA4_HASHED, h->ja4, sizeof(h->ja4)) == 0)
    ev->ja4 = h->ja4;
  if (ev->nsni == 0)
    hello_add_tag(h, "no_sni");
  if (tls_hello_flags(p) & TLS_HELLO_F_SNI_MULTIPLE)
    hello_add_tag(h, "sni_multiple");
  if (ev->ech)
    hello_add_tag(h, "ech");
}

/* The configured action for what the parser (or the clock) said, the
 * option that configures it, and the outcome name for the log. */
static void set_outcome(struct hello *h, const struct config_tls *tls, enum tls_hello_status st,
                        bool timed_out) {
  const char **outcome = &h->ev.outcome;

  h->action = ACTION_ALLOW;
  h->option = NULL;
  if (timed_out) {
    *outcome = "timeout";
    h->action = tls->on_timeout;
    h->option = "tls_inspect.on_timeout";
    return;
  }
  switch (st) {
  case TLS_HELLO_ST_HELLO:
    if (h->sni_bad) {
      *outcome = "malformed";
      h->action = tls->on_malformed;
      h->option = "tls_inspect.on_malformed";
      return;
    }
    *outcome = "hello";
    if (h->ev.nsni == 0) {
      h->action = tls->on_no_sni;
      h->option = "tls_inspect.on_no_sni";
    }
    if (h->ev.ech && action_strength(tls->on_ech) > action_strength(h->action)) {
      h->action = tls->on_ech;
      h->option = "tls_inspect.on_ech";
    }
    return;
  case TLS_HELLO_ST_NOT_TLS:
    *outcome = "not_tls";
    h->action = tls->on_not_tls;
    h->option = "tls_inspect.on_not_tls";
    return;
  case TLS_HELLO_ST_TOO_LARGE:
    *outcome = "too_large";
    h->action = tls->on_too_large;
    h->option = "tls_inspect.on_too_large";
    return;
  default:
    *outcome = "malformed";
    h->action = tls->on_malformed;
    h->option = "tls_inspect.on_malformed";
    return;
  }
}

void hello_finish(struct hello *h, const struct config_tls *tls, const char *dest_name,
                  bool timed_out) {
  enum tls_hello_status st = tls_hello_status(&h->parse);
  if (st == TLS_HELLO_ST_HELLO)
    gather_hello(h, dest_name);
  if (h->sni_bad)
    h->ev.reason = h->sni_bad_reason;
  else if (st == TLS_HELLO_ST_MALFORMED)
    h->ev.reason = tls_hello_reason_str(tls_hello_reason(&h->parse));
  set_outcome(h, tls, st, timed_out);
  metrics_count_hello(h->ev.outcome);
  h->decided = true;
}

void hello_judge_input(const struct hello *h, struct judge_input *in) {
  if (h == NULL || !h->decided)
    return;
  in->sni = h->names; /* host names; IP-literal server names are judged as addresses */
  in->nsni = h->nnames;
  in->sni_addrs = h->sni_ip;
  in->nsni_addrs = h->nsni_ip;
  in->ja4 = h->ev.ja4;
  if (h->option != NULL)
    judge_add_outcome(in, h->action, h->option);
}

const struct tls_evidence *hello_evidence(const struct hello *h) {
  return h != NULL && h->decided ? &h->ev : NULL;
}

bool hello_spoke_tls(const struct hello *h) {
  enum tls_hello_status st;
  if (h == NULL)
    return false;
  st = tls_hello_status(&h->parse);
  return st == TLS_HELLO_ST_HELLO || st == TLS_HELLO_ST_MALFORMED || st == TLS_HELLO_ST_TOO_LARGE;
}

void hello_alert(const struct hello *h, char out[HELLO_ALERT_LEN]) {
  static const char alert[HELLO_ALERT_LEN] = {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x31};
  uint16_t v = tls_hello_record_version(&h->parse);
  memcpy(out, alert, sizeof(alert));
  if (v >> 8 == 0x03)
    out[2] = (char)(v & 0xff);
}

bool hello_ok(const struct hello *h) {
  return h != NULL && h->decided && !h->sni_bad &&
         tls_hello_status(&h->parse) == TLS_HELLO_ST_HELLO;
}

const uint8_t *hello_raw(const struct hello *h, size_t *len) {
  *len = 0;
  return tls_hello_raw(&h->parse, len);
}

const char *const *hello_names(const struct hello *h, size_t *n) {
  *n = h->nnames;
  return h->names;
}

bool hello_asks_for(const struct hello *h, const char *name) {
  size_t i;
  for (i = 0; i < h->ev.nsni; i++)
    if (strcmp(h->ev.sni[i], name) == 0)
      return true;
  return h->ev.nsni == 0;
}

bool hello_offers_tls13(const struct hello *h) {
  size_t i;
  if (!h->decided)
    return false;
  for (i = 0; i < h->ev.nversions; i++)
    if (strcmp(h->ev.versions[i], "TLS1.3") == 0)
      return true;
  return false;
}

void hello_sni_set(const struct hello *h, char *out, size_t size) {
  size_t i, n = 0;
  out[0] = '\0';
  for (i = 0; i < h->ev.nsni && n < size; i++)
    n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "", h->ev.sni[i]);
}
