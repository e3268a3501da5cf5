/* The exchange's judgement, where a refusal goes, and its decision lines.
 * The destination's name is judged first (a name denied by name is never
 * resolved), then its answer and the addresses the connection may go to,
 * then, where read, the ClientHello; a transparent connection is judged on
 * the name it claims and its original destination together. */
#include "proxy/conn/exchange.h"

#include <netinet/in.h>
#include <string.h>

#include "filters/policy.h"
#include "proxy/base/dns.h"
#include "proxy/base/log.h"
#include "proxy/conn/conn.h"
#include "proxy/conn/hello.h"
#include "proxy/decide/judge.h"
#include "proxy/worker/listener.h"
#include "proxy/worker/server.h"

bool exchange_http_face(const struct conn *c) {
  return c->ex->head != NULL && !c->established && c->ex->hello == NULL;
}

bool exchange_peek_wanted(const struct conn *c) {
  const struct config_tls *tls = &c->srv->cfg->tls;
  size_t i;
  if (conn_transparent(c) || c->ex->hello != NULL || c->ex->head == NULL ||
      !c->ex->head->is_connect)
    return false;
  for (i = 0; i < tls->nports; i++)
    if (tls->ports[i] == c->ex->dest.port)
      return true;
  return false;
}

/* Everything known of the current exchange's destination. */
static void gather(const struct conn *c, struct judge_input *in) {
  const struct config_transparent *t = &c->srv->cfg->transparent;
  const struct exchange *ex = c->ex;

  memset(in, 0, sizeof(*in));
  in->host = &ex->dest;
  in->client = &c->peer.sa;
  in->connect = !conn_transparent(c) && ex->head != NULL && ex->head->is_connect;
  if (ex->addrs != NULL) {
    in->resolved = ex->addrs;
    in->dial = ex->addrs->addrs;
    in->ndial = ex->addrs->naddrs;
  }
  /* A plain-HTTP request's path names update files whatever the host. */
  if (ex->head != NULL && !ex->head->is_connect && ex->path != NULL) {
    in->path = ex->path;
    in->path_len = ex->path_len;
  }
  hello_judge_input(ex->hello, in);
  /* An intercepted TLS connection's name is its SNI: judged as such (an
   * exception for it must name it), its original destination as the
   * address it is. */
  if (conn_transparent(c) && in->nsni > 0)
    in->host = NULL;
  if (conn_transparent(c) && ex->head == NULL && ex->hello == NULL)
    judge_add_outcome(in, t->on_unknown, "transparent.on_unknown");
  if (ex->dst_mismatch)
    judge_add_outcome(in, t->on_dst_mismatch, "transparent.on_dst_mismatch");
  if (ex->sni_changed)
    judge_add_outcome(in, ACTION_DENY, "the second ClientHello changed the server name");
}

/* Whether the block page is in effect for the verdict (a deny): a CA is
 * loaded and deny_with, the category's or tls_inspect's, is page. */
static bool page_wanted(const struct conn *c) {
  const struct rule *r = c->ex->verdict.rule;
  enum deny_with w = c->srv->cfg->tls.deny_with;
  if (c->srv->blockpage == NULL)
    return false;
  if (r != NULL && r->category->deny_with != DENY_WITH_DEFAULT)
    w = r->category->deny_with;
  return w == DENY_WITH_PAGE;
}

/* A deny: the block page over TLS where it is in effect and nothing was
 * dialled yet (a tunnel already relaying the destination's TLS cannot
 * change servers), else the usual refusal. A CONNECT to a tls_inspect port
 * not answered yet gets its 200 and its ClientHello read first (the
 * verdict comes again with the hello); once a hello was read, BUMP. */
static enum phase_rc deny(struct conn *c) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  struct exchange *ex = c->ex;

  conn_set_answer(c, ANSWER_DENY, 403, "http_request_denied", ex->decided_by);
  if (!page_wanted(c) || c->up != NULL)
    return conn_goto(c, CONN_ST_RESPONDING);
  if (ex->hello == NULL) {
    if (!exchange_peek_wanted(c) || c->established)
      return conn_goto(c, CONN_ST_RESPONDING);
    c->established = true;
    if (conn_write_client(c, established, sizeof(established) - 1) != 0)
      return PHASE_CLOSE;
    return conn_goto(c, CONN_ST_PEEK);
  }
  /* A leaf only for a name judged deny itself: the CA never signs for a
   * name Embargo would let through. BUMP falls back on the answer
   * described above if it cannot start. */
  return conn_goto(c, hello_ok(ex->hello) && exchange_page_name(c) != NULL ? CONN_ST_BUMP
                                                                           : CONN_ST_RESPONDING);
}

const char *exchange_page_name(const struct conn *c) {
  const struct exchange *ex = c->ex;
  const struct verdict *v = &ex->verdict;
  if (ex->hello == NULL || v->action != ACTION_DENY || v->rule == NULL ||
      ex->decided_by != NULL) /* not the rule's deny: an outcome made it one */
    return NULL;
  switch (v->on) {
  case MATCH_SNI: return v->matched[0] != '\0' ? v->matched : NULL;
  case MATCH_ADDRESS:
    /* An intercepted connection's address is where it was going, not what
     * the name it claims resolved to: that name was not judged deny. */
    if (conn_transparent(c) && ex->dest.kind == HOST_NAME)
      return NULL;
    break;
  case MATCH_HOST:
  case MATCH_CNAME: break;
  default: return NULL; /* a JA4 rule judged the client, not a name */
  }
  return hello_asks_for(ex->hello, ex->dest.name) ? ex->dest.name : NULL;
}

bool exchange_judge(struct conn *c, enum phase_rc *refusal) {
  struct judge_input in;
  struct judgement j;

  gather(c, &in);
  judge_destination(c->srv->cfg, c->policy, &c->srv->dest, &in, server_now(c->srv),
                    uv_now(c->srv->loop), &j);
  c->ex->verdict = j.verdict;
  c->ex->decided_by = j.option;
  switch (j.refusal) {
  case JUDGE_PORT:
    *refusal = conn_answer(c, ANSWER_REFUSE, 403, "http_request_denied", j.detail);
    return false;
  case JUDGE_INTERNAL:
  case JUDGE_SELF:
    *refusal = conn_answer(c, ANSWER_REFUSE, 403, "destination_ip_prohibited", j.detail);
    return false;
  default: break;
  }
  if (c->ex->verdict.action != ACTION_DENY)
    return true;
  *refusal = deny(c);
  return false;
}

void exchange_log(struct conn *c, const char *event, int status, const char *error,
                  const char *detail) {
  const struct exchange *ex = c->ex;
  const struct http_head *h = ex->head;
  struct decision d = {
      .event = event,
      .policy = c->policy,
      .conn_id = c->id,
      .client = (const struct sockaddr *)&c->peer,
      .listener = c->lst->name,
      .method = h != NULL ? h->method : NULL,
      .status = status,
      .error = error,
      .detail = detail,
      .tls = hello_evidence(ex->hello),
      .mode = conn_transparent(c) ? listen_mode_name((enum listen_mode)conn_mode(c)) : NULL,
      .original_dst = conn_transparent(c) ? (const struct sockaddr *)&ex->orig_dst : NULL,
      .dst_mismatch = ex->dst_mismatch,
      .resolved = ex->addrs,
  };
  if (h != NULL) {
    int ua = http_head_find(h, "user-agent");
    if (ua >= 0) {
      d.user_agent = http_head_str(h, h->fields[ua].value);
      d.user_agent_len = h->fields[ua].value_len;
    }
  }
  if (ex->dest.len > 0) {
    d.host = ex->dest.name;
    d.port = ex->dest.port;
  } else if (h != NULL && h->target_len > 0) { /* unparsable target: log it escaped */
    d.host = http_head_str(h, h->target);
    d.host_len = h->target_len;
  }
  if (ex->verdict.rule != NULL || strcmp(event, "error") != 0) {
    d.verdict = &ex->verdict;
    d.policy_now = server_now(c->srv);
  }
  log_decision(&d);
}

void exchange_log_verdict(struct conn *c) {
  if (c->ex->verdict.action == ACTION_LOG)
    exchange_log(c, "log", 0, NULL, c->ex->decided_by);
  else if (c->srv->cfg->access_log)
    exchange_log(c, "access", 0, NULL, NULL);
}

bool exchange_via_parent(const struct conn *c) {
  const struct config_upstream_proxy *u = &c->srv->cfg->upstream_proxy;
  return u->enabled && !config_upstream_direct(
                           u, c->ex->dest.len > 0 ? &c->ex->dest : NULL,
                           conn_transparent(c) ? (const struct sockaddr *)&c->ex->orig_dst : NULL);
}

const char *exchange_parent_target(const struct conn *c, char *buf, size_t size) {
  const struct exchange *ex = c->ex;
  if (!conn_transparent(c) || ex->parent_by_name)
    host_format(&ex->dest, buf, size);
  else
    log_fmt_addr((const struct sockaddr *)&ex->orig_dst, buf, size);
  return buf;
}

/* TEXT as an sf-string (RFC 8941) into OUT: printable ASCII, '"' and '\'
 * escaped. */
static void sf_quote(char *out, size_t size, const char *text) {
  size_t n = 0;
  for (; *text != '\0' && n + 3 < size; text++) {
    if (*text == '"' || *text == '\\')
      out[n++] = '\\';
    out[n++] = *text >= 0x20 && *text < 0x7f ? *text : '?';
  }
  out[n] = '\0';
}

enum phase_rc exchange_parent_failed(struct conn *c, int status, const char *error, int received,
                                     const char *detail) {
  struct exchange *ex = c->ex;
  char hop[sizeof(ex->ps_buf) - 48];
  sf_quote(hop, sizeof(hop), c->srv->cfg->upstream_proxy.address);
  if (received > 0)
    snprintf(ex->ps_buf, sizeof(ex->ps_buf), "next-hop=\"%s\"; received-status=%d", hop, received);
  else
    snprintf(ex->ps_buf, sizeof(ex->ps_buf), "next-hop=\"%s\"", hop);
  ex->ps_extra = ex->ps_buf;
  return conn_answer(c, ANSWER_REFUSE, status, error, detail);
}

static uint16_t orig_port(const struct exchange *ex) {
  return ntohs(ex->orig_dst.ss_family == AF_INET6
                   ? ((const struct sockaddr_in6 *)&ex->orig_dst)->sin6_port
                   : ((const struct sockaddr_in *)&ex->orig_dst)->sin_port);
}

void exchange_dest_from_orig(struct exchange *ex) {
  const struct sockaddr *sa = (const struct sockaddr *)&ex->orig_dst;
  memset(&ex->dest, 0, sizeof(ex->dest));
  if (sa->sa_family == AF_INET) {
    ex->dest.kind = HOST_IPV4;
    memcpy(ex->dest.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else {
    ex->dest.kind = HOST_IPV6;
    memcpy(ex->dest.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  }
  ex->dest.port = orig_port(ex);
  log_fmt_ip(sa, ex->dest.name, sizeof(ex->dest.name));
  ex->dest.len = strlen(ex->dest.name);
  host_format(&ex->dest, ex->authority, sizeof(ex->authority));
}

void exchange_dest_claimed(struct exchange *ex, const char *name) {
  memset(&ex->dest, 0, sizeof(ex->dest));
  ex->dest.kind = HOST_NAME;
  ex->dest.len = strlen(name);
  memcpy(ex->dest.name, name, ex->dest.len + 1);
  ex->dest.port = orig_port(ex);
  host_format(&ex->dest, ex->authority, sizeof(ex->authority));
}
