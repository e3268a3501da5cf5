/* Endpoint writes and reads: endpoint_write_now sends what the socket takes
 * at once straight from the caller's buffer and queues only the rest, in
 * order, with the drain callback for the queued part; a relay read never
 * ends more than 64 KiB past the high-water mark. The loop closes clean. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/base/endpoint.h"

#define BIG (4u << 20)

struct fixture {
  uv_loop_t loop;
  struct endpoint ep;
  int peer; /* the other end of the socket pair, read by the test */
  int drains;
};

static void on_drained(struct endpoint *ep, int status) {
  struct fixture *f = ep->tcp.data;
  cr_expect_eq(status, 0);
  f->drains++;
}

static void setup(struct fixture *f, int sndbuf) {
  int sv[2];
  memset(f, 0, sizeof(*f));
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  if (sndbuf > 0)
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(uv_tcp_init(&f->loop, &f->ep.tcp), 0);
  cr_assert_eq(uv_tcp_open(&f->ep.tcp, sv[0]), 0);
  f->ep.tcp.data = f;
  f->ep.drained = on_drained;
  f->peer = sv[1];
}

static void teardown(struct fixture *f) {
  uv_close((uv_handle_t *)&f->ep.tcp, NULL);
  cr_expect_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  cr_expect_eq(uv_loop_close(&f->loop), 0);
  close(f->peer);
}

static unsigned char pattern(size_t i) {
  return (unsigned char)((i * 31u + (i >> 12)) & 0xff);
}

Test(endpoint, write_now_of_what_the_socket_takes_queues_nothing) {
  struct fixture f;
  char got[100];
  setup(&f, 0);
  cr_assert_eq(endpoint_write_now(&f.ep, "hello, peer!", 12), 0);
  cr_expect_eq(f.ep.pending, 0, "nothing queued, so no copy and no drain callback");
  cr_assert_eq(read(f.peer, got, sizeof(got)), 12);
  cr_expect_eq(memcmp(got, "hello, peer!", 12), 0);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  cr_expect_eq(f.drains, 0);
  teardown(&f);
}

Test(endpoint, write_now_queues_the_rest_and_it_follows_in_order) {
  static unsigned char data[BIG], got[BIG];
  struct fixture f;
  size_t i, have = 0;
  ssize_t n;

  for (i = 0; i < BIG; i++)
    data[i] = pattern(i);
  setup(&f, 65536);
  cr_assert_eq(endpoint_write_now(&f.ep, (const char *)data, BIG / 2), 0);
  cr_expect_gt(f.ep.pending, 0, "a full socket leaves some queued");
  cr_expect_lt(f.ep.pending, BIG / 2, "what the socket took was not queued");
  /* A second write while bytes are queued must queue behind them. */
  cr_assert_eq(endpoint_write_now(&f.ep, (const char *)data + BIG / 2, BIG / 2), 0);
  memset(data, 0, sizeof(data)); /* the caller's buffer is free at once */
  for (i = 0; i < 100000 && have < BIG; i++) {
    n = recv(f.peer, got + have, BIG - have, MSG_DONTWAIT);
    if (n > 0)
      have += (size_t)n;
    uv_run(&f.loop, UV_RUN_NOWAIT);
  }
  cr_assert_eq(have, BIG);
  for (i = 0; i < BIG; i++)
    if (got[i] != pattern(i))
      cr_assert_fail("byte %zu differs", i);
  cr_expect_eq(f.ep.pending, 0);
  cr_expect_gt(f.drains, 0, "the queued part ends with a drain callback");
  teardown(&f);
}

Test(endpoint, write_now_to_a_closed_peer_fails) {
  struct fixture f;
  int rc;
  setup(&f, 0);
  close(f.peer);
  f.peer = -1;
  rc = endpoint_write_now(&f.ep, "x", 1);
  cr_expect(rc == UV_EPIPE || rc == UV_ECONNRESET, "got %s", uv_err_name(rc));
  cr_expect_eq(f.ep.pending, 0);
  uv_close((uv_handle_t *)&f.ep.tcp, NULL);
  cr_expect_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  cr_expect_eq(uv_loop_close(&f.loop), 0);
}

Test(endpoint, relay_buffer_ends_at_most_64k_past_the_high_water_mark) {
  static const size_t highs[] = {4096, 65536, 262144, 1u << 20, 1u << 30};
  struct endpoint to;
  size_t h, pending;
  uv_buf_t b;

  memset(&to, 0, sizeof(to));
  for (h = 0; h < sizeof(highs) / sizeof(highs[0]); h++) {
    for (pending = 0; pending < highs[h]; pending += 4096) {
      to.pending = pending;
      b = endpoint_relay_buffer(&to, highs[h]);
      cr_assert_geq(b.len, 65536, "never less than the plain read buffer");
      cr_assert_leq(b.len, 262144);
      cr_assert_leq(pending + b.len, highs[h] + 65536, "high %zu pending %zu len %zu", highs[h],
                    pending, (size_t)b.len);
      cr_assert_eq(b.base, endpoint_read_buffer().base, "one buffer per loop");
      if (pending > (1u << 20))
        break; /* the rest of a 1 GiB mark adds nothing */
    }
  }
  to.pending = 0;
  cr_expect_eq(endpoint_relay_buffer(&to, 262144).len, 262144, "an empty queue reads the most");
}
