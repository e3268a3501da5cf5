/* Fuzzes the HTTP front end's parsing and rewriting (proxy/base/http1.c with the
 * URL normaliser and the policy) the way proxy/conn/front.c drives them: client
 * bytes in any chunking; the parser pauses at each head, which is judged on
 * its target; an allowed request is rewritten and forwarded with its body
 * re-framed, a denied one is answered with a 403 and its body dropped; a
 * parse error is answered with its status and ends the connection.
 *
 * Traps (abort):
 *  - an answer that does not start with a status line;
 *  - anything forwarded for a denied name;
 *  - a forwarded stream that, parsed again as the origin would, does not
 *    hold exactly the allowed requests, in order, with their bodies (a
 *    request smuggled past the proxy, a body cut or grown);
 *  - a parser that stops without progress. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/normalise.h"
#include "filters/policy.h"
#include "proxy/base/http1.h"

#define MAX_REQS 64
#define BODY_MAX 4096

struct req {
  bool allowed;
  char method[24];
  char path[512];
  char host[300];
  size_t body_len;
  unsigned char body[BODY_MAX];
  bool body_overflow;
};

struct sim {
  struct http1 *p;
  struct http_head *head; /* paused at this head */
  bool at_head, at_done;
  bool over;             /* answered with an error that ends the connection */
  struct req reqs[MAX_REQS];
  size_t nreqs;
  struct obuf fwd;     /* bytes forwarded to origins */
  struct obuf answers; /* bytes answered to the client */
};

static struct policy *policy;

static void trap(const char *why) {
  fprintf(stderr, "fuzz_http1 contract broken: %s\n", why);
  abort();
}

static struct req *cur(struct sim *s) {
  return s->nreqs > 0 ? &s->reqs[s->nreqs - 1] : NULL;
}

static int on_head(void *ctx, struct http_head *h) {
  struct sim *s = ctx;
  s->head = h;
  s->at_head = true;
  return HTTP1_PAUSE;
}

static int on_body(void *ctx, const char *data, size_t len) {
  struct sim *s = ctx;
  struct req *r = cur(s);
  char size[24];
  if (r == NULL || !r->allowed)
    return 0;
  if (r->body_len + len > BODY_MAX)
    r->body_overflow = true;
  else
    memcpy(r->body + r->body_len, data, len);
  r->body_len += len;
  if (s->head->chunked) {
    obuf_add(&s->fwd, size, (size_t)snprintf(size, sizeof(size), "%zx\r\n", len));
    obuf_add(&s->fwd, data, len);
    obuf_add(&s->fwd, "\r\n", 2);
  } else {
    obuf_add(&s->fwd, data, len);
  }
  return 0;
}

static int on_done(void *ctx) {
  struct sim *s = ctx;
  struct req *r = cur(s);
  if (r != NULL && r->allowed && s->head->chunked)
    obuf_add(&s->fwd, "0\r\n\r\n", 5);
  s->at_done = true;
  return HTTP1_PAUSE;
}

static const struct http1_callbacks cbs = {.on_head = on_head, .on_body = on_body,
                                           .on_done = on_done};

/* A head arrived: judge it as front.c and route.c would (the target, then
 * the policy on the name), then forward the rewritten head or answer 403. */
static void decide(struct sim *s) {
  const struct http_head *h = s->head;
  struct facts facts = {0};
  struct verdict v;
  struct host dest;
  const char *path = NULL;
  size_t path_len = 0;
  char authority[HOST_NAME_MAX_LEN + 16];
  struct req *r;
  int rc;

  if (h->is_connect || s->nreqs == MAX_REQS) {
    obuf_add(&s->answers, "HTTP/1.1 403 Forbidden\r\n\r\n", 26);
    s->over = true;
    return;
  }
  rc = url_parse_absolute(http_head_str(h, h->target), h->target_len, &dest, &path, &path_len);
  if (rc != 0) { /* 400: the connection ends (respond.c keeps none open after one) */
    obuf_add(&s->answers, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
    s->over = true;
    return;
  }
  facts.host = &dest;
  policy_decide(policy, &facts, 1, &v);
  r = &s->reqs[s->nreqs++];
  memset(r, 0, sizeof(*r));
  r->allowed = v.action != ACTION_DENY;
  if (!r->allowed) {
    obuf_add(&s->answers, "HTTP/1.1 403 Forbidden\r\n\r\n", 26);
    return;
  }
  host_format(&dest, authority, sizeof(authority));
  snprintf(r->method, sizeof(r->method), "%s", h->method);
  snprintf(r->path, sizeof(r->path), "%.*s", (int)(path_len ? path_len : 1),
           path_len ? path : "/");
  if (path_len > 0 && path[0] == '?')
    snprintf(r->path, sizeof(r->path), "/%.*s", (int)path_len, path);
  snprintf(r->host, sizeof(r->host), "%s", authority);
  http1_write_request(&s->fwd, h, path != NULL ? path : "", path_len, authority, "1.1 fuzz");
  obuf_add(&s->answers, "HTTP/1.1 200 OK\r\n\r\n", 19);
}

/* Feeds one chunk, handling every pause inside it. Returns false once the
 * connection is over (an error or a CONNECT). */
static bool feed(struct sim *s, const char *data, size_t len) {
  size_t off = 0;
  int rounds;
  for (rounds = 0; rounds < 100000; rounds++) {
    size_t used = 0;
    enum http1_status st = http1_feed(s->p, data + off, len - off, &used);
    off += used;
    if (st == HTTP1_ERROR) {
      char line[64];
      int n = snprintf(line, sizeof(line), "HTTP/1.1 %d Error\r\n\r\n", http1_error_status(s->p));
      obuf_add(&s->answers, line, (size_t)n);
      return false;
    }
    if (st == HTTP1_UPGRADE)
      return false;
    if (s->at_head) {
      s->at_head = false;
      decide(s);
      if (s->over)
        return false;
      http1_resume(s->p);
    } else if (s->at_done) {
      s->at_done = false;
      http1_resume(s->p);
    }
    if (st == HTTP1_OK && off == len)
      return true;
    if (st == HTTP1_OK && used == 0 && off < len)
      trap("the parser took nothing and did not pause");
  }
  trap("no progress");
  return false;
}

/* Parses the forwarded stream as an origin would and compares it with the
 * requests that were allowed. */
struct origin_view {
  struct http_head *head;
  size_t n;
  struct req seen[MAX_REQS];
};

static int o_head(void *ctx, struct http_head *h) {
  struct origin_view *o = ctx;
  struct req *r;
  int host;
  if (o->n == MAX_REQS)
    trap("more requests forwarded than were allowed");
  r = &o->seen[o->n++];
  memset(r, 0, sizeof(*r));
  o->head = h;
  snprintf(r->method, sizeof(r->method), "%s", h->method);
  snprintf(r->path, sizeof(r->path), "%.*s", (int)h->target_len, http_head_str(h, h->target));
  host = http_head_find(h, "host");
  if (host < 0)
    trap("a forwarded request without Host");
  snprintf(r->host, sizeof(r->host), "%.*s", (int)h->fields[host].value_len,
           http_head_str(h, h->fields[host].value));
  return HTTP1_CONTINUE;
}

static int o_body(void *ctx, const char *data, size_t len) {
  struct origin_view *o = ctx;
  struct req *r = &o->seen[o->n - 1];
  if (r->body_len + len <= BODY_MAX)
    memcpy(r->body + r->body_len, data, len);
  else
    r->body_overflow = true;
  r->body_len += len;
  return 0;
}

static int o_done(void *ctx) {
  return HTTP1_CONTINUE;
}

static const struct http1_callbacks origin_cbs = {.on_head = o_head, .on_body = o_body,
                                                  .on_done = o_done};

static void check_forwarded(const struct sim *s, bool complete) {
  struct origin_view o;
  struct http1 *p = http1_new(true, 1 << 20, &origin_cbs, &o);
  size_t used = 0, i, k = 0;
  enum http1_status st;

  memset(&o, 0, sizeof(o));
  if (p == NULL)
    return;
  st = s->fwd.len ? http1_feed(p, s->fwd.data, s->fwd.len, &used) : HTTP1_OK;
  /* The origin here is Embargo's own parser, bounded to HTTP_MAX_FIELDS
   * fields: a head taken near that bound comes out with the Host and Via
   * Embargo writes one or two over it, which is still HTTP (a real origin
   * has bounds of its own): the requests before it are compared. Nothing
   * else may fail to parse. */
  if (st == HTTP1_ERROR && http1_error_status(p) == 431)
    complete = false; /* compared up to that head */
  else if (st == HTTP1_ERROR)
    trap("the forwarded stream does not parse");
  for (i = 0; i < s->nreqs; i++) {
    const struct req *want = &s->reqs[i];
    const struct req *got;
    struct host h;
    if (!want->allowed)
      continue;
    if (k >= o.n) {
      if (complete && i + 1 < s->nreqs)
        trap("an allowed request was not forwarded");
      break;
    }
    got = &o.seen[k++];
    if (strcmp(want->method, got->method) != 0 || strcmp(want->path, got->path) != 0 ||
        strcmp(want->host, got->host) != 0)
      trap("a forwarded head differs from the request that was allowed");
    if (authority_parse(got->host, strlen(got->host), 80, &h) == 0) {
      struct facts f = {.host = &h};
      struct verdict v;
      policy_decide(policy, &f, 1, &v);
      if (v.action == ACTION_DENY)
        trap("a request for a denied name was forwarded");
    }
    if (got->body_len != want->body_len ||
        (!got->body_overflow && memcmp(got->body, want->body, got->body_len) != 0))
      trap("a forwarded body differs from the one received");
  }
  if (o.n > k)
    trap("the origin would see a request that was never allowed (smuggled)");
  http1_free(p);
}

static void check_answers(const struct sim *s) {
  const char *a = s->answers.data, *end;
  if (a == NULL)
    return;
  end = a + s->answers.len;
  while (a != NULL && a < end) {
    if ((size_t)(end - a) < 13 || memcmp(a, "HTTP/1.1 ", 9) != 0 || a[9] < '1' || a[9] > '5')
      trap("an answer without a status line");
    a = memmem(a, (size_t)(end - a), "\r\n\r\n", 4);
    a = a != NULL ? a + 4 : NULL;
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  struct origin where = {.file = "fuzz", .line = 1, .col = 1};
  struct vendor *v;
  struct category *c;
  int err;
  policy = policy_new();
  v = policy_add_vendor(policy, "k", "K", NULL, where, &err);
  c = policy_add_category(policy, v, "updates", 0, ACTION_LOG, ACTION_DENY, where, &err);
  policy_add_host(policy, v, c, ".kaspersky.com", where, NULL);
  policy_add_host(policy, v, c, "*.evil.test", where, NULL);
  policy_add_host(policy, v, c, "10.9.8.7", where, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sim s;
  uint32_t seed;
  size_t off;
  bool open = true;

  if (size < 2)
    return 0;
  memset(&s, 0, sizeof(s));
  seed = data[0] | (uint32_t)data[1] << 8;
  data += 2;
  size -= 2;
  s.p = http1_new(true, 8192, &cbs, &s);
  if (s.p == NULL)
    return 0;
  /* Chunk sizes from a small generator seeded by the input: the same bytes
   * split differently must give the same result. */
  for (off = 0; off < size && open;) {
    size_t n;
    seed = seed * 1103515245u + 12345u;
    n = 1 + (seed >> 16) % 97;
    if (n > size - off)
      n = size - off;
    open = feed(&s, (const char *)data + off, n);
    off += n;
  }
  check_answers(&s);
  check_forwarded(&s, open);
  http1_free(s.p);
  obuf_free(&s.fwd);
  obuf_free(&s.answers);
  return 0;
}
