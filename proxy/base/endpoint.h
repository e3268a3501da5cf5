/* One side of a relay: a TCP handle, its copy-on-write output queue and the
 * byte count still queued, which is what backpressure is decided on. */
#ifndef EMBARGO_PROXY_ENDPOINT_H
#define EMBARGO_PROXY_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct endpoint;
struct wreq;

/* Called from a write callback once the queued bytes went down; STATUS is the
 * write's result (negative: the connection failed). */
typedef void (*endpoint_drain_cb)(struct endpoint *ep, int status);

struct endpoint {
  uv_tcp_t tcp;            /* tcp.data points at the owner */
  size_t pending;          /* bytes queued and not yet written */
  endpoint_drain_cb drained;
  struct wreq *staged;     /* output written while corked, not yet queued */
  bool corked;             /* writes accumulate in STAGED until endpoint_uncork */
  bool reading;            /* uv_read_start is in effect */
  bool eof;                /* the peer sent FIN */
  bool shut;               /* we sent FIN (uv_shutdown issued) */
};

/* The buffer every read on this thread's loop goes into. Nothing keeps a
 * pointer into it past the read callback: parsers copy what they keep, and
 * writes copy what they queue. So a connection holds no read buffer at all
 * between reads, idle or not. */
uv_buf_t endpoint_read_buffer(void);

/* The same buffer for a relay towards TO, larger (up to 256 KiB) while TO's
 * queue is far under the high-water mark HIGH: a bulk transfer takes fewer
 * reads and writes. A read into it still ends at most 64 KiB past HIGH, as
 * one into endpoint_read_buffer does. */
uv_buf_t endpoint_relay_buffer(const struct endpoint *to, size_t high);

/* Queues a copy of DATA for writing (so the caller's buffer is free at
 * once). Returns 0 or a negative libuv code; on error nothing was queued. */
int endpoint_write(struct endpoint *ep, const char *data, size_t len);

/* Queues the concatenation of NBUFS buffers as one write. */
int endpoint_writev(struct endpoint *ep, const uv_buf_t *bufs, size_t nbufs);

/* Like endpoint_write, but what the socket takes at once is written at
 * once (nothing queued before it), and no drained callback follows for
 * those bytes: for an owner that does not wait for the drain of what it
 * writes (it reads the other way next). */
int endpoint_write_now(struct endpoint *ep, const char *data, size_t len);
int endpoint_writev_now(struct endpoint *ep, const uv_buf_t *bufs, size_t nbufs);

/* From now on writes accumulate into one buffer instead of being queued
 * one by one (each queued write is a write(2) when the socket has room):
 * for what one event makes, such as a response head and its body. The
 * bytes count as pending at once. */
void endpoint_cork(struct endpoint *ep);

/* Writes what accumulated since endpoint_cork as one write: at once as far
 * as the socket takes it, the rest queued. When all of it went at once, the
 * drained callback runs before this returns, as the write callback would
 * have: call it where the owner's state is whole (at the end of handling an
 * event). Returns 0 or a negative libuv code (the bytes are then dropped
 * and no longer pending; the caller closes the connection). On a closing
 * handle, drops them. */
int endpoint_uncork(struct endpoint *ep);

/* Sends FIN once everything queued has been written. CB may be NULL. */
int endpoint_shutdown(struct endpoint *ep, uv_shutdown_cb cb);

/* Starts or stops reading so that the handle reads exactly when WANT says. */
void endpoint_set_reading(struct endpoint *ep, bool want, uv_alloc_cb alloc_cb,
                          uv_read_cb read_cb);

#endif
