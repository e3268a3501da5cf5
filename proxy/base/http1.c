/* llhttp wrapper: bounded head collection, streamed bodies, head rewriting. */
#include "proxy/base/http1.h"

#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARENA_START 2048

struct http1 {
  llhttp_t parser;
  const struct http1_callbacks *cbs;
  void *ctx;
  struct http_head head;
  size_t max_head;
  size_t head_raw;      /* bytes of the current head seen so far */
  size_t trailer_raw;   /* bytes of the trailer section seen so far */
  bool in_message;
  bool headers_done;
  bool in_field;        /* last data callback was a field name */
  bool expect_head;
  bool paused_upgrade;
  int error_status;
  const char *error_reason;
  char first[ARENA_START]; /* the head's bytes, until a head needs more */
};

static struct http1 *from(llhttp_t *lp) {
  return (struct http1 *)((char *)lp - offsetof(struct http1, parser));
}

static int fail(struct http1 *p, int status, const char *reason) {
  p->error_status = status;
  p->error_reason = reason;
  llhttp_set_error_reason(&p->parser, reason);
  return HPE_USER;
}

/* Appends to the arena; the item being built is always the arena's tail. */
static int arena_add(struct http1 *p, const char *at, size_t len) {
  struct http_head *h = &p->head;
  if (h->used + len + 1 > p->max_head)
    return -1;
  if (h->used + len + 1 > h->cap) {
    size_t cap = h->cap ? h->cap : ARENA_START;
    char *grown;
    while (cap < h->used + len + 1)
      cap *= 2;
    if (cap > p->max_head)
      cap = p->max_head;
    if (h->arena == p->first) { /* out of the parser's own room */
      if ((grown = malloc(cap)) != NULL)
        memcpy(grown, h->arena, h->used);
    } else {
      grown = realloc(h->arena, cap);
    }
    if (grown == NULL)
      return -1;
    h->arena = grown;
    h->cap = cap;
  }
  memcpy(h->arena + h->used, at, len);
  h->used += len;
  return 0;
}

static int arena_end_string(struct http1 *p) {
  if (arena_add(p, "", 0) != 0)
    return -1;
  p->head.arena[p->head.used++] = '\0';
  return 0;
}

static int too_big(struct http1 *p) {
  return fail(p, p->head.request ? 431 : 502,
              p->head.request ? "request head too large" : "response head too large");
}

static int on_message_begin(llhttp_t *lp) {
  struct http1 *p = from(lp);
  struct http_head *h = &p->head;
  char *arena = h->arena;
  size_t cap = h->cap;
  bool request = h->request;

  memset(h, 0, sizeof(*h));
  h->arena = arena;
  h->cap = cap;
  h->request = request;
  p->in_message = true;
  p->headers_done = false;
  p->in_field = false;
  p->head_raw = 0;
  p->trailer_raw = 0;
  return 0;
}

static int on_target(llhttp_t *lp, const char *at, size_t len) {
  struct http1 *p = from(lp);
  if (p->head.target_len == 0)
    p->head.target = (uint32_t)p->head.used;
  if (arena_add(p, at, len) != 0)
    return too_big(p);
  p->head.target_len += (uint32_t)len;
  return 0;
}

static int on_status(llhttp_t *lp, const char *at, size_t len) {
  struct http1 *p = from(lp);
  if (p->head.reason_len == 0)
    p->head.reason = (uint32_t)p->head.used;
  if (arena_add(p, at, len) != 0)
    return too_big(p);
  p->head.reason_len += (uint32_t)len;
  return 0;
}

/* Trailer fields (after a chunked body) are never forwarded: they are
 * counted against the head bound as they arrive, and not kept. */
static int trailer_bytes(struct http1 *p, size_t len) {
  if ((p->trailer_raw += len) > p->max_head)
    return fail(p, p->head.request ? 431 : 502, "trailer section too large");
  return 0;
}

static int on_string_complete(llhttp_t *lp) {
  struct http1 *p = from(lp);
  if (p->headers_done)
    return 0;
  return arena_end_string(p) == 0 ? 0 : too_big(p);
}

static int on_field(llhttp_t *lp, const char *at, size_t len) {
  struct http1 *p = from(lp);
  struct http_head *h = &p->head;
  if (p->headers_done)
    return trailer_bytes(p, len);
  if (!p->in_field) {
    if (h->nfields == HTTP_MAX_FIELDS)
      return fail(p, h->request ? 431 : 502, "too many header fields");
    h->fields[h->nfields++].name = (uint32_t)h->used;
    p->in_field = true;
  }
  if (arena_add(p, at, len) != 0)
    return too_big(p);
  h->fields[h->nfields - 1].name_len += (uint32_t)len;
  return 0;
}

static int on_value(llhttp_t *lp, const char *at, size_t len) {
  struct http1 *p = from(lp);
  struct http_field *f = &p->head.fields[p->head.nfields - 1];
  if (p->headers_done)
    return trailer_bytes(p, len);
  if (p->in_field) {
    f->value = (uint32_t)p->head.used;
    p->in_field = false;
  }
  if (arena_add(p, at, len) != 0)
    return too_big(p);
  f->value_len += (uint32_t)len;
  return 0;
}

static int on_value_complete(llhttp_t *lp) {
  struct http1 *p = from(lp);
  struct http_field *f = &p->head.fields[p->head.nfields - 1];
  if (p->headers_done)
    return 0;
  if (p->in_field) { /* empty value: no on_header_value call was made */
    f->value = (uint32_t)p->head.used;
    p->in_field = false;
  }
  return on_string_complete(lp);
}

static int on_headers_complete(llhttp_t *lp) {
  struct http1 *p = from(lp);
  struct http_head *h = &p->head;
  int rc;

  h->major = lp->http_major;
  h->minor = lp->http_minor;
  if (h->request) {
    const char *method = llhttp_method_name(lp->method);
    size_t n = strnlen(method, sizeof(h->method) - 1);
    memcpy(h->method, method, n);
    h->method[n] = '\0';
    h->is_connect = lp->method == HTTP_CONNECT;
    h->is_head = lp->method == HTTP_HEAD;
  } else {
    h->status = lp->status_code;
  }
  if (h->request && !h->is_connect) {
    /* Upgrade is stripped when forwarding, so the connection stays HTTP:
     * llhttp must not stop at the end of this message as if it switched. */
    lp->upgrade = 0;
    /* Framing is checked before the head goes anywhere (RFC 9112 6.1): a
     * request transfer coding must end in chunked, and 1.0 has none. */
    if ((lp->flags & F_TRANSFER_ENCODING) &&
        (!(lp->flags & F_CHUNKED) || (lp->http_major == 1 && lp->http_minor == 0)))
      return fail(p, 400, "Transfer-Encoding that does not end in chunked");
  }
  h->chunked = (lp->flags & F_CHUNKED) != 0;
  h->has_length = (lp->flags & F_CONTENT_LENGTH) != 0;
  h->content_length = lp->content_length;
  h->keep_alive = llhttp_should_keep_alive(lp) != 0;
  p->headers_done = true;
  rc = p->cbs->on_head(p->ctx, h);
  if (rc < 0) /* refused: nothing of this message may be taken as passed on */
    return p->error_status ? HPE_USER
                           : fail(p, h->request ? 400 : 502, "message refused by the proxy");
  if (rc == HTTP1_PAUSE)
    return HPE_PAUSED;
  if (!h->request && (p->expect_head || rc == HTTP1_NO_BODY))
    return 1;
  return 0;
}

static int on_body(llhttp_t *lp, const char *at, size_t len) {
  struct http1 *p = from(lp);
  return p->cbs->on_body(p->ctx, at, len) == 0 ? 0 : fail(p, 502, "body forwarding failed");
}

static int on_message_complete(llhttp_t *lp) {
  struct http1 *p = from(lp);
  int rc;
  p->in_message = false;
  rc = p->cbs->on_done(p->ctx);
  if (rc < 0)
    return p->error_status ? HPE_USER : fail(p, p->head.request ? 400 : 502, "message refused");
  return rc == HTTP1_PAUSE ? HPE_PAUSED : 0;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_target,
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_url_complete = on_string_complete,
    .on_status_complete = on_string_complete,
    .on_header_field_complete = on_string_complete,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http1_set_callbacks(struct http1 *p, const struct http1_callbacks *cbs, void *ctx) {
  p->cbs = cbs;
  p->ctx = ctx;
}

size_t http1_size(void) {
  return sizeof(struct http1);
}

struct http1 *http1_init(void *mem, bool request, size_t max_head,
                         const struct http1_callbacks *cbs, void *ctx) {
  struct http1 *p = mem;
  memset(p, 0, sizeof(*p));
  llhttp_init(&p->parser, request ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
  p->cbs = cbs;
  p->ctx = ctx;
  p->max_head = max_head;
  p->head.request = request;
  p->head.arena = p->first;
  p->head.cap = max_head < sizeof(p->first) ? max_head : sizeof(p->first);
  return p;
}

void http1_release(struct http1 *p) {
  if (p == NULL)
    return;
  if (p->head.arena != p->first)
    free(p->head.arena);
  p->head.arena = NULL;
}

struct http1 *http1_new(bool request, size_t max_head, const struct http1_callbacks *cbs,
                        void *ctx) {
  struct http1 *p = malloc(sizeof(*p));
  return p != NULL ? http1_init(p, request, max_head, cbs, ctx) : NULL;
}

void http1_free(struct http1 *p) {
  http1_release(p);
  free(p);
}

static int map_error(struct http1 *p, llhttp_errno_t err) {
  if (p->error_status != 0) /* one of our callbacks refused the message */
    return p->error_status;
  p->error_reason = llhttp_get_error_reason(&p->parser);
  if (p->error_reason == NULL)
    p->error_reason = llhttp_errno_name(err);
  return p->head.request ? 400 : 502;
}

enum http1_status http1_feed(struct http1 *p, const char *data, size_t len, size_t *consumed) {
  llhttp_errno_t err;
  bool in_head = !p->headers_done || !p->in_message;

  *consumed = 0;
  if (p->error_status != 0)
    return HTTP1_ERROR;
  /* A paused parser takes nothing until resumed (llhttp would report the
   * pause again, with the position it had in an earlier buffer). */
  if (p->paused_upgrade)
    return HTTP1_PAUSED;
  if (llhttp_get_errno(&p->parser) == HPE_PAUSED)
    return HTTP1_PAUSED;
  if (llhttp_get_errno(&p->parser) == HPE_PAUSED_UPGRADE)
    return p->head.is_connect ? HTTP1_UPGRADE : HTTP1_PAUSED;
  err = llhttp_execute(&p->parser, data, len);
  if (err == HPE_OK) {
    *consumed = len;
    /* Bytes of a head that is still incomplete count against its bound,
     * whitespace and line ends included. */
    if (in_head && p->in_message && !p->headers_done && (p->head_raw += len) > p->max_head) {
      too_big(p);
      return HTTP1_ERROR;
    }
    return HTTP1_OK;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    *consumed = (size_t)(llhttp_get_error_pos(&p->parser) - data);
    if (err == HPE_PAUSED_UPGRADE && !p->head.is_connect) {
      p->paused_upgrade = true;
      return HTTP1_PAUSED;
    }
    return err == HPE_PAUSED_UPGRADE ? HTTP1_UPGRADE : HTTP1_PAUSED;
  }
  p->error_status = map_error(p, err);
  return HTTP1_ERROR;
}

enum http1_status http1_finish(struct http1 *p) {
  if (p->error_status != 0)
    return HTTP1_ERROR;
  if (llhttp_finish(&p->parser) != HPE_OK && llhttp_get_errno(&p->parser) != HPE_PAUSED) {
    p->error_status = 502;
    p->error_reason = "message truncated by EOF";
    return HTTP1_ERROR;
  }
  return p->in_message ? HTTP1_ERROR : HTTP1_OK;
}

void http1_resume(struct http1 *p) {
  if (p->paused_upgrade) {
    p->paused_upgrade = false;
    llhttp_resume_after_upgrade(&p->parser);
  } else if (llhttp_get_errno(&p->parser) == HPE_PAUSED) {
    llhttp_resume(&p->parser);
  }
}

bool http1_in_message(const struct http1 *p) {
  return p->in_message;
}

void http1_expect_head_response(struct http1 *p, bool head) {
  p->expect_head = head;
}

bool http1_keep_alive(const struct http1 *p) {
  return p->error_status == 0 && p->head.keep_alive;
}

void http1_set_error(struct http1 *p, int status, const char *reason) {
  p->error_status = status;
  p->error_reason = reason;
}

int http1_error_status(const struct http1 *p) {
  return p->error_status ? p->error_status : 400;
}

const char *http1_error_reason(const struct http1 *p) {
  return p->error_reason ? p->error_reason : "malformed message";
}

const char *http_head_str(const struct http_head *h, uint32_t off) {
  return h->arena + off;
}

int http_head_find(const struct http_head *h, const char *name) {
  size_t i;
  for (i = 0; i < h->nfields; i++)
    if (strcasecmp(h->arena + h->fields[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Does the comma-separated LIST contain TOKEN, ignoring case and spaces? */
static bool list_has_token(const char *list, const char *token) {
  size_t tlen = strlen(token);
  const char *s = list;
  while (*s != '\0') {
    const char *end;
    size_t n;
    while (*s == ' ' || *s == '\t' || *s == ',')
      s++;
    end = s;
    while (*end != '\0' && *end != ',')
      end++;
    n = (size_t)(end - s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
      n--;
    if (n == tlen && n > 0 && strncasecmp(s, token, n) == 0)
      return true;
    s = end;
  }
  return false;
}

bool http_head_has_token(const struct http_head *h, const char *name, const char *token) {
  size_t i;
  for (i = 0; i < h->nfields; i++)
    if (strcasecmp(h->arena + h->fields[i].name, name) == 0 &&
        list_has_token(h->arena + h->fields[i].value, token))
      return true;
  return false;
}

/* Does the Via element S[0..N) name RECEIVED_BY? */
static bool via_element_is(const char *s, size_t n, const char *received_by) {
  size_t i = 0, start, len = strlen(received_by);
  while (i < n && s[i] != ' ' && s[i] != '\t') /* protocol: "1.1" or "HTTP/1.1" */
    i++;
  while (i < n && (s[i] == ' ' || s[i] == '\t'))
    i++;
  start = i;
  while (i < n && s[i] != ' ' && s[i] != '\t')
    i++;
  return i - start == len && strncasecmp(s + start, received_by, len) == 0;
}

bool http_head_via_has(const struct http_head *h, const char *name) {
  size_t i;
  for (i = 0; i < h->nfields; i++) {
    const char *v = h->arena + h->fields[i].value;
    if (strcasecmp(h->arena + h->fields[i].name, "via") != 0)
      continue;
    while (*v != '\0') {
      const char *end = strchr(v, ',');
      size_t n = end != NULL ? (size_t)(end - v) : strlen(v);
      while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
      }
      if (via_element_is(v, n, name))
        return true;
      v += n + (end != NULL);
    }
  }
  return false;
}

void obuf_add(struct obuf *b, const char *s, size_t len) {
  if (b->failed)
    return;
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    char *grown;
    while (cap < b->len + len + 1)
      cap *= 2;
    if (b->borrowed) { /* out of the caller's buffer */
      if ((grown = malloc(cap)) != NULL)
        memcpy(grown, b->data, b->len);
    } else {
      grown = realloc(b->data, cap);
    }
    if (grown == NULL) {
      b->failed = true;
      return;
    }
    b->data = grown;
    b->cap = cap;
    b->borrowed = false;
  }
  memcpy(b->data + b->len, s, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void obuf_printf(struct obuf *b, const char *fmt, ...) {
  char small[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = true;
  } else if ((size_t)n < sizeof(small)) {
    obuf_add(b, small, (size_t)n);
  } else {
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
      b->failed = true;
      return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    obuf_add(b, big, (size_t)n);
    free(big);
  }
}

void obuf_init(struct obuf *b, char *buf, size_t size) {
  memset(b, 0, sizeof(*b));
  b->data = buf;
  b->cap = size;
  b->borrowed = true;
  if (size > 0)
    buf[0] = '\0';
}

void obuf_free(struct obuf *b) {
  if (!b->borrowed)
    free(b->data);
  memset(b, 0, sizeof(*b));
}

/* What a field's name makes of it when a head is passed on: RFC 9110
 * 7.6.1's hop-by-hop fields plus the ones Embargo sets itself go; the
 * framing and routing fields stay whatever Connection names (a peer naming
 * them there must not make Embargo drop them: bytes the proxy parsed as a
 * body would reach the next hop as a request nobody checked); any other
 * goes if Connection names it. */
enum field_kind { FIELD_OTHER, FIELD_HOP, FIELD_KEEP };

static const struct {
  const char *name;
  size_t len;
  enum field_kind kind;
} field_kinds[] = {
    {"connection", 10, FIELD_HOP},
    {"proxy-connection", 16, FIELD_HOP},
    {"keep-alive", 10, FIELD_HOP},
    {"te", 2, FIELD_HOP},
    {"trailer", 7, FIELD_HOP},
    {"upgrade", 7, FIELD_HOP},
    {"proxy-authorization", 19, FIELD_HOP},
    {"proxy-authenticate", 18, FIELD_HOP},
    {"via", 3, FIELD_HOP},
    {"content-length", 14, FIELD_KEEP},
    {"transfer-encoding", 17, FIELD_KEEP},
    {"host", 4, FIELD_KEEP},
};

/* Whether NAME (LEN bytes) is WANT, case aside; the lengths first. */
static bool name_is(const char *name, size_t len, const char *want, size_t want_len) {
  return len == want_len && strncasecmp(name, want, len) == 0;
}

static enum field_kind field_kind(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof(field_kinds) / sizeof(field_kinds[0]); i++)
    if (name_is(name, len, field_kinds[i].name, field_kinds[i].len))
      return field_kinds[i].kind;
  return FIELD_OTHER;
}

#define CONNECTION_FIELDS_MAX 8 /* Connection fields looked at; more are read as one */

/* The Connection fields of H, found once per head rather than once per
 * field: their indexes into H->fields, how many (all, up to the bound). */
static size_t connection_fields(const struct http_head *h, uint32_t *idx) {
  size_t n = 0;
  for (size_t i = 0; i < h->nfields; i++)
    if (name_is(h->arena + h->fields[i].name, h->fields[i].name_len, "connection", 10)) {
      if (n == CONNECTION_FIELDS_MAX)
        return SIZE_MAX; /* too many to keep: look each field up the slow way */
      idx[n++] = (uint32_t)i;
    }
  return n;
}

/* Whether the field NAME goes no further than this hop. */
static bool is_hop_by_hop(const struct http_head *h, const uint32_t *conn, size_t nconn,
                          const char *name, size_t len) {
  enum field_kind k = field_kind(name, len);
  if (k != FIELD_OTHER)
    return k == FIELD_HOP;
  if (nconn == SIZE_MAX)
    return http_head_has_token(h, "connection", name);
  for (size_t i = 0; i < nconn; i++)
    if (list_has_token(h->arena + h->fields[conn[i]].value, name))
      return true;
  return false;
}

/* Copies the end-to-end fields, skipping hop-by-hop ones and SKIP1 and
 * SKIP2 (either may be NULL). */
static void copy_fields(struct obuf *out, const struct http_head *h, const char *skip1,
                        const char *skip2) {
  size_t len1 = skip1 != NULL ? strlen(skip1) : 0, len2 = skip2 != NULL ? strlen(skip2) : 0;
  uint32_t conn[CONNECTION_FIELDS_MAX];
  size_t nconn = connection_fields(h, conn);
  for (size_t i = 0; i < h->nfields; i++) {
    const char *name = h->arena + h->fields[i].name;
    size_t len = h->fields[i].name_len;
    if (is_hop_by_hop(h, conn, nconn, name, len) || (skip1 && name_is(name, len, skip1, len1)) ||
        (skip2 && name_is(name, len, skip2, len2)))
      continue;
    obuf_add(out, name, len);
    obuf_add(out, ": ", 2);
    obuf_add(out, h->arena + h->fields[i].value, h->fields[i].value_len);
    obuf_add(out, "\r\n", 2);
  }
}

/* Appends V in decimal. */
static void obuf_add_uint(struct obuf *out, unsigned v) {
  char digits[12];
  size_t n = sizeof(digits);
  do {
    digits[--n] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0 && n > 0);
  obuf_add(out, digits + n, sizeof(digits) - n);
}

/* Via: keeps the existing chain and appends ours (RFC 9110 7.6.3). */
static void add_via(struct obuf *out, const struct http_head *h, const char *via) {
  obuf_add(out, "Via: ", 5);
  for (size_t i = 0; i < h->nfields; i++) {
    if (!name_is(h->arena + h->fields[i].name, h->fields[i].name_len, "via", 3))
      continue;
    obuf_add(out, h->arena + h->fields[i].value, h->fields[i].value_len);
    obuf_add(out, ", ", 2);
  }
  obuf_add_uint(out, h->major);
  obuf_add(out, ".", 1);
  obuf_add_uint(out, h->minor);
  obuf_add(out, " ", 1);
  obuf_add(out, via, strlen(via));
  obuf_add(out, "\r\n", 2);
}

void http1_write_request(struct obuf *out, const struct http_head *h, const char *path,
                         size_t path_len, const char *authority, const char *via) {
  obuf_add(out, h->method, strlen(h->method));
  obuf_add(out, " ", 1);
  if (path_len == 0)
    obuf_add(out, "/", 1);
  else if (path[0] == '?')
    obuf_add(out, "/", 1);
  obuf_add(out, path, path_len);
  obuf_add(out, " HTTP/1.1\r\nHost: ", 17);
  obuf_add(out, authority, strlen(authority));
  obuf_add(out, "\r\n", 2);
  copy_fields(out, h, "host", NULL);
  add_via(out, h, via);
  obuf_add(out, "\r\n", 2);
}

void http1_write_response(struct obuf *out, const struct http_head *h, enum http_framing framing,
                          bool keep_alive, const char *via) {
  obuf_add(out, "HTTP/1.1 ", 9);
  obuf_add_uint(out, (unsigned)h->status);
  obuf_add(out, " ", 1);
  obuf_add(out, h->arena + h->reason, h->reason_len);
  obuf_add(out, "\r\n", 2);
  /* Transfer-Encoding goes with a body re-chunked by us, and with a body
   * delimited by the close whose codings (gzip, ...) are passed on as they
   * are; a dechunked body (for an HTTP/1.0 client) or a length-framed one
   * carries none. */
  bool keep_te = framing == FRAMING_CHUNKED || (framing == FRAMING_CLOSE && !h->chunked);
  copy_fields(out, h, keep_te ? NULL : "transfer-encoding",
              framing == FRAMING_CHUNKED ? "content-length" : NULL);
  add_via(out, h, via);
  if (h->status >= 200)
    obuf_add(out, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n",
             keep_alive ? 24 : 19);
  obuf_add(out, "\r\n", 2);
}
