/* Listening sockets and accepting clients; with several workers, one
 * socket per worker and listener, in an SO_REUSEPORT group. */
#include "proxy/worker/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "proxy/worker/admit.h"
#include "proxy/base/log.h"
#include "proxy/worker/server.h"

#define LISTEN_BACKLOG 511

static void on_connection(uv_stream_t *s, int status) {
  struct listener *lst = s->data;
  if (status < 0) {
    /* Out of descriptors, libuv sheds the pending connection; say so at
     * most once a second rather than once per client. */
    uint64_t now = uv_now(lst->srv->loop);
    lst->accept_errors++;
    if (now - lst->last_error_log >= 1000) {
      log_diag(LOG_WARN, 0, "listener %s: %s (%llu accept errors so far)", lst->name,
               uv_strerror(status), (unsigned long long)lst->accept_errors);
      lst->last_error_log = now;
    }
    return;
  }
  /* At the connection limit or out of descriptors, the connection is left
   * pending: libuv stops watching the socket until it is accepted, so the
   * kernel's backlog holds further clients instead of a loop shedding them. */
  admit_accept(&lst->srv->admit, lst);
}

/* A socket made here rather than by libuv, for options that must be set
 * before bind: SO_REUSEPORT for a worker joining the listeners of the
 * others; IP_TRANSPARENT (IPV6_TRANSPARENT) for a TPROXY listener, which
 * accepts connections addressed to anywhere and needs CAP_NET_ADMIN. */
static int open_socket(struct listener *lst, const struct config_listen *cl, bool reuseport,
                       char *err, size_t errsize) {
  int family = cl->addr.ss_family, one = 1, rc;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    rc = -errno;
    snprintf(err, errsize, "cannot listen on %s: %s", cl->text, uv_strerror(rc));
    return rc;
  }
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    rc = -errno;
    snprintf(err, errsize, "cannot listen on %s: SO_REUSEPORT: %s", cl->text, uv_strerror(rc));
    close(fd);
    return rc;
  }
  if (cl->mode == LISTEN_TPROXY &&
      (family == AF_INET6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
                          : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)))) {
    rc = -errno;
    snprintf(err, errsize,
             "cannot listen on %s in tproxy mode: %s%s", cl->text, uv_strerror(rc),
             rc == UV_EPERM ? " (IP_TRANSPARENT needs CAP_NET_ADMIN: run as root, or grant "
                              "the capability, e.g. setcap cap_net_admin+ep, or "
                              "--cap-add NET_ADMIN in a container)"
                            : "");
    close(fd);
    return rc;
  }
  if ((rc = uv_tcp_open(&lst->tcp, fd)) != 0) {
    snprintf(err, errsize, "cannot listen on %s: %s", cl->text, uv_strerror(rc));
    close(fd);
  }
  return rc;
}

/* The first worker's socket binds without SO_REUSEPORT, so that an address
 * another process holds is refused as usual (EADDRINUSE); the option is set
 * between bind and listen, which puts the socket in a group the other
 * workers' sockets join. */
static int allow_joining(struct listener *lst, const struct config_listen *cl, char *err,
                         size_t errsize) {
  int one = 1, rc = 0;
  uv_os_fd_t fd;
  if ((rc = uv_fileno((uv_handle_t *)&lst->tcp, &fd)) == 0 &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
    rc = -errno;
  if (rc != 0)
    snprintf(err, errsize, "cannot listen on %s: SO_REUSEPORT: %s", cl->text, uv_strerror(rc));
  return rc;
}

int listener_open(struct server *srv, struct listener *lst, const struct config_listen *cl,
                  const struct listener *first, bool shared, char *err, size_t errsize) {
  int rc, len = sizeof(lst->addr);
  const struct sockaddr *addr = (const struct sockaddr *)&cl->addr;
  unsigned flags;

  lst->srv = srv;
  lst->mode = cl->mode;
  lst->proxy_protocol = cl->proxy_protocol;
  uv_tcp_init(srv->loop, &lst->tcp);
  lst->tcp.data = lst;
  if (first != NULL)
    addr = (const struct sockaddr *)&first->addr; /* the port the first one got */
  if ((first != NULL || cl->mode == LISTEN_TPROXY) &&
      (rc = open_socket(lst, cl, first != NULL, err, errsize)) != 0)
    return rc;
  /* An IPv6 listener serves IPv6 only, so "0.0.0.0:P" and "[::]:P" can be
   * listed together, each family judged by its own addresses. */
  flags = cl->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  if ((rc = uv_tcp_bind(&lst->tcp, addr, flags)) != 0) {
    snprintf(err, errsize, "cannot listen on %s: %s", cl->text, uv_strerror(rc));
    return rc;
  }
  if (first == NULL && shared && (rc = allow_joining(lst, cl, err, errsize)) != 0)
    return rc;
  if ((rc = uv_listen((uv_stream_t *)&lst->tcp, LISTEN_BACKLOG, on_connection)) != 0) {
    snprintf(err, errsize, "cannot listen on %s: %s", cl->text, uv_strerror(rc));
    return rc;
  }
  uv_tcp_getsockname(&lst->tcp, (struct sockaddr *)&lst->addr, &len);
  log_fmt_addr((const struct sockaddr *)&lst->addr, lst->name, sizeof(lst->name));
  return 0;
}

void listener_close(struct listener *lst) {
  if (lst->tcp.loop != NULL && !uv_is_closing((uv_handle_t *)&lst->tcp))
    uv_close((uv_handle_t *)&lst->tcp, NULL);
}
