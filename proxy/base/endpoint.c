/* Output queue with byte accounting. */
#include "proxy/base/endpoint.h"

#include <stdlib.h>
#include <string.h>

struct wreq {
  uv_write_t req;
  struct endpoint *ep;
  size_t len, cap;
  char data[];
};

static void on_write(uv_write_t *req, int status) {
  struct wreq *w = (struct wreq *)req;
  struct endpoint *ep = w->ep;

  ep->pending -= w->len;
  free(w);
  /* After uv_close the handle's owner is still alive: libuv runs write
   * callbacks (with UV_ECANCELED) before the close callback. */
  if (ep->drained != NULL && !uv_is_closing((uv_handle_t *)&ep->tcp))
    ep->drained(ep, status);
}

#define READ_CHUNK 65536 /* what a read may add past a high-water mark */
#define READ_BUFFER (4 * READ_CHUNK)

static _Thread_local char read_buf[READ_BUFFER];

uv_buf_t endpoint_read_buffer(void) {
  return uv_buf_init(read_buf, READ_CHUNK);
}

uv_buf_t endpoint_relay_buffer(const struct endpoint *to, size_t high) {
  size_t room = high > to->pending ? high - to->pending : 0;
  if (room < READ_CHUNK)
    room = READ_CHUNK;
  return uv_buf_init(read_buf, (unsigned)(room < READ_BUFFER ? room : READ_BUFFER));
}

/* A write request of LEN bytes with room for CAP. */
static struct wreq *wreq_new(struct endpoint *ep, size_t cap) {
  struct wreq *w = malloc(sizeof(*w) + cap);
  if (w != NULL) {
    w->ep = ep;
    w->len = 0;
    w->cap = cap;
  }
  return w;
}

/* Writes W (its bytes already counted as pending). With TRY_NOW and
 * nothing queued before it, as much as the socket takes goes at once
 * (uv_try_write: no write request, and no epoll change after it), the rest
 * is queued. Returns 1 when all of it went at once, 0 when some is queued,
 * or a negative libuv code (the bytes are then no longer pending). W is
 * freed unless queued. */
static int wreq_submit(struct endpoint *ep, struct wreq *w, bool try_now) {
  uv_stream_t *s = (uv_stream_t *)&ep->tcp;
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
  size_t off = 0;
  int rc;

  if (try_now && uv_stream_get_write_queue_size(s) == 0) {
    rc = uv_try_write(s, &buf, 1);
    if (rc < 0 && rc != UV_EAGAIN) {
      ep->pending -= w->len;
      free(w);
      return rc;
    }
    off = rc > 0 ? (size_t)rc : 0;
    ep->pending -= off;
    if (off == w->len) {
      free(w);
      return 1;
    }
    w->len -= off;
    buf = uv_buf_init(w->data + off, (unsigned)w->len);
  }
  if ((rc = uv_write(&w->req, s, &buf, 1, on_write)) != 0) {
    ep->pending -= w->len;
    free(w);
    return rc;
  }
  return 0;
}

/* Copies into W the bytes of BUFS from the SKIP-th on. */
static void wreq_append_from(struct wreq *w, const uv_buf_t *bufs, size_t nbufs, size_t skip) {
  size_t i;
  for (i = 0; i < nbufs; i++) {
    size_t n = bufs[i].len;
    if (skip >= n) {
      skip -= n;
      continue;
    }
    memcpy(w->data + w->len, bufs[i].base + skip, n - skip);
    w->len += n - skip;
    skip = 0;
  }
}

#define STAGE_MIN 4096

/* Appends to the staged write, growing it geometrically. */
static int stage(struct endpoint *ep, const uv_buf_t *bufs, size_t nbufs, size_t len) {
  struct wreq *w = ep->staged;
  if (w == NULL || w->len + len > w->cap) {
    size_t used = w != NULL ? w->len : 0, cap = w != NULL ? w->cap * 2 : STAGE_MIN;
    while (cap < used + len)
      cap *= 2;
    if ((w = realloc(w, sizeof(*w) + cap)) == NULL)
      return UV_ENOMEM; /* the old staged write is still whole */
    if (ep->staged == NULL) {
      w->ep = ep;
      w->len = 0;
    }
    w->cap = cap;
    ep->staged = w;
  }
  wreq_append_from(w, bufs, nbufs, 0);
  ep->pending += len;
  return 0;
}

static int write_bufs(struct endpoint *ep, const uv_buf_t *bufs, size_t nbufs, bool try_now) {
  uv_stream_t *s = (uv_stream_t *)&ep->tcp;
  size_t i, len = 0, done = 0;
  struct wreq *w;
  int rc;

  for (i = 0; i < nbufs; i++)
    len += bufs[i].len;
  if (len == 0)
    return 0;
  if (ep->corked)
    return stage(ep, bufs, nbufs, len);
  if (try_now && uv_stream_get_write_queue_size(s) == 0) {
    /* Straight from the caller's buffers: only what the socket does not
     * take now is copied and queued. */
    rc = uv_try_write(s, bufs, (unsigned)nbufs);
    if (rc < 0 && rc != UV_EAGAIN)
      return rc;
    done = rc > 0 ? (size_t)rc : 0;
    if (done == len)
      return 0;
  }
  if ((w = wreq_new(ep, len - done)) == NULL)
    return UV_ENOMEM;
  wreq_append_from(w, bufs, nbufs, done);
  ep->pending += w->len;
  rc = wreq_submit(ep, w, false);
  return rc > 0 ? 0 : rc;
}

int endpoint_writev(struct endpoint *ep, const uv_buf_t *bufs, size_t nbufs) {
  return write_bufs(ep, bufs, nbufs, false);
}

int endpoint_writev_now(struct endpoint *ep, const uv_buf_t *bufs, size_t nbufs) {
  return write_bufs(ep, bufs, nbufs, true);
}

int endpoint_write_now(struct endpoint *ep, const char *data, size_t len) {
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  return write_bufs(ep, &buf, 1, true);
}

void endpoint_cork(struct endpoint *ep) {
  ep->corked = true;
}

/* Submits the staged write; 1 when it all went at once (see wreq_submit). */
static int flush_staged(struct endpoint *ep, bool try_now) {
  struct wreq *w = ep->staged;
  ep->corked = false;
  ep->staged = NULL;
  if (w == NULL)
    return 0;
  if (uv_is_closing((uv_handle_t *)&ep->tcp)) {
    ep->pending -= w->len;
    free(w);
    return 0;
  }
  return wreq_submit(ep, w, try_now);
}

int endpoint_uncork(struct endpoint *ep) {
  int rc = flush_staged(ep, true);
  if (rc <= 0)
    return rc;
  if (ep->drained != NULL) /* as the write callback would have */
    ep->drained(ep, 0);
  return 0;
}

int endpoint_write(struct endpoint *ep, const char *data, size_t len) {
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  return endpoint_writev(ep, &buf, 1);
}

struct sreq {
  uv_shutdown_t req;
  uv_shutdown_cb cb;
};

static void on_shutdown_free(uv_shutdown_t *req, int status) {
  struct sreq *s = (struct sreq *)req;
  if (s->cb != NULL)
    s->cb(req, status);
  free(s);
}

int endpoint_shutdown(struct endpoint *ep, uv_shutdown_cb cb) {
  struct sreq *s;
  int rc;

  if (ep->shut)
    return 0;
  if (ep->corked && (rc = flush_staged(ep, false)) < 0) /* FIN goes after the staged bytes */
    return rc;
  if ((s = malloc(sizeof(*s))) == NULL)
    return UV_ENOMEM;
  s->cb = cb;
  if ((rc = uv_shutdown(&s->req, (uv_stream_t *)&ep->tcp, on_shutdown_free)) != 0) {
    free(s);
    return rc;
  }
  ep->shut = true;
  return 0;
}

void endpoint_set_reading(struct endpoint *ep, bool want, uv_alloc_cb alloc_cb,
                          uv_read_cb read_cb) {
  if (uv_is_closing((uv_handle_t *)&ep->tcp) || want == ep->reading)
    return;
  if (want && (ep->eof || uv_read_start((uv_stream_t *)&ep->tcp, alloc_cb, read_cb) != 0))
    return;
  if (!want)
    uv_read_stop((uv_stream_t *)&ep->tcp);
  ep->reading = want;
}
