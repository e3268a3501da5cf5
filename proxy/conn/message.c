/* Responses Embargo writes itself: errors with an RFC 9209 Proxy-Status
 * field and the deny page. */
#include "proxy/conn/message.h"

#include <stdio.h>
#include <string.h>

#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/base/http1.h"
#include "proxy/conn/conn-t.h"

#define DENY_BODY_MAX   2048
#define DENY_DETAIL_MAX 1024

const char *message_reason(int status) {
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

void message_error(struct obuf *out, int status, const char *error, const char *ps_extra,
                   const char *detail, const char *body, bool keep) {
  char details[300], plain[512];
  if (body == NULL) {
    snprintf(plain, sizeof(plain), "Embargo: %d %s\n%s\n", status, message_reason(status), detail);
    body = plain;
  }
  sf_string(details, sizeof(details), detail);
  obuf_printf(out, "HTTP/1.1 %d %s\r\n", status, message_reason(status));
  obuf_printf(out, "Proxy-Status: embargo; error=%s; %s%sdetails=\"%s\"\r\n", error,
              ps_extra ? ps_extra : "", ps_extra ? "; " : "", details);
  obuf_printf(out, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n",
              strlen(body));
  obuf_printf(out, "Cache-Control: no-store\r\nConnection: %s\r\n\r\n%s",
              keep ? "keep-alive" : "close", body);
}

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

/* The deny page for EX's verdict: the Proxy-Status details and the body. */
static void deny_text(const struct exchange *ex, const char *why, const char *dest, char *detail,
                      char *body) {
  const struct rule *r = ex->verdict.rule;
  char cutoff[32] = "none", where[320], by[128]; /* by: a long override path is cut */

  if (dest == NULL)
    dest = ex->authority[0] ? ex->authority : ex->dest.name;
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
  decided_by(&ex->verdict, by, sizeof(by));
  snprintf(detail, DENY_DETAIL_MAX, "%s %s traffic (%s) denied %s %s by rule %s%s", r->vendor->id,
           r->category->name, ex->verdict.matched,
           ex->verdict.after_cutoff ? "since" : "before its cutoff", cutoff, where, by);
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

void message_deny(struct obuf *out, const struct exchange *ex, const char *why, const char *dest,
                  bool keep) {
  char body[DENY_BODY_MAX], detail[DENY_DETAIL_MAX];
  deny_text(ex, why, dest, detail, body);
  message_error(out, 403, "http_request_denied", NULL, detail, body, keep);
}
