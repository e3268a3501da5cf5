/* Output queue with byte accounting. */
#include "proxy/endpoint.h"

#include <stdlib.h>
#include <string.h>

struct wreq {
  uv_write_t req;
  struct endpoint *ep;
  size_t len;
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

#define READ_BUFFER 65536

uv_buf_t endpoint_read_buffer(void) {
  static _Thread_local char buf[READ_BUFFER];
  return uv_buf_init(buf, sizeof(buf));
}

int endpoint_writev(struct endpoint *ep, const uv_buf_t *bufs, size_t nbufs) {
  size_t i, len = 0, off = 0;
  struct wreq *w;
  uv_buf_t buf;
  int rc;

  for (i = 0; i < nbufs; i++)
    len += bufs[i].len;
  if (len == 0)
    return 0;
  if ((w = malloc(sizeof(*w) + len)) == NULL)
    return UV_ENOMEM;
  for (i = 0; i < nbufs; i++) {
    memcpy(w->data + off, bufs[i].base, bufs[i].len);
    off += bufs[i].len;
  }
  w->ep = ep;
  w->len = len;
  buf = uv_buf_init(w->data, (unsigned)len);
  if ((rc = uv_write(&w->req, (uv_stream_t *)&ep->tcp, &buf, 1, on_write)) != 0) {
    free(w);
    return rc;
  }
  ep->pending += len;
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
