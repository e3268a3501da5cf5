/* The admin endpoint's gate (proxy/admingate.c): which request heads a web
 * page could send, or read the answers of, are refused. Table-driven over
 * real request bytes. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "proxy/process/admingate.h"
#include "proxy/base/http1.h"

struct parsed {
  struct http_head *head;
};

static int on_head(void *ctx, struct http_head *head) {
  ((struct parsed *)ctx)->head = head;
  return HTTP1_PAUSE;
}
static int on_body(void *ctx, const char *data, size_t len) {
  return HTTP1_CONTINUE;
}
static int on_done(void *ctx) {
  return HTTP1_PAUSE;
}
static const struct http1_callbacks cbs = {on_head, on_body, on_done};

/* Judges REQUEST reaching LOCAL_IP:9090 with admin.names NAMES (NULL-ended). */
static enum admingate_verdict judge(const char *request, const char *local_ip,
                                    const char *const *names) {
  struct sockaddr_storage local = {0};
  struct config_admin admin = {0};
  struct parsed p = {0};
  size_t used = 0;
  struct http1 *parser = http1_new(true, 8192, &cbs, &p);
  enum admingate_verdict v;
  cr_assert_not_null(parser);
  if (strchr(local_ip, ':') != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&local;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(9090);
    cr_assert_eq(inet_pton(AF_INET6, local_ip, &a->sin6_addr), 1);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&local;
    a->sin_family = AF_INET;
    a->sin_port = htons(9090);
    cr_assert_eq(inet_pton(AF_INET, local_ip, &a->sin_addr), 1);
  }
  for (; names != NULL && *names != NULL; names++)
    snprintf(admin.names[admin.nnames++], sizeof(admin.names[0]), "%s", *names);
  cr_assert_neq(http1_feed(parser, request, strlen(request), &used), HTTP1_ERROR, "%s", request);
  cr_assert_not_null(p.head, "no head in %s", request);
  v = admingate_check(p.head, (const struct sockaddr *)&local, &admin);
  http1_free(parser);
  return v;
}

struct gate_case {
  const char *request;
  const char *local;
  enum admingate_verdict want;
};

#define GET(host) "GET /policy HTTP/1.1\r\nHost: " host "\r\n\r\n"

Test(admingate, host_must_name_the_endpoint) {
  static const struct gate_case cases[] = {
      {GET("127.0.0.1:9090"), "127.0.0.1", ADMINGATE_OK},
      {GET("127.0.0.1"), "127.0.0.1", ADMINGATE_OK},
      {GET("localhost:9090"), "127.0.0.1", ADMINGATE_OK},
      {GET("LocalHost."), "127.0.0.1", ADMINGATE_OK},
      {GET("[::1]:9090"), "::1", ADMINGATE_OK},
      {GET("localhost:9090"), "::1", ADMINGATE_OK},
      {GET("10.1.2.3:9090"), "10.1.2.3", ADMINGATE_OK}, /* a kubelet's probe of the pod */
      {GET("10.1.2.3:9090"), "::ffff:10.1.2.3", ADMINGATE_OK},
      {GET("rebind.evil.example"), "127.0.0.1", ADMINGATE_FOREIGN_HOST},
      {GET("rebind.evil.example:9090"), "127.0.0.1", ADMINGATE_FOREIGN_HOST},
      {GET("127.0.0.1:9091"), "127.0.0.1", ADMINGATE_FOREIGN_HOST},
      {GET("127.0.0.2:9090"), "127.0.0.1", ADMINGATE_FOREIGN_HOST},
      {GET("localhost:9090"), "10.1.2.3", ADMINGATE_FOREIGN_HOST},
      {GET("localhost.evil.example"), "127.0.0.1", ADMINGATE_FOREIGN_HOST},
      {GET("127.0.0.1@evil.example"), "127.0.0.1", ADMINGATE_FOREIGN_HOST},
      {GET("0x7f.1:9090"), "127.0.0.1", ADMINGATE_FOREIGN_HOST},
      {"GET /healthz HTTP/1.1\r\n\r\n", "127.0.0.1", ADMINGATE_NO_HOST},
      {"GET /healthz HTTP/1.0\r\n\r\n", "127.0.0.1", ADMINGATE_OK},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    cr_expect_eq(judge(cases[i].request, cases[i].local, NULL), cases[i].want, "%s (local %s)",
                 cases[i].request, cases[i].local);
}

Test(admingate, configured_names_are_the_endpoints_too) {
  static const char *const names[] = {"embargo.example.internal", "192.0.2.10", NULL};
  cr_expect_eq(judge(GET("embargo.example.internal:9090"), "10.1.2.3", names), ADMINGATE_OK);
  cr_expect_eq(judge(GET("EMBARGO.example.internal"), "10.1.2.3", names), ADMINGATE_OK);
  cr_expect_eq(judge(GET("192.0.2.10:9090"), "10.1.2.3", names), ADMINGATE_OK);
  cr_expect_eq(judge(GET("embargo.example.internal:80"), "10.1.2.3", names),
               ADMINGATE_FOREIGN_HOST);
  cr_expect_eq(judge(GET("other.example.internal:9090"), "10.1.2.3", names),
               ADMINGATE_FOREIGN_HOST);
}

#define WITH_ORIGIN(origin)                                                                        \
  "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nOrigin: " origin "\r\n\r\n"

Test(admingate, origin_must_be_the_endpoints_own) {
  cr_expect_eq(judge(WITH_ORIGIN("http://127.0.0.1:9090"), "127.0.0.1", NULL), ADMINGATE_OK);
  cr_expect_eq(judge(WITH_ORIGIN("http://localhost:9090"), "127.0.0.1", NULL), ADMINGATE_OK);
  cr_expect_eq(judge(WITH_ORIGIN("HTTP://127.0.0.1:9090"), "127.0.0.1", NULL), ADMINGATE_OK);
  cr_expect_eq(judge(WITH_ORIGIN("http://evil.example"), "127.0.0.1", NULL),
               ADMINGATE_FOREIGN_ORIGIN);
  cr_expect_eq(judge(WITH_ORIGIN("null"), "127.0.0.1", NULL), ADMINGATE_FOREIGN_ORIGIN);
  cr_expect_eq(judge(WITH_ORIGIN("http://127.0.0.1"), "127.0.0.1", NULL),
               ADMINGATE_FOREIGN_ORIGIN); /* port 80 */
  cr_expect_eq(judge(WITH_ORIGIN("https://127.0.0.1:9090"), "127.0.0.1", NULL),
               ADMINGATE_FOREIGN_ORIGIN);
  cr_expect_eq(judge(WITH_ORIGIN("http://127.0.0.1:9090/x"), "127.0.0.1", NULL),
               ADMINGATE_FOREIGN_ORIGIN);
}

#define POST(ctype)                                                                                \
  "POST /reload HTTP/1.1\r\nHost: 127.0.0.1:9090\r\n" ctype "Content-Length: 0\r\n\r\n"

Test(admingate, post_must_be_json) {
  cr_expect_eq(judge(POST("Content-Type: application/json\r\n"), "127.0.0.1", NULL), ADMINGATE_OK);
  cr_expect_eq(judge(POST("Content-Type: Application/JSON; charset=utf-8\r\n"), "127.0.0.1", NULL),
               ADMINGATE_OK);
  cr_expect_eq(judge(POST(""), "127.0.0.1", NULL), ADMINGATE_SIMPLE_POST);
  cr_expect_eq(judge(POST("Content-Type: text/plain\r\n"), "127.0.0.1", NULL),
               ADMINGATE_SIMPLE_POST);
  cr_expect_eq(
      judge(POST("Content-Type: application/x-www-form-urlencoded\r\n"), "127.0.0.1", NULL),
      ADMINGATE_SIMPLE_POST);
  cr_expect_eq(judge(POST("Content-Type: multipart/form-data; boundary=x\r\n"), "127.0.0.1", NULL),
               ADMINGATE_SIMPLE_POST);
  cr_expect_eq(judge(POST("Content-Type: application/jsonp\r\n"), "127.0.0.1", NULL),
               ADMINGATE_SIMPLE_POST);
}
