/* proxy/http1.c over real wire bytes: request and response heads, framing,
 * errors, every chunking of the same bytes, the callbacks' refusal
 * contract, and the rewritten heads Embargo forwards. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "proxy/base/http1.h"

/* What the callbacks saw. */
struct seen {
  int heads, dones;
  char method[24];
  char target[256];
  bool chunked, has_length, keep_alive, is_connect;
  uint64_t content_length;
  char body[1024];
  size_t body_len;
  int refuse_head; /* on_head returns this when non-zero */
};

static int s_head(void *ctx, struct http_head *h) {
  struct seen *s = ctx;
  s->heads++;
  snprintf(s->method, sizeof(s->method), "%s", h->method);
  snprintf(s->target, sizeof(s->target), "%.*s", (int)h->target_len, http_head_str(h, h->target));
  s->chunked = h->chunked;
  s->has_length = h->has_length;
  s->content_length = h->content_length;
  s->keep_alive = h->keep_alive;
  s->is_connect = h->is_connect;
  return s->refuse_head ? s->refuse_head : HTTP1_CONTINUE;
}

static int s_body(void *ctx, const char *data, size_t len) {
  struct seen *s = ctx;
  if (s->body_len + len < sizeof(s->body)) {
    memcpy(s->body + s->body_len, data, len);
    s->body_len += len;
  }
  return 0;
}

static int s_done(void *ctx) {
  struct seen *s = ctx;
  s->dones++;
  return HTTP1_CONTINUE;
}

static const struct http1_callbacks cbs = {.on_head = s_head, .on_body = s_body,
                                           .on_done = s_done};

/* Feeds WIRE to a request parser in pieces of STEP bytes (0: whole). */
static enum http1_status feed_in_steps(struct http1 *p, const char *wire, size_t step) {
  size_t len = strlen(wire), off = 0;
  enum http1_status st = HTTP1_OK;
  if (step == 0)
    step = len;
  while (off < len && st != HTTP1_ERROR && st != HTTP1_UPGRADE) {
    size_t n = len - off < step ? len - off : step, used = 0;
    st = http1_feed(p, wire + off, n, &used);
    off += used;
  }
  return st;
}

struct request_case {
  const char *wire;
  const char *method, *target;
  bool chunked, keep_alive, is_connect;
  const char *body;
  int error; /* expected error status, 0: none */
};

static const struct request_case request_cases[] = {
    {"GET http://example.org/a?b=1 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: curl/7.88.1\r\n\r\n",
     "GET", "http://example.org/a?b=1", false, true, false, "", 0},
    {"GET http://example.org/ HTTP/1.0\r\n\r\n", "GET", "http://example.org/", false, false, false,
     "", 0},
    {"POST http://example.org/u HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "POST",
     "http://example.org/u", false, true, false, "hello", 0},
    {"POST http://example.org/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer-Field: t\r\n\r\n",
     "POST", "http://example.org/c", true, true, false, "hello world", 0},
    {"CONNECT s07.upd.kaspersky.com:443 HTTP/1.1\r\nHost: s07.upd.kaspersky.com:443\r\n\r\n",
     "CONNECT", "s07.upd.kaspersky.com:443", false, true, true, "", 0},
    {"GET http://example.org/ HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "http://example.org/",
     false, false, false, "", 0},
    /* Framing a proxy must refuse before forwarding anything. */
    {"POST http://example.org/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", NULL, NULL, false,
     false, false, NULL, 400},
    {"POST http://example.org/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", NULL,
     NULL, false, false, false, NULL, 400},
    {"POST http://example.org/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     NULL, NULL, false, false, false, NULL, 400},
    {"GET http://example.org/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", NULL, NULL, false, false,
     false, NULL, 400},
    {"GET http://example.org/ HTTP/9.9\r\n\r\n", NULL, NULL, false, false, false, NULL, 400},
};

#define NCASES (sizeof(request_cases) / sizeof(request_cases[0]))

/* Criterion may run each parameter in a fresh process image: parameters
 * are indices into the table, never pointers. */
ParameterizedTestParameters(http1, parses_requests_in_every_chunking) {
  static size_t idx[NCASES];
  size_t i;
  for (i = 0; i < NCASES; i++)
    idx[i] = i;
  return cr_make_param_array(size_t, idx, NCASES);
}

ParameterizedTest(const size_t *which, http1, parses_requests_in_every_chunking) {
  static const size_t steps[] = {0, 1, 2, 3, 7, 64};
  const struct request_case *tc = &request_cases[*which];
  size_t i;
  for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    struct seen s = {0};
    struct http1 *p = http1_new(true, 65536, &cbs, &s);
    enum http1_status st = feed_in_steps(p, tc->wire, steps[i]);
    if (tc->error != 0) {
      cr_expect_eq(st, HTTP1_ERROR, "step %zu: %s", steps[i], tc->wire);
      cr_expect_eq(http1_error_status(p), tc->error, "step %zu", steps[i]);
      cr_expect_eq(s.dones, 0, "step %zu: a refused message completed", steps[i]);
    } else {
      cr_expect_neq(st, HTTP1_ERROR, "step %zu: %s", steps[i], http1_error_reason(p));
      cr_expect_eq(s.heads, 1);
      cr_expect_str_eq(s.method, tc->method);
      cr_expect_str_eq(s.target, tc->target);
      cr_expect_eq(s.chunked, tc->chunked);
      cr_expect_eq(s.keep_alive, tc->keep_alive);
      cr_expect_eq(s.is_connect, tc->is_connect);
      cr_expect_eq(s.body_len, strlen(tc->body), "step %zu", steps[i]);
      cr_expect(memcmp(s.body, tc->body, s.body_len) == 0);
      if (!tc->is_connect)
        cr_expect_eq(s.dones, 1, "step %zu", steps[i]);
    }
    http1_free(p);
  }
}

Test(http1, head_larger_than_the_bound_is_431) {
  char wire[4096];
  struct seen s = {0};
  struct http1 *p = http1_new(true, 1024, &cbs, &s);
  size_t used = 0;
  int n = snprintf(wire, sizeof(wire), "GET http://example.org/ HTTP/1.1\r\nX: %02000d\r\n\r\n", 0);
  cr_assert_eq(http1_feed(p, wire, (size_t)n, &used), HTTP1_ERROR);
  cr_expect_eq(http1_error_status(p), 431);
  cr_expect_eq(s.heads, 0);
  http1_free(p);
}

Test(http1, trailers_are_bounded_as_they_arrive_and_never_kept) {
  /* A trailer section is counted against the head bound while it streams in
   * (it is not forwarded, so nothing of it is stored). */
  static char wire[200000];
  struct seen s = {0};
  struct http1 *p = http1_new(true, 4096, &cbs, &s);
  size_t used = 0, n;
  n = (size_t)snprintf(wire, sizeof(wire),
                       "POST http://e.example/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\nX-Small: ok\r\n\r\n");
  cr_assert_eq(http1_feed(p, wire, n, &used), HTTP1_OK, "%s", http1_error_reason(p));
  cr_expect_eq(s.dones, 1);
  cr_expect_eq(s.body_len, 3);
  http1_free(p);

  memset(&s, 0, sizeof(s));
  p = http1_new(true, 4096, &cbs, &s);
  n = (size_t)snprintf(wire, sizeof(wire),
                       "POST http://e.example/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\nX-Big: ");
  memset(wire + n, 'x', 8000);
  n += 8000;
  cr_assert_eq(http1_feed(p, wire, n, &used), HTTP1_ERROR);
  cr_expect_eq(http1_error_status(p), 431);
  cr_expect_str_eq(http1_error_reason(p), "trailer section too large");
  cr_expect_eq(s.dones, 0);
  http1_free(p);
}

Test(http1, refused_head_is_an_error_with_the_reason_given) {
  /* The contract: a negative return from on_head is never "continue". */
  struct seen s = {.refuse_head = -1};
  struct http1 *p = http1_new(false, 65536, &cbs, &s);
  const char *wire = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nraw";
  size_t used = 0;
  cr_assert_eq(http1_feed(p, wire, strlen(wire), &used), HTTP1_ERROR);
  cr_expect_eq(http1_error_status(p), 502);
  cr_expect_eq(s.dones, 0);
  cr_expect_eq(s.body_len, 0, "bytes after a refused head were passed on");
  http1_free(p);
}

Test(http1, pipelined_requests_pause_at_each_head) {
  const char *wire = "GET http://a.example/1 HTTP/1.1\r\n\r\nGET http://b.example/2 HTTP/1.1\r\n\r\n";
  struct seen s = {.refuse_head = HTTP1_PAUSE};
  struct http1 *p = http1_new(true, 65536, &cbs, &s);
  size_t used = 0, off = 0;
  cr_assert_eq(http1_feed(p, wire, strlen(wire), &used), HTTP1_PAUSED);
  cr_expect_str_eq(s.target, "http://a.example/1");
  cr_expect_lt(used, strlen(wire), "the second request was parsed before the first was decided");
  off = used;
  http1_resume(p);
  (void)http1_feed(p, wire + off, strlen(wire) - off, &used);
  cr_expect_str_eq(s.target, "http://b.example/2");
  cr_expect_eq(s.heads, 2);
  http1_free(p);
}

Test(http1, bytes_fed_while_paused_are_left_unconsumed) {
  /* The pause's position belongs to the buffer it happened in: bytes fed
   * before resuming, from another buffer, must come back unconsumed rather
   * than be measured against that stale position. */
  const char *first = "GET http://a.example/1 HTTP/1.1\r\n\r\n";
  char later[64];
  struct seen s = {.refuse_head = HTTP1_PAUSE};
  struct http1 *p = http1_new(true, 65536, &cbs, &s);
  size_t used = 99;
  cr_assert_eq(http1_feed(p, first, strlen(first), &used), HTTP1_PAUSED);
  snprintf(later, sizeof(later), "GET http://b.example/2 HTTP/1.1\r\n\r\n");
  cr_expect_eq(http1_feed(p, later, strlen(later), &used), HTTP1_PAUSED);
  cr_expect_eq(used, 0, "%zu bytes taken while paused", used);
  cr_expect_eq(s.heads, 1);
  http1_resume(p);
  cr_expect_eq(http1_feed(p, later, strlen(later), &used), HTTP1_PAUSED);
  cr_expect_str_eq(s.target, "http://b.example/2");
  http1_free(p);
}

/* ---- rewriting ------------------------------------------------------------ */

/* The head the parser holds after a pause: reachable through a callback. */
static struct http_head *last_head;
static int grab_head(void *ctx, struct http_head *h) {
  last_head = h;
  return HTTP1_PAUSE;
}
static const struct http1_callbacks grab = {.on_head = grab_head, .on_body = s_body,
                                            .on_done = s_done};

static struct http_head *parse_head(struct http1 **p, bool request, const char *wire) {
  struct seen s = {0};
  size_t used = 0;
  *p = http1_new(request, 65536, &grab, &s);
  cr_assert_eq(http1_feed(*p, wire, strlen(wire), &used), HTTP1_PAUSED, "%s", wire);
  return last_head;
}

Test(http1, forwarded_request_drops_hop_by_hop_fields_and_keeps_framing) {
  struct http1 *p;
  struct obuf out = {0};
  struct http_head *h = parse_head(
      &p, true,
      "POST http://example.org/x HTTP/1.1\r\nHost: wrong.example\r\n"
      "Connection: keep-alive, X-Secret, Content-Length\r\nX-Secret: s\r\n"
      "Proxy-Authorization: Basic Zm9v\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\n"
      "Content-Length: 3\r\nVia: 1.1 upstream\r\nAccept: */*\r\n\r\n");
  http1_write_request(&out, h, "/x", 2, "example.org", "proxy (embargo/0)");
  cr_assert(!out.failed);
  cr_expect(strncmp(out.data, "POST /x HTTP/1.1\r\nHost: example.org\r\n", 37) == 0, "%s", out.data);
  cr_expect_null(strstr(out.data, "wrong.example"));
  cr_expect_null(strstr(out.data, "X-Secret"));
  cr_expect_null(strstr(out.data, "Proxy-Authorization"));
  cr_expect_null(strstr(out.data, "Keep-Alive"));
  cr_expect_null(strstr(out.data, "TE:"));
  cr_expect_null(strstr(out.data, "Upgrade"));
  cr_expect_not_null(strstr(out.data, "Content-Length: 3\r\n"), "framing named in Connection was dropped");
  cr_expect_not_null(strstr(out.data, "Accept: */*\r\n"));
  cr_expect_not_null(strstr(out.data, "Via: 1.1 upstream, 1.1 proxy (embargo/0)\r\n"));
  obuf_free(&out);
  http1_free(p);
}

Test(http1, every_connection_field_names_fields_to_drop_however_many_there_are) {
  char wire[4096], *w = wire;
  struct http1 *p;
  struct obuf out = {0};
  struct http_head *h;
  /* Ten Connection fields (more than are looked up at once), each naming
   * one field; the last one's field must go too. */
  w += sprintf(w, "GET http://example.org/ HTTP/1.1\r\n");
  for (int i = 0; i < 10; i++)
    w += sprintf(w, "Connection: X-Hop-%d\r\nX-Hop-%d: v\r\n", i, i);
  sprintf(w, "CONNECTION: x-upper\r\nX-Upper: v\r\nX-End: e\r\nContent-Length: 0\r\n\r\n");
  h = parse_head(&p, true, wire);
  http1_write_request(&out, h, "/", 1, "example.org", "proxy");
  cr_assert(!out.failed);
  cr_expect_null(strstr(out.data, "X-Hop-"), "%s", out.data);
  cr_expect_null(strstr(out.data, "X-Upper"), "%s", out.data);
  cr_expect_null(strstr(out.data, "onnection"), "%s", out.data);
  cr_expect_not_null(strstr(out.data, "X-End: e\r\n"));
  cr_expect_not_null(strstr(out.data, "Content-Length: 0\r\n"));
  obuf_free(&out);
  http1_free(p);
  /* Two Connection fields, the second naming a field before it. */
  h = parse_head(&p, true,
                 "GET http://example.org/ HTTP/1.1\r\nX-A: 1\r\nConnection: close\r\n"
                 "X-B: 2\r\nconnection: x-a\r\n\r\n");
  http1_write_request(&out, h, "/", 1, "example.org", "proxy");
  cr_expect_null(strstr(out.data, "X-A"), "%s", out.data);
  cr_expect_not_null(strstr(out.data, "X-B: 2\r\n"), "%s", out.data);
  obuf_free(&out);
  http1_free(p);
}

Test(http1, a_head_written_into_a_small_buffer_of_the_callers_moves_out_of_it_whole) {
  char small[32];
  struct http1 *p;
  struct obuf out;
  struct http_head *h = parse_head(&p, false,
                                   "HTTP/1.1 404 Not Found\r\nX-Long: 0123456789012345678901234567"
                                   "89\r\nContent-Length: 0\r\n\r\n");
  obuf_init(&out, small, sizeof(small));
  http1_write_response(&out, h, FRAMING_LENGTH, true, "proxy (embargo/0)");
  cr_assert(!out.failed);
  cr_expect_neq(out.data, small, "it outgrew the caller's buffer");
  cr_expect(strncmp(out.data, "HTTP/1.1 404 Not Found\r\nX-Long: 01234", 37) == 0, "%s", out.data);
  cr_expect_not_null(
      strstr(out.data, "Via: 1.1 proxy (embargo/0)\r\nConnection: keep-alive\r\n\r\n"));
  cr_expect_eq(out.len, strlen(out.data));
  obuf_free(&out);
  obuf_init(&out, small, sizeof(small)); /* what fits stays there */
  obuf_add(&out, "HTTP/1.1 ", 9);
  cr_expect_eq(out.data, small);
  cr_expect_str_eq(out.data, "HTTP/1.1 ");
  obuf_free(&out);
  http1_free(p);
}

struct te_case {
  enum http_framing framing;
  const char *te_header;
  bool kept;
};

Test(http1, response_transfer_encoding_kept_only_where_it_still_describes_the_body) {
  static const struct te_case cases[] = {
      {FRAMING_CHUNKED, "Transfer-Encoding: chunked\r\n", true},
      {FRAMING_CLOSE, "Transfer-Encoding: gzip\r\n", true}, /* close-delimited, still encoded */
      {FRAMING_CLOSE, "Transfer-Encoding: chunked\r\n", false}, /* dechunked for HTTP/1.0 */
  };
  size_t i;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char wire[256];
    struct http1 *p;
    struct obuf out = {0};
    struct http_head *h;
    snprintf(wire, sizeof(wire), "HTTP/1.1 200 OK\r\n%sX-Y: z\r\n\r\n", cases[i].te_header);
    h = parse_head(&p, false, wire);
    http1_write_response(&out, h, cases[i].framing, false, "proxy");
    cr_expect_eq(strstr(out.data, "Transfer-Encoding") != NULL, cases[i].kept, "case %zu: %s", i,
                 out.data);
    cr_expect_not_null(strstr(out.data, "Connection: close\r\n"));
    obuf_free(&out);
    http1_free(p);
  }
}

Test(http1, via_lists_are_matched_on_received_by) {
  struct http1 *p;
  struct http_head *h = parse_head(
      &p, true, "GET http://e.example/ HTTP/1.1\r\nVia: 1.0 fred, 1.1 egress.example (embargo/0.1)\r\n\r\n");
  cr_expect(http_head_via_has(h, "egress.example"));
  cr_expect(http_head_via_has(h, "fred"));
  cr_expect_not(http_head_via_has(h, "egress"));
  http1_free(p);
}
