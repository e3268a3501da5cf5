/* ClientHello inspection, for CONNECT tunnels on TLS ports (after their
 * 200) and for intercepted TLS connections: the client's first flight is
 * read without dialling and parsed; its server names, fingerprint and
 * outcome (hello, not TLS, malformed, too large, timeout) join the facts
 * route.c judges. Only then is the destination dialled and the buffered
 * bytes forwarded unchanged; a denied connection gets a fatal
 * access_denied alert and is closed, or, where deny_with is page, the block
 * page over TLS (bump.c). */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/err.h"
#include "filters/ja4.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/tls_hello.h"
#include "filters/tls_server.h"
#include "proxy/conn-int.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

struct peek {
  struct tls_hello hello;
  char ja4[JA4_HASHED_SIZE];
  char sni[TLS_HELLO_MAX_NAMES][HOST_NAME_MAX_LEN + 1]; /* normalised server names */
  const char *names[TLS_HELLO_MAX_NAMES]; /* the host names among them, for policy */
  size_t nnames;
  struct ip_addr sni_ip[TLS_HELLO_MAX_NAMES]; /* IP-literal server names, judged as addresses */
  size_t nsni_ip;
  bool sni_bad;  /* a server name the normaliser refused */
  bool decided;  /* the hello is in (or will never be): evidence gathered */
  enum action action;  /* the outcome's configured action */
  const char *option;  /* the option that sets it */
  const char *sni_bad_reason;
  struct tls_evidence ev;
  uint8_t buf[]; /* TLS_HELLO_BUF_SIZE(max_hello) */
};

bool peek_wanted(const struct conn *c) {
  const struct config_tls *tls = &c->srv->cfg->tls;
  size_t i;
  if (conn_transparent(c) || c->ex->peek != NULL || c->ex->head == NULL || !c->ex->head->is_connect)
    return false;
  for (i = 0; i < tls->nports; i++)
    if (tls->ports[i] == c->ex->dest.port)
      return true;
  return false;
}

void peek_free(struct conn *c) {
  free(c->ex->peek);
  c->ex->peek = NULL;
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

static void add_tag(struct tls_evidence *ev, const char *tag) {
  if (ev->ntags < TLS_EVIDENCE_MAX)
    ev->tags[ev->ntags++] = tag;
}

/* Server name I goes through the normaliser every name goes through, with
 * IDNA for raw UTF-8; an IP literal is kept as an address to judge. */
static void gather_sni(struct conn *c, struct peek *pk, size_t i) {
  const char *raw = tls_hello_sni(&pk->hello, i);
  struct tls_evidence *ev = &pk->ev;
  struct host sh;
  int err = host_normalise_sni(raw, strlen(raw), &sh);

  if (err != 0) {
    pk->sni_bad = true;
    pk->sni_bad_reason = tls_hello_reason_str(err == EMB_EBADIP ? TLS_HELLO_R_SNI_IP_LITERAL
                                              : err == EMB_EULABEL ? TLS_HELLO_R_SNI_NON_ASCII
                                                                   : TLS_HELLO_R_SNI_BAD_CHAR);
    return;
  }
  memcpy(pk->sni[i], sh.name, sh.len + 1);
  ev->sni[ev->nsni++] = pk->sni[i];
  if (sh.kind == HOST_NAME) {
    pk->names[pk->nnames++] = pk->sni[i];
  } else {
    struct ip_addr *a = &pk->sni_ip[pk->nsni_ip++];
    a->family = sh.kind == HOST_IPV4 ? AF_INET : AF_INET6;
    memcpy(a->addr, sh.addr, sh.kind == HOST_IPV4 ? 4 : 16);
    if (pk->nsni_ip == 1)
      add_tag(ev, "sni_ip");
  }
  if (!conn_transparent(c) && strcmp(pk->sni[i], c->ex->dest.name) != 0)
    add_tag(ev, "sni_mismatch");
}

/* Whether an IP-literal server name is an internal destination; its text
 * goes to DETAIL. */

/* Collects the evidence of a parsed hello. */
static void gather_hello(struct conn *c, struct peek *pk) {
  const struct tls_hello *h = &pk->hello;
  struct tls_evidence *ev = &pk->ev;
  struct tls_hello_u16s versions = tls_hello_versions(h);
  struct tls_hello_bytes proto;
  size_t i, pos = 0;

  for (i = 0; i < tls_hello_sni_count(h) && i < TLS_HELLO_MAX_NAMES; i++)
    gather_sni(c, pk, i);
  while (ev->nalpn < TLS_EVIDENCE_MAX && tls_hello_alpn_next(h, &pos, &proto)) {
    ev->alpn[ev->nalpn] = (const char *)proto.p;
    ev->alpn_len[ev->nalpn++] = proto.len;
  }
  for (i = 0; i < versions.n && ev->nversions < TLS_EVIDENCE_MAX; i++)
    if (!tls_hello_is_grease(tls_hello_u16_at(&versions, i)))
      ev->versions[ev->nversions++] = version_name(tls_hello_u16_at(&versions, i));
  if (versions.n == 0)
    ev->versions[ev->nversions++] = version_name(tls_hello_legacy_version(h));
  ev->ech = (tls_hello_flags(h) & TLS_HELLO_F_ECH) != 0;
  if (ja4_format(h, JA4_HASHED, pk->ja4, sizeof(pk->ja4)) == 0)
    ev->ja4 = pk->ja4;
  if (ev->nsni == 0)
    add_tag(ev, "no_sni");
  if (tls_hello_flags(h) & TLS_HELLO_F_SNI_MULTIPLE)
    add_tag(ev, "sni_multiple");
  if (ev->ech)
    add_tag(ev, "ech");
}

/* Sets the configured action for what the parser (or the clock) said, the
 * option that configures it, and the outcome name for the log. */
static void set_outcome(const struct conn *c, struct peek *pk, enum tls_hello_status st,
                        bool timed_out) {
  const struct config_tls *tls = &c->srv->cfg->tls;
  const char **outcome = &pk->ev.outcome;

  pk->action = ACTION_ALLOW;
  pk->option = NULL;
  if (timed_out) {
    *outcome = "timeout";
    pk->action = tls->on_timeout;
    pk->option = "tls_inspect.on_timeout";
    return;
  }
  switch (st) {
  case TLS_HELLO_ST_HELLO:
    if (pk->sni_bad) {
      *outcome = "malformed";
      pk->action = tls->on_malformed;
      pk->option = "tls_inspect.on_malformed";
      return;
    }
    *outcome = "hello";
    if (pk->ev.nsni == 0) {
      pk->action = tls->on_no_sni;
      pk->option = "tls_inspect.on_no_sni";
    }
    if (pk->ev.ech && action_strength(tls->on_ech) > action_strength(pk->action)) {
      pk->action = tls->on_ech;
      pk->option = "tls_inspect.on_ech";
    }
    return;
  case TLS_HELLO_ST_NOT_TLS:
    *outcome = "not_tls";
    pk->action = tls->on_not_tls;
    pk->option = "tls_inspect.on_not_tls";
    return;
  case TLS_HELLO_ST_TOO_LARGE:
    *outcome = "too_large";
    pk->action = tls->on_too_large;
    pk->option = "tls_inspect.on_too_large";
    return;
  default:
    *outcome = "malformed";
    pk->action = tls->on_malformed;
    pk->option = "tls_inspect.on_malformed";
    return;
  }
}

void peek_send_alert(struct conn *c) {
  /* A fatal access_denied alert at the record version the client used. */
  uint16_t v = tls_hello_record_version(&c->ex->peek->hello);
  char alert[7] = {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x31};
  if (v >> 8 == 0x03)
    alert[2] = (char)(v & 0xff);
  conn_write_client(c, alert, sizeof(alert));
}

bool peek_spoke_tls(const struct conn *c) {
  enum tls_hello_status st;
  if (c->ex->peek == NULL)
    return false;
  st = tls_hello_status(&c->ex->peek->hello);
  return st == TLS_HELLO_ST_HELLO || st == TLS_HELLO_ST_MALFORMED || st == TLS_HELLO_ST_TOO_LARGE;
}

const struct tls_evidence *peek_evidence(const struct conn *c) {
  return c->ex->peek != NULL && c->ex->peek->decided ? &c->ex->peek->ev : NULL;
}

void peek_judge_input(const struct conn *c, struct judge_input *in) {
  const struct peek *pk = c->ex->peek;
  if (pk == NULL || !pk->decided)
    return;
  in->sni = pk->names; /* host names; IP-literal server names are judged as addresses */
  in->nsni = pk->nnames;
  in->sni_addrs = pk->sni_ip;
  in->nsni_addrs = pk->nsni_ip;
  in->ja4 = pk->ev.ja4;
  if (pk->option != NULL)
    judge_add_outcome(in, pk->action, pk->option);
}

/* An intercepted connection is routed by the name its hello claims, or by
 * its original destination when it claims none. */
static void claim_name(struct conn *c) {
  struct peek *pk = c->ex->peek;
  memset(&c->ex->dest, 0, sizeof(c->ex->dest));
  c->ex->dest.kind = HOST_NAME;
  c->ex->dest.len = strlen(pk->names[0]);
  memcpy(c->ex->dest.name, pk->names[0], c->ex->dest.len + 1);
  c->ex->dest.port = ntohs(c->ex->orig_dst.ss_family == AF_INET6
                           ? ((const struct sockaddr_in6 *)&c->ex->orig_dst)->sin6_port
                           : ((const struct sockaddr_in *)&c->ex->orig_dst)->sin_port);
  host_format(&c->ex->dest, c->ex->authority, sizeof(c->ex->authority));
}

/* The hello is in (or will never be): its evidence, why it is malformed
 * if it is, and the outcome's configured action. */
static void finish_hello(struct conn *c, struct peek *pk, bool timed_out) {
  enum tls_hello_status st = tls_hello_status(&pk->hello);
  if (st == TLS_HELLO_ST_HELLO)
    gather_hello(c, pk);
  if (pk->sni_bad)
    pk->ev.reason = pk->sni_bad_reason;
  else if (st == TLS_HELLO_ST_MALFORMED)
    pk->ev.reason = tls_hello_reason_str(tls_hello_reason(&pk->hello));
  set_outcome(c, pk, st, timed_out);
  metrics_count_hello(pk->ev.outcome);
  pk->decided = true;
}

/* The first hello is in (or will never be): judge it with everything
 * else (an intercepted connection is routed by the name it claims). */
static void peek_decide(struct conn *c, bool timed_out) {
  struct peek *pk = c->ex->peek;

  metrics_observe_ms(METRIC_H_HELLO_WAIT,
                     metrics_elapsed(c->srv->cfg->tls.timeout, uv_timer_get_due_in(&c->timer)));
  uv_timer_stop(&c->timer);
  finish_hello(c, pk, timed_out);
  if (!conn_transparent(c)) {
    route_after_hello(c);
    return;
  }
  if (pk->nnames == 0)
    transparent_dest_from_orig(c);
  else
    claim_name(c);
  route_start(c);
}

/* Feeds client bytes; DATA may be the spill buffer. */
static void peek_feed(struct conn *c, const char *data, size_t len, bool from_spill) {
  size_t used = 0;
  enum tls_hello_status st =
      tls_hello_feed(&c->ex->peek->hello, (const uint8_t *)data, len, &used);

  if (conn_input_consumed(c, data, len, used, from_spill) != 0)
    return;
  if (st != TLS_HELLO_ST_NEED_MORE)
    peek_decide(c, false);
}

void peek_data(struct conn *c, ssize_t nread, const char *data) {
  if (nread < 0) {
    log_diag(LOG_INFO, c->id, "client closed before its ClientHello was complete");
    /* Already denied (the page was to follow the hello): record the deny. */
    if (c->ex->verdict.action == ACTION_DENY)
      respond_log(c, "deny", 0, "tunnel_closed", "client closed before its ClientHello");
    conn_close(c);
    return;
  }
  peek_feed(c, data, (size_t)nread, false);
}

void peek_timeout(struct conn *c) {
  peek_decide(c, true);
}

void peek_start(struct conn *c) {
  size_t max = c->srv->cfg->tls.max_hello;

  c->ex->peek = calloc(1, sizeof(*c->ex->peek) + TLS_HELLO_BUF_SIZE(max));
  if (c->ex->peek == NULL || tls_hello_init(&c->ex->peek->hello, c->ex->peek->buf, TLS_HELLO_BUF_SIZE(max),
                                        max) != 0) {
    route_refuse(c, 500, "proxy_internal_error", "cannot start ClientHello inspection");
    return;
  }
  conn_set_state(c, CONN_ST_PEEK);
  conn_arm_timer(c, c->srv->cfg->tls.timeout);
  if (c->ex->spill_len > 0) /* the client did not wait for the 200 */
    peek_feed(c, c->ex->spill + c->ex->spill_off, c->ex->spill_len, true);
  if (c->state == CONN_ST_PEEK)
    conn_update_reading(c);
}

bool peek_hello_ok(const struct conn *c) {
  return c->ex->peek != NULL && c->ex->peek->decided && !c->ex->peek->sni_bad &&
         tls_hello_status(&c->ex->peek->hello) == TLS_HELLO_ST_HELLO;
}

const uint8_t *peek_hello(const struct conn *c, size_t *len) {
  return tls_hello_raw(&c->ex->peek->hello, len);
}

/* Whether the hello names no server, or names NAME among its servers. */
static bool hello_asks_for(const struct peek *pk, const char *name) {
  size_t i;
  for (i = 0; i < pk->ev.nsni; i++)
    if (strcmp(pk->ev.sni[i], name) == 0)
      return true;
  return pk->ev.nsni == 0;
}

const char *peek_denied_name(const struct conn *c) {
  const struct verdict *v = &c->ex->verdict;
  if (c->ex->peek == NULL || v->action != ACTION_DENY || v->rule == NULL ||
      c->ex->decided_by != NULL) /* not the rule's deny: an outcome made it one */
    return NULL;
  switch (v->on) {
  case MATCH_SNI: return v->matched[0] != '\0' ? v->matched : NULL;
  case MATCH_ADDRESS:
    /* An intercepted connection's address is where it was going, not what
     * the name it claims resolved to: that name was not judged deny. */
    if (conn_transparent(c) && c->ex->dest.kind == HOST_NAME)
      return NULL;
    break;
  case MATCH_HOST:
  case MATCH_CNAME: break;
  default: return NULL; /* a JA4 rule judged the client, not a name */
  }
  return hello_asks_for(c->ex->peek, c->ex->dest.name) ? c->ex->dest.name : NULL;
}

int peek_forward(struct conn *c, struct endpoint *up) {
  size_t len = 0;
  const uint8_t *raw;
  if (c->ex->peek == NULL)
    return 0;
  raw = tls_hello_raw(&c->ex->peek->hello, &len);
  return len > 0 ? endpoint_write(up, (const char *)raw, len) : 0;
}

/* ---- a HelloRetryRequest and the second ClientHello ------------------------

 * A TLS 1.3 server that wants another key share answers the first hello
 * with a HelloRetryRequest, and the client sends a second ClientHello. The
 * tunnel watches the server's first flight (a few dozen bytes of state);
 * after an HRR it holds the client's next bytes until the second hello is
 * whole, judges it like the first (its server names must be the first
 * hello's), and only then relays it. */

#define SNI_SET_MAX 1024

struct hello_watch {
  struct tls_server server;
  bool awaiting;               /* an HRR went to the client: the second hello is due */
  char first_sni[SNI_SET_MAX]; /* the first hello's server names, joined */
};

/* The server names of PK, normalised, joined with commas. */
static void sni_set(const struct peek *pk, char *out, size_t size) {
  size_t i, n = 0;
  out[0] = '\0';
  for (i = 0; i < pk->ev.nsni && n < size; i++)
    n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "", pk->ev.sni[i]);
}

static bool offers_tls13(const struct peek *pk) {
  size_t i;
  for (i = 0; i < pk->ev.nversions; i++)
    if (strcmp(pk->ev.versions[i], "TLS1.3") == 0)
      return true;
  return false;
}

void peek_watch_start(struct conn *c) {
  struct hello_watch *w;
  if (c->ex->peek == NULL || !c->ex->peek->decided || !offers_tls13(c->ex->peek))
    return;
  if ((w = calloc(1, sizeof(*w))) == NULL)
    return; /* without memory for the watch the tunnel still works, unwatched */
  tls_server_init(&w->server);
  sni_set(c->ex->peek, w->first_sni, sizeof(w->first_sni));
  c->ex->watch = w;
}

void peek_watch_free(struct conn *c) {
  free(c->ex->watch);
  c->ex->watch = NULL;
}

void peek_watch_server(struct conn *c, const char *data, size_t len) {
  struct hello_watch *w = c->ex->watch;
  enum tls_server_status st;
  if (w == NULL || w->awaiting)
    return;
  st = tls_server_feed(&w->server, (const uint8_t *)data, len);
  if (st == TLS_SERVER_ST_HRR)
    w->awaiting = true;
  else if (st != TLS_SERVER_ST_NEED_MORE)
    peek_watch_free(c); /* a ServerHello (or anything else): no second hello comes */
}

bool peek_awaiting_second_hello(const struct conn *c) {
  return c->ex->watch != NULL && c->ex->watch->awaiting;
}

/* Bytes of a ChangeCipherSpec record at the start of the held input (TLS
 * 1.3 middlebox compatibility: a client may send one before its second
 * hello), or 0. */
static size_t leading_ccs(const char *p, size_t n) {
  if (n >= 6 && p[0] == 0x14 && p[1] == 0x03 && p[3] == 0x00 && p[4] == 0x01)
    return 6;
  return 0;
}

/* The second hello is whole (or will never be): judge it, then relay it
 * with what the client sent meanwhile, or refuse. */
static void second_decide(struct conn *c) {
  struct peek *pk = c->ex->peek;
  char second[SNI_SET_MAX];
  bool changed;

  finish_hello(c, pk, false);
  sni_set(pk, second, sizeof(second));
  changed = strcmp(second, c->ex->watch->first_sni) != 0;
  if (changed)
    add_tag(&pk->ev, "sni_changed");
  peek_watch_free(c);
  if (!route_second_hello(c, changed))
    return;
  if (peek_forward(c, &c->up->ep) != 0 ||
      (c->ex->spill_len > 0 && endpoint_write(&c->up->ep, c->ex->spill + c->ex->spill_off, c->ex->spill_len) != 0)) {
    conn_close(c);
    return;
  }
  c->ex->spill_len = c->ex->spill_off = 0;
  peek_free(c);
  conn_tunnel_relaying(c);
}

void peek_second_hello(struct conn *c, ssize_t nread, const char *data) {
  size_t max = c->srv->cfg->tls.max_hello, used = 0, ccs;
  enum tls_hello_status st;

  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (c->ex->peek == NULL) {
    ccs = leading_ccs(data, (size_t)nread);
    if (ccs > 0 && endpoint_write(&c->up->ep, data, ccs) != 0) {
      conn_close(c);
      return;
    }
    data += ccs;
    nread -= (ssize_t)ccs;
    c->ex->peek = calloc(1, sizeof(*c->ex->peek) + TLS_HELLO_BUF_SIZE(max));
    if (c->ex->peek == NULL ||
        tls_hello_init(&c->ex->peek->hello, c->ex->peek->buf, TLS_HELLO_BUF_SIZE(max), max) != 0) {
      conn_close(c);
      return;
    }
  }
  st = tls_hello_feed(&c->ex->peek->hello, (const uint8_t *)data, (size_t)nread, &used);
  if (conn_input_consumed(c, data, (size_t)nread, used, false) != 0)
    return;
  if (st != TLS_HELLO_ST_NEED_MORE)
    second_decide(c);
}
