/* HTTP/1.x message parsing (llhttp) and head rewriting for forwarding. Only
 * this module includes llhttp.h. A parser collects one message head into a
 * bounded arena, then streams the body through callbacks, and stops at every
 * message boundary so pipelined requests are handled one at a time. */
#ifndef EMBARGO_PROXY_HTTP1_H
#define EMBARGO_PROXY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_FIELDS 128

struct http_field {
  uint32_t name, name_len;   /* offsets into the head's arena */
  uint32_t value, value_len;
};

/* One parsed message head. Strings live in ARENA (owned by the parser) and
 * stay valid until the next message starts. */
struct http_head {
  bool request;
  char method[24];      /* request: as sent */
  bool is_connect, is_head;
  unsigned major, minor;
  int status;           /* response */
  uint32_t target, target_len; /* request-target (offsets) */
  uint32_t reason, reason_len; /* response reason phrase */
  struct http_field fields[HTTP_MAX_FIELDS];
  size_t nfields;
  bool chunked;         /* Transfer-Encoding ends in chunked */
  bool has_length;
  uint64_t content_length;
  bool keep_alive;      /* per the message's version and Connection header */
  char *arena;
  size_t used, cap;
};

/* Callback results. */
enum {
  HTTP1_CONTINUE = 0, /* go on parsing */
  HTTP1_NO_BODY = 1,  /* from on_head of a response: the message has no body */
  HTTP1_PAUSE = 2     /* stop after this point; http1_resume continues */
};

/* The callbacks' contract: each returns one of the results above, or a
 * negative value to refuse the message, after which http1_feed returns
 * HTTP1_ERROR and parses nothing more (the callback may say why with
 * http1_set_error first; otherwise 400 for a request, 502 for a response).
 * A refused head means nothing of the message was passed on: the caller
 * answers it with an error of its own or closes. */
struct http1_callbacks {
  int (*on_head)(void *ctx, struct http_head *head);
  int (*on_body)(void *ctx, const char *data, size_t len);
  int (*on_done)(void *ctx); /* the message is complete; HTTP1_PAUSE stops there */
};

enum http1_status {
  HTTP1_OK,       /* all input consumed */
  HTTP1_PAUSED,   /* stopped early at a pause point; *consumed says where */
  HTTP1_UPGRADE,  /* a CONNECT head is complete; the rest is tunnel data */
  HTTP1_ERROR     /* see http1_error_status / http1_error_reason */
};

struct http1;

/* Creates a parser for requests (REQUEST true) or responses. MAX_HEAD bounds
 * the head's size (431/502 beyond). CBS and CTX are borrowed. NULL on ENOMEM. */
struct http1 *http1_new(bool request, size_t max_head, const struct http1_callbacks *cbs,
                        void *ctx);
void http1_free(struct http1 *p); /* NULL-safe */

/* The bytes a parser takes, for one placed in memory of the caller's: its
 * state and room for a head of 2 KiB. */
size_t http1_size(void);

/* Prepares a parser as http1_new does, in MEM (http1_size() bytes, the
 * caller's; suitably aligned): it allocates nothing unless a head outgrows
 * its room. */
struct http1 *http1_init(void *mem, bool request, size_t max_head,
                         const struct http1_callbacks *cbs, void *ctx);

/* Frees what a parser placed by http1_init holds (its head's bytes), not
 * its memory. NULL-safe. */
void http1_release(struct http1 *p);
/* From now on P's events go to CBS with CTX (both borrowed): a parser kept
 * across messages may serve several owners in turn. */
void http1_set_callbacks(struct http1 *p, const struct http1_callbacks *cbs, void *ctx);

/* Feeds LEN bytes. *CONSUMED receives how many were parsed (all of them
 * unless the status is HTTP1_PAUSED or HTTP1_UPGRADE). A paused parser
 * takes nothing until http1_resume: it returns the pause again with
 * *CONSUMED 0. */
enum http1_status http1_feed(struct http1 *p, const char *data, size_t len, size_t *consumed);
/* Signals EOF: completes a read-until-close message. Returns HTTP1_OK when
 * the message ended cleanly (on_done has run), HTTP1_ERROR when it was cut. */
enum http1_status http1_finish(struct http1 *p);
/* Continues after HTTP1_PAUSED. */
void http1_resume(struct http1 *p);
/* Whether the message being parsed has started (any byte seen). */
bool http1_in_message(const struct http1 *p);
/* For responses: tells the parser the request was HEAD (no body follows). */
void http1_expect_head_response(struct http1 *p, bool head);
/* Whether the connection may carry another message after this one. */
bool http1_keep_alive(const struct http1 *p);
/* From a callback about to refuse the message: the status and reason the
 * parse error reports (REASON is borrowed: a string literal). */
void http1_set_error(struct http1 *p, int status, const char *reason);
/* The HTTP status to answer a parse error with (400, 431, 501) and why. */
int http1_error_status(const struct http1 *p);
const char *http1_error_reason(const struct http1 *p);

/* Header access. */
const char *http_head_str(const struct http_head *h, uint32_t off);
/* Finds the first field named NAME (case-insensitive). Returns its index or -1. */
int http_head_find(const struct http_head *h, const char *name);
/* True if a comma-separated header list NAME contains TOKEN (case-insensitive). */
bool http_head_has_token(const struct http_head *h, const char *name, const char *token);

/* True if a Via field lists an intermediary whose received-by is NAME
 * (RFC 9110 7.6.3: "protocol received-by [comment]", comma-separated). */
bool http_head_via_has(const struct http_head *h, const char *name);

/* A growable output buffer for rewritten heads. */
struct obuf {
  char *data;
  size_t len, cap;
  bool failed;   /* an allocation failed; contents are incomplete */
  bool borrowed; /* DATA is the caller's (obuf_init) until it outgrows it */
};
/* Starts B in BUF (SIZE bytes, the caller's, outliving B's use): what
 * fits is written there without allocating. A zeroed obuf starts empty. */
void obuf_init(struct obuf *b, char *buf, size_t size);
void obuf_add(struct obuf *b, const char *s, size_t len);
void obuf_printf(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void obuf_free(struct obuf *b);

/* Writes the request head to send upstream: "METHOD PATH HTTP/1.1", Host set
 * to AUTHORITY, hop-by-hop fields removed (RFC 9110 7.6.1: Connection and
 * the fields it names, Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade,
 * Proxy-Authorization), Via appended with VIA (e.g. "1.1 embargo"). */
void http1_write_request(struct obuf *out, const struct http_head *h, const char *path,
                         size_t path_len, const char *authority, const char *via);

/* Response framing towards the client. */
enum http_framing {
  FRAMING_NONE,    /* no body (HEAD, 1xx, 204, 304) */
  FRAMING_LENGTH,  /* Content-Length */
  FRAMING_CHUNKED, /* chunked, re-encoded by us */
  FRAMING_CLOSE    /* delimited by closing the connection */
};

/* Writes the response head for the client: "HTTP/1.1 STATUS REASON", the
 * origin's fields less hop-by-hop ones and less Transfer-Encoding unless
 * FRAMING is FRAMING_CHUNKED, Via appended, and "Connection: keep-alive" or
 * "close" per KEEP_ALIVE. */
void http1_write_response(struct obuf *out, const struct http_head *h, enum http_framing framing,
                          bool keep_alive, const char *via);

#endif
