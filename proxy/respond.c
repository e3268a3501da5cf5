/* Responses Embargo writes itself: errors with an RFC 9209 Proxy-Status
 * field, the deny page, and the decision log lines that go with them. */
#include <stdio.h>
#include <string.h>

#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/conn-int.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

static const char *reason_phrase(int status) {
  switch (status) {
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 408: return "Request Timeout";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 504: return "Gateway Timeout";
  default: return "Error";
  }
}

/* An sf-string (RFC 8941) holds printable ASCII with '"' and '\' escaped. */
static void sf_string(char *out, size_t size, const char *s) {
  size_t n = 0;
  for (; *s != '\0' && n + 3 < size; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      out[n++] = '\\';
    out[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
  }
  out[n] = '\0';
}

void respond_log(struct conn *c, const char *event, int status, const char *error,
                 const char *detail) {
  const struct http_head *h = c->ex->head;
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
      .tls = peek_evidence(c),
      .mode = conn_transparent(c) ? listen_mode_name((enum listen_mode)conn_mode(c)) : NULL,
      .original_dst = conn_transparent(c) ? (const struct sockaddr *)&c->ex->orig_dst : NULL,
      .dst_mismatch = c->ex->dst_mismatch,
      .resolved = c->ex->addrs,
  };
  if (h != NULL) {
    int ua = http_head_find(h, "user-agent");
    if (ua >= 0) {
      d.user_agent = http_head_str(h, h->fields[ua].value);
      d.user_agent_len = h->fields[ua].value_len;
    }
  }
  if (c->ex->dest.len > 0) {
    d.host = c->ex->dest.name;
    d.port = c->ex->dest.port;
  } else if (h != NULL && h->target_len > 0) { /* unparsable target: log it escaped */
    d.host = http_head_str(h, h->target);
    d.host_len = h->target_len;
  }
  if (c->ex->verdict.rule != NULL || strcmp(event, "error") != 0) {
    d.verdict = &c->ex->verdict;
    d.policy_now = server_now(c->srv);
  }
  log_decision(&d);
}

/* Whether the connection can carry another request after a local response. */
static bool can_keep(const struct conn *c, int status) {
  const struct http_head *h = c->ex->head;
  if (c->close_after || h == NULL || c->cli.eof)
    return false;
  if (status == 400 || status == 408 || status == 431 || status == 500 || h->is_connect)
    return false;
  /* An unread body would be taken for the next request: close instead. */
  return c->ex->req_done || (!h->chunked && (!h->has_length || h->content_length == 0));
}

/* Appends a whole response Embargo generated to OUT: status line,
 * Proxy-Status (ERROR, PS_EXTRA parameters if not NULL, DETAIL), headers,
 * BODY. */
static void write_message(struct obuf *out, int status, const char *error, const char *ps_extra,
                          const char *detail, const char *body, bool keep) {
  char details[300];
  sf_string(details, sizeof(details), detail);
  obuf_printf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
  obuf_printf(out, "Proxy-Status: embargo; error=%s; %s%sdetails=\"%s\"\r\n", error,
              ps_extra ? ps_extra : "", ps_extra ? "; " : "", details);
  obuf_printf(out, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n",
              strlen(body));
  obuf_printf(out, "Cache-Control: no-store\r\nConnection: %s\r\n\r\n%s",
              keep ? "keep-alive" : "close", body);
}

static void respond(struct conn *c, int status, const char *error, const char *detail,
                    const char *body) {
  struct obuf out = {0};
  bool keep;

  uv_timer_stop(&c->timer);
  if (c->up != NULL) { /* whatever the destination was doing is abandoned */
    upstream_close(c->up);
    c->up = NULL;
  }
  keep = can_keep(c, status);
  c->close_after = !keep;
  write_message(&out, status, error, c->ex->ps_extra, detail, body, keep);
  c->ex->ps_extra = NULL;
  conn_set_state(c, CONN_ST_RESPONDING);
  if (out.failed) {
    obuf_free(&out);
    conn_close(c);
    return;
  }
  if (conn_write_client(c, out.data, out.len) == 0)
    conn_arm_timer(c, 30000);
  obuf_free(&out);
}

void respond_error(struct conn *c, int status, const char *error, const char *detail) {
  char body[512];
  if (c->state == CONN_ST_CLOSED || c->state == CONN_ST_RESPONDING || c->state == CONN_ST_LINGER)
    return;
  if (c->ex->resp_started) {
    /* A response is already streaming: an error page would land inside its
     * body. The client sees a truncated message instead. */
    respond_log(c, "error", 0, error, detail);
    conn_close(c);
    return;
  }
  snprintf(body, sizeof(body), "Embargo: %d %s\n%s\n", status, reason_phrase(status), detail);
  respond_log(c, "error", status, error, detail);
  respond(c, status, error, detail, body);
}

#define DENY_BODY_MAX 2048
#define DENY_DETAIL_MAX 1024

/* ", by preset NAME" or ", by override at FILE:LINE" when the action that
 * applied was not the list's own, else "". */
static void decided_by(const struct verdict *v, char *buf, size_t size) {
  const struct category_scope a = verdict_actions(v);
  buf[0] = '\0';
  if (v->from == ACTION_FROM_PRESET)
    snprintf(buf, size, ", by preset %s", a.preset);
  else if (v->from == ACTION_FROM_OVERRIDE)
    snprintf(buf, size, ", by override at %s:%u", a.override_where.file, a.override_where.line);
}

/* The deny page for c->ex->verdict: the Proxy-Status details and the body. WHY
 * names the option that denied when no vendor rule did; DEST is the
 * destination shown, NULL for the requested authority. */
static void deny_text(const struct conn *c, const char *why, const char *dest, char *detail,
                      char *body) {
  const struct rule *r = c->ex->verdict.rule;
  char cutoff[32] = "none", where[320], by[128]; /* by: a long override path is cut */

  if (dest == NULL)
    dest = c->ex->authority[0] ? c->ex->authority : c->ex->dest.name;
  if (r == NULL) {
    snprintf(detail, DENY_DETAIL_MAX, "denied by %s", why ? why : "policy");
    snprintf(body, DENY_BODY_MAX,
             "Embargo denied this request.\n\nDestination: %s\nReason:      %s\n\n"
             "Contact your network administrator if you believe this is wrong.\n",
             dest, detail);
    return;
  }
  if (r->category->cutoff != POLICY_TIME_NEVER)
    rfc3339_format(r->category->cutoff, cutoff, sizeof(cutoff));
  snprintf(where, sizeof(where), "%s:%u", r->where.file, r->where.line);
  decided_by(&c->ex->verdict, by, sizeof(by));
  snprintf(detail, DENY_DETAIL_MAX, "%s %s traffic (%s) denied %s %s by rule %s%s",
           r->vendor->id, r->category->name, c->ex->verdict.matched,
           c->ex->verdict.after_cutoff ? "since" : "before its cutoff", cutoff, where, by);
  snprintf(body, DENY_BODY_MAX,
           "Embargo denied this request.\n\n"
           "Destination: %s\n"
           "Vendor:      %s (%s)\n"
           "Category:    %s\n"
           "Cutoff:      %s\n"
           "Rule:        %s at %s%s\n"
           "Legal basis: %s\n\n"
           "Contact your network administrator if you believe this is wrong.\n",
           dest, r->vendor->name, r->vendor->id, r->category->name, cutoff, r->pattern, where, by,
           r->vendor->reference ? r->vendor->reference : "-");
}

void respond_deny(struct conn *c) {
  char body[DENY_BODY_MAX], detail[DENY_DETAIL_MAX];
  deny_text(c, NULL, NULL, detail, body);
  respond_log(c, "deny", 403, "http_request_denied", NULL);
  respond(c, 403, "http_request_denied", detail, body);
}

void respond_deny_message(const struct conn *c, const char *why, const char *dest,
                          struct obuf *out) {
  char body[DENY_BODY_MAX], detail[DENY_DETAIL_MAX];
  deny_text(c, why, dest, detail, body);
  write_message(out, 403, "http_request_denied", NULL, detail, body, false);
}
